//! Q2_K weights, the main type of llama.cpp's Q2_K files: super-blocks of 256 values, 2-bit
//! quants and a 4-bit scale and 4-bit min per 16 values, `value = d · sc · q − dmin · m`. It runs
//! through Q6_K's kernels (`q6_k::HalfScaledPanel`, with mins), unpacked as Q3_K's low bits
//! (`q2_k_simd`). On candle's kernels a Q2_K file decoded at 1.12x llama.cpp and prefilled at
//! 0.70x.
//!
//! A panel is one super-block of 16 rows: the quants as `q3_k` lays out its low bits (byte
//! `128j + 64(k / 2) + 4c + b` of `ql`), each 16 values' scale and min byte as GGUF packs it
//! (scale in the low nibble), laid out as Q6_K's scales: GGUF's 1,344 bytes exactly. (Scales
//! and mins as separate bytes read a sixth more per token: 9-16% slower decoding, 1-2% slower
//! prefill, in two interleaved pairs of `bench_quants.py --wide --types Q2_K`.)

use half::f16;

use super::act_blocks::{ActBlock, QK};
use super::panels::{forward_kernels, PanelBlock, PanelMatrix, PANEL};
use super::q3_k::{crumb, gguf_crumb, gguf_scale_index, pack_crumbs};
use super::q4_k::SUB;
use super::q6_k::{dequantize_lane, dot_scalar, HalfScaledPanel};

pub(crate) type Q2KMatrix = PanelMatrix<Q2KPanel>;

/// GGUF's block: 16 bytes of scales (low nibble) and mins (high nibble), 64 of 2-bit quants
/// (four planes of 32 bytes per 128 values, as Q3_K's), d and dmin (f16).
pub(crate) const BLOCK_BYTES: usize = 84;

/// Super-block `i` of 16 rows (see the module's comment).
#[repr(C, align(32))]
#[derive(Clone, Copy)]
pub(crate) struct Q2KPanel {
    pub(super) ql: [u8; SUB * 128],
    sc: [u8; SUB * 2 * PANEL],
    d: [f16; PANEL],
    dmin: [f16; PANEL],
}

impl HalfScaledPanel for Q2KPanel {
    const OFFSET: i32 = 0;

    fn scale_bytes(&self) -> &[u8; SUB * 2 * PANEL] {
        &self.sc
    }

    fn d(&self) -> &[f16; PANEL] {
        &self.d
    }

    #[inline(always)]
    fn quant(&self, c: usize, j: usize, v: usize) -> i32 {
        i32::from(crumb(&self.ql, c, j, v))
    }

    #[inline(always)]
    fn dmin(&self) -> Option<&[f16; PANEL]> {
        Some(&self.dmin)
    }
}

impl PanelBlock for Q2KPanel {
    const NAME: &'static str = "Q2_K";
    type Act = ActBlock;
    const BLOCKS: usize = SUB;
    const BYTES: usize = BLOCK_BYTES;

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Q2KPanel {
            ql: [0; SUB * 128],
            sc: [0; SUB * 2 * PANEL],
            d: rows.map(|b| f16::from_le_bytes([b[80], b[81]])),
            dmin: rows.map(|b| f16::from_le_bytes([b[82], b[83]])),
        };
        for (c, b) in rows.iter().enumerate() {
            for j in 0..SUB {
                pack_crumbs(&mut p.ql, c, j, |v| gguf_crumb(&b[16..80], 32 * j + v));
                for h in 0..2 {
                    p.sc[32 * j + 16 * h + c] = b[gguf_scale_index(32 * j + 16 * h)];
                }
            }
        }
        p
    }

    fn dequantize_lane(&self, c: usize, block: usize) -> [f32; QK] {
        dequantize_lane(self, c, block)
    }

    forward_kernels!(dot_scalar, q2_k_simd);
}
