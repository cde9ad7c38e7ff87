//! A bounds-checked little-endian cursor over the file bytes.
//!
//! Every read names what it was reading, so a truncated or hostile file yields an error that says
//! where it broke instead of a panic or an out-of-bounds slice.

use crate::{Error, Result};

pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Takes the next `n` bytes, or reports truncation at the current position.
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::model_load(format!(
                "truncated: {what} needs {n} bytes at byte {}, but the file ends at byte {}",
                self.pos,
                self.bytes.len()
            )));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn i8(&mut self, what: &str) -> Result<i8> {
        Ok(i8::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i16(&mut self, what: &str) -> Result<i16> {
        Ok(i16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i32(&mut self, what: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn f32(&mut self, what: &str) -> Result<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn f64(&mut self, what: &str) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// A u64 count or length that must also be addressable on this machine.
    pub(crate) fn length(&mut self, what: &str) -> Result<usize> {
        let at = self.pos;
        let n = self.u64(what)?;
        usize::try_from(n).map_err(|_| {
            Error::model_load(format!("{what} {n} at byte {at} does not fit in memory"))
        })
    }

    /// A GGUF string: u64 byte length then UTF-8 bytes. The length is checked against what is
    /// left before anything is copied, so a hostile length cannot trigger a huge allocation.
    pub(crate) fn string(&mut self, what: &str) -> Result<String> {
        let at = self.pos;
        let n = self.length(what)?;
        if n > self.remaining() {
            return Err(Error::model_load(format!(
                "truncated: {what} at byte {at} claims {n} bytes, but only {} remain",
                self.remaining()
            )));
        }
        let bytes = self.take(n, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(Error::model_load(format!(
                "{what} at byte {at} is not valid UTF-8 (bad byte at string offset {})",
                e.valid_up_to()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_advances() {
        let bytes = [1u8, 0, 0, 0, 0xff, 2, 0];
        let mut c = Cursor::new(&bytes);
        assert_eq!(c.u32("a").unwrap(), 1);
        assert_eq!(c.i8("b").unwrap(), -1);
        assert_eq!(c.u16("c").unwrap(), 2);
        assert_eq!(c.remaining(), 0);
    }

    #[test]
    fn truncation_names_the_field_and_offset() {
        let mut c = Cursor::new(&[1, 2, 3]);
        c.u8("x").unwrap();
        let e = c.u32("tensor count").unwrap_err();
        assert!(e.message.contains("truncated"), "{}", e.message);
        assert!(e.message.contains("tensor count"), "{}", e.message);
        assert!(e.message.contains("at byte 1"), "{}", e.message);
    }

    #[test]
    fn string_length_past_end_is_rejected_before_allocating() {
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        let e = Cursor::new(&bytes).string("key").unwrap_err();
        assert!(e.message.contains("key"), "{}", e.message);
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let mut bytes = 2u64.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0xc3, 0x28]);
        let e = Cursor::new(&bytes).string("key").unwrap_err();
        assert!(e.message.contains("UTF-8"), "{}", e.message);
    }
}
