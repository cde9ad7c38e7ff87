//! Weight matrices and `y = x·Wᵀ` over a whole batch of rows.
//!
//! Projections that read the same input (q, k and v; gate and up) are fused into one matrix at
//! load time when their quantization matches: a quantized matrix is a stack of independently
//! encoded rows, so stacking their bytes is a valid bigger matrix, and one matmul instead of three
//! saves the activation quantization and the thread-pool round trip that dominate decode.

use std::sync::Arc;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, QTensor};
use candle_core::{CpuStorage, CustomOp1, Device, Layout};

use super::embedding::Table;
use super::halves::{Bf16Matrix, F16Matrix};
use super::iq4::{Iq4NlMatrix, Iq4XsMatrix};
use super::isa::isa;
use super::matmul_io::{Input, Output};
use super::q2_k::Q2KMatrix;
use super::q3_k::Q3KMatrix;
use super::q4_0::Q4_0Matrix;
use super::q4_1::Q4_1Matrix;
use super::q4_k::Q4KMatrix;
use super::q5::{Q5_0Matrix, Q5_1Matrix};
use super::q5_k::Q5KMatrix;
use super::q6_k::Q6KMatrix;
use super::q8_0::Q8_0Matrix;
use super::weight_arena::WeightArena;
use crate::gguf::{GgufFile, TensorType};
use crate::{Error, Result};

/// One matrix of a [`Linear`], `n_out` rows of `n_in` values.
struct Part {
    weight: Kernel,
    n_out: usize,
}

/// Who multiplies: ours for the types we have kernels for (candle leaves Q4_1, Q5_0 and Q5_1
/// scalar, its Q4_0 ran at 0.29x llama.cpp's prefill and its Q4_K at 0.79x its decode, and its
/// Q8_0 path is noisier than ggml's; its Q5_K prefilled at 0.52x, its Q3_K at 0.68x and its
/// Q2_K at 0.70x; it has no IQ4 types at all, and its F16 prefilled at 0.62x, its BF16 at
/// 0.04x), candle's for the rest (F32).
enum Kernel {
    Candle(Arc<QTensor>),
    /// Shared, like Q8_0: a tied F16 or BF16 embedding table.
    F16(Arc<F16Matrix>),
    Bf16(Arc<Bf16Matrix>),
    /// Shared, like Q8_0: a tied IQ4 embedding table.
    Iq4Nl(Arc<Iq4NlMatrix>),
    Iq4Xs(Arc<Iq4XsMatrix>),
    Q2K(Q2KMatrix),
    Q3K(Q3KMatrix),
    Q4_0(Q4_0Matrix),
    Q4_1(Q4_1Matrix),
    Q4K(Q4KMatrix),
    Q5_0(Q5_0Matrix),
    Q5_1(Q5_1Matrix),
    Q5K(Q5KMatrix),
    /// Shared, like Q8_0: a tied Q6_K embedding table (Q4_K_M files keep it in Q6_K).
    Q6K(Arc<Q6KMatrix>),
    /// Shared: the tied output projection is the embedding table.
    Q8_0(Arc<Q8_0Matrix>),
}

impl Kernel {
    /// `input` has `rows` rows of `n_in`; the `[rows][n_out]` products land in `out` as
    /// `output` says. Our kernels compute the input rows and land the outputs inside their own
    /// pool round trip; candle's takes a plain matrix and returns one.
    fn matmul(
        &self,
        input: &Input<'_>,
        rows: usize,
        n_in: usize,
        n_out: usize,
        out: &mut Vec<f32>,
        output: &Output<'_>,
    ) -> Result<()> {
        match self {
            Kernel::Candle(w) => {
                let x = input.materialize(rows, n_in).into_owned();
                output.rows(candle_matmul(w, x, rows, n_in)?, n_out, out);
            }
            Kernel::F16(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Bf16(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Iq4Nl(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Iq4Xs(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Q2K(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Q3K(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Q4_0(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Q4_1(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Q4K(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Q5_0(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Q5_1(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Q5K(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Q6K(w) => w.matmul_into(isa(), input, rows, out, output),
            Kernel::Q8_0(w) => w.matmul_into(isa(), input, rows, out, output),
        }
        Ok(())
    }
}

/// `n_out` output columns computed from `n_in` inputs, possibly as several stacked parts; the
/// output row always holds the parts' columns back to back, in load order.
pub(crate) struct Linear {
    parts: Vec<Part>,
    n_in: usize,
    n_out: usize,
}

impl Linear {
    /// The output projection of tied embeddings: the embedding table itself, multiplied by our
    /// kernel where the table is kept in our panels.
    pub(crate) fn tied(table: &Table) -> Result<Self> {
        let (weight, n_out, n_in) = match table {
            Table::Q8_0(m) => (Kernel::Q8_0(Arc::clone(m)), m.n_out(), m.n_in()),
            Table::Q6K(m) => (Kernel::Q6K(Arc::clone(m)), m.n_out(), m.n_in()),
            Table::F16(m) => (Kernel::F16(Arc::clone(m)), m.n_out(), m.n_in()),
            Table::Bf16(m) => (Kernel::Bf16(Arc::clone(m)), m.n_out(), m.n_in()),
            Table::Iq4Nl(m) => (Kernel::Iq4Nl(Arc::clone(m)), m.n_out(), m.n_in()),
            Table::Iq4Xs(m) => (Kernel::Iq4Xs(Arc::clone(m)), m.n_out(), m.n_in()),
            Table::Candle(t) => {
                let (n_out, n_in) = t
                    .shape()
                    .dims2()
                    .map_err(|e| Error::model_load(format!("matrix is not 2-d: {e}")))?;
                (Kernel::Candle(Arc::clone(t)), n_out, n_in)
            }
        };
        Ok(Self {
            parts: vec![Part { weight, n_out }],
            n_in,
            n_out,
        })
    }

    /// Loads the named matrices, each expected as `[n_out_i, n_in]` (ggml dims `[n_in, n_out_i]`),
    /// fused into one when they share a quantized type.
    pub(crate) fn load(
        arena: &mut WeightArena,
        file: &GgufFile,
        parts: &[(&str, usize)],
        n_in: usize,
    ) -> Result<Self> {
        let mut infos = Vec::with_capacity(parts.len());
        for &(name, n_out) in parts {
            let info = file
                .tensor_info(name)
                .ok_or_else(|| Error::model_load(format!("missing tensor {name}")))?;
            if info.dims.as_slice() != [n_in, n_out] {
                return Err(Error::model_load(format!(
                    "tensor {name} has dims {:?}, expected [{n_in}, {n_out}]",
                    info.dims
                )));
            }
            infos.push(info);
        }
        let n_out: usize = parts.iter().map(|p| p.1).sum();
        let dtype = infos.first().map(|i| i.dtype);
        let fusable = parts.len() > 1
            && infos.iter().all(|i| Some(i.dtype) == dtype)
            && dtype.is_some_and(|t| t != TensorType::F32);
        let parts = match dtype {
            Some(dtype) if fusable => {
                let datas: Vec<&[u8]> = infos.iter().map(|i| file.tensor_data(i)).collect();
                let weight = match ours(arena, dtype, &datas.concat(), n_out, n_in)? {
                    Some(kernel) => kernel,
                    None => Kernel::Candle(Arc::new(stack_rows(dtype, &datas, n_out, n_in)?)),
                };
                vec![Part { weight, n_out }]
            }
            _ => {
                let mut loaded = Vec::with_capacity(parts.len());
                for (&(name, part_out), info) in parts.iter().zip(&infos) {
                    let data = file.tensor_data(info);
                    let weight = match ours(arena, info.dtype, data, part_out, n_in)? {
                        Some(kernel) => kernel,
                        None => Kernel::Candle(Arc::new(file.qtensor(name)?)),
                    };
                    loaded.push(Part {
                        weight,
                        n_out: part_out,
                    });
                }
                loaded
            }
        };
        Ok(Self { parts, n_in, n_out })
    }

    pub(crate) fn n_out(&self) -> usize {
        self.n_out
    }

    /// `y = x·Wᵀ` for the `rows` rows of `input` (`[rows][n_in]` once computed), landed in
    /// `out` (`[rows][n_out]`) as `output` says.
    ///
    /// Each output value is one dot product of a quantized input row with a weight row,
    /// independent of the other rows, so results do not depend on batch composition.
    pub(crate) fn forward(
        &self,
        input: &Input<'_>,
        rows: usize,
        out: &mut Vec<f32>,
        output: &Output<'_>,
    ) -> Result<()> {
        if input.stored_len() != rows * self.n_in {
            return Err(Error::internal(format!(
                "matmul input has {} values, expected {rows} x {}",
                input.stored_len(),
                self.n_in
            )));
        }
        if let [part] = self.parts.as_slice() {
            return part
                .weight
                .matmul(input, rows, self.n_in, self.n_out, out, output);
        }
        // Unfused parts: the input once, each part's products side by side, then the output.
        let x = input.materialize(rows, self.n_in);
        let mut whole = vec![0f32; rows * self.n_out];
        let mut col = 0;
        let mut y = Vec::new();
        for part in &self.parts {
            let (rows_in, store) = (Input::Rows(&x), Output::Store);
            part.weight
                .matmul(&rows_in, rows, self.n_in, part.n_out, &mut y, &store)?;
            for (dst, src) in whole
                .chunks_exact_mut(self.n_out)
                .zip(y.chunks_exact(part.n_out))
            {
                dst[col..col + part.n_out].copy_from_slice(src);
            }
            col += part.n_out;
        }
        output.rows(whole, self.n_out, out);
        Ok(())
    }
}

/// Runs candle's quantized matmul kernel (what `QMatMul::forward` dispatches to) directly on our
/// buffer, skipping the Tensor wrapper. Unlike `QMatMul`, this keeps f16/f32 matrices in their
/// stored form instead of expanding them to f32 tensors at load.
fn candle_matmul(weight: &QTensor, x: Vec<f32>, rows: usize, n_in: usize) -> Result<Vec<f32>> {
    let input = CpuStorage::F32(x);
    let result = weight.cpu_fwd(&input, &Layout::contiguous((rows, n_in)));
    match result? {
        (CpuStorage::F32(y), _) => Ok(y),
        _ => Err(Error::internal(
            "quantized matmul returned a non-f32 result",
        )),
    }
}

/// Our kernel for `dtype`, when we have one.
fn ours(
    arena: &mut WeightArena,
    dtype: TensorType,
    data: &[u8],
    n_out: usize,
    n_in: usize,
) -> Result<Option<Kernel>> {
    Ok(match dtype {
        TensorType::F16 => Some(Kernel::F16(Arc::new(F16Matrix::from_bytes(
            arena, data, n_out, n_in,
        )?))),
        TensorType::BF16 => Some(Kernel::Bf16(Arc::new(Bf16Matrix::from_bytes(
            arena, data, n_out, n_in,
        )?))),
        TensorType::IQ4_NL => Some(Kernel::Iq4Nl(Arc::new(Iq4NlMatrix::from_bytes(
            arena, data, n_out, n_in,
        )?))),
        TensorType::IQ4_XS => Some(Kernel::Iq4Xs(Arc::new(Iq4XsMatrix::from_bytes(
            arena, data, n_out, n_in,
        )?))),
        TensorType::Q2K => Some(Kernel::Q2K(Q2KMatrix::from_bytes(
            arena, data, n_out, n_in,
        )?)),
        TensorType::Q3K => Some(Kernel::Q3K(Q3KMatrix::from_bytes(
            arena, data, n_out, n_in,
        )?)),
        TensorType::Q4_0 => Some(Kernel::Q4_0(Q4_0Matrix::from_bytes(
            arena, data, n_out, n_in,
        )?)),
        TensorType::Q4_1 => Some(Kernel::Q4_1(Q4_1Matrix::from_bytes(
            arena, data, n_out, n_in,
        )?)),
        TensorType::Q4K => Some(Kernel::Q4K(Q4KMatrix::from_bytes(
            arena, data, n_out, n_in,
        )?)),
        TensorType::Q5K => Some(Kernel::Q5K(Q5KMatrix::from_bytes(
            arena, data, n_out, n_in,
        )?)),
        TensorType::Q6K => Some(Kernel::Q6K(Arc::new(Q6KMatrix::from_bytes(
            arena, data, n_out, n_in,
        )?))),
        TensorType::Q5_0 => Some(Kernel::Q5_0(Q5_0Matrix::from_bytes(
            arena, data, n_out, n_in,
        )?)),
        TensorType::Q5_1 => Some(Kernel::Q5_1(Q5_1Matrix::from_bytes(
            arena, data, n_out, n_in,
        )?)),
        TensorType::Q8_0 => Some(Kernel::Q8_0(Arc::new(Q8_0Matrix::from_bytes(
            arena, data, n_out, n_in,
        )?))),
        _ => None,
    })
}

/// Builds one `[n_out, n_in]` matrix from row-major quantized matrices of the same type.
fn stack_rows(dtype: TensorType, datas: &[&[u8]], n_out: usize, n_in: usize) -> Result<QTensor> {
    let Some(candle_type) = dtype.candle() else {
        return Err(Error::internal(format!("{dtype:?} has no candle matmul")));
    };
    let block = dtype.block_size();
    if block == 0 || !n_in.is_multiple_of(block) {
        return Err(Error::model_load(format!(
            "row length {n_in} is not a multiple of the {dtype:?} block size {block}"
        )));
    }
    let bytes = n_out * (n_in / block) * dtype.type_size();
    let given: usize = datas.iter().map(|d| d.len()).sum();
    if given != bytes {
        return Err(Error::model_load(format!(
            "stacked {dtype:?} matrix needs {bytes} bytes, tensors hold {given}"
        )));
    }
    // candle reinterprets the bytes as blocks in place, so they must start at an address aligned
    // for any block type; a byte Vec guarantees none, hence the padding.
    const ALIGN: usize = 16;
    let mut buf = vec![0u8; bytes + ALIGN];
    let start = buf.as_ptr().align_offset(ALIGN);
    if start >= ALIGN {
        return Err(Error::internal("cannot align matrix buffer"));
    }
    let mut at = start;
    for d in datas {
        buf[at..at + d.len()].copy_from_slice(d);
        at += d.len();
    }
    qtensor_from_ggml(
        candle_type,
        &buf[start..start + bytes],
        vec![n_out, n_in],
        &Device::Cpu,
    )
    .map_err(|e| Error::model_load(format!("cannot build stacked matrix: {e}")))
}
