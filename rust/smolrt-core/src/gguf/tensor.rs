//! Tensor descriptors: ggml type ids and checked size arithmetic.

use crate::{Error, Result};
use candle_core::quantized::GgmlDType;

/// A tensor's storage type, named and numbered as ggml does: the types candle reads, and the
/// ones only our own kernels read (the IQ4 types, which candle has no blocks for).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    /// 4-bit indices into a fixed non-linear grid, one f16 scale per 32 values.
    IQ4_NL,
    /// IQ4_NL's grid in super-blocks of 256: one f16 scale, a 6-bit scale per 32 values.
    IQ4_XS,
}

/// Every type a file may hold, with its ggml id, values per block and bytes per block.
const TYPES: [(TensorType, u32, usize, usize); 15] = [
    (TensorType::F32, 0, 1, 4),
    (TensorType::F16, 1, 1, 2),
    (TensorType::BF16, 30, 1, 2),
    (TensorType::Q4_0, 2, 32, 18),
    (TensorType::Q4_1, 3, 32, 20),
    (TensorType::Q5_0, 6, 32, 22),
    (TensorType::Q5_1, 7, 32, 24),
    (TensorType::Q8_0, 8, 32, 34),
    (TensorType::Q2K, 10, 256, 84),
    (TensorType::Q3K, 11, 256, 110),
    (TensorType::Q4K, 12, 256, 144),
    (TensorType::Q5K, 13, 256, 176),
    (TensorType::Q6K, 14, 256, 210),
    (TensorType::IQ4_NL, 20, 32, 18),
    (TensorType::IQ4_XS, 23, 256, 136),
];

impl TensorType {
    fn row(self) -> (TensorType, u32, usize, usize) {
        TYPES
            .into_iter()
            .find(|t| t.0 == self)
            .expect("every type is in TYPES")
    }

    /// The ggml type id.
    pub fn id(self) -> u32 {
        self.row().1
    }

    /// Values per block (1 for the float types).
    pub fn block_size(self) -> usize {
        self.row().2
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        self.row().3
    }

    /// candle's name for the type, where candle can read it.
    pub fn candle(self) -> Option<GgmlDType> {
        Some(match self {
            TensorType::F32 => GgmlDType::F32,
            TensorType::F16 => GgmlDType::F16,
            TensorType::BF16 => GgmlDType::BF16,
            TensorType::Q4_0 => GgmlDType::Q4_0,
            TensorType::Q4_1 => GgmlDType::Q4_1,
            TensorType::Q5_0 => GgmlDType::Q5_0,
            TensorType::Q5_1 => GgmlDType::Q5_1,
            TensorType::Q8_0 => GgmlDType::Q8_0,
            TensorType::Q2K => GgmlDType::Q2K,
            TensorType::Q3K => GgmlDType::Q3K,
            TensorType::Q4K => GgmlDType::Q4K,
            TensorType::Q5K => GgmlDType::Q5K,
            TensorType::Q6K => GgmlDType::Q6K,
            TensorType::IQ4_NL | TensorType::IQ4_XS => return None,
        })
    }
}

/// candle's types that model files use; Q8_1/Q8_K are candle-internal activation formats.
impl TryFrom<GgmlDType> for TensorType {
    type Error = Error;

    fn try_from(dtype: GgmlDType) -> Result<Self> {
        TYPES
            .into_iter()
            .map(|t| t.0)
            .find(|t| t.candle() == Some(dtype))
            .ok_or_else(|| Error::internal(format!("{dtype:?} is not a tensor storage type")))
    }
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: dims[0] is the contiguous row length
    pub dims: Vec<usize>,
    pub dtype: TensorType,
    /// absolute byte offset in the file
    pub offset: usize,
    pub size_bytes: usize,
}

/// ggml limits tensors to four dimensions; a reader that allowed more would accept files no other
/// tool produces.
pub(crate) const MAX_DIMS: usize = 4;

/// The type of ggml id `type_id`. Q8_1/Q8_K (ids 9, 15) are activation formats that real model
/// files do not use, so they are refused like any other id we have no reader for.
pub(crate) fn dtype_from_id(type_id: u32, tensor: &str) -> Result<TensorType> {
    if let Some(t) = TYPES.iter().find(|t| t.1 == type_id) {
        return Ok(t.0);
    }
    let supported: Vec<String> = TYPES.iter().map(|t| format!("{:?}={}", t.0, t.1)).collect();
    Err(Error::model_load(format!(
        "tensor '{tensor}' has unsupported ggml type id {type_id} (supported: {})",
        supported.join(", ")
    )))
}

/// Bytes a tensor of `dims` occupies, with every step checked: dims come straight from the file.
/// Blocks never straddle rows in ggml, so the row length (dims[0]) must be a multiple of the
/// block size.
pub(crate) fn byte_size(name: &str, dims: &[usize], dtype: TensorType) -> Result<usize> {
    let overflow = || {
        Error::model_load(format!(
            "tensor '{name}' with dims {dims:?} is too large (size overflows)"
        ))
    };
    let elements = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    let block = dtype.block_size();
    let row = dims.first().copied().unwrap_or(0);
    if row % block != 0 {
        return Err(Error::model_load(format!(
            "tensor '{name}' has row length {row}, which is not a multiple of the {dtype:?} \
             block size {block}"
        )));
    }
    (elements / block)
        .checked_mul(dtype.type_size())
        .ok_or_else(overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_for_supported_types() {
        for id in [0, 1, 30, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14, 20, 23] {
            assert_eq!(dtype_from_id(id, "t").unwrap().id(), id);
        }
        for id in [4, 5, 9, 15, 16, 19, 21, 22, 29, 31, u32::MAX] {
            let e = dtype_from_id(id, "blk.0.x").unwrap_err();
            assert!(e.message.contains("blk.0.x") && e.message.contains(&id.to_string()));
        }
    }

    #[test]
    fn candle_names_agree_on_block_shapes() {
        for (t, ..) in TYPES {
            match t.candle() {
                Some(c) => {
                    assert_eq!(TensorType::try_from(c).unwrap(), t);
                    assert_eq!(
                        (c.block_size(), c.type_size()),
                        (t.block_size(), t.type_size())
                    );
                }
                None => assert!(matches!(t, TensorType::IQ4_NL | TensorType::IQ4_XS)),
            }
        }
        assert!(TensorType::try_from(GgmlDType::Q8K).is_err());
    }

    #[test]
    fn sizes_use_blocks() {
        // Q4_1: 32 elements per 20-byte block; Q8_0: 32 per 34; Q6_K: 256 per 210.
        assert_eq!(byte_size("t", &[64, 3], TensorType::Q4_1).unwrap(), 6 * 20);
        assert_eq!(byte_size("t", &[32], TensorType::Q8_0).unwrap(), 34);
        assert_eq!(byte_size("t", &[256, 2], TensorType::Q6K).unwrap(), 2 * 210);
        assert_eq!(byte_size("t", &[5, 7], TensorType::F32).unwrap(), 140);
    }

    #[test]
    fn partial_block_rows_and_overflow_are_rejected() {
        let e = byte_size("w", &[48, 2], TensorType::Q4_0).unwrap_err();
        assert!(e.message.contains("'w'") && e.message.contains("block size 32"));
        let e = byte_size("w", &[128, 2], TensorType::IQ4_XS).unwrap_err();
        assert!(e.message.contains("IQ4_XS") && e.message.contains("block size 256"));
        assert_eq!(
            byte_size("w", &[256, 3], TensorType::IQ4_XS).unwrap(),
            3 * 136
        );
        assert_eq!(byte_size("w", &[64], TensorType::IQ4_NL).unwrap(), 2 * 18);
        let e = byte_size("w", &[1 << 40, 1 << 40], TensorType::F32).unwrap_err();
        assert!(e.message.contains("overflow"), "{}", e.message);
        let e = byte_size("w", &[usize::MAX], TensorType::F32).unwrap_err();
        assert!(e.message.contains("overflow"), "{}", e.message);
    }
}
