//! Cache-line hints for attention's reads of the KV pool: a unit's first blocks before it
//! starts, and each later block a few blocks ahead of the one it reads.

use super::attention::RowCtx;
use super::simd::prefetch;
use crate::kv::{KvElement, KvView};

/// Blocks a unit hints in ahead of the one it reads, keys in the score pass and values in the
/// weighted sum. Measured with forward_speed (2 threads, warm KV, against hinting the whole
/// context up front, five interleaved pairs, all five won): one row decoding at 1,024-1,152
/// positions best 313 → 337 tok/s, eight rows at 512-576 positions 1,010 → 1,146, eight rows at
/// 6-134 positions 1,851 → 1,937 (2 blocks ahead gained less than 4, 6 and 8 no more). Hinting
/// a long context all at once asked for more lines than the cache keeps: at 1,024 positions a kv
/// head's keys and values are 256 KB, L1 is 48 KB.
pub(super) const HINT_BLOCKS_AHEAD: usize = 4;

/// Hints in the cache lines of the first [`HINT_BLOCKS_AHEAD`] blocks of one kv head's keys and
/// values that a row reads, before it reads any; the kernels hint each later block that far
/// ahead as they go (`hint_keys`, `hint_values`). A unit reads a few KB from each of its
/// sequence's blocks, and each block's tile lies elsewhere in the pool, long evicted by the
/// step's weight stream: read in order, every block starts with a wait on memory that the
/// hardware prefetcher cannot see coming (perf put three quarters of attention's samples on its
/// key and value loads). Asked for ahead, the waits overlap. Measured with forward_speed (2
/// threads, interleaved best of 6): eight-row decode 1688 → 1749 tok/s. Every row hinting its
/// whole context cost a 512-token prefill 6%, hence only the first row of a sequence's chunk.
pub(super) fn prefetch_kv_head<E: KvElement>(
    kv: &KvView<'_, E>,
    layer: usize,
    row: &RowCtx<'_>,
    kv_off: usize,
    hd: usize,
) {
    for b in 0..HINT_BLOCKS_AHEAD {
        hint_keys(kv, layer, row, b, kv_off, hd);
        hint_values(kv, layer, row, b, kv_off, hd);
    }
}

/// Hints in one kv head's keys of the row's block `b` (nothing past the row's last block).
#[inline(always)]
pub(super) fn hint_keys<E: KvElement>(
    kv: &KvView<'_, E>,
    layer: usize,
    row: &RowCtx<'_>,
    b: usize,
    kv_off: usize,
    hd: usize,
) {
    let bs = kv.block_size();
    if let Some(block) = read_block(row, b, bs) {
        // the transposed key tile: this head's dimensions are one contiguous run of positions
        prefetch(kv.keys(layer, block), kv_off * bs, hd * bs);
        if E::SCALED {
            prefetch(kv.key_scales(layer, block), kv_off / hd * bs, bs);
        }
    }
}

/// Hints in one kv head's values (`hd` from `kv_off` in each position's row) of the row's block
/// `b` (nothing past the row's last block).
#[inline(always)]
pub(super) fn hint_values<E: KvElement>(
    kv: &KvView<'_, E>,
    layer: usize,
    row: &RowCtx<'_>,
    b: usize,
    kv_off: usize,
    hd: usize,
) {
    let (bs, kv_dim) = (kv.block_size(), kv.kv_dim());
    if let Some(block) = read_block(row, b, bs) {
        let values = kv.values(layer, block);
        for slot in 0..bs.min(row.pos + 1 - b * bs) {
            prefetch(values, slot * kv_dim + kv_off, hd);
        }
        if E::SCALED {
            prefetch(kv.value_scales(layer, block), kv_off / hd * bs, bs);
        }
    }
}

/// The row's block `b` if the row reads it (blocks past its last position are not hinted).
#[inline(always)]
fn read_block(row: &RowCtx<'_>, b: usize, bs: usize) -> Option<u32> {
    (b < (row.pos + 1).div_ceil(bs)).then(|| row.blocks.get(b).copied())?
}
