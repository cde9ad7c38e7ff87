//! The per-sequence sampler: turns one position's logits into the next token.
//!
//! Pipeline, in order:
//! 1. logit bias (a `-inf` bias bans the token);
//! 2. penalties: repetition, presence, frequency over the last `penalty_last_n` history tokens;
//!    (logprobs are taken here, from the log-softmax of these logits: the model's distribution
//!    before any temperature or truncation);
//! 3. temperature == 0: argmax, ties to the lowest id. Otherwise:
//! 4. top-k → temperature → softmax → top-p → min-p → renormalise → draw (temperature is
//!    applied inside the softmax, after subtracting the maximum, so tiny temperatures cannot
//!    overflow; the softmax stays unnormalised, its total folded into the draw instead).
//!
//! Steps 1-2 and the penalty-then-truncate shape follow llama.cpp's common sampler chain. Within
//! step 4, top-p and min-p see the temperature-scaled distribution (as in vLLM and HF
//! transformers; llama.cpp's current default applies temperature last instead).
//!
//! Bad logits never panic: NaN counts as `-inf`. If bias and penalties leave every token at
//! `-inf` (all banned, or the model produced only NaN/-inf), the sampler falls back to the
//! argmax of the raw logits, or token 0 when none of those is above `-inf` either; the reported
//! logprob is then `-inf`, honestly saying the processed distribution gave it no mass.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::dense::DenseWeights;
use super::logprobs::{top_logprobs, LogNormaliser};
use super::params::SamplingParams;
use super::penalties::{apply_logit_bias, Penalties};
use super::truncation::{self, Candidate};
use super::weights::{self, argmax};

/// One sampling result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    pub token: u32,
    /// The chosen token's logprob, when `SamplingParams::logprobs` asked for it.
    pub logprob: Option<f32>,
    /// Up to `SamplingParams::top_logprobs` alternatives, most likely first, ties by id; tokens
    /// with zero probability are not listed.
    pub top_logprobs: Vec<(u32, f32)>,
}

/// Samples one sequence's tokens. Owns its RNG, so results depend only on (params, seed,
/// logits, history) and never on how sequences are batched.
///
/// Expects validated params ([`SamplingParams::validate`]); invalid ones do not panic but give
/// unspecified (still in-range) tokens.
pub struct Sampler {
    params: SamplingParams,
    penalties: Penalties,
    seed: u64,
    rng: StdRng,
    /// Reused between calls so a step allocates nothing (except a requested top-logprobs list).
    candidates: Vec<Candidate>,
    weights: DenseWeights,
    penalty_scratch: Vec<u32>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let seed = params.seed.unwrap_or_else(rand::random);
        let penalties = Penalties {
            repetition: params.repetition_penalty,
            presence: params.presence_penalty,
            frequency: params.frequency_penalty,
            last_n: params.penalty_last_n,
        };
        Self {
            params,
            penalties,
            seed,
            rng: StdRng::seed_from_u64(seed),
            candidates: Vec::new(),
            weights: DenseWeights::default(),
            penalty_scratch: Vec::new(),
        }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The seed actually in use (the drawn one when `params.seed` was `None`), so a run can be
    /// reproduced.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// `logits`: raw model logits for one position (mutated freely as scratch). `history`:
    /// prompt + generated tokens so far (for penalties).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> Sampled {
        let adjusts = !self.params.logit_bias.is_empty() || self.penalties.is_active();
        // Only needed for the all-banned fallback, and only worth a pass when something can ban.
        let raw_best = if adjusts { argmax(logits) } else { None };

        apply_logit_bias(logits, &self.params.logit_bias);
        self.penalties
            .apply(logits, history, &mut self.penalty_scratch);
        // From here on `logits` holds the processed distribution and stays unchanged: logprobs
        // are read from it after the draw.

        // Unvalidated NaN/negative temperatures go to greedy instead of into the maths.
        let t = self.params.temperature;
        let greedy = t.is_nan() || t <= 0.0;
        let chosen = if greedy {
            argmax(logits)
        } else {
            self.draw(logits)
        };
        let token = chosen.or(raw_best).unwrap_or(0);

        let want_top = self.params.top_logprobs as usize;
        if !self.params.logprobs && want_top == 0 {
            return Sampled {
                token,
                logprob: None,
                top_logprobs: Vec::new(),
            };
        }
        let norm = LogNormaliser::new(logits);
        let logprob = self.params.logprobs.then(|| {
            logits
                .get(token as usize)
                .map_or(f32::NEG_INFINITY, |&l| norm.logprob(l))
        });
        Sampled {
            token,
            logprob,
            top_logprobs: top_logprobs(logits, want_top, &norm),
        }
    }

    /// Step 4 of the pipeline; `None` when no token has any probability.
    ///
    /// Without top-k the whole vocab is weighed in one dense, vectorised pass; the candidate list
    /// is only built when a truncation needs ids to sort or select.
    fn draw(&mut self, logits: &[f32]) -> Option<u32> {
        let p = &self.params;
        let t = p.temperature;
        let max = weights::max_logit(logits);
        if max == f32::NEG_INFINITY {
            return None;
        }
        let use_top_p = p.top_p > 0.0 && p.top_p < 1.0;
        let use_min_p = p.min_p > 0.0;
        let k = p.top_k as usize;
        let cands = &mut self.candidates;
        let total;
        if k > 0 && k < logits.len() {
            truncation::top_k(logits, k, cands);
            for c in cands.iter_mut() {
                c.1 = weights::weight_any(c.1, max, t);
            }
            total = truncation::sum(cands);
        } else {
            let w = &mut self.weights;
            w.fill(logits, max, t);
            if !use_top_p {
                if use_min_p {
                    // The maximum's weight is exactly 1, so min_p itself is the threshold.
                    w.drop_below(p.min_p);
                }
                // Renormalising is folded into the draw: scale the uniform by the kept mass.
                let target = self.rng.random::<f64>() * w.total();
                return w.draw(target).map(|i| i as u32);
            }
            total = w.total();
            // Only tokens at or above the level where the weights reach top_p of the total can
            // be in the nucleus; and never those below `cut`: all of them together weigh less
            // than (1 - top_p) of the total (halved to stay on the safe side of rounding).
            let cut = (0.5 * (1.0 - f64::from(p.top_p)) * total / w.len() as f64) as f32;
            w.nucleus_candidates(f64::from(p.top_p) * total, cut, cands);
        }
        if use_top_p {
            truncation::top_p(cands, p.top_p, total);
        }
        if use_min_p {
            truncation::min_p(cands, p.min_p);
        }
        let target = self.rng.random::<f64>() * truncation::sum(cands);
        let mut acc = 0.0f64;
        for c in cands.iter() {
            acc += f64::from(c.1);
            if acc > target {
                return Some(c.0);
            }
        }
        // Rounding left the target past the last sum: take the last token with any weight.
        cands.iter().rev().find(|c| c.1 > 0.0).map(|c| c.0)
    }
}
