//! `compare` and `compare_files`: the CLI's comparison, the CLI's JSON.
//!
//! Both go through `samplediff_metrics::compare_files`, the function behind
//! `samplediff compare`, with the CLI's CPU engine (the fused host kernel), and hand back
//! `CompareReport::to_json()` — the exact bytes `samplediff compare --json` prints — plus the
//! text report. The Python side parses the JSON, so the dict has the CLI's schema by construction.

use burn::tensor::Device;
use numpy::PyArray1;
use numpy::PyArrayMethods;
use pyo3::prelude::*;
use samplediff_formats::{RawTensor, TensorFile};
use samplediff_metrics::render::{RenderOptions, render};
use samplediff_metrics::{CompareOptions, Engine, compare_files as compare_tensor_files, maps, parse_pair};

use crate::arrays::{borrow_tensor, borrow_tensors};
use crate::errors::{error, run_detached};

/// Options as the CLI takes them (`--atol --rtol --rel-floor --top-k --pair`).
fn options(atol: Option<f64>, rtol: Option<f64>, rel_floor: Option<f64>, top_k: usize) -> Result<CompareOptions, String> {
    for (v, name) in [(atol, "atol"), (rtol, "rtol"), (rel_floor, "rel_floor")] {
        if v.is_some_and(|v| !(v >= 0.0 && v.is_finite())) {
            return Err(format!("{name} must be a finite number >= 0"));
        }
    }
    Ok(CompareOptions { atol, rtol, rel_floor, top_k })
}

fn report(
    a: &TensorFile,
    b: &TensorFile,
    pairs: &[String],
    opts: &CompareOptions,
    labels: (String, String),
) -> Result<(String, String), String> {
    let pairs = pairs.iter().map(|p| parse_pair(p)).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    let report = compare_tensor_files(a, b, &pairs, &Engine::host(), opts).map_err(|e| e.to_string())?;
    let text = render(&report, &RenderOptions { label_a: labels.0, label_b: labels.1, ..Default::default() });
    Ok((report.to_json(), text))
}

/// Compares two files (`path[:selector]`, any format the CLI reads). Returns (JSON, text).
// A pyo3 #[pyfunction]: the arguments mirror the Python keyword arguments.
#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (path_a, path_b, *, atol=None, rtol=None, rel_floor=None, top_k=10, pairs=vec![]))]
pub fn compare_files(
    py: Python<'_>,
    path_a: String,
    path_b: String,
    atol: Option<f64>,
    rtol: Option<f64>,
    rel_floor: Option<f64>,
    top_k: usize,
    pairs: Vec<String>,
) -> PyResult<(String, String)> {
    run_detached(py, move || {
        let opts = options(atol, rtol, rel_floor, top_k)?;
        let load = |spec: &str| samplediff_formats::load_path(spec).map_err(|e| format!("{spec}: {e}"));
        let (a, b) = (load(&path_a)?, load(&path_b)?);
        report(&a, &b, &pairs, &opts, (path_a, path_b))
    })
}

/// Compares two sets of named arrays, each a list of `(name, array, dtype_name_or_None)`.
#[pyfunction]
#[pyo3(signature = (a, b, *, atol=None, rtol=None, rel_floor=None, top_k=10, pairs=vec![], label_a="A".to_string(), label_b="B".to_string()))]
#[allow(clippy::too_many_arguments)]
pub fn compare_arrays(
    py: Python<'_>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    atol: Option<f64>,
    rtol: Option<f64>,
    rel_floor: Option<f64>,
    top_k: usize,
    pairs: Vec<String>,
    label_a: String,
    label_b: String,
) -> PyResult<(String, String)> {
    let a = TensorFile { tensors: borrow_tensors(a)?, metadata: Default::default() };
    let b = TensorFile { tensors: borrow_tensors(b)?, metadata: Default::default() };
    let result = run_detached(py, || {
        let opts = options(atol, rtol, rel_floor, top_k)?;
        report(&a, &b, &pairs, &opts, (label_a, label_b))
    });
    // The borrowed buffers are released here, with the GIL held.
    drop((a, b));
    result
}

/// Per-channel maps of |a-b| (the CLI's `--heatmap` data): `(abs [C,H,W] float64, bad [C,H,W] bool)`
/// where `bad` marks pixels with an unmatched NaN/Inf.
#[pyfunction]
#[pyo3(signature = (a, b, dtype_a=None, dtype_b=None))]
pub fn error_maps<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    dtype_a: Option<String>,
    dtype_b: Option<String>,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let ta: RawTensor = borrow_tensor("a", a, dtype_a.as_deref())?;
    let tb: RawTensor = borrow_tensor("b", b, dtype_b.as_deref())?;
    let result = run_detached(py, || maps::error_maps(&ta, &tb, &Device::flex()).map_err(|e| e.to_string()));
    drop((ta, tb));
    let maps = result?;
    let (c, h, w) = match maps.first() {
        Some(m) => (maps.len(), m.h, m.w),
        None => return Err(error("nothing to map: the tensors are empty")),
    };
    let abs: Vec<f64> = maps.iter().flat_map(|m| m.abs.iter().copied()).collect();
    let bad: Vec<bool> = maps.iter().flat_map(|m| m.bad.iter().copied()).collect();
    Ok((
        PyArray1::from_vec(py, abs).reshape([c, h, w])?.into_any(),
        PyArray1::from_vec(py, bad).reshape([c, h, w])?.into_any(),
    ))
}
