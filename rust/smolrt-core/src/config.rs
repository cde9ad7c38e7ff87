//! Model hyper-parameters read from GGUF metadata, checked against each other and against the
//! tensors actually present, so the forward pass can index weights without further checks.

use crate::gguf::{GgufFile, TensorInfo, TensorType};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    SmolLm3,
}

impl Architecture {
    pub fn as_str(&self) -> &'static str {
        match self {
            Architecture::Llama => "llama",
            Architecture::SmolLm3 => "smollm3",
        }
    }

    fn from_name(name: &str) -> Result<Self> {
        match name {
            "llama" => Ok(Architecture::Llama),
            "smollm3" => Ok(Architecture::SmolLm3),
            other => Err(Error::model_load(format!(
                "unsupported architecture '{other}' (supported: llama, smollm3)"
            ))),
        }
    }

    /// Layers that apply RoPE. SmolLM3 leaves every 4th layer position-free ("NoPE"); llama.cpp
    /// hard-codes that step for smollm3 and no converter writes a GGUF key for it, so neither do
    /// we read one.
    fn use_rope(&self, n_layer: usize) -> Vec<bool> {
        const SMOLLM3_NO_ROPE_STEP: usize = 4;
        match self {
            Architecture::Llama => vec![true; n_layer],
            Architecture::SmolLm3 => (0..n_layer)
                .map(|il| (il + 1) % SMOLLM3_NO_ROPE_STEP != 0)
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub architecture: Architecture,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub context_length: usize,
    pub vocab_size: usize,
    pub rope_freq_base: f32,
    pub rope_dim: usize,
    pub rms_eps: f32,
    /// per layer: true when the layer applies RoPE (all true for llama; SmolLM3 skips layers
    /// where (il+1) % 4 == 0, as llama.cpp does).
    pub use_rope: Vec<bool>,
    /// true when there is no `output.weight` and the output projection reuses `token_embd.weight`
    pub tied_embeddings: bool,
}

/// Upper bounds far above any small model, there only to stop a hostile file from asking for
/// absurd buffers (KV cache, RoPE tables) later on.
const MAX_LAYERS: usize = 512;
const MAX_CONTEXT: usize = 1 << 24;
const MAX_WIDTH: usize = 1 << 20;
const MAX_HEADS: usize = 1 << 12;
const MAX_VOCAB: usize = 1 << 24;

impl ModelConfig {
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let architecture = Architecture::from_name(file.get_str("general.architecture")?)?;
        let arch = architecture.as_str();
        let key = |k: &str| format!("{arch}.{k}");
        let size = |k: &str| -> Result<usize> { Ok(file.get_u32(&key(k))? as usize) };
        let opt_size = |k: &str| -> Result<Option<usize>> {
            Ok(file.get_opt_u32(&key(k))?.map(|v| v as usize))
        };

        let n_layer = size("block_count")?;
        let n_embd = size("embedding_length")?;
        let n_head = size("attention.head_count")?;
        let n_head_kv = opt_size("attention.head_count_kv")?.unwrap_or(n_head);
        let n_ff = size("feed_forward_length")?;
        let context_length = size("context_length")?;
        let rms_eps = file.get_f32(&key("attention.layer_norm_rms_epsilon"))?;
        let rope_freq_base = file
            .get_opt_f32(&key("rope.freq_base"))?
            .unwrap_or(10_000.0);

        check_range("block_count", n_layer, MAX_LAYERS)?;
        check_range("embedding_length", n_embd, MAX_WIDTH)?;
        check_range("attention.head_count", n_head, MAX_HEADS)?;
        check_range("attention.head_count_kv", n_head_kv, MAX_HEADS)?;
        check_range("feed_forward_length", n_ff, MAX_WIDTH)?;
        check_range("context_length", context_length, MAX_CONTEXT)?;

        let head_dim = match opt_size("attention.key_length")? {
            Some(d) => d,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => {
                return Err(Error::model_load(format!(
                    "embedding_length {n_embd} is not divisible by head_count {n_head}"
                )))
            }
        };
        if let Some(v) = opt_size("attention.value_length")? {
            if v != head_dim {
                return Err(Error::model_load(format!(
                    "attention.value_length {v} differs from key_length {head_dim}, which is not supported"
                )));
            }
        }
        check_range("attention.key_length", head_dim, MAX_WIDTH)?;
        let rope_dim = opt_size("rope.dimension_count")?.unwrap_or(head_dim);

        if n_head % n_head_kv != 0 {
            return Err(Error::model_load(format!(
                "head_count {n_head} is not a multiple of head_count_kv {n_head_kv}"
            )));
        }
        if head_dim % 2 != 0 {
            return Err(Error::model_load(format!(
                "head dimension {head_dim} is odd; RoPE rotates pairs"
            )));
        }
        if rope_dim == 0 || rope_dim % 2 != 0 || rope_dim > head_dim {
            return Err(Error::model_load(format!(
                "rope.dimension_count {rope_dim} must be even, nonzero and at most the head \
                 dimension {head_dim}"
            )));
        }
        if !(rms_eps.is_finite() && rms_eps > 0.0 && rms_eps < 1.0) {
            return Err(Error::model_load(format!(
                "attention.layer_norm_rms_epsilon {rms_eps} is not in (0, 1)"
            )));
        }
        if !(rope_freq_base.is_finite() && rope_freq_base > 0.0) {
            return Err(Error::model_load(format!(
                "rope.freq_base {rope_freq_base} is not a positive number"
            )));
        }

        let vocab_size = vocab_size(file, &key("vocab_size"))?;
        check_range("vocab_size", vocab_size, MAX_VOCAB)?;

        let config = ModelConfig {
            architecture,
            n_layer,
            n_embd,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            context_length,
            vocab_size,
            rope_freq_base,
            rope_dim,
            rms_eps,
            use_rope: architecture.use_rope(n_layer),
            tied_embeddings: file.tensor_info("output.weight").is_none(),
        };
        config.check_tensors(file)?;
        Ok(config)
    }

    /// Every tensor the forward pass reads, with its ggml dims ([row length, rows]).
    fn check_tensors(&self, file: &GgufFile) -> Result<()> {
        let (e, v, ff) = (self.n_embd, self.vocab_size, self.n_ff);
        // Products are bounded by the MAX_* checks, so they cannot overflow.
        let q = self.n_head * self.head_dim;
        let kv = self.n_head_kv * self.head_dim;
        expect_matrix(file, "token_embd.weight", &[e, v])?;
        expect_norm(file, "output_norm.weight", e)?;
        if !self.tied_embeddings {
            expect_matrix(file, "output.weight", &[e, v])?;
        }
        for il in 0..self.n_layer {
            let name = |t: &str| format!("blk.{il}.{t}.weight");
            expect_norm(file, &name("attn_norm"), e)?;
            expect_matrix(file, &name("attn_q"), &[e, q])?;
            expect_matrix(file, &name("attn_k"), &[e, kv])?;
            expect_matrix(file, &name("attn_v"), &[e, kv])?;
            expect_matrix(file, &name("attn_output"), &[q, e])?;
            expect_norm(file, &name("ffn_norm"), e)?;
            expect_matrix(file, &name("ffn_gate"), &[e, ff])?;
            expect_matrix(file, &name("ffn_up"), &[e, ff])?;
            expect_matrix(file, &name("ffn_down"), &[ff, e])?;
        }
        Ok(())
    }
}

fn check_range(what: &str, value: usize, max: usize) -> Result<()> {
    if value == 0 || value > max {
        return Err(Error::model_load(format!(
            "{what} is {value}, expected 1..={max}"
        )));
    }
    Ok(())
}

/// The vocabulary size: explicit key first, then the token list, then the embedding rows.
fn vocab_size(file: &GgufFile, key: &str) -> Result<usize> {
    if let Some(n) = file.get_opt_u32(key)? {
        return Ok(n as usize);
    }
    if let Some(crate::gguf::MetadataValue::Array(tokens)) = file.get("tokenizer.ggml.tokens") {
        return Ok(tokens.len());
    }
    match file.tensor_info("token_embd.weight") {
        Some(t) if t.dims.len() == 2 => Ok(t.dims[1]),
        _ => Err(Error::model_load(
            "cannot determine the vocabulary size: no vocab_size key, no tokenizer.ggml.tokens \
             and no 2-D token_embd.weight",
        )),
    }
}

fn require<'a>(file: &'a GgufFile, name: &str) -> Result<&'a TensorInfo> {
    file.tensor_info(name)
        .ok_or_else(|| Error::model_load(format!("tensor '{name}' is missing")))
}

fn expect_shape(t: &TensorInfo, dims: &[usize]) -> Result<()> {
    if t.dims != dims {
        return Err(Error::model_load(format!(
            "tensor '{}' has shape {:?}, expected {:?}",
            t.name, t.dims, dims
        )));
    }
    Ok(())
}

fn expect_matrix(file: &GgufFile, name: &str, dims: &[usize]) -> Result<()> {
    let t = require(file, name)?;
    expect_shape(t, dims)?;
    // Already enforced when parsing every tensor; restated because the matmul kernels rely on it.
    let block = t.dtype.block_size();
    if t.dims[0] % block != 0 {
        return Err(Error::model_load(format!(
            "tensor '{name}' has row length {}, not a multiple of the {:?} block size {block}",
            t.dims[0], t.dtype
        )));
    }
    Ok(())
}

/// Norm weights are added element-wise in f32; quantized norms are not something converters emit.
fn expect_norm(file: &GgufFile, name: &str, n: usize) -> Result<()> {
    let t = require(file, name)?;
    expect_shape(t, &[n])?;
    if t.dtype != TensorType::F32 {
        return Err(Error::model_load(format!(
            "tensor '{name}' has type {:?}, expected F32",
            t.dtype
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_names() {
        assert_eq!(
            Architecture::from_name("llama").unwrap(),
            Architecture::Llama
        );
        assert_eq!(
            Architecture::from_name("smollm3").unwrap().as_str(),
            "smollm3"
        );
        assert_eq!(
            Architecture::from_name("gpt2").unwrap_err().message,
            "unsupported architecture 'gpt2' (supported: llama, smollm3)"
        );
    }

    #[test]
    fn smollm3_skips_rope_every_fourth_layer() {
        assert_eq!(Architecture::Llama.use_rope(3), vec![true; 3]);
        assert_eq!(
            Architecture::SmolLm3.use_rope(8),
            vec![true, true, true, false, true, true, true, false]
        );
    }

    #[test]
    fn range_check() {
        assert!(check_range("x", 0, 4).is_err());
        assert!(check_range("x", 5, 4)
            .unwrap_err()
            .message
            .contains("x is 5"));
        assert!(check_range("x", 4, 4).is_ok());
    }
}
