use crate::error::{Error, Result};
use crate::kv::KvType;
use crate::sampling::{SamplingParams, StopParams};

/// Engine-wide knobs, fixed at load time.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Bytes of KV cache shared by all sequences.
    pub kv_budget_bytes: usize,
    /// Tokens per KV block.
    pub kv_block_size: usize,
    /// Number format of cached keys and values.
    pub kv_type: KvType,
    /// Most tokens one step feeds the model (decode tokens plus prefill chunks). Bounds the
    /// latency a long prompt adds to running streams.
    pub max_batch_tokens: usize,
    /// Most sequences admitted at once.
    pub max_sequences: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            kv_budget_bytes: 256 << 20,
            kv_block_size: 16,
            kv_type: KvType::default(),
            max_batch_tokens: 512,
            max_sequences: 256,
        }
    }
}

impl EngineOptions {
    pub fn validate(&self) -> Result<()> {
        if !(1..=1024).contains(&self.kv_block_size) {
            return Err(Error::invalid_request(format!(
                "kv_block_size must be in 1..=1024, got {}",
                self.kv_block_size
            )));
        }
        if self.max_batch_tokens == 0 {
            return Err(Error::invalid_request(
                "max_batch_tokens must be at least 1",
            ));
        }
        if self.max_sequences == 0 {
            return Err(Error::invalid_request("max_sequences must be at least 1"));
        }
        Ok(())
    }
}

/// One generation: prompt token ids plus how to sample and when to stop.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    pub prompt: Vec<u32>,
    pub sampling: SamplingParams,
    pub stop: StopParams,
    /// Continue this session's resident KV (prefill only what it does not hold) and keep the
    /// KV resident afterwards.
    pub session: Option<super::SessionKey>,
}
