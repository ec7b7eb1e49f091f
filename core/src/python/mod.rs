//! PyO3 bindings: the `streamguard._core` extension module. Thin by design — conversions and
//! GIL handling only; the engine, decoders and simulator live in the rest of the crate.

mod engine;
mod errors;
mod lanes;
mod live;
mod sim;

use pyo3::prelude::*;

/// StreamGuard's Rust engine. The public API is the pure-Python package `streamguard`
/// (`streamguard.Engine`, `streamguard.sim`, the `streamguard` command); this module is its
/// implementation detail and may change without notice.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<lanes::PyLaneTable>()?;
    m.add_class::<sim::PySimulator>()?;
    m.add_class::<live::PyLive>()?;
    m.add_class::<live::PyStoreFeed>()?;
    m.add_function(wrap_pyfunction!(live::publish_feed, m)?)?;
    m.add_function(wrap_pyfunction!(sim::example_rules, m)?)?;
    m.add_function(wrap_pyfunction!(sim::convert, m)?)?;
    Ok(())
}
