//! The number format of cached keys and values. Attention reads the cache once per position per
//! step, so at batch sizes above one its cost is the bytes it reads: f16 (the default, as in
//! llama.cpp) halves them and doubles the context a memory budget holds; f32 keeps the
//! activations' exact values (and their range: f16 overflows past ±65504).

use half::f16;
use half::slice::HalfBitsSliceExt;

use crate::arch::huge_pages;
use crate::{Error, Result};

/// Which format a pool stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvType {
    #[default]
    F16,
    F32,
}

impl KvType {
    /// Bytes of one cached element.
    pub fn size(self) -> usize {
        match self {
            KvType::F16 => 2,
            KvType::F32 => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
        }
    }

    /// `"f16"` or `"f32"` (any case); anything else is `InvalidRequest`.
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "f16" => Ok(KvType::F16),
            "f32" => Ok(KvType::F32),
            _ => Err(Error::invalid_request(format!(
                "unknown KV cache type {name:?}: use \"f16\" or \"f32\""
            ))),
        }
    }
}

/// A pool's storage for keys or for values, in its one format. Halves are kept as their bits:
/// `vec![0u16; n]`, like `vec![0f32; n]`, becomes a zeroed allocation the OS commits lazily (so an
/// unused budget costs address space, not resident memory), where `vec![f16::ZERO; n]` would
/// write, and so commit, every page up front.
pub(crate) enum KvStore {
    F16(Vec<u16>),
    F32(Vec<f32>),
}

impl KvStore {
    /// `n` zeros, backed by huge pages where the OS has them (advised before any is written;
    /// the pages are still committed only as blocks are first written).
    pub(crate) fn zeroed(kind: KvType, n: usize) -> Self {
        let store = match kind {
            KvType::F16 => KvStore::F16(vec![0; n]),
            KvType::F32 => KvStore::F32(vec![0.0; n]),
        };
        match &store {
            KvStore::F16(v) => huge_pages::advise(v),
            KvStore::F32(v) => huge_pages::advise(v),
        }
        store
    }

    pub(crate) fn kind(&self) -> KvType {
        match self {
            KvStore::F16(_) => KvType::F16,
            KvStore::F32(_) => KvType::F32,
        }
    }

    /// Hints in the cache lines of elements `start..start + len`.
    pub(crate) fn prefetch(&self, start: usize, len: usize) {
        match self {
            KvStore::F16(v) => crate::arch::prefetch(v, start, len),
            KvStore::F32(v) => crate::arch::prefetch(v, start, len),
        }
    }
}

/// An element type a pool can store: converted from the activations on write, to f32 on read.
pub(crate) trait KvElement: Copy + Default + Send + Sync + 'static {
    fn from_f32(x: f32) -> Self;
    fn to_f32(self) -> f32;
    /// The store's elements if it holds this type.
    fn elements(store: &KvStore) -> Option<&[Self]>;
    fn elements_mut(store: &mut KvStore) -> Option<&mut [Self]>;
}

impl KvElement for f32 {
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    fn elements(store: &KvStore) -> Option<&[Self]> {
        match store {
            KvStore::F32(v) => Some(v),
            KvStore::F16(_) => None,
        }
    }
    fn elements_mut(store: &mut KvStore) -> Option<&mut [Self]> {
        match store {
            KvStore::F32(v) => Some(v),
            KvStore::F16(_) => None,
        }
    }
}

impl KvElement for f16 {
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn elements(store: &KvStore) -> Option<&[Self]> {
        match store {
            KvStore::F16(v) => Some(v.reinterpret_cast()),
            KvStore::F32(_) => None,
        }
    }
    fn elements_mut(store: &mut KvStore) -> Option<&mut [Self]> {
        match store {
            KvStore::F16(v) => Some(v.reinterpret_cast_mut()),
            KvStore::F32(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_invalid_requests() {
        for t in [KvType::F16, KvType::F32] {
            assert_eq!(KvType::parse(t.name()).unwrap(), t);
            assert_eq!(KvType::parse(&t.name().to_uppercase()).unwrap(), t);
        }
        let err = KvType::parse("q8_0").unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::InvalidRequest);
        assert!(err.to_string().contains("q8_0"), "{err}");
    }
}
