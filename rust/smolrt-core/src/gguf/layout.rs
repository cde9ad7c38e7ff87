//! Where the tensor data lives: alignment, bounds and overlap of every tensor's byte range.

use super::tensor::TensorInfo;
use crate::{Error, Result};

/// Rounds `n` up to `alignment` (a power of two), or `None` on overflow.
pub(crate) fn align_up(n: usize, alignment: usize) -> Option<usize> {
    let mask = alignment - 1;
    n.checked_add(mask).map(|x| x & !mask)
}

/// Turns data-section-relative offsets into absolute ones and proves every tensor's bytes lie
/// inside the file, aligned, with no two tensors sharing bytes. Returns the data section start.
pub(crate) fn place_tensors(
    tensors: &mut [TensorInfo],
    header_end: usize,
    alignment: usize,
    file_size: usize,
) -> Result<usize> {
    let data_start = align_up(header_end, alignment).ok_or_else(|| {
        Error::model_load(format!(
            "data section start overflows (header ends at byte {header_end}, alignment {alignment})"
        ))
    })?;
    for t in tensors.iter_mut() {
        if t.offset % alignment != 0 {
            return Err(Error::model_load(format!(
                "tensor '{}' has data offset {} which is not a multiple of the alignment {alignment}",
                t.name, t.offset
            )));
        }
        let start = data_start.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.size_bytes));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_size => t.offset = start,
            _ => {
                return Err(Error::model_load(format!(
                    "truncated: tensor '{}' needs {} bytes at data offset {} (byte {}), but the \
                     file ends at byte {file_size}",
                    t.name,
                    t.size_bytes,
                    t.offset,
                    data_start as u128 + t.offset as u128
                )))
            }
        }
    }
    check_no_overlap(tensors)?;
    Ok(data_start)
}

fn check_no_overlap(tensors: &[TensorInfo]) -> Result<()> {
    let mut order: Vec<&TensorInfo> = tensors.iter().collect();
    order.sort_unstable_by_key(|t| t.offset);
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        // Bounds were checked above, so this addition cannot overflow.
        if a.offset + a.size_bytes > b.offset {
            return Err(Error::model_load(format!(
                "tensors '{}' (bytes {}..{}) and '{}' (bytes {}..{}) overlap",
                a.name,
                a.offset,
                a.offset + a.size_bytes,
                b.name,
                b.offset,
                b.offset + b.size_bytes
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::TensorType;

    fn t(name: &str, offset: usize, size: usize) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            dims: vec![size / 4],
            dtype: TensorType::F32,
            offset,
            size_bytes: size,
        }
    }

    #[test]
    fn align_up_rounds_and_detects_overflow() {
        assert_eq!(align_up(0, 32), Some(0));
        assert_eq!(align_up(33, 32), Some(64));
        assert_eq!(align_up(64, 32), Some(64));
        assert_eq!(align_up(usize::MAX, 32), None);
    }

    #[test]
    fn places_tensors_after_aligned_header() {
        let mut ts = vec![t("a", 0, 64), t("b", 64, 32)];
        let start = place_tensors(&mut ts, 40, 32, 64 + 96).unwrap();
        assert_eq!(start, 64);
        assert_eq!((ts[0].offset, ts[1].offset), (64, 128));
    }

    #[test]
    fn rejects_misaligned_out_of_bounds_and_overlap() {
        let e = place_tensors(&mut [t("a", 8, 4)], 0, 32, 100).unwrap_err();
        assert!(e.message.contains("'a'") && e.message.contains("alignment"));
        let e = place_tensors(&mut [t("a", 32, 4)], 0, 32, 35).unwrap_err();
        assert!(e.message.contains("truncated") && e.message.contains("'a'"));
        let e = place_tensors(&mut [t("a", usize::MAX - 31, 4)], 64, 32, 100).unwrap_err();
        assert!(e.message.contains("'a'"), "{}", e.message);
        let e = place_tensors(&mut [t("a", 0, 64), t("b", 32, 4)], 0, 32, 100).unwrap_err();
        assert!(e.message.contains("overlap"), "{}", e.message);
    }
}
