//! A quantized weight matrix stored as panels of 16 interleaved rows, and the tiled `y = x·Wᵀ`
//! driver over them.
//!
//! A panel holds one block (32 inputs) of 16 consecutive weight rows, laid out so that one
//! 64-byte vector carries the same 4 inputs of all 16 rows: a kernel broadcasts 4 activation
//! bytes and gets 16 rows' partial dot products in one instruction, one row per 32-bit lane.
//! Each output value then lives in its own lane from the first block to the last, so it is
//! accumulated by the same per-lane operations whatever kernel, instruction set or batch shape
//! computes it: the batch invariance the scheduler relies on comes out of the layout, with no
//! horizontal sums whose order could differ.

use std::cell::RefCell;

use super::act_blocks::{Activation, QK};
use super::isa::Isa;
use super::matmul_io::{accumulate, store, Input, Output};
use super::pool::{for_each_index, two_phases, SharedMut};
use super::weight_arena::{Packed, WeightArena};
use crate::{Error, Result};

/// Weight rows per panel: 16 lanes of 32 bits fill one AVX-512 register.
pub(crate) const PANEL: usize = 16;

pub(crate) trait PanelBlock: Copy + Send + Sync + 'static {
    const NAME: &'static str;
    /// Activation blocks (of 32 inputs) one panel spans: 1, or 8 for a K-quant's 256-value
    /// super-block.
    const BLOCKS: usize = 1;
    /// Bytes of one row's block (super-block) as GGUF stores it.
    const BYTES: usize;
    /// The activations' form: quantized blocks, or f32 for the float types.
    type Act: Activation;
    /// Interleaves block `i` of 16 rows (each exactly `BYTES` long; padding rows are all zero
    /// bytes, which every supported type decodes to zeros).
    fn pack(rows: [&[u8]; PANEL]) -> Self;
    /// Quantizes one activation row the way ggml pairs with this type: for quantized blocks
    /// Q8_0 / Q8_1 blocks of 32, or Q8_K when a panel spans a 256-value super-block.
    fn quantize_row(row: &[f32], out: &mut [Self::Act]) {
        Self::Act::quantize(row, Self::BLOCKS > 1, out)
    }
    /// The 32 values row `c` (lane `c`) holds in this panel's 32-value block `block`, in f32.
    fn dequantize_lane(&self, c: usize, block: usize) -> [f32; QK];
    /// `out[r][c]` = row `c` of the panels · activation row `r` (`BLOCKS` activation blocks per
    /// panel), in portable Rust: the reference the SIMD kernels reproduce bit for bit.
    fn dot_scalar<const R: usize>(panels: &[Self], acts: [&[Self::Act]; R]) -> [[f32; PANEL]; R];
    /// `dot_scalar` in AVX2, hinting in the panel `ahead` places past each one it reads (0: no
    /// hints). Safety: the CPU has AVX2, FMA and F16C; every
    /// activation row holds one block per panel.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx2<const R: usize>(
        panels: &[Self],
        acts: [&[Self::Act]; R],
        ahead: usize,
    ) -> [[f32; PANEL]; R];
    /// `dot_scalar` in AVX-512 VNNI, hints as `dot_avx2`. Safety: the CPU has it; row
    /// lengths as for `dot_avx2`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx512<const R: usize>(
        panels: &[Self],
        acts: [&[Self::Act]; R],
        ahead: usize,
    ) -> [[f32; PANEL]; R];

    /// `dot_scalar` with the kernel set `isa`, which must be one the CPU supports (as `isa()`
    /// or `isa::available()` report); the SIMD kernels prefetch `ahead` panels ahead.
    #[inline]
    fn dot<const R: usize>(
        isa: Isa,
        panels: &[Self],
        acts: [&[Self::Act]; R],
        ahead: usize,
    ) -> [[f32; PANEL]; R] {
        assert!(
            acts.iter().all(|a| a.len() == panels.len() * Self::BLOCKS),
            "activation rows must hold BLOCKS blocks per panel"
        );
        match isa {
            // SAFETY: the caller passes only an `isa` the CPU supports, and the lengths are
            // checked above.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => unsafe { Self::dot_avx512(panels, acts, ahead) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { Self::dot_avx2(panels, acts, ahead) },
            _ => Self::dot_scalar(panels, acts),
        }
    }
}

/// Inside an `impl PanelBlock`: `dot_scalar`, `dot_avx2` and `dot_avx512` handed to the
/// portable function `$scalar` and to the functions of the same names in module `$simd`.
macro_rules! forward_kernels {
    ($scalar:path, $simd:ident) => {
        fn dot_scalar<const R: usize>(
            panels: &[Self],
            acts: [&[ActBlock]; R],
        ) -> [[f32; PANEL]; R] {
            $scalar(panels, acts)
        }

        #[cfg(target_arch = "x86_64")]
        unsafe fn dot_avx2<const R: usize>(
            panels: &[Self],
            acts: [&[ActBlock]; R],
            ahead: usize,
        ) -> [[f32; PANEL]; R] {
            super::$simd::dot_avx2(panels, acts, ahead)
        }

        #[cfg(target_arch = "x86_64")]
        unsafe fn dot_avx512<const R: usize>(
            panels: &[Self],
            acts: [&[ActBlock]; R],
            ahead: usize,
        ) -> [[f32; PANEL]; R] {
            super::$simd::dot_avx512(panels, acts, ahead)
        }
    };
}
pub(super) use forward_kernels;

thread_local! {
    /// The calling thread's activation row, for inputs computed on the way in (norm, SwiGLU).
    static ROW: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// How far ahead of the panel it multiplies a kernel asks for weights (into L2, see
/// `prefetch_ahead`), one panel's lines per loop iteration so the hints keep pace with the work.
/// With several rows per weight byte a batched step runs near both the compute and the
/// bandwidth limit and needs the weights asked for well ahead: ~40 KB (128 Q4_1 or 71 Q8_0
/// panels). A single row runs at the bandwidth limit, where hints far ahead only compete with
/// the stream the hardware prefetcher already follows: ~8 KB (25 Q4_1 or 14 Q8_0 panels; it
/// was 4 KB while the hints went into L1). Measured at `tile`, and with the hints into L2 (steps
/// alternating within one forward_speed process, medians, each pair in its own minute): one row
/// 8 KB 3.30 ms a step against 4 KB's 3.47, 16 KB 3.81 against 3.94, 2 KB 3.95 against 3.60;
/// eight rows 80 KB 12.08 against 40 KB's 11.84, 160 KB 7.32 against 7.24, 20 KB 7.95 against
/// 8.00 (within the noise).
const PREFETCH_BYTES: usize = 40 << 10;
const PREFETCH_BYTES_ONE_ROW: usize = 8 << 10;

/// Activation rows per kernel call: each unpacked weight vector is reused this many times.
const ROWS_PER_CALL: usize = 4;
/// Activation rows per work item in prefill, so a panel group is reused across rows while hot.
const ROWS_PER_ITEM: usize = 16;

pub(crate) struct PanelMatrix<P> {
    /// Group `g` (weight rows `16g..16g+16`) is `panels[g * ppr..(g + 1) * ppr]`, `ppr` panels
    /// a row (`n_in / (32 · P::BLOCKS)`).
    panels: Packed<P>,
    n_out: usize,
    n_in: usize,
}

impl<P: PanelBlock> PanelMatrix<P> {
    /// Packs `n_out` rows of `n_in` values from GGUF bytes (rows back to back) into `arena`.
    pub(crate) fn from_bytes(
        arena: &mut WeightArena,
        data: &[u8],
        n_out: usize,
        n_in: usize,
    ) -> Result<Self> {
        let per_panel = QK * P::BLOCKS;
        if n_in == 0 || !n_in.is_multiple_of(per_panel) {
            return Err(Error::model_load(format!(
                "{} row length {n_in} is not a positive multiple of {per_panel}",
                P::NAME
            )));
        }
        let ppr = n_in / per_panel;
        let row_bytes = ppr * P::BYTES;
        if data.len() != n_out * row_bytes {
            return Err(Error::model_load(format!(
                "{} matrix {n_out}x{n_in} needs {} bytes, got {}",
                P::NAME,
                n_out * row_bytes,
                data.len()
            )));
        }
        let zero = vec![0u8; P::BYTES];
        let groups = n_out.div_ceil(PANEL);
        let pack = |g: usize, i: usize| {
            P::pack(std::array::from_fn(|c| {
                let row = g * PANEL + c;
                if row < n_out {
                    let at = row * row_bytes + i * P::BYTES;
                    &data[at..at + P::BYTES]
                } else {
                    &zero[..]
                }
            }))
        };
        let all = (0..groups).flat_map(|g| (0..ppr).map(move |i| (g, i)));
        let panels = arena.collect(groups * ppr, all.map(|(g, i)| pack(g, i)));
        Ok(Self {
            panels,
            n_out,
            n_in,
        })
    }

    /// `x` is `[rows][n_in]`; returns `[rows][n_out]` computed with kernel set `isa`.
    #[cfg(test)]
    pub(crate) fn matmul_with(&self, isa: Isa, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = Vec::new();
        self.matmul_into(isa, &Input::Rows(x), rows, &mut out, &Output::Store);
        out
    }

    /// `y = x·Wᵀ` for the `rows` rows of `input` (`n_in` wide), landed in `out` (`[rows][n_out]`,
    /// its allocation reused) as `output` says, computed with the kernel set `isa` (one the CPU
    /// supports).
    ///
    /// One round trip of the pool: its threads compute and quantize the activation rows, wait
    /// for each other, then take work items (a tile of up to 16 rows against one panel group)
    /// and land each item's outputs straight in `out`. Quantizing on the calling thread alone
    /// and copying a tile buffer into `out` afterwards left the other thread idle meanwhile
    /// (measured against that: prefill +9%, one-row decode +2%, eight rows unchanged).
    pub(crate) fn matmul_into(
        &self,
        isa: Isa,
        input: &Input<'_>,
        rows: usize,
        out: &mut Vec<f32>,
        output: &Output<'_>,
    ) {
        output.prepare(out, rows * self.n_out);
        // One driver compiled per kind of output, so landing a tile is a few inline stores
        // (through `Output::tile` per tile, prefill lost 4% to the calls and copies).
        match output {
            Output::Store => self.matmul_emit(isa, input, rows, out, |_, _, y, dst| store(y, dst)),
            Output::Accumulate => {
                self.matmul_emit(isa, input, rows, out, |_, _, y, dst| accumulate(y, dst))
            }
            Output::Rope { .. } => self.matmul_emit(isa, input, rows, out, |r, c0, y, dst| {
                output.tile(r, c0, y, dst)
            }),
        }
    }

    /// `matmul_into` with `emit(row, first column, outputs, destination)` landing each tile.
    fn matmul_emit(
        &self,
        isa: Isa,
        input: &Input<'_>,
        rows: usize,
        out: &mut [f32],
        emit: impl Fn(usize, usize, &[f32; PANEL], &mut [f32]) + Sync,
    ) {
        let bpr = self.n_in / QK;
        assert!(
            input.stored_len() >= rows * self.n_in,
            "activation shorter than rows x n_in"
        );
        if rows == 1 {
            self.matmul_one_row(isa, input, out, emit);
            return;
        }
        P::Act::with_scratch(|acts| {
            // Every block is written in the first phase before any is read.
            acts.resize(rows * bpr, P::Act::default());
            let groups = self.n_out.div_ceil(PANEL);
            let row_items = rows.div_ceil(ROWS_PER_ITEM);
            let (acts, outs) = (SharedMut::new(acts), SharedMut::new(out));
            two_phases(
                rows,
                row_items * groups,
                |r| {
                    // SAFETY: row r's blocks are written by this call only (each row once).
                    let dst = unsafe { acts.slice_mut(r * bpr, bpr) };
                    ROW.with_borrow_mut(|scratch| {
                        P::quantize_row(input.row(r, self.n_in, scratch), dst)
                    });
                },
                |item| {
                    let (ri, g) = (item / groups, item % groups);
                    let r0 = ri * ROWS_PER_ITEM;
                    let tile_rows = ROWS_PER_ITEM.min(rows - r0);
                    // SAFETY: the first phase is over: nobody writes the activations any more.
                    let acts = unsafe { acts.slice(0, rows * bpr) };
                    let (c0, cols) = (g * PANEL, PANEL.min(self.n_out - g * PANEL));
                    self.tile(isa, acts, r0, tile_rows, g, |r, values| {
                        // SAFETY: item (ri, g) alone writes columns c0..c0 + cols of its rows.
                        let dst = unsafe { outs.slice_mut((r0 + r) * self.n_out + c0, cols) };
                        emit(r0 + r, c0, values, dst);
                    });
                },
            );
        });
    }

    /// `matmul_emit` for a single row: every thread quantizes the row into its own buffer and
    /// goes straight on to its panel groups. Quantized once and shared, as a batch's rows are,
    /// the other thread waited for the one doing it and then read the blocks from that core's
    /// cache, at each of a layer's four matmuls. One-row decode, forward_speed, interleaved
    /// pairs: 3.11-3.40 → 3.12-3.23 ms a step after 32 positions (six pairs, mean 3.23 → 3.17;
    /// an earlier three 3.16-3.37 → 3.05-3.22), 3.78-4.10 → 3.70-4.08 after 1,024 (four). A
    /// batch's rows are worth sharing: quantizing all eight on each thread cost eight rows 5%.
    fn matmul_one_row(
        &self,
        isa: Isa,
        input: &Input<'_>,
        out: &mut [f32],
        emit: impl Fn(usize, usize, &[f32; PANEL], &mut [f32]) + Sync,
    ) {
        let bpr = self.n_in / QK;
        let outs = SharedMut::new(out);
        for_each_index(
            self.n_out.div_ceil(PANEL),
            // whether this thread's buffer holds the row yet
            || false,
            |quantized, g| {
                P::Act::with_scratch(|acts| {
                    if !*quantized {
                        acts.resize(bpr, P::Act::default());
                        ROW.with_borrow_mut(|scratch| {
                            P::quantize_row(input.row(0, self.n_in, scratch), acts)
                        });
                        *quantized = true;
                    }
                    let (c0, cols) = (g * PANEL, PANEL.min(self.n_out - g * PANEL));
                    self.tile(isa, acts, 0, 1, g, |_, values| {
                        // SAFETY: group g alone writes columns c0..c0 + cols.
                        let dst = unsafe { outs.slice_mut(c0, cols) };
                        emit(0, c0, values, dst);
                    });
                })
            },
        );
    }

    /// One work item: `tile_rows` activation rows from `r0` against panel group `g`; calls
    /// `emit(r, outputs)` with each row's 16 outputs.
    fn tile(
        &self,
        isa: Isa,
        acts: &[P::Act],
        r0: usize,
        tile_rows: usize,
        g: usize,
        mut emit: impl FnMut(usize, &[f32; PANEL]),
    ) {
        let (bpr, ppr) = (self.n_in / QK, self.n_in / (QK * P::BLOCKS));
        let panels = &self.panels[g * ppr..(g + 1) * ppr];
        let mut store = |r: usize, out: &[[f32; PANEL]]| {
            for (k, row) in out.iter().enumerate() {
                emit(r + k, row);
            }
        };
        // Measured on the default model, 2 threads (forward_speed, best of 5-6, interleaved):
        // the kernels' in-loop hints against the burst of hints for the group two groups ahead
        // that this driver issued before: eight-row decode 1303 -> 1700 tok/s, prefill
        // 3563 -> 3729; for one row (which had no hints: the burst cost it 10%) 4 KB ahead
        // took decode from 322-343 to 338-373 tok/s with AVX-512 and 278-284 to 315-330 with
        // AVX2 (2 KB: 353-362, 6 KB: 334-360, 8 KB: 328-367, 12-16 KB: slower than none).
        let ahead = if tile_rows > 1 {
            PREFETCH_BYTES
        } else {
            PREFETCH_BYTES_ONE_ROW
        } / std::mem::size_of::<P>();
        let act_row = |r: usize| &acts[(r0 + r) * bpr..(r0 + r + 1) * bpr];
        let mut r = 0;
        // AVX-512 has the registers for eight rows' sums, halving the weight unpacking.
        while isa == Isa::Avx512Vnni && r + 2 * ROWS_PER_CALL <= tile_rows {
            let out = P::dot(
                isa,
                panels,
                std::array::from_fn::<_, { 2 * ROWS_PER_CALL }, _>(|k| act_row(r + k)),
                ahead,
            );
            store(r, &out);
            r += 2 * ROWS_PER_CALL;
        }
        while r + ROWS_PER_CALL <= tile_rows {
            let out = P::dot(
                isa,
                panels,
                std::array::from_fn::<_, ROWS_PER_CALL, _>(|k| act_row(r + k)),
                ahead,
            );
            store(r, &out);
            r += ROWS_PER_CALL;
        }
        match tile_rows - r {
            1 => store(r, &P::dot(isa, panels, [act_row(r)], ahead)),
            2 => store(r, &P::dot(isa, panels, [act_row(r), act_row(r + 1)], ahead)),
            3 => store(
                r,
                &P::dot(
                    isa,
                    panels,
                    [act_row(r), act_row(r + 1), act_row(r + 2)],
                    ahead,
                ),
            ),
            _ => {}
        }
    }

    pub(crate) fn n_out(&self) -> usize {
        self.n_out
    }

    pub(crate) fn n_in(&self) -> usize {
        self.n_in
    }

    /// Row `r` (of `n_out`) in f32 into `out` (`n_in` values); false when `r` is out of range
    /// or `out` has the wrong length.
    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) -> bool {
        if r >= self.n_out || out.len() != self.n_in {
            return false;
        }
        let ppr = self.n_in / (QK * P::BLOCKS);
        let group = &self.panels[(r / PANEL) * ppr..(r / PANEL + 1) * ppr];
        for (p, o) in group.iter().zip(out.chunks_exact_mut(QK * P::BLOCKS)) {
            for (b, o) in o.chunks_exact_mut(QK).enumerate() {
                o.copy_from_slice(&p.dequantize_lane(r % PANEL, b));
            }
        }
        true
    }
}
