//! Matmul for Q4_1 weights. candle 0.11 only has a generic scalar dot product for Q4_1 (over
//! 90% of decode time on the default SmolLM2 file went there), so this type gets its own kernel:
//! activations quantized to Q8_1 per 32 values as ggml does, then integer block dot products
//! with AVX2 where the build enables it, spread over candle's worker pool like its own matmuls.

use std::sync::Mutex;

use half::f16;

use crate::{Error, Result};

const QK: usize = 32;
/// Bytes of one Q4_1 block in GGUF: f16 scale, f16 min, 16 bytes of packed nibbles.
const BLOCK_BYTES: usize = 20;
/// Output columns per work item: big enough that per-item bookkeeping vanishes, small enough
/// that a decode matmul still splits into many items for the pool.
const COLS_PER_ITEM: usize = 16;
/// Input rows per work item in prefill, so a tile of weights is reused across rows while hot.
const ROWS_PER_ITEM: usize = 16;

/// One weight block: value[j] = d · q[j] + m, q in 0..16; low nibbles hold j < 16.
#[derive(Clone, Copy)]
struct WeightBlock {
    d: f16,
    m: f16,
    qs: [u8; 16],
}

/// One activation block quantized like ggml's Q8_1: value[j] ≈ d · qs[j]; `s` = d · Σ qs.
/// Scales are rounded through f16 as ggml stores them, then kept as f32 for the hot loop.
#[derive(Clone, Copy)]
struct ActBlock {
    d: f32,
    s: f32,
    qs: [i8; QK],
}

pub(crate) struct Q4_1Matrix {
    blocks: Vec<WeightBlock>,
    n_out: usize,
    n_in: usize,
}

impl Q4_1Matrix {
    /// Parses `n_out` rows of `n_in` values from GGUF Q4_1 bytes.
    pub(crate) fn from_bytes(data: &[u8], n_out: usize, n_in: usize) -> Result<Self> {
        if n_in == 0 || !n_in.is_multiple_of(QK) {
            return Err(Error::model_load(format!(
                "Q4_1 row length {n_in} is not a positive multiple of {QK}"
            )));
        }
        let n_blocks = n_out * (n_in / QK);
        if data.len() != n_blocks * BLOCK_BYTES {
            return Err(Error::model_load(format!(
                "Q4_1 matrix {n_out}x{n_in} needs {} bytes, got {}",
                n_blocks * BLOCK_BYTES,
                data.len()
            )));
        }
        let blocks = data
            .chunks_exact(BLOCK_BYTES)
            .map(|b| {
                let mut qs = [0u8; 16];
                qs.copy_from_slice(&b[4..]);
                WeightBlock {
                    d: f16::from_le_bytes([b[0], b[1]]),
                    m: f16::from_le_bytes([b[2], b[3]]),
                    qs,
                }
            })
            .collect();
        Ok(Self {
            blocks,
            n_out,
            n_in,
        })
    }

    /// `x` is `[rows][n_in]`; returns `[rows][n_out]`.
    pub(crate) fn matmul(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let bpr = self.n_in / QK;
        let acts = quantize_rows(x, self.n_in);
        let col_items = self.n_out.div_ceil(COLS_PER_ITEM);
        let row_items = rows.div_ceil(ROWS_PER_ITEM);
        // Each item owns one [rows in tile][cols in chunk] piece of a scratch laid out item by
        // item; the Mutex makes that ownership checkable at no real cost (each lock is taken
        // exactly once, uncontended).
        let mut scratch = vec![0f32; rows * self.n_out];
        {
            let mut pieces = Vec::with_capacity(row_items * col_items);
            let mut rest = scratch.as_mut_slice();
            for ri in 0..row_items {
                let tile_rows = ROWS_PER_ITEM.min(rows - ri * ROWS_PER_ITEM);
                for ci in 0..col_items {
                    let cols = COLS_PER_ITEM.min(self.n_out - ci * COLS_PER_ITEM);
                    let (piece, tail) = rest.split_at_mut(tile_rows * cols);
                    pieces.push(Mutex::new(piece));
                    rest = tail;
                }
            }
            candle_core::utils::barrier_pool().execute_chunked(pieces.len(), |range| {
                for item in range {
                    let (ri, ci) = (item / col_items, item % col_items);
                    let r0 = ri * ROWS_PER_ITEM;
                    let c0 = ci * COLS_PER_ITEM;
                    let cols = COLS_PER_ITEM.min(self.n_out - c0);
                    let Ok(mut piece) = pieces[item].lock() else {
                        continue;
                    };
                    let tile_rows = piece.len() / cols;
                    let act_row = |r: usize| &acts[(r0 + r) * bpr..(r0 + r + 1) * bpr];
                    let weight_row = |c: usize| &self.blocks[(c0 + c) * bpr..(c0 + c + 1) * bpr];
                    if tile_rows == 1 {
                        // decode: four weight rows share each activation load
                        let a = act_row(0);
                        let mut c = 0;
                        while c + 4 <= cols {
                            let w = [
                                weight_row(c),
                                weight_row(c + 1),
                                weight_row(c + 2),
                                weight_row(c + 3),
                            ];
                            piece[c..c + 4].copy_from_slice(&dot_cols(w, a));
                            c += 4;
                        }
                        for c in c..cols {
                            piece[c] = dot_cols([weight_row(c)], a)[0];
                        }
                    } else {
                        // prefill: four activation rows share each unpacked weight block
                        for c in 0..cols {
                            let w = weight_row(c);
                            let mut r = 0;
                            while r + 4 <= tile_rows {
                                let a =
                                    [act_row(r), act_row(r + 1), act_row(r + 2), act_row(r + 3)];
                                for (k, v) in dot_rows(w, a).into_iter().enumerate() {
                                    piece[(r + k) * cols + c] = v;
                                }
                                r += 4;
                            }
                            for r in r..tile_rows {
                                piece[r * cols + c] = dot_rows(w, [act_row(r)])[0];
                            }
                        }
                    }
                }
            });
        }
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
}

/// Quantizes each row of `x` to Q8_1 blocks (ggml's quantize_row_q8_1, rounding to nearest
/// even as its x86 path does).
fn quantize_rows(x: &[f32], n_in: usize) -> Vec<ActBlock> {
    let mut out = Vec::with_capacity(x.len() / QK);
    for row in x.chunks_exact(n_in) {
        for block in row.chunks_exact(QK) {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut qs = [0i8; QK];
            let mut sum = 0i32;
            for (q, &v) in qs.iter_mut().zip(block) {
                *q = (v * id).round_ties_even() as i8;
                sum += *q as i32;
            }
            out.push(ActBlock {
                d: f16::from_f32(d).to_f32(),
                s: f16::from_f32(sum as f32 * d).to_f32(),
                qs,
            });
        }
    }
    out
}

// The kernels below compute several independent dot products at once: one dot product alone is
// bound by the latency of its accumulator chain, and sharing the activation (or unpacked weight)
// loads saves work. Every (row, column) result is computed by the same per-chain sequence of
// operations whichever kernel and group it falls in, so results never depend on batch shape.

/// `N` weight rows against one activation row: Σ over blocks of d_w·d_a·Σ q_w·q_a + m_w·s_a.
#[inline]
fn dot_cols<const N: usize>(w: [&[WeightBlock]; N], a: &[ActBlock]) -> [f32; N] {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    {
        avx2::dot_cols(w, a)
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    {
        w.map(|w| dot_scalar(w, a))
    }
}

/// One weight row against `N` activation rows.
#[inline]
fn dot_rows<const N: usize>(w: &[WeightBlock], a: [&[ActBlock]; N]) -> [f32; N] {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    {
        avx2::dot_rows(w, a)
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    {
        a.map(|a| dot_scalar(w, a))
    }
}

#[cfg_attr(
    all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ),
    allow(dead_code)
)]
fn dot_scalar(w: &[WeightBlock], a: &[ActBlock]) -> f32 {
    let mut sum = 0f32;
    for (wb, ab) in w.iter().zip(a) {
        let mut sumi = 0i32;
        for j in 0..16 {
            sumi += (wb.qs[j] & 0x0F) as i32 * ab.qs[j] as i32;
            sumi += (wb.qs[j] >> 4) as i32 * ab.qs[j + 16] as i32;
        }
        sum += wb.d.to_f32() * ab.d * sumi as f32 + wb.m.to_f32() * ab.s;
    }
    sum
}

// SAFETY (whole module): it is only compiled when the build enables avx2 and fma, so every
// intrinsic is available; all loads are unaligned loads from in-bounds fixed-size arrays.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod avx2 {
    use super::{ActBlock, WeightBlock};
    use std::arch::x86_64::*;

    /// The 32 weight quants of a block as u8 lanes: low nibbles (values 0..16) in the low half,
    /// high nibbles (values 16..32) in the high half, matching the activation order.
    #[inline(always)]
    unsafe fn unpack(wb: &WeightBlock) -> __m256i {
        let packed = _mm_loadu_si128(wb.qs.as_ptr() as *const __m128i);
        let both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }

    #[inline(always)]
    unsafe fn load_act(ab: &ActBlock) -> __m256i {
        _mm256_loadu_si256(ab.qs.as_ptr() as *const __m256i)
    }

    /// Σ q_w·q_a of one block as 8 f32 partial sums (u8 x i8 -> pairwise i16, |sum| <= 2·15·128
    /// so no saturation -> i32 -> f32).
    #[inline(always)]
    unsafe fn block_dot(qw: __m256i, qa: __m256i) -> __m256 {
        let pairs = _mm256_maddubs_epi16(qw, qa);
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    #[inline(always)]
    unsafe fn finish(acc: __m256, mins: f32) -> f32 {
        let half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let quad = _mm_add_ps(half, _mm_movehl_ps(half, half));
        let one = _mm_add_ss(quad, _mm_shuffle_ps(quad, quad, 1));
        _mm_cvtss_f32(one) + mins
    }

    #[inline]
    pub(super) fn dot_cols<const N: usize>(w: [&[WeightBlock]; N], a: &[ActBlock]) -> [f32; N] {
        unsafe {
            let mut acc = [_mm256_setzero_ps(); N];
            let mut mins = [0f32; N];
            for (i, ab) in a.iter().enumerate() {
                let qa = load_act(ab);
                for c in 0..N {
                    let wb = &w[c][i];
                    let scale = _mm256_set1_ps(wb.d.to_f32() * ab.d);
                    acc[c] = _mm256_fmadd_ps(scale, block_dot(unpack(wb), qa), acc[c]);
                    mins[c] += wb.m.to_f32() * ab.s;
                }
            }
            std::array::from_fn(|c| finish(acc[c], mins[c]))
        }
    }

    #[inline]
    pub(super) fn dot_rows<const N: usize>(w: &[WeightBlock], a: [&[ActBlock]; N]) -> [f32; N] {
        unsafe {
            let mut acc = [_mm256_setzero_ps(); N];
            let mut mins = [0f32; N];
            for (i, wb) in w.iter().enumerate() {
                let qw = unpack(wb);
                let (d, m) = (wb.d.to_f32(), wb.m.to_f32());
                for r in 0..N {
                    let ab = &a[r][i];
                    let scale = _mm256_set1_ps(d * ab.d);
                    acc[r] = _mm256_fmadd_ps(scale, block_dot(qw, load_act(ab)), acc[r]);
                    mins[r] += m * ab.s;
                }
            }
            std::array::from_fn(|r| finish(acc[r], mins[r]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Q4_1 matrix with known values, checked against a direct f32 evaluation.
    #[test]
    fn matmul_matches_dequantized_reference() {
        let (n_out, n_in, rows) = (37, 64, 19);
        let mut bytes = Vec::new();
        let mut weights = vec![0f32; n_out * n_in];
        for o in 0..n_out {
            for b in 0..n_in / QK {
                let d = 0.01 + 0.001 * (o + b) as f32;
                let m = -0.05 * b as f32;
                let (d16, m16) = (f16::from_f32(d), f16::from_f32(m));
                bytes.extend_from_slice(&d16.to_le_bytes());
                bytes.extend_from_slice(&m16.to_le_bytes());
                for j in 0..16 {
                    let lo = ((o * 7 + j * 3 + b) % 16) as u8;
                    let hi = ((o * 5 + j * 11 + b * 2) % 16) as u8;
                    bytes.push(lo | (hi << 4));
                    let base = o * n_in + b * QK;
                    weights[base + j] = d16.to_f32() * lo as f32 + m16.to_f32();
                    weights[base + j + 16] = d16.to_f32() * hi as f32 + m16.to_f32();
                }
            }
        }
        let m = Q4_1Matrix::from_bytes(&bytes, n_out, n_in).unwrap();
        let x: Vec<f32> = (0..rows * n_in)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        let y = m.matmul(&x, rows);
        for r in 0..rows {
            let xr = &x[r * n_in..(r + 1) * n_in];
            for o in 0..n_out {
                let wr = &weights[o * n_in..(o + 1) * n_in];
                let want: f32 = xr.iter().zip(wr).map(|(a, b)| a * b).sum();
                // Rounding an activation block to 8 bits moves each value by at most amax/254,
                // which bounds the error by that times the block's |weights|; f16 scales add
                // a relative 1e-3 on top.
                let bound: f32 = xr
                    .chunks(QK)
                    .zip(wr.chunks(QK))
                    .map(|(xb, wb)| {
                        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
                        let wsum: f32 = wb.iter().map(|v| v.abs()).sum();
                        amax / 254.0 * wsum
                            + 1e-3 * xb.iter().zip(wb).map(|(a, b)| (a * b).abs()).sum::<f32>()
                    })
                    .sum();
                let got = y[r * n_out + o];
                assert!(
                    (got - want).abs() <= bound + 1e-5,
                    "({r},{o}): {got} vs {want}, bound {bound}"
                );
            }
        }
        // A row gives the same result alone as inside the batch.
        let alone = m.matmul(&x[5 * n_in..6 * n_in], 1);
        assert_eq!(alone, &y[5 * n_out..6 * n_out]);
        // Every kernel shape gives the same bits for the same (row, column), close to scalar.
        let bpr = n_in / QK;
        let acts = quantize_rows(&x, n_in);
        let w: Vec<&[WeightBlock]> = m.blocks.chunks(bpr).collect();
        let a: Vec<&[ActBlock]> = acts.chunks(bpr).collect();
        let single = dot_cols([w[2]], a[3])[0];
        assert_eq!(dot_cols([w[0], w[1], w[2], w[3]], a[3])[2], single);
        assert_eq!(dot_rows(w[2], [a[0], a[1], a[2], a[3]])[3], single);
        assert_eq!(dot_rows(w[2], [a[3]])[0], single);
        assert_eq!(y[3 * n_out + 2], single);
        assert!((single - dot_scalar(w[2], a[3])).abs() < 1e-4);
    }

    #[test]
    fn rejects_wrong_sizes() {
        assert!(Q4_1Matrix::from_bytes(&[0; 40], 1, 48).is_err());
        assert!(Q4_1Matrix::from_bytes(&[0; 39], 1, 64).is_err());
    }
}
