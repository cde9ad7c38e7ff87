//! The number format of cached keys and values. Attention reads the cache once per position per
//! step, so at batch sizes above one its cost is the bytes it reads: f16 (the default, as in
//! llama.cpp) halves them and doubles the context a memory budget holds; f32 keeps the
//! activations' exact values (and their range: f16 overflows past ±65504); q8 halves f16 again:
//! each position's key (and value) vector of each kv head is stored as signed bytes with one f32
//! scale (its largest magnitude ÷ 127), like ggml's q8_0 with one block per head vector.

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
    Q8,
}

impl KvType {
    /// Bytes of one cached element.
    pub fn size(self) -> usize {
        match self {
            KvType::F16 => 2,
            KvType::F32 => 4,
            KvType::Q8 => 1,
        }
    }

    /// Bytes of the scale each cached head vector carries besides its elements (none for the
    /// float types).
    pub fn scale_size(self) -> usize {
        match self {
            KvType::Q8 => 4,
            KvType::F16 | KvType::F32 => 0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KvType::F16 => "f16",
            KvType::F32 => "f32",
            KvType::Q8 => "q8",
        }
    }

    /// `"f16"`, `"f32"` or `"q8"` (any case); anything else is `InvalidRequest`.
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "f16" => Ok(KvType::F16),
            "f32" => Ok(KvType::F32),
            "q8" => Ok(KvType::Q8),
            _ => Err(Error::invalid_request(format!(
                "unknown KV cache type {name:?}: use \"f16\", \"f32\" or \"q8\""
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
    /// The bytes, and one scale per head vector (`elements / head_dim` of them).
    Q8(Vec<i8>, Vec<f32>),
}

impl KvStore {
    /// `n` zeros (and `n / head_dim` zero scales for q8), backed by huge pages where the OS has
    /// them (advised before any is written; the pages are still committed only as blocks are
    /// first written).
    pub(crate) fn zeroed(kind: KvType, n: usize, head_dim: usize) -> Self {
        let store = match kind {
            KvType::F16 => KvStore::F16(vec![0; n]),
            KvType::F32 => KvStore::F32(vec![0.0; n]),
            KvType::Q8 => KvStore::Q8(vec![0; n], vec![0.0; n / head_dim]),
        };
        match &store {
            KvStore::F16(v) => huge_pages::advise(v),
            KvStore::F32(v) => huge_pages::advise(v),
            KvStore::Q8(v, scales) => {
                huge_pages::advise(v);
                huge_pages::advise(scales);
            }
        }
        store
    }

    pub(crate) fn kind(&self) -> KvType {
        match self {
            KvStore::F16(_) => KvType::F16,
            KvStore::F32(_) => KvType::F32,
            KvStore::Q8(..) => KvType::Q8,
        }
    }

    /// The head vectors' scales (empty for the float types).
    pub(crate) fn scales(&self) -> &[f32] {
        match self {
            KvStore::Q8(_, scales) => scales,
            KvStore::F16(_) | KvStore::F32(_) => &[],
        }
    }

    /// Hints in the cache lines of elements `start..start + len`.
    pub(crate) fn prefetch(&self, start: usize, len: usize) {
        match self {
            KvStore::F16(v) => crate::arch::prefetch(v, start, len),
            KvStore::F32(v) => crate::arch::prefetch(v, start, len),
            KvStore::Q8(v, _) => crate::arch::prefetch(v, start, len),
        }
    }
}

/// An element type a pool can store: converted from the activations on write, to f32 on read.
pub(crate) trait KvElement: Copy + Default + Send + Sync + 'static {
    /// Whether each head vector's elements are multiples of its scale (the store's `scales`)
    /// rather than the values themselves.
    const SCALED: bool = false;
    /// The nearest element to `x` (for a scaled type, to `x` in units of the scale).
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
            KvStore::F16(_) | KvStore::Q8(..) => None,
        }
    }
    fn elements_mut(store: &mut KvStore) -> Option<&mut [Self]> {
        match store {
            KvStore::F32(v) => Some(v),
            KvStore::F16(_) | KvStore::Q8(..) => None,
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
            KvStore::F32(_) | KvStore::Q8(..) => None,
        }
    }
    fn elements_mut(store: &mut KvStore) -> Option<&mut [Self]> {
        match store {
            KvStore::F16(v) => Some(v.reinterpret_cast_mut()),
            KvStore::F32(_) | KvStore::Q8(..) => None,
        }
    }
}

impl KvElement for i8 {
    const SCALED: bool = true;
    /// Rounded to the nearest integer (halves away from zero) within ±127: the caller divides
    /// by the vector's scale first, so only rounding error (at most half a step) is lost.
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x.round().clamp(-127.0, 127.0) as i8
    }
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn elements(store: &KvStore) -> Option<&[Self]> {
        match store {
            KvStore::Q8(v, _) => Some(v),
            KvStore::F16(_) | KvStore::F32(_) => None,
        }
    }
    fn elements_mut(store: &mut KvStore) -> Option<&mut [Self]> {
        match store {
            KvStore::Q8(v, _) => Some(v),
            KvStore::F16(_) | KvStore::F32(_) => None,
        }
    }
}

/// The scale that `x` (one head vector) is stored with as q8: its largest magnitude ÷ 127, so
/// that magnitude maps to ±127 exactly (0 for a vector of zeros).
pub(crate) fn q8_scale(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0
}

/// `x` in units of `scale` (from [`q8_scale`] over its vector), rounded; 0 for a zero scale.
#[inline]
pub(crate) fn q8_of(x: f32, scale: f32) -> i8 {
    if scale > 0.0 {
        i8::from_f32(x / scale)
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_invalid_requests() {
        for t in [KvType::F16, KvType::F32, KvType::Q8] {
            assert_eq!(KvType::parse(t.name()).unwrap(), t);
            assert_eq!(KvType::parse(&t.name().to_uppercase()).unwrap(), t);
        }
        assert_eq!(KvType::parse("Q8").unwrap().name(), "q8");
        let err = KvType::parse("q4_0").unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::InvalidRequest);
        assert!(err.to_string().contains("q4_0"), "{err}");
    }

    #[test]
    fn q8_maps_each_vectors_largest_magnitude_to_127_and_rounds_the_rest() {
        let x = [0.5f32, -2.54, 1.0, 0.0, 2.0, -0.009];
        let scale = q8_scale(&x);
        assert_eq!(scale, 2.54 / 127.0);
        let q: Vec<i8> = x.iter().map(|&v| q8_of(v, scale)).collect();
        assert_eq!(q, [25, -127, 50, 0, 100, 0]);
        for (&v, &q) in x.iter().zip(&q) {
            assert!(
                (v - q as f32 * scale).abs() <= scale / 2.0 * 1.0001,
                "{v} -> {q}"
            );
        }
        // a vector of zeros stores zeros with a zero scale, never a division by zero
        assert_eq!(q8_scale(&[0.0; 4]), 0.0);
        assert_eq!(q8_of(0.0, 0.0), 0);
        // rounding past ±127 (a value a hair above the vector's maximum) is clamped
        assert_eq!(i8::from_f32(127.6), 127);
        assert_eq!(i8::from_f32(-300.0), -127);
    }
}
