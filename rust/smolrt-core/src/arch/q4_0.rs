//! Q4_0 weights: `value = d · (q − 8)`, 4-bit quants and one f16 scale per block of 32, the most
//! common 4-bit type of GGUF files. candle's AVX2 dot product for it ran the default model's
//! architecture at 0.80x llama.cpp's decode and 0.29x its prefill; these are our panel kernels
//! (see `nibbles`), with activations in Q8_0 blocks as ggml pairs them.
//!
//! IQ4_NL is the same block with the quants as indices into ggml's non-linear grid
//! (`value = d · IQ4_GRID[q]`, see `nibbles`), which candle cannot read; llama.cpp writes it for
//! the rows of an IQ4_XS file that are not whole super-blocks (`iq4_xs`).

use half::f16;

use super::act_blocks::{ActBlock, QK};
use super::nibbles::{self, NibblePanel};
use super::panels::{PanelBlock, PanelMatrix, PANEL};

pub(crate) type Q4_0Matrix = PanelMatrix<Q4_0Panel>;
pub(crate) type Iq4NlMatrix = PanelMatrix<Iq4NlPanel>;
pub(crate) type Q4_0Panel = Nibble4Panel<false>;
pub(crate) type Iq4NlPanel = Nibble4Panel<true>;

/// One row's block as GGUF stores it (both types): an f16 scale, then byte j holds q[j] in its
/// low nibble and q[j + 16] in its high nibble.
pub(crate) const BLOCK_BYTES: usize = 18;

/// Block `j` of 16 rows, quants laid out as `nibbles` says, on the IQ4 grid (`GRID`) or offset
/// by 8. 288 bytes, as the 16 GGUF blocks: aligned to 32 only, so panels follow each other
/// without padding (a decode step streams every byte) and the AVX-512 kernel loads them
/// unaligned.
#[repr(C, align(32))]
#[derive(Clone, Copy)]
pub(crate) struct Nibble4Panel<const GRID: bool> {
    qs: [u8; 4 * 64],
    d: [f16; PANEL],
}

impl<const GRID: bool> NibblePanel for Nibble4Panel<GRID> {
    const OFFSET: i32 = if GRID { 0 } else { 8 };
    const GRID: bool = GRID;
    fn qs(&self) -> &[u8; 4 * 64] {
        &self.qs
    }
    fn qh(&self) -> Option<&[u64; 8]> {
        None
    }
    fn d(&self) -> &[f16; PANEL] {
        &self.d
    }
    fn m(&self) -> Option<&[f16; PANEL]> {
        None
    }
}

impl<const GRID: bool> PanelBlock for Nibble4Panel<GRID> {
    const NAME: &'static str = if GRID { "IQ4_NL" } else { "Q4_0" };
    type Act = ActBlock;
    const BYTES: usize = BLOCK_BYTES;

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Nibble4Panel {
            qs: [0; 256],
            d: std::array::from_fn(|c| f16::from_le_bytes([rows[c][0], rows[c][1]])),
        };
        nibbles::pack_nibbles(&mut p.qs, rows.map(|b| &b[2..]));
        p
    }

    nibbles::panel_kernels!();
}
