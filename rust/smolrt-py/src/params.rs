//! Python keyword parameters → core request types. Every wrong name, type or range becomes an
//! InvalidRequestError naming the parameter; ranges are checked by the core's `validate()`.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use smolrt_core::sampling::{SamplingParams, StopParams};

use crate::errors::invalid_request;

pub const KNOWN: &[&str] = &[
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "penalty_last_n",
    "logit_bias",
    "seed",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "stop",
    "stop_token_ids",
    "ignore_eos",
];

pub struct Extracted {
    pub sampling: SamplingParams,
    pub stop: StopParams,
}

/// `max_tokens` of None means "until the context is full".
pub fn extract(py: Python<'_>, params: Option<&Bound<'_, PyDict>>) -> PyResult<Extracted> {
    let mut sampling = SamplingParams::default();
    let mut stop = StopParams {
        max_tokens: u32::MAX,
        ..StopParams::default()
    };
    let Some(params) = params else {
        return Ok(Extracted { sampling, stop });
    };
    for (key, value) in params.iter() {
        let key: String = key
            .extract()
            .map_err(|_| invalid_request(py, "parameter names must be strings"))?;
        if value.is_none() {
            // None means "the default" for every parameter.
            continue;
        }
        let v = &value;
        match key.as_str() {
            "temperature" => sampling.temperature = float(py, &key, v)?,
            "top_k" => sampling.top_k = uint(py, &key, v)?,
            "top_p" => sampling.top_p = float(py, &key, v)?,
            "min_p" => sampling.min_p = float(py, &key, v)?,
            "repetition_penalty" => sampling.repetition_penalty = float(py, &key, v)?,
            "presence_penalty" => sampling.presence_penalty = float(py, &key, v)?,
            "frequency_penalty" => sampling.frequency_penalty = float(py, &key, v)?,
            "penalty_last_n" => sampling.penalty_last_n = uint(py, &key, v)?,
            "logit_bias" => sampling.logit_bias = logit_bias(py, v)?,
            "seed" => sampling.seed = Some(u64_(py, &key, v)?),
            "logprobs" => sampling.logprobs = boolean(py, &key, v)?,
            "top_logprobs" => sampling.top_logprobs = uint(py, &key, v)?,
            "max_tokens" => {
                let n: i64 = int(py, &key, v)?;
                if n < 1 {
                    return Err(invalid_request(
                        py,
                        format!("max_tokens must be at least 1 (or None for no limit), got {n}"),
                    ));
                }
                stop.max_tokens = n.min(u32::MAX as i64) as u32;
            }
            "stop" => stop.stop_strings = strings(py, &key, v)?,
            "stop_token_ids" => stop.stop_token_ids = token_ids(py, &key, v)?,
            "ignore_eos" => stop.ignore_eos = boolean(py, &key, v)?,
            other => {
                return Err(invalid_request(
                    py,
                    format!("unknown parameter '{other}' (known: {})", KNOWN.join(", ")),
                ))
            }
        }
    }
    Ok(Extracted { sampling, stop })
}

fn float(py: Python<'_>, key: &str, v: &Bound<'_, PyAny>) -> PyResult<f32> {
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(invalid_request(
            py,
            format!("{key} must be a number, got a bool"),
        ));
    }
    v.extract::<f64>()
        .map(|x| x as f32)
        .map_err(|_| invalid_request(py, format!("{key} must be a number")))
}

fn int(py: Python<'_>, key: &str, v: &Bound<'_, PyAny>) -> PyResult<i64> {
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(invalid_request(
            py,
            format!("{key} must be an integer, got a bool"),
        ));
    }
    v.extract::<i64>()
        .map_err(|_| invalid_request(py, format!("{key} must be an integer in the 64-bit range")))
}

fn uint(py: Python<'_>, key: &str, v: &Bound<'_, PyAny>) -> PyResult<u32> {
    let n = int(py, key, v)?;
    u32::try_from(n).map_err(|_| {
        invalid_request(
            py,
            format!("{key} must be a non-negative integer below 2^32, got {n}"),
        )
    })
}

fn u64_(py: Python<'_>, key: &str, v: &Bound<'_, PyAny>) -> PyResult<u64> {
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(invalid_request(
            py,
            format!("{key} must be an integer, got a bool"),
        ));
    }
    v.extract::<u64>()
        .map_err(|_| invalid_request(py, format!("{key} must be an integer in 0..2^64")))
}

fn boolean(py: Python<'_>, key: &str, v: &Bound<'_, PyAny>) -> PyResult<bool> {
    v.extract::<bool>()
        .map_err(|_| invalid_request(py, format!("{key} must be a bool")))
}

fn strings(py: Python<'_>, key: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    // A single string is the common case (OpenAI allows both).
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(vec![s.to_string()]);
    }
    v.extract::<Vec<String>>()
        .map_err(|_| invalid_request(py, format!("{key} must be a string or a list of strings")))
}

pub(crate) fn token_ids(py: Python<'_>, key: &str, v: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
    let ids: Vec<i64> = v
        .extract()
        .map_err(|_| invalid_request(py, format!("{key} must be a list of integers")))?;
    ids.into_iter()
        .map(|id| {
            u32::try_from(id).map_err(|_| invalid_request(py, format!("{key}: bad token id {id}")))
        })
        .collect()
}

fn logit_bias(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<Vec<(u32, f32)>> {
    let map = v
        .cast::<PyDict>()
        .map_err(|_| invalid_request(py, "logit_bias must be a dict of token id to bias"))?;
    let mut out = Vec::with_capacity(map.len());
    for (k, b) in map.iter() {
        // OpenAI clients send token ids as JSON object keys, i.e. strings.
        let id: i64 = match k.extract::<i64>() {
            Ok(id) => id,
            Err(_) => k
                .extract::<String>()
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| invalid_request(py, "logit_bias keys must be token ids"))?,
        };
        let id = u32::try_from(id)
            .map_err(|_| invalid_request(py, format!("logit_bias: bad token id {id}")))?;
        out.push((id, float(py, "logit_bias value", &b)?));
    }
    Ok(out)
}

pub fn prompt_ids(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
    token_ids(py, "prompt", v)
}
