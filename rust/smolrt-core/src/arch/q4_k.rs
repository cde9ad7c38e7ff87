//! Q4_K weights, the main type of llama.cpp's Q4_K_M files (SmolLM3-3B's published one), and
//! what Q5_K (`q5_k`) shares with them: super-blocks of 256 values, each eight blocks of 32 with
//! a 6-bit scale and a 6-bit min, `value = (d · sc) · q − (dmin · m)`. candle's kernels decoded a
//! Q4_K_M file at 0.79x llama.cpp; these are our panel kernels. A panel is one super-block of 16
//! rows: each 32-value block's nibbles laid out as Q4_1's (see `nibbles`; a 5-bit type adds its
//! fifth bits as `nibbles` lays them out per block), so it is the same integer dot product, with
//! block scale `d · sc` and min `dmin · m` computed in f32 (exactly: 11 by 6 bits) per block from
//! the scales kept as bytes, which keeps the panel at the GGUF byte count plus 2-3%.
//! Activations are ggml's Q8_K (one scale per 256 values), as llama.cpp pairs them with Q4_K.
//! Our Q8 blocks of 32 are finer, but their min term goes through an f16 `s`, and this type's
//! blocks can carry mins that nearly cancel the scaled quants: on the SmolLM3 test's Q4_K_M
//! file the logits strayed from llama.cpp's by up to 1.08 (rms 0.26; the test allows 1.0 and
//! 0.2), with Q8_K by 0.42 (rms 0.07; candle's path: 0.55, 0.08).

use half::f16;

use super::act_blocks::{ActBlock, QK, QK_K};
use super::nibbles::{level, pack_nibbles};
use super::panels::{forward_kernels, PanelBlock, PanelMatrix, PANEL};

pub(crate) type Q4KMatrix = PanelMatrix<Q4KPanel>;

/// Blocks of 32 per super-block.
pub(super) const SUB: usize = QK_K / QK;

/// GGUF's block: d, dmin (f16), 12 bytes of packed 6-bit scales and mins, 128 bytes of nibbles.
pub(crate) const BLOCK_BYTES: usize = 144;

/// A super-block panel with a 6-bit scale per block (Q4_K, Q5_K, IQ4_XS) and for the K-quants
/// a 6-bit min: block `j`'s nibbles at `qs()[256j..]` as `nibbles` lays them out, its fifth bits
/// (5-bit types) at `qh()[8j..8j + 8]` as `nibbles::pack_fifth_bits` writes them, its scales per
/// row at `sc()[16j + c]` (IQ4_XS's signed, as i8), its mins at `mins().0[16j + c]`.
pub(crate) trait ScaleMinPanel {
    /// Whether the quants index `nibbles::IQ4_GRID` (IQ4_XS).
    const GRID: bool = false;
    /// Whether the scale bytes are i8 (IQ4_XS's −32..=31) rather than u8.
    const SIGNED_SCALES: bool = false;
    fn qs(&self) -> &[u8; SUB * 256];
    fn qh(&self) -> Option<&[u64; SUB * 8]>;
    fn sc(&self) -> &[u8; SUB * PANEL];
    fn d(&self) -> &[f16; PANEL];
    /// The mins and their scale `dmin`, for the K-quants.
    fn mins(&self) -> Option<(&[u8; SUB * PANEL], &[f16; PANEL])>;
}

/// Super-block `i` of 16 Q4_K rows (see `ScaleMinPanel`).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(crate) struct Q4KPanel {
    qs: [u8; SUB * 256],
    sc: [u8; SUB * PANEL],
    m: [u8; SUB * PANEL],
    d: [f16; PANEL],
    dmin: [f16; PANEL],
}

impl ScaleMinPanel for Q4KPanel {
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
        Some((&self.m, &self.dmin))
    }
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

/// What Q4_K and Q5_K blocks share, packed: each row's d and dmin (at bytes 0 and 2), the
/// scales and mins (12 bytes from 4), and the low nibbles (`qs_at`: 128 bytes, a 64-value chunk
/// per 32 bytes, its first block in the low nibbles, its second in the high ones).
pub(super) fn pack_scale_min(
    rows: [&[u8]; PANEL],
    qs_at: usize,
    qs: &mut [u8; SUB * 256],
    sc: &mut [u8; SUB * PANEL],
    m: &mut [u8; SUB * PANEL],
) {
    for j in 0..SUB {
        // block j's 32 quants in Q4_1's byte order: byte v holds quants v and v + 16
        let blocks = rows.map(|b| {
            let at = |v: usize| {
                let byte = b[qs_at + 32 * (j / 2) + v];
                if j % 2 == 0 {
                    byte & 0x0F
                } else {
                    byte >> 4
                }
            };
            std::array::from_fn::<u8, 16, _>(|v| at(v) | at(v + 16) << 4)
        });
        let mut block = [0u8; 256];
        pack_nibbles(&mut block, std::array::from_fn(|c| &blocks[c][..]));
        qs[256 * j..256 * (j + 1)].copy_from_slice(&block);
        for (c, b) in rows.iter().enumerate() {
            (sc[PANEL * j + c], m[PANEL * j + c]) = scale_min(&b[4..16], j);
        }
    }
}

/// Block `j`'s scale and min of row `c`, in f32: `d · sc` and `dmin · m` (no min on the grid).
#[inline(always)]
fn scales<P: ScaleMinPanel>(p: &P, c: usize, j: usize) -> (f32, Option<f32>) {
    let at = PANEL * j + c;
    let sc = p.sc()[at];
    let sc = if P::SIGNED_SCALES {
        f32::from(sc as i8)
    } else {
        f32::from(sc)
    };
    let min = p
        .mins()
        .map(|(m, dmin)| dmin[c].to_f32() * f32::from(m[at]));
    (p.d()[c].to_f32() * sc, min)
}

/// Level `v` (0..32) of block `j`, row `c`: the quant, fifth bit included, or its grid value.
#[inline(always)]
fn quant<P: ScaleMinPanel>(p: &P, c: usize, j: usize, v: usize) -> i32 {
    let (k, b) = ((v % 16) / 4, v % 4);
    let byte = p.qs()[256 * j + 64 * k + 4 * c + b];
    let low = if v < 16 { byte & 0x0F } else { byte >> 4 };
    let high = p.qh().map_or(0, |qh| {
        let mask = qh[8 * j + if v < 16 { k } else { 4 + k }];
        ((mask >> (4 * c + b)) & 1) as u8
    });
    level(i32::from(low | high << 4), P::GRID)
}

/// As the gguf package dequantizes: `(d · sc) · q − (dmin · m)` unfused, or on the grid
/// `(d · sc) · grid[q]`.
pub(super) fn dequantize_lane<P: ScaleMinPanel>(p: &P, c: usize, block: usize) -> [f32; QK] {
    let (d, m) = scales(p, c, block);
    std::array::from_fn(|v| {
        let scaled = d * quant(p, c, block, v) as f32;
        m.map_or(scaled, |m| scaled - m)
    })
}

impl PanelBlock for Q4KPanel {
    const NAME: &'static str = "Q4_K";
    type Act = ActBlock;
    const BLOCKS: usize = SUB;
    const BYTES: usize = BLOCK_BYTES;

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Q4KPanel {
            qs: [0; SUB * 256],
            sc: [0; SUB * PANEL],
            m: [0; SUB * PANEL],
            d: rows.map(|b| f16::from_le_bytes([b[0], b[1]])),
            dmin: rows.map(|b| f16::from_le_bytes([b[2], b[3]])),
        };
        pack_scale_min(rows, 16, &mut p.qs, &mut p.sc, &mut p.m);
        p
    }

    fn dequantize_lane(&self, c: usize, block: usize) -> [f32; QK] {
        dequantize_lane(self, c, block)
    }

    forward_kernels!(dot_scalar, q4_k_simd);
}

/// Per super-block and lane: for each 32-value block the exact integer `Σ q_w·q_a` (the grid
/// value for `q_w` on the grid), `t = f32(sum) · (d·sc) + t` and, with mins,
/// `t = −(dmin·m) · Σ q_a + t`; then `acc = t · d_a + acc`, fused multiply-adds in that order.
/// A Q8_K row has one scale `d_a` for the super-block's blocks, so it multiplies once per
/// super-block (as ggml's), and a block's min term still cancels its scaled quants inside `t`
/// right away. The SIMD kernels do exactly this per lane.
pub(super) fn dot_scalar<P: ScaleMinPanel, const R: usize>(
    panels: &[P],
    acts: [&[ActBlock]; R],
) -> [[f32; PANEL]; R] {
    let mut out = [[0f32; PANEL]; R];
    for (i, p) in panels.iter().enumerate() {
        for (acc_row, row) in out.iter_mut().zip(acts.iter()) {
            let blocks = &row[SUB * i..SUB * (i + 1)];
            for (c, acc) in acc_row.iter_mut().enumerate() {
                let mut t = 0f32;
                for (j, a) in blocks.iter().enumerate() {
                    let isum: i32 = (0..QK)
                        .map(|v| quant(p, c, j, v) * i32::from(a.qs[v]))
                        .sum();
                    let (d, m) = scales(p, c, j);
                    t = (isum as f32).mul_add(d, t);
                    if let Some(m) = m {
                        // a Q8_K block's `s` is its integer sum (see `quantize_row_k_into`)
                        t = (-m).mul_add(a.s, t);
                    }
                }
                *acc = t.mul_add(blocks[0].d, *acc);
            }
        }
    }
    out
}
