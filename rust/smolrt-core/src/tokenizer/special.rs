//! Splitting special-token texts (e.g. `<|im_start|>`) out of input before pre-tokenization.
//!
//! Follows llama.cpp's order: special tokens are tried longest first, and each one splits every
//! remaining text fragment at all of its occurrences before the next token is tried.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fragment {
    /// Byte range of the input still to be tokenized as ordinary text.
    Text(Range<usize>),
    Token(u32),
}

/// A special token that may be recognised in input text.
pub struct SpecialToken {
    pub id: u32,
    pub text: String,
    /// Control/unknown tokens are recognised only when the caller asks to parse specials;
    /// user-defined tokens always are (as in HF tokenizers and llama.cpp).
    pub needs_parse_special: bool,
}

/// Sorts longest text first; ties by id so the order is deterministic.
pub fn sort_for_matching(tokens: &mut [SpecialToken]) {
    tokens.sort_by(|a, b| b.text.len().cmp(&a.text.len()).then(a.id.cmp(&b.id)));
}

/// Partitions `text` into ordinary text ranges and special tokens. `specials` must be sorted
/// with [`sort_for_matching`].
pub fn partition(text: &str, specials: &[SpecialToken], parse_special: bool) -> Vec<Fragment> {
    let mut fragments = if text.is_empty() {
        Vec::new()
    } else {
        vec![Fragment::Text(0..text.len())]
    };
    for special in specials {
        if special.text.is_empty() || (special.needs_parse_special && !parse_special) {
            continue;
        }
        // Cheap reject: most special tokens never occur in a given prompt.
        if !text.contains(special.text.as_str()) {
            continue;
        }
        let mut next = Vec::with_capacity(fragments.len() + 2);
        for frag in fragments {
            let Fragment::Text(range) = frag else {
                next.push(frag);
                continue;
            };
            let mut start = range.start;
            while let Some(pos) = text[start..range.end].find(special.text.as_str()) {
                let at = start + pos;
                if at > start {
                    next.push(Fragment::Text(start..at));
                }
                next.push(Fragment::Token(special.id));
                start = at + special.text.len();
            }
            if start < range.end {
                next.push(Fragment::Text(start..range.end));
            }
        }
        fragments = next;
    }
    fragments
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specials() -> Vec<SpecialToken> {
        let mut v = vec![
            SpecialToken {
                id: 1,
                text: "<a>".into(),
                needs_parse_special: true,
            },
            SpecialToken {
                id: 2,
                text: "<a><b>".into(),
                needs_parse_special: true,
            },
            SpecialToken {
                id: 3,
                text: "[U]".into(),
                needs_parse_special: false,
            },
        ];
        sort_for_matching(&mut v);
        v
    }

    #[test]
    fn longest_first_and_text_kept() {
        let f = partition("x<a><b>y<a>", &specials(), true);
        assert_eq!(
            f,
            [
                Fragment::Text(0..1),
                Fragment::Token(2),
                Fragment::Text(7..8),
                Fragment::Token(1)
            ]
        );
    }

    #[test]
    fn control_tokens_need_parse_special_but_user_defined_do_not() {
        let f = partition("<a>[U]", &specials(), false);
        assert_eq!(f, [Fragment::Text(0..3), Fragment::Token(3)]);
    }
}
