//! Readers and writers for the tensor files people actually have.
//!
//! Everything here is plain Rust over bytes: no burn, no threads, no execution of anything a file
//! says. A file becomes a [`TensorFile`]: named [`RawTensor`]s (dtype, shape, little-endian bytes
//! that borrow from one shared buffer) plus the file's string metadata. Decoding to numbers is
//! [`RawTensor::to_f64_vec`] / [`RawTensor::to_f32_vec`]; the burn side lives in `samplediff-tensor`.

mod bytes;
mod dtype;
mod error;
mod file;
pub mod safetensors;

pub use bytes::Bytes;
pub use dtype::DType;
pub use error::{FormatError, Result};
pub use file::{RawTensor, TensorFile};
