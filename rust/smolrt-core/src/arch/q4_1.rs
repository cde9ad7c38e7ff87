//! Q4_1 weights (the default SmolLM2 file's 30 layers). candle 0.11 only has a generic scalar dot
//! product for Q4_1 (over 90% of decode time went there), so this type has its own kernels:
//! activations in Q8_1 blocks as ggml pairs them, weights repacked into 16-row panels at load
//! (see `panels`), and integer block dot products in AVX-512 VNNI, AVX2 or portable Rust.

use half::f16;

use super::act_blocks::{ActBlock, QK};
use super::panels::{forward_kernels, PanelBlock, PanelMatrix, PANEL};

pub(crate) type Q4_1Matrix = PanelMatrix<Q4_1Panel>;

/// One row's block as GGUF stores it: value[j] = d · q[j] + m, q in 0..16; byte j holds q[j] in
/// its low nibble and q[j + 16] in its high nibble.
pub(crate) const BLOCK_BYTES: usize = 20;

/// Block `j` of 16 rows. Byte `64k + 4c + b` of `qs` is byte `4k + b` of row `c`'s packed quants,
/// so the 64 bytes from `64k` hold inputs 4k..4k+4 (low nibbles) and 16+4k..16+4k+4 (high
/// nibbles) of every row, row `c` in 32-bit lane `c`.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(crate) struct Q4_1Panel {
    pub(super) qs: [u8; 4 * 64],
    pub(super) d: [f16; PANEL],
    pub(super) m: [f16; PANEL],
}

/// `value[j]` of one GGUF block: the tests compare it with the gguf package's dequantizer.
#[cfg(test)]
pub(crate) fn dequantize_block(b: &[u8; BLOCK_BYTES]) -> [f32; QK] {
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    let m = f16::from_le_bytes([b[2], b[3]]).to_f32();
    let mut out = [0f32; QK];
    for (j, &q) in b[4..].iter().enumerate() {
        out[j] = (q & 0x0F) as f32 * d + m;
        out[j + 16] = (q >> 4) as f32 * d + m;
    }
    out
}

impl PanelBlock for Q4_1Panel {
    const NAME: &'static str = "Q4_1";
    type Act = ActBlock;
    const BYTES: usize = BLOCK_BYTES;

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Q4_1Panel {
            qs: [0; 256],
            d: [f16::ZERO; PANEL],
            m: [f16::ZERO; PANEL],
        };
        for (c, b) in rows.iter().enumerate() {
            p.d[c] = f16::from_le_bytes([b[0], b[1]]);
            p.m[c] = f16::from_le_bytes([b[2], b[3]]);
            for k in 0..4 {
                p.qs[64 * k + 4 * c..64 * k + 4 * c + 4].copy_from_slice(&b[4 + 4 * k..8 + 4 * k]);
            }
        }
        p
    }

    fn dequantize_lane(&self, c: usize, _block: usize) -> [f32; QK] {
        let (d, m) = (self.d[c].to_f32(), self.m[c].to_f32());
        std::array::from_fn(|j| {
            let byte = self.qs[64 * ((j % 16) / 4) + 4 * c + j % 4];
            let q = if j < 16 { byte & 0x0F } else { byte >> 4 };
            q as f32 * d + m
        })
    }

    forward_kernels!(dot_scalar, q4_1_simd);
}

/// Per block and lane: `acc = f32(Σ q_w·q_a) · (d_w·d_a) + acc`, then `acc = m_w · s_a + acc`,
/// both fused multiply-adds. The SIMD kernels perform exactly these operations per lane, so all
/// three agree bit for bit.
fn dot_scalar<const R: usize>(panels: &[Q4_1Panel], acts: [&[ActBlock]; R]) -> [[f32; PANEL]; R] {
    let mut out = [[0f32; PANEL]; R];
    for (i, p) in panels.iter().enumerate() {
        for (acc_row, a) in out.iter_mut().zip(acts.iter().map(|row| &row[i])) {
            for (c, acc) in acc_row.iter_mut().enumerate() {
                let mut isum = 0i32;
                for k in 0..4 {
                    for b in 0..4 {
                        let q = p.qs[64 * k + 4 * c + b];
                        isum += (q & 0x0F) as i32 * a.qs[4 * k + b] as i32;
                        isum += (q >> 4) as i32 * a.qs[16 + 4 * k + b] as i32;
                    }
                }
                *acc = (isum as f32).mul_add(p.d[c].to_f32() * a.d, *acc);
                *acc = p.m[c].to_f32().mul_add(a.s, *acc);
            }
        }
    }
    out
}
