//! The one conversion from core errors to Python exceptions. The hierarchy itself lives in
//! `smolrt.errors` (Python), so users can catch and subclass it without the native module; we
//! ask it for the class that matches each stable code.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use smolrt_core::Error;

pub fn to_pyerr(py: Python<'_>, err: Error) -> PyErr {
    build(py, err.code.as_str(), &err.message)
}

pub fn invalid_request(py: Python<'_>, message: impl Into<String>) -> PyErr {
    to_pyerr(py, Error::invalid_request(message))
}

pub fn build(py: Python<'_>, code: &str, message: &str) -> PyErr {
    let made = py
        .import("smolrt.errors")
        .and_then(|m| m.getattr("error_for_code"))
        .and_then(|f| f.call1((code, message)));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        // Only if the Python package itself is broken: still say what happened.
        Err(_) => PyRuntimeError::new_err(format!("{code}: {message}")),
    }
}
