//! The one way into the core from Python: run the work with the GIL released, catch any panic,
//! and convert the outcome. No tensor work ever runs while attached to the interpreter.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::prelude::*;
use smolrt_core::{Error, Result as CoreResult};

use crate::errors::to_pyerr;

pub fn detached<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> CoreResult<T> + Send,
{
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(work)));
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(to_pyerr(py, err)),
        Err(panic) => Err(to_pyerr(py, Error::internal(panic_message(&panic)))),
    }
}

pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".into());
    format!("a bug in smolrt's native code (panic: {what}); please report it")
}

/// The SIMD kernels this build compiled in (the core's own list; empty means scalar code), so
/// benchmarks can say which kernels ran.
#[pyfunction]
pub fn cpu_features() -> Vec<&'static str> {
    smolrt_core::arch::kernel_features()
}

/// Proves the gateway: a panic inside native code must surface as a Python exception.
#[pyfunction]
pub fn _raise_panic_for_tests(py: Python<'_>) -> PyResult<()> {
    detached(py, || -> CoreResult<()> { panic!("deliberate test panic") })
}
