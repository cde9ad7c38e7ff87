//! Paged KV cache: every sequence's keys and values live in fixed-size blocks taken from one pool
//! whose size is fixed up front by a memory budget, so memory use is bounded no matter how many
//! sequences run, and a sequence grows one block at a time instead of reserving its whole context.

mod element;
mod pool;
mod seq;

pub use element::KvType;
#[cfg(test)]
pub(crate) use element::{q8_of, q8_scale};
pub(crate) use element::{KvElement, KvStore};
pub use pool::KvBlockPool;
pub(crate) use pool::KvView;
pub use seq::SeqKv;
