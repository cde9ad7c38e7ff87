//! Weight matrices and `y = x·Wᵀ` over a whole batch of rows.
//!
//! Projections that read the same input (q, k and v; gate and up) are fused into one matrix at
//! load time when their types match: a GGUF matrix is a stack of independently encoded rows, so
//! stacking their bytes is a valid bigger matrix, and one matmul instead of three saves the
//! activation quantization and the thread-pool round trip that dominate decode.

use std::sync::Arc;

use super::matmul_io::{Input, Output};
use super::matrix::Matrix;
use super::weight_arena::WeightArena;
use crate::gguf::GgufFile;
use crate::{Error, Result};

/// One matrix of a [`Linear`], `n_out` rows of `n_in` values. Shared: the tied output
/// projection is the embedding table.
struct Part {
    weight: Arc<Matrix>,
    n_out: usize,
}

/// `n_out` output columns computed from `n_in` inputs, possibly as several stacked parts; the
/// output row always holds the parts' columns back to back, in load order.
pub(crate) struct Linear {
    parts: Vec<Part>,
    n_in: usize,
    n_out: usize,
}

impl Linear {
    /// The output projection of tied embeddings: the embedding table itself.
    pub(crate) fn tied(table: &Arc<Matrix>) -> Self {
        let (n_out, n_in) = (table.n_out(), table.n_in());
        Self {
            parts: vec![Part {
                weight: Arc::clone(table),
                n_out,
            }],
            n_in,
            n_out,
        }
    }

    /// Loads the named matrices, each expected as `[n_out_i, n_in]` (ggml dims `[n_in, n_out_i]`),
    /// fused into one when they share a type.
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
        let parts = match dtype {
            Some(dtype) if parts.len() > 1 && infos.iter().all(|i| i.dtype == dtype) => {
                let datas: Vec<&[u8]> = infos.iter().map(|i| file.tensor_data(i)).collect();
                let weight = Matrix::load(arena, dtype, &datas.concat(), n_out, n_in)?;
                vec![Part {
                    weight: Arc::new(weight),
                    n_out,
                }]
            }
            _ => {
                let mut loaded = Vec::with_capacity(parts.len());
                for (&(_, part_out), info) in parts.iter().zip(&infos) {
                    let data = file.tensor_data(info);
                    let weight = Matrix::load(arena, info.dtype, data, part_out, n_in)?;
                    loaded.push(Part {
                        weight: Arc::new(weight),
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
            part.weight.matmul(input, rows, out, output);
            return Ok(());
        }
        // Unfused parts: the input once, each part's products side by side, then the output.
        let x = input.materialize(rows, self.n_in);
        let mut whole = vec![0f32; rows * self.n_out];
        let mut col = 0;
        let mut y = Vec::new();
        for part in &self.parts {
            let (rows_in, store) = (Input::Rows(&x), Output::Store);
            part.weight.matmul(&rows_in, rows, &mut y, &store);
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
