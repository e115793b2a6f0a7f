//! numpy arrays in and out of the core without copying where the layout allows.
//!
//! In: a C-contiguous, native-endian numpy array becomes a [`RawTensor`] whose bytes *borrow*
//! the array's buffer (the tensor holds a reference to the array, so it stays alive). Torch
//! tensors arrive here as numpy views made by the Python side (`np.from_dlpack`), bfloat16 and
//! float8 as integer bit views with an explicit dtype name, so no float data is ever copied at
//! the boundary. Out: float32 results are `Vec<f32>`s handed to numpy, which takes ownership.

use numpy::{PyArray1, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use samplediff_formats::{Bytes, DType, RawTensor};

use crate::errors::error;

/// A numpy array's buffer, kept alive by a reference to the array.
struct BorrowedBuffer {
    _owner: Py<PyAny>,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the buffer is immutable for the duration of a call (documented contract: arrays are
// not mutated while samplediff reads them) and `_owner` keeps it allocated; `Py<T>` may be
// dropped on any thread (pyo3 defers the decref until the GIL is held).
unsafe impl Send for BorrowedBuffer {}
unsafe impl Sync for BorrowedBuffer {}

impl AsRef<[u8]> for BorrowedBuffer {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: ptr/len describe the array's contiguous data, alive as long as `_owner`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The samplediff dtype of a numpy dtype, or the explicit `override_name` for bit views
/// (`"BF16"` over uint16/int16, `"F8_E4M3"`/`"F8_E5M2"` over uint8/int8).
fn dtype_of(kind: u8, itemsize: usize, override_name: Option<&str>) -> Result<DType, String> {
    if let Some(name) = override_name {
        let d = DType::from_name(name).ok_or_else(|| format!("unknown dtype name '{name}'"))?;
        if d.size() != itemsize {
            return Err(format!("dtype {name} needs {}-byte elements, the array has {itemsize}", d.size()));
        }
        return Ok(d);
    }
    Ok(match (kind, itemsize) {
        (b'f', 8) => DType::F64,
        (b'f', 4) => DType::F32,
        (b'f', 2) => DType::F16,
        (b'i', 8) => DType::I64,
        (b'i', 4) => DType::I32,
        (b'i', 2) => DType::I16,
        (b'i', 1) => DType::I8,
        (b'u', 1) => DType::U8,
        (b'b', 1) => DType::BOOL,
        (k, s) => return Err(format!("unsupported array dtype (kind '{}', {s} bytes)", k as char)),
    })
}

/// Borrows a numpy array as a named tensor (no copy). The array must be C-contiguous and
/// native-endian (the Python side makes it so, copying only when it is not).
pub fn borrow_tensor(name: &str, array: &Bound<'_, PyAny>, dtype_name: Option<&str>) -> PyResult<RawTensor> {
    let array = array
        .cast::<PyUntypedArray>()
        .map_err(|_| error(format!("'{name}': expected a numpy array")))?;
    if !array.is_c_contiguous() {
        return Err(error(format!("'{name}': array is not C-contiguous")));
    }
    let descr = array.dtype();
    if descr.is_native_byteorder() == Some(false) || cfg!(target_endian = "big") {
        return Err(error(format!("'{name}': array is not little-endian")));
    }
    let dtype = dtype_of(descr.kind(), descr.itemsize(), dtype_name).map_err(|e| error(format!("'{name}': {e}")))?;
    let shape = array.shape().to_vec();
    let numel = samplediff_tensor::checked_numel(&shape).map_err(|e| error(format!("'{name}': {e}")))?;
    // SAFETY: reading the data pointer of a live array object.
    let ptr = unsafe { (*array.as_array_ptr()).fields.data } as *const u8;
    let len = numel * dtype.size();
    let buffer = BorrowedBuffer { _owner: array.clone().into_any().unbind(), ptr, len };
    Ok(RawTensor { name: name.to_string(), dtype, shape, data: Bytes::new(buffer) })
}

/// Borrows a list of `(name, array, dtype_name_or_None)` triples.
pub fn borrow_tensors(items: &Bound<'_, PyAny>) -> PyResult<Vec<RawTensor>> {
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let (name, array, dtype): (String, Bound<'_, PyAny>, Option<String>) = item?.extract()?;
        out.push(borrow_tensor(&name, &array, dtype.as_deref())?);
    }
    Ok(out)
}

/// A float32 numpy array of `shape` that takes ownership of `data`.
pub fn f32_array<'py>(py: Python<'py>, data: Vec<f32>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, data).reshape(shape.to_vec())?.into_any())
}

/// The values of a float32, C-contiguous numpy array of exactly `shape`.
pub fn read_f32(what: &str, array: &Bound<'_, PyAny>, shape: &[usize]) -> Result<Vec<f32>, String> {
    if array.is_none() {
        return Err(format!("{what}: got None, expected a float32 array"));
    }
    let array = array
        .cast::<numpy::PyArrayDyn<f32>>()
        .map_err(|_| format!("{what}: expected a float32 array"))?;
    let got = array.shape();
    if got != shape {
        return Err(format!("{what}: shape {got:?}, expected {shape:?}"));
    }
    let ro = array.try_readonly().map_err(|e| format!("{what}: {e}"))?;
    match ro.as_slice() {
        Ok(s) => Ok(s.to_vec()),
        Err(_) => Ok(ro.as_array().iter().copied().collect()),
    }
}
