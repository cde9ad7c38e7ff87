//! Core events → plain Python tuples. Tuples are cheap to build on the per-token path; the
//! Python layer turns them into typed event objects once, in `smolrt.events`.

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use pyo3::IntoPyObjectExt;
use smolrt_core::engine::{Event, EventKind};

pub fn to_py<'py>(py: Python<'py>, event: Event) -> PyResult<Bound<'py, PyTuple>> {
    let seq = event.seq;
    let items: Vec<Py<PyAny>> = match event.kind {
        EventKind::Token {
            token_id,
            text,
            channel,
            logprob,
        } => {
            let (lp, top) = match logprob {
                Some(lp) => (Some(lp.logprob), Some(lp.top)),
                None => (None, None),
            };
            vec![
                "token".into_py_any(py)?,
                seq.into_py_any(py)?,
                token_id.into_py_any(py)?,
                text.into_py_any(py)?,
                channel.as_str().into_py_any(py)?,
                lp.into_py_any(py)?,
                top.into_py_any(py)?,
            ]
        }
        EventKind::Text { text, channel } => vec![
            "text".into_py_any(py)?,
            seq.into_py_any(py)?,
            text.into_py_any(py)?,
            channel.as_str().into_py_any(py)?,
        ],
        EventKind::Finished {
            reason,
            stop,
            usage,
            timings,
        } => vec![
            "finished".into_py_any(py)?,
            seq.into_py_any(py)?,
            reason.as_str().into_py_any(py)?,
            stop.into_py_any(py)?,
            usage.prompt_tokens.into_py_any(py)?,
            usage.completion_tokens.into_py_any(py)?,
            usage.cached_tokens.into_py_any(py)?,
            usage.reasoning_tokens.into_py_any(py)?,
            timings.queued.into_py_any(py)?,
            timings.time_to_first_token.into_py_any(py)?,
            timings.prefill.into_py_any(py)?,
            timings.decode.into_py_any(py)?,
        ],
        EventKind::Failed {
            code,
            message,
            usage,
        } => vec![
            "failed".into_py_any(py)?,
            seq.into_py_any(py)?,
            code.as_str().into_py_any(py)?,
            message.into_py_any(py)?,
            usage.prompt_tokens.into_py_any(py)?,
            usage.completion_tokens.into_py_any(py)?,
        ],
    };
    PyTuple::new(py, items)
}

/// A batch of events as a list of tuples, in order.
pub fn to_py_list(py: Python<'_>, events: Vec<Event>) -> PyResult<Bound<'_, PyList>> {
    let tuples = events
        .into_iter()
        .map(|e| to_py(py, e))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, tuples)
}
