//! One in-flight generation: its tokens, its KV blocks, its sampler (with its own RNG, so its
//! output never depends on its batch-mates) and its streaming text state.

use std::collections::HashSet;
use std::time::Instant;

use super::channels::{Channel, ChannelSplitter, ThinkTags};
use super::events::{Event, EventKind, FinishReason, Timings, TokenLogprob, Usage};
use super::options::GenerationRequest;
use super::SeqId;
use crate::error::Error;
use crate::kv::SeqKv;
use crate::sampling::{Sampled, Sampler, StopStringMatcher};
use crate::tokenizer::{IncrementalDecoder, Tokenizer};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Prompt tokens remain to be fed to the model.
    Prefill,
    /// The last sampled token is waiting to be fed.
    Decode,
}

pub(super) struct Sequence {
    pub id: SeqId,
    /// Prompt followed by every sampled token.
    pub tokens: Vec<u32>,
    /// How many of `tokens` the model has seen (equals `kv.len()` between steps).
    pub fed: usize,
    pub kv: SeqKv,
    /// The session whose resident KV this sequence continues and keeps.
    pub session: Option<super::SessionKey>,
    /// Prompt tokens whose KV was already resident at admission.
    pub cached: usize,
    prompt_len: usize,
    /// Most tokens this sequence may generate: `max_tokens`, capped by the context left.
    max_new: usize,
    sampler: Sampler,
    want_logprobs: bool,
    /// Tokens that end the generation: the model's end-of-generation set plus the caller's ids.
    stop_ids: HashSet<u32>,
    decoder: IncrementalDecoder,
    stop_strings: StopStringMatcher,
    channels: ChannelSplitter,
    reasoning_tokens: usize,
    created: Instant,
    /// When the first prefill chunk was scheduled: queueing ends, prefill begins.
    pub started: Option<Instant>,
    first_token: Option<Instant>,
}

impl Sequence {
    pub fn new(id: SeqId, req: GenerationRequest, tokenizer: &Tokenizer, context: usize) -> Self {
        let prompt_len = req.prompt.len();
        let mut stop_ids: HashSet<u32> = req.stop.stop_token_ids.iter().copied().collect();
        if !req.stop.ignore_eos {
            stop_ids.extend(tokenizer.eog_ids().iter().copied());
        }
        let want_logprobs = req.sampling.logprobs || req.sampling.top_logprobs > 0;
        let max_new = (req.stop.max_tokens as usize).min(context - prompt_len);
        let tags = ThinkTags::of(tokenizer);
        let start = tags.map_or(Channel::Content, |t| t.starting_channel(&req.prompt));
        let mut tokens = req.prompt;
        tokens.reserve(max_new);
        Self {
            id,
            tokens,
            fed: 0,
            kv: SeqKv::default(),
            session: req.session,
            cached: 0,
            prompt_len,
            max_new,
            sampler: Sampler::new(req.sampling),
            want_logprobs,
            stop_ids,
            // Special tokens are not text: a caller who wants them asks for token ids.
            decoder: IncrementalDecoder::new(true),
            stop_strings: StopStringMatcher::new(req.stop.stop_strings),
            channels: ChannelSplitter::new(tags, start),
            reasoning_tokens: 0,
            created: Instant::now(),
            started: None,
            first_token: None,
        }
    }

    pub fn phase(&self) -> Phase {
        if self.fed < self.prompt_len {
            Phase::Prefill
        } else {
            Phase::Decode
        }
    }

    pub fn prompt_len(&self) -> usize {
        self.prompt_len
    }

    fn generated(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    /// Samples the next token from the logits after the last fed token (scratch: penalties
    /// are applied in place). Touches only this sequence, so a batch's sequences sample in
    /// parallel; [`on_sampled`](Self::on_sampled) then takes the token.
    pub fn sample(&mut self, logits: &mut [f32]) -> Sampled {
        self.sampler.sample(logits, &self.tokens)
    }

    /// Takes the token [`sample`](Self::sample) drew: pushes its events and returns whether
    /// the sequence has finished.
    pub fn on_sampled(
        &mut self,
        sampled: Sampled,
        tokenizer: &Tokenizer,
        events: &mut Vec<Event>,
    ) -> bool {
        if self.first_token.is_none() {
            self.first_token = Some(Instant::now());
        }
        let token = sampled.token;
        self.tokens.push(token);
        if self.channels.classify(token) == Channel::Reasoning {
            self.reasoning_tokens += 1;
        }
        let logprob = self.want_logprobs.then(|| TokenLogprob {
            token,
            logprob: sampled.logprob.unwrap_or(f32::NAN),
            top: sampled.top_logprobs,
        });

        if self.stop_ids.contains(&token) {
            // The stop token itself is not text; release what was held back for a stop string.
            self.push_token(token, Vec::new(), logprob, events);
            self.release_held_text(events);
            let stop = tokenizer.token_text(token).map(str::to_owned);
            self.push(self.finished(FinishReason::Stop, stop), events);
            return true;
        }

        let piece = self.decoder.push(tokenizer, token);
        let outcome = self.stop_strings.push(&piece);
        let pieces = self.channels.push(token, &outcome.emit);
        self.push_token(token, pieces, logprob, events);
        if outcome.stopped {
            self.push(self.finished(FinishReason::Stop, outcome.matched), events);
            return true;
        }
        if self.generated() >= self.max_new {
            self.release_held_text(events);
            self.push(self.finished(FinishReason::Length, None), events);
            return true;
        }
        false
    }

    /// One token event carrying the token's first text piece; a token whose text crosses a
    /// think tag yields further pieces as text events on their own channel.
    fn push_token(
        &self,
        token_id: u32,
        pieces: Vec<(Channel, String)>,
        logprob: Option<TokenLogprob>,
        events: &mut Vec<Event>,
    ) {
        let mut pieces = pieces.into_iter();
        let (channel, text) = pieces
            .next()
            .unwrap_or_else(|| (self.channels.channel(), String::new()));
        self.push(
            EventKind::Token {
                token_id,
                text,
                channel,
                logprob,
            },
            events,
        );
        for (channel, text) in pieces {
            self.push(EventKind::Text { text, channel }, events);
        }
    }

    /// At a finish that is not a stop string: whatever the decoder, the stop matcher and the
    /// channel splitter still hold is real output.
    fn release_held_text(&mut self, events: &mut Vec<Event>) {
        let tail = self.decoder.flush();
        let mut text = self.stop_strings.push(&tail).emit;
        text.push_str(&self.stop_strings.flush());
        let last = self.tokens.last().copied().unwrap_or(0);
        let mut pieces = if text.is_empty() {
            Vec::new()
        } else {
            self.channels.push(last, &text)
        };
        pieces.extend(self.channels.flush());
        for (channel, text) in pieces {
            self.push(EventKind::Text { text, channel }, events);
        }
    }

    fn push(&self, kind: EventKind, events: &mut Vec<Event>) {
        events.push(Event { seq: self.id, kind });
    }

    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_len as u32,
            completion_tokens: self.generated() as u32,
            cached_tokens: self.cached as u32,
            reasoning_tokens: self.reasoning_tokens as u32,
        }
    }

    fn finished(&self, reason: FinishReason, stop: Option<String>) -> EventKind {
        let now = Instant::now();
        let started = self.started.unwrap_or(self.created);
        let timings = match self.first_token {
            Some(first) => Timings {
                queued: (started - self.created).as_secs_f64(),
                time_to_first_token: (first - self.created).as_secs_f64(),
                prefill: (first - started).as_secs_f64(),
                decode: (now - first).as_secs_f64(),
            },
            None => Timings {
                queued: (now - self.created).as_secs_f64(),
                ..Timings::default()
            },
        };
        EventKind::Finished {
            reason,
            stop,
            usage: self.usage(),
            timings,
        }
    }

    pub fn finish_event(&self, reason: FinishReason) -> Event {
        Event {
            seq: self.id,
            kind: self.finished(reason, None),
        }
    }

    pub fn error_event(&self, error: &Error) -> Event {
        Event {
            seq: self.id,
            kind: EventKind::Failed {
                code: error.code,
                message: error.message.clone(),
                usage: self.usage(),
            },
        }
    }
}

/// Index of the largest value; NaN never wins, ties go to the lowest index.
pub(super) fn argmax(row: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_val = f32::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if v > best_val {
            best_val = v;
            best = i;
        }
    }
    best as u32
}
