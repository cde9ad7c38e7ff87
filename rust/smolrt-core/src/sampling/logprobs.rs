//! Log-probabilities of the model's (biased and penalised) distribution, reported to clients.
//!
//! Computed before temperature and truncation on purpose: OpenAI-style clients expect the
//! model's distribution, not the one a particular temperature happened to draw from.
//! NaN logits count as `-inf` (probability zero) so one bad value cannot poison the normaliser.

use super::truncation::top_n;
use super::weights::{max_logit, sum_exp};

/// The log of the softmax denominator, in a form that also covers the degenerate cases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum LogNormaliser {
    /// Ordinary case: `logprob(x) = x - log_sum_exp`.
    Finite { log_sum_exp: f32 },
    /// Some logits are `+inf`: they share all the mass equally, everything else gets zero.
    Infinite { log_count: f32 },
    /// Every logit is `-inf` or NaN: nothing has mass.
    Empty,
}

impl LogNormaliser {
    pub fn new(logits: &[f32]) -> Self {
        let max = max_logit(logits);
        if max == f32::NEG_INFINITY {
            return Self::Empty;
        }
        if max == f32::INFINITY {
            let count = logits.iter().filter(|&&x| x == f32::INFINITY).count();
            return Self::Infinite {
                log_count: (count as f32).ln(),
            };
        }
        let sum = sum_exp(logits, max);
        Self::Finite {
            log_sum_exp: max + sum.ln() as f32,
        }
    }

    pub fn logprob(&self, logit: f32) -> f32 {
        match *self {
            Self::Finite { log_sum_exp } if logit > f32::NEG_INFINITY => logit - log_sum_exp,
            Self::Infinite { log_count } if logit == f32::INFINITY => -log_count,
            _ => f32::NEG_INFINITY,
        }
    }
}

/// The `n` most likely tokens with their logprobs, most likely first, ties to the lower id.
/// Tokens with zero probability are never listed, so fewer than `n` may come back.
pub(crate) fn top_logprobs(logits: &[f32], n: usize, norm: &LogNormaliser) -> Vec<(u32, f32)> {
    let mut top = Vec::with_capacity(n);
    top_n(logits, n, &mut top);
    for entry in &mut top {
        entry.1 = norm.logprob(entry.1);
    }
    // Zero-probability entries can survive as finite logits only in the `Infinite` case.
    top.retain(|&(_, lp)| lp > f32::NEG_INFINITY);
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_log_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln() as f32;
        let norm = LogNormaliser::new(&logits);
        for &x in &logits {
            assert!((norm.logprob(x) - (x - lse)).abs() < 1e-6);
        }
    }

    #[test]
    fn nan_and_neg_inf_have_no_mass() {
        let norm = LogNormaliser::new(&[f32::NAN, 0.0, f32::NEG_INFINITY, 0.0]);
        assert_eq!(
            norm,
            LogNormaliser::Finite {
                log_sum_exp: 2f32.ln()
            }
        );
        assert_eq!(norm.logprob(f32::NAN), f32::NEG_INFINITY);
        assert_eq!(
            LogNormaliser::new(&[f32::NAN, f32::NEG_INFINITY]),
            LogNormaliser::Empty
        );
        assert_eq!(LogNormaliser::new(&[]), LogNormaliser::Empty);
    }

    #[test]
    fn infinite_logits_share_the_mass() {
        let logits = [f32::INFINITY, 5.0, f32::INFINITY];
        let norm = LogNormaliser::new(&logits);
        assert_eq!(norm.logprob(f32::INFINITY), -(2f32.ln()));
        assert_eq!(norm.logprob(5.0), f32::NEG_INFINITY);
        let top = top_logprobs(&logits, 3, &norm);
        assert_eq!(top, vec![(0, -(2f32.ln())), (2, -(2f32.ln()))]);
    }

    #[test]
    fn top_is_sorted_with_ties_by_id() {
        let logits = [0.5, 2.0, f32::NAN, 2.0, -1.0, 3.0, 2.0];
        let norm = LogNormaliser::new(&logits);
        let ids: Vec<u32> = top_logprobs(&logits, 4, &norm)
            .iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(ids, vec![5, 1, 3, 6]);
        let ids: Vec<u32> = top_logprobs(&logits, 10, &norm)
            .iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(ids, vec![5, 1, 3, 6, 0, 4]);
    }
}
