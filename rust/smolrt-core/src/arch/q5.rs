//! Q5_0 and Q5_1 weights: 5-bit quants, `value = d · (q − 16)` or `value = d · q + m`. Where a
//! matrix's rows are not a multiple of 256, llama.cpp's K-quant mixes (Q4_K_M, Q5_K_M) fall
//! back to these, so a "Q4_K_M" SmolLM2 is mostly Q5_0. candle multiplies them in scalar code
//! (0.69x llama.cpp's decode, 0.19x its prefill on the default model's architecture); these are
//! our panel kernels (see `nibbles`), with activations in Q8_0 / Q8_1 blocks as ggml pairs them.

use half::f16;

use super::act_blocks::{ActBlock, QK};
use super::nibbles::{self, NibblePanel};
use super::panels::{PanelBlock, PanelMatrix, PANEL};

pub(crate) type Q5_0Matrix = PanelMatrix<Q5_0Panel>;
pub(crate) type Q5_1Matrix = PanelMatrix<Q5_1Panel>;

/// GGUF's Q5_0 block: f16 scale, the 32 fifth bits (u32, bit j for quant j), then the low
/// nibbles as Q4_0 packs them.
pub(crate) const Q5_0_BYTES: usize = 22;
/// GGUF's Q5_1 block: f16 scale, f16 min, fifth bits, low nibbles.
pub(crate) const Q5_1_BYTES: usize = 24;

/// Block `j` of 16 Q5_0 rows (see `nibbles`). 352 bytes, as the 16 GGUF blocks; aligned to 32
/// only, so panels follow each other without padding.
#[repr(C, align(32))]
#[derive(Clone, Copy)]
pub(crate) struct Q5_0Panel {
    qs: [u8; 4 * 64],
    qh: [u64; 8],
    d: [f16; PANEL],
}

/// Block `j` of 16 Q5_1 rows (see `nibbles`), 384 bytes.
#[repr(C, align(32))]
#[derive(Clone, Copy)]
pub(crate) struct Q5_1Panel {
    qs: [u8; 4 * 64],
    qh: [u64; 8],
    d: [f16; PANEL],
    m: [f16; PANEL],
}

fn f16_at(b: &[u8], at: usize) -> f16 {
    f16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl NibblePanel for Q5_0Panel {
    const OFFSET: i32 = 16;
    fn qs(&self) -> &[u8; 4 * 64] {
        &self.qs
    }
    fn qh(&self) -> Option<&[u64; 8]> {
        Some(&self.qh)
    }
    fn d(&self) -> &[f16; PANEL] {
        &self.d
    }
    fn m(&self) -> Option<&[f16; PANEL]> {
        None
    }
}

impl NibblePanel for Q5_1Panel {
    const OFFSET: i32 = 0;
    fn qs(&self) -> &[u8; 4 * 64] {
        &self.qs
    }
    fn qh(&self) -> Option<&[u64; 8]> {
        Some(&self.qh)
    }
    fn d(&self) -> &[f16; PANEL] {
        &self.d
    }
    fn m(&self) -> Option<&[f16; PANEL]> {
        Some(&self.m)
    }
}

impl PanelBlock for Q5_0Panel {
    const NAME: &'static str = "Q5_0";
    type Act = ActBlock;
    const BYTES: usize = Q5_0_BYTES;

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Q5_0Panel {
            qs: [0; 256],
            qh: [0; 8],
            d: rows.map(|b| f16_at(b, 0)),
        };
        nibbles::pack_fifth_bits(&mut p.qh, rows.map(|b| u32_at(b, 2)));
        nibbles::pack_nibbles(&mut p.qs, rows.map(|b| &b[6..]));
        p
    }

    nibbles::panel_kernels!();
}

impl PanelBlock for Q5_1Panel {
    const NAME: &'static str = "Q5_1";
    type Act = ActBlock;
    const BYTES: usize = Q5_1_BYTES;

    fn pack(rows: [&[u8]; PANEL]) -> Self {
        let mut p = Q5_1Panel {
            qs: [0; 256],
            qh: [0; 8],
            d: rows.map(|b| f16_at(b, 0)),
            m: rows.map(|b| f16_at(b, 2)),
        };
        nibbles::pack_fifth_bits(&mut p.qh, rows.map(|b| u32_at(b, 4)));
        nibbles::pack_nibbles(&mut p.qs, rows.map(|b| &b[8..]));
        p
    }

    nibbles::panel_kernels!();
}
