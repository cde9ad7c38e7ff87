//! Byte-level BPE tokenizer built from GGUF tokenizer metadata, matching llama.cpp.
//!
//! Encoding: special-token texts are split out first ([`special`]), each remaining text
//! fragment is pre-tokenized into words ([`pretokenize`]), and each word is mapped to the GPT-2
//! byte alphabet and BPE-merged ([`bpe`]). Decoding maps tokens back to raw bytes
//! ([`byte_level`]); [`IncrementalDecoder`] streams them as valid UTF-8.

mod bpe;
mod byte_level;
mod detok;
mod gguf;
mod pretokenize;
mod special;
mod vocab;

pub use detok::IncrementalDecoder;
pub use gguf::from_gguf;

use bpe::Bpe;
use pretokenize::{PreTokenizer, PresetFlags};
use special::Fragment;
use vocab::{SpecialIds, Vocab};

use crate::{Error, Result};

/// Tokenizer metadata as stored in a GGUF file (`tokenizer.ggml.*`).
#[derive(Debug, Clone, Default)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`; only "gpt2" (byte-level BPE) is supported.
    pub model: String,
    /// `tokenizer.ggml.pre`: selects the pre-tokenizer.
    pub pre: Option<String>,
    pub tokens: Vec<String>,
    /// 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte; empty means all normal.
    pub token_types: Vec<i32>,
    /// "left right" pairs, highest priority first.
    pub merges: Vec<String>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub eot_id: Option<u32>,
    pub unk_id: Option<u32>,
    pub pad_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: bool,
}

impl TokenizerSpec {
    /// What `add_bos` should be when the file has no `tokenizer.ggml.add_bos_token`: llama.cpp
    /// turns it on for llama3-style pre-tokenizers and leaves it off for other BPE vocabs.
    pub fn default_add_bos(pre: Option<&str>) -> bool {
        matches!(
            pre,
            Some(
                "llama3"
                    | "llama-v3"
                    | "llama-bpe"
                    | "falcon3"
                    | "falcon-h1"
                    | "pixtral"
                    | "midm-2.0"
                    | "lfm2"
                    | "jina-v5-nano"
            )
        )
    }
}

pub struct Tokenizer {
    vocab: Vocab,
    bpe: Bpe,
    pre: PreTokenizer,
    bos_id: Option<u32>,
    eos_id: Option<u32>,
    add_bos: bool,
    warnings: Vec<String>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab.len())
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .field("add_bos", &self.add_bos)
            .finish_non_exhaustive()
    }
}

impl Tokenizer {
    pub fn from_spec(spec: TokenizerSpec) -> Result<Self> {
        if spec.model != "gpt2" {
            return Err(Error::model_load(format!(
                "unsupported tokenizer model {:?}: only byte-level BPE (\"gpt2\") is supported",
                spec.model
            )));
        }
        let n = spec.tokens.len();
        for (name, id) in [
            ("bos", spec.bos_id),
            ("eos", spec.eos_id),
            ("eot", spec.eot_id),
            ("unk", spec.unk_id),
            ("pad", spec.pad_id),
        ] {
            if let Some(id) = id {
                if id as usize >= n {
                    return Err(Error::model_load(format!(
                        "tokenizer {name} id {id} is outside the vocabulary of {n} tokens"
                    )));
                }
            }
        }
        if spec.add_bos && spec.bos_id.is_none() {
            return Err(Error::model_load(
                "tokenizer asks to add BOS but has no BOS id",
            ));
        }

        let resolved = PreTokenizer::for_name(spec.pre.as_deref())?;
        let vocab = Vocab::new(
            spec.tokens,
            &spec.token_types,
            SpecialIds {
                eos: spec.eos_id,
                eot: spec.eot_id,
            },
        )?;
        let PresetFlags { ignore_merges, .. } = resolved.pre.flags;
        let bpe = Bpe::new(
            &vocab.token_to_id,
            vocab.len() as u32,
            &spec.merges,
            ignore_merges,
        )?;

        let mut warnings = vocab.warnings.clone();
        warnings.extend(resolved.warning);
        Ok(Self {
            vocab,
            bpe,
            pre: resolved.pre,
            bos_id: spec.bos_id,
            eos_id: spec.eos_id,
            add_bos: spec.add_bos,
            warnings,
        })
    }

    /// `add_special`: prepend BOS when the model asks for it. `parse_special`: recognise
    /// control token texts (e.g. "<|im_start|>") in `text` as single tokens; otherwise they are
    /// tokenized as plain text. User-defined tokens are always recognised, as in llama.cpp.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            // from_spec guarantees a BOS id whenever add_bos is set.
            out.extend(self.bos_id);
        }
        for frag in special::partition(text, &self.vocab.specials, parse_special) {
            match frag {
                Fragment::Token(id) => out.push(id),
                Fragment::Text(range) => {
                    for word in self.pre.split(&text[range]) {
                        self.bpe
                            .encode_word(word, &self.vocab.token_to_id, &mut out);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Text for `ids`. With `skip_special`, control and unknown tokens are left out. Invalid
    /// UTF-8 (a sequence cut mid-character) is replaced with U+FFFD.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let mut bytes = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            let piece = self.vocab.piece(id).ok_or_else(|| {
                Error::invalid_request(format!(
                    "token id {id} is outside the vocabulary of {} tokens",
                    self.vocab.len()
                ))
            })?;
            if skip_special && self.vocab.hidden_when_skipping(id) {
                continue;
            }
            bytes.extend_from_slice(piece);
        }
        if self.pre.flags.clean_spaces {
            detok::clean_spaces(&mut bytes);
        }
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    /// Raw bytes the token stands for (control and user-defined tokens: their text).
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.vocab.piece(id)
    }

    /// The vocab string as stored (byte-level alphabet for ordinary tokens).
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.text(id)
    }

    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.token_to_id.get(text).copied()
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos_id
    }

    /// End-of-generation ids, sorted: eos, eot, and the tokens llama.cpp treats as EOG by text
    /// ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", FIM
    /// pad/repo/file-separator tokens, ...).
    pub fn eog_ids(&self) -> &[u32] {
        &self.vocab.eog
    }

    pub fn is_eog(&self, id: u32) -> bool {
        self.vocab.eog.binary_search(&id).is_ok()
    }

    /// Control or user-defined token.
    pub fn is_special(&self, id: u32) -> bool {
        self.vocab
            .attr(id)
            .is_some_and(|a| a & (vocab::attr::CONTROL | vocab::attr::USER_DEFINED) != 0)
    }

    /// Problems found while loading that did not prevent it (unknown pre-tokenizer, ...).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}
