//! The engine: one model, one KV block pool, many sequences. `step()` advances every active
//! sequence by one batched forward — decode tokens of running sequences plus bounded prefill
//! chunks of new ones (continuous batching) — then samples, detokenizes and checks stops.
//!
//! The engine is single-threaded by design: one stepping thread (smolrt-py's `Stepper`) calls
//! `step()` back to back; other threads take its lock between steps. Parallelism lives inside the
//! forward pass.

mod admission;
mod channels;
mod events;
mod options;
mod resident;
mod sequence;

pub use admission::Admission;
pub use channels::{Channel, ChannelSplitter, ThinkTags};
pub use events::{Event, EventKind, FinishReason, Timings, TokenLogprob, Usage};
pub use options::{EngineOptions, GenerationRequest};
pub use resident::{ResidentDirectory, SessionKey};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::arch::{for_each_mut, BatchItem, Logits, Model};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::kv::{KvBlockPool, SeqKv};
use crate::sampling::Sampled;
use crate::tokenizer::Tokenizer;
use resident::{reserve_evicting, reusable, ResidentStore};
use sequence::{Phase, Sequence};

pub type SeqId = u64;

pub struct Engine {
    file: GgufFile,
    config: ModelConfig,
    model: Model,
    tokenizer: Arc<Tokenizer>,
    pool: KvBlockPool,
    options: EngineOptions,
    /// BTreeMap so that admission order (ids grow) is iteration order: fair, first come first served.
    seqs: BTreeMap<SeqId, Sequence>,
    /// The limits a request is held to, and the ids sequences get.
    admission: Admission,
    /// Sessions' KV kept between turns.
    resident: ResidentStore,
    /// Each step's logits, the buffer kept from step to step.
    logits: Logits,
}

impl Engine {
    pub fn load(path: impl AsRef<Path>, options: EngineOptions) -> Result<Self> {
        options.validate()?;
        let file = GgufFile::open(path)?;
        let config = ModelConfig::from_gguf(&file)?;
        let tokenizer = Arc::new(crate::tokenizer::from_gguf(&file)?);
        let model = Model::load(&file, &config)?;
        file.release_mapped_pages();
        let pool = KvBlockPool::with_type(
            &config,
            options.kv_block_size,
            options.kv_budget_bytes,
            options.kv_type,
        )?;
        let admission = Admission::new(
            config.vocab_size,
            config.context_length,
            pool.total_blocks() * pool.block_size(),
            options.max_sequences,
        );
        Ok(Self {
            file,
            config,
            model,
            tokenizer,
            pool,
            options,
            seqs: BTreeMap::new(),
            admission,
            resident: ResidentStore::default(),
            logits: Logits::default(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    /// A shared handle, so callers can tokenize while a step runs.
    pub fn tokenizer_arc(&self) -> Arc<Tokenizer> {
        Arc::clone(&self.tokenizer)
    }
    pub fn file(&self) -> &GgufFile {
        &self.file
    }
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }
    pub fn pool(&self) -> &KvBlockPool {
        &self.pool
    }
    /// Sequences admitted and not yet finished (waiting for prefill or decoding).
    pub fn active_sequences(&self) -> usize {
        self.seqs.len()
    }

    /// The running sequences, in admission order.
    pub fn sequence_ids(&self) -> Vec<SeqId> {
        self.seqs.keys().copied().collect()
    }

    pub fn has_work(&self) -> bool {
        !self.seqs.is_empty()
    }

    /// What admission checks, and the ids it hands out: a copy that shares the id counter, for
    /// a front end that admits while a step runs (see [`Admission`] and [`add_with_id`](Self::add_with_id)).
    pub fn admission(&self) -> Admission {
        self.admission.clone()
    }

    /// Admit a generation. Validates everything up front so that a bad request never reaches
    /// `step()`, where an error would have to be reported asynchronously.
    pub fn add(&mut self, request: GenerationRequest) -> Result<SeqId> {
        let id = self.admission.next_id();
        self.add_with_id(id, request)?;
        Ok(id)
    }

    /// [`add`](Self::add) under an id [`Admission::next_id`] handed out earlier, with the same
    /// checks. Sequences are served in id order, however their admissions arrive here.
    pub fn add_with_id(&mut self, id: SeqId, request: GenerationRequest) -> Result<()> {
        self.admission.check(&request)?;
        let seqs = &self.seqs;
        self.admission
            .check_room(seqs.len(), request.session, |key| {
                seqs.values().any(|s| s.session == Some(key))
            })?;
        let ctx = self.config.context_length;
        let session = request.session;
        let mut seq = Sequence::new(id, request, &self.tokenizer, ctx);
        if let Some(resident) = session.and_then(|key| self.resident.take(key)) {
            self.resume(&mut seq, resident);
        }
        self.seqs.insert(id, seq);
        Ok(())
    }

    /// Start `seq` from its session's resident KV: keep the longest prefix the new prompt shares
    /// with what is cached, and prefill only the rest. At least one prompt token is always fed,
    /// since its logits are needed to sample the first new token.
    fn resume(&mut self, seq: &mut Sequence, mut resident: resident::Resident) {
        let keep = reusable(&resident.tokens, &seq.tokens[..seq.prompt_len()]);
        self.pool.truncate(&mut resident.kv, keep);
        seq.kv = resident.kv;
        seq.fed = keep;
        seq.cached = keep;
    }

    /// A sequence that ended: a session's KV stays resident for its next turn, anything else
    /// goes back to the pool.
    fn retire(&mut self, mut seq: Sequence) {
        match seq.session {
            Some(key) => self
                .resident
                .put(key, std::mem::take(&mut seq.kv), seq.tokens),
            None => self.pool.release(&mut seq.kv),
        }
    }

    /// Stop a sequence now. Returns its final event, or None if unknown. Its KV is freed (or, for
    /// a session, kept resident: what was fed before the cancel is still valid).
    pub fn cancel(&mut self, id: SeqId) -> Option<Event> {
        let seq = self.seqs.remove(&id)?;
        let event = seq.finish_event(FinishReason::Cancelled);
        self.retire(seq);
        Some(event)
    }

    /// Stop every sequence now (shutting down); their final events in admission order.
    pub fn cancel_all(&mut self) -> Vec<Event> {
        self.sequence_ids()
            .into_iter()
            .filter_map(|id| self.cancel(id))
            .collect()
    }

    /// End every sequence with `error`, freeing its KV: after a step failed in a way no
    /// sequence's own event covers, nothing it ran is to be trusted, and later requests are
    /// served afresh.
    pub fn fail_all(&mut self, error: &Error) -> Vec<Event> {
        let seqs = std::mem::take(&mut self.seqs);
        seqs.into_values()
            .map(|seq| self.abort(seq, error))
            .collect()
    }

    /// End a sequence (out of the map) with `error`: its KV is freed, never kept resident, as
    /// what was computed for it may be wrong. Returns its final event.
    fn abort(&mut self, mut seq: Sequence, error: &Error) -> Event {
        self.pool.release(&mut seq.kv);
        seq.error_event(error)
    }

    /// Forget a session's resident KV. Returns whether there was any.
    pub fn drop_session(&mut self, key: SessionKey) -> bool {
        self.resident.drop_key(key, &mut self.pool)
    }

    /// Which tokens each session has resident and how much of a prompt they cover
    /// (`cached_prefix`, `resident_tokens`), readable while a step runs: a shared handle.
    pub fn resident_directory(&self) -> ResidentDirectory {
        self.resident.directory()
    }

    /// Sessions holding resident KV.
    pub fn resident_sessions(&self) -> usize {
        self.resident.len()
    }

    /// One batched forward over every active sequence. Returns the events it produced: at most one
    /// token event per sequence, and a finish (or error) event for each sequence that ended.
    pub fn step(&mut self) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let plan = self.plan_batch(&mut events);
        if plan.is_empty() {
            return Ok(events);
        }

        // Take the planned sequences out of the map so that the batch can borrow their KV
        // mutably while the pool is borrowed too.
        let mut batch: Vec<(Sequence, usize, usize)> = plan
            .into_iter()
            .filter_map(|(id, start, len)| self.seqs.remove(&id).map(|s| (s, start, len)))
            .collect();
        let forward = {
            let mut items: Vec<BatchItem<'_>> = batch
                .iter_mut()
                .map(|(seq, start, len)| BatchItem {
                    tokens: &seq.tokens[*start..*start + *len],
                    kv: &mut seq.kv,
                    all_logits: false,
                })
                .collect();
            self.model
                .forward_into(&mut self.pool, &mut items, &mut self.logits)
        };
        if let Err(e) = forward {
            // A failed forward leaves these sequences' KV in an unknown state: end them all
            // with the error rather than risk silently wrong output.
            for (seq, _, _) in batch {
                events.push(self.abort(seq, &e));
            }
            return Ok(events);
        }

        // Every sequence past its prompt samples its next token; they touch only their own
        // sequence and logits row, so a batch samples on the pool (at temperature > 0 a draw
        // reads the whole vocabulary, 33-63 us a row of 49k logits, and the other core waited).
        let mut sampled: Vec<Option<Sampled>> = vec![None; batch.len()];
        {
            let mut draws: Vec<_> = batch
                .iter_mut()
                .zip(self.logits.items_mut())
                .zip(sampled.iter_mut())
                .filter(|(((seq, start, len), _), _)| start + len >= seq.tokens.len())
                .collect();
            for_each_mut(&mut draws, |(((seq, _, _), row), out)| {
                **out = Some(seq.sample(row));
            });
        }
        for ((mut seq, start, len), sampled) in batch.into_iter().zip(sampled) {
            seq.fed = start + len;
            let Some(sampled) = sampled else {
                // Prefill still has prompt tokens to ingest: nothing to sample yet.
                self.seqs.insert(seq.id, seq);
                continue;
            };
            let finished = seq.on_sampled(sampled, &self.tokenizer, &mut events);
            if finished {
                self.retire(seq);
            } else {
                self.seqs.insert(seq.id, seq);
            }
        }
        Ok(events)
    }

    /// Decide what each sequence feeds this step, reserving KV room for it. Decode tokens first
    /// (they keep running streams flowing), then prefill chunks, oldest sequence first, within
    /// `max_batch_tokens`. Returns (sequence, first token index, token count).
    fn plan_batch(&mut self, events: &mut Vec<Event>) -> Vec<(SeqId, usize, usize)> {
        let mut plan = Vec::new();
        let mut budget = self.options.max_batch_tokens;
        let mut failed: Vec<(SeqId, Error)> = Vec::new();

        for (id, seq) in self.seqs.iter_mut() {
            if seq.phase() != Phase::Decode {
                continue;
            }
            match reserve_evicting(&mut self.pool, &mut self.resident, &mut seq.kv, 1) {
                Ok(()) => {
                    plan.push((*id, seq.fed, 1));
                    budget = budget.saturating_sub(1);
                }
                Err(e) => failed.push((*id, e)),
            }
        }
        for (id, seq) in self.seqs.iter_mut() {
            if seq.phase() != Phase::Prefill || budget == 0 {
                continue;
            }
            let chunk = (seq.tokens.len() - seq.fed).min(budget);
            // When the pool is full of other sequences' blocks, wait for them to finish.
            if reserve_evicting(&mut self.pool, &mut self.resident, &mut seq.kv, chunk).is_ok() {
                seq.started.get_or_insert_with(std::time::Instant::now);
                plan.push((*id, seq.fed, chunk));
                budget -= chunk;
            }
        }
        if plan.is_empty() && failed.is_empty() {
            // Nothing can run: prefilling sequences hold blocks while each needs more. Fail the
            // youngest so the older ones can make progress (a deadlock otherwise).
            if let Some((&id, _)) = self
                .seqs
                .iter()
                .rev()
                .find(|(_, s)| s.phase() == Phase::Prefill)
            {
                failed.push((
                    id,
                    Error::resource_exhausted(
                        "the KV pool is full: this prompt cannot be prefilled alongside the others; \
                         retry later or raise the KV memory budget",
                    ),
                ));
            }
        }
        for (id, e) in failed {
            if let Some(seq) = self.seqs.remove(&id) {
                events.push(self.abort(seq, &e));
            }
        }
        plan
    }

    /// Teacher forcing: feed `tokens` through the model in one pass (on a scratch KV sequence)
    /// and return the argmax after each position. Used to check logits against a reference.
    pub fn teacher_forced_argmax(&mut self, tokens: &[u32]) -> Result<Vec<u32>> {
        let vocab = self.config.vocab_size;
        let logits = self.teacher_forced(tokens)?;
        Ok(logits.chunks(vocab).map(sequence::argmax).collect())
    }

    /// Teacher forcing like `teacher_forced_argmax`, returning after each position the logits of
    /// the vocabulary entries `pick` (in that order): a reference comparison needs the values, and
    /// a chosen subset keeps the copy small where the full row would be vocab-sized.
    pub fn teacher_forced_logits(&mut self, tokens: &[u32], pick: &[u32]) -> Result<Vec<Vec<f32>>> {
        let vocab = self.config.vocab_size;
        if let Some(&bad) = pick.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::invalid_request(format!(
                "token id {bad} is outside the vocabulary"
            )));
        }
        let logits = self.teacher_forced(tokens)?;
        Ok(logits
            .chunks(vocab)
            .map(|row| pick.iter().map(|&t| row[t as usize]).collect())
            .collect())
    }

    /// Every position's logits, `[tokens.len() * vocab]` row-major, from one forward pass.
    fn teacher_forced(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        if tokens.is_empty() || tokens.len() > self.config.context_length {
            return Err(Error::invalid_request(format!(
                "teacher forcing needs 1..={} tokens, got {}",
                self.config.context_length,
                tokens.len()
            )));
        }
        let vocab = self.config.vocab_size;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::invalid_request(format!(
                "token id {bad} is outside the vocabulary"
            )));
        }
        let mut kv = SeqKv::default();
        self.pool.reserve(&mut kv, tokens.len())?;
        let result = {
            let mut items = [BatchItem {
                tokens,
                kv: &mut kv,
                all_logits: true,
            }];
            self.model.forward(&mut self.pool, &mut items)
        };
        self.pool.release(&mut kv);
        let logits = result?;
        if logits.len() != 1 {
            return Err(Error::internal("forward returned no rows"));
        }
        Ok(logits.to_item_vec(0))
    }
}
