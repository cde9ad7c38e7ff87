//! Sixteen f32 lanes held in registers: the accumulators and the softmax of attention's inner
//! loops, and SwiGLU. Written with AVX2 intrinsics where the build has them because the auto-vectorizer,
//! given the same loops over `[f32; 16]`, sometimes kept the sums on the stack or fell back to
//! scalar code. Every implementation does the same operations per lane (fused where one is
//! fused, the same reduction tree, the same exp polynomial), so they give the same bits.

pub(crate) const LANES: usize = 16;

use half::f16;

pub(crate) use lanes16::Lanes16;

use crate::kv::KvElement;

/// A cached key/value element type that attention loads 16 at a time into f32 lanes (f16 is
/// widened exactly, so both types run the same arithmetic on the values they hold).
pub(crate) trait LaneSource: KvElement {
    fn lanes<L: Lanes>(x: &[Self]) -> L;
}

impl LaneSource for f32 {
    #[inline(always)]
    fn lanes<L: Lanes>(x: &[f32]) -> L {
        L::load(x)
    }
}

impl LaneSource for f16 {
    #[inline(always)]
    fn lanes<L: Lanes>(x: &[f16]) -> L {
        L::load_f16(x)
    }
}

impl LaneSource for i8 {
    #[inline(always)]
    fn lanes<L: Lanes>(x: &[i8]) -> L {
        L::load_i8(x)
    }
}

/// Sixteen f32 lanes of some instruction set. Implementations do the same IEEE operation per
/// lane for each method (the same fused multiply-adds, the same exp steps), so generic code
/// gives the same bits with any of them; reductions go through `to_array` and one fixed tree.
pub(crate) trait Lanes: Copy {
    fn zero() -> Self;
    /// Every lane `x`.
    fn splat(x: f32) -> Self;
    /// The first 16 values of `x`.
    fn load(x: &[f32]) -> Self;
    /// The first 16 values of `x`, widened to f32 (exact).
    fn load_f16(x: &[f16]) -> Self;
    /// The first 16 values of `x` as f32 (exact).
    fn load_i8(x: &[i8]) -> Self;
    fn to_array(self) -> [f32; LANES];
    /// `self[l] = w · x[l] + self[l]`, one fused multiply-add per lane.
    fn fma_with(&mut self, w: f32, x: Self);
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
    fn div(self, other: Self) -> Self;
    /// Lane-wise maximum, with `maxps` semantics: `self` only where it is strictly greater.
    fn max(self, other: Self) -> Self;
    /// `e^x` per lane for `x <= 0` (softmax arguments), as [`exp_lane`] computes it.
    fn exp_nonpositive(self) -> Self;

    /// Sum of the lanes, in `reduce`'s fixed order.
    #[inline(always)]
    fn sum(self) -> f32 {
        reduce(self.to_array(), |a, b| a + b)
    }

    /// Largest lane, with `max`'s semantics.
    #[inline(always)]
    fn max_lane(self) -> f32 {
        reduce(self.to_array(), |a, b| if a > b { a } else { b })
    }
}

/// The 16 lanes reduced pairwise in a fixed tree: l and l+8, then l and l+4, l+2, l+1.
#[inline(always)]
fn reduce(a: [f32; LANES], op: impl Fn(f32, f32) -> f32) -> f32 {
    let s8: [f32; 8] = std::array::from_fn(|l| op(a[l], a[l + 8]));
    let s4: [f32; 4] = std::array::from_fn(|l| op(s8[l], s8[l + 4]));
    let s2: [f32; 2] = std::array::from_fn(|l| op(s4[l], s4[l + 2]));
    op(s2[0], s2[1])
}

/// AVX2: two 8-lane registers.
// SAFETY (whole module): compiled only when the build enables avx2 and fma, so every intrinsic
// is available; loads and stores touch 16 values of slices sliced to hold them.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
mod lanes16 {
    use std::arch::x86_64::*;

    use half::f16;

    use super::{exp, Lanes, LANES};

    #[derive(Clone, Copy)]
    pub(crate) struct Lanes16([__m256; 2]);

    impl Lanes16 {
        #[inline(always)]
        fn zip(self, other: Self, f: impl Fn(__m256, __m256) -> __m256) -> Self {
            Self([f(self.0[0], other.0[0]), f(self.0[1], other.0[1])])
        }
    }

    impl Lanes for Lanes16 {
        #[inline(always)]
        fn zero() -> Self {
            Self(unsafe { [_mm256_setzero_ps(); 2] })
        }

        #[inline(always)]
        fn splat(x: f32) -> Self {
            Self(unsafe { [_mm256_set1_ps(x); 2] })
        }

        #[inline(always)]
        fn load(x: &[f32]) -> Self {
            let x = &x[..LANES];
            Self(unsafe {
                [
                    _mm256_loadu_ps(x.as_ptr()),
                    _mm256_loadu_ps(x.as_ptr().add(8)),
                ]
            })
        }

        #[inline(always)]
        fn load_f16(x: &[f16]) -> Self {
            let x = &x[..LANES];
            // The build enables f16c beside avx2 (.cargo/config.toml); without it, widen
            // lane by lane (same values: the conversion is exact).
            #[cfg(target_feature = "f16c")]
            let halves = unsafe {
                let p = x.as_ptr() as *const __m128i;
                [
                    _mm256_cvtph_ps(_mm_loadu_si128(p)),
                    _mm256_cvtph_ps(_mm_loadu_si128(p.add(1))),
                ]
            };
            #[cfg(not(target_feature = "f16c"))]
            let halves = unsafe {
                let wide: [f32; LANES] = std::array::from_fn(|l| x[l].to_f32());
                [
                    _mm256_loadu_ps(wide.as_ptr()),
                    _mm256_loadu_ps(wide.as_ptr().add(8)),
                ]
            };
            Self(halves)
        }

        #[inline(always)]
        fn load_i8(x: &[i8]) -> Self {
            let x = &x[..LANES];
            Self(unsafe {
                let p = x.as_ptr() as *const __m128i;
                [
                    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p))),
                    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(
                        p.cast::<u8>().add(8).cast(),
                    ))),
                ]
            })
        }

        #[inline(always)]
        fn to_array(self) -> [f32; LANES] {
            let mut out = [0f32; LANES];
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), self.0[0]);
                _mm256_storeu_ps(out.as_mut_ptr().add(8), self.0[1]);
            }
            out
        }

        #[inline(always)]
        fn fma_with(&mut self, w: f32, x: Self) {
            let w = unsafe { _mm256_set1_ps(w) };
            *self = x.zip(*self, |x, acc| unsafe { _mm256_fmadd_ps(w, x, acc) });
        }

        #[inline(always)]
        fn add(self, other: Self) -> Self {
            self.zip(other, |a, b| unsafe { _mm256_add_ps(a, b) })
        }

        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            self.zip(other, |a, b| unsafe { _mm256_sub_ps(a, b) })
        }

        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            self.zip(other, |a, b| unsafe { _mm256_mul_ps(a, b) })
        }

        #[inline(always)]
        fn div(self, other: Self) -> Self {
            self.zip(other, |a, b| unsafe { _mm256_div_ps(a, b) })
        }

        #[inline(always)]
        fn max(self, other: Self) -> Self {
            self.zip(other, |a, b| unsafe { _mm256_max_ps(a, b) })
        }

        #[inline(always)]
        fn exp_nonpositive(self) -> Self {
            Self(self.0.map(|x| unsafe { exp8(x) }))
        }
    }

    /// `exp_lane` on 8 lanes, step for step.
    #[inline(always)]
    unsafe fn exp8(x: __m256) -> __m256 {
        let n = _mm256_round_ps(
            _mm256_mul_ps(x, _mm256_set1_ps(exp::LOG2E)),
            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC,
        );
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-exp::LN2_HI), x);
        let r = _mm256_fmadd_ps(n, _mm256_set1_ps(-exp::LN2_LO), r);
        let mut y = _mm256_set1_ps(exp::P[0]);
        for &c in &exp::P[1..] {
            y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
        }
        y = _mm256_fmadd_ps(
            y,
            _mm256_mul_ps(r, r),
            _mm256_add_ps(r, _mm256_set1_ps(1.0)),
        );
        let scale = _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
            23,
        ));
        let keep = _mm256_cmp_ps(x, _mm256_set1_ps(exp::FLOOR), _CMP_GE_OQ);
        _mm256_and_ps(_mm256_mul_ps(y, scale), keep)
    }
}

/// Portable: sixteen f32s, one operation per lane.
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
)))]
mod lanes16 {
    use half::f16;

    use super::{exp_lane, Lanes, LANES};

    #[derive(Clone, Copy)]
    pub(crate) struct Lanes16([f32; LANES]);

    impl Lanes16 {
        #[inline(always)]
        fn zip(self, other: Self, f: impl Fn(f32, f32) -> f32) -> Self {
            Self(std::array::from_fn(|l| f(self.0[l], other.0[l])))
        }
    }

    impl Lanes for Lanes16 {
        #[inline(always)]
        fn zero() -> Self {
            Self([0.0; LANES])
        }

        #[inline(always)]
        fn splat(x: f32) -> Self {
            Self([x; LANES])
        }

        #[inline(always)]
        fn load(x: &[f32]) -> Self {
            let x = &x[..LANES];
            Self(std::array::from_fn(|l| x[l]))
        }

        #[inline(always)]
        fn load_f16(x: &[f16]) -> Self {
            let x = &x[..LANES];
            Self(std::array::from_fn(|l| x[l].to_f32()))
        }

        #[inline(always)]
        fn load_i8(x: &[i8]) -> Self {
            let x = &x[..LANES];
            Self(std::array::from_fn(|l| x[l] as f32))
        }

        #[inline(always)]
        fn to_array(self) -> [f32; LANES] {
            self.0
        }

        #[inline(always)]
        fn fma_with(&mut self, w: f32, x: Self) {
            *self = x.zip(*self, |x, acc| w.mul_add(x, acc));
        }

        #[inline(always)]
        fn add(self, other: Self) -> Self {
            self.zip(other, |a, b| a + b)
        }

        #[inline(always)]
        fn sub(self, other: Self) -> Self {
            self.zip(other, |a, b| a - b)
        }

        #[inline(always)]
        fn mul(self, other: Self) -> Self {
            self.zip(other, |a, b| a * b)
        }

        #[inline(always)]
        fn div(self, other: Self) -> Self {
            self.zip(other, |a, b| a / b)
        }

        #[inline(always)]
        fn max(self, other: Self) -> Self {
            self.zip(other, |a, b| if a > b { a } else { b })
        }

        #[inline(always)]
        fn exp_nonpositive(self) -> Self {
            Self(self.0.map(exp_lane))
        }
    }
}

pub(crate) mod exp {
    pub(crate) const LOG2E: f32 = std::f32::consts::LOG2_E;
    pub(crate) const LN2_HI: f32 = 0.693_359_4;
    pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
    /// Cephes' expf polynomial, highest degree first.
    pub(crate) const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ];
    /// Below this `e^x` leaves f32's normal range; softmax weights there are taken as zero.
    pub(crate) const FLOOR: f32 = -87.0;
}

/// `e^x` for `x <= 0`: 0 below -87, else `2^n · p(r)` with `n = round(x·log2 e)`, `r = x - n·ln 2`
/// in two fused steps and Cephes' degree-5 polynomial for `e^r` (about 2 ulp). The SIMD version
/// runs these exact operations lane by lane; a loop of plain calls vectorizes as it is.
#[cfg_attr(
    all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        not(test)
    ),
    allow(dead_code)
)]
pub(crate) fn exp_lane(x: f32) -> f32 {
    if x.is_nan() || x < exp::FLOOR {
        return 0.0;
    }
    let n = (x * exp::LOG2E).round_ties_even();
    let r = n.mul_add(-exp::LN2_HI, x);
    let r = n.mul_add(-exp::LN2_LO, r);
    let mut y = exp::P[0];
    for &c in &exp::P[1..] {
        y = y.mul_add(r, c);
    }
    y = y.mul_add(r * r, r + 1.0);
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_close_to_libm_and_zero_below_the_floor() {
        let mut worst = 0f32;
        let mut x = -90.0f32;
        while x <= 0.0 {
            let xs: [f32; LANES] = std::array::from_fn(|l| x - l as f32 * 1e-3);
            let got = Lanes16::load(&xs).exp_nonpositive().to_array();
            for (&g, &v) in got.iter().zip(&xs) {
                assert_eq!(
                    g.to_bits(),
                    exp_lane(v).to_bits(),
                    "lanes and exp_lane at {v}"
                );
                if v < -87.0 {
                    assert_eq!(g, 0.0, "e^{v}");
                } else {
                    let want = v.exp();
                    worst = worst.max((g - want).abs() / want);
                }
            }
            x += 0.0137;
        }
        assert!(worst < 3e-7, "relative error {worst}");
        let one = Lanes16::splat(0.0).exp_nonpositive().to_array();
        assert_eq!(one, [1.0; LANES]);
        let minus_inf = Lanes16::splat(f32::NEG_INFINITY)
            .exp_nonpositive()
            .to_array();
        assert_eq!(minus_inf, [0.0; LANES]);
    }

    #[test]
    fn reductions_follow_the_fixed_tree() {
        let xs: [f32; LANES] = std::array::from_fn(|l| (l as f32 - 7.5) * 1.25);
        let v = Lanes16::load(&xs);
        assert_eq!(v.max_lane(), 9.375);
        let s8: Vec<f32> = (0..8).map(|l| xs[l] + xs[l + 8]).collect();
        let s4: Vec<f32> = (0..4).map(|l| s8[l] + s8[l + 4]).collect();
        assert_eq!(v.sum(), (s4[0] + s4[2]) + (s4[1] + s4[3]));
        let m = v.max(Lanes16::splat(0.0)).to_array();
        assert_eq!(m[0], 0.0);
        assert_eq!(m[15], xs[15]);
    }
}
