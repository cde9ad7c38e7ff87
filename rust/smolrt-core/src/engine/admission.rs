//! What a request is held to when it is admitted, checkable without the engine: the limits
//! fixed at load (vocabulary, context, KV capacity, sequences at once) and the id it gets.
//!
//! Why apart from the engine: a step holds the engine for its whole length (a 512-token prefill
//! chunk takes a third of a second on two cores), and an admission that waited for it held up
//! its caller just as long: a server's event loop, with every other stream's tokens behind it.
//! With these, a front end (smolrt-py's stepper) answers a bad request at once and queues a
//! good one for the next step, keeping the count of live sequences and their sessions itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{GenerationRequest, SeqId, SessionKey};
use crate::error::{Error, ErrorCode, Result};

#[derive(Debug, Clone)]
pub struct Admission {
    vocab: usize,
    context: usize,
    /// Tokens the whole KV pool holds.
    kv_capacity: usize,
    max_sequences: usize,
    /// The next sequence id, shared by every copy: ids grow in the order they are handed out.
    next_id: Arc<AtomicU64>,
}

impl Admission {
    pub(super) fn new(
        vocab: usize,
        context: usize,
        kv_capacity: usize,
        max_sequences: usize,
    ) -> Self {
        Self {
            vocab,
            context,
            kv_capacity,
            max_sequences,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Everything about `request` alone: its prompt against the vocabulary, the context and the
    /// KV pool, and its sampling and stop parameters.
    pub fn check(&self, request: &GenerationRequest) -> Result<()> {
        let vocab = self.vocab;
        if request.prompt.is_empty() {
            return Err(Error::invalid_request(
                "the prompt is empty: at least one token is needed",
            ));
        }
        if let Some(&bad) = request.prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::invalid_request(format!(
                "prompt token id {bad} is outside the vocabulary (size {vocab})"
            )));
        }
        let ctx = self.context;
        if request.prompt.len() >= ctx {
            return Err(Error::invalid_request(format!(
                "the prompt has {} tokens but the model's context is {ctx} tokens; \
                 at least one position must remain for the reply",
                request.prompt.len()
            )));
        }
        let needed = request.prompt.len() + 1;
        let capacity = self.kv_capacity;
        if needed > capacity {
            return Err(Error::resource_exhausted(format!(
                "the prompt needs KV room for {needed} tokens but the whole KV pool holds {capacity}; \
                 raise the KV memory budget"
            )));
        }
        request.sampling.validate(vocab)?;
        request.stop.validate(vocab)
    }

    /// Whether one more sequence fits beside `active` live ones, and its session (if any) is
    /// free: `busy` says whether a live sequence holds it.
    pub fn check_room(
        &self,
        active: usize,
        session: Option<SessionKey>,
        busy: impl FnOnce(SessionKey) -> bool,
    ) -> Result<()> {
        if active >= self.max_sequences {
            return Err(Error::resource_exhausted(format!(
                "{active} sequences are already active (the limit is {})",
                self.max_sequences
            )));
        }
        match session {
            Some(key) if busy(key) => Err(Error::new(
                ErrorCode::FailedPrecondition,
                format!("session {key} already has a generation running"),
            )),
            _ => Ok(()),
        }
    }

    /// A fresh sequence id.
    pub fn next_id(&self) -> SeqId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(prompt: Vec<u32>, session: Option<SessionKey>) -> GenerationRequest {
        GenerationRequest {
            prompt,
            sampling: Default::default(),
            stop: Default::default(),
            session,
        }
    }

    #[test]
    fn check_holds_a_request_to_the_limits_fixed_at_load() {
        // vocabulary 100, context 16 tokens, KV room for 8
        let rules = Admission::new(100, 16, 8, 2);
        assert!(rules.check(&request(vec![1, 2, 3], None)).is_ok());
        let code = |prompt: Vec<u32>| rules.check(&request(prompt, None)).unwrap_err().code;
        assert_eq!(code(vec![]), ErrorCode::InvalidRequest);
        assert_eq!(code(vec![1, 100]), ErrorCode::InvalidRequest);
        assert_eq!(code(vec![1; 8]), ErrorCode::ResourceExhausted);
        let past_context = Admission::new(100, 4, 64, 2);
        let err = past_context.check(&request(vec![1; 4], None)).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidRequest);
        let mut hot = request(vec![1], None);
        hot.sampling.temperature = -1.0;
        assert_eq!(
            rules.check(&hot).unwrap_err().code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn check_room_counts_live_sequences_and_busy_sessions() {
        let rules = Admission::new(100, 16, 8, 2);
        assert!(rules.check_room(1, Some(7), |_| false).is_ok());
        let full = rules.check_room(2, None, |_| false).unwrap_err();
        assert_eq!(full.code, ErrorCode::ResourceExhausted);
        let busy = rules.check_room(1, Some(7), |key| key == 7).unwrap_err();
        assert_eq!(busy.code, ErrorCode::FailedPrecondition);
        assert!(rules.check_room(1, Some(8), |key| key == 7).is_ok());
    }

    #[test]
    fn copies_hand_out_ids_from_one_counter() {
        let rules = Admission::new(100, 16, 8, 2);
        let copy = rules.clone();
        let ids = [rules.next_id(), copy.next_id(), rules.next_id()];
        assert_eq!(ids, [1, 2, 3]);
    }
}
