//! The F16, BF16 and F32 panel kernels (see `floats`) in AVX-512 and AVX2: per input, the 16
//! rows' weights widened to f32 once and fused-multiply-added into every activation row's two
//! chains, exactly as `floats`' scalar reference does per lane.
//!
//! SAFETY (whole module): each function is compiled for the features it names and may only be
//! called on a CPU that has them (`isa` checks); every activation slice holds one block per
//! panel (the dispatcher asserts it); panels are 64-byte aligned and a panel's 16 words for one
//! input are 32 or 64 bytes, so the aligned loads (of 8 words, 16·half words in, for AVX2) are.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::floats::{F32Block, FloatFormat, FloatKind, FloatPanel};
use super::panels::PANEL;
use super::simd::prefetch_ahead;

/// The 16 weights at `at` in f32.
#[inline(always)]
unsafe fn widen_512<F: FloatFormat>(at: *const F::Word) -> __m512 {
    match F::KIND {
        FloatKind::F32 => _mm512_load_ps(at as *const f32),
        FloatKind::F16 => _mm512_cvtph_ps(_mm256_load_si256(at as *const __m256i)),
        FloatKind::Bf16 => {
            let bits = _mm512_cvtepu16_epi32(_mm256_load_si256(at as *const __m256i));
            _mm512_castsi512_ps(_mm512_slli_epi32(bits, 16))
        }
    }
}

#[target_feature(enable = "avx512f,avx512bw,fma,f16c")]
pub(super) unsafe fn dot_avx512<F: FloatFormat, const R: usize>(
    panels: &[FloatPanel<F>],
    acts: [&[F32Block]; R],
    ahead: usize,
) -> [[f32; PANEL]; R] {
    let mut even = [_mm512_setzero_ps(); R];
    let mut odd = [_mm512_setzero_ps(); R];
    for (i, p) in panels.iter().enumerate() {
        prefetch_ahead(p, ahead);
        let w = p.weights().as_ptr();
        for j in (0..32).step_by(2) {
            let (w0, w1) = (
                widen_512::<F>(w.add(PANEL * j)),
                widen_512::<F>(w.add(PANEL * (j + 1))),
            );
            for r in 0..R {
                let x = &acts[r].get_unchecked(i).0;
                even[r] = _mm512_fmadd_ps(w0, _mm512_set1_ps(*x.get_unchecked(j)), even[r]);
                odd[r] = _mm512_fmadd_ps(w1, _mm512_set1_ps(*x.get_unchecked(j + 1)), odd[r]);
            }
        }
    }
    let mut out = [[0f32; PANEL]; R];
    for r in 0..R {
        _mm512_storeu_ps(out[r].as_mut_ptr(), _mm512_add_ps(even[r], odd[r]));
    }
    out
}

/// The 8 weights at `at` in f32.
#[inline(always)]
unsafe fn widen_256<F: FloatFormat>(at: *const F::Word) -> __m256 {
    match F::KIND {
        FloatKind::F32 => _mm256_load_ps(at as *const f32),
        FloatKind::F16 => _mm256_cvtph_ps(_mm_load_si128(at as *const __m128i)),
        FloatKind::Bf16 => {
            let bits = _mm256_cvtepu16_epi32(_mm_load_si128(at as *const __m128i));
            _mm256_castsi256_ps(_mm256_slli_epi32(bits, 16))
        }
    }
}

/// Two passes of 8 lanes (panel rows 0..8, then 8..16).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_avx2<F: FloatFormat, const R: usize>(
    panels: &[FloatPanel<F>],
    acts: [&[F32Block]; R],
    ahead: usize,
) -> [[f32; PANEL]; R] {
    let mut out = [[0f32; PANEL]; R];
    for half in 0..2 {
        let mut even = [_mm256_setzero_ps(); R];
        let mut odd = [_mm256_setzero_ps(); R];
        for (i, p) in panels.iter().enumerate() {
            if half == 0 {
                prefetch_ahead(p, ahead);
            }
            let w = p.weights().as_ptr().add(8 * half);
            for j in (0..32).step_by(2) {
                let (w0, w1) = (
                    widen_256::<F>(w.add(PANEL * j)),
                    widen_256::<F>(w.add(PANEL * (j + 1))),
                );
                for r in 0..R {
                    let x = &acts[r].get_unchecked(i).0;
                    even[r] = _mm256_fmadd_ps(w0, _mm256_set1_ps(*x.get_unchecked(j)), even[r]);
                    odd[r] = _mm256_fmadd_ps(w1, _mm256_set1_ps(*x.get_unchecked(j + 1)), odd[r]);
                }
            }
        }
        for r in 0..R {
            _mm256_storeu_ps(
                out[r].as_mut_ptr().add(8 * half),
                _mm256_add_ps(even[r], odd[r]),
            );
        }
    }
    out
}
