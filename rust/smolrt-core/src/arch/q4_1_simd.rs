//! The Q4_1 panel kernels in AVX2 and AVX-512 VNNI. Both compute, per lane and block, the exact
//! integer sum Σ q_w·q_a, convert it (exactly: |sum| ≤ 32·15·127 < 2^24) and apply the same two
//! fused multiply-adds as `q4_1::dot_scalar`.
//!
//! SAFETY (whole module): each function is compiled for the features it names and may only be
//! called on a CPU that has them (`isa` checks); every activation slice holds one block per
//! panel (the dispatcher asserts it); panels are 64-byte aligned, so the aligned loads at
//! offsets 64k (+32) are.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::act_blocks::ActBlock;
use super::panels::PANEL;
use super::q4_1::Q4_1Panel;
use super::simd::prefetch_ahead;

/// 16 lanes, one per panel row: `vpdpbusd` multiplies each lane's 4 unsigned weight nibbles by
/// the 4 broadcast activation bytes and adds the four products into the lane's i32.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
pub(super) unsafe fn dot_avx512<const R: usize>(
    panels: &[Q4_1Panel],
    acts: [&[ActBlock]; R],
    ahead: usize,
) -> [[f32; PANEL]; R] {
    let nibble = _mm512_set1_epi8(0x0F);
    let mut acc = [_mm512_setzero_ps(); R];
    for (i, p) in panels.iter().enumerate() {
        prefetch_ahead(p, ahead);
        let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.d.as_ptr() as *const __m256i));
        let m = _mm512_cvtph_ps(_mm256_loadu_si256(p.m.as_ptr() as *const __m256i));
        let mut isum = [_mm512_setzero_si512(); R];
        for k in 0..4 {
            let packed = _mm512_load_si512(p.qs.as_ptr().add(64 * k) as *const __m512i);
            let lo = _mm512_and_si512(packed, nibble);
            let hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), nibble);
            for r in 0..R {
                let a = acts[r].get_unchecked(i);
                isum[r] = _mm512_dpbusd_epi32(isum[r], lo, _mm512_set1_epi32(a.quad(4 * k)));
                isum[r] = _mm512_dpbusd_epi32(isum[r], hi, _mm512_set1_epi32(a.quad(16 + 4 * k)));
            }
        }
        for r in 0..R {
            let a = acts[r].get_unchecked(i);
            let scale = _mm512_mul_ps(d, _mm512_set1_ps(a.d));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), scale, acc[r]);
            acc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(a.s), acc[r]);
        }
    }
    let mut out = [[0f32; PANEL]; R];
    for r in 0..R {
        _mm512_storeu_ps(out[r].as_mut_ptr(), acc[r]);
    }
    out
}

/// Two passes of 8 lanes (panel rows 0..8, then 8..16). Without VNNI the products go through
/// `vpmaddubsw` into i16 pairs; all eight of a block's partial vectors are summed in i16
/// (|sum| ≤ 8·2·15·127 = 30480 < 2^15, no saturation) before one widening `vpmaddwd`.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_avx2<const R: usize>(
    panels: &[Q4_1Panel],
    acts: [&[ActBlock]; R],
    ahead: usize,
) -> [[f32; PANEL]; R] {
    let nibble = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let mut out = [[0f32; PANEL]; R];
    for half in 0..2 {
        let mut acc = [_mm256_setzero_ps(); R];
        for (i, p) in panels.iter().enumerate() {
            if half == 0 {
                prefetch_ahead(p, ahead);
            }
            let d = _mm256_cvtph_ps(_mm_loadu_si128(p.d.as_ptr().add(8 * half) as *const __m128i));
            let m = _mm256_cvtph_ps(_mm_loadu_si128(p.m.as_ptr().add(8 * half) as *const __m128i));
            let mut sum16 = [_mm256_setzero_si256(); R];
            for k in 0..4 {
                let at = p.qs.as_ptr().add(64 * k + 32 * half);
                let packed = _mm256_load_si256(at as *const __m256i);
                let lo = _mm256_and_si256(packed, nibble);
                let hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), nibble);
                for r in 0..R {
                    let a = acts[r].get_unchecked(i);
                    let plo = _mm256_maddubs_epi16(lo, _mm256_set1_epi32(a.quad(4 * k)));
                    let phi = _mm256_maddubs_epi16(hi, _mm256_set1_epi32(a.quad(16 + 4 * k)));
                    sum16[r] = _mm256_add_epi16(sum16[r], _mm256_add_epi16(plo, phi));
                }
            }
            for r in 0..R {
                let a = acts[r].get_unchecked(i);
                let isum = _mm256_madd_epi16(sum16[r], ones);
                let scale = _mm256_mul_ps(d, _mm256_set1_ps(a.d));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[r]);
                acc[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(a.s), acc[r]);
            }
        }
        for r in 0..R {
            _mm256_storeu_ps(out[r].as_mut_ptr().add(8 * half), acc[r]);
        }
    }
    out
}
