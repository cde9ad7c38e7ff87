//! Q3_K weights, the main type of llama.cpp's Q3_K_M files and a quarter of its Q2_K ones:
//! super-blocks of 256 values, 3-bit quants (two low bits, and a high bit kept apart) and a 6-bit
//! scale per 16 values, `value = d · (sc − 32) · (q − 4)`. That is Q6_K's shape with fewer bits,
//! so it runs through Q6_K's kernels (`q6_k::HalfScaledPanel`) with its own unpacking
//! (`q3_k_simd`). On candle's kernels a Q3_K_M file prefilled at 0.68x llama.cpp.
//!
//! A panel is one super-block of 16 rows. For block `j` (32 values) and `k` in 0..4, the two
//! low bits of values `4k + b` and `16 + 4k + b` of row `c` sit in byte
//! `128j + 64(k / 2) + 4c + b` of `ql`, at bits 0-1 and 2-3 for even `k`, 4-5 and 6-7 for odd;
//! the high bits are 64-bit masks over those bytes as `nibbles::pack_fifth_bits` lays out a
//! fifth bit (`qh[8j + k]` for the lower values, `qh[8j + 4 + k]` for the upper), so a kernel
//! adds 4 where a mask says; the scales as signed bytes, `sc − 32`. 1,824 bytes against
//! GGUF's 1,760.

use half::f16;

use super::act_blocks::{quantize_row_k_into, ActBlock, QK};
use super::nibbles::pack_fifth_bits;
use super::panels::{forward_kernels, PanelBlock, PanelMatrix, PANEL};
use super::q4_k::SUB;
use super::q6_k::{dequantize_lane, dot_scalar, HalfScaledPanel};

pub(crate) type Q3KMatrix = PanelMatrix<Q3KPanel>;

/// GGUF's block: 32 bytes of high bits, 64 of low bit pairs, 12 of packed 6-bit scales, d (f16).
pub(crate) const BLOCK_BYTES: usize = 110;

/// Super-block `i` of 16 rows (see the module's comment).
#[repr(C, align(32))]
#[derive(Clone, Copy)]
pub(crate) struct Q3KPanel {
    pub(super) ql: [u8; SUB * 128],
    pub(super) qh: [u64; SUB * 8],
    sc: [u8; SUB * 2 * PANEL],
    d: [f16; PANEL],
}

/// Quant `v` (0..256, unsigned 0..8) of one GGUF block, and the index of its scale: value `v`
/// is in the `v / 128`th run of 128, whose 32 bytes of `qs` hold four 2-bit planes, and its
/// high bit is bit `4 · (v / 128) + plane` of `hmask[v % 32]`.
fn gguf_quant(b: &[u8], v: usize) -> (u8, usize) {
    let (hmask, qs) = (&b[..32], &b[32..96]);
    let (n, w) = (v / 128, v % 128);
    let (plane, l) = (w / 32, w % 32);
    let low = (qs[32 * n + l] >> (2 * plane)) & 3;
    let high = (hmask[l] >> (4 * n + plane)) & 1;
    (low | high << 2, 8 * n + 2 * plane + l / 16)
}

/// Scale `i` (0..16) of one GGUF block, less 32: its low four bits in byte `i` (low nibble) or
/// `i − 8` (high nibble), its top two in byte `8 + i % 4` at bit `2 · (i / 4)`.
fn gguf_scale(b: &[u8], i: usize) -> i8 {
    let s = &b[96..108];
    let low = if i < 8 { s[i] & 0x0F } else { s[i - 8] >> 4 };
    let high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    (low | high << 4) as i8 - 32
}

impl HalfScaledPanel for Q3KPanel {
    const OFFSET: i32 = 4;

    fn scale_bytes(&self) -> &[u8; SUB * 2 * PANEL] {
        &self.sc
    }

    fn d(&self) -> &[f16; PANEL] {
        &self.d
    }

    #[inline(always)]
    fn quant(&self, c: usize, j: usize, v: usize) -> i32 {
        let (h, k, b) = (v / 16, (v % 16) / 4, v % 4);
        let byte = self.ql[128 * j + 64 * (k / 2) + 4 * c + b];
        let low = (byte >> (2 * (2 * (k % 2) + h))) & 3;
        let high = (self.qh[8 * j + 4 * h + k] >> (4 * c + b)) & 1;
        i32::from(low) | (high as i32) << 2
    }
}

impl PanelBlock for Q3KPanel {
    const NAME: &'static str = "Q3_K";
    const BLOCKS: usize = SUB;
    const BYTES: usize = BLOCK_BYTES;

    fn quantize_row(row: &[f32], out: &mut [ActBlock]) {
        quantize_row_k_into(row, out)
    }

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Q3KPanel {
            ql: [0; SUB * 128],
            qh: [0; SUB * 8],
            sc: [0; SUB * 2 * PANEL],
            d: rows.map(|b| f16::from_le_bytes([b[108], b[109]])),
        };
        for j in 0..SUB {
            let quants = rows
                .map(|b| std::array::from_fn::<(u8, usize), 32, _>(|v| gguf_quant(b, 32 * j + v)));
            for (c, q) in quants.iter().enumerate() {
                for k in 0..4 {
                    for b in 0..4 {
                        let (lo, hi) = (q[4 * k + b].0 & 3, q[16 + 4 * k + b].0 & 3);
                        p.ql[128 * j + 64 * (k / 2) + 4 * c + b] |= (lo | hi << 2) << (4 * (k % 2));
                    }
                }
                p.sc[32 * j + c] = gguf_scale(rows[c], q[0].1) as u8;
                p.sc[32 * j + 16 + c] = gguf_scale(rows[c], q[16].1) as u8;
            }
            // block j's high bits, bit v for its value v
            let high =
                quants.map(|q| (0..QK).fold(0u32, |acc, v| acc | u32::from(q[v].0 >> 2) << v));
            let mut masks = [0u64; 8];
            pack_fifth_bits(&mut masks, high);
            p.qh[8 * j..8 * (j + 1)].copy_from_slice(&masks);
        }
        p
    }

    fn dequantize_lane(&self, c: usize, block: usize) -> [f32; QK] {
        dequantize_lane(self, c, block)
    }

    forward_kernels!(dot_scalar, q3_k_simd);
}
