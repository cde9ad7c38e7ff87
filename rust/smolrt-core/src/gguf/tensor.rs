//! Tensor descriptors: ggml type ids and checked size arithmetic.

use crate::{Error, Result};
use candle_core::quantized::GgmlDType;

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: dims[0] is the contiguous row length
    pub dims: Vec<usize>,
    pub dtype: GgmlDType,
    /// absolute byte offset in the file
    pub offset: usize,
    pub size_bytes: usize,
}

/// ggml limits tensors to four dimensions; a reader that allowed more would accept files no other
/// tool produces.
pub(crate) const MAX_DIMS: usize = 4;

/// The ggml type ids we can hand to candle. Q8_1/Q8_K (ids 9, 15) are candle-internal
/// intermediate formats that real model files do not use, so they are refused like any other id.
pub(crate) fn dtype_from_id(type_id: u32, tensor: &str) -> Result<GgmlDType> {
    Ok(match type_id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        30 => GgmlDType::BF16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        _ => {
            return Err(Error::model_load(format!(
                "tensor '{tensor}' has unsupported ggml type id {type_id} (supported: \
                 F32=0, F16=1, BF16=30, Q4_0=2, Q4_1=3, Q5_0=6, Q5_1=7, Q8_0=8, \
                 Q2_K=10, Q3_K=11, Q4_K=12, Q5_K=13, Q6_K=14)"
            )))
        }
    })
}

/// The inverse of [`dtype_from_id`], for writers and messages.
pub fn dtype_id(dtype: GgmlDType) -> u32 {
    match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::BF16 => 30,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
    }
}

/// Bytes a tensor of `dims` occupies, with every step checked: dims come straight from the file.
/// Blocks never straddle rows in ggml, so the row length (dims[0]) must be a multiple of the
/// block size.
pub(crate) fn byte_size(name: &str, dims: &[usize], dtype: GgmlDType) -> Result<usize> {
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
        for id in [0, 1, 30, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14] {
            assert_eq!(dtype_id(dtype_from_id(id, "t").unwrap()), id);
        }
        for id in [4, 5, 9, 15, 16, 29, 31, u32::MAX] {
            let e = dtype_from_id(id, "blk.0.x").unwrap_err();
            assert!(e.message.contains("blk.0.x") && e.message.contains(&id.to_string()));
        }
    }

    #[test]
    fn sizes_use_blocks() {
        // Q4_1: 32 elements per 20-byte block; Q8_0: 32 per 34; Q6_K: 256 per 210.
        assert_eq!(byte_size("t", &[64, 3], GgmlDType::Q4_1).unwrap(), 6 * 20);
        assert_eq!(byte_size("t", &[32], GgmlDType::Q8_0).unwrap(), 34);
        assert_eq!(byte_size("t", &[256, 2], GgmlDType::Q6K).unwrap(), 2 * 210);
        assert_eq!(byte_size("t", &[5, 7], GgmlDType::F32).unwrap(), 140);
    }

    #[test]
    fn partial_block_rows_and_overflow_are_rejected() {
        let e = byte_size("w", &[48, 2], GgmlDType::Q4_0).unwrap_err();
        assert!(e.message.contains("'w'") && e.message.contains("block size 32"));
        let e = byte_size("w", &[1 << 40, 1 << 40], GgmlDType::F32).unwrap_err();
        assert!(e.message.contains("overflow"), "{}", e.message);
        let e = byte_size("w", &[usize::MAX], GgmlDType::F32).unwrap_err();
        assert!(e.message.contains("overflow"), "{}", e.message);
    }
}
