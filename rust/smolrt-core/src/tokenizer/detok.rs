//! Turning token ids back into text: whole-sequence clean-up and streaming decoding.

use super::Tokenizer;

/// llama.cpp's detokenizer clean-up for tokenizers that ask for it: drops the space before
/// `? ! . ,`, collapses " ' " to "'", and attaches " 's", " 'm", " 're", " 've".
/// Operates on bytes; every byte it removes is an ASCII space, so UTF-8 stays intact.
pub fn clean_spaces(text: &mut Vec<u8>) {
    // Pass 1: " ?", " !", " .", " ," lose the space.
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    for &x in text.iter() {
        if matches!(x, b'?' | b'!' | b'.' | b',') && out.last() == Some(&b' ') {
            out.pop();
        }
        out.push(x);
    }
    // Pass 2: a lone apostrophe between spaces loses both spaces. The swallowed right-hand
    // space is zeroed in the source, as llama.cpp does in place, so it cannot count as the
    // left space of a following apostrophe.
    let mut src = std::mem::take(&mut out);
    let mut i = 0;
    while i < src.len() {
        let x = src[i];
        if i > 0 && x == b'\'' && i + 1 < src.len() && src[i - 1] == b' ' && src[i + 1] == b' ' {
            out.pop();
            src[i + 1] = 0;
            i += 1;
        }
        out.push(x);
        i += 1;
    }
    // Pass 3: contractions that attach to the previous word.
    let src = std::mem::take(&mut out);
    for (i, &x) in src.iter().enumerate() {
        if x == b'\'' && i > 0 && src[i - 1] == b' ' {
            let next = src.get(i + 1).copied();
            let next2 = src.get(i + 2).copied();
            let attaches = matches!(next, Some(b's' | b'm'))
                || matches!((next, next2), (Some(b'r' | b'v'), Some(b'e')));
            if attaches {
                out.pop();
            }
        }
        out.push(x);
    }
    *text = out;
}

/// Streams valid UTF-8: bytes of a multi-byte character split across tokens are held back
/// until the character is complete.
#[derive(Debug, Clone, Default)]
pub struct IncrementalDecoder {
    skip_special: bool,
    pending: Vec<u8>,
}

impl IncrementalDecoder {
    pub fn new(skip_special: bool) -> Self {
        Self {
            skip_special,
            pending: Vec::new(),
        }
    }

    /// Adds one token and returns the text that became complete (possibly empty). Ids outside
    /// the vocabulary contribute nothing: a stream should not die on one bad id.
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        if self.skip_special && tok.vocab.hidden_when_skipping(id) {
            return String::new();
        }
        if let Some(piece) = tok.vocab.piece(id) {
            self.pending.extend_from_slice(piece);
        }
        self.take_complete()
    }

    /// Returns whatever is pending, with incomplete sequences replaced by U+FFFD.
    pub fn flush(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }

    /// Bytes held back waiting for the rest of a character.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    fn take_complete(&mut self) -> String {
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // `valid` is valid UTF-8 by construction of `valid_up_to`.
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        // Bytes that can never become a character: replace now so they don't
                        // block the stream.
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            rest = &after[bad..];
                        }
                        // An unfinished character at the end: wait for more bytes.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        let start = self.pending.len() - keep;
        self.pending.drain(..start);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::clean_spaces;

    fn clean(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean_spaces(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn clean_spaces_matches_llama_cpp_rules() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("it 's I 'm we 're you 've"), "it's I'm we're you've");
        assert_eq!(clean("don 't I 'll"), "don 't I 'll");
        assert_eq!(clean("a ' b"), "a'b");
        assert_eq!(clean("a ' ' b"), "a'' b");
    }
}
