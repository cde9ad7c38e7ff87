//! The llama-family decoder (SmolLM2, SmolLM3): pre-norm attention and SwiGLU blocks, run over a
//! batch of sequence chunks at once.

use super::attention::{attend, Heads, Queries, RowCtx};
use super::logits::Logits;
use super::matmul_io::{Input, Output};
use super::ops::rope_angles;
use super::weights::Weights;
use crate::config::ModelConfig;
use crate::gguf::GgufFile;
use crate::kv::{KvBlockPool, SeqKv};
use crate::{Error, Result};

/// A loaded model: weights plus the configuration they were checked against. Immutable after
/// load, so one `Model` serves any number of threads.
pub struct Model {
    cfg: ModelConfig,
    weights: Weights,
    /// base^(-2/rope_dim): the ratio between consecutive rope frequencies.
    rope_theta_scale: f32,
}

/// One sequence's share of a forward pass: its next tokens and its KV cache.
pub struct BatchItem<'a> {
    pub tokens: &'a [u32],
    pub kv: &'a mut SeqKv,
    /// Return logits for every token of this chunk, not just the last.
    pub all_logits: bool,
}

impl Model {
    pub fn load(file: &GgufFile, cfg: &ModelConfig) -> Result<Self> {
        check_config(cfg)?;
        let weights = Weights::load(file, cfg)?;
        Ok(Self {
            cfg: cfg.clone(),
            weights,
            rope_theta_scale: cfg.rope_freq_base.powf(-2.0 / cfg.rope_dim as f32),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// One forward over all items: their tokens are concatenated into one `[T, n_embd]`
    /// activation so every matmul runs once for the whole batch; attention runs per sequence
    /// (each against its own KV blocks, causal within its chunk). Positions of item `i` start at
    /// `items[i].kv.len()`; the caller must have reserved KV room (else `Internal`). On success
    /// each item's `kv.len()` has advanced by its token count; on error no length changes.
    ///
    /// Returns each item's logits rows: `[vocab]` (last token) or `[n_tokens][vocab]`
    /// (`all_logits`).
    pub fn forward(&self, pool: &mut KvBlockPool, items: &mut [BatchItem<'_>]) -> Result<Logits> {
        let mut logits = Logits::default();
        self.forward_into(pool, items, &mut logits)?;
        Ok(logits)
    }

    /// [`forward`](Self::forward) into `logits`, reusing its buffer: a stepping loop that keeps
    /// one `Logits` allocates and zeroes its megabytes once. On error `logits` holds no items.
    pub fn forward_into(
        &self,
        pool: &mut KvBlockPool,
        items: &mut [BatchItem<'_>],
        logits: &mut Logits,
    ) -> Result<()> {
        logits.buffer_for(self.weights.output.n_out(), &[]);
        if items.is_empty() {
            return Ok(());
        }
        self.check_batch(pool, items)?;
        {
            let rows: Vec<RowCtx<'_>> = items
                .iter()
                .flat_map(|item| {
                    let (blocks, start) = (item.kv.blocks(), item.kv.len());
                    (0..item.tokens.len()).map(move |j| RowCtx {
                        blocks,
                        pos: start + j,
                    })
                })
                .collect();
            let tokens: Vec<u32> = items
                .iter()
                .flat_map(|it| it.tokens.iter().copied())
                .collect();
            let x = self.run_layers(pool, &rows, &tokens)?;
            self.logits(items, x, logits)?;
        }
        for item in items.iter_mut() {
            item.kv.advance(item.tokens.len());
        }
        Ok(())
    }

    /// Embeds `tokens` and runs every decoder layer; returns the final residual stream
    /// `[T][n_embd]`. Writes each row's keys and values into the pool along the way.
    fn run_layers(
        &self,
        pool: &mut KvBlockPool,
        rows: &[RowCtx<'_>],
        tokens: &[u32],
    ) -> Result<Vec<f32>> {
        let cfg = &self.cfg;
        let t = rows.len();
        let (n_embd, hd) = (cfg.n_embd, cfg.head_dim);
        let q_dim = cfg.n_head * hd;
        let kv_dim = cfg.n_head_kv * hd;
        let qkv_dim = q_dim + 2 * kv_dim;
        let heads = Heads {
            n_head: cfg.n_head,
            n_head_kv: cfg.n_head_kv,
            head_dim: hd,
        };
        let bs = pool.block_size();

        // Rope angles depend only on position: computed once per forward, shared by all layers.
        let n_rot = cfg.rope_dim / 2;
        let mut angles = vec![(0f32, 0f32); t * n_rot];
        if n_rot > 0 {
            for (row, a) in rows.iter().zip(angles.chunks_exact_mut(n_rot)) {
                rope_angles(row.pos, self.rope_theta_scale, a);
            }
        }

        // Activation buffers, allocated once per forward and reused by every layer. The norms,
        // rope, SwiGLU and residual adds run inside the matmuls (see `matmul_io`).
        let mut x = vec![0f32; t * n_embd];
        self.weights.embedding.rows_into(tokens, &mut x)?;
        let mut qkv = Vec::new();
        let mut attn = vec![0f32; t * q_dim];
        let mut gate_up = Vec::new();
        let eps = cfg.rms_eps;

        for (il, layer) in self.weights.layers.iter().enumerate() {
            // The KV lines this layer's rows will be written to arrive during the qkv matmul.
            for row in rows {
                pool.prefetch_slot(il, row.blocks[row.pos / bs], row.pos % bs);
            }
            let normed = Input::Normed {
                x: &x,
                weight: &layer.attn_norm,
                eps,
            };
            let rope = if cfg.use_rope[il] && n_rot > 0 {
                Output::Rope {
                    angles: &angles,
                    n_rot,
                    head_dim: hd,
                    rotated: q_dim + kv_dim,
                }
            } else {
                Output::Store
            };
            layer.qkv.forward(&normed, t, &mut qkv, &rope)?;
            for (r, row) in rows.iter().enumerate() {
                let (k, v) = qkv[r * qkv_dim + q_dim..(r + 1) * qkv_dim].split_at(kv_dim);
                pool.write(il, row.blocks[row.pos / bs], row.pos % bs, k, v);
            }
            let queries = Queries {
                rows,
                heads: &heads,
                qkv: &qkv,
                q_stride: qkv_dim,
            };
            attend(pool, il, &queries, &mut attn);
            let attended = Input::Rows(&attn);
            layer
                .attn_output
                .forward(&attended, t, &mut x, &Output::Accumulate)?;

            let normed = Input::Normed {
                x: &x,
                weight: &layer.ffn_norm,
                eps,
            };
            layer
                .gate_up
                .forward(&normed, t, &mut gate_up, &Output::Store)?;
            let swiglu = Input::SwiGlu { gate_up: &gate_up };
            layer
                .down
                .forward(&swiglu, t, &mut x, &Output::Accumulate)?;
        }
        Ok(x)
    }

    /// Final norm and vocabulary projection, only on the rows whose logits are wanted.
    fn logits(&self, items: &[BatchItem<'_>], x: Vec<f32>, logits: &mut Logits) -> Result<()> {
        let n_embd = self.cfg.n_embd;
        let mut picked = Vec::new();
        let mut row0 = 0;
        for item in items {
            let n = item.tokens.len();
            let first = if item.all_logits { row0 } else { row0 + n - 1 };
            picked.extend_from_slice(&x[first * n_embd..(row0 + n) * n_embd]);
            row0 += n;
        }
        let n_rows = picked.len() / n_embd;
        let normed = Input::Normed {
            x: &picked,
            weight: &self.weights.output_norm,
            eps: self.cfg.rms_eps,
        };
        let rows_per_item: Vec<usize> = items
            .iter()
            .map(|item| {
                if item.all_logits {
                    item.tokens.len()
                } else {
                    1
                }
            })
            .collect();
        let out = logits.buffer_for(self.weights.output.n_out(), &rows_per_item);
        let done = self
            .weights
            .output
            .forward(&normed, n_rows, out, &Output::Store);
        if done.is_err() {
            logits.buffer_for(self.weights.output.n_out(), &[]);
        }
        done
    }

    /// Rejects a batch before any KV write, so a failed forward leaves every cache as it was.
    fn check_batch(&self, pool: &KvBlockPool, items: &[BatchItem<'_>]) -> Result<()> {
        let cfg = &self.cfg;
        if pool.kv_dim() != cfg.n_head_kv * cfg.head_dim {
            return Err(Error::internal("KV pool was built for a different model"));
        }
        for (i, item) in items.iter().enumerate() {
            let n = item.tokens.len();
            if n == 0 {
                return Err(Error::invalid_request(format!(
                    "batch item {i} has no tokens"
                )));
            }
            if let Some(&bad) = item.tokens.iter().find(|&&t| t as usize >= cfg.vocab_size) {
                return Err(Error::invalid_request(format!(
                    "token id {bad} is outside the vocabulary of {}",
                    cfg.vocab_size
                )));
            }
            let end = item.kv.len() + n;
            if end > cfg.context_length {
                return Err(Error::invalid_request(format!(
                    "sequence would reach {end} positions, past the context length {}",
                    cfg.context_length
                )));
            }
            if end > item.kv.blocks().len() * pool.block_size() {
                return Err(Error::internal(format!(
                    "batch item {i} needs KV room for {end} positions, only {} reserved",
                    item.kv.blocks().len() * pool.block_size()
                )));
            }
            if item.kv.blocks().iter().any(|&b| !pool.owns(b)) {
                return Err(Error::internal(format!(
                    "batch item {i} holds KV blocks this pool did not hand out"
                )));
            }
        }
        Ok(())
    }
}

/// Shape facts the forward pass relies on for slicing; a file violating them is rejected here
/// rather than panicking mid-forward.
fn check_config(cfg: &ModelConfig) -> Result<()> {
    let bad = |why: &str| Err(Error::model_load(format!("unsupported model shape: {why}")));
    if cfg.n_layer == 0 || cfg.n_embd == 0 || cfg.n_ff == 0 || cfg.vocab_size == 0 {
        return bad("zero-sized dimension");
    }
    if cfg.n_head == 0 || cfg.n_head_kv == 0 || !cfg.n_head.is_multiple_of(cfg.n_head_kv) {
        return bad("head count is not a multiple of the kv head count");
    }
    if cfg.head_dim == 0 || !cfg.rope_dim.is_multiple_of(2) || cfg.rope_dim > cfg.head_dim {
        return bad("rope dimension must be even and at most the head dimension");
    }
    if cfg.use_rope.len() != cfg.n_layer {
        return bad("per-layer rope flags do not match the layer count");
    }
    if !(cfg.rope_freq_base.is_finite() && cfg.rope_freq_base > 0.0) {
        return bad("rope frequency base must be positive");
    }
    Ok(())
}
