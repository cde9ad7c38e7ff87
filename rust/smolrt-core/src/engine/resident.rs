//! KV kept between a session's turns. The transcript is the truth and this is only a cache: an
//! idle session's KV may be evicted (least recently used first) whenever a running sequence
//! needs blocks, and the session's next turn then re-prefills what is missing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::Result;
use crate::kv::{KvBlockPool, SeqKv};

/// Identifies whose resident KV a request continues (the Python session layer assigns them).
pub type SessionKey = u64;

pub(super) struct Resident {
    pub kv: SeqKv,
    /// The tokens whose keys and values `kv` holds, in order (shared with the directory).
    pub tokens: Arc<[u32]>,
    last_used: u64,
}

#[derive(Default)]
pub(super) struct ResidentStore {
    map: HashMap<SessionKey, Resident>,
    clock: u64,
    directory: ResidentDirectory,
}

/// Which tokens each session has resident, readable without the engine: a server asks it how
/// much of a new turn's prompt is cached while a step runs (the engine's lock would make it
/// wait for the step, and a server's event loop with it). The store keeps it in step with
/// every change; between two changes it shows the last.
#[derive(Clone, Default)]
pub struct ResidentDirectory(Arc<Mutex<HashMap<SessionKey, Arc<[u32]>>>>);

impl ResidentDirectory {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<SessionKey, Arc<[u32]>>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// How many leading tokens of `prompt` a request under `key` would not prefill again.
    pub fn cached_prefix(&self, key: SessionKey, prompt: &[u32]) -> usize {
        let tokens = self.with(|map| map.get(&key).cloned());
        tokens.map_or(0, |resident| reusable(&resident, prompt))
    }

    /// Tokens of `key`'s conversation whose KV is resident (0 when nothing is cached).
    pub fn resident_tokens(&self, key: SessionKey) -> usize {
        self.with(|map| map.get(&key).map_or(0, |t| t.len()))
    }

    /// Show `key` as not resident ahead of the store, for a drop queued for the next step (see
    /// [`Engine::drop_session`](super::Engine::drop_session)): nothing admitted after it could
    /// reuse that KV any more. Returns whether it was resident.
    pub fn forget(&self, key: SessionKey) -> bool {
        self.with(|map| map.remove(&key)).is_some()
    }
}

impl ResidentStore {
    pub fn take(&mut self, key: SessionKey) -> Option<Resident> {
        self.directory.with(|map| map.remove(&key));
        self.map.remove(&key)
    }

    pub fn put(&mut self, key: SessionKey, kv: SeqKv, mut tokens: Vec<u32>) {
        tokens.truncate(kv.len());
        let tokens: Arc<[u32]> = tokens.into();
        self.directory
            .with(|map| map.insert(key, Arc::clone(&tokens)));
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

    pub fn directory(&self) -> ResidentDirectory {
        self.directory.clone()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn drop_key(&mut self, key: SessionKey, pool: &mut KvBlockPool) -> bool {
        self.directory.with(|map| map.remove(&key));
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

/// The resident prefix a prompt can reuse: what both share, less at least one prompt token,
/// since the last prompt token must be fed to get the logits for the first new one.
pub(super) fn reusable(resident: &[u32], prompt: &[u32]) -> usize {
    common_prefix(resident, prompt).min(prompt.len().saturating_sub(1))
}

/// How many leading tokens two sequences share.
pub(super) fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Architecture, ModelConfig};

    fn pool() -> KvBlockPool {
        let cfg = ModelConfig {
            architecture: Architecture::Llama,
            n_layer: 1,
            n_embd: 8,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 4,
            n_ff: 8,
            context_length: 64,
            vocab_size: 100,
            rope_freq_base: 10000.0,
            rope_dim: 4,
            rms_eps: 1e-5,
            use_rope: vec![true],
            tied_embeddings: true,
        };
        // 4 positions a block, room for 4 blocks
        KvBlockPool::new(&cfg, 4, 4 * 4 * 2 * 4 * 2).unwrap()
    }

    fn written(pool: &mut KvBlockPool, n: usize) -> SeqKv {
        let mut kv = SeqKv::default();
        pool.reserve(&mut kv, n).unwrap();
        kv.advance(n);
        kv
    }

    #[test]
    fn the_directory_follows_every_change_of_the_store() {
        let mut pool = pool();
        let mut store = ResidentStore::default();
        let dir = store.directory();
        // the last token (sampled, not fed) has no KV: it is not resident
        let kv = written(&mut pool, 5);
        store.put(7, kv, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(dir.resident_tokens(7), 5);
        assert_eq!(dir.cached_prefix(7, &[1, 2, 3, 9]), 3);
        // at least one prompt token is always fed again
        assert_eq!(dir.cached_prefix(7, &[1, 2, 3]), 2);
        assert_eq!(dir.cached_prefix(8, &[1, 2, 3]), 0);

        let taken = store.take(7).unwrap();
        assert_eq!(dir.resident_tokens(7), 0);
        store.put(7, taken.kv, taken.tokens.to_vec());
        let kv = written(&mut pool, 4);
        store.put(8, kv, vec![5, 6, 7, 8]);
        assert_eq!((dir.resident_tokens(7), dir.resident_tokens(8)), (5, 4));

        // 7 is the least recently used: a reservation that needs its blocks evicts it
        let mut more = SeqKv::default();
        reserve_evicting(&mut pool, &mut store, &mut more, 8).unwrap();
        assert_eq!((dir.resident_tokens(7), dir.resident_tokens(8)), (0, 4));
        assert!(store.drop_key(8, &mut pool));
        assert_eq!(dir.resident_tokens(8), 0);
        pool.release(&mut more);
    }
}
