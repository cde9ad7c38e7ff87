//! Parsing the GGUF header: magic, version, metadata, tensor infos.
//!
//! Counts read from the file are checked against the bytes that remain before they drive any
//! loop or allocation, so a 2^60-tensor header fails at once instead of exhausting memory.

use super::reader::Cursor;
use super::tensor::{byte_size, dtype_from_id, TensorInfo, MAX_DIMS};
use super::value::{read_value, MetadataValue};
use crate::{Error, Result};
use std::collections::HashMap;

pub(crate) const MAGIC: &[u8; 4] = b"GGUF";
pub(crate) const DEFAULT_ALIGNMENT: usize = 32;
const ALIGNMENT_KEY: &str = "general.alignment";

/// Smallest possible metadata entry: empty-ish key (u64 length + 1 byte), u32 type, 1-byte value.
const MIN_KV_BYTES: usize = 8 + 1 + 4 + 1;
/// Smallest possible tensor info: u64 name length + 1 byte, u32 n_dims, one u64 dim, u32 type,
/// u64 offset.
const MIN_TENSOR_INFO_BYTES: usize = 8 + 1 + 4 + 8 + 4 + 8;

pub(crate) struct Header {
    pub version: u32,
    pub metadata: Vec<(String, MetadataValue)>,
    pub metadata_index: HashMap<String, usize>,
    /// Offsets here are still relative to the data section.
    pub tensors: Vec<TensorInfo>,
    pub tensor_index: HashMap<String, usize>,
    pub alignment: usize,
    /// Byte where the header (metadata + tensor infos) ends, before alignment padding.
    pub header_end: usize,
}

pub(crate) fn parse_header(bytes: &[u8]) -> Result<Header> {
    let mut c = Cursor::new(bytes);
    let magic = c.take(4, "magic")?;
    if magic != MAGIC {
        return Err(Error::model_load(format!(
            "not a GGUF file: magic at byte 0 is {magic:02x?} ({:?}), expected \"GGUF\"",
            String::from_utf8_lossy(magic)
        )));
    }
    let version = c.u32("version")?;
    check_version(version)?;

    let counts_at = c.pos();
    let tensor_count = c.length("tensor count")?;
    let kv_count = c.length("metadata key/value count")?;
    let needed = tensor_count
        .checked_mul(MIN_TENSOR_INFO_BYTES)
        .and_then(|t| {
            kv_count
                .checked_mul(MIN_KV_BYTES)
                .and_then(|k| k.checked_add(t))
        });
    if needed.is_none_or(|n| n > c.remaining()) {
        return Err(Error::model_load(format!(
            "truncated or corrupt header at byte {counts_at}: {tensor_count} tensors and \
             {kv_count} metadata entries cannot fit in the {} bytes that remain",
            c.remaining()
        )));
    }

    let (metadata, metadata_index) = read_metadata(&mut c, kv_count)?;
    let alignment = alignment(&metadata, &metadata_index)?;
    let (tensors, tensor_index) = read_tensor_infos(&mut c, tensor_count)?;
    Ok(Header {
        version,
        metadata,
        metadata_index,
        tensors,
        tensor_index,
        alignment,
        header_end: c.pos(),
    })
}

fn check_version(version: u32) -> Result<()> {
    match version {
        2 | 3 => Ok(()),
        1 => Err(Error::model_load(
            "GGUF version 1 is not supported (it predates 64-bit counts); re-convert the model \
             with a current llama.cpp",
        )),
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => Err(Error::model_load(format!(
            "GGUF version {v} looks like a big-endian file (version {} byte-swapped); only \
             little-endian files are supported",
            v.swap_bytes()
        ))),
        v => Err(Error::model_load(format!(
            "unsupported GGUF version {v} (supported: 2, 3)"
        ))),
    }
}

type Metadata = (Vec<(String, MetadataValue)>, HashMap<String, usize>);

fn read_metadata(c: &mut Cursor<'_>, kv_count: usize) -> Result<Metadata> {
    // Both bounded by the plausibility check in `parse_header`.
    let mut entries = Vec::with_capacity(kv_count);
    let mut index = HashMap::with_capacity(kv_count);
    for i in 0..kv_count {
        let at = c.pos();
        let key = c.string(&format!("metadata key #{i}"))?;
        if key.is_empty() {
            return Err(Error::model_load(format!(
                "metadata key #{i} at byte {at} is empty"
            )));
        }
        if index.contains_key(&key) {
            return Err(Error::model_load(format!(
                "duplicate metadata key '{key}' at byte {at}"
            )));
        }
        let type_id = c.u32(&format!("value type of metadata key '{key}'"))?;
        let value = read_value(c, type_id, &key, 0)?;
        index.insert(key.clone(), entries.len());
        entries.push((key, value));
    }
    Ok((entries, index))
}

fn alignment(
    metadata: &[(String, MetadataValue)],
    index: &HashMap<String, usize>,
) -> Result<usize> {
    let Some(&i) = index.get(ALIGNMENT_KEY) else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    let value = &metadata[i].1;
    let n = value.as_i128().ok_or_else(|| {
        Error::model_load(format!(
            "metadata key '{ALIGNMENT_KEY}' has type {}, expected u32",
            value.type_name()
        ))
    })?;
    match u32::try_from(n) {
        Ok(a) if a.is_power_of_two() => Ok(a as usize),
        _ => Err(Error::model_load(format!(
            "metadata key '{ALIGNMENT_KEY}' is {n}, expected a power of two that fits in u32"
        ))),
    }
}

type Tensors = (Vec<TensorInfo>, HashMap<String, usize>);

fn read_tensor_infos(c: &mut Cursor<'_>, tensor_count: usize) -> Result<Tensors> {
    let mut tensors = Vec::with_capacity(tensor_count);
    let mut index = HashMap::with_capacity(tensor_count);
    for i in 0..tensor_count {
        let at = c.pos();
        let name = c.string(&format!("name of tensor #{i}"))?;
        if name.is_empty() {
            return Err(Error::model_load(format!(
                "tensor #{i} at byte {at} has an empty name"
            )));
        }
        if index.contains_key(&name) {
            return Err(Error::model_load(format!(
                "duplicate tensor name '{name}' at byte {at}"
            )));
        }
        let n_dims_at = c.pos();
        let n_dims = c.u32(&format!("dimension count of tensor '{name}'"))? as usize;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(Error::model_load(format!(
                "tensor '{name}' has {n_dims} dimensions at byte {n_dims_at}, expected 1..={MAX_DIMS}"
            )));
        }
        let mut dims = Vec::with_capacity(n_dims);
        for d in 0..n_dims {
            let dim_at = c.pos();
            let dim = c.length(&format!("dimension {d} of tensor '{name}'"))?;
            if dim == 0 {
                return Err(Error::model_load(format!(
                    "tensor '{name}' has dimension {d} equal to 0 at byte {dim_at}"
                )));
            }
            dims.push(dim);
        }
        let type_id = c.u32(&format!("type of tensor '{name}'"))?;
        let dtype = dtype_from_id(type_id, &name)?;
        let offset = c.length(&format!("data offset of tensor '{name}'"))?;
        let size_bytes = byte_size(&name, &dims, dtype)?;
        index.insert(name.clone(), tensors.len());
        tensors.push(TensorInfo {
            name,
            dims,
            dtype,
            offset,
            size_bytes,
        });
    }
    Ok((tensors, index))
}
