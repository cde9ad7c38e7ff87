//! Q8_0 weights (the tied embedding / output table of the default SmolLM2 file, 28 of the ~98 MB
//! read per token). candle routes Q8_0 on AVX-512 CPUs through a repacked copy of the table with
//! activations quantized per 256 values; these kernels quantize them per 32 like ggml's Q8_0,
//! which keeps llama.cpp's numerics, and keep one copy of the table in 16-row panels (see
//! `panels`) from which the embedding rows are read too.

use half::f16;

use super::act_blocks::{ActBlock, QK};
use super::panels::{forward_kernels, PanelBlock, PanelMatrix, PANEL};

pub(crate) type Q8_0Matrix = PanelMatrix<Q8_0Panel>;

/// One row's block as GGUF stores it: value[j] = d · q[j], an f16 scale then 32 signed bytes.
pub(crate) const BLOCK_BYTES: usize = 34;

/// Block `j` of 16 rows. Byte `64k + 4c + b` of `qs` is quant `4k + b` of row `c`, so the 64
/// bytes from `64k` hold inputs 4k..4k+4 of every row, row `c` in 32-bit lane `c`.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(crate) struct Q8_0Panel {
    pub(super) qs: [i8; 8 * 64],
    pub(super) d: [f16; PANEL],
}

impl PanelBlock for Q8_0Panel {
    const NAME: &'static str = "Q8_0";
    type Act = ActBlock;
    const BYTES: usize = BLOCK_BYTES;

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Q8_0Panel {
            qs: [0; 512],
            d: [f16::ZERO; PANEL],
        };
        for (c, b) in rows.iter().enumerate() {
            p.d[c] = f16::from_le_bytes([b[0], b[1]]);
            for k in 0..8 {
                for j in 0..4 {
                    p.qs[64 * k + 4 * c + j] = b[2 + 4 * k + j] as i8;
                }
            }
        }
        p
    }

    fn dequantize_lane(&self, c: usize, _block: usize) -> [f32; QK] {
        let d = self.d[c].to_f32();
        std::array::from_fn(|j| self.qs[64 * (j / 4) + 4 * c + j % 4] as f32 * d)
    }

    forward_kernels!(dot_scalar, q8_0_simd);
}

/// Per block and lane: `acc = f32(Σ q_w·q_a) · (d_w·d_a) + acc`, one fused multiply-add; the
/// SIMD kernels perform exactly this per lane, so all agree bit for bit.
fn dot_scalar<const R: usize>(panels: &[Q8_0Panel], acts: [&[ActBlock]; R]) -> [[f32; PANEL]; R] {
    let mut out = [[0f32; PANEL]; R];
    for (i, p) in panels.iter().enumerate() {
        for (acc_row, a) in out.iter_mut().zip(acts.iter().map(|row| &row[i])) {
            for (c, acc) in acc_row.iter_mut().enumerate() {
                let mut isum = 0i32;
                for k in 0..8 {
                    for b in 0..4 {
                        isum += p.qs[64 * k + 4 * c + b] as i32 * a.qs[4 * k + b] as i32;
                    }
                }
                *acc = (isum as f32).mul_add(p.d[c].to_f32() * a.d, *acc);
            }
        }
    }
    out
}
