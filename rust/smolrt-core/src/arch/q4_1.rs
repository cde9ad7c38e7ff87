//! Q4_1 weights. candle 0.11 only has a generic scalar dot product for Q4_1 (over 90% of decode
//! time on the default SmolLM2 file went there), so this type has its own kernels: activations
//! in Q8_1 blocks as ggml pairs them, integer block dot products with AVX2 where the build
//! enables it, a scalar version otherwise.

use half::f16;

use super::act_blocks::{ActBlock, QK};
use super::qmatrix::{QMatrix, WeightBlock};
use super::simd::simd_or_scalar;

pub(crate) type Q4_1Matrix = QMatrix<Q4_1Block>;

/// One weight block: value[j] = d · q[j] + m, q in 0..16; low nibbles hold j < 16.
#[derive(Clone, Copy)]
pub(crate) struct Q4_1Block {
    d: f16,
    m: f16,
    qs: [u8; 16],
}

impl WeightBlock for Q4_1Block {
    /// f16 scale, f16 min, 16 bytes of packed nibbles.
    const BYTES: usize = 20;
    const NAME: &'static str = "Q4_1";

    fn parse(b: &[u8]) -> Self {
        let mut qs = [0u8; 16];
        qs.copy_from_slice(&b[4..20]);
        Q4_1Block {
            d: f16::from_le_bytes([b[0], b[1]]),
            m: f16::from_le_bytes([b[2], b[3]]),
            qs,
        }
    }

    fn dequantize(&self, out: &mut [f32; QK]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        for (j, &q) in self.qs.iter().enumerate() {
            out[j] = (q & 0x0F) as f32 * d + m;
            out[j + 16] = (q >> 4) as f32 * d + m;
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

/// Σ over blocks of d_w·d_a·Σ q_w·q_a + m_w·s_a: the portable kernel, and the reference the
/// SIMD ones are tested against.
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
pub(crate) fn dot_scalar(w: &[Q4_1Block], a: &[ActBlock]) -> f32 {
    let mut sum = 0f32;
    for (wb, ab) in w.iter().zip(a) {
        let mut sumi = 0i32;
        for j in 0..16 {
            sumi += (wb.qs[j] & 0x0F) as i32 * ab.qs[j] as i32;
            sumi += (wb.qs[j] >> 4) as i32 * ab.qs[j + 16] as i32;
        }
        sum += wb.d.to_f32() * ab.d * sumi as f32 + wb.m.to_f32() * ab.s;
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
    use super::{ActBlock, Q4_1Block};
    use crate::arch::simd::{hsum, load_act, sum_i8_pairs};
    use std::arch::x86_64::*;

    /// The 32 weight quants of a block as u8 lanes: low nibbles (values 0..16) in the low half,
    /// high nibbles (values 16..32) in the high half, matching the activation order.
    #[inline(always)]
    unsafe fn unpack(wb: &Q4_1Block) -> __m256i {
        let packed = _mm_loadu_si128(wb.qs.as_ptr() as *const __m128i);
        let both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }

    #[inline]
    pub(super) fn dot_cols<const N: usize>(w: [&[Q4_1Block]; N], a: &[ActBlock]) -> [f32; N] {
        unsafe {
            let mut acc = [_mm256_setzero_ps(); N];
            let mut mins = [0f32; N];
            for (i, ab) in a.iter().enumerate() {
                let qa = load_act(ab);
                for c in 0..N {
                    let wb = &w[c][i];
                    let scale = _mm256_set1_ps(wb.d.to_f32() * ab.d);
                    acc[c] = _mm256_fmadd_ps(scale, sum_i8_pairs(unpack(wb), qa), acc[c]);
                    mins[c] += wb.m.to_f32() * ab.s;
                }
            }
            std::array::from_fn(|c| hsum(acc[c]) + mins[c])
        }
    }

    #[inline]
    pub(super) fn dot_rows<const N: usize>(w: &[Q4_1Block], a: [&[ActBlock]; N]) -> [f32; N] {
        unsafe {
            let mut acc = [_mm256_setzero_ps(); N];
            let mut mins = [0f32; N];
            for (i, wb) in w.iter().enumerate() {
                let qw = unpack(wb);
                let (d, m) = (wb.d.to_f32(), wb.m.to_f32());
                for r in 0..N {
                    let ab = &a[r][i];
                    let scale = _mm256_set1_ps(d * ab.d);
                    acc[r] = _mm256_fmadd_ps(scale, sum_i8_pairs(qw, load_act(ab)), acc[r]);
                    mins[r] += m * ab.s;
                }
            }
            std::array::from_fn(|r| hsum(acc[r]) + mins[r])
        }
    }
}
