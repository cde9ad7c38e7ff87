//! Token embeddings looked up straight from the quantized table: only the rows of the tokens in
//! the batch are dequantized, so the table stays at its quantized size in memory (and, when the
//! embeddings are tied, is the very matrix the output projection multiplies with).

use std::sync::Arc;

use super::matrix::Matrix;
use crate::{Error, Result};

pub(crate) struct Embedding {
    table: Arc<Matrix>,
    vocab: usize,
    n_embd: usize,
}

impl Embedding {
    /// `table` has shape `[vocab, n_embd]`.
    pub(crate) fn new(table: Matrix, vocab: usize, n_embd: usize) -> Result<Self> {
        let dims = [table.n_out(), table.n_in()];
        if dims != [vocab, n_embd] {
            return Err(Error::model_load(format!(
                "token_embd.weight has shape {dims:?}, expected [{vocab}, {n_embd}]"
            )));
        }
        Ok(Self {
            table: Arc::new(table),
            vocab,
            n_embd,
        })
    }

    /// The table itself, shared with the output projection when embeddings are tied.
    pub(crate) fn table(&self) -> &Arc<Matrix> {
        &self.table
    }

    /// Writes the f32 rows of `tokens` into `out` (`[tokens.len()][n_embd]`).
    /// Ids are checked by the caller; an out-of-range id is still an error here, never a panic.
    pub(crate) fn rows_into(&self, tokens: &[u32], out: &mut [f32]) -> Result<()> {
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(Error::invalid_request(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.vocab
            )));
        }
        if out.len() != tokens.len() * self.n_embd {
            return Err(Error::internal(
                "embedding output buffer has the wrong size",
            ));
        }
        for (&t, row) in tokens.iter().zip(out.chunks_exact_mut(self.n_embd)) {
            if !self.table.dequantize_row(t as usize, row) {
                return Err(Error::internal("embedding row out of range"));
            }
        }
        Ok(())
    }
}
