//! What a step reports. Events are plain data so that the glue can convert them without
//! reaching back into the engine.

use super::channels::Channel;
use super::SeqId;
use crate::error::ErrorCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token, a stop token id or a stop string.
    Stop,
    /// `max_tokens` reached, or the model's context is full.
    Length,
    Cancelled,
    /// The sequence failed; the event carries the error.
    Error,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
            FinishReason::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    /// The most likely alternatives at this position, best first (empty unless asked for).
    pub top: Vec<(u32, f32)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Prompt tokens whose KV was resident from an earlier turn (not prefilled again).
    pub cached_tokens: u32,
    /// Completion tokens spent reasoning (inside a think block, tags included).
    pub reasoning_tokens: u32,
}

/// Wall-clock phases of one sequence, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// From admission to the first prefill chunk being scheduled.
    pub queued: f64,
    /// From admission to the first sampled token (queueing plus prefill).
    pub time_to_first_token: f64,
    /// From the first prefill chunk to the first sampled token.
    pub prefill: f64,
    /// From the first sampled token to the finish.
    pub decode: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// One sampled token. `text` is valid UTF-8 and may be empty (bytes held back for an
    /// incomplete character, or text held back while it could be the start of a stop string).
    Token {
        token_id: u32,
        text: String,
        channel: Channel,
        logprob: Option<TokenLogprob>,
    },
    /// More text with no new token: the rest of a token whose text crossed a think tag, or
    /// trailing text released at the end (held-back bytes, a partial stop string or tag).
    Text { text: String, channel: Channel },
    Finished {
        reason: FinishReason,
        /// Which stop string or token ended it, when one did.
        stop: Option<String>,
        usage: Usage,
        timings: Timings,
    },
    Failed {
        code: ErrorCode,
        message: String,
        usage: Usage,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: SeqId,
    pub kind: EventKind,
}

impl Event {
    /// Whether this is its sequence's last event (finished or failed).
    pub fn is_final(&self) -> bool {
        matches!(
            self.kind,
            EventKind::Finished { .. } | EventKind::Failed { .. }
        )
    }
}
