//! Causal attention of each token's query heads against its own sequence's cached keys and
//! values, read block by block from the pool.

use rayon::prelude::*;

use super::ops::{axpy, dot};
use crate::kv::KvBlockPool;

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

/// Below this many multiply-adds the rayon fork-join costs more than it saves (short decode).
const PARALLEL_MIN_WORK: usize = 1 << 15;

/// For every row and head: `out = softmax(q·Kᵀ / √head_dim) · V` over the row's visible
/// positions. `qkv` rows are `q_stride` apart and start with the row's query heads; `out` is
/// `[rows][n_head * head_dim]`. Work units are (row, head), so a long single-sequence decode and a
/// many-sequence batch both spread over the cores; each unit is computed the same way whatever
/// else is in the batch.
pub(crate) fn attend(
    pool: &KvBlockPool,
    layer: usize,
    rows: &[RowCtx<'_>],
    heads: &Heads,
    qkv: &[f32],
    q_stride: usize,
    out: &mut [f32],
) {
    let hd = heads.head_dim;
    let group = heads.n_head / heads.n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    let work: usize = rows.iter().map(|r| r.pos + 1).sum::<usize>() * heads.n_head * hd;
    let unit = |scores: &mut Vec<f32>, (u, dst): (usize, &mut [f32])| {
        let (r, h) = (u / heads.n_head, u % heads.n_head);
        let row = &rows[r];
        let q = &qkv[r * q_stride + h * hd..r * q_stride + (h + 1) * hd];
        head_attention(pool, layer, row, q, (h / group) * hd, scale, scores, dst);
    };
    if work < PARALLEL_MIN_WORK {
        let mut scores = Vec::new();
        out.chunks_exact_mut(hd)
            .enumerate()
            .for_each(|job| unit(&mut scores, job));
    } else {
        out.par_chunks_exact_mut(hd)
            .enumerate()
            .for_each_init(Vec::new, unit);
    }
}

/// One query head against one kv head (`kv_off` = its offset in a cached position's row).
#[allow(clippy::too_many_arguments)]
fn head_attention(
    pool: &KvBlockPool,
    layer: usize,
    row: &RowCtx<'_>,
    q: &[f32],
    kv_off: usize,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let bs = pool.block_size();
    let kv_dim = pool.kv_dim();
    let hd = q.len();
    let n_pos = row.pos + 1;
    scores.clear();
    for (b, &block) in row.blocks.iter().enumerate().take(n_pos.div_ceil(bs)) {
        let keys = pool.keys(layer, block);
        let in_block = bs.min(n_pos - b * bs);
        for slot in 0..in_block {
            let k = &keys[slot * kv_dim + kv_off..slot * kv_dim + kv_off + hd];
            scores.push(dot(q, k) * scale);
        }
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    out.fill(0.0);
    for (b, &block) in row.blocks.iter().enumerate().take(n_pos.div_ceil(bs)) {
        let values = pool.values(layer, block);
        let base = b * bs;
        let in_block = bs.min(n_pos - base);
        for slot in 0..in_block {
            let v = &values[slot * kv_dim + kv_off..slot * kv_dim + kv_off + hd];
            axpy(out, scores[base + slot], v);
        }
    }
    let inv = 1.0 / sum;
    for o in out.iter_mut() {
        *o *= inv;
    }
}
