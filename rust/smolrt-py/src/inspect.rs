//! Describing a GGUF file or a loaded engine as Python dicts (`smolrt info`, `Engine.info`).

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyo3::IntoPyObjectExt;
use smolrt_core::engine::Engine;
use smolrt_core::gguf::{GgufFile, MetadataValue};

use crate::gateway::detached;

/// Arrays longer than this (the tokenizer's vocabulary and merges) are summarised, not copied.
const MAX_ARRAY_ITEMS: usize = 16;

/// Parse and validate a GGUF file without loading its weights.
#[pyfunction]
pub fn inspect_gguf<'py>(
    py: Python<'py>,
    path: std::path::PathBuf,
) -> PyResult<Bound<'py, PyDict>> {
    let file = detached(py, move || GgufFile::open(&path))?;
    describe_file(py, &file)
}

fn describe_file<'py>(py: Python<'py>, file: &GgufFile) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let str_key = |k: &str| file.get_opt_str(k).ok().flatten().map(str::to_owned);
    d.set_item("architecture", str_key("general.architecture"))?;
    d.set_item("name", str_key("general.name"))?;
    d.set_item("version", file.version())?;
    d.set_item("file_size", file.file_size())?;
    d.set_item("tensor_count", file.tensors().len())?;
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    for t in file.tensors() {
        *types.entry(format!("{:?}", t.dtype)).or_default() += 1;
    }
    d.set_item("tensor_types", types)?;
    let meta = PyDict::new(py);
    for (key, value) in file.metadata() {
        meta.set_item(key, value_to_py(py, value)?)?;
    }
    d.set_item("metadata", meta)?;
    Ok(d)
}

fn value_to_py(py: Python<'_>, v: &MetadataValue) -> PyResult<Py<PyAny>> {
    Ok(match v {
        MetadataValue::U8(x) => x.into_py_any(py)?,
        MetadataValue::I8(x) => x.into_py_any(py)?,
        MetadataValue::U16(x) => x.into_py_any(py)?,
        MetadataValue::I16(x) => x.into_py_any(py)?,
        MetadataValue::U32(x) => x.into_py_any(py)?,
        MetadataValue::I32(x) => x.into_py_any(py)?,
        MetadataValue::U64(x) => x.into_py_any(py)?,
        MetadataValue::I64(x) => x.into_py_any(py)?,
        MetadataValue::F32(x) => x.into_py_any(py)?,
        MetadataValue::F64(x) => x.into_py_any(py)?,
        MetadataValue::Bool(x) => x.into_py_any(py)?,
        MetadataValue::String(s) => s.into_py_any(py)?,
        MetadataValue::Array(items) if items.len() > MAX_ARRAY_ITEMS => {
            format!("<array of {}>", items.len()).into_py_any(py)?
        }
        MetadataValue::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(value_to_py(py, item)?)?;
            }
            list.into_py_any(py)?
        }
    })
}

/// `Engine.info`: the file's description plus the config the engine derived and its KV pool.
pub fn engine_info<'py>(py: Python<'py>, engine: &Engine) -> PyResult<Bound<'py, PyDict>> {
    let d = describe_file(py, engine.file())?;
    let c = engine.config();
    d.set_item("architecture", c.architecture.as_str())?;
    d.set_item("context_length", c.context_length)?;
    d.set_item("vocab_size", c.vocab_size)?;
    d.set_item("n_layer", c.n_layer)?;
    d.set_item("n_embd", c.n_embd)?;
    d.set_item("n_head", c.n_head)?;
    d.set_item("n_head_kv", c.n_head_kv)?;
    d.set_item(
        "chat_template",
        engine
            .file()
            .get_opt_str("tokenizer.chat_template")
            .ok()
            .flatten(),
    )?;
    let tok = engine.tokenizer();
    let text = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).map(str::to_owned);
    d.set_item("bos_token", text(tok.bos_id()))?;
    d.set_item("eos_token", text(tok.eos_id()))?;
    d.set_item("kv_block_size", engine.pool().block_size())?;
    d.set_item("kv_type", engine.pool().kv_type().name())?;
    d.set_item("kv_blocks_total", engine.pool().total_blocks())?;
    Ok(d)
}
