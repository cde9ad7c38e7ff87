//! The block pool: one allocation sized by a memory budget, handed out a block at a time.

use super::element::{q8_of, q8_scale};
use super::{KvElement, KvStore, KvType, SeqKv};
use crate::config::ModelConfig;
use crate::{Error, Result};

/// Fixed-size KV blocks from one pool. A block holds `block_size` consecutive positions of one
/// sequence for every layer; per layer and block, K and V are each one contiguous tile. Values
/// are `[n_head_kv][block_size][head_dim]`: attention adds whole value vectors, and one head's
/// values for a block are one contiguous run (2 KB at f16, head_dim 64, 16 positions), which
/// streams from memory nearly twice as fast as the 128-byte pieces a position-major tile gives
/// one head. Keys are `[n_head_kv][head_dim][block_size]`: attention scores a query against all
/// of a block's positions at once, one position per SIMD lane, with no horizontal sums. A q8
/// pool's scales are `[n_head_kv][block_size]` per layer and block, for keys and for values
/// alike: one block's scales of a head are the 16 lanes a key tile's scores are multiplied by.
pub struct KvBlockPool {
    block_size: usize,
    n_layer: usize,
    /// Elements of one position's keys (or values) in one layer: n_head_kv * head_dim.
    kv_dim: usize,
    head_dim: usize,
    keys: KvStore,
    values: KvStore,
    /// Stack of free block ids; popped from the end so low ids are handed out first.
    free: Vec<u32>,
    /// Which blocks are handed out, so a foreign or stale `SeqKv` can never push a block onto the
    /// free list twice.
    in_use: Vec<bool>,
}

/// The tiles of a pool whose elements are `E`, for attention to read.
pub(crate) struct KvView<'a, E> {
    keys: &'a [E],
    values: &'a [E],
    /// Per head vector, for a scaled element type; empty otherwise.
    key_scales: &'a [f32],
    value_scales: &'a [f32],
    block_size: usize,
    n_layer: usize,
    kv_dim: usize,
    head_dim: usize,
}

impl<E> KvView<'_, E> {
    pub(crate) fn block_size(&self) -> usize {
        self.block_size
    }

    /// Elements of one position's keys (or values) for one layer.
    pub(crate) fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    pub(crate) fn head_dim(&self) -> usize {
        self.head_dim
    }

    fn tile_range(&self, layer: usize, block: u32) -> std::ops::Range<usize> {
        let start = tile_start(self.n_layer, self.block_size * self.kv_dim, layer, block);
        start..start + self.block_size * self.kv_dim
    }

    /// Keys of `layer` in `block`: `[kv_dim][block_size]`. The caller has checked the id with
    /// [`KvBlockPool::owns`].
    pub(crate) fn keys(&self, layer: usize, block: u32) -> &[E] {
        &self.keys[self.tile_range(layer, block)]
    }

    /// Values of `layer` in `block`: `[n_head_kv][block_size][head_dim]`.
    pub(crate) fn values(&self, layer: usize, block: u32) -> &[E] {
        &self.values[self.tile_range(layer, block)]
    }

    /// Where the values of position `slot` of the kv head at `kv_off` start in a value tile;
    /// the head's later positions follow back to back.
    #[inline(always)]
    pub(crate) fn value_start(&self, kv_off: usize, slot: usize) -> usize {
        value_start(self.block_size, self.head_dim, kv_off, slot)
    }

    fn scales_range(&self, layer: usize, block: u32) -> std::ops::Range<usize> {
        let per_tile = self.block_size * self.kv_dim / self.head_dim;
        let start = tile_start(self.n_layer, per_tile, layer, block);
        start..start + per_tile
    }

    /// The scales of `layer`'s keys in `block`, `[n_head_kv][block_size]` (a scaled element
    /// type only; empty otherwise).
    pub(crate) fn key_scales(&self, layer: usize, block: u32) -> &[f32] {
        self.key_scales
            .get(self.scales_range(layer, block))
            .unwrap_or(&[])
    }

    /// The scales of `layer`'s values in `block`, laid out as [`key_scales`](Self::key_scales).
    pub(crate) fn value_scales(&self, layer: usize, block: u32) -> &[f32] {
        self.value_scales
            .get(self.scales_range(layer, block))
            .unwrap_or(&[])
    }
}

/// Bytes of one block's keys and values (`elems` elements each, one scale per `head_dim` of
/// them where the type has scales); None on overflow.
fn bytes_per_block(kv_type: KvType, elems: usize, head_dim: usize) -> Option<usize> {
    let scales = (elems / head_dim.max(1)).checked_mul(kv_type.scale_size())?;
    elems
        .checked_mul(kv_type.size())?
        .checked_add(scales)?
        .checked_mul(2)
}

/// Where `layer`'s key (and value) tile of `block` starts in its store (tiles of `tile`
/// elements): blocks hold every layer's tiles back to back.
fn tile_start(n_layer: usize, tile: usize, layer: usize, block: u32) -> usize {
    (block as usize * n_layer + layer) * tile
}

/// Where, in a value tile (`[n_head_kv][block_size][head_dim]`), the values of position `slot`
/// of the kv head at `kv_off` (its offset in a position's `kv_dim` values) start.
#[inline(always)]
fn value_start(block_size: usize, head_dim: usize, kv_off: usize, slot: usize) -> usize {
    kv_off * block_size + slot * head_dim
}

impl KvBlockPool {
    /// Creates a pool of the default element type ([`KvType::F16`]) with as many blocks as fit
    /// in `budget_bytes`.
    ///
    /// Errors: `InvalidRequest` for a zero block size or a model without kv heads;
    /// `ResourceExhausted` when the budget does not hold even one block.
    pub fn new(cfg: &ModelConfig, block_size: usize, budget_bytes: usize) -> Result<Self> {
        Self::with_type(cfg, block_size, budget_bytes, KvType::default())
    }

    /// [`new`](Self::new) storing `kv_type` elements.
    pub fn with_type(
        cfg: &ModelConfig,
        block_size: usize,
        budget_bytes: usize,
        kv_type: KvType,
    ) -> Result<Self> {
        if block_size == 0 {
            return Err(Error::invalid_request("KV block size must be at least 1"));
        }
        let kv_dim = cfg.n_head_kv.checked_mul(cfg.head_dim).unwrap_or(0);
        if kv_dim == 0 || cfg.n_layer == 0 {
            return Err(Error::invalid_request(
                "model has no layers or no kv heads to cache",
            ));
        }
        let tile = block_size
            .checked_mul(kv_dim)
            .ok_or_else(|| Error::invalid_request("KV block size is too large"))?;
        let elems_per_block = tile
            .checked_mul(cfg.n_layer)
            .ok_or_else(|| Error::invalid_request("KV block size is too large"))?;
        let bytes_per_block = bytes_per_block(kv_type, elems_per_block, cfg.head_dim)
            .ok_or_else(|| Error::invalid_request("KV block size is too large"))?;
        // Block ids are u32; a pool past that would need >4G blocks, far beyond any budget.
        let total = (budget_bytes / bytes_per_block).min(u32::MAX as usize);
        if total == 0 {
            return Err(Error::resource_exhausted(format!(
                "KV budget of {budget_bytes} bytes is below one block ({bytes_per_block} bytes \
                 for {block_size} positions over {} layers)",
                cfg.n_layer
            )));
        }
        // total * elems_per_block * 2 * size <= budget_bytes, so this cannot overflow.
        let elems = total * elems_per_block;
        Ok(Self {
            block_size,
            n_layer: cfg.n_layer,
            kv_dim,
            head_dim: cfg.head_dim,
            keys: KvStore::zeroed(kv_type, elems, cfg.head_dim),
            values: KvStore::zeroed(kv_type, elems, cfg.head_dim),
            free: (0..total as u32).rev().collect(),
            in_use: vec![false; total],
        })
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn kv_type(&self) -> KvType {
        self.keys.kind()
    }

    pub fn total_blocks(&self) -> usize {
        self.in_use.len()
    }

    pub fn free_blocks(&self) -> usize {
        self.free.len()
    }

    /// Bytes of K plus V storage in one block (all layers), scales included.
    pub fn bytes_per_block(&self) -> usize {
        let elems = self.n_layer * self.block_size * self.kv_dim;
        // Fits: `with_type` computed the same product with checks.
        bytes_per_block(self.kv_type(), elems, self.head_dim).unwrap_or(usize::MAX)
    }

    /// Blocks `seq` must still take from the pool to hold `extra_tokens` more positions.
    pub fn blocks_needed(&self, seq: &SeqKv, extra_tokens: usize) -> usize {
        let want = seq
            .len
            .saturating_add(extra_tokens)
            .div_ceil(self.block_size);
        want.saturating_sub(seq.blocks.len())
    }

    /// Makes room for `extra_tokens` more positions. All or nothing: on `ResourceExhausted`
    /// the sequence and the pool are unchanged.
    pub fn reserve(&mut self, seq: &mut SeqKv, extra_tokens: usize) -> Result<()> {
        let needed = self.blocks_needed(seq, extra_tokens);
        if needed > self.free.len() {
            return Err(Error::resource_exhausted(format!(
                "KV cache full: {needed} blocks needed, {} free of {}",
                self.free.len(),
                self.total_blocks()
            )));
        }
        seq.blocks.reserve(needed);
        for _ in 0..needed {
            // Cannot fail: `needed <= free.len()` was checked above.
            if let Some(id) = self.free.pop() {
                self.in_use[id as usize] = true;
                seq.blocks.push(id);
            }
        }
        Ok(())
    }

    /// Returns all of `seq`'s blocks to the pool and empties it.
    pub fn release(&mut self, seq: &mut SeqKv) {
        self.truncate(seq, 0);
    }

    /// Keeps the first `len` positions (or all, if `len` is past the end) and returns every block
    /// past the one holding the last kept position, including blocks that were reserved but never
    /// written.
    pub fn truncate(&mut self, seq: &mut SeqKv, len: usize) {
        let len = len.min(seq.len);
        let keep = len.div_ceil(self.block_size);
        if keep < seq.blocks.len() {
            for id in seq.blocks.drain(keep..).rev() {
                self.give_back(id);
            }
        }
        seq.len = len;
    }

    fn give_back(&mut self, id: u32) {
        // A block not marked in use belongs to no live sequence (a SeqKv from another pool, or
        // a stale copy): pushing it would let two sequences share it later.
        if let Some(flag) = self.in_use.get_mut(id as usize) {
            if *flag {
                *flag = false;
                self.free.push(id);
            }
        }
    }

    /// Elements of one position's keys (or values) for one layer.
    pub(crate) fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    /// Whether `id` is a block of this pool that is currently handed out.
    pub(crate) fn owns(&self, id: u32) -> bool {
        self.in_use.get(id as usize).copied().unwrap_or(false)
    }

    fn tile_start(&self, layer: usize, block: u32) -> usize {
        tile_start(self.n_layer, self.block_size * self.kv_dim, layer, block)
    }

    /// The tiles, if this pool stores `E` (attention asks for the type [`kv_type`](Self::kv_type)
    /// names).
    pub(crate) fn view<E: KvElement>(&self) -> Option<KvView<'_, E>> {
        Some(KvView {
            keys: E::elements(&self.keys)?,
            values: E::elements(&self.values)?,
            key_scales: self.keys.scales(),
            value_scales: self.values.scales(),
            block_size: self.block_size,
            n_layer: self.n_layer,
            kv_dim: self.kv_dim,
            head_dim: self.head_dim,
        })
    }

    /// Hints in the cache lines [`write`](Self::write) will store to for this position: in the
    /// transposed key tile one position's keys touch a line per key dimension or two, and a
    /// tile last read a whole step ago has left the caches, so a write without this waits on
    /// memory once per line (measured: the KV writes took 5% of an eight-row decode step).
    pub(crate) fn prefetch_slot(&self, layer: usize, block: u32, slot: usize) {
        let tile = self.tile_start(layer, block);
        // dimensions whose key rows share a 64-byte line
        let step = (64 / (self.block_size * self.kv_type().size())).max(1);
        for d in (0..self.kv_dim).step_by(step) {
            self.keys.prefetch(tile + d * self.block_size + slot, 1);
        }
        for kv_off in (0..self.kv_dim).step_by(self.head_dim) {
            let at = value_start(self.block_size, self.head_dim, kv_off, slot);
            self.values.prefetch(tile + at, self.head_dim);
        }
    }

    /// Stores one position's keys and values (each `kv_dim` long) for `layer`.
    pub(crate) fn write(&mut self, layer: usize, block: u32, slot: usize, k: &[f32], v: &[f32]) {
        match self.kv_type() {
            KvType::F16 => self.write_as::<half::f16>(layer, block, slot, k, v),
            KvType::F32 => self.write_as::<f32>(layer, block, slot, k, v),
            KvType::Q8 => self.write_q8(layer, block, slot, k, v),
        }
    }

    /// `write` for a q8 pool: each kv head's key and value vectors in units of their own scale.
    fn write_q8(&mut self, layer: usize, block: u32, slot: usize, k: &[f32], v: &[f32]) {
        let (tile, n, bs, hd) = (
            self.tile_start(layer, block),
            self.kv_dim,
            self.block_size,
            self.head_dim,
        );
        let scales_at = tile / hd;
        if let KvStore::Q8(keys, scales) = &mut self.keys {
            for (h, x) in k[..n].chunks_exact(hd).enumerate() {
                let scale = q8_scale(x);
                for (d, &x) in x.iter().enumerate() {
                    keys[tile + (h * hd + d) * bs + slot] = q8_of(x, scale);
                }
                scales[scales_at + h * bs + slot] = scale;
            }
        }
        if let KvStore::Q8(values, scales) = &mut self.values {
            for (h, x) in v[..n].chunks_exact(hd).enumerate() {
                let scale = q8_scale(x);
                let at = tile + value_start(bs, hd, h * hd, slot);
                for (dst, &x) in values[at..at + hd].iter_mut().zip(x) {
                    *dst = q8_of(x, scale);
                }
                scales[scales_at + h * bs + slot] = scale;
            }
        }
    }

    fn write_as<E: KvElement>(
        &mut self,
        layer: usize,
        block: u32,
        slot: usize,
        k: &[f32],
        v: &[f32],
    ) {
        let tile = self.tile_start(layer, block);
        let (n, bs, hd) = (self.kv_dim, self.block_size, self.head_dim);
        // Both stores hold elements of one type (`with_type` builds them so).
        if let Some(keys) = E::elements_mut(&mut self.keys) {
            for (d, &x) in k.iter().enumerate().take(n) {
                keys[tile + d * bs + slot] = E::from_f32(x);
            }
        }
        if let Some(values) = E::elements_mut(&mut self.values) {
            for (h, x) in v[..n].chunks_exact(hd).enumerate() {
                let at = tile + value_start(bs, hd, h * hd, slot);
                for (dst, &x) in values[at..at + hd].iter_mut().zip(x) {
                    *dst = E::from_f32(x);
                }
            }
        }
    }
}
