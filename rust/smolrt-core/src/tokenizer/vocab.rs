//! The vocabulary: token strings, per-token attributes, the bytes each token decodes to, and the
//! special/end-of-generation sets llama.cpp derives from token texts.

use std::collections::HashMap;

use super::byte_level::decode_text;
use super::special::{sort_for_matching, SpecialToken};
use crate::{Error, Result};

/// Token attribute bits (llama.cpp's `llama_token_attr`, the subset that changes behaviour).
pub mod attr {
    pub const UNDEFINED: u16 = 0;
    pub const UNKNOWN: u16 = 1 << 0;
    pub const UNUSED: u16 = 1 << 1;
    pub const NORMAL: u16 = 1 << 2;
    pub const CONTROL: u16 = 1 << 3;
    pub const USER_DEFINED: u16 = 1 << 4;
    pub const BYTE: u16 = 1 << 5;
}

/// `tokenizer.ggml.token_type` values.
fn attr_from_type(t: i32) -> u16 {
    match t {
        1 => attr::NORMAL,
        2 => attr::UNKNOWN,
        3 => attr::CONTROL,
        4 => attr::USER_DEFINED,
        5 => attr::UNUSED,
        6 => attr::BYTE,
        _ => attr::UNDEFINED,
    }
}

/// Texts llama.cpp treats as FIM pad / repo / file-separator tokens; it makes them
/// end-of-generation (and control) when present.
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
/// Other FIM texts: only forced to control type.
const FIM_OTHER_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
/// Texts whose tokens end generation (llama.cpp's list, for the families we can meet).
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<｜end▁of▁sentence｜>",
    "</s>",
    "<eos>",
];

pub struct Vocab {
    texts: Vec<String>,
    attrs: Vec<u16>,
    pub token_to_id: HashMap<String, u32>,
    /// What each token decodes to when specials are rendered.
    pieces: Vec<Box<[u8]>>,
    pub specials: Vec<SpecialToken>,
    pub eog: Vec<u32>,
    pub warnings: Vec<String>,
}

pub struct SpecialIds {
    pub eos: Option<u32>,
    pub eot: Option<u32>,
}

impl Vocab {
    pub fn new(tokens: Vec<String>, token_types: &[i32], ids: SpecialIds) -> Result<Self> {
        let n = tokens.len();
        if n == 0 {
            return Err(Error::model_load("tokenizer vocabulary is empty"));
        }
        if u32::try_from(n).is_err() {
            return Err(Error::model_load("tokenizer vocabulary is too large"));
        }
        if !token_types.is_empty() && token_types.len() < n {
            return Err(Error::model_load(format!(
                "tokenizer has {} token types for {n} tokens",
                token_types.len()
            )));
        }
        let mut warnings = Vec::new();
        let mut texts = Vec::with_capacity(n);
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, mut text) in tokens.into_iter().enumerate() {
            if text.is_empty() {
                // Same placeholder as llama.cpp, so the entry is addressable but never matched.
                warnings.push(format!("empty token at index {i}"));
                text = format!("[EMPTY_{i}]");
            }
            if let Some(prev) = token_to_id.insert(text.clone(), i as u32) {
                return Err(Error::model_load(format!(
                    "duplicate token in vocabulary: {text:?} has ids {prev} and {i}"
                )));
            }
            texts.push(text);
        }
        let mut attrs: Vec<u16> = if token_types.is_empty() {
            vec![attr::NORMAL; n]
        } else {
            token_types[..n]
                .iter()
                .map(|&t| attr_from_type(t))
                .collect()
        };

        // Tokens llama.cpp recognises by text get control type even if the file says otherwise;
        // without this, e.g. "<|im_end|>" in a file lacking token types would print as text and
        // would not be parsed as a special token.
        let find_first = |list: &[&str]| (0..n).find(|&i| list.contains(&texts[i].as_str()));
        let force_control = |i: usize, attrs: &mut Vec<u16>, warnings: &mut Vec<String>| {
            if attrs[i] & attr::CONTROL == 0 {
                warnings.push(format!(
                    "token {i} {:?} looks like a control token but is not typed as one; treating it as control",
                    texts[i]
                ));
                attrs[i] |= attr::CONTROL;
            }
        };

        let mut eog = Vec::new();
        for list in [FIM_PAD_TEXTS, FIM_REP_TEXTS, FIM_SEP_TEXTS] {
            if let Some(i) = find_first(list) {
                force_control(i, &mut attrs, &mut warnings);
                eog.push(i as u32);
            }
        }
        for text in FIM_OTHER_TEXTS {
            if let Some(&id) = token_to_id.get(*text) {
                force_control(id as usize, &mut attrs, &mut warnings);
            }
        }
        for text in EOG_TEXTS {
            if let Some(&id) = token_to_id.get(*text) {
                force_control(id as usize, &mut attrs, &mut warnings);
                eog.push(id);
            }
        }
        eog.extend(ids.eos);
        eog.extend(ids.eot);
        eog.sort_unstable();
        eog.dedup();

        let mut specials: Vec<SpecialToken> = (0..n)
            .filter(|&i| attrs[i] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0)
            .map(|i| SpecialToken {
                id: i as u32,
                text: texts[i].clone(),
                needs_parse_special: attrs[i] & (attr::CONTROL | attr::UNKNOWN) != 0,
            })
            .collect();
        sort_for_matching(&mut specials);

        let pieces = texts
            .iter()
            .zip(&attrs)
            .map(|(text, &a)| piece_for(text, a).into_boxed_slice())
            .collect();

        Ok(Self {
            texts,
            attrs,
            token_to_id,
            pieces,
            specials,
            eog,
            warnings,
        })
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn text(&self, id: u32) -> Option<&str> {
        self.texts.get(id as usize).map(String::as_str)
    }

    pub fn piece(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id as usize).map(|p| &p[..])
    }

    pub fn attr(&self, id: u32) -> Option<u16> {
        self.attrs.get(id as usize).copied()
    }

    /// Control and unknown tokens are dropped from output when specials are skipped;
    /// user-defined tokens are ordinary text to the reader and always shown.
    pub fn hidden_when_skipping(&self, id: u32) -> bool {
        self.attr(id)
            .is_some_and(|a| a & (attr::CONTROL | attr::UNKNOWN) != 0)
    }
}

/// The bytes a token stands for, following llama.cpp's `token_to_piece` for BPE vocabs.
fn piece_for(text: &str, a: u16) -> Vec<u8> {
    if a & (attr::UNKNOWN | attr::CONTROL | attr::USER_DEFINED) != 0 {
        text.as_bytes().to_vec()
    } else if a & attr::NORMAL != 0 {
        decode_text(text)
    } else if a & attr::BYTE != 0 {
        parse_byte_token(text).map_or_else(|| decode_text(text), |b| vec![b])
    } else {
        // Unused/undefined tokens render as nothing, as in llama.cpp.
        Vec::new()
    }
}

/// `<0xAB>` → 0xAB.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
