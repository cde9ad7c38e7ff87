//! What the 4- and 5-bit panel types without a kernel of their own share (Q4_0, Q5_0, Q5_1,
//! IQ4_NL):
//! the layout of their quants in a panel, reading one back, and the portable dot product the
//! SIMD kernels (`nibbles_simd`) reproduce bit for bit. Q4_1, the default model's type, keeps
//! its own hand-tuned kernels (`q4_1_simd`).
//!
//! Layout (as Q4_1's): byte `64k + 4c + b` of `qs` holds inputs `4k + b` (low nibble) and
//! `16 + 4k + b` (high nibble) of row `c`, so row `c` sits in 32-bit lane `c` of each 64-byte
//! vector. A 5-bit type adds each quant's fifth bit in `qh`, as bit masks over those 64 bytes:
//! bit `4c + b` of `qh[k]` belongs to the low nibble of byte `64k + 4c + b`, of `qh[4 + k]` to its
//! high nibble, so a kernel turns a mask into 16s added to exactly the bytes it unpacked.

use half::f16;

use super::act_blocks::{ActBlock, QK};
use super::panels::PANEL;

/// ggml's IQ4 grid (`kvalues_iq4nl`): the value, in units of the block scale, that each 4-bit
/// index of IQ4_NL and IQ4_XS stands for. Spaced closer near zero, where weights cluster.
pub(crate) const IQ4_GRID: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// Quant `q`'s level: its grid value for a type on the IQ4 grid, else `q` itself.
#[inline(always)]
pub(super) fn level(q: i32, grid: bool) -> i32 {
    if grid {
        i32::from(IQ4_GRID[q as usize])
    } else {
        q
    }
}

/// A panel of 4- or 5-bit quants. `value = d · (q − OFFSET)`, with a min `value = d · q + m`,
/// or on the IQ4 grid `value = d · IQ4_GRID[q]`.
pub(crate) trait NibblePanel {
    /// Subtracted from every quant (8 for 4 bits, 16 for 5); 0 for the types with a min or a
    /// grid.
    const OFFSET: i32;
    /// Whether the quants index `IQ4_GRID`.
    const GRID: bool = false;
    fn qs(&self) -> &[u8; 4 * 64];
    /// The fifth bits, for a 5-bit type.
    fn qh(&self) -> Option<&[u64; 8]>;
    fn d(&self) -> &[f16; PANEL];
    /// Per row, for a type with a min.
    fn m(&self) -> Option<&[f16; PANEL]>;
}

/// Interleaves the low and high nibbles of 16 rows' quants (each row's 16 bytes as GGUF
/// stores them) into `qs`.
pub(super) fn pack_nibbles(qs: &mut [u8; 4 * 64], rows: [&[u8]; PANEL]) {
    for (c, q) in rows.iter().enumerate() {
        for k in 0..4 {
            qs[64 * k + 4 * c..64 * k + 4 * c + 4].copy_from_slice(&q[4 * k..4 * k + 4]);
        }
    }
}

/// Moves 16 rows' fifth bits (each row's GGUF `qh`, bit `j` for quant `j`) into the masks.
pub(super) fn pack_fifth_bits(qh: &mut [u64; 8], rows: [u32; PANEL]) {
    for (c, bits) in rows.iter().enumerate() {
        for k in 0..4 {
            for b in 0..4 {
                let at = 4 * c + b;
                qh[k] |= u64::from((bits >> (4 * k + b)) & 1) << at;
                qh[4 + k] |= u64::from((bits >> (16 + 4 * k + b)) & 1) << at;
            }
        }
    }
}

/// Level `j` (0..32) of row `c`: the quant, fifth bit included, or its grid value.
#[inline(always)]
fn quant<P: NibblePanel>(p: &P, c: usize, j: usize) -> i32 {
    let (k, b) = ((j % 16) / 4, j % 4);
    let byte = p.qs()[64 * k + 4 * c + b];
    let low = if j < 16 { byte & 0x0F } else { byte >> 4 };
    let high = p.qh().map_or(0, |qh| {
        let mask = qh[if j < 16 { k } else { 4 + k }];
        ((mask >> (4 * c + b)) & 1) as u8
    });
    level(i32::from(low | high << 4), P::GRID)
}

/// The 32 values row `c` holds, as the gguf package dequantizes them (`d · (q − offset)`,
/// `d · q + m` unfused, or `d · grid[q]`).
pub(super) fn dequantize_lane<P: NibblePanel>(p: &P, c: usize) -> [f32; QK] {
    let d = p.d()[c].to_f32();
    std::array::from_fn(|j| {
        let q = quant(p, c, j);
        match p.m() {
            Some(m) => q as f32 * d + m[c].to_f32(),
            None => (q - P::OFFSET) as f32 * d,
        }
    })
}

/// Per block and lane: the exact integer `Σ (q_w − offset)·q_a` (the grid value for `q_w` on
/// the IQ4 grid), then
/// `acc = f32(sum) · (d_w·d_a) + acc`, and with a min `acc = m_w · s_a + acc`, all fused
/// multiply-adds, in that order: what ggml computes per block, and what the SIMD kernels do.
pub(super) fn dot_scalar<P: NibblePanel, const R: usize>(
    panels: &[P],
    acts: [&[ActBlock]; R],
) -> [[f32; PANEL]; R] {
    let mut out = [[0f32; PANEL]; R];
    for (i, p) in panels.iter().enumerate() {
        for (acc_row, a) in out.iter_mut().zip(acts.iter().map(|row| &row[i])) {
            for (c, acc) in acc_row.iter_mut().enumerate() {
                let offset = if p.m().is_some() { 0 } else { P::OFFSET };
                let isum: i32 = (0..QK)
                    .map(|j| (quant(p, c, j) - offset) * i32::from(a.qs[j]))
                    .sum();
                *acc = (isum as f32).mul_add(p.d()[c].to_f32() * a.d, *acc);
                if let Some(m) = p.m() {
                    *acc = m[c].to_f32().mul_add(a.s, *acc);
                }
            }
        }
    }
    out
}

/// The `PanelBlock` methods every nibble type implements through this module and
/// `nibbles_simd`, for the inside of its `impl PanelBlock`.
macro_rules! panel_kernels {
    () => {
        fn dequantize_lane(&self, c: usize, _block: usize) -> [f32; QK] {
            super::nibbles::dequantize_lane(self, c)
        }

        super::panels::forward_kernels!(super::nibbles::dot_scalar, nibbles_simd);
    };
}
pub(super) use panel_kernels;
