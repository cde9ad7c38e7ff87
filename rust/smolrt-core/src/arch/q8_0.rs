//! Q8_0 weights (the tied embedding / output table of the default SmolLM2 file, 28 of the ~98 MB
//! read per token). candle routes Q8_0 on AVX-512 CPUs through a repacked copy of the table with
//! activations quantized per 256 values; this kernel quantizes them per 32 like ggml's Q8_0, which
//! keeps llama.cpp's numerics and needs no second copy of the weights.

use half::f16;

use super::act_blocks::{ActBlock, QK};
use super::qmatrix::{QMatrix, WeightBlock};
use super::simd::simd_or_scalar;

pub(crate) type Q8_0Matrix = QMatrix<Q8_0Block>;

/// One weight block: value[j] = d · q[j], q in -128..=127.
#[derive(Clone, Copy)]
pub(crate) struct Q8_0Block {
    d: f16,
    qs: [i8; QK],
}

impl WeightBlock for Q8_0Block {
    /// f16 scale, 32 signed bytes.
    const BYTES: usize = 34;
    const NAME: &'static str = "Q8_0";

    fn parse(b: &[u8]) -> Self {
        let mut qs = [0i8; QK];
        for (q, &byte) in qs.iter_mut().zip(&b[2..34]) {
            *q = byte as i8;
        }
        Q8_0Block {
            d: f16::from_le_bytes([b[0], b[1]]),
            qs,
        }
    }

    fn dequantize(&self, out: &mut [f32; QK]) {
        let d = self.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = q as f32 * d;
        }
    }

    #[inline]
    fn dot_cols<const N: usize>(w: [&[Self]; N], a: &[ActBlock]) -> [f32; N] {
        simd_or_scalar!(avx2::dot_cols(w, a), w.map(|w| dot_scalar(w, a)))
    }

    #[inline]
    fn dot_rows<const N: usize>(w: &[Self], a: [&[ActBlock]; N]) -> [f32; N] {
        simd_or_scalar!(avx2::dot_rows(w, a), a.map(|a| dot_scalar(w, a)))
    }
}

/// Σ over blocks of d_w·d_a·Σ q_w·q_a: the portable kernel and the SIMD kernels' reference.
// Unused on AVX2 builds outside the tests.
#[cfg_attr(
    all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        not(test)
    ),
    allow(dead_code)
)]
pub(crate) fn dot_scalar(w: &[Q8_0Block], a: &[ActBlock]) -> f32 {
    let mut sum = 0f32;
    for (wb, ab) in w.iter().zip(a) {
        let sumi: i32 = wb
            .qs
            .iter()
            .zip(&ab.qs)
            .map(|(&x, &y)| x as i32 * y as i32)
            .sum();
        sum += wb.d.to_f32() * ab.d * sumi as f32;
    }
    sum
}

// SAFETY (whole module): it is only compiled when the build enables avx2 and fma, so every
// intrinsic is available; all loads are unaligned loads from in-bounds fixed-size arrays.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod avx2 {
    use super::{ActBlock, Q8_0Block};
    use crate::arch::simd::{hsum, load_act, sum_i8_pairs};
    use std::arch::x86_64::*;

    /// maddubs multiplies unsigned by signed bytes, so the weight's sign moves onto the
    /// activation: |w| ≤ 128 fits u8, and activations are never -128, so a·sign(w) stays in i8
    /// and each pair sum is at most 2·128·127 < 2^15.
    #[inline(always)]
    unsafe fn block_dot(qw: __m256i, qa: __m256i) -> __m256 {
        sum_i8_pairs(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qa, qw))
    }

    #[inline(always)]
    unsafe fn load(wb: &Q8_0Block) -> __m256i {
        _mm256_loadu_si256(wb.qs.as_ptr() as *const __m256i)
    }

    #[inline]
    pub(super) fn dot_cols<const N: usize>(w: [&[Q8_0Block]; N], a: &[ActBlock]) -> [f32; N] {
        unsafe {
            let mut acc = [_mm256_setzero_ps(); N];
            for (i, ab) in a.iter().enumerate() {
                let qa = load_act(ab);
                for c in 0..N {
                    let wb = &w[c][i];
                    let scale = _mm256_set1_ps(wb.d.to_f32() * ab.d);
                    acc[c] = _mm256_fmadd_ps(scale, block_dot(load(wb), qa), acc[c]);
                }
            }
            std::array::from_fn(|c| hsum(acc[c]))
        }
    }

    #[inline]
    pub(super) fn dot_rows<const N: usize>(w: &[Q8_0Block], a: [&[ActBlock]; N]) -> [f32; N] {
        unsafe {
            let mut acc = [_mm256_setzero_ps(); N];
            for (i, wb) in w.iter().enumerate() {
                let (qw, d) = (load(wb), wb.d.to_f32());
                for r in 0..N {
                    let ab = &a[r][i];
                    let scale = _mm256_set1_ps(d * ab.d);
                    acc[r] = _mm256_fmadd_ps(scale, block_dot(qw, load_act(ab)), acc[r]);
                }
            }
            std::array::from_fn(|r| hsum(acc[r]))
        }
    }
}
