//! Data-parallel work on the one thread pool the forward pass uses (candle's persistent barrier
//! pool, which our matmul kernels share). Everything parallel goes through it: a second pool
//! (rayon's) would spin its idle workers against this one's on the same cores.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Grabs per thread: enough that a thread the OS took away for a while leaves its share to the
/// others, few enough that the shared cursor stays cheap.
const GRABS_PER_THREAD: usize = 8;

/// Splits `buf` into consecutive pieces of the given lengths (their sum at most `buf.len()`) and
/// runs `f(state, i, piece_i)` for every piece on the pool, each piece exactly once; `init`
/// makes one `state` per run of consecutive pieces (scratch buffers).
///
/// Threads take runs of pieces from one atomic cursor. Pieces are handed out as disjoint `&mut`
/// slices without a lock each: a per-piece mutex cost two locked instructions per piece, and
/// each of those waits for the piece's output stores to drain (measured: 6% of a batched decode
/// step's samples sat on the unlock).
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
    let n = bounds.len() - 1;
    if n == 0 {
        return;
    }
    let pieces = Pieces {
        base: buf.as_mut_ptr(),
        bounds: &bounds,
        _buf: PhantomData,
    };
    let pool = candle_core::utils::barrier_pool();
    let chunk = n.div_ceil((pool.n_workers() + 1) * GRABS_PER_THREAD).max(1);
    let cursor = AtomicUsize::new(0);
    let run = |_thread: usize| {
        let mut state = None;
        loop {
            let start = cursor.fetch_add(chunk, Ordering::Relaxed);
            if start >= n {
                break;
            }
            let state = state.get_or_insert_with(&init);
            for i in start..n.min(start + chunk) {
                // SAFETY: `i` comes from one range of the cursor, and the cursor's ranges are
                // disjoint, so no other call holds piece `i`.
                f(state, i, unsafe { pieces.get(i) });
            }
        }
    };
    pool.execute(run);
}

/// `buf` cut at `bounds` (increasing, within `buf`), shared by the pool's threads.
struct Pieces<'a> {
    base: *mut f32,
    bounds: &'a [usize],
    _buf: PhantomData<&'a mut [f32]>,
}

// SAFETY: `get` hands each piece to one caller only (its contract), so sharing the pointer across
// threads never makes two live `&mut` to the same elements.
unsafe impl Sync for Pieces<'_> {}

impl Pieces<'_> {
    /// Piece `i`. SAFETY: at most one live result per `i` at a time.
    #[allow(clippy::mut_from_ref)] // exclusive per index by the caller's contract, as above
    unsafe fn get(&self, i: usize) -> &mut [f32] {
        let (start, end) = (self.bounds[i], self.bounds[i + 1]);
        // SAFETY: start <= end <= buf.len() (checked when the bounds were built); the caller
        // guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(start), end - start) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
