//! smolrt-core: run small quantized llama-family models from GGUF files on the CPU.
//!
//! Pure Rust, no Python: the pyo3 glue lives in `smolrt-py`.

pub mod arch;
pub mod config;
pub mod engine;
pub mod error;
pub mod gguf;
pub mod kv;
pub mod sampling;
pub mod tokenizer;

pub use error::{Error, ErrorCode, Result};
