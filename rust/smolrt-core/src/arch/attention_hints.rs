//! Cache-line hints for attention's reads of the KV pool: a unit's first blocks into L2 before
//! it starts, and each later block a few blocks ahead of the one it reads.

use super::attention::RowCtx;
use super::simd::{prefetch_into, TO_L1, TO_L2};
use crate::kv::{KvElement, KvView};

/// Blocks a unit hints in ahead of the one it reads, keys in the score pass and values in the
/// weighted sum. Measured with forward_speed (2 threads, warm KV, against hinting the whole
/// context up front, five interleaved pairs, all five won): one row decoding at 1,024-1,152
/// positions best 313 → 337 tok/s, eight rows at 512-576 positions 1,010 → 1,146, eight rows at
/// 6-134 positions 1,851 → 1,937 (2 blocks ahead gained less than 4, 6 and 8 no more). Hinting
/// a long context all at once asked for more lines than the cache keeps: at 1,024 positions a kv
/// head's keys and values are 256 KB, L1 is 48 KB.
const HINT_BLOCKS_AHEAD: usize = 4;

/// Blocks ahead of the score pass that its keys are hinted into L2 only (see
/// [`hint_score_pass`]).
const L2_KEY_BLOCKS_AHEAD: usize = 2 * HINT_BLOCKS_AHEAD;

/// The hints of the score pass at block `b` of a unit: that head's keys of block
/// `b + HINT_BLOCKS_AHEAD` into L1 for the pass itself, and into L2 only, for later, the keys
/// `L2_KEY_BLOCKS_AHEAD` blocks on and the values of block `b + HINT_BLOCKS_AHEAD`, which the
/// weighted sum reads after the scores (it hints them on into L1 as it goes).
///
/// Hints into L1 alone could not keep enough lines on their way: L1 tracks a few dozen
/// outstanding misses, so the reads waited on memory latency, not bandwidth (eight rows at
/// 512-576 positions read ~200 MB a step, ~106 MB of it keys and values, in ~14 ms: 14 GB/s,
/// under half of what one row's weights stream at). L2 keeps more lines in flight and holds a
/// whole unit (a 256-position chunk of a kv head is 64 KB in f16). Measured with forward_speed
/// (2 threads, warm KV, interleaved runs; the host alternated between two speeds, so per speed):
/// eight rows at 512-576 positions 503-561 → 569-650 tok/s and 335-373 → 379-432 (two runs); one
/// row at 1,024-1,152 positions medians 180 → 181 and 170 → 182 (two runs); eight rows at 0-128
/// positions and a 512-token prefill within the noise. Keys 12 or 16 blocks ahead, values 8
/// ahead, or the values hinted into L1 gained less.
#[inline(always)]
pub(super) fn hint_score_pass<E: KvElement>(
    kv: &KvView<'_, E>,
    layer: usize,
    row: &RowCtx<'_>,
    b: usize,
    kv_off: usize,
    hd: usize,
) {
    hint_keys::<E, TO_L1>(kv, layer, row, b + HINT_BLOCKS_AHEAD, kv_off, hd);
    hint_keys::<E, TO_L2>(kv, layer, row, b + L2_KEY_BLOCKS_AHEAD, kv_off, hd);
    hint_values::<E, TO_L2>(kv, layer, row, b + HINT_BLOCKS_AHEAD, kv_off, hd);
}

/// The hint of the weighted sum at block `b` of a unit: that head's values of block
/// `b + HINT_BLOCKS_AHEAD` on into L1 (the score pass brought them into L2).
#[inline(always)]
pub(super) fn hint_value_pass<E: KvElement>(
    kv: &KvView<'_, E>,
    layer: usize,
    row: &RowCtx<'_>,
    b: usize,
    kv_off: usize,
    hd: usize,
) {
    hint_values::<E, TO_L1>(kv, layer, row, b + HINT_BLOCKS_AHEAD, kv_off, hd);
}

/// Hints in the cache lines of the first [`L2_KEY_BLOCKS_AHEAD`] blocks of one kv head's keys
/// and values that a row reads, into L2, before it reads any. The kernels read the first four
/// from there, and as they go hint each later block into L1 four blocks ahead (and, into L2
/// only, the keys eight ahead: `hint_score_pass`, `hint_value_pass`). A unit reads a few KB from each of its sequence's blocks, and each block's tile lies elsewhere
/// in the pool, long evicted by the step's weight stream: read in order, every block starts
/// with a wait on memory that the hardware prefetcher cannot see coming (perf put three quarters
/// of attention's samples on its key and value loads). Asked for ahead, the waits overlap.
/// Every row hinting its whole context cost a 512-token prefill 6%, hence only the first row of
/// a sequence's chunk.
///
/// Into L2, and 8 blocks: the first 4 blocks into L1 (256 lines at once, far more than L1 has
/// miss slots for) stalled each unit's start. Measured with forward_speed (2 threads, warm KV,
/// steps alternating between the two within one process, medians of 128 each): eight rows at
/// 30-286 positions 7.99 → 7.56, 14.93 → 14.22 and 13.26 → 12.57 ms a step, at 92-348 8.74 →
/// 8.21, at 512-768 21.64 → 18.69 and 14.29 → 12.78; one row at 1,024-1,280 positions 5.44 →
/// 4.96 and 6.73 → 6.31, one row at 6-262 3.63 → 3.58 and 4.17 → 4.16. The first 4 blocks into
/// L2 gained less at short contexts (2.5-4.9% against 4.8-5.4%), 16 blocks no more than 8, and
/// the first block's keys into L1 besides nothing.
pub(super) fn prefetch_kv_head<E: KvElement>(
    kv: &KvView<'_, E>,
    layer: usize,
    row: &RowCtx<'_>,
    kv_off: usize,
    hd: usize,
) {
    for b in 0..L2_KEY_BLOCKS_AHEAD {
        hint_keys::<E, TO_L2>(kv, layer, row, b, kv_off, hd);
        hint_values::<E, TO_L2>(kv, layer, row, b, kv_off, hd);
    }
}

/// Hints in one kv head's keys of the row's block `b` (nothing past the row's last block), into
/// the cache level `LEVEL` names.
#[inline(always)]
fn hint_keys<E: KvElement, const LEVEL: i32>(
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
        prefetch_into::<_, LEVEL>(kv.keys(layer, block), kv_off * bs, hd * bs);
        if E::SCALED {
            prefetch_into::<_, LEVEL>(kv.key_scales(layer, block), kv_off / hd * bs, bs);
        }
    }
}

/// Hints in one kv head's values (the head at `kv_off`: `hd` per position, the block's positions
/// back to back) of the row's block `b` (nothing past the row's last block), into the cache
/// level `LEVEL` names.
#[inline(always)]
fn hint_values<E: KvElement, const LEVEL: i32>(
    kv: &KvView<'_, E>,
    layer: usize,
    row: &RowCtx<'_>,
    b: usize,
    kv_off: usize,
    hd: usize,
) {
    let bs = kv.block_size();
    if let Some(block) = read_block(row, b, bs) {
        // the head's values of the block are one contiguous run, position after position
        let slots = bs.min(row.pos + 1 - b * bs);
        let head = kv.value_start(kv_off, 0);
        prefetch_into::<_, LEVEL>(kv.values(layer, block), head, slots * hd);
        if E::SCALED {
            prefetch_into::<_, LEVEL>(kv.value_scales(layer, block), kv_off / hd * bs, bs);
        }
    }
}

/// The row's block `b` if the row reads it (blocks past its last position are not hinted).
#[inline(always)]
fn read_block(row: &RowCtx<'_>, b: usize, bs: usize) -> Option<u32> {
    (b < (row.pos + 1).div_ceil(bs)).then(|| row.blocks.get(b).copied())?
}
