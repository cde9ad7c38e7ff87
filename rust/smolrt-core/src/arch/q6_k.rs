//! Q6_K weights: super-blocks of 256 values, 6-bit quants and a signed 8-bit scale per 16
//! values, `value = d · sc · (q − 32)`. llama.cpp's Q4_K_M files keep the output head (the tied
//! embedding) and some attn_v / ffn_down matrices in it, and Q6_K files everything. A panel is
//! one super-block of 16 rows: each 32-value block's low nibbles laid out as Q4_1's (see
//! `nibbles`), the top two bits of its lower and upper 16 values beside them, the scales as
//! bytes: the GGUF byte count exactly. Per block the kernels keep the two halves' integer sums
//! apart, take 32 times the activations' sums back out, weight them by their scales and add:
//! one exact integer per block and row (|·| ≤ 2·16·32·127·128 < 2^25), summed over the
//! super-block (< 2^28), then one fused multiply-add by d·d_a. Activations are ggml's Q8_K, as
//! llama.cpp pairs them.

use half::f16;

use super::act_blocks::{ActBlock, QK};
use super::nibbles::pack_nibbles;
use super::panels::{forward_kernels, PanelBlock, PanelMatrix, PANEL};
use super::q4_k::SUB;

pub(crate) type Q6KMatrix = PanelMatrix<Q6KPanel>;

/// GGUF's block: 128 bytes of low nibbles, 64 of top bits, 16 scales (i8), d (f16).
pub(crate) const BLOCK_BYTES: usize = 210;

/// Super-block `i` of 16 rows. Block `j`'s low nibbles at `qs[256j..]` as `nibbles` lays them
/// out; its top bits at `qh[128j + 64h + 4c + b]` for the nibble bytes `64k + 4c + b` with
/// `k = 2h` (bits 0-1 for the low nibble's value, 2-3 for the high one's) and `k = 2h + 1`
/// (bits 4-7 likewise); its scales per row at `sc[32j + c]` (values 0..16) and
/// `sc[32j + 16 + c]` (16..32).
#[repr(C, align(32))]
#[derive(Clone, Copy)]
pub(crate) struct Q6KPanel {
    pub(super) qs: [u8; SUB * 256],
    pub(super) qh: [u8; SUB * 128],
    pub(super) sc: [u8; SUB * 2 * PANEL],
    pub(super) d: [f16; PANEL],
}

/// Quant `v` (0..256, unsigned 0..64) of one GGUF block, and the index of its scale.
fn gguf_quant(b: &[u8], v: usize) -> (u8, usize) {
    let (ql, qh) = (&b[..128], &b[128..192]);
    let (n, w) = (v / 128, v % 128);
    let (quarter, l) = (w / 32, w % 32);
    let low = ql[64 * n + l + 32 * (quarter % 2)];
    let low = if quarter < 2 { low & 0x0F } else { low >> 4 };
    let high = (qh[32 * n + l] >> (2 * quarter)) & 3;
    (low | high << 4, 8 * n + l / 16 + 2 * quarter)
}

/// A super-block panel with a byte scale per 16 values and unsigned quants taken `OFFSET` down
/// (Q6_K: 6 bits, 32; Q3_K: 3 bits, 4), `value = d · sc · (q − OFFSET)`, or with a min per 16
/// values (Q2_K: 2 bits, no offset) `value = d · sc · q − dmin · m`. The scale bytes per row at
/// `scale_bytes()[32j + c]` (block `j`'s values 0..16) and `[32j + 16 + c]` (16..32) are signed
/// scales, or for a type with mins (`dmin` is some) a 4-bit scale under a 4-bit min, as GGUF
/// packs Q2_K's. One scalar kernel serves them all, and one SIMD kernel over each type's
/// unpacking (`q6_k_simd`).
pub(crate) trait HalfScaledPanel {
    const OFFSET: i32;
    fn scale_bytes(&self) -> &[u8; SUB * 2 * PANEL];
    fn d(&self) -> &[f16; PANEL];
    /// Quant `v` (0..32, unsigned) of block `j`, row `c`.
    fn quant(&self, c: usize, j: usize, v: usize) -> i32;
    /// For a type with mins.
    #[inline(always)]
    fn dmin(&self) -> Option<&[f16; PANEL]> {
        None
    }

    /// The scale of the lower (`half` 0) or upper 16 values of block `j`, row `c`.
    #[inline(always)]
    fn scale(&self, c: usize, j: usize, half: usize) -> i32 {
        let byte = self.scale_bytes()[32 * j + 16 * half + c];
        match self.dmin() {
            Some(_) => i32::from(byte & 0x0F),
            None => i32::from(byte as i8),
        }
    }

    /// Their min, for a type with mins.
    #[inline(always)]
    fn min(&self, c: usize, j: usize, half: usize) -> i32 {
        i32::from(self.scale_bytes()[32 * j + 16 * half + c] >> 4)
    }
}

impl HalfScaledPanel for Q6KPanel {
    const OFFSET: i32 = 32;

    fn scale_bytes(&self) -> &[u8; SUB * 2 * PANEL] {
        &self.sc
    }

    fn d(&self) -> &[f16; PANEL] {
        &self.d
    }

    #[inline(always)]
    fn quant(&self, c: usize, j: usize, v: usize) -> i32 {
        let (k, b) = ((v % 16) / 4, v % 4);
        let byte = self.qs[256 * j + 64 * k + 4 * c + b];
        let low = if v < 16 { byte & 0x0F } else { byte >> 4 };
        let bits = self.qh[128 * j + 64 * (k / 2) + 4 * c + b] >> (4 * (k % 2));
        let high = if v < 16 { bits & 3 } else { (bits >> 2) & 3 };
        i32::from(low | high << 4)
    }
}

/// As the gguf package dequantizes: `(d · sc) · (q − OFFSET)`, or `(d · sc) · q − dmin · m`,
/// unfused.
pub(super) fn dequantize_lane<P: HalfScaledPanel>(p: &P, c: usize, block: usize) -> [f32; QK] {
    let d = p.d()[c].to_f32();
    std::array::from_fn(|v| {
        let scale = d * p.scale(c, block, v / 16) as f32;
        let value = scale * (p.quant(c, block, v) - P::OFFSET) as f32;
        match p.dmin() {
            Some(dmin) => value - dmin[c].to_f32() * p.min(c, block, v / 16) as f32,
            None => value,
        }
    })
}

impl PanelBlock for Q6KPanel {
    const NAME: &'static str = "Q6_K";
    type Act = ActBlock;
    const BLOCKS: usize = SUB;
    const BYTES: usize = BLOCK_BYTES;

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Q6KPanel {
            qs: [0; SUB * 256],
            qh: [0; SUB * 128],
            sc: [0; SUB * 2 * PANEL],
            d: rows.map(|b| f16::from_le_bytes([b[208], b[209]])),
        };
        for j in 0..SUB {
            let quants = rows
                .map(|b| std::array::from_fn::<(u8, usize), 32, _>(|v| gguf_quant(b, 32 * j + v)));
            let nibbles = quants.map(|q| {
                std::array::from_fn::<u8, 16, _>(|v| (q[v].0 & 0x0F) | (q[v + 16].0 & 0x0F) << 4)
            });
            let mut qs = [0u8; 256];
            pack_nibbles(&mut qs, std::array::from_fn(|c| &nibbles[c][..]));
            p.qs[256 * j..256 * (j + 1)].copy_from_slice(&qs);
            for (c, q) in quants.iter().enumerate() {
                for k in 0..4 {
                    for b in 0..4 {
                        let (lo, hi) = (q[4 * k + b].0 >> 4, q[16 + 4 * k + b].0 >> 4);
                        p.qh[128 * j + 64 * (k / 2) + 4 * c + b] |= (lo | hi << 2) << (4 * (k % 2));
                    }
                }
                let scales = &rows[c][192..208];
                p.sc[32 * j + c] = scales[q[0].1];
                p.sc[32 * j + 16 + c] = scales[q[16].1];
            }
        }
        p
    }

    fn dequantize_lane(&self, c: usize, block: usize) -> [f32; QK] {
        dequantize_lane(self, c, block)
    }

    forward_kernels!(dot_scalar, q6_k_simd);
}

/// Per 32-value block and lane the exact integer
/// `sc_lo · (Σ_lo q_w·q_a − OFFSET·Σ_lo q_a) + sc_hi · (Σ_hi q_w·q_a − OFFSET·Σ_hi q_a)`, summed
/// over the super-block's eight blocks (exact too: |·| < 2^28), then once per super-block
/// `acc = f32(it) · (d_w·d_a) + acc`, a fused multiply-add (Q8_K activations have one `d_a` per
/// 256 values, as the panel one `d_w` per row); with mins likewise the exact
/// `Σ m_lo·Σ_lo q_a + m_hi·Σ_hi q_a` and `acc = f32(that) · −(dmin·d_a) + acc`. The SIMD kernels
/// do exactly this. (A float step per block instead left Q2_K 7-15% slower at 512 rows.)
pub(super) fn dot_scalar<P: HalfScaledPanel, const R: usize>(
    panels: &[P],
    acts: [&[ActBlock]; R],
) -> [[f32; PANEL]; R] {
    let mut out = [[0f32; PANEL]; R];
    for (i, p) in panels.iter().enumerate() {
        for (acc_row, row) in out.iter_mut().zip(acts.iter()) {
            let d_a = row[SUB * i].d;
            for (c, acc) in acc_row.iter_mut().enumerate() {
                let (mut exact, mut mins) = (0i32, 0i32);
                for j in 0..SUB {
                    let a = &row[SUB * i + j];
                    let half = |h: usize| -> i32 {
                        (16 * h..16 * (h + 1))
                            .map(|v| p.quant(c, j, v) * i32::from(a.qs[v]))
                            .sum()
                    };
                    let sums = [a.sum_lo, a.sum - a.sum_lo];
                    for (h, sum) in sums.into_iter().enumerate() {
                        exact += p.scale(c, j, h) * (half(h) - P::OFFSET * sum);
                        if p.dmin().is_some() {
                            mins += p.min(c, j, h) * sum;
                        }
                    }
                }
                *acc = (exact as f32).mul_add(p.d()[c].to_f32() * d_a, *acc);
                if let Some(dmin) = p.dmin() {
                    *acc = (mins as f32).mul_add(-(dmin[c].to_f32() * d_a), *acc);
                }
            }
        }
    }
    out
}
