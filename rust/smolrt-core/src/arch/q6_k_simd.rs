//! The panel kernels of the types with a scale per 16 values (Q6_K, Q3_K, Q2_K; see
//! `q6_k::HalfScaledPanel`) in AVX-512 VNNI and AVX2: per 32-value block the two halves'
//! integer sums over the unsigned quants, each type unpacking its own (`HalfUnpack`), then
//! `q6_k::dot_scalar`'s exact integer combination with the scales, summed over the super-block,
//! and one fused multiply-add per super-block (for Q2_K the mins' likewise, and another).
//!
//! SAFETY (whole module): each function is compiled for the features it names and may only be
//! called on a CPU that has them (`isa` checks); every activation slice holds `SUB` blocks per
//! panel (the dispatcher asserts it); panels are 32-byte aligned and every offset the AVX2
//! kernel loads from is a multiple of 32 (the AVX-512 loads are unaligned).

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::act_blocks::ActBlock;
use super::panels::PANEL;
use super::q4_k::SUB;
use super::q6_k::{HalfScaledPanel, Q6KPanel};
use super::simd::prefetch_ahead_part;

/// A type's quants of one 32-value block (`j`) as unsigned bytes, in the nibble types' order
/// (see `nibbles`): for `k` in 0..4 the bytes of values `4k + b` (`lo`) and `16 + 4k + b`
/// (`hi`) of row `c` at `4c + b`. Inlined into the kernels, which enable the features.
pub(super) trait HalfUnpack {
    /// All 16 rows.
    unsafe fn unpack_avx512(&self, j: usize, k: usize) -> (__m512i, __m512i);
    /// Rows `8 · half` to `8 · half + 8`.
    unsafe fn unpack_avx2(&self, j: usize, k: usize, half: usize) -> (__m256i, __m256i);
}

impl HalfUnpack for Q6KPanel {
    /// Low nibbles and the two top bits beside them (see `Q6KPanel`).
    #[inline(always)]
    unsafe fn unpack_avx512(&self, j: usize, k: usize) -> (__m512i, __m512i) {
        let nibble = _mm512_set1_epi8(0x0F);
        let (low_bits, high_bits) = (_mm512_set1_epi8(0x03), _mm512_set1_epi8(0x0C));
        let at = self.qs.as_ptr().add(256 * j + 64 * k);
        let packed = _mm512_loadu_si512(at as *const __m512i);
        let at = self.qh.as_ptr().add(128 * j + 64 * (k / 2));
        let mut top = _mm512_loadu_si512(at as *const __m512i);
        if k % 2 == 1 {
            top = _mm512_srli_epi16(top, 4);
        }
        let lo = _mm512_or_si512(
            _mm512_and_si512(packed, nibble),
            _mm512_slli_epi16(_mm512_and_si512(top, low_bits), 4),
        );
        let hi = _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi16(packed, 4), nibble),
            _mm512_slli_epi16(_mm512_and_si512(top, high_bits), 2),
        );
        (lo, hi)
    }

    #[inline(always)]
    unsafe fn unpack_avx2(&self, j: usize, k: usize, half: usize) -> (__m256i, __m256i) {
        let nibble = _mm256_set1_epi8(0x0F);
        let (low_bits, high_bits) = (_mm256_set1_epi8(0x03), _mm256_set1_epi8(0x0C));
        let at = self.qs.as_ptr().add(256 * j + 64 * k + 32 * half);
        let packed = _mm256_load_si256(at as *const __m256i);
        let at = self.qh.as_ptr().add(128 * j + 64 * (k / 2) + 32 * half);
        let mut top = _mm256_load_si256(at as *const __m256i);
        if k % 2 == 1 {
            top = _mm256_srli_epi16(top, 4);
        }
        let lo = _mm256_or_si256(
            _mm256_and_si256(packed, nibble),
            _mm256_slli_epi16(_mm256_and_si256(top, low_bits), 4),
        );
        let hi = _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16(packed, 4), nibble),
            _mm256_slli_epi16(_mm256_and_si256(top, high_bits), 2),
        );
        (lo, hi)
    }
}

/// Block `j`'s scales for its lower and upper 16 values, one row per lane, and for a type with
/// mins those.
#[inline(always)]
unsafe fn scales_avx512<P: HalfScaledPanel>(
    p: &P,
    j: usize,
) -> (__m512i, __m512i, Option<(__m512i, __m512i)>) {
    let bytes =
        |h: usize| _mm_loadu_si128(p.scale_bytes().as_ptr().add(32 * j + 16 * h) as *const __m128i);
    match p.dmin() {
        None => (
            _mm512_cvtepi8_epi32(bytes(0)),
            _mm512_cvtepi8_epi32(bytes(1)),
            None,
        ),
        Some(_) => {
            let nibble = _mm512_set1_epi32(0x0F);
            let (lo, hi) = (
                _mm512_cvtepu8_epi32(bytes(0)),
                _mm512_cvtepu8_epi32(bytes(1)),
            );
            (
                _mm512_and_si512(lo, nibble),
                _mm512_and_si512(hi, nibble),
                Some((_mm512_srli_epi32(lo, 4), _mm512_srli_epi32(hi, 4))),
            )
        }
    }
}

/// `scales_avx512` for rows `8 · half` to `8 · half + 8`.
#[inline(always)]
unsafe fn scales_avx2<P: HalfScaledPanel>(
    p: &P,
    j: usize,
    half: usize,
) -> (__m256i, __m256i, Option<(__m256i, __m256i)>) {
    let lanes = 8 * half;
    let bytes = |h: usize| {
        _mm_loadl_epi64(p.scale_bytes().as_ptr().add(32 * j + 16 * h + lanes) as *const __m128i)
    };
    match p.dmin() {
        None => (
            _mm256_cvtepi8_epi32(bytes(0)),
            _mm256_cvtepi8_epi32(bytes(1)),
            None,
        ),
        Some(_) => {
            let nibble = _mm256_set1_epi32(0x0F);
            let (lo, hi) = (
                _mm256_cvtepu8_epi32(bytes(0)),
                _mm256_cvtepu8_epi32(bytes(1)),
            );
            (
                _mm256_and_si256(lo, nibble),
                _mm256_and_si256(hi, nibble),
                Some((_mm256_srli_epi32(lo, 4), _mm256_srli_epi32(hi, 4))),
            )
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
pub(super) unsafe fn dot_avx512<P: HalfScaledPanel + HalfUnpack, const R: usize>(
    panels: &[P],
    acts: [&[ActBlock]; R],
    ahead: usize,
) -> [[f32; PANEL]; R] {
    let mut acc = [_mm512_setzero_ps(); R];
    for (i, p) in panels.iter().enumerate() {
        let mut exact = [_mm512_setzero_si512(); R];
        let mut mins_sum = [_mm512_setzero_si512(); R];
        for j in 0..SUB {
            prefetch_ahead_part(p, ahead, j, SUB);
            let (sc_lo, sc_hi, mins) = scales_avx512(p, j);
            let mut sum_lo = [_mm512_setzero_si512(); R];
            let mut sum_hi = [_mm512_setzero_si512(); R];
            for k in 0..4 {
                let (lo, hi) = p.unpack_avx512(j, k);
                for r in 0..R {
                    let a = acts[r].get_unchecked(SUB * i + j);
                    sum_lo[r] =
                        _mm512_dpbusd_epi32(sum_lo[r], lo, _mm512_set1_epi32(a.quad(4 * k)));
                    sum_hi[r] =
                        _mm512_dpbusd_epi32(sum_hi[r], hi, _mm512_set1_epi32(a.quad(16 + 4 * k)));
                }
            }
            for r in 0..R {
                let a = acts[r].get_unchecked(SUB * i + j);
                let t_lo = _mm512_sub_epi32(sum_lo[r], _mm512_set1_epi32(P::OFFSET * a.sum_lo));
                let t_hi =
                    _mm512_sub_epi32(sum_hi[r], _mm512_set1_epi32(P::OFFSET * (a.sum - a.sum_lo)));
                exact[r] = _mm512_add_epi32(
                    exact[r],
                    _mm512_add_epi32(
                        _mm512_mullo_epi32(t_lo, sc_lo),
                        _mm512_mullo_epi32(t_hi, sc_hi),
                    ),
                );
                if let Some((m_lo, m_hi)) = mins {
                    mins_sum[r] = _mm512_add_epi32(
                        mins_sum[r],
                        _mm512_add_epi32(
                            _mm512_mullo_epi32(m_lo, _mm512_set1_epi32(a.sum_lo)),
                            _mm512_mullo_epi32(m_hi, _mm512_set1_epi32(a.sum - a.sum_lo)),
                        ),
                    );
                }
            }
        }
        let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.d().as_ptr() as *const __m256i));
        let dmin = p
            .dmin()
            .map(|m| _mm512_cvtph_ps(_mm256_loadu_si256(m.as_ptr() as *const __m256i)));
        for r in 0..R {
            let d_a = acts[r].get_unchecked(SUB * i).d;
            let s = _mm512_mul_ps(d, _mm512_set1_ps(d_a));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact[r]), s, acc[r]);
            if let Some(dmin) = dmin {
                let s = _mm512_mul_ps(dmin, _mm512_set1_ps(-d_a));
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(mins_sum[r]), s, acc[r]);
            }
        }
    }
    let mut out = [[0f32; PANEL]; R];
    for r in 0..R {
        _mm512_storeu_ps(out[r].as_mut_ptr(), acc[r]);
    }
    out
}

/// Two passes of 8 lanes (panel rows 0..8, then 8..16). Each `vpmaddubsw` pair sum is at most
/// 2·63·127 = 16002, so every one is widened at once (`vpmaddwd`) into its half's i32 sum.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_avx2<P: HalfScaledPanel + HalfUnpack, const R: usize>(
    panels: &[P],
    acts: [&[ActBlock]; R],
    ahead: usize,
) -> [[f32; PANEL]; R] {
    let ones = _mm256_set1_epi16(1);
    let mut out = [[0f32; PANEL]; R];
    for half in 0..2 {
        let mut acc = [_mm256_setzero_ps(); R];
        for (i, p) in panels.iter().enumerate() {
            let lanes = 8 * half;
            let mut exact = [_mm256_setzero_si256(); R];
            let mut mins_sum = [_mm256_setzero_si256(); R];
            for j in 0..SUB {
                if half == 0 {
                    prefetch_ahead_part(p, ahead, j, SUB);
                }
                let (sc_lo, sc_hi, mins) = scales_avx2(p, j, half);
                let mut sum_lo = [_mm256_setzero_si256(); R];
                let mut sum_hi = [_mm256_setzero_si256(); R];
                for k in 0..4 {
                    let (lo, hi) = p.unpack_avx2(j, k, half);
                    for r in 0..R {
                        let a = acts[r].get_unchecked(SUB * i + j);
                        let plo = _mm256_maddubs_epi16(lo, _mm256_set1_epi32(a.quad(4 * k)));
                        let phi = _mm256_maddubs_epi16(hi, _mm256_set1_epi32(a.quad(16 + 4 * k)));
                        sum_lo[r] = _mm256_add_epi32(sum_lo[r], _mm256_madd_epi16(plo, ones));
                        sum_hi[r] = _mm256_add_epi32(sum_hi[r], _mm256_madd_epi16(phi, ones));
                    }
                }
                for r in 0..R {
                    let a = acts[r].get_unchecked(SUB * i + j);
                    let t_lo = _mm256_sub_epi32(sum_lo[r], _mm256_set1_epi32(P::OFFSET * a.sum_lo));
                    let t_hi = _mm256_sub_epi32(
                        sum_hi[r],
                        _mm256_set1_epi32(P::OFFSET * (a.sum - a.sum_lo)),
                    );
                    exact[r] = _mm256_add_epi32(
                        exact[r],
                        _mm256_add_epi32(
                            _mm256_mullo_epi32(t_lo, sc_lo),
                            _mm256_mullo_epi32(t_hi, sc_hi),
                        ),
                    );
                    if let Some((m_lo, m_hi)) = mins {
                        mins_sum[r] = _mm256_add_epi32(
                            mins_sum[r],
                            _mm256_add_epi32(
                                _mm256_mullo_epi32(m_lo, _mm256_set1_epi32(a.sum_lo)),
                                _mm256_mullo_epi32(m_hi, _mm256_set1_epi32(a.sum - a.sum_lo)),
                            ),
                        );
                    }
                }
            }
            let d = _mm256_cvtph_ps(_mm_loadu_si128(p.d().as_ptr().add(lanes) as *const __m128i));
            let dmin = p
                .dmin()
                .map(|m| _mm256_cvtph_ps(_mm_loadu_si128(m.as_ptr().add(lanes) as *const __m128i)));
            for r in 0..R {
                let d_a = acts[r].get_unchecked(SUB * i).d;
                let s = _mm256_mul_ps(d, _mm256_set1_ps(d_a));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(exact[r]), s, acc[r]);
                if let Some(dmin) = dmin {
                    let s = _mm256_mul_ps(dmin, _mm256_set1_ps(-d_a));
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins_sum[r]), s, acc[r]);
                }
            }
        }
        for r in 0..R {
            _mm256_storeu_ps(out[r].as_mut_ptr().add(8 * half), acc[r]);
        }
    }
    out
}
