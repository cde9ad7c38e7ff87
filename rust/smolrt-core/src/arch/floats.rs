//! F16, BF16 and F32 weights: the unquantized files converters write. candle ran F16 at 1.03x
//! llama.cpp's decode and 0.62x its prefill, BF16 at 0.27x and 0.04x (it converts value by
//! value) and F32 at 1.38x and 0.53x; these are our panel kernels.
//!
//! A panel is 16 rows by 32 inputs, input `j` of row `c` at `w[16j + c]`, so the 16 rows' weights
//! for one input are one vector: widened to f32 (exactly: `vcvtph2ps` for F16, a 16-bit shift for
//! BF16, as stored for F32) and multiplied into each activation row's 16 sums with the input's
//! value broadcast.
//! Activations stay in f32 (ggml rounds them to the weight's type first), so the products are
//! the exact f32 products of the stored weights. Each sum is two chains of fused multiply-adds,
//! the even and the odd inputs in order, added at the end: two independent chains keep a
//! one-row decode from waiting on each FMA's latency, and every row gets the same chains
//! whatever its batch or instruction set.

use std::cell::RefCell;

use half::f16;

use super::act_blocks::{Activation, QK};
use super::panels::{PanelBlock, PanelMatrix, PANEL};

pub(crate) type F16Matrix = PanelMatrix<FloatPanel<F16>>;
pub(crate) type Bf16Matrix = PanelMatrix<FloatPanel<Bf16>>;
pub(crate) type F32Matrix = PanelMatrix<FloatPanel<F32>>;

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
    /// The values as they are, whatever the weights' block size.
    fn quantize(row: &[f32], _super_blocks: bool, out: &mut [Self]) {
        for (values, block) in row.chunks_exact(QK).zip(out) {
            block.0.copy_from_slice(values);
        }
    }

    fn with_scratch<T>(f: impl FnOnce(&mut Vec<Self>) -> T) -> T {
        SCRATCH.with_borrow_mut(f)
    }
}

/// The stored formats, for the SIMD kernels' widening (`floats_simd`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloatKind {
    F16,
    Bf16,
    F32,
}

/// How a float type stores one value, and widens it to f32 exactly.
pub(crate) trait FloatFormat: Copy + Send + Sync + 'static {
    const NAME: &'static str;
    const KIND: FloatKind;
    /// The stored word: u16 or u32, little-endian in the file.
    type Word: Copy + Default + Send + Sync + 'static;
    fn read(bytes: &[u8]) -> Self::Word;
    fn widen(w: Self::Word) -> f32;
}

#[derive(Clone, Copy)]
pub(crate) struct F16;
#[derive(Clone, Copy)]
pub(crate) struct Bf16;
#[derive(Clone, Copy)]
pub(crate) struct F32;

impl FloatFormat for F16 {
    const NAME: &'static str = "F16";
    const KIND: FloatKind = FloatKind::F16;
    type Word = u16;
    fn read(bytes: &[u8]) -> u16 {
        u16::from_le_bytes([bytes[0], bytes[1]])
    }
    #[inline(always)]
    fn widen(w: u16) -> f32 {
        f16::from_bits(w).to_f32()
    }
}

impl FloatFormat for Bf16 {
    const NAME: &'static str = "BF16";
    const KIND: FloatKind = FloatKind::Bf16;
    type Word = u16;
    fn read(bytes: &[u8]) -> u16 {
        u16::from_le_bytes([bytes[0], bytes[1]])
    }
    #[inline(always)]
    fn widen(w: u16) -> f32 {
        f32::from_bits(u32::from(w) << 16)
    }
}

impl FloatFormat for F32 {
    const NAME: &'static str = "F32";
    const KIND: FloatKind = FloatKind::F32;
    type Word = u32;
    fn read(bytes: &[u8]) -> u32 {
        u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
    #[inline(always)]
    fn widen(w: u32) -> f32 {
        f32::from_bits(w)
    }
}

/// Block `i` of 16 rows: the GGUF bytes (1 KB for the 16-bit types, 2 KB for F32).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(crate) struct FloatPanel<F: FloatFormat> {
    w: [F::Word; QK * PANEL],
}

impl<F: FloatFormat> PanelBlock for FloatPanel<F> {
    const NAME: &'static str = F::NAME;
    type Act = F32Block;
    const BYTES: usize = QK * std::mem::size_of::<F::Word>();

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let size = std::mem::size_of::<F::Word>();
        let mut p = FloatPanel {
            w: [F::Word::default(); QK * PANEL],
        };
        for (c, row) in rows.iter().enumerate() {
            for j in 0..QK {
                p.w[PANEL * j + c] = F::read(&row[size * j..]);
            }
        }
        p
    }

    fn dequantize_lane(&self, c: usize, _block: usize) -> [f32; QK] {
        std::array::from_fn(|j| F::widen(self.w[PANEL * j + c]))
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
                        even = F::widen(p.w[PANEL * j + c]).mul_add(x.0[j], even);
                        odd = F::widen(p.w[PANEL * (j + 1) + c]).mul_add(x.0[j + 1], odd);
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
        super::floats_simd::dot_avx2(panels, acts, ahead)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dot_avx512<const R: usize>(
        panels: &[Self],
        acts: [&[F32Block]; R],
        ahead: usize,
    ) -> [[f32; PANEL]; R] {
        super::floats_simd::dot_avx512(panels, acts, ahead)
    }
}

impl<F: FloatFormat> FloatPanel<F> {
    /// The stored weights, input `j` of row `c` at `16j + c`.
    pub(super) fn weights(&self) -> &[F::Word; QK * PANEL] {
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

    fn uniform(state: &mut u64) -> f32 {
        ((next(state) >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
    }

    /// `v` as `F` stores it (BF16 by truncation), little-endian.
    fn encode<F: FloatFormat>(v: f32) -> Vec<u8> {
        match F::KIND {
            FloatKind::F16 => f16::from_f32(v).to_le_bytes().to_vec(),
            FloatKind::Bf16 => ((v.to_bits() >> 16) as u16).to_le_bytes().to_vec(),
            FloatKind::F32 => v.to_le_bytes().to_vec(),
        }
    }

    /// `n` finite weights as `F` stores them: random values across several magnitudes, with
    /// zeros, negative zeros, subnormals of the format and large values mixed in (no product
    /// with the test's activations overflows f32).
    fn weights<F: FloatFormat>(n: usize, seed: u64) -> Vec<u8> {
        let (tiny, large) = match F::KIND {
            FloatKind::F16 => (6e-8, 65504.0),
            FloatKind::Bf16 | FloatKind::F32 => (1e-40, 1e30),
        };
        let mut s = seed;
        (0..n)
            .flat_map(|i| {
                let v = match i % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => (next(&mut s) % 100) as f32 * tiny,
                    3 => large,
                    _ => uniform(&mut s) * 0.2,
                };
                encode::<F>(v)
            })
            .collect()
    }

    fn activations(rows: usize, n_in: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..rows * n_in)
            .map(|i| uniform(&mut s) * [1e-3, 1.0, 40.0][(i / 7) % 3])
            .collect()
    }

    /// The weights (widened) and their panels.
    fn matrix<F: FloatFormat>(
        n_out: usize,
        n_in: usize,
        seed: u64,
    ) -> (Vec<f32>, PanelMatrix<FloatPanel<F>>) {
        let bytes = weights::<F>(n_out * n_in, seed);
        let size = std::mem::size_of::<F::Word>();
        let values = bytes
            .chunks_exact(size)
            .map(|b| F::widen(F::read(b)))
            .collect();
        let m = PanelMatrix::from_bytes(&mut WeightArena::new(), &bytes, n_out, n_in).unwrap();
        (values, m)
    }

    fn rows_read_back<F: FloatFormat>() {
        let (n_out, n_in) = (21, 64);
        let (values, m) = matrix::<F>(n_out, n_in, 1);
        let mut row = vec![0f32; n_in];
        for r in 0..n_out {
            assert!(m.dequantize_row(r, &mut row));
            let want = &values[r * n_in..(r + 1) * n_in];
            assert_eq!(
                row.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{} row {r}",
                F::NAME
            );
        }
        assert!(!m.dequantize_row(n_out, &mut row));
    }

    #[test]
    fn panels_hold_the_stored_values() {
        rows_read_back::<F16>();
        rows_read_back::<Bf16>();
        rows_read_back::<F32>();
        // the widening itself: F16 through the half crate, BF16 as the top of an f32
        assert_eq!(F16::widen(0x3c00), 1.0);
        assert_eq!(F16::widen(0x0001), 2f32.powi(-24));
        assert_eq!(Bf16::widen(0x3f80), 1.0);
        assert_eq!(Bf16::widen(0xc0a0), -5.0);
        assert_eq!(F32::widen(0x4049_0fdb), std::f32::consts::PI);
    }

    /// Against f64 dot products of the widened weights (each product exact in f64; the f32
    /// result within the two chains' rounding bound), then: every instruction set gives the
    /// scalar bits, and a row alone or a leading part of the batch gives the bits it got in the
    /// whole batch.
    fn matmul_checks<F: FloatFormat>() {
        let (n_out, n_in) = (37, 96);
        let (w, m) = matrix::<F>(n_out, n_in, 2);
        for rows in [1, 2, 3, 4, 5, 8, 9, 13, 17] {
            let x = activations(rows, n_in, 3 + rows as u64);
            let want = m.matmul_with(Isa::Scalar, &x, rows);
            for r in 0..rows {
                for o in 0..n_out {
                    let (mut exact, mut size) = (0f64, 0f64);
                    for j in 0..n_in {
                        let t = w[o * n_in + j] as f64 * x[r * n_in + j] as f64;
                        exact += t;
                        size += t.abs();
                    }
                    let got = want[r * n_out + o] as f64;
                    // two chains of n_in / 2 roundings each, then their sum
                    let bound = size * (n_in / 2 + 1) as f64 * f32::EPSILON as f64;
                    assert!(
                        (got - exact).abs() <= bound,
                        "{} ({r},{o}): {got} vs {exact}",
                        F::NAME
                    );
                }
            }
            for &isa in &isa::available()[1..] {
                let got = m.matmul_with(isa, &x, rows);
                assert_eq!(
                    got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    "{} {isa:?}, {rows} rows",
                    F::NAME
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
        matmul_checks::<F16>();
    }

    #[test]
    fn bf16_matmul_matches_reference_on_every_isa() {
        matmul_checks::<Bf16>();
    }

    #[test]
    fn f32_matmul_matches_reference_on_every_isa() {
        matmul_checks::<F32>();
    }
}
