//! Q5_K weights, the main type of llama.cpp's Q5_K_M files: Q4_K's super-blocks (see `q4_k`,
//! whose kernels these panels run through) with a fifth bit per quant. candle's kernels
//! prefilled a Q5_K_M file at 0.52x llama.cpp.

use half::f16;

use super::act_blocks::{ActBlock, QK};
use super::nibbles::pack_fifth_bits;
use super::panels::{forward_kernels, PanelBlock, PanelMatrix, PANEL};
use super::q4_k::{dequantize_lane, dot_scalar, pack_scale_min, ScaleMinPanel, SUB};

pub(crate) type Q5KMatrix = PanelMatrix<Q5KPanel>;

/// GGUF's block: d, dmin (f16), 12 bytes of scales and mins, 32 bytes of fifth bits (bit `j` of
/// byte `l` for value `l` of block `j`), 128 bytes of nibbles (as Q4_K's).
pub(crate) const BLOCK_BYTES: usize = 176;

/// Super-block `i` of 16 Q5_K rows (see `ScaleMinPanel`), 2,880 bytes (GGUF: 2,816).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(crate) struct Q5KPanel {
    qs: [u8; SUB * 256],
    qh: [u64; SUB * 8],
    sc: [u8; SUB * PANEL],
    m: [u8; SUB * PANEL],
    d: [f16; PANEL],
    dmin: [f16; PANEL],
}

impl ScaleMinPanel for Q5KPanel {
    fn qs(&self) -> &[u8; SUB * 256] {
        &self.qs
    }
    fn qh(&self) -> Option<&[u64; SUB * 8]> {
        Some(&self.qh)
    }
    fn sc(&self) -> &[u8; SUB * PANEL] {
        &self.sc
    }
    fn d(&self) -> &[f16; PANEL] {
        &self.d
    }
    fn mins(&self) -> Option<(&[u8; SUB * PANEL], &[f16; PANEL])> {
        Some((&self.m, &self.dmin))
    }
}

impl PanelBlock for Q5KPanel {
    const NAME: &'static str = "Q5_K";
    type Act = ActBlock;
    const BLOCKS: usize = SUB;
    const BYTES: usize = BLOCK_BYTES;

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Q5KPanel {
            qs: [0; SUB * 256],
            qh: [0; SUB * 8],
            sc: [0; SUB * PANEL],
            m: [0; SUB * PANEL],
            d: rows.map(|b| f16::from_le_bytes([b[0], b[1]])),
            dmin: rows.map(|b| f16::from_le_bytes([b[2], b[3]])),
        };
        pack_scale_min(rows, 48, &mut p.qs, &mut p.sc, &mut p.m);
        for j in 0..SUB {
            // block j's fifth bits, bit v for its value v
            let bits = rows
                .map(|b| (0..QK).fold(0u32, |acc, v| acc | u32::from((b[16 + v] >> j) & 1) << v));
            let mut masks = [0u64; 8];
            pack_fifth_bits(&mut masks, bits);
            p.qh[8 * j..8 * (j + 1)].copy_from_slice(&masks);
        }
        p
    }

    fn dequantize_lane(&self, c: usize, block: usize) -> [f32; QK] {
        dequantize_lane(self, c, block)
    }

    forward_kernels!(dot_scalar, q4_k_simd);
}
