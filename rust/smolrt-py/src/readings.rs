//! What Python reads about the engine without taking its lock: KV pool occupancy and the
//! sessions' resident tokens. A step holds the engine's lock for its whole length (a third of a
//! second for a 512-token prefill chunk on two cores), and a server reads these on its event
//! loop (GetStats, /metrics, a session's new turn), which would serve nothing else meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};

use smolrt_core::engine::{Engine, ResidentDirectory};

/// The KV pool's shape (fixed at load) and its free blocks as of the last time the engine's
/// lock was let go (see `stepper::EngineGuard`).
pub struct KvReading {
    pub total_blocks: usize,
    pub block_size: usize,
    pub bytes_per_block: usize,
    pub kv_type: &'static str,
    free_blocks: AtomicUsize,
}

impl KvReading {
    pub fn free_blocks(&self) -> usize {
        self.free_blocks.load(Ordering::Relaxed)
    }
}

pub struct Readings {
    pub kv: KvReading,
    pub residents: ResidentDirectory,
}

impl Readings {
    pub fn of(engine: &Engine) -> Self {
        let pool = engine.pool();
        Self {
            kv: KvReading {
                total_blocks: pool.total_blocks(),
                block_size: pool.block_size(),
                bytes_per_block: pool.bytes_per_block(),
                kv_type: pool.kv_type().name(),
                free_blocks: AtomicUsize::new(pool.free_blocks()),
            },
            residents: engine.resident_directory(),
        }
    }

    /// Takes in what may have changed while the engine's lock was held.
    pub fn refresh(&self, engine: &Engine) {
        let free = engine.pool().free_blocks();
        self.kv.free_blocks.store(free, Ordering::Relaxed);
    }
}
