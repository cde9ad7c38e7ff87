//! The Q4_K, Q5_K and IQ4_XS panel kernels (see `q4_k`) in AVX-512 VNNI and AVX2: per 32-value
//! block, the nibble types' integer dot product (`nibbles_simd::block_sums_*`; |sum| < 2^24,
//! converted exactly), then the block's scale `d · sc` and min `dmin · m` from the panel's
//! bytes, computed once for all rows, and `q4_k::dot_scalar`'s fused multiply-adds: each
//! block's into a per-super-block sum, which the activations' one scale multiplies at the end.
//!
//! SAFETY (whole module): each function is compiled for the features it names and may only be
//! called on a CPU that has them (`isa` checks); every activation slice holds `SUB` blocks per
//! panel (the dispatcher asserts it); panels are 64-byte aligned and every offset loaded below
//! is a multiple of 32 (64 for AVX-512's 64-byte loads).

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::act_blocks::ActBlock;
use super::nibbles_simd::{block_sums_avx2, block_sums_avx512};
use super::panels::PANEL;
use super::q4_k::{ScaleMinPanel, SUB};
use super::simd::prefetch_ahead_part;

/// 16 bytes of scales (one per lane, i8 or u8) as f32.
#[inline(always)]
unsafe fn bytes_512(at: *const u8, signed: bool) -> __m512 {
    let bytes = _mm_loadu_si128(at as *const __m128i);
    _mm512_cvtepi32_ps(if signed {
        _mm512_cvtepi8_epi32(bytes)
    } else {
        _mm512_cvtepu8_epi32(bytes)
    })
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
pub(super) unsafe fn dot_avx512<P: ScaleMinPanel, const R: usize>(
    panels: &[P],
    acts: [&[ActBlock]; R],
    ahead: usize,
) -> [[f32; PANEL]; R] {
    let mut acc = [_mm512_setzero_ps(); R];
    for (i, p) in panels.iter().enumerate() {
        let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.d().as_ptr() as *const __m256i));
        let mins = p.mins().map(|(m, dmin)| {
            let dmin = _mm512_cvtph_ps(_mm256_loadu_si256(dmin.as_ptr() as *const __m256i));
            (m, dmin)
        });
        let mut t = [_mm512_setzero_ps(); R];
        for j in 0..SUB {
            prefetch_ahead_part(p, ahead, j, SUB);
            let sc = bytes_512(p.sc().as_ptr().add(PANEL * j), P::SIGNED_SCALES);
            let scale = _mm512_mul_ps(d, sc);
            let min = mins
                .map(|(m, dmin)| _mm512_mul_ps(dmin, bytes_512(m.as_ptr().add(PANEL * j), false)));
            let block: [&ActBlock; R] = std::array::from_fn(|r| acts[r].get_unchecked(SUB * i + j));
            let qh = p.qh().and_then(|qh| qh[8 * j..].first_chunk::<8>());
            let isum = block_sums_avx512(p.qs().as_ptr().add(256 * j), qh, P::GRID, block);
            for r in 0..R {
                t[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), scale, t[r]);
                if let Some(min) = min {
                    let a = block[r];
                    t[r] = _mm512_fnmadd_ps(min, _mm512_set1_ps(a.s), t[r]);
                }
            }
        }
        for r in 0..R {
            let a_d = acts[r].get_unchecked(SUB * i).d;
            acc[r] = _mm512_fmadd_ps(t[r], _mm512_set1_ps(a_d), acc[r]);
        }
    }
    let mut out = [[0f32; PANEL]; R];
    for r in 0..R {
        _mm512_storeu_ps(out[r].as_mut_ptr(), acc[r]);
    }
    out
}

/// 8 bytes of scales (one per lane, i8 or u8) as f32.
#[inline(always)]
unsafe fn bytes_256(at: *const u8, signed: bool) -> __m256 {
    let bytes = _mm_loadl_epi64(at as *const __m128i);
    _mm256_cvtepi32_ps(if signed {
        _mm256_cvtepi8_epi32(bytes)
    } else {
        _mm256_cvtepu8_epi32(bytes)
    })
}

/// Two passes of 8 lanes (panel rows 0..8, then 8..16; `block_sums_avx2`).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_avx2<P: ScaleMinPanel, const R: usize>(
    panels: &[P],
    acts: [&[ActBlock]; R],
    ahead: usize,
) -> [[f32; PANEL]; R] {
    let mut out = [[0f32; PANEL]; R];
    for half in 0..2 {
        let mut acc = [_mm256_setzero_ps(); R];
        for (i, p) in panels.iter().enumerate() {
            let lanes = 8 * half;
            let d = _mm256_cvtph_ps(_mm_loadu_si128(p.d().as_ptr().add(lanes) as *const __m128i));
            let mins = p.mins().map(|(m, dmin)| {
                let dmin =
                    _mm256_cvtph_ps(_mm_loadu_si128(dmin.as_ptr().add(lanes) as *const __m128i));
                (m, dmin)
            });
            let mut t = [_mm256_setzero_ps(); R];
            for j in 0..SUB {
                if half == 0 {
                    prefetch_ahead_part(p, ahead, j, SUB);
                }
                let sc = bytes_256(p.sc().as_ptr().add(PANEL * j + lanes), P::SIGNED_SCALES);
                let scale = _mm256_mul_ps(d, sc);
                let min = mins.map(|(m, dmin)| {
                    _mm256_mul_ps(dmin, bytes_256(m.as_ptr().add(PANEL * j + lanes), false))
                });
                let block: [&ActBlock; R] =
                    std::array::from_fn(|r| acts[r].get_unchecked(SUB * i + j));
                let qh = p.qh().and_then(|qh| qh[8 * j..].first_chunk::<8>());
                let at = p.qs().as_ptr().add(256 * j);
                let isum = block_sums_avx2(at, qh, P::GRID, half, block);
                for r in 0..R {
                    t[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), scale, t[r]);
                    if let Some(min) = min {
                        let a = block[r];
                        t[r] = _mm256_fnmadd_ps(min, _mm256_set1_ps(a.s), t[r]);
                    }
                }
            }
            for r in 0..R {
                let a_d = acts[r].get_unchecked(SUB * i).d;
                acc[r] = _mm256_fmadd_ps(t[r], _mm256_set1_ps(a_d), acc[r]);
            }
        }
        for r in 0..R {
            _mm256_storeu_ps(out[r].as_mut_ptr().add(8 * half), acc[r]);
        }
    }
    out
}
