//! Row-wise elementwise kernels of the llama block, as plain loops over f32 slices: they are
//! memory-bound and tiny next to the matmuls, and loops avoid the allocation and dispatch cost
//! of many small tensor ops. Where llama.cpp fixes an evaluation order that changes rounding
//! (rms norm sum in f64, rope angles by repeated multiplication), it is followed on purpose.

use super::isa::{isa, Isa};
use super::lanes::{exp_lane, Lanes, Lanes16, LANES};
use super::pool::for_each_row;
use crate::kv::KvElement;

/// `out = x / sqrt(mean(x²) + eps) * weight`. The sum of squares is accumulated in f64 and the
/// scale applied before the weight, as ggml's rms_norm followed by a mul does. The sum runs in
/// eight interleaved chains (element i in chain i mod 8) added in a fixed tree: one chain is a
/// serial f64 add per element, which at eight batched rows made the norms 3% of a decode step.
pub(crate) fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let mut chains = [0f64; 8];
    let mut eights = x.chunks_exact(8);
    for c in &mut eights {
        for (acc, &v) in chains.iter_mut().zip(c) {
            *acc += (v as f64) * (v as f64);
        }
    }
    for (acc, &v) in chains.iter_mut().zip(eights.remainder()) {
        *acc += (v as f64) * (v as f64);
    }
    let [a, b, c, d, e, f, g, h] = chains;
    let sum = ((a + e) + (c + g)) + ((b + f) + (d + h));
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = (v * scale) * w;
    }
}

/// Applies `rms_norm` to each `width`-long row of `x` into the matching row of `out`, the rows
/// spread over the pool.
pub(crate) fn rms_norm_rows(x: &[f32], weight: &[f32], eps: f32, width: usize, out: &mut [f32]) {
    for_each_row(out, width, |r, row| {
        rms_norm(&x[r * width..(r + 1) * width], weight, eps, row)
    });
}

/// Fills `out` (rope_dim / 2 entries) with (cos θᵢ, sin θᵢ), θᵢ = pos · base^(-2i/rope_dim).
/// The angle is built by repeated multiplication with `theta_scale` like ggml's rope cache, so
/// positions far into the context round the same way llama.cpp does.
pub(crate) fn rope_angles(pos: usize, theta_scale: f32, out: &mut [(f32, f32)]) {
    let mut theta = pos as f32;
    for cs in out.iter_mut() {
        *cs = (theta.cos(), theta.sin());
        theta *= theta_scale;
    }
}

/// Rotates each head of `x` (heads of `head_dim` values) by `angles`, pairing ADJACENT values
/// (x[2i], x[2i+1]): GGUF llama-family q/k weights are permuted at conversion so this "normal"
/// mode matches the original rotate-half model. Values past 2·angles.len() are left untouched.
pub(crate) fn rope_heads(x: &mut [f32], head_dim: usize, angles: &[(f32, f32)]) {
    for head in x.chunks_exact_mut(head_dim) {
        for (pair, &(cos, sin)) in head.chunks_exact_mut(2).zip(angles) {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos - b * sin;
            pair[1] = a * sin + b * cos;
        }
    }
}

/// `out[i] = silu(gate[i]) * up[i]`, silu(g) = g · σ(g), with σ(g) = m / (m + n) for
/// m = e^min(g, 0), n = e^min(-g, 0): both exponents are non-positive (never overflow), and it
/// equals 1 / (1 + e^-g) for g ≥ 0 and e^g / (e^g + 1) below, with no branch. Sixteen lanes at a
/// time with the attention softmax's polynomial exp (AVX-512 where the CPU has it), the tail
/// by the same steps in scalar code, so every element gets the same bits on every path.
pub(crate) fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa() == Isa::Avx512Vnni {
        // SAFETY: isa() reported AVX-512 on this CPU.
        unsafe { silu_mul_avx512(gate, up, out) };
        return;
    }
    silu_mul_lanes::<Lanes16>(gate, up, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
unsafe fn silu_mul_avx512(gate: &[f32], up: &[f32], out: &mut [f32]) {
    silu_mul_lanes::<super::lanes512::Lanes512>(gate, up, out);
}

#[inline(always)]
fn silu_mul_lanes<L: Lanes>(gate: &[f32], up: &[f32], out: &mut [f32]) {
    let n = out.len().min(gate.len()).min(up.len());
    let whole = n - n % LANES;
    let zero = L::zero();
    for i in (0..whole).step_by(LANES) {
        let g = L::load(&gate[i..]);
        let m = g.sub(g.max(zero)).exp_nonpositive();
        let neg = zero.sub(g);
        let e = neg.sub(neg.max(zero)).exp_nonpositive();
        let silu = g.mul(m.div(m.add(e)));
        let y = silu.mul(L::load(&up[i..]));
        out[i..i + LANES].copy_from_slice(&y.to_array());
    }
    for i in whole..n {
        let g = gate[i];
        let m = exp_lane(g - g.max(0.0));
        let e = exp_lane(-g - (-g).max(0.0));
        out[i] = (g * (m / (m + e))) * up[i];
    }
}

/// `dst = src[..dst.len()]`, `dst` at most `N` long: the whole array as one fixed-size copy
/// (inline vector stores), a shorter `dst` out of line. Inlined together, the compiler merged
/// both into one memcpy call of run-time length, paid per matmul tile row (2% of an eight-row
/// decode step) and per attention score chunk (with a `vzeroupper` each).
#[inline(always)]
pub(crate) fn copy_prefix<const N: usize>(src: &[f32; N], dst: &mut [f32]) {
    if let Ok(whole) = <&mut [f32; N]>::try_from(&mut *dst) {
        *whole = *src;
    } else {
        copy_part(src, dst);
    }
}

#[cold]
#[inline(never)]
fn copy_part<const N: usize>(src: &[f32; N], dst: &mut [f32]) {
    dst.copy_from_slice(&src[..dst.len()]);
}

/// `acc = w · x + acc`, elementwise, one fused multiply-add each.
#[inline]
pub(crate) fn axpy<E: KvElement>(acc: &mut [f32], w: f32, x: &[E]) {
    for (a, &v) in acc.iter_mut().zip(x) {
        *a = w.mul_add(v.to_f32(), *a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_unit_weight_gives_unit_rms() {
        let x = [1.0f32, -2.0, 3.0, -4.0];
        let mut out = [0f32; 4];
        rms_norm(&x, &[1.0; 4], 0.0, &mut out);
        let rms = (out.iter().map(|v| v * v).sum::<f32>() / 4.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-6, "rms {rms}");
        assert!(out[0] > 0.0 && out[1] < 0.0);
        let mut weighted = [0f32; 4];
        rms_norm(&x, &[2.0, 0.0, 1.0, 1.0], 0.0, &mut weighted);
        assert_eq!(weighted[0], 2.0 * out[0]);
        assert_eq!(weighted[1], 0.0);
    }

    #[test]
    fn rope_rotates_adjacent_pairs_and_keeps_norm() {
        // head_dim 4, rope on both pairs; position 1 with scale 0.5 -> angles 1 and 0.5
        let mut angles = [(0f32, 0f32); 2];
        rope_angles(1, 0.5, &mut angles);
        assert!((angles[0].0 - 1f32.cos()).abs() < 1e-7);
        assert!((angles[1].1 - 0.5f32.sin()).abs() < 1e-7);
        let mut x = [1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0];
        rope_heads(&mut x, 4, &angles);
        // (1, 0) rotated by 1 rad; (0, 1) rotated by 0.5 rad; same for the second head
        assert!((x[0] - 1f32.cos()).abs() < 1e-6 && (x[1] - 1f32.sin()).abs() < 1e-6);
        assert!((x[2] + 0.5f32.sin()).abs() < 1e-6 && (x[3] - 0.5f32.cos()).abs() < 1e-6);
        assert_eq!(&x[..4], &x[4..]);
        // partial rope: only the first pair rotates
        let mut y = [1.0f32, 0.0, 5.0, 7.0];
        rope_heads(&mut y, 4, &angles[..1]);
        assert_eq!(&y[2..], &[5.0, 7.0]);
        // position 0 is the identity
        rope_angles(0, 0.5, &mut angles);
        let mut z = [0.3f32, -0.7, 0.1, 0.9];
        let before = z;
        rope_heads(&mut z, 4, &angles);
        assert_eq!(z, before);
    }

    /// The 16-lane paths (AVX-512 when the CPU has it, and `Lanes16`) give each element the
    /// bits the scalar tail gives it alone, and all are close to the f64 formula.
    #[test]
    fn silu_mul_lanes_agree_with_the_scalar_steps() {
        let mut seed = 0x2545_f491_u32;
        let mut gate: Vec<f32> = (0..16 * 4 + 5)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed as f32 / u32::MAX as f32 - 0.5) * 60.0
            })
            .collect();
        gate[..10].copy_from_slice(&[
            0.0, -0.0, 100.0, -100.0, 1e-8, -1e-8, 88.0, -88.0, 87.5, -87.5,
        ]);
        let up: Vec<f32> = gate.iter().map(|g| 1.5 - g * 0.01).collect();
        let alone: Vec<f32> = (0..gate.len())
            .map(|i| {
                let mut o = [0f32];
                silu_mul(&gate[i..i + 1], &up[i..i + 1], &mut o);
                o[0]
            })
            .collect();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut out = vec![0f32; gate.len()];
        silu_mul(&gate, &up, &mut out);
        assert_eq!(bits(&out), bits(&alone));
        silu_mul_lanes::<Lanes16>(&gate, &up, &mut out);
        assert_eq!(bits(&out), bits(&alone));
        for ((&g, &u), &got) in gate.iter().zip(&up).zip(&out) {
            let want = g as f64 / (1.0 + (-g as f64).exp()) * u as f64;
            assert!(
                (got as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{g}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn silu_mul_and_axpy_match_direct_formulas() {
        let mut out = [0f32; 3];
        silu_mul(&[0.0, 1.0, -2.0], &[5.0, 2.0, 1.0], &mut out);
        assert_eq!(out[0], 0.0);
        let mut far = [0f32; 2];
        silu_mul(&[-100.0, 100.0], &[1.0, 1.0], &mut far);
        assert_eq!(far, [-0.0, 100.0]);
        assert!((out[1] - 2.0 / (1.0 + (-1f32).exp())).abs() < 1e-6);
        assert!((out[2] - (-2.0 / (1.0 + 2f32.exp()))).abs() < 1e-6);
        let mut acc = [1.0f32, 2.0];
        axpy(&mut acc, 0.5, &[4.0f32, -2.0]);
        assert_eq!(acc, [3.0, 1.0]);
    }
}
