//! x86 building blocks shared by the integer block kernels, and the report of which kernels
//! this build runs (benchmarks print it, so a scalar fallback never goes unnoticed).

/// The instruction-set extensions the matmul kernels use in this process, e.g. `["avx2", "fma",
/// "f16c", "avx512bw", "avx512vnni"]`: the Q8_0 and activation kernels' compile-time set plus the
/// panel kernels' run-time choice. Empty when everything runs the portable scalar code.
pub fn kernel_features() -> Vec<&'static str> {
    let mut used = Vec::new();
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    used.extend(["avx2", "fma"]);
    #[cfg(all(target_arch = "x86_64", target_feature = "f16c"))]
    used.push("f16c");
    match super::isa::isa() {
        super::isa::Isa::Avx512Vnni => used.extend(["avx512f", "avx512bw", "avx512vnni"]),
        super::isa::Isa::Avx2 => {
            for f in ["avx2", "fma", "f16c"] {
                if !used.contains(&f) {
                    used.push(f);
                }
            }
        }
        super::isa::Isa::Scalar => {}
    }
    used
}

/// Hints the cache lines of `blocks[start..start + len]` in; past the end it does nothing.
#[inline(always)]
pub(crate) fn prefetch<B>(blocks: &[B], start: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let end = (start + len).min(blocks.len());
        if start >= end {
            return;
        }
        let base = blocks.as_ptr() as *const i8;
        let size = std::mem::size_of::<B>();
        let mut at = start * size;
        while at < end * size {
            // SAFETY: prefetch never faults, and `at` stays inside `blocks`.
            unsafe { _mm_prefetch(base.add(at), _MM_HINT_T0) };
            at += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (blocks, start, len);
}

/// The AVX2 kernel when this build enables it, else the portable one: each block type states its
/// dispatch in one line, and the two arms can never drift apart in their cfg conditions.
macro_rules! simd_or_scalar {
    ($simd:expr, $scalar:expr) => {{
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        {
            $simd
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            $scalar
        }
    }};
}
pub(crate) use simd_or_scalar;

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
pub(crate) use x86::*;

// SAFETY (whole module): compiled only when the build enables avx2 and fma.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod x86 {
    use crate::arch::act_blocks::ActBlock;
    use std::arch::x86_64::*;

    #[inline(always)]
    pub(crate) unsafe fn load_act(ab: &ActBlock) -> __m256i {
        _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i)
    }

    /// Σ u·s of one block as 8 f32 partial sums: u8 x i8 -> pairwise i16 (callers keep
    /// |u·s + u'·s'| below 2^15, so no saturation) -> i32 -> f32, exact.
    #[inline(always)]
    pub(crate) unsafe fn sum_i8_pairs(u: __m256i, s: __m256i) -> __m256 {
        let pairs = _mm256_maddubs_epi16(u, s);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    /// The 8 lanes summed in a fixed order.
    #[inline(always)]
    pub(crate) unsafe fn hsum(acc: __m256) -> f32 {
        let half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
        let one = _mm_add_ss(quad, _mm_shuffle_ps(quad, quad, 1));
        _mm_cvtss_f32(one)
    }
}
