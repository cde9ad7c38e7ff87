//! Data-parallel work on the one thread pool the forward pass uses (candle's persistent barrier
//! pool, which our matmul kernels share). Everything parallel goes through it: a second pool
//! (rayon's) would spin its idle workers against this one's on the same cores.

use std::sync::Mutex;

/// Splits `buf` into consecutive pieces of the given lengths and runs `f(state, i, piece_i)` for
/// every piece on the pool, each piece exactly once; `init` makes one `state` per run of
/// consecutive pieces (scratch buffers). The Mutex makes each piece's exclusive ownership
/// checkable at no real cost: each lock is taken once, uncontended.
pub(crate) fn for_each_piece<S>(
    buf: &mut [f32],
    lens: impl IntoIterator<Item = usize>,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, &mut [f32]) + Sync,
) {
    let mut pieces = Vec::new();
    let mut rest = buf;
    for len in lens {
        let (piece, tail) = rest.split_at_mut(len);
        pieces.push(Mutex::new(piece));
        rest = tail;
    }
    candle_core::utils::barrier_pool().execute_chunked(pieces.len(), |range| {
        let mut state = init();
        for i in range {
            if let Ok(mut piece) = pieces[i].lock() {
                f(&mut state, i, &mut piece);
            }
        }
    });
}
