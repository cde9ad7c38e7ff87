//! Pre-tokenization: splitting text into words before BPE, keyed by `tokenizer.ggml.pre`.
//!
//! Mirrors llama.cpp's scheme: a preset is a *list* of regexes applied one after another, each
//! splitting every piece the previous one produced. Within a piece both the matches and the
//! unmatched gaps between them become pieces, so no text is ever dropped. llama.cpp hand-codes
//! the GPT-2 and llama3 patterns; those hand-written splitters behave exactly like the real
//! regexes below (including the trailing `\s+` alternative the GPT-2 splitter implements).

use fancy_regex::Regex;

use crate::{Error, Result};

/// GPT-2's split, with the `\s+` fallback llama.cpp's hand-written splitter applies.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const EACH_DIGIT: &str = r"\p{N}";
/// CJK/Hangul runs. llama.cpp matches regexes with literal non-ASCII ranges after replacing
/// non-ASCII whitespace with U+000B, so whitespace inside the ranges (U+2028, U+3000, ...) must
/// not match.
const CJK_RUNS: &str = r"[[一-龥ࠀ-一가-퟿]&&\S]+";

/// Behaviour switches that travel with a preset (llama.cpp sets them per pre-tokenizer name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetFlags {
    /// A word that is already a whole vocab entry skips BPE (llama3-style tokenizers).
    pub ignore_merges: bool,
    /// `decode` tidies " ," / " 's" style spacing the way llama.cpp's detokenizer does.
    pub clean_spaces: bool,
}

pub struct PreTokenizer {
    regexes: Vec<Regex>,
    pub flags: PresetFlags,
}

/// What a `tokenizer.ggml.pre` name resolved to.
pub struct Resolved {
    pub pre: PreTokenizer,
    /// Set when the name was missing or unknown and a fallback was used.
    pub warning: Option<String>,
}

impl PreTokenizer {
    fn new(patterns: &[&str], ignore_merges: bool, clean_spaces: bool) -> Result<Self> {
        let regexes = patterns
            .iter()
            .map(|p| {
                Regex::new(p)
                    .map_err(|e| Error::internal(format!("pre-tokenizer regex {p:?}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            regexes,
            flags: PresetFlags {
                ignore_merges,
                clean_spaces,
            },
        })
    }

    /// Picks the preset for a `tokenizer.ggml.pre` value. Names follow llama.cpp's table.
    pub fn for_name(pre: Option<&str>) -> Result<Resolved> {
        let ok = |pre| Ok(Resolved { pre, warning: None });
        let Some(name) = pre else {
            return Ok(Resolved {
                pre: Self::default_preset()?,
                warning: Some(
                    "tokenizer.ggml.pre is missing; using the 'default' pre-tokenizer (tokenization may differ from the original model)".into(),
                ),
            });
        };
        match name {
            "default" => ok(Self::default_preset()?),
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" | "mellum2" => {
                let clean = !matches!(name, "smollm" | "command-r");
                ok(Self::new(&[EACH_DIGIT, GPT2], false, clean)?)
            }
            "gpt2" | "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais"
            | "exaone4" | "jina-v1-en" | "jina-v2-code" | "roberta-bpe" => {
                ok(Self::new(&[GPT2], false, true)?)
            }
            "trillion" | "granite-docling" => ok(Self::new(&[GPT2], false, false)?),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => ok(Self::new(&[LLAMA3], true, true)?),
            "dbrx" | "smaug-bpe" => ok(Self::new(&[LLAMA3], false, true)?),
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "hunyuan" | "solar-open" => {
                ok(Self::new(&[QWEN2], false, false)?)
            }
            "megrez" | "stablelm2" => ok(Self::new(&[QWEN2], false, true)?),
            "falcon" => ok(Self::new(
                &[r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
                false,
                true,
            )?),
            "deepseek-coder" => ok(Self::new(
                &[r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", CJK_RUNS, r"\p{N}"],
                false,
                false,
            )?),
            _ => Ok(Resolved {
                pre: Self::new(&[GPT2], false, true)?,
                warning: Some(format!(
                    "unknown pre-tokenizer '{name}'; falling back to the GPT-2 split (tokenization may differ from the original model)"
                )),
            }),
        }
    }

    /// llama.cpp's catch-all list for a missing or "default" pre-tokenizer.
    fn default_preset() -> Result<Self> {
        Self::new(
            &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
            false,
            true,
        )
    }

    /// Splits `text` into words. Every byte of `text` ends up in exactly one word, in order.
    pub fn split<'t>(&self, text: &'t str) -> Vec<&'t str> {
        let mut pieces: Vec<&'t str> = if text.is_empty() {
            Vec::new()
        } else {
            vec![text]
        };
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                split_one(re, piece, &mut next);
            }
            pieces = next;
        }
        pieces
    }
}

fn split_one<'t>(re: &Regex, piece: &'t str, out: &mut Vec<&'t str>) {
    let mut last = 0;
    for m in re.find_iter(piece) {
        // A backtracking-limit error only arises on pathological inputs; leaving the rest
        // of the piece whole keeps every byte and still tokenizes correctly, just coarser.
        let Ok(m) = m else { break };
        if m.start() == m.end() {
            continue;
        }
        if m.start() > last {
            out.push(&piece[last..m.start()]);
        }
        out.push(m.as_str());
        last = m.end();
    }
    if last < piece.len() {
        out.push(&piece[last..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pre: &str, text: &str) -> Vec<String> {
        let r = PreTokenizer::for_name(Some(pre)).unwrap();
        r.pre.split(text).into_iter().map(String::from).collect()
    }

    #[test]
    fn smollm_isolates_digits_and_keeps_spaces_with_words() {
        assert_eq!(
            split("smollm", "abc 1234 x"),
            ["abc", " ", "1", "2", "3", "4", " x"]
        );
        assert_eq!(
            split("smollm", "Hello, world!"),
            ["Hello", ",", " world", "!"]
        );
    }

    #[test]
    fn whitespace_run_leaves_last_space_for_next_word() {
        assert_eq!(split("smollm", "a   b"), ["a", "  ", " b"]);
        assert_eq!(split("smollm", "a\n\n b"), ["a", "\n\n", " b"]);
        assert_eq!(split("smollm", "end  "), ["end", "  "]);
        assert_eq!(split("smollm", "a\tb"), ["a", "\t", "b"]);
    }

    #[test]
    fn contractions_split_off() {
        assert_eq!(split("gpt-2", "I'm don't"), ["I", "'m", " don", "'t"]);
    }

    #[test]
    fn llama3_groups_three_digits_and_newlines() {
        assert_eq!(
            split("llama-bpe", "12345 ab\n\n"),
            ["123", "45", " ab", "\n\n"]
        );
        assert_eq!(split("llama-bpe", "x!!\ny"), ["x", "!!\n", "y"]);
    }

    #[test]
    fn unknown_name_falls_back_with_warning() {
        let r = PreTokenizer::for_name(Some("no-such-pre")).unwrap();
        assert!(r.warning.unwrap().contains("no-such-pre"));
        let r = PreTokenizer::for_name(None).unwrap();
        assert!(r.warning.is_some());
    }

    #[test]
    fn split_never_drops_bytes() {
        let text = "héllo wörld  123\t\t\n😀 it's ½ done?!";
        for pre in [
            "smollm",
            "gpt-2",
            "llama-bpe",
            "qwen2",
            "default",
            "deepseek-coder",
        ] {
            let r = PreTokenizer::for_name(Some(pre)).unwrap();
            assert_eq!(r.pre.split(text).concat(), text, "{pre}");
        }
    }
}
