//! A whole vocabulary's unnormalised softmax weights, with a summary of every [`CHUNK`] of them
//! (its sum and its largest weight) taken as soon as they are computed.
//!
//! Sampling without top-k computes the whole vocab's weights (49k-150k entries) once per token;
//! everything after that reads the summary where it can. The total is the sum of the chunk
//! sums, the draw skips whole chunks by their sums, and top-p's search for the nucleus skips
//! every chunk whose largest weight is below the level it tries. Before, the total and the draw
//! each summed the vocab again, and top-p selected among every token above a loose bound
//! (thousands of candidates on a flat distribution, 10,000-20,000 on some).

use super::truncation::Candidate;
use super::weights::{chunk_sum, exp_approx, CHUNK};

/// Levels `2^-k` top-p's nucleus search tries, `k` up to this. Below `2^-64` of the largest
/// weight, a whole vocabulary of 2^24 tokens holds under 2^-40 of it: no top-p short of 1 needs
/// those tokens (and if rounding says otherwise, the search gives up and keeps everything).
const DEEPEST_LEVEL: i32 = 64;

/// How much more than the goal, as a share of it, the weights at or above a level must hold
/// before the nucleus search trusts that level: its chunk-wise f32 sums (each good to ~1e-6,
/// see `weights::CHUNK`) and top-p's f64 walk add in different orders.
const MASS_MARGIN: f64 = 1e-5;

/// Weights and their chunk summary, reused from token to token (a step allocates nothing).
#[derive(Default)]
pub(crate) struct DenseWeights {
    weights: Vec<f32>,
    /// Per chunk of `weights`, as `chunk_sum` adds it.
    sums: Vec<f32>,
    /// Per chunk, its largest weight.
    maxima: Vec<f32>,
}

impl DenseWeights {
    /// Every logit's weight at `temperature` (> 0), relative to `max`, the largest logit (not
    /// NaN, not `-inf`): `exp((logit - max) / temperature)`, so the maximum weighs exactly 1;
    /// NaN and `-inf` logits weigh 0. With a `+inf` maximum the `+inf` logits share all the
    /// mass (1 each).
    ///
    /// The division is a multiplication by `1 / temperature` (dividing every logit took 7% of a
    /// draw: 35 against 33 us on 49,152 logits); a temperature so small that its reciprocal
    /// overflows gives every logit but the maxima weight 0, as dividing would.
    pub(crate) fn fill(&mut self, logits: &[f32], max: f32, temperature: f32) {
        let inv = 1.0 / temperature;
        if max == f32::INFINITY || !inv.is_finite() {
            self.fill_with(logits, |l| f32::from(u8::from(l == max)));
        } else {
            self.fill_with(logits, |l| exp_approx((l - max) * inv));
        }
    }

    #[inline(always)]
    fn fill_with(&mut self, logits: &[f32], weight: impl Fn(f32) -> f32) {
        // Same length from token to token: resizing writes nothing after the first call.
        self.weights.resize(logits.len(), 0.0);
        // The weights first, in one long loop, then the summary from the fresh lines: chunk
        // by chunk in one loop, the sums' and maxima's reductions held up the exponentials.
        for (w, &l) in self.weights.iter_mut().zip(logits) {
            *w = weight(l);
        }
        self.sums.clear();
        self.maxima.clear();
        for chunk in self.weights.chunks(CHUNK) {
            self.sums.push(chunk_sum(chunk));
            self.maxima.push(chunk_max(chunk));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.weights.len()
    }

    /// Sum of all weights, accurate for whole vocabularies (f64 over the f32 chunk sums).
    pub(crate) fn total(&self) -> f64 {
        self.sums.iter().map(|&s| f64::from(s)).sum()
    }

    /// Zeroes every weight below `threshold` (min-p on the dense vector) and updates the
    /// summary.
    pub(crate) fn drop_below(&mut self, threshold: f32) {
        for (ci, chunk) in self.weights.chunks_mut(CHUNK).enumerate() {
            if self.maxima[ci] < threshold {
                chunk.fill(0.0);
            } else {
                for w in chunk.iter_mut() {
                    if *w < threshold {
                        *w = 0.0;
                    }
                }
            }
            self.sums[ci] = chunk_sum(chunk);
            self.maxima[ci] = chunk_max(chunk);
        }
    }

    /// Picks the index where the running sum of the weights first passes `target` (a uniform
    /// draw in `[0, total())`). Whole chunks are skipped by their sums, so the walk agrees
    /// with the total the target was scaled by.
    pub(crate) fn draw(&self, target: f64) -> Option<usize> {
        let mut acc = 0.0f64;
        let mut last_positive = None;
        for (ci, &s) in self.sums.iter().enumerate() {
            let s = f64::from(s);
            if s > 0.0 {
                last_positive = Some(ci);
            }
            if acc + s > target {
                let chunk = self.chunk(ci);
                let mut inner = acc;
                for (i, &w) in chunk.iter().enumerate() {
                    inner += f64::from(w);
                    if inner > target {
                        return Some(ci * CHUNK + i);
                    }
                }
                // Summation order differs inside the chunk: its last weighted entry.
                return last_weighted(chunk).map(|i| ci * CHUNK + i);
            }
            acc += s;
        }
        // Rounding left the target past the end: the last token with any weight.
        let ci = last_positive?;
        last_weighted(self.chunk(ci)).map(|i| ci * CHUNK + i)
    }

    /// The tokens top-p with `goal` (of the `total()`) can keep, into `out` in id order: every
    /// weight at or above the highest level `2^-k` whose weights hold the goal (all weights
    /// above `floor` when no level does). A few passes find that level (doubling k, then
    /// halving the last step), each reading only the chunks whose largest weight reaches the
    /// level it tries; on a peaked distribution that is a handful of chunks.
    pub(crate) fn nucleus_candidates(&self, goal: f64, floor: f32, out: &mut Vec<Candidate>) {
        let need = goal * (1.0 + MASS_MARGIN);
        let level = |k: i32| 2f32.powi(-k);
        // The mass at or above 2^-k grows with k: find the smallest k that holds `need`,
        // doubling k first (the high levels, where few chunks reach, are the cheap ones to
        // try), then halving the last step.
        let holds = |k: i32| self.mass_at_least(level(k)) >= need;
        let mut lo = 0;
        let mut hi = 1;
        while hi < DEEPEST_LEVEL && !holds(hi) {
            lo = hi + 1;
            hi = (2 * hi).min(DEEPEST_LEVEL);
        }
        let bar = if hi == DEEPEST_LEVEL && !holds(hi) {
            0.0
        } else {
            while lo < hi {
                let mid = (lo + hi) / 2;
                if holds(mid) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            level(hi)
        };
        let bar = bar.max(floor);
        out.clear();
        for (ci, &m) in self.maxima.iter().enumerate() {
            if m >= bar && m > 0.0 {
                let base = ci * CHUNK;
                out.extend(
                    self.chunk(ci)
                        .iter()
                        .enumerate()
                        .filter(|(_, &w)| w > 0.0 && w >= bar)
                        .map(|(i, &w)| ((base + i) as u32, w)),
                );
            }
        }
    }

    /// Sum of the weights at or above `level`, chunk by chunk like `total()`; chunks whose
    /// largest weight is below it hold none.
    fn mass_at_least(&self, level: f32) -> f64 {
        let mut mass = 0.0f64;
        let mut kept = [0f32; CHUNK];
        for (ci, &m) in self.maxima.iter().enumerate() {
            if m >= level {
                let chunk = self.chunk(ci);
                for (k, &w) in kept.iter_mut().zip(chunk) {
                    *k = if w >= level { w } else { 0.0 };
                }
                mass += f64::from(chunk_sum(&kept[..chunk.len()]));
            }
        }
        mass
    }

    fn chunk(&self, ci: usize) -> &[f32] {
        &self.weights[ci * CHUNK..self.weights.len().min((ci + 1) * CHUNK)]
    }
}

/// Largest of at most [`CHUNK`] weights (none is NaN), 0 for none.
#[inline]
fn chunk_max(weights: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut lanes = [0f32; LANES];
    let mut groups = weights.chunks_exact(LANES);
    for group in &mut groups {
        for (m, &w) in lanes.iter_mut().zip(group) {
            *m = m.max(w);
        }
    }
    let tail = groups.remainder().iter().fold(0f32, |m, &w| m.max(w));
    lanes.into_iter().fold(tail, f32::max)
}

fn last_weighted(chunk: &[f32]) -> Option<usize> {
    chunk.iter().rposition(|&w| w > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exactly these weights, summarised as `fill` does.
    fn dense(weights: &[f32]) -> DenseWeights {
        DenseWeights {
            weights: weights.to_vec(),
            sums: weights.chunks(CHUNK).map(chunk_sum).collect(),
            maxima: weights.chunks(CHUNK).map(chunk_max).collect(),
        }
    }

    #[test]
    fn the_summary_matches_the_weights() {
        let logits: Vec<f32> = (0..1000).map(|i| (i % 17) as f32 * 0.3 - 2.0).collect();
        let max = 16.0 * 0.3 - 2.0;
        let mut d = DenseWeights::default();
        d.fill(&logits, max, 0.5);
        assert_eq!(d.len(), 1000);
        let want: f64 = logits
            .iter()
            .map(|&l| ((f64::from(l) - f64::from(max)) / 0.5).exp())
            .sum();
        assert!((d.total() - want).abs() / want < 1e-6);
        for (ci, chunk) in d.weights.chunks(CHUNK).enumerate() {
            assert_eq!(d.sums[ci], chunk_sum(chunk));
            assert_eq!(d.maxima[ci], chunk.iter().fold(0f32, |m, &w| m.max(w)));
        }
        // the maximum weighs exactly 1, NaN and -inf nothing
        d.fill(&[1.0, f32::NAN, f32::NEG_INFINITY, 0.5], 1.0, 0.7);
        assert_eq!(d.weights[..3], [1.0, 0.0, 0.0]);
        // a temperature whose reciprocal overflows keeps only the maxima
        d.fill(&[1.0, 0.999, 1.0], 1.0, 1e-39);
        assert_eq!(d.weights, [1.0, 0.0, 1.0]);
        // +inf logits share the mass
        d.fill(&[f32::INFINITY, 3.0, f32::INFINITY], f32::INFINITY, 1.0);
        assert_eq!(d.weights, [1.0, 0.0, 1.0]);
        assert_eq!(d.total(), 2.0);
    }

    #[test]
    fn draw_lands_on_the_right_index() {
        // 200 weights, only 70 and 150 non-zero: the cumulative crosses chunk boundaries.
        let mut w = vec![0.0f32; 200];
        w[70] = 1.0;
        w[150] = 3.0;
        let d = dense(&w);
        assert_eq!(d.draw(0.0), Some(70));
        assert_eq!(d.draw(0.999), Some(70));
        assert_eq!(d.draw(1.0), Some(150));
        assert_eq!(d.draw(3.999), Some(150));
        assert_eq!(d.draw(4.5), Some(150)); // past the end: last weighted
        assert_eq!(dense(&[0.0; 10]).draw(0.0), None);
        assert_eq!(dense(&[]).draw(0.0), None);
    }

    #[test]
    fn drop_below_zeroes_and_resummarises() {
        let mut d = dense(&[1.0, 0.6, 0.2, 0.1]);
        d.drop_below(0.2);
        assert_eq!(d.weights, [1.0, 0.6, 0.2, 0.0]);
        assert_eq!(d.sums, [chunk_sum(&[1.0, 0.6, 0.2, 0.0])]);
        d.drop_below(2.0);
        assert_eq!((d.total(), d.maxima[0], d.draw(0.0)), (0.0, 0.0, None));
    }

    /// The candidates always contain the nucleus a full sort finds, and on a peaked
    /// distribution little else.
    #[test]
    fn nucleus_candidates_hold_the_nucleus() {
        let mut x = 0x2545_f491_u32;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as f32 / u32::MAX as f32
        };
        for spread in [0.5f32, 3.0, 12.0, 40.0] {
            let logits: Vec<f32> = (0..5000).map(|_| -spread * rnd()).collect();
            let max = logits.iter().fold(f32::MIN, |m, &l| m.max(l));
            let mut d = DenseWeights::default();
            d.fill(&logits, max, 1.0);
            let total = d.total();
            let mut sorted: Vec<(usize, f32)> = d.weights.iter().copied().enumerate().collect();
            sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for p in [0.1f32, 0.5, 0.9, 0.95, 0.999] {
                let goal = f64::from(p) * total;
                let mut mass = 0.0;
                let n = sorted
                    .iter()
                    .position(|c| {
                        mass += f64::from(c.1);
                        mass >= goal
                    })
                    .unwrap()
                    + 1;
                let mut cands = Vec::new();
                d.nucleus_candidates(goal, 0.0, &mut cands);
                let ids: std::collections::HashSet<u32> = cands.iter().map(|c| c.0).collect();
                assert!(
                    sorted[..n].iter().all(|c| ids.contains(&(c.0 as u32))),
                    "spread {spread}, p {p}"
                );
                // within the level below the nucleus' smallest weight
                let smallest = sorted[n - 1].1;
                assert!(
                    cands.iter().all(|c| c.1 >= smallest / 2.0),
                    "spread {spread}, p {p}: {} candidates for a nucleus of {n}",
                    cands.len()
                );
                assert!(cands.windows(2).all(|w| w[0].0 < w[1].0), "id order");
            }
        }
        // a goal no level holds (rounding) keeps every weighted token above the floor
        let d = dense(&[1.0, 0.5, 0.0, 0.25]);
        let mut cands = Vec::new();
        d.nucleus_candidates(d.total() * 2.0, 0.3, &mut cands);
        assert_eq!(cands, vec![(0, 1.0), (1, 0.5)]);
    }
}
