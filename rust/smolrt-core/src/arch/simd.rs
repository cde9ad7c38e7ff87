//! The report of which kernels this process runs (benchmarks print it, so a scalar fallback
//! never goes unnoticed), and the prefetch hints of the matmul kernels and the KV cache.

/// The instruction-set extensions smolrt's kernels use in this process, e.g. `["avx2", "fma",
/// "f16c", "avx512f", "avx512bw", "avx512vnni"]`: the build's compile-time set (activation
/// quantizer, the AVX2 attention lanes) plus the run-time choice for the panel matmuls and
/// attention. Empty when everything runs the portable scalar code.
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

/// Hints every cache line of `blocks[start..start + len]` in, from the line holding its first
/// byte to the one holding its last; past the end of `blocks` it does nothing.
#[inline(always)]
pub(crate) fn prefetch<B>(blocks: &[B], start: usize, len: usize) {
    prefetch_into::<B, TO_L1>(blocks, start, len)
}

/// A hint that brings its lines into every cache level (`_MM_HINT_T0`): for data read next.
pub(crate) const TO_L1: i32 = 3;
/// A hint that stops at L2 (`_MM_HINT_T1`): for data read a while later. It leaves L1's few
/// outstanding-miss slots and its 32-48 KB to what is read next, so many more lines can be on
/// their way at once.
pub(crate) const TO_L2: i32 = 2;

#[cfg(target_arch = "x86_64")]
const _: () =
    assert!(TO_L1 == std::arch::x86_64::_MM_HINT_T0 && TO_L2 == std::arch::x86_64::_MM_HINT_T1);

/// [`prefetch`] into the cache level `LEVEL` names ([`TO_L1`] or [`TO_L2`]).
#[inline(always)]
pub(crate) fn prefetch_into<B, const LEVEL: i32>(blocks: &[B], start: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::_mm_prefetch;
        let end = (start + len).min(blocks.len());
        if start >= end {
            return;
        }
        let size = std::mem::size_of::<B>();
        let base = blocks.as_ptr() as usize;
        let last = base + end * size - 1;
        // a range that starts inside a line still ends in the line of its last byte; the first
        // line may begin before `blocks` does
        let mut line = (base + start * size) & !63;
        while line <= last {
            // SAFETY: prefetch never faults; the address is never dereferenced.
            unsafe { _mm_prefetch::<LEVEL>(line as *const i8) };
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (blocks, start, len);
}

/// Hints in the lines of the item `ahead` places past `item` in its array (0: nothing), into
/// L2: a kernel calls this once per item it reads, so the hints run at the pace of the work.
/// The address is computed with wrapping arithmetic and never dereferenced (a prefetch does not
/// fault), so past the end of the array it is only a wasted hint.
///
/// Into L2, not L1: L1 has a few dozen miss slots, and a weight stream hinted into it kept them
/// full, so the kernels' own loads queued behind the hints; L2 keeps many more lines in flight,
/// and the hardware brings each panel on into L1 as it is read. Measured with forward_speed (2
/// threads; steps alternating between the two hints within one process, medians of 128): one row
/// 4.02 → 3.53 and 4.03 → 3.52 ms a step, eight rows 7.89 → 6.79 and 8.49 → 7.08 ms; as whole
/// runs, alternating processes: one row 243 / 267 / 290 → 287 / 309 / 319 tok/s, eight rows
/// 629 / 1,086 / 1,133 → 1,234 / 840 / 1,258 (slow spells on either side).
#[inline(always)]
pub(crate) fn prefetch_ahead<T>(item: &T, ahead: usize) {
    prefetch_ahead_part(item, ahead, 0, 1)
}

/// `prefetch_ahead` for an item read in `parts` steps (a K-quant super-block panel, 2-3 KB):
/// hints step `part`'s share of its lines. All of a big item's lines hinted at once overran the
/// queue of lines in flight and left the kernel waiting on the loads after (a Q6_K one-row
/// decode spent 40% of its samples on two loads, 15% slower than candle's kernel).
#[inline(always)]
pub(crate) fn prefetch_ahead_part<T>(item: &T, ahead: usize, part: usize, parts: usize) {
    #[cfg(target_arch = "x86_64")]
    if ahead > 0 {
        use std::arch::x86_64::_mm_prefetch;
        let at = (item as *const T).wrapping_add(ahead) as *const i8;
        let lines = std::mem::size_of::<T>().div_ceil(64);
        for line in part * lines / parts..(part + 1) * lines / parts {
            // SAFETY: prefetch never faults; the pointer is not dereferenced.
            unsafe { _mm_prefetch::<TO_L2>(at.wrapping_add(64 * line)) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (item, ahead, part, parts);
}
