//! One sequence's view of the pool: which blocks it holds and how many positions are written.

/// The KV blocks owned by one sequence, in position order: position `p` lives in block
/// `blocks[p / block_size]`, slot `p % block_size`. Blocks return to the pool only through
/// [`KvBlockPool::release`](super::KvBlockPool::release) or
/// [`truncate`](super::KvBlockPool::truncate); dropping a `SeqKv` without releasing it leaks its
/// blocks for the pool's lifetime.
#[derive(Debug, Default)]
pub struct SeqKv {
    pub(super) blocks: Vec<u32>,
    pub(super) len: usize,
}

impl SeqKv {
    /// Positions whose keys and values are written.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn blocks(&self) -> &[u32] {
        &self.blocks
    }

    /// Marks `n` more positions as written. Only the forward pass calls this, after it has
    /// written them, so `len` never counts a position whose keys are missing.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
