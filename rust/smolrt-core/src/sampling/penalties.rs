//! The logit adjustments that come before any truncation: per-token bias and the
//! repetition / presence / frequency penalties over a window of recent tokens.
//!
//! Token ids out of range (a bias or history id past the logits) are skipped rather than
//! rejected: validation already refused them for requests, and the sampler must not panic.

/// Adds each bias to its token's logit. A `-inf` bias always bans, even a `+inf` logit (plain
/// addition would give NaN there).
pub(crate) fn apply_logit_bias(logits: &mut [f32], bias: &[(u32, f32)]) {
    for &(id, b) in bias {
        if let Some(l) = logits.get_mut(id as usize) {
            *l = if b == f32::NEG_INFINITY { b } else { *l + b };
        }
    }
}

/// The penalty settings, gathered so the hot loop reads plain fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Penalties {
    pub repetition: f32,
    pub presence: f32,
    pub frequency: f32,
    /// 0 = the whole history.
    pub last_n: u32,
}

impl Penalties {
    pub fn is_active(&self) -> bool {
        self.repetition != 1.0 || self.presence != 0.0 || self.frequency != 0.0
    }

    /// Penalises every distinct token of the last `last_n` history entries once, the way
    /// llama.cpp does: the repetition penalty does not compound with the count, the frequency
    /// penalty does. `scratch` is reused between calls to avoid a per-token allocation.
    pub fn apply(&self, logits: &mut [f32], history: &[u32], scratch: &mut Vec<u32>) {
        if !self.is_active() {
            return;
        }
        let window = match self.last_n as usize {
            0 => history,
            n => &history[history.len().saturating_sub(n)..],
        };
        // Counting by sorting a copy of the window: windows are short (64 by default) and this
        // avoids a vocab-sized count table that would need clearing on every call.
        scratch.clear();
        scratch.extend_from_slice(window);
        scratch.sort_unstable();
        for run in scratch.chunk_by(|a, b| a == b) {
            let Some(l) = logits.get_mut(run[0] as usize) else {
                continue;
            };
            let count = run.len() as f32;
            // Shrinking towards zero from either side: dividing a negative logit would raise it.
            if *l > 0.0 {
                *l /= self.repetition;
            } else {
                *l *= self.repetition;
            }
            *l -= count * self.frequency + self.presence;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_adds_and_bans() {
        let mut l = [1.0, f32::INFINITY, 3.0];
        apply_logit_bias(
            &mut l,
            &[(0, 0.5), (1, f32::NEG_INFINITY), (2, -1.0), (99, 1.0)],
        );
        assert_eq!(l, [1.5, f32::NEG_INFINITY, 2.0]);
    }

    #[test]
    fn penalties_follow_llama_cpp_formula() {
        let p = Penalties {
            repetition: 2.0,
            presence: 0.5,
            frequency: 0.25,
            last_n: 0,
        };
        let mut l = [4.0, -4.0, 1.0, 7.0];
        let mut scratch = Vec::new();
        // token 0 twice, token 1 once, token 3 never, token 9 out of range
        p.apply(&mut l, &[0, 1, 0, 9], &mut scratch);
        assert_eq!(
            l,
            [
                4.0 / 2.0 - 2.0 * 0.25 - 0.5,
                -4.0 * 2.0 - 0.25 - 0.5,
                1.0,
                7.0
            ]
        );
    }

    #[test]
    fn window_only_sees_recent_tokens() {
        let p = Penalties {
            repetition: 1.0,
            presence: 1.0,
            frequency: 0.0,
            last_n: 2,
        };
        let mut l = [0.0; 4];
        p.apply(&mut l, &[0, 1, 2, 3], &mut Vec::new());
        assert_eq!(l, [0.0, 0.0, -1.0, -1.0]);
    }
}
