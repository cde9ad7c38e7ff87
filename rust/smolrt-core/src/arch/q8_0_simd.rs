//! The Q8_0 panel kernels in AVX2 and AVX-512 VNNI. Both compute, per lane and block, the exact
//! integer sum Σ q_w·q_a, convert it (exactly: |sum| ≤ 32·128·127 < 2^24) and apply the same
//! fused multiply-add as `q8_0::dot_scalar`.
//!
//! SAFETY (whole module): each function is compiled for the features it names and may only be
//! called on a CPU that has them (`isa` checks); every activation slice holds one block per
//! panel (the dispatcher asserts it); panels are 64-byte aligned, so the aligned loads at
//! offsets 64k (+32) are.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::act_blocks::ActBlock;
use super::panels::PANEL;
use super::q8_0::Q8_0Panel;
use super::simd::prefetch_ahead;

/// `vpdpbusd` wants one unsigned operand: the weights are biased to u8 (q + 128, a sign-bit
/// flip) and 128 · Σ q_a, exact in i32, is taken back out of each lane's sum.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
pub(super) unsafe fn dot_avx512<const R: usize>(
    panels: &[Q8_0Panel],
    acts: [&[ActBlock]; R],
    ahead: usize,
) -> [[f32; PANEL]; R] {
    let bias = _mm512_set1_epi8(-128);
    let mut acc = [_mm512_setzero_ps(); R];
    for (i, p) in panels.iter().enumerate() {
        prefetch_ahead(p, ahead);
        let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.d.as_ptr() as *const __m256i));
        let mut isum = [_mm512_setzero_si512(); R];
        for k in 0..8 {
            let q = _mm512_load_si512(p.qs.as_ptr().add(64 * k) as *const __m512i);
            let u = _mm512_xor_si512(q, bias);
            for r in 0..R {
                let a = acts[r].get_unchecked(i);
                isum[r] = _mm512_dpbusd_epi32(isum[r], u, _mm512_set1_epi32(a.quad(4 * k)));
            }
        }
        for r in 0..R {
            let a = acts[r].get_unchecked(i);
            let exact = _mm512_sub_epi32(isum[r], _mm512_set1_epi32(128 * a.sum));
            let scale = _mm512_mul_ps(d, _mm512_set1_ps(a.d));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), scale, acc[r]);
        }
    }
    let mut out = [[0f32; PANEL]; R];
    for r in 0..R {
        _mm512_storeu_ps(out[r].as_mut_ptr(), acc[r]);
    }
    out
}

/// Two passes of 8 lanes. `vpmaddubsw` wants one unsigned operand: |q_w| against q_a carrying
/// q_w's sign (|pair sum| ≤ 2·128·127 < 2^15, no saturation), widened per 4-input chunk.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_avx2<const R: usize>(
    panels: &[Q8_0Panel],
    acts: [&[ActBlock]; R],
    ahead: usize,
) -> [[f32; PANEL]; R] {
    let ones = _mm256_set1_epi16(1);
    let mut out = [[0f32; PANEL]; R];
    for half in 0..2 {
        let mut acc = [_mm256_setzero_ps(); R];
        for (i, p) in panels.iter().enumerate() {
            if half == 0 {
                prefetch_ahead(p, ahead);
            }
            let d = _mm256_cvtph_ps(_mm_loadu_si128(p.d.as_ptr().add(8 * half) as *const __m128i));
            let mut isum = [_mm256_setzero_si256(); R];
            for k in 0..8 {
                let at = p.qs.as_ptr().add(64 * k + 32 * half);
                let q = _mm256_load_si256(at as *const __m256i);
                let magnitude = _mm256_sign_epi8(q, q);
                for r in 0..R {
                    let a = _mm256_set1_epi32(acts[r].get_unchecked(i).quad(4 * k));
                    let pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(a, q));
                    isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(pairs, ones));
                }
            }
            for r in 0..R {
                let a = acts[r].get_unchecked(i);
                let scale = _mm256_mul_ps(d, _mm256_set1_ps(a.d));
                acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), scale, acc[r]);
            }
        }
        for r in 0..R {
            _mm256_storeu_ps(out[r].as_mut_ptr().add(8 * half), acc[r]);
        }
    }
    out
}
