//! Vocab-wide numeric kernels: the exponential, maxima, argmax and sums (the dense weights built
//! from them are in `dense.rs`).
//!
//! These loops touch every one of 49k-150k logits per token, and libm's scalar `expf` made them
//! the sampler's main cost. So: a polynomial `exp` the compiler can vectorise, maxima and sums
//! in 8 independent lanes (vectorisable, unlike one serial reduction), sums over 64-element
//! chunks accumulated in f64 so long vocabularies do not drift.

/// Elements per chunk: small enough that an f32 sum inside it stays accurate (~1e-6 relative).
pub(crate) const CHUNK: usize = 64;
const LANES: usize = 8;

/// `exp(x)` to about 2e-7 relative error; exactly 1 at 0; 0 for NaN, `-inf` and anything below
/// -87 (where f32 goes subnormal). Cephes' `expf` scheme: `x = n ln2 + r`, `|r| <= ln2 / 2`,
/// `exp(x) = 2^n p(r)`. Branch-free so that loops over it vectorise.
///
/// The steps are fused multiply-adds (`mul_add`: one rounding each, so the same bits on every
/// platform; x86-64 builds have FMA, see .cargo/config.toml), where separate multiplies and
/// adds took twice the instructions and made each lane's chain twice as long: a draw over
/// 49,152 logits went from 47 to 37 us.
#[inline(always)]
pub(crate) fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so `n * LN2_HI` is exact and r keeps its low bits.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to an integer that then sits in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    const SHIFTER_BITS: u32 = 0x4B40_0000;
    const LOWEST: f32 = -87.0;

    let xc = x.clamp(LOWEST, 88.0);
    let t = xc.mul_add(LOG2E, SHIFTER);
    let n = t - SHIFTER;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, xc));
    let mut p: f32 = 1.987_569_1e-4;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 0.166_666_65);
    p = p.mul_add(r, 0.5);
    let poly = (p * r).mul_add(r, r) + 1.0;
    // 2^n built directly in the exponent field; n is in [-126, 127] thanks to the clamp.
    let scale = f32::from_bits(t.to_bits().wrapping_sub(SHIFTER_BITS).wrapping_add(127) << 23);
    // Written as `>=` so NaN takes the zero branch too.
    if x >= LOWEST {
        poly * scale
    } else {
        0.0
    }
}

/// The softmax weight of `logit` at `temperature`, relative to the maximum logit `max`:
/// the maximum gets exactly 1. Temperature divides after the shift, so tiny temperatures give
/// `exp(-inf) = 0` for the rest instead of overflowing logits to `±inf`.
#[inline(always)]
pub(crate) fn weight(logit: f32, max: f32, temperature: f32) -> f32 {
    exp_approx((logit - max) / temperature)
}

/// [`weight`], also for a `+inf` maximum: then the `+inf` logits share all the mass (weight 1
/// each) and every other token gets 0, where plain arithmetic would give NaN.
#[inline]
pub(crate) fn weight_any(logit: f32, max: f32, temperature: f32) -> f32 {
    if max == f32::INFINITY {
        f32::from(u8::from(logit == f32::INFINITY))
    } else {
        weight(logit, max, temperature)
    }
}

/// Largest logit, ignoring NaN; `-inf` when there is none.
pub(crate) fn max_logit(logits: &[f32]) -> f32 {
    // `x > m ? x : m` is exactly the hardware max, and leaves m alone when x is NaN.
    let keep_larger = |m: f32, x: f32| if x > m { x } else { m };
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut groups = logits.chunks_exact(LANES);
    for group in &mut groups {
        for (m, &x) in lanes.iter_mut().zip(group) {
            *m = keep_larger(*m, x);
        }
    }
    let lanes_max = lanes.into_iter().fold(f32::NEG_INFINITY, keep_larger);
    groups
        .remainder()
        .iter()
        .copied()
        .fold(lanes_max, keep_larger)
}

/// Index of the largest logit, ties to the lowest id; `None` when none is above `-inf`
/// (NaN never wins). Two cheap passes beat one that tracks an index per element.
pub(crate) fn argmax(logits: &[f32]) -> Option<u32> {
    let max = max_logit(logits);
    if max == f32::NEG_INFINITY {
        return None;
    }
    logits.iter().position(|&x| x == max).map(|i| i as u32)
}

/// Sum of at most [`CHUNK`] values in [`LANES`] independent accumulators.
#[inline]
pub(crate) fn chunk_sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut groups = values.chunks_exact(LANES);
    for group in &mut groups {
        for (acc, &v) in lanes.iter_mut().zip(group) {
            *acc += v;
        }
    }
    let tail: f32 = groups.remainder().iter().sum();
    lanes.iter().sum::<f32>() + tail
}

/// `sum(exp(x - max))` over all logits without storing the terms (NaN/`-inf` count as 0).
pub(crate) fn sum_exp(logits: &[f32], max: f32) -> f64 {
    let mut buf = [0.0f32; CHUNK];
    logits
        .chunks(CHUNK)
        .map(|c| {
            let terms = &mut buf[..c.len()];
            for (t, &l) in terms.iter_mut().zip(c) {
                *t = exp_approx(l - max);
            }
            f64::from(chunk_sum(terms))
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_ties_and_nan() {
        assert_eq!(argmax(&[1.0, 3.0, f32::NAN, 3.0]), Some(1));
        assert_eq!(argmax(&[f32::NAN, f32::NEG_INFINITY]), None);
        assert_eq!(argmax(&[]), None);
        assert_eq!(argmax(&[f32::NEG_INFINITY, f32::INFINITY]), Some(1));
        // Long enough to use the lanes and the remainder.
        let mut v: Vec<f32> = (0..1003).map(|i| (i % 50) as f32).collect();
        v[1001] = 60.0;
        v[17] = f32::NAN;
        assert_eq!(argmax(&v), Some(1001));
        v[1001] = 0.0;
        assert_eq!(argmax(&v), Some(49));
    }

    #[test]
    fn exp_approx_is_accurate() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = f64::from(x).exp();
            let got = f64::from(exp_approx(x));
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp_approx(0.0), 1.0);
        assert_eq!(exp_approx(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_approx(f32::NAN), 0.0);
        assert_eq!(exp_approx(-100.0), 0.0);
    }

    #[test]
    fn sum_exp_is_accurate() {
        let logits: Vec<f32> = (0..1000).map(|i| (i % 17) as f32 * 0.3 - 2.0).collect();
        let max = 16.0 * 0.3 - 2.0;
        let want: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
        assert!((sum_exp(&logits, max) - want).abs() < 1e-3);
    }
}
