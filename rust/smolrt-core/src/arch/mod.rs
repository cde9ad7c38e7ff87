//! The forward pass of llama-family models over a paged KV cache.
//!
//! Matmuls run on the whole batch at once, through our integer kernels for Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0 and the K-quants Q2_K to Q6_K (16-row panels, AVX-512 VNNI or AVX2 chosen at run
//! time) and candle's for the float types. Attention and SwiGLU run on 16-lane vectors (AVX-512
//! or AVX2, also chosen at run time); norms and rope are plain Rust over f32 slices. The row
//! work around a projection (norm, SwiGLU, rope, residual add) runs inside that matmul's pass
//! over the pool (`matmul_io`). Every instruction set gives the same bits.

mod act_blocks;
mod attention;
mod attention_chunks;
mod attention_hints;
mod embedding;
mod floats;
mod floats_simd;
pub(crate) mod huge_pages;
mod iq4_xs;
mod isa;
mod lanes;
mod lanes512;
mod linear;
mod llama;
mod logits;
mod matmul_io;
mod matrix;
mod nibbles;
mod nibbles_simd;
mod ops;
mod panels;
mod pool;
mod q2_k;
mod q2_k_simd;
mod q3_k;
mod q3_k_simd;
mod q4_0;
mod q4_1;
mod q4_1_simd;
mod q4_k;
mod q4_k_simd;
mod q5;
mod q5_k;
mod q6_k;
mod q6_k_simd;
mod q8_0;
mod q8_0_simd;
mod simd;
mod weight_arena;
mod weights;

#[cfg(test)]
mod kernel_tests;

pub use llama::{BatchItem, Model};
pub use logits::Logits;
pub(crate) use pool::for_each_mut;
pub use simd::kernel_features;
pub(crate) use simd::prefetch;
