//! Attention work cut into units, a long context into chunks of whole KV blocks, and the
//! chunks' partial results joined again.
//!
//! A lone decoding row has only its nine query heads (three kv heads) to spread over the cores,
//! and a long context makes each of them long: two threads split nine heads 5:4, and a grouped
//! unit per kv head 2:1. Cut into chunks of about `CHUNK` positions, a long row becomes many
//! units of similar size. Each chunk's unit computes the softmax-weighted values of its own
//! positions (normalized within the chunk) and that softmax's maximum and sum; the last of a
//! row's chunks to finish weighs them all by `e^(max_c − max) · sum_c`, in chunk order, which is
//! one softmax over all of them.
//!
//! Whether and where a row is cut depends only on its own position and the block size, never
//! on the batch, so a row's result does not depend on its batch-mates; a row of at most
//! `CHUNK` positions is one unit whose output is copied as computed.

use std::ops::Range;

use super::attention::RowCtx;
use super::lanes::exp_lane;

/// Positions per chunk (rounded up to whole blocks).
pub(super) const CHUNK: usize = 256;

/// Query heads `h0..h0 + heads` of row `r` against the positions in `blocks` of its sequence,
/// the last of them at `pos` counted from the first of those blocks.
pub(super) struct Unit {
    pub r: usize,
    pub h0: usize,
    pub blocks: Range<usize>,
    pub pos: usize,
    /// Where a chunk of a cut row leaves its result: piece `part.0` of the parts buffer (see
    /// [`Plan::piece_len`]); `part.1` is the join its (row, head group) is. `None`: the unit
    /// covers its row's whole context and writes its heads straight into the output.
    pub part: Option<(usize, usize)>,
}

impl Unit {
    /// The unit's positions as a row of their own: the kernels attend to all of them.
    pub(super) fn row<'a>(&self, rows: &[RowCtx<'a>]) -> RowCtx<'a> {
        RowCtx {
            blocks: &rows[self.r].blocks[self.blocks.clone()],
            pos: self.pos,
        }
    }
}

/// Every unit of one layer's attention, in order: by row, then query-head group, then chunk.
pub(super) struct Plan {
    pub units: Vec<Unit>,
    /// Pieces in the parts buffer: one per chunk of a cut row.
    parts: usize,
    /// Per cut (row, head group): its first unit and its number of chunks.
    joins: Vec<(usize, usize)>,
    /// Query heads per unit.
    heads: usize,
    head_dim: usize,
    n_head: usize,
}

impl Plan {
    /// How many chunks a row whose last position is `pos` is cut into.
    pub(super) fn chunks(pos: usize, bs: usize) -> usize {
        (pos + 1).div_ceil(bs).div_ceil(CHUNK.div_ceil(bs))
    }

    pub(super) fn new(
        rows: &[RowCtx<'_>],
        bs: usize,
        n_head: usize,
        heads: usize,
        head_dim: usize,
    ) -> Self {
        let chunk_blocks = CHUNK.div_ceil(bs);
        let mut units = Vec::new();
        let mut parts = 0;
        let mut joins = Vec::new();
        for (r, row) in rows.iter().enumerate() {
            let n_blocks = (row.pos + 1).div_ceil(bs);
            let cut = n_blocks > chunk_blocks;
            for h0 in (0..n_head).step_by(heads) {
                if cut {
                    joins.push((units.len(), n_blocks.div_ceil(chunk_blocks)));
                }
                for first in (0..n_blocks).step_by(chunk_blocks) {
                    let end = (first + chunk_blocks).min(n_blocks);
                    let part = cut.then(|| (parts, joins.len() - 1));
                    parts += usize::from(cut);
                    units.push(Unit {
                        r,
                        h0,
                        blocks: first..end,
                        pos: row.pos.min(end * bs - 1) - first * bs,
                        part,
                    });
                }
            }
        }
        Self {
            units,
            parts,
            joins,
            heads,
            head_dim,
            n_head,
        }
    }

    /// Pieces the parts buffer holds.
    pub(super) fn parts(&self) -> usize {
        self.parts
    }

    /// Floats of one piece: its heads' outputs, then (max, sum) per head.
    pub(super) fn piece_len(&self) -> usize {
        self.heads * (self.head_dim + 2)
    }

    /// Where unit `u`'s heads go in the layer's output (`[rows][n_head * head_dim]`).
    pub(super) fn out_range(&self, u: usize) -> Range<usize> {
        let (unit, hd) = (&self.units[u], self.head_dim);
        let at = unit.r * self.n_head * hd + unit.h0 * hd;
        at..at + self.heads * hd
    }

    /// Cut (row, head group)s, each joined once all its chunks are done.
    pub(super) fn joins(&self) -> usize {
        self.joins.len()
    }

    /// Chunks of join `j`.
    pub(super) fn join_chunks(&self, j: usize) -> usize {
        self.joins[j].1
    }

    /// Where join `j`'s heads go in the layer's output.
    pub(super) fn join_range(&self, j: usize) -> Range<usize> {
        self.out_range(self.joins[j].0)
    }

    /// Where join `j`'s chunks' pieces lie in the parts buffer (consecutive, in chunk order).
    pub(super) fn join_pieces(&self, j: usize) -> Range<usize> {
        let (u, n) = self.joins[j];
        let first = self.units[u].part.map_or(0, |(k, _)| k);
        let len = self.piece_len();
        first * len..(first + n) * len
    }

    /// One softmax over several chunks from each chunk's normalized output and its (max, sum):
    /// `Σ_c w_c · out_c / Σ_c w_c` with `w_c = e^(max_c − max) · sum_c`, in chunk order.
    pub(super) fn join(&self, pieces: &[f32], dst: &mut [f32]) {
        let (hd, len) = (self.head_dim, self.piece_len());
        let chunks = pieces.len() / len;
        for h in 0..self.heads {
            let stats = |c: usize| {
                let at = c * len + self.heads * hd + 2 * h;
                (pieces[at], pieces[at + 1])
            };
            let max = (0..chunks)
                .map(|c| stats(c).0)
                .fold(f32::NEG_INFINITY, f32::max);
            let out = &mut dst[h * hd..(h + 1) * hd];
            out.fill(0.0);
            let mut total = 0f32;
            for c in 0..chunks {
                let (m, sum) = stats(c);
                let w = exp_lane(m - max) * sum;
                total += w;
                let values = &pieces[c * len + h * hd..c * len + (h + 1) * hd];
                for (o, &v) in out.iter_mut().zip(values) {
                    *o = w.mul_add(v, *o);
                }
            }
            let inv = 1.0 / total;
            for o in out.iter_mut() {
                *o *= inv;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows are cut only past `CHUNK` positions, at whole blocks, covering every position once.
    #[test]
    fn chunks_cover_each_row_in_whole_blocks() {
        let blocks: Vec<u32> = (0..100).collect();
        for bs in [1, 16, 20, 64] {
            for pos in [0, 15, CHUNK - 1, CHUNK, 3 * CHUNK + 7, 1000] {
                let rows = [RowCtx {
                    blocks: &blocks,
                    pos,
                }];
                let plan = Plan::new(&rows, bs, 6, 3, 8);
                let per_group: Vec<&Unit> = plan.units.iter().filter(|u| u.h0 == 3).collect();
                assert_eq!(plan.units.len(), 2 * per_group.len());
                let n_blocks = (pos + 1).div_ceil(bs);
                let mut next = 0;
                for u in &per_group {
                    assert_eq!(u.blocks.start, next);
                    let last = pos.min(u.blocks.end * bs - 1);
                    assert_eq!(u.pos, last - next * bs, "bs {bs} pos {pos}");
                    next = u.blocks.end;
                }
                assert_eq!(next, n_blocks);
                assert_eq!(per_group.len(), Plan::chunks(pos, bs));
                assert_eq!(
                    per_group.len() == 1,
                    per_group.iter().all(|u| u.part.is_none())
                );
                assert_eq!(plan.joins(), if per_group.len() > 1 { 2 } else { 0 });
                if pos < CHUNK {
                    assert_eq!(per_group.len(), 1);
                }
            }
        }
    }

    /// Joining the chunks' softmaxes equals one softmax over all their scores.
    #[test]
    fn joined_chunks_are_one_softmax() {
        let blocks: Vec<u32> = (0..4).collect();
        let rows = [RowCtx {
            blocks: &blocks,
            pos: 3 * CHUNK + 9,
        }];
        let (hd, heads) = (4, 1);
        let plan = Plan::new(&rows, CHUNK, 1, heads, hd);
        assert_eq!(plan.units.len(), 4);
        let scores: Vec<f32> = (0..3 * CHUNK + 10)
            .map(|p| ((p * 37 % 101) as f32) / 13.0)
            .collect();
        let value = |p: usize, d: usize| ((p + 3 * d) % 17) as f32 - 8.0;
        let mut parts = Vec::new();
        for u in &plan.units {
            let range = u.blocks.start * CHUNK..(u.blocks.start * CHUNK + u.pos + 1);
            let m = range
                .clone()
                .map(|p| scores[p])
                .fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = range.clone().map(|p| (scores[p] - m).exp()).sum();
            for d in 0..hd {
                let acc: f32 = range
                    .clone()
                    .map(|p| (scores[p] - m).exp() * value(p, d))
                    .sum();
                parts.push(acc / sum);
            }
            parts.extend([m, sum]);
        }
        assert_eq!(
            (plan.joins(), plan.join_chunks(0), plan.join_range(0)),
            (1, 4, 0..hd)
        );
        assert_eq!(plan.join_pieces(0), 0..parts.len());
        let mut out = vec![0f32; hd];
        plan.join(&parts, &mut out);
        let m = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let z: f64 = scores.iter().map(|&s| ((s - m) as f64).exp()).sum();
        for (d, &got) in out.iter().enumerate() {
            let want: f64 = scores
                .iter()
                .enumerate()
                .map(|(p, &s)| ((s - m) as f64).exp() * value(p, d) as f64)
                .sum::<f64>()
                / z;
            assert!((got as f64 - want).abs() < 1e-4, "dim {d}: {got} vs {want}");
        }
    }
}
