//! Operations on the candidate list `(token id, value)`: top-k on logits, then softmax, top-p
//! and min-p on probabilities. Every candidate value is `> -inf` and never NaN (the sampler
//! filters those out when it builds the list), but `+inf` may appear.
//!
//! Orders are total: higher value first, ties to the lower id, so results never depend on the
//! unstable selection algorithms' internal choices.

use std::cmp::Ordering;

pub(crate) type Candidate = (u32, f32);

fn best_first(a: &Candidate, b: &Candidate) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Keeps the `k` highest logits (unordered). `k == 0` or `k >= len` keeps everything.
pub(crate) fn top_k(cands: &mut Vec<Candidate>, k: usize) {
    if k == 0 || k >= cands.len() {
        return;
    }
    // Partial selection: O(n) instead of sorting the whole vocab.
    cands.select_nth_unstable_by(k - 1, best_first);
    cands.truncate(k);
}

/// Turns the values (logits) into probabilities of the distribution at `temperature` (> 0), in
/// place. Scaling happens after subtracting the maximum, so a tiny temperature pushes the
/// others towards `exp(-inf) = 0` instead of overflowing logits to `±inf` (and `0 * inf` NaN).
pub(crate) fn softmax(cands: &mut [Candidate], temperature: f32) {
    let max = cands.iter().fold(f32::NEG_INFINITY, |m, c| m.max(c.1));
    if max == f32::INFINITY {
        // exp(inf - inf) is NaN: treat the infinite logits as an even split of all the mass.
        let n = cands.iter().filter(|c| c.1 == f32::INFINITY).count() as f32;
        for c in cands.iter_mut() {
            c.1 = if c.1 == f32::INFINITY { 1.0 / n } else { 0.0 };
        }
        return;
    }
    let mut sum = 0.0f64;
    for c in cands.iter_mut() {
        c.1 = ((c.1 - max) / temperature).exp();
        sum += f64::from(c.1);
    }
    // sum >= 1: the maximum contributes exp(0).
    let inv = (1.0 / sum) as f32;
    for c in cands.iter_mut() {
        c.1 *= inv;
    }
}

/// Keeps the smallest most-likely set whose probabilities reach `p`; leaves it sorted best
/// first.
///
/// Sorting all of a 150k vocab on every token is wasteful when the nucleus is usually a few
/// dozen tokens, so the list is sorted in growing prefixes: select the next chunk of best
/// candidates, sort just that chunk, and stop once the running mass reaches `p`.
pub(crate) fn top_p(cands: &mut Vec<Candidate>, p: f32) {
    let p = f64::from(p);
    let mut sorted = 0;
    let mut mass = 0.0f64;
    while sorted < cands.len() {
        let end = cands.len().min((sorted * 2).max(256));
        if end < cands.len() {
            // Everything before `sorted` already beats everything after it.
            cands[sorted..].select_nth_unstable_by(end - sorted - 1, best_first);
        }
        cands[sorted..end].sort_unstable_by(best_first);
        for i in sorted..end {
            mass += f64::from(cands[i].1);
            if mass >= p {
                cands.truncate(i + 1);
                return;
            }
        }
        sorted = end;
    }
}

/// Drops candidates less likely than `min_p` times the most likely one.
pub(crate) fn min_p(cands: &mut Vec<Candidate>, min_p: f32) {
    let max = cands.iter().fold(0.0f32, |m, c| m.max(c.1));
    let threshold = max * min_p;
    cands.retain(|c| c.1 >= threshold);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(c: &[Candidate]) -> Vec<u32> {
        let mut v: Vec<u32> = c.iter().map(|c| c.0).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn top_k_keeps_best_with_ties_to_low_id() {
        let mut c = vec![(0, 1.0), (1, 3.0), (2, 2.0), (3, 3.0), (4, 2.0)];
        top_k(&mut c, 3);
        assert_eq!(ids(&c), vec![1, 2, 3]);
    }

    #[test]
    fn softmax_handles_infinity() {
        let mut c = vec![(0, f32::INFINITY), (1, 1.0), (2, f32::INFINITY)];
        softmax(&mut c, 1.0);
        assert_eq!(c, vec![(0, 0.5), (1, 0.0), (2, 0.5)]);
    }

    #[test]
    fn softmax_applies_temperature_without_overflow() {
        let mut c = vec![(0, 1.0), (1, 2.0)];
        softmax(&mut c, 0.5);
        let e = (-2.0f32).exp();
        assert!((c[0].1 - e / (1.0 + e)).abs() < 1e-6 && (c[1].1 - 1.0 / (1.0 + e)).abs() < 1e-6);
        let mut c = vec![(0, -3.0), (1, -2.0), (2, -2.0)];
        softmax(&mut c, 1e-40);
        assert_eq!(c, vec![(0, 0.0), (1, 0.5), (2, 0.5)]);
    }

    #[test]
    fn top_p_across_chunk_boundaries() {
        // 1000 equal tokens: reaching p = 0.5 needs 500 of them, past the first 256-chunk.
        let mut c: Vec<Candidate> = (0..1000).map(|i| (i, 0.001)).collect();
        top_p(&mut c, 0.5);
        // 500 * 0.001 may land a hair under 0.5 in floating point: allow one extra.
        assert!(c.len() == 500 || c.len() == 501, "{}", c.len());
        let expect: Vec<u32> = (0..c.len() as u32).collect();
        assert_eq!(c.iter().map(|c| c.0).collect::<Vec<_>>(), expect);
    }

    #[test]
    fn min_p_threshold_is_relative() {
        let mut c = vec![(0, 0.5), (1, 0.3), (2, 0.1), (3, 0.05), (4, 0.05)];
        min_p(&mut c, 0.2);
        assert_eq!(ids(&c), vec![0, 1, 2]);
    }
}
