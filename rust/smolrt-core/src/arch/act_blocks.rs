//! Activations quantized per 32 values, the form every integer weight kernel consumes: ggml's
//! Q8_0 / Q8_1 activation blocks (it pairs Q4_1 weights with Q8_1, Q8_0 weights with Q8_0; the
//! quantized values are the same, Q8_1 only adds the scaled sum that Q4_1's offset needs).

use std::cell::RefCell;

use half::f16;

pub(crate) const QK: usize = 32;

/// A block of 32 activation values in the form a weight type's kernels read: ggml's quantized
/// blocks ([`ActBlock`]) for the integer types, plain f32 for the float ones.
pub(crate) trait Activation: Copy + Default + Send + Sync + 'static {
    /// One row (a multiple of 32 values) into `out`, one block per 32 values, the way ggml
    /// pairs the form with weights in blocks of 32 or, with `super_blocks`, in super-blocks of
    /// 256 (the K-quants and IQ4_XS).
    fn quantize(row: &[f32], super_blocks: bool, out: &mut [Self]);
    /// Runs `f` on the calling thread's buffer of blocks, kept between matmuls: fresh
    /// multi-megabyte buffers on every call cost page faults and kernel page zeroing (perf:
    /// about 15% of a 512-token prefill). It holds the largest matmul's worth once one has run.
    fn with_scratch<T>(f: impl FnOnce(&mut Vec<Self>) -> T) -> T;
}

thread_local! {
    static SCRATCH: RefCell<Vec<ActBlock>> = const { RefCell::new(Vec::new()) };
}

impl Activation for ActBlock {
    /// Q8_0 / Q8_1 blocks, or for super-blocks Q8_K rows (one scale per 256 values).
    fn quantize(row: &[f32], super_blocks: bool, out: &mut [Self]) {
        if super_blocks {
            quantize_row_k_into(row, out)
        } else {
            quantize_row_into(row, out)
        }
    }

    fn with_scratch<T>(f: impl FnOnce(&mut Vec<Self>) -> T) -> T {
        SCRATCH.with_borrow_mut(f)
    }
}

/// value[j] ≈ d · qs[j]; `s` = d · Σ qs for the Q8_0 / Q8_1 blocks, Σ qs (as f32, exactly) for
/// the Q8_K rows, whose kernels apply their one `d` per super-block. Scales are rounded through
/// f16 as ggml stores them, then kept as f32 for the hot loop. |qs| ≤ 127, never -128, which
/// the i8 kernels rely on.
/// `sum` = Σ qs exactly, for kernels that bias signed weights to unsigned and take it back out;
/// `sum_lo` the same over the first 16, for Q6_K, whose scales cover 16 values each: only the
/// Q8_K rows Q6_K reads (`quantize_row_k_into`) fill it, the Q8_0 / Q8_1 blocks leave it 0.
#[derive(Clone, Copy, Default)]
pub(crate) struct ActBlock {
    pub d: f32,
    pub s: f32,
    pub sum: i32,
    pub sum_lo: i32,
    pub qs: [i8; QK],
}

impl ActBlock {
    /// Quants `j..j + 4` as one i32 (little-endian), the four bytes a kernel broadcasts to
    /// every 32-bit lane.
    #[inline(always)]
    pub(crate) fn quad(&self, j: usize) -> i32 {
        let q = &self.qs[j..j + 4];
        i32::from_le_bytes([q[0] as u8, q[1] as u8, q[2] as u8, q[3] as u8])
    }
}

/// Quantizes each `n_in`-long row of `x` (`n_in` a multiple of 32) to blocks, rounding to
/// nearest even as ggml's x86 quantize_row_q8_0/q8_1 do.
#[cfg(test)]
pub(crate) fn quantize_rows(x: &[f32], n_in: usize) -> Vec<ActBlock> {
    let mut out = vec![ActBlock::default(); x.len() / QK];
    for (row, dst) in x.chunks_exact(n_in).zip(out.chunks_exact_mut(n_in / QK)) {
        quantize_row_into(row, dst);
    }
    out
}

/// Values per K-quant super-block, and per scale of the activations ggml pairs with them.
pub(crate) const QK_K: usize = 256;

/// One row in ggml's Q8_K form, the activations ggml pairs with K-quant weights
/// (quantize_row_q8_K): one f32 scale per 256 values, chosen so the value of largest magnitude
/// (the first, on a tie) lands on −127 (`d` takes the opposite sign; ggml's was −128 before
/// its IQ types, and the grid matters: on a Q4_K file with −128 the logits strayed from
/// llama.cpp's by up to 1.41, with −127 as far as candle's), the others rounded to nearest
/// even. Written as the 8 blocks of 32 the kernels read, each with
/// that scale, its own integer sum, and that sum as f32 in `s` (|sum| ≤ 32 · 127, exact): the
/// K-quant kernels sum each block's min term unscaled and apply `d` once per super-block, as
/// ggml multiplies its integer block sums by `d`. `row.len()` is a multiple of 256.
pub(crate) fn quantize_row_k_into(row: &[f32], out: &mut [ActBlock]) {
    for (span, dst) in row.chunks_exact(QK_K).zip(out.chunks_exact_mut(QK_K / QK)) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in span {
            if v.abs() > amax {
                (amax, max) = (v.abs(), v);
            }
        }
        if amax == 0.0 {
            dst.fill(ActBlock::default());
            continue;
        }
        let iscale = -127.0 / max;
        let d = 1.0 / iscale;
        for (block, b) in span.chunks_exact(QK).zip(dst) {
            let mut qs = [0i8; QK];
            for (q, &v) in qs.iter_mut().zip(block) {
                *q = (iscale * v).round_ties_even().min(127.0) as i8;
            }
            let sum = qs.iter().map(|&q| i32::from(q)).sum::<i32>();
            *b = ActBlock {
                d,
                s: sum as f32,
                sum,
                sum_lo: qs[..QK / 2].iter().map(|&q| i32::from(q)).sum(),
                qs,
            };
        }
    }
}

/// One row of 32-value blocks into `out` (one block per 32 values).
pub(crate) fn quantize_row_into(row: &[f32], out: &mut [ActBlock]) {
    for (block, dst) in row.chunks_exact(QK).zip(out) {
        *dst = quantize_block(block);
    }
}

#[inline]
fn quantize_block(block: &[f32]) -> ActBlock {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        avx2::quantize_block(block)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    {
        quantize_block_scalar(block)
    }
}

/// The reference the SIMD version must reproduce bit for bit.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "avx2"), allow(dead_code))]
fn quantize_block_scalar(block: &[f32]) -> ActBlock {
    let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(block) {
        *q = (v * id).round_ties_even() as i8;
        sum += *q as i32;
    }
    ActBlock {
        d: f16::from_f32(d).to_f32(),
        s: f16::from_f32(sum as f32 * d).to_f32(),
        sum,
        sum_lo: 0,
        qs,
    }
}

// SAFETY (whole module): compiled only when the build enables avx2; `block` is checked to hold
// 32 values before the four unaligned 8-lane loads.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
mod avx2 {
    use super::{ActBlock, QK};
    use half::f16;
    use std::arch::x86_64::*;

    #[inline]
    pub(super) fn quantize_block(block: &[f32]) -> ActBlock {
        let Some(block) = block.get(..QK) else {
            return super::quantize_block_scalar(block);
        };
        unsafe {
            let p = block.as_ptr();
            let v = [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ];
            let sign = _mm256_set1_ps(-0.0);
            let abs = v.map(|x| _mm256_andnot_ps(sign, x));
            let m = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
            let m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let m1 = _mm_max_ss(m2, _mm_movehdup_ps(m2));
            let amax = _mm_cvtss_f32(m1);
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let idv = _mm256_set1_ps(id);
            // cvtps rounds to nearest even under the default MXCSR, like round_ties_even
            let q = v.map(|x| _mm256_cvtps_epi32(_mm256_mul_ps(x, idv)));
            let sum_v =
                _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let s4 = _mm_add_epi32(
                _mm256_castsi256_si128(sum_v),
                _mm256_extracti128_si256(sum_v, 1),
            );
            let s2 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
            let s1 = _mm_add_epi32(s2, _mm_shuffle_epi32(s2, 1));
            let sum = _mm_cvtsi128_si32(s1);
            // i32 -> i16 -> i8 with saturation (never hit: |q| <= 127); packs interleave
            // 128-bit lanes, the permute puts the 32 values back in order.
            let w16a = _mm256_packs_epi32(q[0], q[1]);
            let w16b = _mm256_packs_epi32(q[2], q[3]);
            let w8 = _mm256_packs_epi16(w16a, w16b);
            let ordered =
                _mm256_permutevar8x32_epi32(w8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            let mut qs = [0i8; QK];
            _mm256_storeu_si256(qs.as_mut_ptr() as *mut __m256i, ordered);
            ActBlock {
                d: f16::from_f32(d).to_f32(),
                s: f16::from_f32(sum as f32 * d).to_f32(),
                sum,
                sum_lo: 0,
                qs,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SIMD quantizer must agree with the scalar reference bit for bit, ties and zeros too.
    #[test]
    fn simd_quantizer_matches_scalar() {
        let mut cases: Vec<[f32; QK]> = vec![[0.0; QK], [1.0; QK], [-3.5; QK]];
        let mut ties = [0f32; QK];
        for (j, v) in ties.iter_mut().enumerate() {
            // with amax 127 the scale is 1, so these land exactly on .5 ties
            *v = j as f32 - 15.5;
        }
        ties[0] = 127.0;
        cases.push(ties);
        let mut seed = 0x2545_f491_u32;
        for _ in 0..200 {
            let mut b = [0f32; QK];
            for v in b.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                *v = (seed as f32 / u32::MAX as f32 - 0.5) * 10.0;
            }
            cases.push(b);
        }
        for c in &cases {
            let (a, b) = (quantize_block(c), quantize_block_scalar(c));
            assert_eq!(
                (a.d, a.s, a.sum, a.qs),
                (b.d, b.s, b.sum, b.qs),
                "block {c:?}"
            );
        }
        let t = quantize_block_scalar(&ties);
        assert_eq!(&t.qs[1..5], &[-14, -14, -12, -12]);
    }
}
