//! F16 and BF16 weights: the unquantized files converters write. candle ran them at 1.03x
//! llama.cpp's decode and 0.62x its prefill (F16) and at 0.27x and 0.04x (BF16, which it
//! converts value by value); these are our panel kernels.
//!
//! A panel is 16 rows by 32 inputs, input `j` of row `c` at `w[16j + c]`, so the 16 rows' weights
//! for one input are one vector: widened to f32 (exactly: `vcvtph2ps` for F16, a 16-bit shift for
//! BF16) and multiplied into each activation row's 16 sums with the input's value broadcast.
//! Activations stay in f32 (ggml rounds them to the weight's type first), so the products are
//! the exact f32 products of the stored weights. Each sum is two chains of fused multiply-adds,
//! the even and the odd inputs in order, added at the end: two independent chains keep a
//! one-row decode from waiting on each FMA's latency, and every row gets the same chains
//! whatever its batch or instruction set.

use std::cell::RefCell;

use half::f16;

use super::act_blocks::{Activation, QK};
use super::panels::{PanelBlock, PanelMatrix, PANEL};

pub(crate) type F16Matrix = PanelMatrix<HalfPanel<false>>;
pub(crate) type Bf16Matrix = PanelMatrix<HalfPanel<true>>;

/// 32 activation values as they are, for the float weight types.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(crate) struct F32Block(pub [f32; QK]);

impl Default for F32Block {
    fn default() -> Self {
        F32Block([0.0; QK])
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<F32Block>> = const { RefCell::new(Vec::new()) };
}

impl Activation for F32Block {
    fn quantize(row: &[f32], out: &mut [Self]) {
        for (values, block) in row.chunks_exact(QK).zip(out) {
            block.0.copy_from_slice(values);
        }
    }

    fn with_scratch<T>(f: impl FnOnce(&mut Vec<Self>) -> T) -> T {
        SCRATCH.with_borrow_mut(f)
    }
}

/// Block `i` of 16 rows in F16 (`BF16` false) or BF16: 1 KB, the GGUF bytes.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(crate) struct HalfPanel<const BF16: bool> {
    w: [u16; QK * PANEL],
}

/// A stored weight in f32, exactly.
#[inline(always)]
fn widen<const BF16: bool>(bits: u16) -> f32 {
    if BF16 {
        f32::from_bits(u32::from(bits) << 16)
    } else {
        f16::from_bits(bits).to_f32()
    }
}

impl<const BF16: bool> PanelBlock for HalfPanel<BF16> {
    const NAME: &'static str = if BF16 { "BF16" } else { "F16" };
    type Act = F32Block;
    const BYTES: usize = 2 * QK;

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = HalfPanel { w: [0; QK * PANEL] };
        for (c, row) in rows.iter().enumerate() {
            for j in 0..QK {
                p.w[PANEL * j + c] = u16::from_le_bytes([row[2 * j], row[2 * j + 1]]);
            }
        }
        p
    }

    fn dequantize_lane(&self, c: usize, _block: usize) -> [f32; QK] {
        std::array::from_fn(|j| widen::<BF16>(self.w[PANEL * j + c]))
    }

    /// The reference: per row and lane, `even = w_j · x_j + even` over the even inputs in order
    /// (fused), `odd` likewise over the odd ones, then `even + odd`.
    fn dot_scalar<const R: usize>(panels: &[Self], acts: [&[F32Block]; R]) -> [[f32; PANEL]; R] {
        let mut out = [[0f32; PANEL]; R];
        for (out, row) in out.iter_mut().zip(acts) {
            for (c, out) in out.iter_mut().enumerate() {
                let (mut even, mut odd) = (0f32, 0f32);
                for (p, x) in panels.iter().zip(row) {
                    for j in (0..QK).step_by(2) {
                        even = widen::<BF16>(p.w[PANEL * j + c]).mul_add(x.0[j], even);
                        odd = widen::<BF16>(p.w[PANEL * (j + 1) + c]).mul_add(x.0[j + 1], odd);
                    }
                }
                *out = even + odd;
            }
        }
        out
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx2<const R: usize>(
        panels: &[Self],
        acts: [&[F32Block]; R],
        ahead: usize,
    ) -> [[f32; PANEL]; R] {
        super::halves_simd::dot_avx2::<BF16, R>(panels, acts, ahead)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx512<const R: usize>(
        panels: &[Self],
        acts: [&[F32Block]; R],
        ahead: usize,
    ) -> [[f32; PANEL]; R] {
        super::halves_simd::dot_avx512::<BF16, R>(panels, acts, ahead)
    }
}

impl<const BF16: bool> HalfPanel<BF16> {
    /// The stored weights, input `j` of row `c` at `16j + c`.
    pub(super) fn weights(&self) -> &[u16; QK * PANEL] {
        &self.w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::isa::{self, Isa};
    use crate::arch::weight_arena::WeightArena;

    /// A tiny SplitMix64, so the test needs no RNG crate.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `n` finite weights in the format's bits: random values across several magnitudes, with
    /// zeros, negative zeros, subnormals and the largest finite values mixed in.
    fn weight_bits<const BF16: bool>(n: usize, seed: u64) -> Vec<u16> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                let r = next(&mut s);
                let v = match i % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    // subnormal in the format (for BF16 in f32 too)
                    2 => (r % 100) as f32 * if BF16 { 1e-40 } else { 6e-8 },
                    // large (F16's largest finite), but no product overflows f32
                    3 => {
                        if BF16 {
                            1e30
                        } else {
                            65504.0
                        }
                    }
                    _ => ((r >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32 * 0.2,
                };
                if BF16 {
                    (v.to_bits() >> 16) as u16
                } else {
                    f16::from_f32(v).to_bits()
                }
            })
            .collect()
    }

    fn activations(rows: usize, n_in: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..rows * n_in)
            .map(|i| {
                let r = next(&mut s);
                let scale = [1e-3, 1.0, 40.0][(i / 7) % 3];
                ((r >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32 * scale
            })
            .collect()
    }

    fn matrix<const BF16: bool>(
        n_out: usize,
        n_in: usize,
        seed: u64,
    ) -> (Vec<u16>, PanelMatrix<HalfPanel<BF16>>) {
        let bits = weight_bits::<BF16>(n_out * n_in, seed);
        let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let m = PanelMatrix::from_bytes(&mut WeightArena::new(), &bytes, n_out, n_in).unwrap();
        (bits, m)
    }

    fn rows_read_back<const BF16: bool>() {
        let (n_out, n_in) = (21, 64);
        let (bits, m) = matrix::<BF16>(n_out, n_in, 1);
        let mut row = vec![0f32; n_in];
        for r in 0..n_out {
            assert!(m.dequantize_row(r, &mut row));
            let want: Vec<u32> = bits[r * n_in..(r + 1) * n_in]
                .iter()
                .map(|&b| widen::<BF16>(b).to_bits())
                .collect();
            assert_eq!(row.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want);
        }
        assert!(!m.dequantize_row(n_out, &mut row));
    }

    #[test]
    fn panels_hold_the_stored_values() {
        rows_read_back::<false>();
        rows_read_back::<true>();
        // the widening itself: F16 through the half crate, BF16 as the top of an f32
        assert_eq!(widen::<false>(0x3c00), 1.0);
        assert_eq!(widen::<false>(0x0001), 2f32.powi(-24));
        assert_eq!(widen::<true>(0x3f80), 1.0);
        assert_eq!(widen::<true>(0xc0a0), -5.0);
    }

    /// Against f64 dot products of the widened weights (each product exact in f64, the f32 sum
    /// within a few ulps of the sum of magnitudes), then: every instruction set gives the
    /// scalar bits, and a row alone or any leading part of the batch gives the bits it got in
    /// the whole batch.
    fn matmul_checks<const BF16: bool>() {
        let (n_out, n_in) = (37, 96);
        let (bits, m) = matrix::<BF16>(n_out, n_in, 2);
        for rows in [1, 2, 3, 4, 5, 8, 9, 13, 17] {
            let x = activations(rows, n_in, 3 + rows as u64);
            let want = m.matmul_with(Isa::Scalar, &x, rows);
            for r in 0..rows {
                for o in 0..n_out {
                    let (mut exact, mut size) = (0f64, 0f64);
                    for j in 0..n_in {
                        let t = widen::<BF16>(bits[o * n_in + j]) as f64 * x[r * n_in + j] as f64;
                        exact += t;
                        size += t.abs();
                    }
                    let got = want[r * n_out + o] as f64;
                    // two chains of n_in / 2 roundings each, then their sum
                    let bound = size * (n_in / 2 + 1) as f64 * f32::EPSILON as f64;
                    assert!(
                        (got - exact).abs() <= bound,
                        "{} ({r},{o}): {got} vs {exact}",
                        HalfPanel::<BF16>::NAME
                    );
                }
            }
            for &isa in &isa::available()[1..] {
                let got = m.matmul_with(isa, &x, rows);
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{} {isa:?}, {rows} rows",
                    HalfPanel::<BF16>::NAME
                );
            }
            let alone = m.matmul_with(isa::isa(), &x[..n_in], 1);
            assert_eq!(alone, want[..n_out], "row 0 alone");
            if rows > 2 {
                let part = m.matmul_with(isa::isa(), &x[..2 * n_in], 2);
                assert_eq!(part, want[..2 * n_out], "first two rows");
            }
        }
    }

    #[test]
    fn f16_matmul_matches_reference_on_every_isa() {
        matmul_checks::<false>();
    }

    #[test]
    fn bf16_matmul_matches_reference_on_every_isa() {
        matmul_checks::<true>();
    }
}
