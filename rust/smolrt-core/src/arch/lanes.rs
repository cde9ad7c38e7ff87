//! Sixteen f32 lanes held in registers: the accumulators and the softmax of attention's inner
//! loops. Written with AVX2 intrinsics where the build has them because the auto-vectorizer,
//! given the same loops over `[f32; 16]`, sometimes kept the sums on the stack or fell back to
//! scalar code. Both versions do the same operations per lane (fused where one is fused, the
//! same reduction tree, the same exp polynomial), so they give the same bits.

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
use std::arch::x86_64::*;

pub(crate) const LANES: usize = 16;

#[derive(Clone, Copy)]
pub(crate) struct Lanes16 {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    v: [__m256; 2],
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    v: [f32; LANES],
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
    fn to_array(self) -> [f32; LANES];
    /// `self[l] = w · x[l] + self[l]`, one fused multiply-add per lane; `x` holds at least 16.
    fn fma(&mut self, w: f32, x: &[f32]);
    /// `self[l] = w · x[l] + self[l]` with `x` already loaded: the same fused operation.
    fn fma_with(&mut self, w: f32, x: Self);
    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    fn mul(self, other: Self) -> Self;
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

// SAFETY (every unsafe block below): compiled only when the build enables avx2 and fma; loads
// read 16 values from a slice checked to hold at least 16.
impl Lanes for Lanes16 {
    #[inline(always)]
    fn zero() -> Self {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        {
            Self {
                v: unsafe { [_mm256_setzero_ps(); 2] },
            }
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            Self { v: [0.0; LANES] }
        }
    }

    /// `self[l] = w · x[l] + self[l]`, one fused multiply-add per lane; `x` holds at least 16.
    #[inline(always)]
    fn fma(&mut self, w: f32, x: &[f32]) {
        let x = &x[..LANES];
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        unsafe {
            let w = _mm256_set1_ps(w);
            let p = x.as_ptr();
            self.v[0] = _mm256_fmadd_ps(w, _mm256_loadu_ps(p), self.v[0]);
            self.v[1] = _mm256_fmadd_ps(w, _mm256_loadu_ps(p.add(8)), self.v[1]);
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        for (a, &v) in self.v.iter_mut().zip(x) {
            *a = w.mul_add(v, *a);
        }
    }

    /// Lane-wise sum.
    #[inline(always)]
    fn fma_with(&mut self, w: f32, x: Self) {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        unsafe {
            let w = _mm256_set1_ps(w);
            self.v[0] = _mm256_fmadd_ps(w, x.v[0], self.v[0]);
            self.v[1] = _mm256_fmadd_ps(w, x.v[1], self.v[1]);
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        for (a, &v) in self.v.iter_mut().zip(&x.v) {
            *a = w.mul_add(v, *a);
        }
    }

    #[inline(always)]
    fn add(self, other: Self) -> Self {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        unsafe {
            Self {
                v: [
                    _mm256_add_ps(self.v[0], other.v[0]),
                    _mm256_add_ps(self.v[1], other.v[1]),
                ],
            }
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            Self {
                v: std::array::from_fn(|l| self.v[l] + other.v[l]),
            }
        }
    }

    /// The first 16 values of `x`.
    #[inline(always)]
    fn load(x: &[f32]) -> Self {
        let x = &x[..LANES];
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        unsafe {
            Self {
                v: [
                    _mm256_loadu_ps(x.as_ptr()),
                    _mm256_loadu_ps(x.as_ptr().add(8)),
                ],
            }
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            Self {
                v: std::array::from_fn(|l| x[l]),
            }
        }
    }

    /// Every lane `x`.
    #[inline(always)]
    fn splat(x: f32) -> Self {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        unsafe {
            Self {
                v: [_mm256_set1_ps(x); 2],
            }
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            Self { v: [x; LANES] }
        }
    }

    /// Lane-wise `self · other`.
    #[inline(always)]
    fn mul(self, other: Self) -> Self {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        unsafe {
            Self {
                v: [
                    _mm256_mul_ps(self.v[0], other.v[0]),
                    _mm256_mul_ps(self.v[1], other.v[1]),
                ],
            }
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            Self {
                v: std::array::from_fn(|l| self.v[l] * other.v[l]),
            }
        }
    }

    /// Lane-wise `self - other`.
    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        unsafe {
            Self {
                v: [
                    _mm256_sub_ps(self.v[0], other.v[0]),
                    _mm256_sub_ps(self.v[1], other.v[1]),
                ],
            }
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            Self {
                v: std::array::from_fn(|l| self.v[l] - other.v[l]),
            }
        }
    }

    /// Lane-wise maximum, with `maxps` semantics: `self` only where it is strictly greater.
    #[inline(always)]
    fn max(self, other: Self) -> Self {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        unsafe {
            Self {
                v: [
                    _mm256_max_ps(self.v[0], other.v[0]),
                    _mm256_max_ps(self.v[1], other.v[1]),
                ],
            }
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            Self {
                v: std::array::from_fn(|l| {
                    if self.v[l] > other.v[l] {
                        self.v[l]
                    } else {
                        other.v[l]
                    }
                }),
            }
        }
    }

    /// `e^x` per lane for `x <= 0` (softmax arguments), as [`exp_lane`] computes it.
    #[inline(always)]
    fn exp_nonpositive(self) -> Self {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        unsafe {
            let one = _mm256_set1_ps(1.0);
            let v = self.v.map(|x| {
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
                y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, one));
                let scale = _mm256_castsi256_ps(_mm256_slli_epi32(
                    _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
                    23,
                ));
                let keep = _mm256_cmp_ps(x, _mm256_set1_ps(exp::FLOOR), _CMP_GE_OQ);
                _mm256_and_ps(_mm256_mul_ps(y, scale), keep)
            });
            Self { v }
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            Self {
                v: self.v.map(exp_lane),
            }
        }
    }

    #[inline(always)]
    fn to_array(self) -> [f32; LANES] {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        {
            let mut out = [0f32; LANES];
            unsafe {
                _mm256_storeu_ps(out.as_mut_ptr(), self.v[0]);
                _mm256_storeu_ps(out.as_mut_ptr().add(8), self.v[1]);
            }
            out
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        {
            self.v
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
