//! GGUF model files: parsed and fully validated up front, so that everything after `open` can
//! index tensor bytes without re-checking bounds.
//!
//! Format reference: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>.

mod getters;
mod header;
mod layout;
mod reader;
mod tensor;
mod value;

pub use candle_core::quantized::GgmlDType;
pub use tensor::{TensorInfo, TensorType};
pub use value::MetadataValue;

use crate::{Error, Result};
use candle_core::quantized::QTensor;
use candle_core::Device;
use std::collections::HashMap;
use std::path::Path;

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

pub struct GgufFile {
    bytes: Bytes,
    version: u32,
    metadata: Vec<(String, MetadataValue)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile")
            .field("version", &self.version)
            .field("file_size", &self.file_size())
            .field("metadata_entries", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl GgufFile {
    /// Maps the file and validates it completely.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| {
            Error::model_load(format!("cannot open model file '{}': {e}", path.display()))
        })?;
        // SAFETY: the mapping is read-only. Like every mmap-based loader we rely on the file not
        // being truncated or rewritten while mapped; doing so is outside what we can defend against.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| {
            Error::model_load(format!("cannot map model file '{}': {e}", path.display()))
        })?;
        Self::parse(Bytes::Mapped(map)).map_err(|e| {
            Error::model_load(format!("model file '{}': {}", path.display(), e.message))
        })
    }

    /// Drops the mapped pages from this process's resident set. Loading copies every weight out
    /// of the mapping, which leaves a second, file-backed copy of the model counted in RSS for as
    /// long as the file stays open; the pages come back from the page cache if read again.
    pub(crate) fn release_mapped_pages(&self) {
        #[cfg(unix)]
        if let Bytes::Mapped(map) = &self.bytes {
            // SAFETY: the mapping is read-only and file-backed, so MADV_DONTNEED discards nothing
            // but the process's references to clean pages; later reads fault them back in from
            // the file. A failure only means the pages stay resident.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// The same validation as [`GgufFile::open`], on bytes already in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::parse(Bytes::Owned(bytes))
    }

    fn parse(bytes: Bytes) -> Result<Self> {
        let data = bytes.as_slice();
        let mut h = header::parse_header(data)?;
        layout::place_tensors(&mut h.tensors, h.header_end, h.alignment, data.len())?;
        Ok(Self {
            bytes,
            version: h.version,
            metadata: h.metadata,
            metadata_index: h.metadata_index,
            tensors: h.tensors,
            tensor_index: h.tensor_index,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn file_size(&self) -> usize {
        self.bytes.as_slice().len()
    }

    /// Metadata entries in file order.
    pub fn metadata(&self) -> &[(String, MetadataValue)] {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// Tensor descriptors in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor_info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor's raw bytes. `info` must come from this file: its range was proven in bounds
    /// at parse time. A foreign `info` whose range does not fit yields an empty slice rather
    /// than a panic.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let end = info.offset.saturating_add(info.size_bytes);
        self.bytes.as_slice().get(info.offset..end).unwrap_or(&[])
    }

    /// The named tensor as a candle `QTensor` on the CPU, shape = dims reversed (`[rows, cols]`).
    pub fn qtensor(&self, name: &str) -> Result<QTensor> {
        let info = self
            .tensor_info(name)
            .ok_or_else(|| Error::model_load(format!("tensor '{name}' is missing")))?;
        let dtype = info.dtype.candle().ok_or_else(|| {
            Error::model_load(format!(
                "tensor '{name}' is {:?}, which only our matmul kernels read",
                info.dtype
            ))
        })?;
        let data = self.tensor_data(info);
        if data.len() != info.size_bytes {
            return Err(Error::internal(format!(
                "tensor '{name}' data range is not inside the file"
            )));
        }
        let aligned;
        // candle reinterprets the bytes as blocks/floats (alignment up to 4), so copy when the
        // file or buffer leaves them unaligned (e.g. general.alignment = 1, or a Vec<u8>).
        let data = if data.as_ptr().align_offset(BLOCK_ALIGN) == 0 {
            data
        } else {
            aligned = AlignedCopy::new(data)?;
            aligned.as_slice()
        };
        let shape: Vec<usize> = info.dims.iter().rev().copied().collect();
        candle_core::quantized::ggml_file::qtensor_from_ggml(dtype, data, shape, &Device::Cpu)
            .map_err(|e| Error::model_load(format!("tensor '{name}' cannot be loaded: {e}")))
    }
}

/// Strictest alignment of any ggml block or float type candle reads (f32 fields).
const BLOCK_ALIGN: usize = 8;

/// An over-allocated buffer holding a copy of some bytes at an aligned address. Safe code only:
/// the slack lets us pick an aligned start inside an ordinary `Vec<u8>`.
struct AlignedCopy {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedCopy {
    fn new(data: &[u8]) -> Result<Self> {
        let mut buf = vec![0u8; data.len() + BLOCK_ALIGN];
        let start = buf.as_ptr().align_offset(BLOCK_ALIGN);
        if start >= BLOCK_ALIGN {
            return Err(Error::internal("cannot align a tensor copy"));
        }
        buf[start..start + data.len()].copy_from_slice(data);
        Ok(Self {
            buf,
            start,
            len: data.len(),
        })
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

#[cfg(test)]
impl GgufFile {
    /// A file with only metadata, for unit tests of the accessors.
    pub(crate) fn with_metadata(entries: Vec<(&str, MetadataValue)>) -> Self {
        let metadata: Vec<(String, MetadataValue)> = entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let metadata_index = metadata
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        Self {
            bytes: Bytes::Owned(Vec::new()),
            version: 3,
            metadata,
            metadata_index,
            tensors: Vec::new(),
            tensor_index: HashMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_can_be_shared_across_threads() {
        // The engine keeps one parsed file behind an Arc used by worker threads.
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<GgufFile>();
    }

    #[test]
    fn aligned_copy_is_aligned_and_equal() {
        let src: Vec<u8> = (0..100u8).collect();
        for skip in 0..8 {
            let c = AlignedCopy::new(&src[skip..]).unwrap();
            assert_eq!(c.as_slice(), &src[skip..]);
            assert_eq!(c.as_slice().as_ptr().align_offset(BLOCK_ALIGN), 0);
        }
    }
}
