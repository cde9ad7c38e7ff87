//! Metadata values: the GGUF value-type ids and how each is read.

use super::reader::Cursor;
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<MetadataValue>),
}

/// Arrays may hold arrays (depth 2), but nothing real goes deeper, and unbounded nesting would let
/// a tiny file drive deep recursion.
pub(crate) const MAX_ARRAY_DEPTH: usize = 2;

impl MetadataValue {
    pub fn type_name(&self) -> &'static str {
        match self {
            MetadataValue::U8(_) => "u8",
            MetadataValue::I8(_) => "i8",
            MetadataValue::U16(_) => "u16",
            MetadataValue::I16(_) => "i16",
            MetadataValue::U32(_) => "u32",
            MetadataValue::I32(_) => "i32",
            MetadataValue::U64(_) => "u64",
            MetadataValue::I64(_) => "i64",
            MetadataValue::F32(_) => "f32",
            MetadataValue::F64(_) => "f64",
            MetadataValue::Bool(_) => "bool",
            MetadataValue::String(_) => "string",
            MetadataValue::Array(_) => "array",
        }
    }

    /// The GGUF type id this value is written with.
    pub fn type_id(&self) -> u32 {
        match self {
            MetadataValue::U8(_) => 0,
            MetadataValue::I8(_) => 1,
            MetadataValue::U16(_) => 2,
            MetadataValue::I16(_) => 3,
            MetadataValue::U32(_) => 4,
            MetadataValue::I32(_) => 5,
            MetadataValue::F32(_) => 6,
            MetadataValue::Bool(_) => 7,
            MetadataValue::String(_) => 8,
            MetadataValue::Array(_) => 9,
            MetadataValue::U64(_) => 10,
            MetadataValue::I64(_) => 11,
            MetadataValue::F64(_) => 12,
        }
    }

    /// Any integer variant, widened, so callers can range-check into the type they need.
    pub(crate) fn as_i128(&self) -> Option<i128> {
        match *self {
            MetadataValue::U8(v) => Some(v.into()),
            MetadataValue::I8(v) => Some(v.into()),
            MetadataValue::U16(v) => Some(v.into()),
            MetadataValue::I16(v) => Some(v.into()),
            MetadataValue::U32(v) => Some(v.into()),
            MetadataValue::I32(v) => Some(v.into()),
            MetadataValue::U64(v) => Some(v.into()),
            MetadataValue::I64(v) => Some(v.into()),
            _ => None,
        }
    }
}

/// Smallest encoding of one value of this type id, used to reject array lengths that cannot fit
/// in the bytes that remain. `None` for an unknown id.
fn min_encoded_size(type_id: u32) -> Option<usize> {
    Some(match type_id {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => 8,     // u64 length, possibly empty
        9 => 4 + 8, // element type + length
        _ => return None,
    })
}

fn unknown_type(type_id: u32, key: &str, at: usize) -> Error {
    Error::model_load(format!(
        "metadata key '{key}' has unknown value type id {type_id} at byte {at}"
    ))
}

/// Reads one value of `type_id`. `depth` counts the arrays we are already inside.
pub(crate) fn read_value(
    c: &mut Cursor<'_>,
    type_id: u32,
    key: &str,
    depth: usize,
) -> Result<MetadataValue> {
    // Built once per key, not per array element: token lists have ~50k strings.
    let what = format!("value of metadata key '{key}'");
    read_value_as(c, type_id, key, &what, depth)
}

fn read_value_as(
    c: &mut Cursor<'_>,
    type_id: u32,
    key: &str,
    what: &str,
    depth: usize,
) -> Result<MetadataValue> {
    let at = c.pos();
    Ok(match type_id {
        0 => MetadataValue::U8(c.u8(what)?),
        1 => MetadataValue::I8(c.i8(what)?),
        2 => MetadataValue::U16(c.u16(what)?),
        3 => MetadataValue::I16(c.i16(what)?),
        4 => MetadataValue::U32(c.u32(what)?),
        5 => MetadataValue::I32(c.i32(what)?),
        6 => MetadataValue::F32(c.f32(what)?),
        7 => match c.u8(what)? {
            0 => MetadataValue::Bool(false),
            1 => MetadataValue::Bool(true),
            b => {
                return Err(Error::model_load(format!(
                    "metadata key '{key}' has bool byte {b} at byte {at}, expected 0 or 1"
                )))
            }
        },
        8 => MetadataValue::String(c.string(what)?),
        9 => read_array(c, key, what, depth)?,
        10 => MetadataValue::U64(c.u64(what)?),
        11 => MetadataValue::I64(c.i64(what)?),
        12 => MetadataValue::F64(c.f64(what)?),
        _ => return Err(unknown_type(type_id, key, at)),
    })
}

fn read_array(c: &mut Cursor<'_>, key: &str, what: &str, depth: usize) -> Result<MetadataValue> {
    let at = c.pos();
    if depth >= MAX_ARRAY_DEPTH {
        return Err(Error::model_load(format!(
            "metadata key '{key}' nests arrays deeper than {MAX_ARRAY_DEPTH} levels at byte {at}"
        )));
    }
    let elem_type = c.u32(&format!("array element type of metadata key '{key}'"))?;
    let min_size = min_encoded_size(elem_type).ok_or_else(|| unknown_type(elem_type, key, at))?;
    let len_at = c.pos();
    let len = c.length(&format!("array length of metadata key '{key}'"))?;
    let needed = len.checked_mul(min_size);
    if needed.is_none_or(|n| n > c.remaining()) {
        return Err(Error::model_load(format!(
            "truncated: array of metadata key '{key}' at byte {len_at} claims {len} elements \
             (at least {min_size} bytes each), but only {} bytes remain",
            c.remaining()
        )));
    }
    // Bounded by the check above: `len` elements really can fit in the file.
    let mut items = Vec::with_capacity(len);
    for _ in 0..len {
        items.push(read_value_as(c, elem_type, key, what, depth + 1)?);
    }
    Ok(MetadataValue::Array(items))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array_header(elem_type: u32, len: u64) -> Vec<u8> {
        let mut b = elem_type.to_le_bytes().to_vec();
        b.extend_from_slice(&len.to_le_bytes());
        b
    }

    #[test]
    fn reads_scalars_and_arrays() {
        let mut b = array_header(5, 2);
        b.extend_from_slice(&(-7i32).to_le_bytes());
        b.extend_from_slice(&9i32.to_le_bytes());
        let v = read_value(&mut Cursor::new(&b), 9, "k", 0).unwrap();
        assert_eq!(
            v,
            MetadataValue::Array(vec![MetadataValue::I32(-7), MetadataValue::I32(9)])
        );
    }

    #[test]
    fn array_of_arrays_is_allowed_but_not_deeper() {
        let mut two = array_header(9, 1);
        two.extend_from_slice(&array_header(0, 1));
        two.push(3);
        let v = read_value(&mut Cursor::new(&two), 9, "k", 0).unwrap();
        assert_eq!(
            v,
            MetadataValue::Array(vec![MetadataValue::Array(vec![MetadataValue::U8(3)])])
        );

        let mut three = array_header(9, 1);
        three.extend_from_slice(&array_header(9, 1));
        three.extend_from_slice(&array_header(0, 1));
        three.push(3);
        let e = read_value(&mut Cursor::new(&three), 9, "k", 0).unwrap_err();
        assert!(e.message.contains("deeper than 2"), "{}", e.message);
    }

    #[test]
    fn huge_array_length_fails_fast() {
        let b = array_header(12, u64::MAX / 4);
        let e = read_value(&mut Cursor::new(&b), 9, "tokens", 0).unwrap_err();
        assert!(e.message.contains("tokens"), "{}", e.message);
    }

    #[test]
    fn bad_bool_and_unknown_type_are_rejected() {
        let e = read_value(&mut Cursor::new(&[2]), 7, "flag", 0).unwrap_err();
        assert!(e.message.contains("bool"), "{}", e.message);
        let e = read_value(&mut Cursor::new(&[0; 8]), 13, "x", 0).unwrap_err();
        assert!(
            e.message.contains("unknown value type id 13"),
            "{}",
            e.message
        );
    }

    #[test]
    fn type_ids_round_trip_through_reader() {
        for v in [
            MetadataValue::U8(1),
            MetadataValue::I16(-2),
            MetadataValue::U64(3),
            MetadataValue::F64(0.5),
        ] {
            let bytes: Vec<u8> = match v {
                MetadataValue::U8(x) => x.to_le_bytes().to_vec(),
                MetadataValue::I16(x) => x.to_le_bytes().to_vec(),
                MetadataValue::U64(x) => x.to_le_bytes().to_vec(),
                MetadataValue::F64(x) => x.to_le_bytes().to_vec(),
                _ => unreachable!(),
            };
            assert_eq!(
                read_value(&mut Cursor::new(&bytes), v.type_id(), "k", 0).unwrap(),
                v
            );
        }
    }
}
