//! Stop strings, matched on the detokenized text stream.
//!
//! Tokens rarely line up with stop strings ("\n\nUser:" may arrive as "\n", "\nUs", "er:"), so
//! the matcher holds back the longest tail of the stream that could still grow into a stop
//! string and releases it once it cannot. The stop string itself, and anything after it, is
//! never emitted.
//!
//! When several stop strings match, the one that *completes* first in the stream wins (ties: the
//! one starting earliest). That is what a token-by-token stream would see first, so the result
//! does not depend on how the text was chunked.

/// What one [`StopStringMatcher::push`] released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOutcome {
    /// Text that is now safe to send to the client.
    pub emit: String,
    /// A stop string matched: generation should end. Later pushes emit nothing.
    pub stopped: bool,
    /// The stop string that matched.
    pub matched: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StopStringMatcher {
    stops: Vec<String>,
    /// Text received but not yet emitted: always a prefix of some stop string.
    held: String,
    matched: Option<String>,
}

impl StopStringMatcher {
    /// Empty strings are ignored (they would match before any text; validation rejects them).
    pub fn new(stops: Vec<String>) -> Self {
        let stops = stops.into_iter().filter(|s| !s.is_empty()).collect();
        Self {
            stops,
            held: String::new(),
            matched: None,
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.matched.is_some()
    }

    /// Feeds the next piece of text; holds back the longest suffix that is a prefix of some
    /// stop string.
    pub fn push(&mut self, text: &str) -> StopOutcome {
        if self.matched.is_some() {
            return StopOutcome {
                emit: String::new(),
                stopped: true,
                matched: self.matched.clone(),
            };
        }
        self.held.push_str(text);
        if let Some((start, stop)) = self.first_completed_match() {
            self.held.truncate(start);
            let emit = std::mem::take(&mut self.held);
            self.matched = Some(self.stops[stop].clone());
            return StopOutcome {
                emit,
                stopped: true,
                matched: self.matched.clone(),
            };
        }
        let keep = self.longest_pending_suffix();
        let emit = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..self.held.len() - keep);
        StopOutcome {
            emit,
            stopped: false,
            matched: None,
        }
    }

    /// At the end of generation: releases the held-back text (it never became a stop string).
    pub fn flush(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// `(byte offset in held, stop index)` of the match that ends first, ties to the earliest
    /// start. A stop string's first occurrence is also its earliest-ending one.
    fn first_completed_match(&self) -> Option<(usize, usize)> {
        self.stops
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.held.find(s.as_str()).map(|at| (at + s.len(), at, i)))
            .min()
            .map(|(_, at, i)| (at, i))
    }

    /// Length in bytes of the longest suffix of `held` that is a proper prefix of a stop string.
    /// Only char-boundary suffixes are tried, so emitted text never splits a UTF-8 character.
    fn longest_pending_suffix(&self) -> usize {
        let longest_stop = self.stops.iter().map(String::len).max().unwrap_or(0);
        let max = self.held.len().min(longest_stop.saturating_sub(1));
        (1..=max)
            .rev()
            .filter(|&k| self.held.is_char_boundary(self.held.len() - k))
            .find(|&k| {
                let tail = &self.held[self.held.len() - k..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(0)
    }
}
