//! Loading the llama-family tensors from a GGUF file into matmul-ready form.

use candle_core::Device;

use super::embedding::Embedding;
use super::linear::Linear;
use super::matrix::Matrix;
use super::weight_arena::WeightArena;
use crate::config::ModelConfig;
use crate::gguf::GgufFile;
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
            Linear::tied(embedding.table())
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

/// The token table in our panels, so the tied output projection multiplies the same copy the
/// embedding rows are read from.
fn embedding_table(arena: &mut WeightArena, file: &GgufFile) -> Result<Matrix> {
    let name = "token_embd.weight";
    let info = file
        .tensor_info(name)
        .ok_or_else(|| Error::model_load(format!("missing tensor {name}")))?;
    match info.dims.as_slice() {
        &[n_in, n_out] => Matrix::load(arena, info.dtype, file.tensor_data(info), n_out, n_in),
        dims => Err(Error::model_load(format!(
            "{name} has dims {dims:?}, expected a matrix"
        ))),
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
