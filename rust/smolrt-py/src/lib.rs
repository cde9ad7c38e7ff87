//! `smolrt._core`: the native module. Glue only — convert, release the GIL, call smolrt-core,
//! convert back. Users import `smolrt`, never this module.

mod engine;
mod errors;
mod events;
mod gateway;
mod inspect;
mod outbox;
mod params;
mod readings;
mod stepper;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<engine::PyEngine>()?;
    m.add_function(wrap_pyfunction!(inspect::inspect_gguf, m)?)?;
    m.add_function(wrap_pyfunction!(gateway::cpu_features, m)?)?;
    m.add_function(wrap_pyfunction!(gateway::_raise_panic_for_tests, m)?)?;
    Ok(())
}
