//! Sixteen f32 lanes held in registers: the accumulator attention's inner loops need. Written
//! with AVX2 intrinsics where the build has them because the auto-vectorizer, given the same
//! loops over `[f32; 16]`, sometimes kept the sums on the stack or fell back to scalar code.
//! Both versions do the same fused multiply-add per lane, so they give the same bits.

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
use std::arch::x86_64::*;

pub(crate) const LANES: usize = 16;

#[derive(Clone, Copy)]
pub(crate) struct Lanes16 {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    v: [__m256; 2],
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    v: [f32; LANES],
}

// SAFETY (every unsafe block below): compiled only when the build enables avx2 and fma; loads
// read 16 values from a slice checked to hold at least 16.
impl Lanes16 {
    #[inline(always)]
    pub(crate) fn zero() -> Self {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        {
            Self {
                v: unsafe { [_mm256_setzero_ps(); 2] },
            }
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            Self { v: [0.0; LANES] }
        }
    }

    /// `self[l] = w · x[l] + self[l]`, one fused multiply-add per lane; `x` holds at least 16.
    #[inline(always)]
    pub(crate) fn fma(&mut self, w: f32, x: &[f32]) {
        let x = &x[..LANES];
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        unsafe {
            let w = _mm256_set1_ps(w);
            let p = x.as_ptr();
            self.v[0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(p), self.v[0]);
            self.v[1] = _mm256_fmadd_ps(w, _mm256_loadu_ps(p.add(8)), self.v[1]);
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        for (a, &v) in self.v.iter_mut().zip(x) {
            *a = w.mul_add(v, *a);
        }
    }

    /// Lane-wise sum.
    #[inline(always)]
    pub(crate) fn add(self, other: Self) -> Self {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        unsafe {
            Self {
                v: [
                    _mm256_add_ps(self.v[0], other.v[0]),
                    _mm256_add_ps(self.v[1], other.v[1]),
                ],
            }
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            Self {
                v: std::array::from_fn(|l| self.v[l] + other.v[l]),
            }
        }
    }

    #[inline(always)]
    pub(crate) fn to_array(self) -> [f32; LANES] {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        {
            let mut out = [0f32; LANES];
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), self.v[0]);
                _mm256_storeu_ps(out.as_mut_ptr().add(8), self.v[1]);
            }
            out
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            self.v
        }
    }
}
