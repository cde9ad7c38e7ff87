//! Which instruction set the panel kernels, attention and SwiGLU run, chosen once per process
//! from what the CPU reports (so one wheel uses AVX-512 VNNI where it exists and AVX2
//! elsewhere), and lowered, never raised, by `SMOLRT_KERNELS` for tests and comparisons.

use std::sync::OnceLock;

/// Ordered from least to most capable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    /// Portable Rust; the reference every SIMD kernel must reproduce bit for bit.
    Scalar,
    /// AVX2 + FMA + F16C: u8 x i8 products through `vpmaddubsw`.
    Avx2,
    /// AVX-512 F/BW + VNNI: 16-lane `vpdpbusd`.
    Avx512Vnni,
}

impl Isa {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }

    fn parse(name: &str) -> Option<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni]
            .into_iter()
            .find(|isa| isa.name() == name.trim().to_ascii_lowercase())
    }

    /// The best this CPU supports.
    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                return Isa::Avx512Vnni;
            }
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// `detect()` capped by `cap`: asking for more than the CPU has gives what it has.
    fn capped(cap: Option<&str>) -> Isa {
        let best = Isa::detect();
        match cap.and_then(Isa::parse) {
            Some(want) => want.min(best),
            None => best,
        }
    }
}

/// The kernel set this process uses (fixed at first call).
pub(crate) fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| Isa::capped(std::env::var("SMOLRT_KERNELS").ok().as_deref()))
}

/// Every kernel set this CPU can run, for tests that compare them with each other.
#[cfg(test)]
pub(crate) fn available() -> Vec<Isa> {
    let best = Isa::detect();
    [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni]
        .into_iter()
        .filter(|&i| i <= best)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_only_lowers() {
        assert_eq!(Isa::capped(Some("scalar")), Isa::Scalar);
        assert_eq!(Isa::capped(Some(" AVX2 ")), Isa::Avx2.min(Isa::detect()));
        assert_eq!(Isa::capped(Some("avx512vnni")), Isa::detect());
        assert_eq!(Isa::capped(Some("nonsense")), Isa::detect());
        assert_eq!(Isa::capped(None), Isa::detect());
    }
}
