//! Data-parallel work on the one thread pool the forward pass uses (candle's persistent barrier
//! pool, which our matmul kernels share). Everything parallel goes through it: a second pool
//! (rayon's) would spin its idle workers against this one's on the same cores.

use std::any::Any;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Splits `buf` into consecutive pieces of the given lengths (their sum at most `buf.len()`) and
/// runs `f(state, i, piece_i)` for every piece on the pool, each piece exactly once; `init`
/// makes one `state` per thread that takes any piece (scratch buffers).
///
/// Pieces are handed out as disjoint `&mut` slices without a lock each: a per-piece mutex cost
/// two locked instructions per piece, and each of those waits for the piece's output stores to
/// drain (measured: 6% of a batched decode step's samples sat on the unlock).
pub(crate) fn for_each_piece<S>(
    buf: &mut [f32],
    lens: impl IntoIterator<Item = usize>,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, &mut [f32]) + Sync,
) {
    let mut bounds = vec![0usize];
    for len in lens {
        let end = bounds[bounds.len() - 1] + len;
        assert!(end <= buf.len(), "pieces run past the buffer");
        bounds.push(end);
    }
    let shared = SharedMut::new(buf);
    for_each_index(bounds.len() - 1, init, |state, i| {
        // SAFETY: each index comes once, and piece i is bounds[i]..bounds[i + 1], disjoint
        // from every other piece.
        let piece = unsafe { shared.slice_mut(bounds[i], bounds[i + 1] - bounds[i]) };
        f(state, i, piece);
    });
}

/// Runs `f(item)` for every item of `items` on the pool, each exactly once (in place for a
/// single item: a pool round trip would cost more than it spreads).
pub(crate) fn for_each_mut<T: Send + Sync>(items: &mut [T], f: impl Fn(&mut T) + Sync) {
    if items.len() < 2 {
        items.iter_mut().for_each(f);
        return;
    }
    let shared = SharedMut::new(items);
    for_each_index(
        shared.len,
        || (),
        |_, i| {
            // SAFETY: each index comes once, so no two threads hold the same item.
            f(&mut unsafe { shared.slice_mut(i, 1) }[0])
        },
    );
}

/// Runs `f(state, i)` for every `i < n` on the pool, each exactly once; `init` makes one
/// `state` per thread that takes any index (scratch buffers). For loops whose items write
/// wherever they own (several buffers, through [`SharedMut`]) rather than a piece of one.
pub(crate) fn for_each_index<S>(
    n: usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize) + Sync,
) {
    if n == 0 {
        return;
    }
    let pool = candle_core::utils::barrier_pool();
    let cursor = Cursor::new(n, pool.n_workers() + 1);
    let panic = Caught::default();
    pool.execute(|_| {
        panic.catch(|| {
            let mut state = None;
            cursor.take_all(|i| f(state.get_or_insert_with(&init), i))
        })
    });
    panic.resume();
}

/// Runs `f(r, row)` for every `width`-long row of `out`: on the pool when there are several rows
/// (row work on the stepping thread alone leaves the other core waiting), in place for one.
pub(crate) fn for_each_row(out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let rows = out.len() / width;
    if rows < 2 {
        for (r, row) in out.chunks_exact_mut(width).enumerate() {
            f(r, row);
        }
        return;
    }
    for_each_piece(out, (0..rows).map(|_| width), || (), |_, r, row| f(r, row));
}

/// Runs `first(i)` for every `i < n_first`, then, once every thread is done with those,
/// `second(j)` for every `j < n_second`: two dependent parallel loops in one round trip of the
/// pool (the matmuls quantize their activation rows in the first and multiply in the second).
pub(crate) fn two_phases(
    n_first: usize,
    n_second: usize,
    first: impl Fn(usize) + Sync,
    second: impl Fn(usize) + Sync,
) {
    if n_first == 0 && n_second == 0 {
        return;
    }
    let pool = candle_core::utils::barrier_pool();
    let threads = pool.n_workers() + 1;
    let (a, b) = (
        Cursor::new(n_first, threads),
        Cursor::new(n_second, threads),
    );
    let arrived = AtomicUsize::new(0);
    let panic = Caught::default();
    pool.execute(|_| {
        // A panic in `first` is caught, so this thread still arrives and nobody waits forever.
        panic.catch(|| a.take_all(&first));
        // Release publishes this thread's first-phase writes; Acquire sees everyone's.
        arrived.fetch_add(1, Ordering::AcqRel);
        while arrived.load(Ordering::Acquire) < threads {
            std::hint::spin_loop();
        }
        if !panic.happened() {
            panic.catch(|| b.take_all(&second));
        }
    });
    panic.resume();
}

/// The first panic of a parallel section's threads, re-raised on the caller once the section
/// is over. A panic must not unwind out of candle's `execute` on the calling thread: it would
/// poison the pool's call lock, and every later parallel section of the process would fail.
#[derive(Default)]
struct Caught {
    payload: Mutex<Option<Box<dyn Any + Send>>>,
    any: AtomicBool,
}

impl Caught {
    fn catch(&self, f: impl FnOnce()) {
        if let Err(p) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
            self.any.store(true, Ordering::Release);
            let mut slot = self.payload.lock().unwrap_or_else(|e| e.into_inner());
            slot.get_or_insert(p);
        }
    }

    fn happened(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    fn resume(self) {
        let payload = self.payload.into_inner().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = payload {
            std::panic::resume_unwind(p);
        }
    }
}

/// The shortest run is 1/(threads × this) of a loop's items.
const MIN_RUNS_DIVISOR: usize = 32;

/// Hands out `0..n` in runs from one atomic counter: every index exactly once over all takers.
/// Each grab takes what is left divided by the thread count (half of it with two threads), down
/// to `min_run`: a few long contiguous runs first, then shorter ones, so the threads finish a
/// section together after a handful of grabs each.
///
/// Few grabs, because each one moves the counter's cache line from the other core, and the
/// thread that grabs waits for it. Taking an eighth of the remainder per thread instead (many
/// short runs, meant to let the other thread take over the work of one the OS had taken away)
/// cost eight batched rows 10% on a quiet host and 25-40% when the host was slow to move lines
/// between its cores (`forward_speed`, eight rows decoding after 32 positions, interleaved:
/// 6.12-6.20 → 5.56-5.60 ms a step; 10.7 → 7.8 ms in a slow spell; 8 in-process streams through
/// the scheduler 756-803 → 1,030-1,072 tok/s, 8 gRPC streams 709 → 827 and 979 → 1,152). A
/// 512-token prefill gained 2-3% (1,844-1,880 → 1,903-1,924 tok/s); one row's matmuls already
/// took runs of half, and its decode after 1,024 positions (attention in a few uneven chunks)
/// moved within the noise (245-265 → 238-259 tok/s). In the slow spell, two independent
/// one-thread processes each kept their one-thread speed while one two-thread process fell below
/// it: the cost is the threads' traffic, not the cores.
struct Cursor {
    next: AtomicUsize,
    n: usize,
    /// The remainder is split into this many shares per grab (the thread count).
    parts: usize,
    /// Runs are never shorter than this (except the very last): each grab is a locked
    /// compare-exchange, which waits for the previous run's stores to drain.
    min_run: usize,
}

impl Cursor {
    fn new(n: usize, threads: usize) -> Self {
        Self {
            next: AtomicUsize::new(0),
            n,
            parts: threads,
            min_run: n.div_ceil(threads * MIN_RUNS_DIVISOR).max(1),
        }
    }

    fn take_all(&self, mut f: impl FnMut(usize)) {
        let mut start = self.next.load(Ordering::Relaxed);
        while start < self.n {
            let run = ((self.n - start) / self.parts)
                .max(self.min_run)
                .min(self.n - start);
            match self.next.compare_exchange_weak(
                start,
                start + run,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    for i in start..start + run {
                        f(i);
                    }
                    start = self.next.load(Ordering::Relaxed);
                }
                Err(now) => start = now,
            }
        }
    }
}

/// A slice the pool's threads share, each writing only its own disjoint parts.
pub(crate) struct SharedMut<'a, T> {
    base: *mut T,
    len: usize,
    _slice: PhantomData<&'a mut [T]>,
}

// SAFETY: the unsafe accessors' contracts keep any two threads' live references disjoint (or
// all shared), so sharing the pointer is as safe as sending `&mut [T]` parts would be.
unsafe impl<T: Send + Sync> Sync for SharedMut<'_, T> {}

impl<'a, T> SharedMut<'a, T> {
    pub(crate) fn new(slice: &'a mut [T]) -> Self {
        Self {
            base: slice.as_mut_ptr(),
            len: slice.len(),
            _slice: PhantomData,
        }
    }

    /// Elements `start..start + len`. SAFETY: while the result lives, no other reference to
    /// any of these elements is live.
    #[allow(clippy::mut_from_ref)] // exclusive by the caller's contract, as above
    pub(crate) unsafe fn slice_mut(&self, start: usize, len: usize) -> &mut [T] {
        assert!(
            start <= self.len && len <= self.len - start,
            "range past the slice"
        );
        // SAFETY: in bounds (checked); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(start), len) }
    }

    /// Elements `start..start + len`, shared. SAFETY: while the result lives, no `slice_mut`
    /// result overlapping them is live.
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &[T] {
        assert!(
            start <= self.len && len <= self.len - start,
            "range past the slice"
        );
        // SAFETY: in bounds (checked); no writer by the caller's contract.
        unsafe { std::slice::from_raw_parts(self.base.add(start), len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_phase_sees_every_write_of_the_first() {
        let cases = [(0, 5), (1, 1), (8, 60), (33, 7), (200, 1000)];
        for (n_first, n_second) in cases {
            let mut data = vec![0u64; n_first];
            let shared = SharedMut::new(&mut data);
            let sums = AtomicUsize::new(0);
            two_phases(
                n_first,
                n_second,
                // SAFETY: each index once, each writes only its own element
                |i| unsafe { shared.slice_mut(i, 1)[0] = i as u64 + 1 },
                |_| {
                    // SAFETY: the first phase is over, nobody writes any more
                    let all = unsafe { shared.slice(0, n_first) };
                    sums.fetch_add(all.iter().sum::<u64>() as usize, Ordering::Relaxed);
                },
            );
            let total = n_first * (n_first + 1) / 2;
            assert_eq!(sums.load(Ordering::Relaxed), total * n_second);
        }
    }

    #[test]
    fn a_panic_in_a_section_reaches_the_caller_and_leaves_the_pool_working() {
        let second = AtomicUsize::new(0);
        let caught = std::panic::catch_unwind(|| {
            two_phases(
                16,
                4,
                |i| assert_ne!(i, 7, "a bug in phase one"),
                |_| {
                    second.fetch_add(1, Ordering::Relaxed);
                },
            )
        });
        assert!(caught.is_err());
        let mut buf = vec![0f32; 8];
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
            for_each_piece(&mut buf, [2, 2, 2, 2], || (), |_, i, _| assert_ne!(i, 3))
        }));
        assert!(caught.is_err());
        // the pool still works afterwards
        let runs = AtomicUsize::new(0);
        two_phases(
            3,
            5,
            |_| {},
            |_| {
                runs.fetch_add(1, Ordering::Relaxed);
            },
        );
        assert_eq!(runs.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn every_item_once() {
        for n in [0usize, 1, 2, 9, 100] {
            let mut items = vec![0u32; n];
            for_each_mut(&mut items, |x| *x += 1);
            assert!(items.iter().all(|&x| x == 1), "n = {n}");
        }
    }

    #[test]
    fn every_index_once() {
        for n in [0usize, 1, 7, 100, 1000] {
            let seen: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            for_each_index(
                n,
                || (),
                |_, i| {
                    seen[i].fetch_add(1, Ordering::Relaxed);
                },
            );
            assert!(
                seen.iter().all(|c| c.load(Ordering::Relaxed) == 1),
                "n = {n}"
            );
        }
    }

    #[test]
    fn every_piece_once_with_its_own_elements() {
        for n in [0usize, 1, 2, 7, 16, 17, 100, 1000] {
            let lens: Vec<usize> = (0..n).map(|i| i % 5 + 1).collect();
            let total: usize = lens.iter().sum();
            let mut buf = vec![0f32; total + 3];
            let visits = AtomicUsize::new(0);
            for_each_piece(
                &mut buf,
                lens.iter().copied(),
                || (),
                |_, i, piece| {
                    assert_eq!(piece.len(), lens[i]);
                    for x in piece.iter_mut() {
                        *x += (i + 1) as f32;
                    }
                    visits.fetch_add(1, Ordering::Relaxed);
                },
            );
            assert_eq!(visits.load(Ordering::Relaxed), n);
            let mut at = 0;
            for (i, &len) in lens.iter().enumerate() {
                assert!(
                    buf[at..at + len].iter().all(|&x| x == (i + 1) as f32),
                    "piece {i}"
                );
                at += len;
            }
            assert!(buf[at..].iter().all(|&x| x == 0.0), "past the pieces");
        }
    }
}
