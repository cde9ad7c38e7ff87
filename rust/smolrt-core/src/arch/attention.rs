//! Causal attention of each token's query heads against its own sequence's cached keys and
//! values, read block by block from the pool.

use half::f16;

use super::attention_chunks::Plan;
use super::attention_hints::{hint_score_pass, hint_value_pass, prefetch_kv_head};
use super::isa::{isa, Isa};
use super::lanes::{LaneSource, Lanes, Lanes16, LANES};
use super::ops::{axpy, copy_prefix};
use super::pool::{for_each_index, SharedMut};
use crate::kv::{KvBlockPool, KvElement, KvView};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where one row of the batch sits: the blocks of its sequence and its position there.
/// The row attends to positions `0..=pos`, all of which are in the cache by the time it runs.
pub(crate) struct RowCtx<'a> {
    pub blocks: &'a [u32],
    pub pos: usize,
}

pub(crate) struct Heads {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
}

/// Below this many multiply-adds a pool round trip costs more than it saves (short decode).
const PARALLEL_MIN_WORK: usize = 1 << 15;
/// Query heads per grouped unit at most: four heads' eight score chains and value sums (16
/// vectors) fit AVX-512's 32 registers beside the loaded keys.
const MAX_GROUP: usize = 4;
/// Grouped units only when there are at least this many, so both cores get a fair share.
const MIN_GROUPED_UNITS: usize = 8;

/// One layer's queries for a batch: where each row sits, the head shape, and the rows' query
/// heads (`qkv` rows are `q_stride` apart and start with the row's query heads).
pub(crate) struct Queries<'a> {
    pub rows: &'a [RowCtx<'a>],
    pub heads: &'a Heads,
    pub qkv: &'a [f32],
    pub q_stride: usize,
}

/// For every row and head: `out = softmax(q·Kᵀ / √head_dim) · V` over the row's visible
/// positions in `layer`'s cache; `out` is `[rows][n_head * head_dim]`. Work units are (row,
/// head) — or, with AVX-512 and enough units, (row, kv head) with its query heads together —
/// and a row past `attention_chunks::CHUNK` positions is cut into chunks of its context, so a
/// long single-sequence decode and a many-sequence batch both spread over the cores. Each head
/// is computed by the same operations whatever unit, instruction set or batch it falls in.
pub(crate) fn attend(pool: &KvBlockPool, layer: usize, q: &Queries<'_>, out: &mut [f32]) {
    attend_with(isa(), pool, layer, q, out);
}

/// `attend` with the given instruction set (one the CPU supports): AVX-512 registers, or
/// `Lanes16` (AVX2 or portable, as the build has it). All give the same bits.
fn attend_with(isa: Isa, pool: &KvBlockPool, layer: usize, q: &Queries<'_>, out: &mut [f32]) {
    // A pool holds one element type; the kernels are compiled for each.
    if let Some(kv) = pool.view::<f16>() {
        attend_typed(isa, &kv, layer, q, out);
    } else if let Some(kv) = pool.view::<f32>() {
        attend_typed(isa, &kv, layer, q, out);
    } else if let Some(kv) = pool.view::<i8>() {
        attend_typed(isa, &kv, layer, q, out);
    }
}

fn attend_typed<E: LaneSource>(
    isa: Isa,
    kv: &KvView<'_, E>,
    layer: usize,
    queries: &Queries<'_>,
    out: &mut [f32],
) {
    // Each cut row's chunks leave their outputs and softmax statistics here until they are
    // joined. Kept between calls: every piece is written before it is read, and a fresh buffer
    // per layer (a megabyte in a long prefill) cost page faults and zeroing.
    PARTS.with_borrow_mut(|parts| attend_units(isa, kv, layer, queries, parts, out));
}

thread_local! {
    static PARTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs every unit of the layer's plan; the last chunk of each cut row's head group joins them
/// into `out`.
fn attend_units<E: LaneSource>(
    isa: Isa,
    kv: &KvView<'_, E>,
    layer: usize,
    queries: &Queries<'_>,
    parts: &mut Vec<f32>,
    out: &mut [f32],
) {
    let Queries {
        rows,
        heads,
        qkv,
        q_stride,
    } = *queries;
    let hd = heads.head_dim;
    let group = heads.n_head / heads.n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let work: usize = rows.iter().map(|r| r.pos + 1).sum::<usize>() * heads.n_head * hd;
    // With AVX-512 and enough units for both cores, one unit per (row, kv head): its query heads
    // together, each key and value vector loaded once for all of them. Same bits either way.
    let bs = kv.block_size();
    let chunks: usize = rows.iter().map(|r| Plan::chunks(r.pos, bs)).sum();
    let grouped = isa == Isa::Avx512Vnni
        && (2..=MAX_GROUP).contains(&group)
        && chunks * heads.n_head_kv >= MIN_GROUPED_UNITS;
    let per_unit = if grouped { group } else { 1 };
    let plan = Plan::new(rows, bs, heads.n_head, per_unit, hd);
    let len = plan.piece_len();
    parts.resize(plan.parts() * len, 0.0);
    let (outs, pieces) = (SharedMut::new(out), SharedMut::new(parts));
    // Chunks done per cut (row, head group): the one that completes it joins them.
    let done: Vec<AtomicUsize> = (0..plan.joins()).map(|_| AtomicUsize::new(0)).collect();
    let unit = |scores: &mut Vec<f32>, u: usize| {
        let at = &plan.units[u];
        let (r, h0) = (at.r, at.h0);
        let row = at.row(rows);
        let mut whole_row_stats = [0f32; 2 * MAX_GROUP];
        let (dst, stats) = match at.part {
            // SAFETY: piece k belongs to this unit alone.
            Some((k, _)) => unsafe { pieces.slice_mut(k * len, len) }.split_at_mut(per_unit * hd),
            None => {
                let range = plan.out_range(u);
                // SAFETY: an uncut row's unit alone writes its heads of that row.
                let dst = unsafe { outs.slice_mut(range.start, range.len()) };
                (dst, &mut whole_row_stats[..2 * per_unit])
            }
        };
        let q = |h: usize| &qkv[r * q_stride + h * hd..r * q_stride + (h + 1) * hd];
        let kv_off = (h0 / group) * hd;
        // Hints once per kv head and sequence: head by head, the group's later heads find the
        // lines in, and a prefill's later rows read what its earlier rows just did.
        let first_of_sequence = r == 0 || !std::ptr::eq(rows[r - 1].blocks, rows[r].blocks);
        let hints = h0 % group == 0 && first_of_sequence;
        if hints {
            prefetch_kv_head(kv, layer, &row, kv_off, hd);
        }
        match (isa, per_unit) {
            // SAFETY (each arm): callers pass only an `isa` the CPU supports.
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Vnni, 1) => unsafe {
                head_attention_avx512(
                    kv,
                    layer,
                    &row,
                    q(h0),
                    kv_off,
                    scale,
                    hints,
                    scores,
                    dst,
                    stats,
                )
            },
            #[cfg(target_arch = "x86_64")]
            (Isa::Avx512Vnni, g @ 2..) => {
                // The group's query heads side by side; `G` up to MAX_GROUP.
                macro_rules! grouped {
                    ($g:literal) => {{
                        let qs: [&[f32]; $g] = std::array::from_fn(|i| q(h0 + i));
                        group_attention_avx512(
                            kv, layer, &row, qs, kv_off, scale, hints, scores, dst, stats,
                        )
                    }};
                }
                match g {
                    2 => unsafe { grouped!(2) },
                    3 => unsafe { grouped!(3) },
                    _ => unsafe { grouped!(4) },
                }
            }
            _ => head_attention::<Lanes16, E>(
                kv,
                layer,
                &row,
                q(h0),
                kv_off,
                scale,
                hints,
                scores,
                dst,
                stats,
            ),
        }
        if let Some((_, j)) = at.part {
            // Release publishes this chunk's piece; the last one's Acquire sees every piece.
            if done[j].fetch_add(1, Ordering::AcqRel) + 1 == plan.join_chunks(j) {
                let (range, mine) = (plan.join_range(j), plan.join_pieces(j));
                // SAFETY: every chunk of join j is written and no unit writes them again; the
                // join's heads of its row are written by this call only.
                let (pieces, dst) = unsafe {
                    (
                        pieces.slice(mine.start, mine.len()),
                        outs.slice_mut(range.start, range.len()),
                    )
                };
                plan.join(pieces, dst);
            }
        }
    };
    if work < PARALLEL_MIN_WORK {
        let mut scores = Vec::new();
        for u in 0..plan.units.len() {
            unit(&mut scores, u);
        }
    } else {
        for_each_index(plan.units.len(), Vec::new, unit);
    }
}

/// `head_attention` compiled for AVX-512, with 16-lane registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn head_attention_avx512<E: LaneSource>(
    kv: &KvView<'_, E>,
    layer: usize,
    row: &RowCtx<'_>,
    q: &[f32],
    kv_off: usize,
    scale: f32,
    hints: bool,
    scores: &mut Vec<f32>,
    out: &mut [f32],
    stats: &mut [f32],
) {
    head_attention::<super::lanes512::Lanes512, E>(
        kv, layer, row, q, kv_off, scale, hints, scores, out, stats,
    )
}

/// One query head against one kv head (`kv_off` = its offset in a cached position's row).
/// Scores are computed a block at a time, one position per lane over the block's transposed
/// keys; each score is the same chain of fused multiply-adds over the head's dimensions
/// whichever block or batch it falls in. `stats` gets the softmax's (max, sum).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn head_attention<L: Lanes, E: LaneSource>(
    kv: &KvView<'_, E>,
    layer: usize,
    row: &RowCtx<'_>,
    q: &[f32],
    kv_off: usize,
    scale: f32,
    hints: bool,
    scores: &mut Vec<f32>,
    out: &mut [f32],
    stats: &mut [f32],
) {
    let bs = kv.block_size();
    let n_pos = row.pos + 1;
    let hd = out.len();
    let kv_head = kv_off / hd;
    // Padded to whole 16-lane chunks with -inf, which the softmax turns into zero weights.
    scores.clear();
    scores.resize(n_pos.next_multiple_of(LANES), f32::NEG_INFINITY);
    for (b, &block) in row.blocks.iter().enumerate().take(n_pos.div_ceil(bs)) {
        if hints {
            hint_score_pass(kv, layer, row, b, kv_off, hd);
        }
        let keys = kv.keys(layer, block);
        let base = b * bs;
        let in_block = bs.min(n_pos - base);
        for c in (0..in_block).step_by(LANES) {
            let n = LANES.min(in_block - c);
            // Full width even past `in_block` where the tile allows: its later slots are
            // readable (stale or zero) and their lanes are simply not kept.
            let width = if c + LANES <= bs { LANES } else { n };
            let lanes = score_lanes::<L, E>(q, keys, kv_off * bs + c, bs, width);
            let dst = &mut scores[base + c..base + c + n];
            copy_prefix(&lanes, dst);
            if E::SCALED {
                // a q8 key is its integers times its scale: the dot product's too
                let at = kv_head * bs + c;
                for (s, &k) in dst.iter_mut().zip(&kv.key_scales(layer, block)[at..at + n]) {
                    *s *= k;
                }
            }
        }
    }
    let (max, sum) = softmax::<L>(scores, scale);
    stats.copy_from_slice(&[max, sum]);
    // The weighted sum of values in one pass over the positions, 64 output dimensions (four
    // register accumulators, four independent add chains) at a time; a head size that is not
    // a multiple of 64 finishes 16 (or fewer) dimensions at a time. Every output is one chain
    // over the positions in order, whichever path computes it.
    let inv = 1.0 / sum;
    // The first pass over the values hints the whole head's.
    let hint = |c: usize| (hints && c == 0).then_some((kv_off, hd));
    let mut c = 0;
    while c + 4 * LANES <= out.len() {
        let mut acc = [L::zero(); 4];
        for_each_value(kv, layer, row, kv_head, c, hint(c), scores, |p, v| {
            for (k, a) in acc.iter_mut().enumerate() {
                a.fma_with(p, E::lanes(&v[k * LANES..]));
            }
        });
        for (k, a) in acc.iter().enumerate() {
            for (o, s) in out[c + k * LANES..c + (k + 1) * LANES]
                .iter_mut()
                .zip(a.to_array())
            {
                *o = s * inv;
            }
        }
        c += 4 * LANES;
    }
    while c < out.len() {
        let w = LANES.min(out.len() - c);
        let mut acc = [0f32; LANES];
        for_each_value(kv, layer, row, kv_head, c, hint(c), scores, |p, v| {
            axpy(&mut acc[..w], p, &v[..w]);
        });
        for (o, s) in out[c..c + w].iter_mut().zip(acc) {
            *o = s * inv;
        }
        c += w;
    }
}

/// Scales `scores` (whole 16-lane chunks) by `scale` and replaces them with `e^(s - max)`;
/// returns the scaled maximum and the sum, reduced in a fixed order.
#[inline(always)]
fn softmax<L: Lanes>(scores: &mut [f32], scale: f32) -> (f32, f32) {
    let mut max = L::splat(f32::NEG_INFINITY);
    for chunk in scores.chunks_exact_mut(LANES) {
        let scaled = L::load(chunk).mul(L::splat(scale));
        chunk.copy_from_slice(&scaled.to_array());
        max = max.max(scaled);
    }
    let top = max.max_lane();
    let max = L::splat(top);
    let mut sum = L::zero();
    for chunk in scores.chunks_exact_mut(LANES) {
        let e = L::load(chunk).sub(max).exp_nonpositive();
        chunk.copy_from_slice(&e.to_array());
        sum = sum.add(e);
    }
    (top, sum.sum())
}

/// `G` query heads sharing one kv head, for AVX-512: the same operations per head as
/// `head_attention` (so the same bits), but each key and value vector is loaded once for all
/// `G` heads. The four accumulator chains are separate arrays indexed only by the (unrolled)
/// head loop, so they stay in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn group_attention_avx512<E: LaneSource, const G: usize>(
    kv: &KvView<'_, E>,
    layer: usize,
    row: &RowCtx<'_>,
    qs: [&[f32]; G],
    kv_off: usize,
    scale: f32,
    hints: bool,
    scores: &mut Vec<f32>,
    out: &mut [f32],
    stats: &mut [f32],
) {
    type L = super::lanes512::Lanes512;
    let hd = qs[0].len();
    if !hd.is_multiple_of(4 * LANES) || !kv.block_size().is_multiple_of(LANES) {
        // the shapes this path does not cover go head by head
        for (h, q) in qs.iter().enumerate() {
            let dst = &mut out[h * hd..(h + 1) * hd];
            let st = &mut stats[2 * h..2 * h + 2];
            // the group's first head hints for all of them
            let hints = hints && h == 0;
            head_attention::<L, E>(kv, layer, row, q, kv_off, scale, hints, scores, dst, st);
        }
        return;
    }
    let bs = kv.block_size();
    let kv_dim = kv.kv_dim();
    let kv_head = kv_off / hd;
    let n_pos = row.pos + 1;
    let padded = n_pos.next_multiple_of(LANES);
    scores.clear();
    scores.resize(G * padded, f32::NEG_INFINITY);
    let n_blocks = n_pos.div_ceil(bs);
    // The loops below index without bounds checks (with them, the score loop spent more
    // instructions checking and reloading slice bounds than multiplying). Every index is in
    // range given these, with hd and bs whole multiples of 16 (checked above): a key tile holds
    // kv_dim * bs keys, a value tile as many values (this head's hd * bs from kv_off * bs), a
    // query hd values.
    assert!(
        qs.iter().all(|q| q.len() == hd) && kv_off + hd <= kv_dim && n_blocks <= row.blocks.len()
    );
    // Lanes of the `LANES` elements from `at`, and query value `d` of head `h`, unchecked.
    macro_rules! lanes_at {
        ($xs:expr, $at:expr) => {
            E::lanes::<L>($xs.get_unchecked($at..$at + LANES))
        };
    }
    macro_rules! q {
        ($h:expr, $d:expr) => {
            *qs[$h].get_unchecked($d)
        };
    }
    for (b, &block) in row.blocks.iter().enumerate().take(n_blocks) {
        if hints {
            hint_score_pass(kv, layer, row, b, kv_off, hd);
        }
        let keys = kv.keys(layer, block);
        let key_scales = if E::SCALED {
            kv.key_scales(layer, block)
        } else {
            &[]
        };
        let base = b * bs;
        let in_block = bs.min(n_pos - base);
        for c in (0..in_block).step_by(LANES) {
            let n = LANES.min(in_block - c);
            let (mut a0, mut a1, mut a2, mut a3) = (
                [L::zero(); G],
                [L::zero(); G],
                [L::zero(); G],
                [L::zero(); G],
            );
            let mut at = kv_off * bs + c;
            for d in (0..hd).step_by(4) {
                // at + 3 bs + 16 <= (kv_off + hd) bs, as c + 16 <= bs; d + 3 < hd.
                let k = lanes_at!(keys, at);
                for h in 0..G {
                    a0[h].fma_with(q!(h, d), k);
                }
                let k = lanes_at!(keys, at + bs);
                for h in 0..G {
                    a1[h].fma_with(q!(h, d + 1), k);
                }
                let k = lanes_at!(keys, at + 2 * bs);
                for h in 0..G {
                    a2[h].fma_with(q!(h, d + 2), k);
                }
                let k = lanes_at!(keys, at + 3 * bs);
                for h in 0..G {
                    a3[h].fma_with(q!(h, d + 3), k);
                }
                at += 4 * bs;
            }
            for h in 0..G {
                let mut sum = a0[h].add(a1[h]).add(a2[h].add(a3[h]));
                if E::SCALED {
                    // as `head_attention` scales its scores (c + 16 <= bs: bs is whole lanes)
                    let at = kv_head * bs + c;
                    sum = sum.mul(L::load(key_scales.get_unchecked(at..at + LANES)));
                }
                let lanes = sum.to_array();
                let at = h * padded + base + c;
                copy_prefix(&lanes, &mut scores[at..at + n]);
            }
        }
    }
    let mut inv = [0f32; G];
    for (h, inv) in inv.iter_mut().enumerate() {
        let (max, sum) = softmax::<L>(&mut scores[h * padded..(h + 1) * padded], scale);
        stats[2 * h..2 * h + 2].copy_from_slice(&[max, sum]);
        *inv = 1.0 / sum;
    }
    for c in (0..hd).step_by(4 * LANES) {
        let (mut v0, mut v1, mut v2, mut v3) = (
            [L::zero(); G],
            [L::zero(); G],
            [L::zero(); G],
            [L::zero(); G],
        );
        for (b, &block) in row.blocks.iter().enumerate().take(n_blocks) {
            if hints && c == 0 {
                hint_value_pass(kv, layer, row, b, kv_off, hd);
            }
            let values = kv.values(layer, block);
            let value_scales = if E::SCALED {
                kv.value_scales(layer, block)
            } else {
                &[]
            };
            let base = b * bs;
            for slot in 0..bs.min(n_pos - base) {
                // slot < bs, c + 64 <= hd, kv_off + hd <= kv_dim; base + slot < n_pos <= padded.
                let at = kv.value_start(kv_off, slot) + c;
                let v = values.get_unchecked(at..at + 4 * LANES);
                let mut p = [0f32; G];
                for (h, p) in p.iter_mut().enumerate() {
                    *p = *scores.get_unchecked(h * padded + base + slot);
                    if E::SCALED {
                        // as `for_each_value` scales the weights
                        *p *= *value_scales.get_unchecked(kv_head * bs + slot);
                    }
                }
                let x = E::lanes::<L>(v);
                for h in 0..G {
                    v0[h].fma_with(p[h], x);
                }
                let x = E::lanes::<L>(&v[LANES..]);
                for h in 0..G {
                    v1[h].fma_with(p[h], x);
                }
                let x = E::lanes::<L>(&v[2 * LANES..]);
                for h in 0..G {
                    v2[h].fma_with(p[h], x);
                }
                let x = E::lanes::<L>(&v[3 * LANES..]);
                for h in 0..G {
                    v3[h].fma_with(p[h], x);
                }
            }
        }
        for h in 0..G {
            for (k, acc) in [v0[h], v1[h], v2[h], v3[h]].into_iter().enumerate() {
                let at = h * hd + c + k * LANES;
                for (o, s) in out[at..at + LANES].iter_mut().zip(acc.to_array()) {
                    *o = s * inv[h];
                }
            }
        }
    }
}

/// Calls `f(weight, values from dimension c)` for the row's positions `0..=pos` in order: the
/// value vector of kv head `kv_head` at each cached position, from its dimension `c` to its end;
/// for a scaled type the weight is multiplied by the vector's scale.
/// With `hint` = (kv offset, head size), each block hints in that head's values
/// `attention_hints::HINT_BLOCKS_AHEAD` blocks on.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn for_each_value<E: KvElement>(
    kv: &KvView<'_, E>,
    layer: usize,
    row: &RowCtx<'_>,
    kv_head: usize,
    c: usize,
    hint: Option<(usize, usize)>,
    weights: &[f32],
    mut f: impl FnMut(f32, &[E]),
) {
    let (bs, hd) = (kv.block_size(), kv.head_dim());
    // slot's values of this head, from dimension c
    let vector = |slot: usize| {
        let at = kv.value_start(kv_head * hd, slot);
        at + c..at + hd
    };
    let n_pos = row.pos + 1;
    for (b, &block) in row.blocks.iter().enumerate().take(n_pos.div_ceil(bs)) {
        if let Some((kv_off, hd)) = hint {
            hint_value_pass(kv, layer, row, b, kv_off, hd);
        }
        let values = kv.values(layer, block);
        let base = b * bs;
        let in_block = bs.min(n_pos - base);
        let weights = &weights[base..base + in_block];
        if E::SCALED {
            let scales = &kv.value_scales(layer, block)[kv_head * bs..kv_head * bs + in_block];
            for (slot, (&p, &s)) in weights.iter().zip(scales).enumerate() {
                f(p * s, &values[vector(slot)]);
            }
        } else {
            for (slot, &p) in weights.iter().enumerate() {
                f(p, &values[vector(slot)]);
            }
        }
    }
}

/// Scores of `width` (≤ 16) consecutive positions of a transposed key tile, position `l` at
/// `keys[start + d * bs + l]` for dimension `d`: `Σ_d q[d] · k[d][l]`, the dimensions taken
/// in four interleaved fused multiply-add chains (d mod 4) summed at the end, in a fixed order.
#[inline(always)]
fn score_lanes<L: Lanes, E: LaneSource>(
    q: &[f32],
    keys: &[E],
    start: usize,
    bs: usize,
    width: usize,
) -> [f32; LANES] {
    if width == LANES {
        let mut acc = [L::zero(); 4];
        let mut at = start;
        let mut quads = q.chunks_exact(4);
        for qq in &mut quads {
            acc[0].fma_with(qq[0], E::lanes(&keys[at..]));
            acc[1].fma_with(qq[1], E::lanes(&keys[at + bs..]));
            acc[2].fma_with(qq[2], E::lanes(&keys[at + 2 * bs..]));
            acc[3].fma_with(qq[3], E::lanes(&keys[at + 3 * bs..]));
            at += 4 * bs;
        }
        for &qd in quads.remainder() {
            acc[0].fma_with(qd, E::lanes(&keys[at..]));
            at += bs;
        }
        acc[0].add(acc[1]).add(acc[2].add(acc[3])).to_array()
    } else {
        let mut acc = [[0f32; LANES]; 4];
        for (d, &qd) in q.iter().enumerate() {
            let at = start + d * bs;
            axpy(&mut acc[d % 4][..width], qd, &keys[at..at + width]);
        }
        std::array::from_fn(|l| (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::kv::{KvType, SeqKv};

    fn config(n_head: usize, n_head_kv: usize, head_dim: usize) -> ModelConfig {
        ModelConfig {
            architecture: crate::config::Architecture::Llama,
            n_layer: 1,
            n_embd: n_head * head_dim,
            n_head,
            n_head_kv,
            head_dim,
            n_ff: 8,
            context_length: 256,
            vocab_size: 8,
            rope_freq_base: 10000.0,
            rope_dim: head_dim,
            rms_eps: 1e-5,
            use_rope: vec![true],
            tied_embeddings: true,
        }
    }

    /// `x` (positions of `hd`-long head vectors) as a cache of `kv_type` holds it: rounded to
    /// f16, or for q8 each vector rounded to whole multiples of its scale.
    fn stored_as(kv_type: KvType, x: &[f32], hd: usize) -> Vec<f32> {
        match kv_type {
            KvType::F16 => x.iter().map(|&v| f16::from_f32(v).to_f32()).collect(),
            KvType::F32 => x.to_vec(),
            KvType::Q8 => x
                .chunks_exact(hd)
                .flat_map(|vec| {
                    let scale = crate::kv::q8_scale(vec);
                    vec.iter()
                        .map(move |&v| crate::kv::q8_of(v, scale) as f32 * scale)
                })
                .collect(),
        }
    }

    /// A pool of `kv_type` with block size `bs` holding one sequence's keys `k` and values `v`
    /// (`[positions][kv_dim]`) in layer 0.
    fn cached(
        cfg: &ModelConfig,
        kv_type: KvType,
        bs: usize,
        k: &[f32],
        v: &[f32],
    ) -> (KvBlockPool, SeqKv) {
        let kv_dim = cfg.n_head_kv * cfg.head_dim;
        let n = k.len() / kv_dim;
        let mut pool = KvBlockPool::with_type(cfg, bs, 1 << 24, kv_type).unwrap();
        let mut kv = SeqKv::default();
        pool.reserve(&mut kv, n).unwrap();
        for p in 0..n {
            let (kp, vp) = (&k[p * kv_dim..][..kv_dim], &v[p * kv_dim..][..kv_dim]);
            pool.write(0, kv.blocks()[p / bs], p % bs, kp, vp);
        }
        (pool, kv)
    }

    /// Asserts `out` (one row's heads) is within 1e-5 of a direct f64 softmax(q·Kᵀ/√d)·V over
    /// positions 0..=pos of `k` and `v` (`[positions][n_head_kv * head_dim]`, as the cache
    /// holds them), with `q` starting at the row's query heads.
    fn assert_direct(
        out: &[f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        pos: usize,
        heads: &Heads,
        what: &str,
    ) {
        let (hd, kv_dim) = (heads.head_dim, heads.n_head_kv * heads.head_dim);
        for h in 0..heads.n_head {
            let kv_off = (h / (heads.n_head / heads.n_head_kv)) * hd;
            let qh = &q[h * hd..(h + 1) * hd];
            let s: Vec<f64> = (0..=pos)
                .map(|p| {
                    let kp = &k[p * kv_dim + kv_off..][..hd];
                    let dot: f64 = qh.iter().zip(kp).map(|(&a, &b)| a as f64 * b as f64).sum();
                    dot / (hd as f64).sqrt()
                })
                .collect();
            let max = s.iter().copied().fold(f64::MIN, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..hd {
                let want: f64 = (0..=pos)
                    .map(|p| e[p] * v[p * kv_dim + kv_off + d] as f64)
                    .sum::<f64>()
                    / z;
                let got = out[h * hd + d] as f64;
                assert!(
                    (got - want).abs() < 1e-5,
                    "{what} pos {pos} head {h} dim {d}: {got} vs {want}"
                );
            }
        }
    }

    /// Against a direct f64 softmax(q·Kᵀ/√d)·V of the values as stored (rounded to f16 for an f16
    /// cache), for both cache types, block sizes below, at and past the 16 lanes, head sizes
    /// that are and are not multiples of 16, and every causal row; and every instruction set
    /// this CPU has gives the same bits.
    #[test]
    fn matches_a_direct_evaluation() {
        let mut seed = 0x9e37_79b9_u32;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as f32 / u32::MAX as f32 * 2.0 - 1.0
        };
        for (n_head, n_head_kv, hd) in [(4, 2, 40), (3, 3, 64), (6, 2, 64), (8, 2, 128), (5, 1, 32)]
        {
            let cfg = config(n_head, n_head_kv, hd);
            let (q_dim, kv_dim) = (n_head * hd, n_head_kv * hd);
            let n = 45;
            let q: Vec<f32> = (0..n * q_dim).map(|_| rnd()).collect();
            let k: Vec<f32> = (0..n * kv_dim).map(|_| rnd() * 2.0).collect();
            let v: Vec<f32> = (0..n * kv_dim).map(|_| rnd()).collect();
            for (kv_type, bs) in [KvType::F16, KvType::F32, KvType::Q8]
                .into_iter()
                .flat_map(|t| [1, 5, 16, 20, 64].map(|bs| (t, bs)))
            {
                let (ks, vs) = (stored_as(kv_type, &k, hd), stored_as(kv_type, &v, hd));
                let (mut pool, mut kv) = cached(&cfg, kv_type, bs, &k, &v);
                let rows: Vec<RowCtx<'_>> = (0..n)
                    .map(|pos| RowCtx {
                        blocks: kv.blocks(),
                        pos,
                    })
                    .collect();
                let heads = Heads {
                    n_head,
                    n_head_kv,
                    head_dim: hd,
                };
                let mut out = vec![0f32; n * q_dim];
                let queries = Queries {
                    rows: &rows,
                    heads: &heads,
                    qkv: &q,
                    q_stride: q_dim,
                };
                attend(&pool, 0, &queries, &mut out);
                for isa in crate::arch::isa::available() {
                    let mut other = vec![0f32; n * q_dim];
                    attend_with(isa, &pool, 0, &queries, &mut other);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&other),
                        bits(&out),
                        "{isa:?}, {kv_type:?}, block size {bs}"
                    );
                }
                for pos in 0..n {
                    let row = &out[pos * q_dim..(pos + 1) * q_dim];
                    let what = format!("{kv_type:?} bs {bs} hd {hd}");
                    assert_direct(row, &q[pos * q_dim..], &ks, &vs, pos, &heads, &what);
                }
                pool.release(&mut kv);
            }
        }
    }

    /// A context past `CHUNK` positions is attended in chunks: still a direct evaluation's
    /// result, the same bits on every instruction set, and a row's bits do not depend on the
    /// rows beside it (the last row alone against the whole batch).
    #[test]
    fn long_contexts_in_chunks_match_a_direct_evaluation() {
        use super::super::attention_chunks::CHUNK;
        let mut seed = 0x2545_f491_u32;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as f32 / u32::MAX as f32 * 2.0 - 1.0
        };
        let (n_head, n_head_kv, hd) = (6, 2, 64);
        let mut cfg = config(n_head, n_head_kv, hd);
        cfg.context_length = 4096;
        let (q_dim, kv_dim) = (n_head * hd, n_head_kv * hd);
        let n = 2 * CHUNK + 37;
        let q: Vec<f32> = (0..n * q_dim).map(|_| rnd()).collect();
        let k: Vec<f32> = (0..n * kv_dim).map(|_| rnd() * 2.0).collect();
        let v: Vec<f32> = (0..n * kv_dim).map(|_| rnd()).collect();
        let heads = Heads {
            n_head,
            n_head_kv,
            head_dim: hd,
        };
        for (kv_type, bs) in [
            (KvType::F16, 16),
            (KvType::F32, 16),
            (KvType::F16, 20),
            (KvType::Q8, 16),
            (KvType::Q8, 20),
        ] {
            let (ks, vs) = (stored_as(kv_type, &k, hd), stored_as(kv_type, &v, hd));
            let (mut pool, mut kv) = cached(&cfg, kv_type, bs, &k, &v);
            let rows: Vec<RowCtx<'_>> = (0..n)
                .map(|pos| RowCtx {
                    blocks: kv.blocks(),
                    pos,
                })
                .collect();
            let queries = Queries {
                rows: &rows,
                heads: &heads,
                qkv: &q,
                q_stride: q_dim,
            };
            let mut out = vec![0f32; n * q_dim];
            attend(&pool, 0, &queries, &mut out);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            for isa in crate::arch::isa::available() {
                let mut other = vec![0f32; n * q_dim];
                attend_with(isa, &pool, 0, &queries, &mut other);
                assert_eq!(bits(&other), bits(&out), "{isa:?}, {kv_type:?}, bs {bs}");
            }
            let last = [RowCtx {
                blocks: kv.blocks(),
                pos: n - 1,
            }];
            let alone = Queries {
                rows: &last,
                heads: &heads,
                qkv: &q[(n - 1) * q_dim..],
                q_stride: q_dim,
            };
            let mut one = vec![0f32; q_dim];
            attend(&pool, 0, &alone, &mut one);
            assert_eq!(
                bits(&one),
                bits(&out[(n - 1) * q_dim..]),
                "{kv_type:?}, bs {bs}"
            );
            for pos in [CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5, n - 1] {
                let row = &out[pos * q_dim..(pos + 1) * q_dim];
                let what = format!("{kv_type:?} bs {bs}");
                assert_direct(row, &q[pos * q_dim..], &ks, &vs, pos, &heads, &what);
            }
            pool.release(&mut kv);
        }
    }
}
