//! The one rule of this boundary: a Rust failure is a Python exception, never a crash.
//!
//! Every entry point runs its Rust work through [`run_detached`] (GIL released), which turns an
//! `Err(String)` into `samplediff.SampleDiffError` (a `ValueError`) with the message and catches
//! any panic so it becomes the same exception instead of unwinding into the interpreter.
//! `sample`, which must also carry Python exceptions out, uses [`panic_message`] the same way.

use std::panic::{AssertUnwindSafe, catch_unwind};

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

create_exception!(
    _native,
    SampleDiffError,
    PyValueError,
    "A samplediff operation failed: unreadable or hostile file, bad argument, model callback error."
);

/// The exception for a one-line message.
pub fn error(msg: impl Into<String>) -> PyErr {
    SampleDiffError::new_err(msg.into())
}

/// Runs `f` with the GIL released (it must not touch Python objects), panics caught.
pub fn run_detached<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> Result<T, String> + Send,
{
    py.detach(|| catch(f)).map_err(error)
}

/// `f()` with a panic turned into an error message.
pub fn catch<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| Err(panic_message(&*panic)))
}

pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let msg = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    format!("internal error (a bug in samplediff, please report it): {}", msg.lines().next().unwrap_or(msg))
}
