//! Q2_K's unpacking (see `q2_k`) for Q6_K's kernels (`q6_k_simd`): Q3_K's low bits alone.
//!
//! SAFETY: as `q6_k_simd`; these are inlined into its kernels, which enable the features.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::q2_k::Q2KPanel;
use super::q3_k_simd::{crumbs_avx2, crumbs_avx512};
use super::q6_k_simd::HalfUnpack;

pub(super) use super::q6_k_simd::{dot_avx2, dot_avx512};

impl HalfUnpack for Q2KPanel {
    #[inline(always)]
    unsafe fn unpack_avx512(&self, j: usize, k: usize) -> (__m512i, __m512i) {
        crumbs_avx512(self.ql.as_ptr(), j, k)
    }

    #[inline(always)]
    unsafe fn unpack_avx2(&self, j: usize, k: usize, half: usize) -> (__m256i, __m256i) {
        crumbs_avx2(self.ql.as_ptr(), j, k, half)
    }
}
