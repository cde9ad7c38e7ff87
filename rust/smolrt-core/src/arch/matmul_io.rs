//! What a matmul reads and what it does with each output: the row work on either side of a
//! projection (the rms norm before it, SwiGLU before the down projection, rope after q/k, the
//! residual add after the output projections) runs inside the matmul's own round trip of the
//! thread pool instead of in a round trip of its own.
//!
//! At eight batched rows each of those was a pool section whose start and finish cost more than
//! its work: skipping the four per layer (both norms, rope, SwiGLU; a timing experiment, wrong
//! results) took eight-row decode from 1828 to 1950 tok/s. Done here, their work stays, and the
//! gain is smaller: 1763 → 1790 tok/s, one row 445 → 461, prefill unchanged (forward_speed,
//! interleaved best of 6-8).
//!
//! Every value is computed by the same operations as the standalone kernels (`rms_norm`,
//! `silu_mul`, `rope_heads`, `+=`), so results do not change by a bit.

use std::borrow::Cow;

use super::ops::{copy_prefix, rms_norm, rms_norm_rows, rope_heads, silu_mul};
use super::panels::PANEL;
use super::pool::for_each_row;

/// A matmul's activation rows, `n_in` wide, as computed from a layer's buffers.
#[derive(Clone, Copy)]
pub(crate) enum Input<'a> {
    /// `[rows][n_in]`, used as stored.
    Rows(&'a [f32]),
    /// `rms_norm(x[r]) · weight` per row of `x` (`[rows][n_in]`).
    Normed {
        x: &'a [f32],
        weight: &'a [f32],
        eps: f32,
    },
    /// `silu(gate) · up` per row of `gate_up`, whose rows are `[gate (n_in) | up (n_in)]`.
    SwiGlu { gate_up: &'a [f32] },
}

impl<'a> Input<'a> {
    /// The stored values this input reads, for length checks: `rows * n_in` of them, or twice
    /// that for SwiGLU.
    pub(crate) fn stored_len(&self) -> usize {
        match self {
            Input::Rows(x) | Input::Normed { x, .. } => x.len(),
            Input::SwiGlu { gate_up } => gate_up.len() / 2,
        }
    }

    /// Row `r`: borrowed when it is stored as is, else computed into `scratch`.
    #[inline]
    pub(crate) fn row<'s>(&'s self, r: usize, n_in: usize, scratch: &'s mut Vec<f32>) -> &'s [f32] {
        match *self {
            Input::Rows(x) => &x[r * n_in..(r + 1) * n_in],
            Input::Normed { x, weight, eps } => {
                scratch.resize(n_in, 0.0);
                rms_norm(&x[r * n_in..(r + 1) * n_in], weight, eps, scratch);
                scratch
            }
            Input::SwiGlu { gate_up } => {
                scratch.resize(n_in, 0.0);
                let (gate, up) = gate_up[2 * r * n_in..2 * (r + 1) * n_in].split_at(n_in);
                silu_mul(gate, up, scratch);
                scratch
            }
        }
    }

    /// All `rows` rows as one `[rows][n_in]` matrix, for kernels that take one (candle's).
    pub(crate) fn materialize(&self, rows: usize, n_in: usize) -> Cow<'a, [f32]> {
        match *self {
            Input::Rows(x) => Cow::Borrowed(&x[..rows * n_in]),
            Input::Normed { x, weight, eps } => {
                let mut out = vec![0f32; rows * n_in];
                rms_norm_rows(&x[..rows * n_in], weight, eps, n_in, &mut out);
                Cow::Owned(out)
            }
            Input::SwiGlu { gate_up } => {
                let mut out = vec![0f32; rows * n_in];
                for_each_row(&mut out, n_in, |r, row| {
                    let (gate, up) = gate_up[2 * r * n_in..2 * (r + 1) * n_in].split_at(n_in);
                    silu_mul(gate, up, row);
                });
                Cow::Owned(out)
            }
        }
    }
}

/// What becomes of the products `y = x·Wᵀ` in the output matrix `out` (`[rows][n_out]`).
#[derive(Clone, Copy)]
pub(crate) enum Output<'a> {
    /// `out = y` (`out` is resized to fit).
    Store,
    /// `out = y`, then each row's first `rotated` columns (whole heads of `head_dim`) rotated
    /// as `rope_heads` does, by that row's `n_rot` angles in `angles` (`[rows][n_rot]`).
    Rope {
        angles: &'a [(f32, f32)],
        n_rot: usize,
        head_dim: usize,
        rotated: usize,
    },
    /// `out += y` (a residual connection; `out` already holds `rows * n_out` values).
    Accumulate,
}

impl Output<'_> {
    /// Readies `out` for `rows * n_out` outputs written tile by tile.
    pub(crate) fn prepare(&self, out: &mut Vec<f32>, len: usize) {
        match self {
            Output::Accumulate => assert_eq!(out.len(), len, "accumulating into the wrong shape"),
            _ => out.resize(len, 0.0),
        }
    }

    /// Lands a tile of row `r`'s outputs, columns `c0..c0 + dst.len()` (at most 16), in `dst`
    /// (those columns of the output row) from the first `dst.len()` values of `y`. `c0` is
    /// even, so rope pairs never straddle two tiles.
    #[inline(always)]
    pub(crate) fn tile(&self, r: usize, c0: usize, y: &[f32; PANEL], dst: &mut [f32]) {
        match *self {
            Output::Store => store(y, dst),
            Output::Rope {
                angles,
                n_rot,
                head_dim,
                rotated,
            } => {
                let angles = &angles[r * n_rot..(r + 1) * n_rot];
                let end = dst.len().min(rotated.saturating_sub(c0));
                // Pairs go straight into `dst`. Rotating a copy of the tile and then storing
                // it whole made the wide loads of the copy wait on its scalar stores (perf put
                // a fifth of this function's samples there), and the head offset is stepped,
                // not divided out for every pair.
                let mut at = c0 % head_dim; // column (c0 + j) within its head
                for j in (0..end).step_by(2) {
                    // pair (2i, 2i + 1) of its head, as rope_heads pairs them
                    let (a, b) = (y[j], y[j + 1]);
                    (dst[j], dst[j + 1]) = match angles.get(at / 2) {
                        Some(&(cos, sin)) => (a * cos - b * sin, a * sin + b * cos),
                        None => (a, b),
                    };
                    // head_dim >= 2 where rope runs (an even, non-zero rope_dim fits in it)
                    at += 2;
                    if at >= head_dim {
                        at -= head_dim;
                    }
                }
                let n = dst.len();
                dst[end..].copy_from_slice(&y[end..n]);
            }
            Output::Accumulate => accumulate(y, dst),
        }
    }

    /// Lands a whole product matrix `y` (`[rows][n_out]`) in `out`.
    pub(crate) fn rows(&self, y: Vec<f32>, n_out: usize, out: &mut Vec<f32>) {
        match *self {
            Output::Store => *out = y,
            Output::Rope {
                angles,
                n_rot,
                head_dim,
                rotated,
            } => {
                *out = y;
                for (r, row) in out.chunks_exact_mut(n_out).enumerate() {
                    rope_heads(
                        &mut row[..rotated],
                        head_dim,
                        &angles[r * n_rot..(r + 1) * n_rot],
                    );
                }
            }
            Output::Accumulate => {
                assert_eq!(out.len(), y.len(), "accumulating into the wrong shape");
                for (o, v) in out.iter_mut().zip(y) {
                    *o += v;
                }
            }
        }
    }
}

/// `dst = y[..dst.len()]` (a matrix's last panel may be narrower than 16 outputs).
#[inline(always)]
pub(crate) fn store(y: &[f32; PANEL], dst: &mut [f32]) {
    copy_prefix(y, dst);
}

/// `dst += y[..dst.len()]`.
#[inline(always)]
pub(crate) fn accumulate(y: &[f32; PANEL], dst: &mut [f32]) {
    if let Ok(whole) = <&mut [f32; PANEL]>::try_from(&mut *dst) {
        for (o, &v) in whole.iter_mut().zip(y) {
            *o += v;
        }
    } else {
        for (o, &v) in dst.iter_mut().zip(y) {
            *o += v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Rows computed one at a time equal the materialized matrix, which equals the standalone
    /// kernels' result.
    #[test]
    fn input_rows_match_the_standalone_kernels() {
        let (rows, n) = (3, 40);
        let x: Vec<f32> = (0..rows * 2 * n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        let weight: Vec<f32> = (0..n).map(|i| 0.5 + i as f32 / 64.0).collect();
        let inputs = [
            Input::Rows(&x[..rows * n]),
            Input::Normed {
                x: &x[..rows * n],
                weight: &weight,
                eps: 1e-5,
            },
            Input::SwiGlu { gate_up: &x },
        ];
        for input in inputs {
            assert_eq!(input.stored_len(), rows * n);
            let whole = input.materialize(rows, n);
            let mut scratch = Vec::new();
            for r in 0..rows {
                let mut want = vec![0f32; n];
                match input {
                    Input::Rows(x) => want.copy_from_slice(&x[r * n..(r + 1) * n]),
                    Input::Normed { x, weight, eps } => {
                        rms_norm(&x[r * n..(r + 1) * n], weight, eps, &mut want)
                    }
                    Input::SwiGlu { gate_up } => {
                        let (g, u) = gate_up[2 * r * n..2 * (r + 1) * n].split_at(n);
                        silu_mul(g, u, &mut want);
                    }
                }
                assert_eq!(bits(input.row(r, n, &mut scratch)), bits(&want));
                assert_eq!(bits(&whole[r * n..(r + 1) * n]), bits(&want));
            }
        }
    }

    /// Rope applied tile by tile (16 columns at a time) gives rope_heads' bits, and leaves the
    /// columns past `rotated` alone; accumulate adds.
    #[test]
    fn tiles_match_whole_rows() {
        let (rows, hd, heads, extra) = (2, 8, 3, 16);
        let n_out = hd * heads + extra;
        let n_rot = 3; // fewer angles than pairs: the rest of each head stays as it is
        let angles: Vec<(f32, f32)> = (0..rows * n_rot)
            .map(|i| ((i as f32).cos(), (i as f32).sin()))
            .collect();
        let y: Vec<f32> = (0..rows * n_out).map(|i| (i as f32 * 0.37).sin()).collect();
        let rope = Output::Rope {
            angles: &angles,
            n_rot,
            head_dim: hd,
            rotated: hd * heads,
        };
        for output in [Output::Store, rope, Output::Accumulate] {
            let start: Vec<f32> = (0..rows * n_out).map(|i| i as f32).collect();
            let mut whole = start.clone();
            output.rows(y.clone(), n_out, &mut whole);
            let mut tiled = start.clone();
            output.prepare(&mut tiled, rows * n_out);
            for r in 0..rows {
                for c0 in (0..n_out).step_by(16) {
                    let cols = 16.min(n_out - c0);
                    let mut t = [f32::NAN; PANEL];
                    t[..cols].copy_from_slice(&y[r * n_out + c0..][..cols]);
                    output.tile(r, c0, &t, &mut tiled[r * n_out + c0..][..cols]);
                }
            }
            assert_eq!(bits(&tiled), bits(&whole));
            if let Output::Rope { .. } = output {
                // a rotated pair (pair 1 of head 0, angle 1) changed, an unrotated one (pair 3)
                // and the tail did not
                assert_ne!(whole[2], y[2]);
                assert_eq!(whole[6..8], y[6..8]);
                assert_eq!(whole[hd * heads..n_out], y[hd * heads..n_out]);
            }
            if let Output::Accumulate = output {
                assert_eq!(whole[5], start[5] + y[5]);
            }
        }
    }
}
