//! Token embeddings looked up straight from the quantized table: only the rows of the tokens in
//! the batch are dequantized, so the table stays at its quantized size in memory (and, when the
//! embeddings are tied, is the very matrix the output projection multiplies with).

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};

use super::halves::{Bf16Matrix, F16Matrix};
use super::iq4::{Iq4NlMatrix, Iq4XsMatrix};
use super::panels::{PanelBlock, PanelMatrix};
use super::q6_k::Q6KMatrix;
use super::q8_0::Q8_0Matrix;
use crate::{Error, Result};

/// The table in whichever form its type is kept: our Q8_0, Q6_K, F16 or BF16 panels, the IQ4
/// types' (which candle cannot read), or a candle tensor (whose `embedding` runs the type's
/// `to_float` on each row's blocks).
pub(crate) enum Table {
    Q8_0(Arc<Q8_0Matrix>),
    Q6K(Arc<Q6KMatrix>),
    F16(Arc<F16Matrix>),
    Bf16(Arc<Bf16Matrix>),
    Iq4Nl(Arc<Iq4NlMatrix>),
    Iq4Xs(Arc<Iq4XsMatrix>),
    Candle(Arc<QTensor>),
}

/// The rows of `tokens` read back from panels.
fn panel_rows<P: PanelBlock>(
    m: &PanelMatrix<P>,
    tokens: &[u32],
    out: &mut [f32],
    n_embd: usize,
) -> Result<()> {
    for (&t, row) in tokens.iter().zip(out.chunks_exact_mut(n_embd)) {
        if !m.dequantize_row(t as usize, row) {
            return Err(Error::internal("embedding row out of range"));
        }
    }
    Ok(())
}

pub(crate) struct Embedding {
    table: Table,
    vocab: usize,
    n_embd: usize,
}

impl Embedding {
    /// `table` has shape `[vocab, n_embd]`.
    pub(crate) fn new(table: Table, vocab: usize, n_embd: usize) -> Result<Self> {
        let dims = match &table {
            Table::Q8_0(m) => vec![m.n_out(), m.n_in()],
            Table::Q6K(m) => vec![m.n_out(), m.n_in()],
            Table::F16(m) => vec![m.n_out(), m.n_in()],
            Table::Bf16(m) => vec![m.n_out(), m.n_in()],
            Table::Iq4Nl(m) => vec![m.n_out(), m.n_in()],
            Table::Iq4Xs(m) => vec![m.n_out(), m.n_in()],
            Table::Candle(t) => t.shape().dims().to_vec(),
        };
        if dims != [vocab, n_embd] {
            return Err(Error::model_load(format!(
                "token_embd.weight has shape {dims:?}, expected [{vocab}, {n_embd}]"
            )));
        }
        Ok(Self {
            table,
            vocab,
            n_embd,
        })
    }

    /// The table itself, shared with the output projection when embeddings are tied.
    pub(crate) fn table(&self) -> &Table {
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
        let table = match &self.table {
            Table::Q8_0(m) => return panel_rows(m, tokens, out, self.n_embd),
            Table::Q6K(m) => return panel_rows(m, tokens, out, self.n_embd),
            Table::F16(m) => return panel_rows(m, tokens, out, self.n_embd),
            Table::Bf16(m) => return panel_rows(m, tokens, out, self.n_embd),
            Table::Iq4Nl(m) => return panel_rows(m, tokens, out, self.n_embd),
            Table::Iq4Xs(m) => return panel_rows(m, tokens, out, self.n_embd),
            Table::Candle(t) => t,
        };
        let ids = Tensor::from_slice(tokens, tokens.len(), &Device::Cpu)?;
        let rows = table.embedding(&ids)?.flatten_all()?;
        let (storage, layout) = rows.storage_and_layout();
        let candle_core::Storage::Cpu(cpu) = &*storage else {
            return Err(Error::internal("embedding rows are not on the CPU"));
        };
        let values = cpu.as_slice::<f32>()?;
        let start = layout.start_offset();
        let src = values
            .get(start..start + out.len())
            .ok_or_else(|| Error::internal("embedding returned too few values"))?;
        out.copy_from_slice(src);
        Ok(())
    }
}
