//! GPT-2 byte-level alphabet: every byte gets a printable stand-in character so that BPE
//! vocabularies can be stored as text. Printable Latin-1 bytes stand for themselves; the rest
//! (controls, space, a few others) are shifted to U+0100 and up, in byte order.

use std::sync::OnceLock;

/// Highest stand-in code point is U+0143 (256 + 67 remapped bytes).
const REVERSE_LEN: usize = 0x144;

struct Tables {
    byte_to_char: [char; 256],
    char_to_byte: [Option<u8>; REVERSE_LEN],
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let keeps_itself = |b: u8| matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF);
        let mut byte_to_char = ['\0'; 256];
        let mut char_to_byte = [None; REVERSE_LEN];
        let mut shifted = 0u32;
        for b in 0..=255u8 {
            let cp = if keeps_itself(b) {
                u32::from(b)
            } else {
                shifted += 1;
                255 + shifted
            };
            // All code points here are below U+0144, so they are valid chars.
            let c = char::from_u32(cp).unwrap_or('\u{FFFD}');
            byte_to_char[usize::from(b)] = c;
            char_to_byte[cp as usize] = Some(b);
        }
        Tables {
            byte_to_char,
            char_to_byte,
        }
    })
}

/// The stand-in character for one raw byte.
pub fn byte_to_char(b: u8) -> char {
    tables().byte_to_char[usize::from(b)]
}

/// The raw byte a stand-in character represents, if it is one.
pub fn char_to_byte(c: char) -> Option<u8> {
    tables().char_to_byte.get(c as usize).copied().flatten()
}

/// Maps raw bytes to their byte-level text form (what vocab strings look like).
pub fn encode_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_to_char(b)).collect()
}

/// Maps byte-level text back to raw bytes. Characters outside the alphabet (which a
/// well-formed vocab never contains) are passed through as their own UTF-8 so nothing is lost.
pub fn decode_text(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
    }

    #[test]
    fn known_stand_ins() {
        assert_eq!(byte_to_char(b' '), '\u{120}'); // 'Ġ'
        assert_eq!(byte_to_char(b'\n'), '\u{10A}'); // 'Ċ'
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0xAD), '\u{143}');
        assert_eq!(decode_text("Ġhello"), b" hello");
    }
}
