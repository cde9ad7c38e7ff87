//! Q4_K weights, the main type of llama.cpp's Q4_K_M files (SmolLM3-3B's published one):
//! super-blocks of 256 values, each eight blocks of 32 with a 6-bit scale and a 6-bit min,
//! `value = (d · sc) · q − (dmin · m)`. candle's kernels decoded a Q4_K_M file at 0.79x
//! llama.cpp; these are our panel kernels. A panel is one super-block of 16 rows: each 32-value
//! block's nibbles laid out as Q4_1's (see `nibbles`), so it is the same integer dot product,
//! with block scale `d · sc` and min `dmin · m` computed in f32 (exactly: 11 by 6 bits) per
//! block from the scales kept as bytes, which keeps the panel at the GGUF byte count plus 3%.
//! Activations are ggml's Q8_K (one scale per 256 values), as llama.cpp pairs them with Q4_K.
//! Our Q8 blocks of 32 are finer, but their min term goes through an f16 `s`, and this type's
//! blocks can carry mins that nearly cancel the scaled quants: on the SmolLM3 test's Q4_K_M
//! file the logits strayed from llama.cpp's by up to 1.08 (rms 0.26; the test allows 1.0 and
//! 0.2), with Q8_K by 0.42 (rms 0.07; candle's path: 0.55, 0.08).

use half::f16;

use super::act_blocks::{quantize_row_k_into, ActBlock, QK, QK_K};
use super::nibbles::pack_nibbles;
use super::panels::{forward_kernels, PanelBlock, PanelMatrix, PANEL};

pub(crate) type Q4KMatrix = PanelMatrix<Q4KPanel>;

/// Blocks of 32 per super-block.
pub(super) const SUB: usize = QK_K / QK;

/// GGUF's block: d, dmin (f16), 12 bytes of packed 6-bit scales and mins, 128 bytes of nibbles.
pub(crate) const BLOCK_BYTES: usize = 144;

/// Super-block `i` of 16 rows: block `j`'s nibbles at `qs[256j..]` as `nibbles` lays them out,
/// its scales and mins per row at `sc[16j + c]`, `m[16j + c]`.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(crate) struct Q4KPanel {
    pub(super) qs: [u8; SUB * 256],
    pub(super) sc: [u8; SUB * PANEL],
    pub(super) m: [u8; SUB * PANEL],
    pub(super) d: [f16; PANEL],
    pub(super) dmin: [f16; PANEL],
}

/// Block `j`'s 6-bit scale and min from GGUF's 12 packed bytes.
fn scale_min(scales: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}

impl Q4KPanel {
    /// Block `j`'s scale and min of row `c`, in f32: `d · sc` and `dmin · m`.
    #[inline(always)]
    fn scales(&self, c: usize, j: usize) -> (f32, f32) {
        let at = PANEL * j + c;
        (
            self.d[c].to_f32() * f32::from(self.sc[at]),
            self.dmin[c].to_f32() * f32::from(self.m[at]),
        )
    }

    #[inline(always)]
    fn quant(&self, c: usize, j: usize, v: usize) -> i32 {
        let byte = self.qs[256 * j + 64 * ((v % 16) / 4) + 4 * c + v % 4];
        i32::from(if v < 16 { byte & 0x0F } else { byte >> 4 })
    }
}

impl PanelBlock for Q4KPanel {
    const NAME: &'static str = "Q4_K";
    const BLOCKS: usize = SUB;
    const BYTES: usize = BLOCK_BYTES;

    fn quantize_row(row: &[f32], out: &mut [ActBlock]) {
        quantize_row_k_into(row, out)
    }

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Q4KPanel {
            qs: [0; SUB * 256],
            sc: [0; SUB * PANEL],
            m: [0; SUB * PANEL],
            d: rows.map(|b| f16::from_le_bytes([b[0], b[1]])),
            dmin: rows.map(|b| f16::from_le_bytes([b[2], b[3]])),
        };
        for j in 0..SUB {
            // block j's 32 quants in Q4_1's byte order: byte v holds quants v and v + 16
            let blocks = rows.map(|b| {
                let qs = &b[16..];
                let at = |v: usize| {
                    let byte = qs[32 * (j / 2) + v];
                    if j % 2 == 0 {
                        byte & 0x0F
                    } else {
                        byte >> 4
                    }
                };
                std::array::from_fn::<u8, 16, _>(|v| at(v) | at(v + 16) << 4)
            });
            let mut qs = [0u8; 256];
            pack_nibbles(&mut qs, std::array::from_fn(|c| &blocks[c][..]));
            p.qs[256 * j..256 * (j + 1)].copy_from_slice(&qs);
            for (c, b) in rows.iter().enumerate() {
                let (sc, m) = scale_min(&b[4..16], j);
                p.sc[PANEL * j + c] = sc;
                p.m[PANEL * j + c] = m;
            }
        }
        p
    }

    /// As the gguf package dequantizes: `(d · sc) · q − (dmin · m)`, unfused.
    fn dequantize_lane(&self, c: usize, block: usize) -> [f32; QK] {
        let (d, m) = self.scales(c, block);
        std::array::from_fn(|v| d * self.quant(c, block, v) as f32 - m)
    }

    forward_kernels!(dot_scalar, q4_k_simd);
}

/// Per 32-value block and lane: the exact integer `Σ q_w·q_a`, then
/// `acc = f32(sum) · ((d·sc)·d_a) + acc` and `acc = −(dmin·m) · s_a + acc`, fused multiply-adds,
/// in that order; the SIMD kernels do exactly this per lane.
fn dot_scalar<const R: usize>(panels: &[Q4KPanel], acts: [&[ActBlock]; R]) -> [[f32; PANEL]; R] {
    let mut out = [[0f32; PANEL]; R];
    for (i, p) in panels.iter().enumerate() {
        for j in 0..SUB {
            for (acc_row, row) in out.iter_mut().zip(acts.iter()) {
                let a = &row[SUB * i + j];
                for (c, acc) in acc_row.iter_mut().enumerate() {
                    let isum: i32 = (0..QK).map(|v| p.quant(c, j, v) * i32::from(a.qs[v])).sum();
                    let (d, m) = p.scales(c, j);
                    *acc = (isum as f32).mul_add(d * a.d, *acc);
                    *acc = (-m).mul_add(a.s, *acc);
                }
            }
        }
    }
    out
}
