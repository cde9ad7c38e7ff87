//! Loading the llama-family tensors from a GGUF file into matmul-ready form.

use std::sync::Arc;

use candle_core::Device;

use super::act_blocks::QK_K;
use super::embedding::{Embedding, Table};
use super::halves::{Bf16Matrix, F16Matrix};
use super::iq4::{Iq4NlMatrix, Iq4XsMatrix};
use super::linear::Linear;
use super::q6_k::Q6KMatrix;
use super::q8_0::Q8_0Matrix;
use super::weight_arena::WeightArena;
use crate::config::ModelConfig;
use crate::gguf::{GgufFile, TensorType};
use crate::{Error, Result};

pub(crate) struct LayerWeights {
    pub attn_norm: Vec<f32>,
    /// q, k and v stacked: output rows are `[q (n_head·hd) | k (n_kv·hd) | v (n_kv·hd)]`.
    pub qkv: Linear,
    pub attn_output: Linear,
    pub ffn_norm: Vec<f32>,
    /// gate and up stacked: output rows are `[gate (n_ff) | up (n_ff)]`.
    pub gate_up: Linear,
    pub down: Linear,
}

pub(crate) struct Weights {
    pub embedding: Embedding,
    pub layers: Vec<LayerWeights>,
    pub output_norm: Vec<f32>,
    pub output: Linear,
}

impl Weights {
    pub(crate) fn load(file: &GgufFile, cfg: &ModelConfig) -> Result<Self> {
        let q_dim = cfg.n_head * cfg.head_dim;
        let kv_dim = cfg.n_head_kv * cfg.head_dim;
        // every packed matrix in one arena, on huge pages (see `weight_arena`)
        let arena = &mut WeightArena::new();
        let embedding = Embedding::new(embedding_table(arena, file)?, cfg.vocab_size, cfg.n_embd)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for il in 0..cfg.n_layer {
            let name = |t: &str| format!("blk.{il}.{t}.weight");
            let (q, k, v) = (name("attn_q"), name("attn_k"), name("attn_v"));
            let (gate, up) = (name("ffn_gate"), name("ffn_up"));
            layers.push(LayerWeights {
                attn_norm: norm(file, &name("attn_norm"), cfg.n_embd)?,
                qkv: Linear::load(
                    arena,
                    file,
                    &[(&q, q_dim), (&k, kv_dim), (&v, kv_dim)],
                    cfg.n_embd,
                )?,
                attn_output: Linear::load(
                    arena,
                    file,
                    &[(&name("attn_output"), cfg.n_embd)],
                    q_dim,
                )?,
                ffn_norm: norm(file, &name("ffn_norm"), cfg.n_embd)?,
                gate_up: Linear::load(
                    arena,
                    file,
                    &[(&gate, cfg.n_ff), (&up, cfg.n_ff)],
                    cfg.n_embd,
                )?,
                down: Linear::load(arena, file, &[(&name("ffn_down"), cfg.n_embd)], cfg.n_ff)?,
            });
        }
        let output = if cfg.tied_embeddings {
            Linear::tied(embedding.table())?
        } else {
            Linear::load(
                arena,
                file,
                &[("output.weight", cfg.vocab_size)],
                cfg.n_embd,
            )?
        };
        Ok(Self {
            embedding,
            layers,
            output_norm: norm(file, "output_norm.weight", cfg.n_embd)?,
            output,
        })
    }
}

/// The token table, in our panels when it is Q8_0, Q6_K, F16, BF16 or an IQ4 type (so the tied
/// output projection runs on our kernel, and rows are read back from the same copy), else as a
/// candle tensor.
fn embedding_table(arena: &mut WeightArena, file: &GgufFile) -> Result<Table> {
    let name = "token_embd.weight";
    let info = file
        .tensor_info(name)
        .ok_or_else(|| Error::model_load(format!("missing tensor {name}")))?;
    match (info.dtype, info.dims.as_slice()) {
        (TensorType::Q8_0, &[n_in, n_out]) => Ok(Table::Q8_0(Arc::new(Q8_0Matrix::from_bytes(
            arena,
            file.tensor_data(info),
            n_out,
            n_in,
        )?))),
        (TensorType::Q6K, &[n_in, n_out]) if n_in.is_multiple_of(QK_K) => Ok(Table::Q6K(Arc::new(
            Q6KMatrix::from_bytes(arena, file.tensor_data(info), n_out, n_in)?,
        ))),
        (TensorType::F16, &[n_in, n_out]) => Ok(Table::F16(Arc::new(F16Matrix::from_bytes(
            arena,
            file.tensor_data(info),
            n_out,
            n_in,
        )?))),
        (TensorType::BF16, &[n_in, n_out]) => Ok(Table::Bf16(Arc::new(Bf16Matrix::from_bytes(
            arena,
            file.tensor_data(info),
            n_out,
            n_in,
        )?))),
        (TensorType::IQ4_NL, &[n_in, n_out]) => Ok(Table::Iq4Nl(Arc::new(
            Iq4NlMatrix::from_bytes(arena, file.tensor_data(info), n_out, n_in)?,
        ))),
        (TensorType::IQ4_XS, &[n_in, n_out]) => Ok(Table::Iq4Xs(Arc::new(
            Iq4XsMatrix::from_bytes(arena, file.tensor_data(info), n_out, n_in)?,
        ))),
        _ => Ok(Table::Candle(Arc::new(file.qtensor(name)?))),
    }
}

/// A norm weight vector of length `n`, in f32 whatever its stored type.
fn norm(file: &GgufFile, name: &str, n: usize) -> Result<Vec<f32>> {
    let values = file
        .qtensor(name)?
        .dequantize(&Device::Cpu)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| Error::model_load(format!("cannot read {name}: {e}")))?;
    if values.len() != n {
        return Err(Error::model_load(format!(
            "{name} has {} values, expected {n}",
            values.len()
        )));
    }
    Ok(values)
}
