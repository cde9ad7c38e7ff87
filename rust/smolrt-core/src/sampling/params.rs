//! Per-request sampling and stopping parameters, and their validation.
//!
//! Validation happens once, at request admission, so the sampler itself can stay branch-light;
//! every message names the field and the allowed range so API users can fix their request.

use crate::error::{Error, Result};

/// Most alternatives a request may ask for per position (OpenAI's limit too).
pub const MAX_TOP_LOGPROBS: u32 = 20;
/// Most stop strings per request: each one is scanned on every emitted chunk.
pub const MAX_STOP_STRINGS: usize = 16;
/// Longest stop string in bytes: bounds how much text the matcher may hold back.
pub const MAX_STOP_STRING_BYTES: usize = 256;

/// How to pick the next token from one position's logits.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (argmax, ties to the lowest id).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; 0 = off. Values above the vocab size clamp.
    pub top_k: u32,
    /// Nucleus sampling: keep the smallest set reaching this mass; 1.0 = off; valid (0, 1].
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one; 0 = off; valid [0, 1].
    pub min_p: f32,
    /// CTRL / llama.cpp style (`logit > 0 ? logit / p : logit * p`); 1.0 = off; valid (0, 10].
    pub repetition_penalty: f32,
    /// Subtracted once from every token present in the window; 0 = off; valid [-2, 2].
    pub presence_penalty: f32,
    /// Subtracted once per occurrence in the window; 0 = off; valid [-2, 2].
    pub frequency_penalty: f32,
    /// How many of the most recent tokens (prompt + generated) the penalties look at; 0 = all.
    pub penalty_last_n: u32,
    /// Additive biases by token id; `f32::NEG_INFINITY` bans a token.
    pub logit_bias: Vec<(u32, f32)>,
    /// `None` draws a random seed once, when the sampler is built.
    pub seed: Option<u64>,
    /// How many most likely alternatives to report per position; 0 = none; at most 20.
    pub top_logprobs: u32,
    /// Report the chosen token's logprob.
    pub logprobs: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            logit_bias: Vec::new(),
            seed: None,
            top_logprobs: 0,
            logprobs: false,
        }
    }
}

impl SamplingParams {
    /// Rejects anything the sampler cannot honour for a model with `vocab_size` tokens.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        // `!(x >= lo)` style comparisons below are deliberate: they are also true for NaN.
        let t = self.temperature;
        if !(t.is_finite() && t >= 0.0) {
            return Err(range_error("temperature", "[0, inf)", t));
        }
        let p = self.top_p;
        if !(p > 0.0 && p <= 1.0) {
            return Err(range_error("top_p", "(0, 1]", p));
        }
        let m = self.min_p;
        if !(0.0..=1.0).contains(&m) {
            return Err(range_error("min_p", "[0, 1]", m));
        }
        let r = self.repetition_penalty;
        if !(r > 0.0 && r <= 10.0) {
            return Err(range_error("repetition_penalty", "(0, 10]", r));
        }
        for (name, v) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !(-2.0..=2.0).contains(&v) {
                return Err(range_error(name, "[-2, 2]", v));
            }
        }
        for &(id, bias) in &self.logit_bias {
            if id as usize >= vocab_size {
                return Err(Error::invalid_request(format!(
                    "logit_bias token id must be in [0, {vocab_size}), got {id}"
                )));
            }
            if !(bias.is_finite() || bias == f32::NEG_INFINITY) {
                return Err(Error::invalid_request(format!(
                    "logit_bias for token {id} must be a finite number or -inf, got {bias}"
                )));
            }
        }
        if self.top_logprobs > MAX_TOP_LOGPROBS {
            return Err(Error::invalid_request(format!(
                "top_logprobs must be in [0, {MAX_TOP_LOGPROBS}], got {}",
                self.top_logprobs
            )));
        }
        Ok(())
    }
}

/// When to end a sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct StopParams {
    /// Most tokens to generate; must be > 0. The default is "unbounded": the engine clamps it to
    /// the context that remains.
    pub max_tokens: u32,
    /// Extra end tokens, in addition to the model's end-of-generation ids.
    pub stop_token_ids: Vec<u32>,
    /// Text that ends generation; never emitted itself. Non-empty, at most 16, each ≤ 256 bytes.
    pub stop_strings: Vec<String>,
    /// Keep going past the model's end-of-generation ids (`stop_token_ids` still apply).
    pub ignore_eos: bool,
}

impl Default for StopParams {
    fn default() -> Self {
        Self {
            max_tokens: u32::MAX,
            stop_token_ids: Vec::new(),
            stop_strings: Vec::new(),
            ignore_eos: false,
        }
    }
}

impl StopParams {
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        if self.max_tokens == 0 {
            return Err(Error::invalid_request(
                "max_tokens must be in [1, inf), got 0",
            ));
        }
        for &id in &self.stop_token_ids {
            if id as usize >= vocab_size {
                return Err(Error::invalid_request(format!(
                    "stop_token_ids entries must be in [0, {vocab_size}), got {id}"
                )));
            }
        }
        let n = self.stop_strings.len();
        if n > MAX_STOP_STRINGS {
            return Err(Error::invalid_request(format!(
                "stop_strings must have at most {MAX_STOP_STRINGS} entries, got {n}"
            )));
        }
        for (i, s) in self.stop_strings.iter().enumerate() {
            // An empty stop string would match before any text and end every request at once.
            if s.is_empty() || s.len() > MAX_STOP_STRING_BYTES {
                return Err(Error::invalid_request(format!(
                    "stop_strings[{i}] must be 1 to {MAX_STOP_STRING_BYTES} bytes long, got {}",
                    s.len()
                )));
            }
        }
        Ok(())
    }
}

fn range_error(field: &str, range: &str, got: f32) -> Error {
    Error::invalid_request(format!("{field} must be in {range}, got {got}"))
}
