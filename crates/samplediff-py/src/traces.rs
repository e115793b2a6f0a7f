//! Tensor files and traces on disk, and `explain`, through the trace crate.
//!
//! A trace is `samplediff_trace::Trace`: a safetensors file in the layout of the golden ComfyUI
//! recordings (`latent_in`, `noise`, `sigmas`, `stepNNN.*`, `callNNN.*`, `latent_out`,
//! `positive`/`negative`), settings as JSON-encoded metadata values, and a JSON manifest
//! (environment, model fingerprint, conditioning) under `samplediff.manifest`. Writing goes
//! through `Trace::from_file` (validates the manifest, refuses duplicate names) and
//! `Trace::to_safetensors` (execution order), so every writer produces the same files.

use std::collections::BTreeMap;

use burn::tensor::Device;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use samplediff_formats::{DType, RawTensor, TensorFile};
use samplediff_trace::Trace;
use samplediff_trace::render::explain_text;

use crate::arrays::borrow_tensors;
use crate::errors::run_detached;

/// One tensor as handed to Python: `(name, dtype, source_dtype, shape, little-endian bytes)`.
/// bfloat16 and float8 have no numpy dtype: they come as exact float32 (`dtype` "F32",
/// `source_dtype` the file's).
type Item<'py> = (String, String, String, Vec<usize>, Bound<'py, PyBytes>);
type HostItem = (String, &'static str, &'static str, Vec<usize>, Vec<u8>);

fn for_numpy(t: RawTensor) -> HostItem {
    let source = t.dtype.name();
    match t.dtype {
        DType::BF16 | DType::F8_E4M3 | DType::F8_E5M2 => {
            let bytes = t.to_f32_vec().iter().flat_map(|v| v.to_le_bytes()).collect();
            (t.name, "F32", source, t.shape, bytes)
        }
        _ => (t.name, source, source, t.shape, t.data.to_vec()),
    }
}

fn to_python(py: Python<'_>, file: (Vec<HostItem>, BTreeMap<String, String>)) -> (Vec<Item<'_>>, BTreeMap<String, String>) {
    let (tensors, metadata) = file;
    let items = tensors
        .into_iter()
        .map(|(name, dtype, source, shape, bytes)| (name, dtype.to_string(), source.to_string(), shape, PyBytes::new(py, &bytes)))
        .collect();
    (items, metadata)
}

fn host_file(file: TensorFile) -> (Vec<HostItem>, BTreeMap<String, String>) {
    (file.tensors.into_iter().map(for_numpy).collect(), file.metadata)
}

/// Reads a tensor file (`path[:selector]`; safetensors, .latent, .pt, .npy/.npz).
/// Returns `(tensors, metadata)`.
#[pyfunction]
pub fn load_file(py: Python<'_>, path: String) -> PyResult<(Vec<Item<'_>>, BTreeMap<String, String>)> {
    let file = run_detached(py, move || {
        let file = samplediff_formats::load_path(&path).map_err(|e| format!("{path}: {e}"))?;
        Ok(host_file(file))
    })?;
    Ok(to_python(py, file))
}

/// Reads a trace held in memory (safetensors bytes, as `sample` returns them).
#[pyfunction]
pub fn load_trace_bytes<'py>(py: Python<'py>, data: &Bound<'py, PyBytes>) -> PyResult<(Vec<Item<'py>>, BTreeMap<String, String>)> {
    let bytes = data.as_bytes().to_vec();
    let file = run_detached(py, move || {
        let trace = Trace::from_safetensors(bytes).map_err(|e| format!("trace: {e}"))?;
        Ok(host_file(trace.to_file()))
    })?;
    Ok(to_python(py, file))
}

/// Writes `path` atomically: a temporary file renamed into place, so a crash never leaves half
/// a trace behind.
pub fn write_atomically(path: &str, bytes: &[u8]) -> Result<(), String> {
    let tmp = format!("{path}.tmp-{}", std::process::id());
    std::fs::write(&tmp, bytes).map_err(|e| format!("{path}: cannot write: {e}"))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{path}: cannot write: {e}")
    })
}

/// Writes `(name, array, dtype_name_or_None)` triples and string metadata (settings
/// JSON-encoded, optionally the manifest) as a trace file.
#[pyfunction]
#[pyo3(signature = (path, tensors, metadata=BTreeMap::new()))]
pub fn write_trace(
    py: Python<'_>,
    path: String,
    tensors: &Bound<'_, PyAny>,
    metadata: BTreeMap<String, String>,
) -> PyResult<()> {
    let tensors = borrow_tensors(tensors)?;
    let result = run_detached(py, || {
        let trace = Trace::from_file(TensorFile { tensors: tensors.clone(), metadata }).map_err(|e| format!("{path}: {e}"))?;
        let bytes = trace.to_safetensors().map_err(|e| format!("{path}: {e}"))?;
        drop(trace);
        write_atomically(&path, &bytes)
    });
    // The borrowed array buffers are released here, with the GIL held.
    drop(tensors);
    result
}

/// A trace from bytes in memory (used by `sample`).
pub fn trace_bytes(trace: &Trace) -> Result<Vec<u8>, String> {
    trace.to_safetensors().map_err(|e| format!("trace: {e}"))
}

/// `explain(path_a, path_b)`: the trace crate's explanation of where two traces part, as
/// `(json, text)` -- the JSON and text of `samplediff explain A B [--json]`. B is the reference.
#[pyfunction]
#[pyo3(name = "explain")]
pub fn explain_files(py: Python<'_>, path_a: String, path_b: String) -> PyResult<(String, String)> {
    run_detached(py, move || {
        let load = |spec: &str| -> Result<Trace, String> {
            let file = samplediff_formats::load_path(spec).map_err(|e| format!("{spec}: {e}"))?;
            Trace::from_file(file).map_err(|e| format!("{spec}: {e}"))
        };
        let (a, b) = (load(&path_a)?, load(&path_b)?);
        let e = samplediff_trace::explain(&a, &b, &Device::flex()).map_err(|e| e.to_string())?;
        Ok((e.to_json(), explain_text(&e)))
    })
}

/// The trace crate's weights fingerprint of `(name, array, dtype_name_or_None)` triples as
/// stored (`samplediff_trace::fingerprint::weights_hash`), as the manifest's JSON. The Python
/// package streams the same recipe for large models; this is its reference.
#[pyfunction]
pub fn weights_hash(py: Python<'_>, stage: String, tensors: &Bound<'_, PyAny>) -> PyResult<String> {
    use samplediff_trace::fingerprint::{HashInput, weights_hash};
    let tensors = borrow_tensors(tensors)?;
    let result = run_detached(py, || {
        let inputs = tensors
            .iter()
            .map(|t| HashInput { name: &t.name, dtype: t.dtype.name(), shape: &t.shape, bytes: &t.data });
        serde_json::to_string(&weights_hash(&stage, inputs)).map_err(|e| e.to_string())
    });
    drop(tensors);
    result
}
