//! `_core.Engine`: a loaded model plus its sequences. The Python scheduler thread calls `step()`;
//! any thread may tokenize. The engine sits behind a mutex that is only ever taken with the GIL
//! released, so a thread waiting for a step never blocks the interpreter.

use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use smolrt_core::engine::{Engine, EngineOptions, GenerationRequest};
use smolrt_core::kv::KvType;
use smolrt_core::tokenizer::Tokenizer;

use crate::events;
use crate::gateway::detached;
use crate::params;

#[pyclass(name = "Engine", module = "smolrt._core", frozen)]
pub struct PyEngine {
    engine: Mutex<Engine>,
    tokenizer: Arc<Tokenizer>,
    info: Py<PyDict>,
}

/// A panic inside a step poisons the mutex; the engine's state is still memory-safe, and the
/// sequences involved were reported failed, so later calls carry on.
fn lock(engine: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    engine
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        Ok(Self {
            tokenizer: engine.tokenizer_arc(),
            engine: Mutex::new(engine),
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
    #[pyo3(signature = (prompt, params=None, session=None))]
    fn add_request(
        &self,
        py: Python<'_>,
        prompt: Bound<'_, PyAny>,
        params: Option<Bound<'_, PyDict>>,
        session: Option<u64>,
    ) -> PyResult<u64> {
        let prompt = params::prompt_ids(py, &prompt)?;
        let p = params::extract(py, params.as_ref())?;
        let request = GenerationRequest {
            prompt,
            sampling: p.sampling,
            stop: p.stop,
            session,
        };
        detached(py, || lock(&self.engine).add(request))
    }

    /// Advance every active sequence by one batched forward; returns event tuples.
    fn step<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let evs = detached(py, || lock(&self.engine).step())?;
        let tuples = evs
            .into_iter()
            .map(|e| events::to_py(py, e))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, tuples)
    }

    /// Stop a sequence and free its KV blocks; returns its final event tuple, or None if the
    /// sequence is unknown (already finished).
    fn cancel<'py>(
        &self,
        py: Python<'py>,
        seq: u64,
    ) -> PyResult<Option<Bound<'py, pyo3::types::PyTuple>>> {
        let ev = detached(py, || Ok(lock(&self.engine).cancel(seq)))?;
        ev.map(|e| events::to_py(py, e)).transpose()
    }

    /// Free a session's resident KV; returns whether it had any.
    fn drop_session(&self, py: Python<'_>, session: u64) -> PyResult<bool> {
        detached(py, || Ok(lock(&self.engine).drop_session(session)))
    }

    /// How many leading tokens of `prompt` a request under `session` would not prefill again.
    fn cached_prefix(
        &self,
        py: Python<'_>,
        session: u64,
        prompt: Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let prompt = params::prompt_ids(py, &prompt)?;
        detached(
            py,
            || Ok(lock(&self.engine).cached_prefix(session, &prompt)),
        )
    }

    /// Tokens of a session's conversation whose KV is resident (0 once evicted).
    fn resident_tokens(&self, py: Python<'_>, session: u64) -> PyResult<usize> {
        detached(py, || Ok(lock(&self.engine).resident_tokens(session)))
    }

    fn active_sequences(&self, py: Python<'_>) -> PyResult<usize> {
        detached(py, || Ok(lock(&self.engine).active_sequences()))
    }

    /// KV pool occupancy: blocks total, free and in use, block size, bytes per block.
    fn kv_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (total, free, bs, bpb, kv_type) = detached(py, || {
            let e = lock(&self.engine);
            let p = e.pool();
            Ok((
                p.total_blocks(),
                p.free_blocks(),
                p.block_size(),
                p.bytes_per_block(),
                p.kv_type().name(),
            ))
        })?;
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
        detached(py, || lock(&self.engine).teacher_forced_argmax(&ids))
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
        detached(py, || lock(&self.engine).teacher_forced_logits(&ids, &pick))
    }
}
