//! Asking the OS for 2 MiB pages under the big buffers every step reads: the packed weights (about
//! 100 MB, streamed once per step, in the chunks of `weight_arena`) and the KV pool (read a few KB
//! at a time from scattered blocks).
//!
//! With 4 KiB pages a decode step touches some 25,000 distinct pages, far past what the TLBs
//! hold, so page walks (two-dimensional ones under a hypervisor) stall the loads; Linux hands out
//! transparent huge pages only to memory that asks for them (`enabled = madvise`, the common
//! default). Measured on the default model, 2 threads (forward_speed, interleaved best of 6-8,
//! two sessions): eight-row decode 1625 → 1688 and 1665 → 1754 tok/s; one row and prefill
//! within the noise. (Those runs advised each weight matrix's own buffer, which is too small
//! to hold a whole aligned huge page: the advice reached only the output head and the KV pool.
//! The arena's one-row gain is in `weight_arena`.)
//!
//! The advice must come before the pages are first written: a page the process has touched
//! stays small until khugepaged gets to it. It is only advice: where THP is off, or on other
//! systems, nothing changes but the speed.

/// The size of a transparent huge page on x86-64 and most aarch64 kernels.
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// Advises huge pages for the whole 2 MiB pages inside `buf` (its memory, written or not: pass
/// a `Vec`'s spare capacity before filling it). A buffer under 2 MiB has none.
pub(crate) fn advise<T>(buf: &[T]) {
    let start = buf.as_ptr() as usize;
    let end = start + std::mem::size_of_val(buf);
    let (first, last) = (
        start.next_multiple_of(HUGE_PAGE),
        end / HUGE_PAGE * HUGE_PAGE,
    );
    if last <= first {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: the range lies inside `buf`'s allocation, and MADV_HUGEPAGE changes neither its
    // contents nor its mapping, only how the kernel backs it. A failure (THP compiled out) is
    // harmless and ignored.
    unsafe {
        libc::madvise(
            first as *mut libc::c_void,
            last - first,
            libc::MADV_HUGEPAGE,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Advising any buffer, aligned or not, big or small, leaves its contents alone.
    #[test]
    fn advice_keeps_contents() {
        for n in [0usize, 1, 1000, 3 << 20] {
            let v: Vec<u32> = (0..n as u32).collect();
            advise(&v);
            advise(&v[n / 3..]);
            assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
        }
        let mut fresh: Vec<u64> = Vec::with_capacity(1 << 20);
        advise(fresh.spare_capacity_mut());
        fresh.extend(0..1 << 20);
        assert_eq!(fresh[12345], 12345);
    }
}
