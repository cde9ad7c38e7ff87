//! The forward pass of llama-family models over a paged KV cache.
//!
//! Matmuls go through candle's quantized kernels on the whole batch at once; everything between
//! them (norms, rope, attention, SwiGLU) is plain Rust over f32 slices.

mod attention;
mod embedding;
mod linear;
mod llama;
mod ops;
mod q4_1;
mod weights;

pub use llama::{BatchItem, Model};
