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

use super::act_blocks::{ActBlock, QK};
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

/// The two low bits of value `v` (0..256) of a GGUF super-block, from its 64 bytes of them
/// (Q3_K's `qs`, Q2_K's): value `v` is in the `v / 128`th run of 128, whose 32 bytes hold four
/// 2-bit planes, plane `(v % 128) / 32`, byte `v % 32`.
pub(super) fn gguf_crumb(qs: &[u8], v: usize) -> u8 {
    (qs[32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32))) & 3
}

/// Which of a GGUF super-block's 16 scales value `v` uses (Q3_K's, Q2_K's): they follow the
/// same walk as the planes, two per plane of 32.
pub(super) fn gguf_scale_index(v: usize) -> usize {
    8 * (v / 128) + 2 * ((v % 128) / 32) + (v % 32) / 16
}

/// Quant `v` (0..256, unsigned 0..8) of one GGUF block: its two low bits, and its high bit,
/// bit `4 · (v / 128) + plane` of `hmask[v % 32]`.
fn gguf_quant(b: &[u8], v: usize) -> u8 {
    let high = (b[v % 32] >> (4 * (v / 128) + (v % 128) / 32)) & 1;
    gguf_crumb(&b[32..96], v) | high << 2
}

/// Byte of `ql` holding block `j`'s values `4k + b` and `16 + 4k + b` of row `c`, and the
/// shift of value `v`'s two bits in it (see the module's comment).
#[inline(always)]
fn crumb_at(c: usize, j: usize, v: usize) -> (usize, u32) {
    let (h, k, b) = (v / 16, (v % 16) / 4, v % 4);
    (
        128 * j + 64 * (k / 2) + 4 * c + b,
        (2 * (2 * (k % 2) + h)) as u32,
    )
}

/// The two low bits of value `v` of block `j`, row `c`, from a panel's `ql`.
#[inline(always)]
pub(super) fn crumb(ql: &[u8; SUB * 128], c: usize, j: usize, v: usize) -> u8 {
    let (at, shift) = crumb_at(c, j, v);
    (ql[at] >> shift) & 3
}

/// Writes row `c`'s low bit pairs of block `j` (`bits(v)` for its value `v`, 0..32) into `ql`.
pub(super) fn pack_crumbs(
    ql: &mut [u8; SUB * 128],
    c: usize,
    j: usize,
    bits: impl Fn(usize) -> u8,
) {
    for v in 0..QK {
        let (at, shift) = crumb_at(c, j, v);
        ql[at] |= (bits(v) & 3) << shift;
    }
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
        let high = (self.qh[8 * j + 4 * h + k] >> (4 * c + b)) & 1;
        i32::from(crumb(&self.ql, c, j, v)) | (high as i32) << 2
    }
}

impl PanelBlock for Q3KPanel {
    const NAME: &'static str = "Q3_K";
    type Act = ActBlock;
    const BLOCKS: usize = SUB;
    const BYTES: usize = BLOCK_BYTES;

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Q3KPanel {
            ql: [0; SUB * 128],
            qh: [0; SUB * 8],
            sc: [0; SUB * 2 * PANEL],
            d: rows.map(|b| f16::from_le_bytes([b[108], b[109]])),
        };
        for j in 0..SUB {
            let quants =
                rows.map(|b| std::array::from_fn::<u8, 32, _>(|v| gguf_quant(b, 32 * j + v)));
            for (c, q) in quants.iter().enumerate() {
                pack_crumbs(&mut p.ql, c, j, |v| q[v]);
                for h in 0..2 {
                    let scale = gguf_scale(rows[c], gguf_scale_index(32 * j + 16 * h));
                    p.sc[32 * j + 16 * h + c] = scale as u8;
                }
            }
            // block j's high bits, bit v for its value v
            let high = quants.map(|q| (0..QK).fold(0u32, |acc, v| acc | u32::from(q[v] >> 2) << v));
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
