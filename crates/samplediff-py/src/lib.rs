//! `samplediff._native`: the samplediff core as a Python extension module (pyo3, abi3).
//!
//! The public, documented API is the pure-Python package `samplediff`
//! (`python/samplediff/__init__.py`), which converts numpy arrays and torch tensors and calls
//! these functions. Each function here runs the same core code as the CLI, releases the GIL
//! around Rust work and turns every failure (and any panic) into `samplediff.SampleDiffError`.

mod arrays;
mod compare;
mod errors;
mod sample;
mod traces;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SampleDiffError", m.py().get_type::<errors::SampleDiffError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(compare::compare_files, m)?)?;
    m.add_function(wrap_pyfunction!(compare::compare_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(compare::error_maps, m)?)?;
    m.add_function(wrap_pyfunction!(traces::load_file, m)?)?;
    m.add_function(wrap_pyfunction!(traces::load_trace_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(traces::write_trace, m)?)?;
    m.add_function(wrap_pyfunction!(traces::explain_files, m)?)?;
    m.add_function(wrap_pyfunction!(traces::weights_hash, m)?)?;
    m.add_function(wrap_pyfunction!(sample::sample, m)?)?;
    m.add_function(wrap_pyfunction!(sampler_names, m)?)?;
    m.add_function(wrap_pyfunction!(sample::sigmas, m)?)?;
    m.add_function(wrap_pyfunction!(sample::noise, m)?)?;
    Ok(())
}

/// The sampler names the core's chain runs (`samplediff_chain::sampler::Sampler::NAMES`), so front
/// ends ask the core instead of keeping their own list.
#[pyfunction]
fn sampler_names() -> Vec<&'static str> {
    samplediff_chain::sampler::Sampler::NAMES.to_vec()
}
