//! A weight matrix in our panels, whichever type the file stores it in: every GGUF type smolrt
//! reads has a panel kernel of its own. candle's kernels were slower than llama.cpp's for most
//! of them (Q4_1, Q5_0 and Q5_1 scalar; prefill at 0.29x for Q4_0, 0.52x Q5_K, 0.68x Q3_K,
//! 0.70x Q2_K, 0.62x F16, 0.53x F32, 0.04x BF16; decode at 0.79x for Q4_K; a noisier Q8_0), and
//! it has no IQ4 types at all. The same matrix serves as a token table: rows are read back from
//! the panels, so a tied output projection and its embedding are one copy.

use super::floats::{Bf16Matrix, F16Matrix, F32Matrix};
use super::iq4_xs::Iq4XsMatrix;
use super::isa::isa;
use super::matmul_io::{Input, Output};
use super::q2_k::Q2KMatrix;
use super::q3_k::Q3KMatrix;
use super::q4_0::{Iq4NlMatrix, Q4_0Matrix};
use super::q4_1::Q4_1Matrix;
use super::q4_k::Q4KMatrix;
use super::q5::{Q5_0Matrix, Q5_1Matrix};
use super::q5_k::Q5KMatrix;
use super::q6_k::Q6KMatrix;
use super::q8_0::Q8_0Matrix;
use super::weight_arena::WeightArena;
use crate::gguf::TensorType;
use crate::Result;

pub(crate) enum Matrix {
    F32(F32Matrix),
    F16(F16Matrix),
    Bf16(Bf16Matrix),
    Q4_0(Q4_0Matrix),
    Q4_1(Q4_1Matrix),
    Q5_0(Q5_0Matrix),
    Q5_1(Q5_1Matrix),
    Q8_0(Q8_0Matrix),
    Q2K(Q2KMatrix),
    Q3K(Q3KMatrix),
    Q4K(Q4KMatrix),
    Q5K(Q5KMatrix),
    Q6K(Q6KMatrix),
    Iq4Nl(Iq4NlMatrix),
    Iq4Xs(Iq4XsMatrix),
}

/// `$body` with `$m` bound to the panel matrix inside `$matrix`, whatever its type.
macro_rules! each {
    ($matrix:expr, $m:ident => $body:expr) => {
        match $matrix {
            Matrix::F32($m) => $body,
            Matrix::F16($m) => $body,
            Matrix::Bf16($m) => $body,
            Matrix::Q4_0($m) => $body,
            Matrix::Q4_1($m) => $body,
            Matrix::Q5_0($m) => $body,
            Matrix::Q5_1($m) => $body,
            Matrix::Q8_0($m) => $body,
            Matrix::Q2K($m) => $body,
            Matrix::Q3K($m) => $body,
            Matrix::Q4K($m) => $body,
            Matrix::Q5K($m) => $body,
            Matrix::Q6K($m) => $body,
            Matrix::Iq4Nl($m) => $body,
            Matrix::Iq4Xs($m) => $body,
        }
    };
}

impl Matrix {
    /// Packs `n_out` rows of `n_in` values stored as `dtype` (GGUF bytes, rows back to back)
    /// into `arena`.
    pub(crate) fn load(
        arena: &mut WeightArena,
        dtype: TensorType,
        data: &[u8],
        n_out: usize,
        n_in: usize,
    ) -> Result<Self> {
        use TensorType as T;
        let a = arena;
        Ok(match dtype {
            T::F32 => Matrix::F32(F32Matrix::from_bytes(a, data, n_out, n_in)?),
            T::F16 => Matrix::F16(F16Matrix::from_bytes(a, data, n_out, n_in)?),
            T::BF16 => Matrix::Bf16(Bf16Matrix::from_bytes(a, data, n_out, n_in)?),
            T::Q4_0 => Matrix::Q4_0(Q4_0Matrix::from_bytes(a, data, n_out, n_in)?),
            T::Q4_1 => Matrix::Q4_1(Q4_1Matrix::from_bytes(a, data, n_out, n_in)?),
            T::Q5_0 => Matrix::Q5_0(Q5_0Matrix::from_bytes(a, data, n_out, n_in)?),
            T::Q5_1 => Matrix::Q5_1(Q5_1Matrix::from_bytes(a, data, n_out, n_in)?),
            T::Q8_0 => Matrix::Q8_0(Q8_0Matrix::from_bytes(a, data, n_out, n_in)?),
            T::Q2K => Matrix::Q2K(Q2KMatrix::from_bytes(a, data, n_out, n_in)?),
            T::Q3K => Matrix::Q3K(Q3KMatrix::from_bytes(a, data, n_out, n_in)?),
            T::Q4K => Matrix::Q4K(Q4KMatrix::from_bytes(a, data, n_out, n_in)?),
            T::Q5K => Matrix::Q5K(Q5KMatrix::from_bytes(a, data, n_out, n_in)?),
            T::Q6K => Matrix::Q6K(Q6KMatrix::from_bytes(a, data, n_out, n_in)?),
            T::IQ4_NL => Matrix::Iq4Nl(Iq4NlMatrix::from_bytes(a, data, n_out, n_in)?),
            T::IQ4_XS => Matrix::Iq4Xs(Iq4XsMatrix::from_bytes(a, data, n_out, n_in)?),
        })
    }

    pub(crate) fn n_out(&self) -> usize {
        each!(self, m => m.n_out())
    }

    pub(crate) fn n_in(&self) -> usize {
        each!(self, m => m.n_in())
    }

    /// `y = x·Wᵀ` for the `rows` rows of `input`, landed in `out` as `output` says (see
    /// `PanelMatrix::matmul_into`), with the kernel set the CPU has.
    pub(crate) fn matmul(
        &self,
        input: &Input<'_>,
        rows: usize,
        out: &mut Vec<f32>,
        output: &Output<'_>,
    ) {
        each!(self, m => m.matmul_into(isa(), input, rows, out, output))
    }

    /// Row `r` in f32 into `out` (`n_in` values); false when `r` is out of range or `out` has
    /// the wrong length.
    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) -> bool {
        each!(self, m => m.dequantize_row(r, out))
    }
}
