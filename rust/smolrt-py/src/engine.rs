//! `_core.Engine`: a loaded model plus its sequences, stepped by its own thread (`stepper`) from
//! load to `close`; Python admits and cancels sequences and takes the events (`next_events`, on
//! the scheduler's dispatcher thread, or `take_events` on an attached event loop, for the
//! sequences it admitted). Any thread may tokenize. The engine sits behind a mutex that is only
//! ever taken with the GIL released, so a thread waiting for a step never blocks the interpreter.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use smolrt_core::engine::{Engine, EngineOptions, GenerationRequest};
use smolrt_core::kv::KvType;
use smolrt_core::tokenizer::Tokenizer;
use smolrt_core::{Error, ErrorCode};

use crate::events;
use crate::gateway::detached;
use crate::params;
use crate::stepper::{lock, Stepper};

#[pyclass(name = "Engine", module = "smolrt._core", frozen)]
pub struct PyEngine {
    /// Owns the engine: every call here takes it through `Stepper::engine`.
    stepper: Arc<Stepper>,
    /// The stepping thread, joined by `close`.
    step_thread: Mutex<Option<JoinHandle<()>>>,
    tokenizer: Arc<Tokenizer>,
    info: Py<PyDict>,
}

impl Drop for PyEngine {
    /// An engine dropped without `close` still stops its thread (which then frees the model).
    fn drop(&mut self) {
        self.stepper.close();
    }
}

#[pymethods]
impl PyEngine {
    #[staticmethod]
    #[pyo3(signature = (path, *, kv_budget_mb=256, kv_block_size=16, kv_type="f16", max_batch_tokens=512, max_sequences=256))]
    fn load(
        py: Python<'_>,
        path: std::path::PathBuf,
        kv_budget_mb: usize,
        kv_block_size: usize,
        kv_type: &str,
        max_batch_tokens: usize,
        max_sequences: usize,
    ) -> PyResult<Self> {
        let kv_type = KvType::parse(kv_type).map_err(|e| crate::errors::to_pyerr(py, e))?;
        let options = EngineOptions {
            kv_budget_bytes: kv_budget_mb.saturating_mul(1 << 20),
            kv_block_size,
            kv_type,
            max_batch_tokens,
            max_sequences,
        };
        let engine = detached(py, move || Engine::load(&path, options))?;
        let info = crate::inspect::engine_info(py, &engine)?;
        let tokenizer = engine.tokenizer_arc();
        let (stepper, step_thread) = Stepper::start(engine).map_err(|e| {
            crate::errors::to_pyerr(
                py,
                smolrt_core::Error::internal(format!("cannot start the stepping thread: {e}")),
            )
        })?;
        Ok(Self {
            stepper,
            step_thread: Mutex::new(Some(step_thread)),
            tokenizer,
            info: info.unbind(),
        })
    }

    /// Model and engine facts: architecture, sizes, context length, chat template, KV pool.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> Bound<'py, PyDict> {
        self.info.bind(py).clone()
    }

    #[pyo3(signature = (text, *, add_special=true, parse_special=false))]
    fn tokenize(
        &self,
        py: Python<'_>,
        text: String,
        add_special: bool,
        parse_special: bool,
    ) -> PyResult<Vec<u32>> {
        let tok = self.tokenizer.clone();
        detached(py, move || tok.encode(&text, add_special, parse_special))
    }

    #[pyo3(signature = (ids, *, skip_special=false))]
    fn detokenize(
        &self,
        py: Python<'_>,
        ids: Bound<'_, PyAny>,
        skip_special: bool,
    ) -> PyResult<String> {
        let ids = params::prompt_ids(py, &ids)?;
        let tok = self.tokenizer.clone();
        detached(py, move || tok.decode(&ids, skip_special))
    }

    /// The vocabulary string of one token, or None for an id outside the vocabulary.
    fn token_text(&self, id: u32) -> Option<String> {
        self.tokenizer.token_text(id).map(str::to_owned)
    }

    /// Admit a generation; returns its sequence id. Raises InvalidRequestError for bad
    /// parameters or a prompt past the context, ResourceExhaustedError when full.
    /// `session`: continue that session's resident KV and keep it resident afterwards.
    /// `to_loop`: its events go to the attached event loop (`take_events`), if there is one.
    #[pyo3(signature = (prompt, params=None, session=None, to_loop=false))]
    fn add_request(
        &self,
        py: Python<'_>,
        prompt: Bound<'_, PyAny>,
        params: Option<Bound<'_, PyDict>>,
        session: Option<u64>,
        to_loop: bool,
    ) -> PyResult<u64> {
        let prompt = params::prompt_ids(py, &prompt)?;
        let p = params::extract(py, params.as_ref())?;
        let request = GenerationRequest {
            prompt,
            sampling: p.sampling,
            stop: p.stop,
            session,
        };
        // Checked and queued for the next step: no wait for the step that runs.
        let stepper = &self.stepper;
        let seq = detached(py, || {
            stepper.add(request, |seq| {
                if to_loop {
                    stepper.outbox.route_to_loop(seq);
                }
            })
        })?;
        Ok(seq)
    }

    /// Every event the stepping thread has produced since the last call, as tuples in order,
    /// waiting for some if there are none (with the GIL released); None once `close` has ended
    /// the stream and every event was taken.
    fn next_events<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyList>>> {
        let stepper = Arc::clone(&self.stepper);
        let Some(evs) = detached(py, move || Ok(stepper.outbox.next_blocking()))? else {
            return Ok(None);
        };
        events::to_py_list(py, evs).map(Some)
    }

    /// Attach an event loop: the events of sequences admitted `to_loop` wait for it, and the
    /// stepping thread writes a byte to the pipe whose write end is `fd` when some do; the loop
    /// then calls `take_events`. Owns `fd` from here, even when it raises (a loop is attached
    /// already).
    fn attach_loop(&self, py: Python<'_>, fd: i32) -> PyResult<()> {
        attach_pipe(&self.stepper, fd).map_err(|e| crate::errors::to_pyerr(py, e))
    }

    /// For the attached loop: the queued events (never waits; empty when there are none).
    fn take_events<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        events::to_py_list(py, self.stepper.outbox.take())
    }

    /// Hand the loop's sequences back to `next_events`; returns the events left for the caller to
    /// route (those not taken yet once the stream has ended: no dispatcher thread takes them).
    fn detach_loop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        events::to_py_list(py, self.stepper.outbox.detach())
    }

    /// Stop a sequence before the next step and free its KV blocks; its final event comes through
    /// `next_events` (none if it had already finished). Never waits for a step.
    fn cancel(&self, seq: u64) {
        self.stepper.cancel(seq);
    }

    /// Cancel every sequence, end the event stream after their final events, and wait for the
    /// stepping thread to stop. Later admissions are never stepped.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stepper.close();
        let thread = lock(&self.step_thread).take();
        detached(py, move || {
            if let Some(thread) = thread {
                // the thread catches every panic of a step, so it only ends by closing
                let _ = thread.join();
            }
            Ok(())
        })
    }

    /// Free a session's resident KV before the next step; returns whether it had any. Never
    /// waits for a step.
    fn drop_session(&self, session: u64) -> bool {
        self.stepper.drop_session(session)
    }

    /// How many leading tokens of `prompt` a request under `session` would not prefill again.
    fn cached_prefix(
        &self,
        py: Python<'_>,
        session: u64,
        prompt: Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let prompt = params::prompt_ids(py, &prompt)?;
        detached(py, || {
            Ok(self
                .stepper
                .readings
                .residents
                .cached_prefix(session, &prompt))
        })
    }

    /// Tokens of a session's conversation whose KV is resident (0 once evicted).
    fn resident_tokens(&self, session: u64) -> usize {
        self.stepper.readings.residents.resident_tokens(session)
    }

    fn active_sequences(&self) -> usize {
        self.stepper.active_sequences()
    }

    /// KV pool occupancy: blocks total, free and in use, block size, bytes per block.
    fn kv_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let kv = &self.stepper.readings.kv;
        let (total, free) = (kv.total_blocks, kv.free_blocks());
        let (bs, bpb, kv_type) = (kv.block_size, kv.bytes_per_block, kv.kv_type);
        let d = PyDict::new(py);
        d.set_item("blocks_total", total)?;
        d.set_item("blocks_free", free)?;
        d.set_item("blocks_in_use", total - free)?;
        d.set_item("block_size", bs)?;
        d.set_item("kv_type", kv_type)?;
        d.set_item("bytes_per_block", bpb)?;
        Ok(d)
    }

    /// Argmax after each position when `ids` are fed in one pass (teacher forcing).
    fn teacher_forced_argmax(&self, py: Python<'_>, ids: Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
        let ids = params::prompt_ids(py, &ids)?;
        detached(py, || self.stepper.engine().teacher_forced_argmax(&ids))
    }

    /// Logits of the vocabulary entries `token_ids` after each position of `ids` (teacher
    /// forcing): `[len(ids)][len(token_ids)]`.
    fn teacher_forced_logits(
        &self,
        py: Python<'_>,
        ids: Bound<'_, PyAny>,
        token_ids: Bound<'_, PyAny>,
    ) -> PyResult<Vec<Vec<f32>>> {
        let ids = params::prompt_ids(py, &ids)?;
        let pick = params::token_ids(py, "token_ids", &token_ids)?;
        detached(py, || {
            self.stepper.engine().teacher_forced_logits(&ids, &pick)
        })
    }
}

#[cfg(unix)]
fn attach_pipe(stepper: &Stepper, fd: i32) -> Result<(), Error> {
    use std::os::fd::{FromRawFd, OwnedFd};
    if fd < 0 {
        return Err(Error::invalid_request(format!(
            "{fd} is not a file descriptor"
        )));
    }
    // SAFETY: the caller hands this descriptor over (the scheduler passes the pipe's write end
    // and never uses or closes it again), so owning and eventually closing it here is sound.
    let pipe = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    stepper.outbox.attach(pipe).map_err(|_| {
        Error::new(
            ErrorCode::FailedPrecondition,
            "an event loop is already attached to this engine",
        )
    })
}

#[cfg(not(unix))]
fn attach_pipe(_stepper: &Stepper, _fd: i32) -> Result<(), Error> {
    Err(Error::new(
        ErrorCode::FailedPrecondition,
        "routing events on an event loop needs a Unix pipe",
    ))
}
