//! Q3_K's unpacking (see `q3_k`) for Q6_K's kernels (`q6_k_simd`): two low bits per byte
//! plane (`crumbs_*`, which Q2_K shares), and 4 added where a high-bit mask says (one masked
//! add per 64 bytes on AVX-512, a shuffle and compare on AVX2).
//!
//! SAFETY: as `q6_k_simd`; these are inlined into its kernels, which enable the features.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::nibbles_simd::marked_bytes;
use super::q3_k::Q3KPanel;
use super::q6_k_simd::HalfUnpack;

pub(super) use super::q6_k_simd::{dot_avx2, dot_avx512};

/// The 2-bit values of block `j`'s `k`th quarter from `ql` as `q3_k` lays them out: those of
/// values `4k + b` and `16 + 4k + b`, one byte each, 16 rows.
#[inline(always)]
pub(super) unsafe fn crumbs_avx512(ql: *const u8, j: usize, k: usize) -> (__m512i, __m512i) {
    let three = _mm512_set1_epi8(3);
    let mut crumbs = _mm512_loadu_si512(ql.add(128 * j + 64 * (k / 2)) as *const __m512i);
    if k % 2 == 1 {
        crumbs = _mm512_srli_epi16(crumbs, 4);
    }
    (
        _mm512_and_si512(crumbs, three),
        _mm512_and_si512(_mm512_srli_epi16(crumbs, 2), three),
    )
}

/// `crumbs_avx512` for rows `8 · half` to `8 · half + 8` (`ql` 32-byte aligned).
#[inline(always)]
pub(super) unsafe fn crumbs_avx2(
    ql: *const u8,
    j: usize,
    k: usize,
    half: usize,
) -> (__m256i, __m256i) {
    let three = _mm256_set1_epi8(3);
    let at = ql.add(128 * j + 64 * (k / 2) + 32 * half);
    let mut crumbs = _mm256_load_si256(at as *const __m256i);
    if k % 2 == 1 {
        crumbs = _mm256_srli_epi16(crumbs, 4);
    }
    (
        _mm256_and_si256(crumbs, three),
        _mm256_and_si256(_mm256_srli_epi16(crumbs, 2), three),
    )
}

impl HalfUnpack for Q3KPanel {
    #[inline(always)]
    unsafe fn unpack_avx512(&self, j: usize, k: usize) -> (__m512i, __m512i) {
        let four = _mm512_set1_epi8(4);
        let (lo, hi) = crumbs_avx512(self.ql.as_ptr(), j, k);
        let (lo_high, hi_high) = (self.qh[8 * j + k], self.qh[8 * j + 4 + k]);
        (
            _mm512_mask_add_epi8(lo, _cvtu64_mask64(lo_high), lo, four),
            _mm512_mask_add_epi8(hi, _cvtu64_mask64(hi_high), hi, four),
        )
    }

    #[inline(always)]
    unsafe fn unpack_avx2(&self, j: usize, k: usize, half: usize) -> (__m256i, __m256i) {
        let four = _mm256_set1_epi8(4);
        let (lo, hi) = crumbs_avx2(self.ql.as_ptr(), j, k, half);
        let high = |mask: u64| _mm256_and_si256(marked_bytes((mask >> (32 * half)) as u32), four);
        (
            _mm256_or_si256(lo, high(self.qh[8 * j + k])),
            _mm256_or_si256(hi, high(self.qh[8 * j + 4 + k])),
        )
    }
}
