//! KV kept between a session's turns. The transcript is the truth and this is only a cache: an
//! idle session's KV may be evicted (least recently used first) whenever a running sequence
//! needs blocks, and the session's next turn then re-prefills what is missing.

use std::collections::HashMap;

use crate::error::Result;
use crate::kv::{KvBlockPool, SeqKv};

/// Identifies whose resident KV a request continues (the Python session layer assigns them).
pub type SessionKey = u64;

pub(super) struct Resident {
    pub kv: SeqKv,
    /// The tokens whose keys and values `kv` holds, in order.
    pub tokens: Vec<u32>,
    last_used: u64,
}

#[derive(Default)]
pub(super) struct ResidentStore {
    map: HashMap<SessionKey, Resident>,
    clock: u64,
}

impl ResidentStore {
    pub fn take(&mut self, key: SessionKey) -> Option<Resident> {
        self.map.remove(&key)
    }

    pub fn put(&mut self, key: SessionKey, kv: SeqKv, mut tokens: Vec<u32>) {
        tokens.truncate(kv.len());
        self.clock += 1;
        self.map.insert(
            key,
            Resident {
                kv,
                tokens,
                last_used: self.clock,
            },
        );
    }

    /// The tokens whose KV `key` holds, if any.
    pub fn tokens(&self, key: SessionKey) -> Option<&[u32]> {
        self.map.get(&key).map(|r| r.tokens.as_slice())
    }

    /// Tokens resident for `key` (0 when nothing is cached).
    pub fn resident_tokens(&self, key: SessionKey) -> usize {
        self.map.get(&key).map_or(0, |r| r.kv.len())
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn drop_key(&mut self, key: SessionKey, pool: &mut KvBlockPool) -> bool {
        match self.map.remove(&key) {
            Some(mut r) => {
                pool.release(&mut r.kv);
                true
            }
            None => false,
        }
    }

    /// Free the least recently used resident KV; false when there is none left.
    fn evict_lru(&mut self, pool: &mut KvBlockPool) -> bool {
        let Some(&key) = self
            .map
            .iter()
            .min_by_key(|(_, r)| r.last_used)
            .map(|(k, _)| k)
        else {
            return false;
        };
        self.drop_key(key, pool)
    }
}

/// Reserve room for `extra` more tokens, evicting idle sessions' KV while the pool is short.
pub(super) fn reserve_evicting(
    pool: &mut KvBlockPool,
    store: &mut ResidentStore,
    kv: &mut SeqKv,
    extra: usize,
) -> Result<()> {
    loop {
        match pool.reserve(kv, extra) {
            Ok(()) => return Ok(()),
            Err(e) => {
                if !store.evict_lru(pool) {
                    return Err(e);
                }
            }
        }
    }
}

/// How many leading tokens two sequences share.
pub(super) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}
