//! The panel kernels of the nibble types (Q4_0, Q5_0, Q5_1, IQ4_NL; see `nibbles`) in AVX-512
//! VNNI and AVX2. Both compute, per lane and block, the exact integer Σ q_w·q_a over the
//! unsigned quants (|sum| ≤ 32·31·127 < 2^24, so converting it is exact) or over the IQ4
//! grid's levels (|sum| ≤ 32·127·127 < 2^24), take `offset · Σ q_a` back out for the types
//! with an offset, and apply the fused multiply-adds of `nibbles::dot_scalar`.
//!
//! SAFETY (whole module): each function is compiled for the features it names and may only be
//! called on a CPU that has them (`isa` checks); every activation slice holds one block per
//! panel (the dispatcher asserts it). Panels are only 32-byte aligned: the AVX-512 loads are
//! unaligned, the AVX2 ones (at offsets 64k + 32·half) aligned.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::act_blocks::ActBlock;
use super::nibbles::{NibblePanel, IQ4_GRID};
use super::panels::PANEL;
use super::simd::prefetch_ahead;

/// The IQ4 grid's levels plus 128, as unsigned bytes (1..=241) for `vpdpbusd`, in every
/// 128-bit lane for `vpshufb`.
#[inline(always)]
unsafe fn biased_grid_512() -> __m512i {
    let biased: [u8; 16] = std::array::from_fn(|i| (i16::from(IQ4_GRID[i]) + 128) as u8);
    _mm512_broadcast_i32x4(_mm_loadu_si128(biased.as_ptr() as *const __m128i))
}

/// The integer sums of one 32-value block of 16 rows against `R` activation blocks, one row per
/// lane: Σ q_w·q_a, or Σ IQ4_GRID[q_w]·q_a with `grid`. Its 256 nibble bytes are at `qs` as
/// `nibbles` lays them out, and for a 5-bit type its fifth-bit masks (`qh`: four for the low
/// nibbles, four for the high), each adding 16 to the bytes it marks (one masked add per 64
/// unpacked bytes). The grid's levels go through `vpshufb` biased by 128 to unsigned bytes,
/// whose sum Σ (level + 128)·q_a (< 32·241·127 < 2^20) loses the bias exactly afterwards. The
/// nibble types' kernels and the K-quants' (`q4_k_simd`) share it.
#[inline(always)]
pub(super) unsafe fn block_sums_avx512<const R: usize>(
    qs: *const u8,
    qh: Option<&[u64; 8]>,
    grid: bool,
    acts: [&ActBlock; R],
) -> [__m512i; R] {
    let nibble = _mm512_set1_epi8(0x0F);
    let sixteen = _mm512_set1_epi8(0x10);
    let biased = biased_grid_512();
    let mut isum = [_mm512_setzero_si512(); R];
    for k in 0..4 {
        let packed = _mm512_loadu_si512(qs.add(64 * k) as *const __m512i);
        let mut lo = _mm512_and_si512(packed, nibble);
        let mut hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), nibble);
        if let Some(qh) = qh {
            lo = _mm512_mask_add_epi8(lo, _cvtu64_mask64(qh[k]), lo, sixteen);
            hi = _mm512_mask_add_epi8(hi, _cvtu64_mask64(qh[4 + k]), hi, sixteen);
        }
        if grid {
            lo = _mm512_shuffle_epi8(biased, lo);
            hi = _mm512_shuffle_epi8(biased, hi);
        }
        for r in 0..R {
            let a = acts[r];
            isum[r] = _mm512_dpbusd_epi32(isum[r], lo, _mm512_set1_epi32(a.quad(4 * k)));
            isum[r] = _mm512_dpbusd_epi32(isum[r], hi, _mm512_set1_epi32(a.quad(16 + 4 * k)));
        }
    }
    if grid {
        for r in 0..R {
            isum[r] = _mm512_sub_epi32(isum[r], _mm512_set1_epi32(128 * acts[r].sum));
        }
    }
    isum
}

/// `block_sums_avx512` for 8 rows in AVX2 (`half` 0: panel rows 0..8, 1: rows 8..16; `qs` 32-byte
/// aligned). The products go through `vpmaddubsw` into i16 pairs (|pair| ≤ 2·31·127 = 7874),
/// summed in i16 over as many partial vectors as cannot overflow (eight of 4-bit quants: 30480;
/// four of 5-bit: 31496) before a widening `vpmaddwd`. The IQ4 grid's levels are signed, so
/// they multiply as |level| times the activation with the level's sign (`vpsignb`): a pair
/// reaches 2·127·127 = 32258, and each is widened at once.
#[inline(always)]
pub(super) unsafe fn block_sums_avx2<const R: usize>(
    qs: *const u8,
    qh: Option<&[u64; 8]>,
    grid: bool,
    half: usize,
    acts: [&ActBlock; R],
) -> [__m256i; R] {
    let nibble = _mm256_set1_epi8(0x0F);
    let ones = _mm256_set1_epi16(1);
    let levels = _mm256_broadcastsi128_si256(_mm_loadu_si128(IQ4_GRID.as_ptr() as *const __m128i));
    let mut isum = [_mm256_setzero_si256(); R];
    let mut sum16 = [_mm256_setzero_si256(); R];
    for k in 0..4 {
        let packed = _mm256_load_si256(qs.add(64 * k + 32 * half) as *const __m256i);
        let mut lo = _mm256_and_si256(packed, nibble);
        let mut hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), nibble);
        if grid {
            let (lo, hi) = (
                _mm256_shuffle_epi8(levels, lo),
                _mm256_shuffle_epi8(levels, hi),
            );
            let (lo_abs, hi_abs) = (_mm256_abs_epi8(lo), _mm256_abs_epi8(hi));
            for r in 0..R {
                let a = acts[r];
                let alo = _mm256_sign_epi8(_mm256_set1_epi32(a.quad(4 * k)), lo);
                let ahi = _mm256_sign_epi8(_mm256_set1_epi32(a.quad(16 + 4 * k)), hi);
                let plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo_abs, alo), ones);
                let phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi_abs, ahi), ones);
                isum[r] = _mm256_add_epi32(isum[r], _mm256_add_epi32(plo, phi));
            }
            continue;
        }
        if let Some(qh) = qh {
            let sixteen = _mm256_set1_epi8(0x10);
            let (lo_bits, hi_bits) = (
                (qh[k] >> (32 * half)) as u32,
                (qh[4 + k] >> (32 * half)) as u32,
            );
            lo = _mm256_or_si256(lo, _mm256_and_si256(marked_bytes(lo_bits), sixteen));
            hi = _mm256_or_si256(hi, _mm256_and_si256(marked_bytes(hi_bits), sixteen));
        }
        for r in 0..R {
            let a = acts[r];
            let plo = _mm256_maddubs_epi16(lo, _mm256_set1_epi32(a.quad(4 * k)));
            let phi = _mm256_maddubs_epi16(hi, _mm256_set1_epi32(a.quad(16 + 4 * k)));
            sum16[r] = _mm256_add_epi16(sum16[r], _mm256_add_epi16(plo, phi));
        }
        let widen = if qh.is_some() { k % 2 == 1 } else { k == 3 };
        if widen {
            for r in 0..R {
                isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(sum16[r], ones));
                sum16[r] = _mm256_setzero_si256();
            }
        }
    }
    isum
}

/// 16 lanes, one per panel row (`block_sums_avx512`), then the type's epilogue.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,fma,f16c")]
pub(super) unsafe fn dot_avx512<P: NibblePanel, const R: usize>(
    panels: &[P],
    acts: [&[ActBlock]; R],
    ahead: usize,
) -> [[f32; PANEL]; R] {
    let mut acc = [_mm512_setzero_ps(); R];
    for (i, p) in panels.iter().enumerate() {
        prefetch_ahead(p, ahead);
        let d = _mm512_cvtph_ps(_mm256_loadu_si256(p.d().as_ptr() as *const __m256i));
        let block: [&ActBlock; R] = std::array::from_fn(|r| acts[r].get_unchecked(i));
        let isum = block_sums_avx512(p.qs().as_ptr(), p.qh(), P::GRID, block);
        match p.m() {
            Some(m) => {
                let m = _mm512_cvtph_ps(_mm256_loadu_si256(m.as_ptr() as *const __m256i));
                for r in 0..R {
                    let a = acts[r].get_unchecked(i);
                    let scale = _mm512_mul_ps(d, _mm512_set1_ps(a.d));
                    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), scale, acc[r]);
                    acc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(a.s), acc[r]);
                }
            }
            None => {
                for r in 0..R {
                    let a = acts[r].get_unchecked(i);
                    let exact = _mm512_sub_epi32(isum[r], _mm512_set1_epi32(P::OFFSET * a.sum));
                    let scale = _mm512_mul_ps(d, _mm512_set1_ps(a.d));
                    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(exact), scale, acc[r]);
                }
            }
        }
    }
    let mut out = [[0f32; PANEL]; R];
    for r in 0..R {
        _mm512_storeu_ps(out[r].as_mut_ptr(), acc[r]);
    }
    out
}

/// 0xFF where bit `i` of `bits` is set, for byte `i` of 32: a bit mask over one 32-byte half
/// of the 64 bytes `nibbles` masks cover, as AVX2 has no masked byte add.
#[inline(always)]
pub(super) unsafe fn marked_bytes(bits: u32) -> __m256i {
    // every 128-bit lane holds all four bytes of `bits`: byte i takes byte i / 8 of them
    let spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32(bits as i32),
        _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3,
            3, 3, 3,
        ),
    );
    let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit)
}

/// Two passes of 8 lanes (panel rows 0..8, then 8..16; `block_sums_avx2`), then the type's
/// epilogue.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot_avx2<P: NibblePanel, const R: usize>(
    panels: &[P],
    acts: [&[ActBlock]; R],
    ahead: usize,
) -> [[f32; PANEL]; R] {
    let mut out = [[0f32; PANEL]; R];
    for half in 0..2 {
        let mut acc = [_mm256_setzero_ps(); R];
        for (i, p) in panels.iter().enumerate() {
            if half == 0 {
                prefetch_ahead(p, ahead);
            }
            let d = _mm256_cvtph_ps(_mm_loadu_si128(
                p.d().as_ptr().add(8 * half) as *const __m128i
            ));
            let block: [&ActBlock; R] = std::array::from_fn(|r| acts[r].get_unchecked(i));
            let isum = block_sums_avx2(p.qs().as_ptr(), p.qh(), P::GRID, half, block);
            let m = p.m().map(|m| {
                _mm256_cvtph_ps(_mm_loadu_si128(m.as_ptr().add(8 * half) as *const __m128i))
            });
            for r in 0..R {
                let a = acts[r].get_unchecked(i);
                let scale = _mm256_mul_ps(d, _mm256_set1_ps(a.d));
                match m {
                    Some(m) => {
                        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), scale, acc[r]);
                        acc[r] = _mm256_fmadd_ps(m, _mm256_set1_ps(a.s), acc[r]);
                    }
                    None => {
                        let offset = _mm256_set1_epi32(P::OFFSET * a.sum);
                        let exact = _mm256_sub_epi32(isum[r], offset);
                        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(exact), scale, acc[r]);
                    }
                }
            }
        }
        for r in 0..R {
            _mm256_storeu_ps(out[r].as_mut_ptr().add(8 * half), acc[r]);
        }
    }
    out
}
