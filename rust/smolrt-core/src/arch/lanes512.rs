//! [`Lanes`] in one AVX-512 register, for attention on CPUs that have it (chosen at run time).
//! Each method does exactly what the AVX2 and portable versions do per lane, so all three give
//! the same bits.
//!
//! SAFETY (whole module): these methods may only run inside a function compiled with
//! `avx512f` (and fma) enabled, on a CPU that has it: `attention` calls them only through
//! `head_attention_avx512`, which `isa` gates. Loads read 16 values from slices checked to hold
//! at least 16.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use half::f16;

use super::lanes::{exp, Lanes, LANES};

#[derive(Clone, Copy)]
pub(crate) struct Lanes512(__m512);

impl Lanes for Lanes512 {
    #[inline(always)]
    fn zero() -> Self {
        Self(unsafe { _mm512_setzero_ps() })
    }

    #[inline(always)]
    fn splat(x: f32) -> Self {
        Self(unsafe { _mm512_set1_ps(x) })
    }

    #[inline(always)]
    fn load(x: &[f32]) -> Self {
        let x = &x[..LANES];
        Self(unsafe { _mm512_loadu_ps(x.as_ptr()) })
    }

    #[inline(always)]
    fn load_f16(x: &[f16]) -> Self {
        let x = &x[..LANES];
        Self(unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(x.as_ptr() as *const __m256i)) })
    }

    #[inline(always)]
    fn load_i8(x: &[i8]) -> Self {
        let x = &x[..LANES];
        Self(unsafe {
            _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(
                x.as_ptr() as *const __m128i
            )))
        })
    }

    #[inline(always)]
    fn to_array(self) -> [f32; LANES] {
        let mut out = [0f32; LANES];
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), self.0) };
        out
    }

    #[inline(always)]
    fn fma_with(&mut self, w: f32, x: Self) {
        self.0 = unsafe { _mm512_fmadd_ps(_mm512_set1_ps(w), x.0, self.0) };
    }

    #[inline(always)]
    fn add(self, other: Self) -> Self {
        Self(unsafe { _mm512_add_ps(self.0, other.0) })
    }

    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        Self(unsafe { _mm512_sub_ps(self.0, other.0) })
    }

    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        Self(unsafe { _mm512_mul_ps(self.0, other.0) })
    }

    #[inline(always)]
    fn div(self, other: Self) -> Self {
        Self(unsafe { _mm512_div_ps(self.0, other.0) })
    }

    #[inline(always)]
    fn max(self, other: Self) -> Self {
        Self(unsafe { _mm512_max_ps(self.0, other.0) })
    }

    #[inline(always)]
    fn exp_nonpositive(self) -> Self {
        unsafe {
            let x = self.0;
            let n = _mm512_roundscale_ps(
                _mm512_mul_ps(x, _mm512_set1_ps(exp::LOG2E)),
                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
            );
            let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-exp::LN2_HI), x);
            let r = _mm512_fmadd_ps(n, _mm512_set1_ps(-exp::LN2_LO), r);
            let mut y = _mm512_set1_ps(exp::P[0]);
            for &c in &exp::P[1..] {
                y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(c));
            }
            let one = _mm512_set1_ps(1.0);
            y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, one));
            let scale = _mm512_castsi512_ps(_mm512_slli_epi32(
                _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)),
                23,
            ));
            let keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(exp::FLOOR), _CMP_GE_OQ);
            Self(_mm512_maskz_mov_ps(keep, _mm512_mul_ps(y, scale)))
        }
    }
}
