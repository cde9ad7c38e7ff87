//! Per-sequence sampling and stopping.
//!
//! - [`SamplingParams`] / [`StopParams`]: what a request asks for, validated at admission.
//! - [`Sampler`]: one per sequence, owns its RNG; the pipeline order is documented in
//!   `sampler.rs`.
//! - [`StopStringMatcher`]: stop strings on the detokenized stream, across token boundaries.
//!
//! Depends on nothing in the crate but [`crate::error`].

mod dense;
mod logprobs;
mod params;
mod penalties;
mod sampler;
mod stop;
mod truncation;
mod weights;

pub use params::{
    SamplingParams, StopParams, MAX_STOP_STRINGS, MAX_STOP_STRING_BYTES, MAX_TOP_LOGPROBS,
};
pub use sampler::{Sampled, Sampler};
pub use stop::{StopOutcome, StopStringMatcher};
