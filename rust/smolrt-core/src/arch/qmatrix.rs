//! A quantized weight matrix in our own kernels' hands, and the tiled `y = x·Wᵀ` driver they share.
//!
//! Each weight type supplies block kernels that compute several dot products at once (one dot
//! product alone is bound by its accumulator chain's latency, and sharing loads saves work): `N`
//! weight rows against one activation row (decode) or one weight row against `N` activation rows
//! (prefill). A type's kernels compute every (row, column) result with the same per-chain
//! sequence of operations whichever kernel and group it falls in, so results never depend on
//! how a batch is shaped — the batch-invariance the scheduler relies on.

use super::act_blocks::{quantize_rows, ActBlock, QK};
use super::pool::for_each_piece;
use super::simd::prefetch;
use crate::{Error, Result};

pub(crate) trait WeightBlock: Copy + Send + Sync + 'static {
    /// Bytes of one block as GGUF stores it.
    const BYTES: usize;
    const NAME: &'static str;
    /// Decodes one block from exactly `BYTES` bytes.
    fn parse(bytes: &[u8]) -> Self;
    /// The block's 32 values in f32.
    fn dequantize(&self, out: &mut [f32; QK]);
    fn dot_cols<const N: usize>(w: [&[Self]; N], a: &[ActBlock]) -> [f32; N];
    fn dot_rows<const N: usize>(w: &[Self], a: [&[ActBlock]; N]) -> [f32; N];
}

/// Decode streams weights straight from memory, and a 4-row group's blocks are first touched by
/// the scale loads the kernel cannot start without; asking for the rows two groups ahead hides
/// most of that latency (the hardware prefetcher alone left decode stalled on those loads).
const PREFETCH_ROWS_AHEAD: usize = 8;

/// Output columns per work item: big enough that per-item bookkeeping vanishes, small enough
/// that a decode matmul still splits into many items for the pool.
const COLS_PER_ITEM: usize = 16;
/// Input rows per work item in prefill, so a tile of weights is reused across rows while hot.
const ROWS_PER_ITEM: usize = 16;

pub(crate) struct QMatrix<B> {
    blocks: Vec<B>,
    n_out: usize,
    n_in: usize,
}

impl<B: WeightBlock> QMatrix<B> {
    /// Parses `n_out` rows of `n_in` values from GGUF bytes (rows back to back).
    pub(crate) fn from_bytes(data: &[u8], n_out: usize, n_in: usize) -> Result<Self> {
        if n_in == 0 || !n_in.is_multiple_of(QK) {
            return Err(Error::model_load(format!(
                "{} row length {n_in} is not a positive multiple of {QK}",
                B::NAME
            )));
        }
        let n_blocks = n_out * (n_in / QK);
        if data.len() != n_blocks * B::BYTES {
            return Err(Error::model_load(format!(
                "{} matrix {n_out}x{n_in} needs {} bytes, got {}",
                B::NAME,
                n_blocks * B::BYTES,
                data.len()
            )));
        }
        let blocks = data.chunks_exact(B::BYTES).map(B::parse).collect();
        Ok(Self {
            blocks,
            n_out,
            n_in,
        })
    }

    pub(crate) fn n_out(&self) -> usize {
        self.n_out
    }

    pub(crate) fn n_in(&self) -> usize {
        self.n_in
    }

    /// Row `r` (of `n_out`) in f32 into `out` (`n_in` values); false when `r` is out of range.
    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) -> bool {
        let bpr = self.n_in / QK;
        let Some(row) = self.blocks.get(r * bpr..(r + 1) * bpr) else {
            return false;
        };
        if out.len() != self.n_in {
            return false;
        }
        for (b, o) in row.iter().zip(out.chunks_exact_mut(QK)) {
            let mut vals = [0f32; QK];
            b.dequantize(&mut vals);
            o.copy_from_slice(&vals);
        }
        true
    }

    /// `x` is `[rows][n_in]`; returns `[rows][n_out]`.
    pub(crate) fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let bpr = self.n_in / QK;
        let acts = quantize_rows(x, self.n_in);
        let col_items = self.n_out.div_ceil(COLS_PER_ITEM);
        let row_items = rows.div_ceil(ROWS_PER_ITEM);
        // Each item fills one [rows in tile][cols in chunk] piece of a scratch laid out item by
        // item.
        let mut scratch = vec![0f32; rows * self.n_out];
        let piece_len = |item: usize| {
            let (ri, ci) = (item / col_items, item % col_items);
            ROWS_PER_ITEM.min(rows - ri * ROWS_PER_ITEM)
                * COLS_PER_ITEM.min(self.n_out - ci * COLS_PER_ITEM)
        };
        for_each_piece(
            &mut scratch,
            (0..row_items * col_items).map(piece_len),
            || (),
            |_, item, piece| {
                let (ri, ci) = (item / col_items, item % col_items);
                self.tile(&acts, ri * ROWS_PER_ITEM, ci * COLS_PER_ITEM, bpr, piece);
            },
        );
        if row_items == 1 && col_items == 1 || rows == 1 {
            // A single tile, or a single row: the item-by-item layout already is row-major.
            return scratch;
        }
        let mut out = vec![0f32; rows * self.n_out];
        let mut at = 0;
        for ri in 0..row_items {
            let r0 = ri * ROWS_PER_ITEM;
            let tile_rows = ROWS_PER_ITEM.min(rows - r0);
            for ci in 0..col_items {
                let c0 = ci * COLS_PER_ITEM;
                let cols = COLS_PER_ITEM.min(self.n_out - c0);
                for r in 0..tile_rows {
                    let dst = (r0 + r) * self.n_out + c0;
                    out[dst..dst + cols].copy_from_slice(&scratch[at..at + cols]);
                    at += cols;
                }
            }
        }
        out
    }

    /// One work item: activation rows from `r0`, weight rows from `c0`, into `piece`
    /// (`[tile_rows][cols]`).
    fn tile(&self, acts: &[ActBlock], r0: usize, c0: usize, bpr: usize, piece: &mut [f32]) {
        let cols = COLS_PER_ITEM.min(self.n_out - c0);
        let tile_rows = piece.len() / cols;
        let act_row = |r: usize| &acts[(r0 + r) * bpr..(r0 + r + 1) * bpr];
        let weight_row = |c: usize| &self.blocks[(c0 + c) * bpr..(c0 + c + 1) * bpr];
        if tile_rows == 1 {
            // decode: four weight rows share each activation load
            let a = act_row(0);
            let mut c = 0;
            while c + 4 <= cols {
                prefetch(&self.blocks, (c0 + c + PREFETCH_ROWS_AHEAD) * bpr, 4 * bpr);
                let w = [
                    weight_row(c),
                    weight_row(c + 1),
                    weight_row(c + 2),
                    weight_row(c + 3),
                ];
                piece[c..c + 4].copy_from_slice(&B::dot_cols(w, a));
                c += 4;
            }
            for (c, out) in piece.iter_mut().enumerate().take(cols).skip(c) {
                *out = B::dot_cols([weight_row(c)], a)[0];
            }
        } else {
            // prefill: four activation rows share each unpacked weight block
            for c in 0..cols {
                let w = weight_row(c);
                let mut r = 0;
                while r + 4 <= tile_rows {
                    let a = [act_row(r), act_row(r + 1), act_row(r + 2), act_row(r + 3)];
                    for (k, v) in B::dot_rows(w, a).into_iter().enumerate() {
                        piece[(r + k) * cols + c] = v;
                    }
                    r += 4;
                }
                for r in r..tile_rows {
                    piece[r * cols + c] = B::dot_rows(w, [act_row(r)])[0];
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn blocks(&self) -> &[B] {
        &self.blocks
    }
}
