//! IQ4_XS weights: 4-bit indices into ggml's non-linear grid (`nibbles::IQ4_GRID`) in
//! super-blocks of 256 with one f16 `d` and a 6-bit scale per block of 32
//! (`value = d · (ls − 32) · grid[q]`), 4.25 bits a weight. llama.cpp writes IQ4_NL (`q4_0`) for
//! the rows of an IQ4_XS file that are not a multiple of 256 long (all but ffn_down in
//! SmolLM2-135M).
//!
//! candle has no blocks for it. The panels run Q4_K's kernels (`q4_k`, activations in Q8_K as
//! ggml pairs them), which look the quants up in the grid (`vpshufb`) before the integer dot
//! product.

use half::f16;

use super::act_blocks::{ActBlock, QK};
use super::nibbles::pack_nibbles;
use super::panels::{forward_kernels, PanelBlock, PanelMatrix, PANEL};
use super::q4_k::{self, ScaleMinPanel, SUB};

pub(crate) type Iq4XsMatrix = PanelMatrix<Iq4XsPanel>;

/// IQ4_XS's super-block as GGUF stores it: d (f16), the scales' high bit pairs (u16, block j's
/// at bits 2j..2j + 2), their low nibbles (4 bytes, block j's in byte j / 2, low nibble first),
/// then 16 bytes of quants per block in Q4_0's layout.
pub(crate) const XS_BLOCK_BYTES: usize = 136;

/// Super-block `i` of 16 IQ4_XS rows (see `ScaleMinPanel`): the scales as `ls − 32` in i8.
/// 2,208 bytes (GGUF: 2,176).
#[repr(C, align(32))]
#[derive(Clone, Copy)]
pub(crate) struct Iq4XsPanel {
    qs: [u8; SUB * 256],
    sc: [u8; SUB * PANEL],
    d: [f16; PANEL],
}

impl ScaleMinPanel for Iq4XsPanel {
    const GRID: bool = true;
    const SIGNED_SCALES: bool = true;
    fn qs(&self) -> &[u8; SUB * 256] {
        &self.qs
    }
    fn qh(&self) -> Option<&[u64; SUB * 8]> {
        None
    }
    fn sc(&self) -> &[u8; SUB * PANEL] {
        &self.sc
    }
    fn d(&self) -> &[f16; PANEL] {
        &self.d
    }
    fn mins(&self) -> Option<(&[u8; SUB * PANEL], &[f16; PANEL])> {
        None
    }
}

/// Block `j`'s scale from a GGUF IQ4_XS super-block, `ls − 32` (−32..=31).
fn xs_scale(block: &[u8], j: usize) -> i8 {
    let high = u16::from_le_bytes([block[2], block[3]]);
    let low = (block[4 + j / 2] >> (4 * (j % 2))) & 0x0F;
    let ls = low | (((high >> (2 * j)) & 3) as u8) << 4;
    ls as i8 - 32
}

impl PanelBlock for Iq4XsPanel {
    const NAME: &'static str = "IQ4_XS";
    type Act = ActBlock;
    const BLOCKS: usize = SUB;
    const BYTES: usize = XS_BLOCK_BYTES;

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Iq4XsPanel {
            qs: [0; SUB * 256],
            sc: [0; SUB * PANEL],
            d: rows.map(|b| f16::from_le_bytes([b[0], b[1]])),
        };
        for j in 0..SUB {
            let mut block = [0u8; 256];
            pack_nibbles(&mut block, rows.map(|b| &b[8 + 16 * j..]));
            p.qs[256 * j..256 * (j + 1)].copy_from_slice(&block);
            for (c, b) in rows.iter().enumerate() {
                p.sc[PANEL * j + c] = xs_scale(b, j) as u8;
            }
        }
        p
    }

    fn dequantize_lane(&self, c: usize, block: usize) -> [f32; QK] {
        q4_k::dequantize_lane(self, c, block)
    }

    forward_kernels!(q4_k::dot_scalar, q4_k_simd);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xs_scales_read_both_halves() {
        let mut block = [0u8; XS_BLOCK_BYTES];
        // block 0: low nibble 0x5, high pair 0b10 -> ls 0x25 = 37; block 7: 0xF and 0b11 -> 63
        block[2..4].copy_from_slice(&(0b11u16 << 14 | 0b10).to_le_bytes());
        block[4] = 0x05;
        block[7] = 0xF0;
        assert_eq!(xs_scale(&block, 0), 37 - 32);
        assert_eq!(xs_scale(&block, 7), 63 - 32);
        assert_eq!(xs_scale(&block, 1), -32);
    }
}
