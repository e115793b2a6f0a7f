//! Readers and writers for the tensor files people actually have.
//!
//! Everything here is plain Rust over bytes: no burn, no threads, no execution of anything a file
//! says. A file becomes a [`TensorFile`]: named [`RawTensor`]s (dtype, shape, little-endian bytes
//! that borrow from one shared buffer) plus the file's string metadata. Decoding to numbers is
//! [`RawTensor::to_f64_vec`] / [`RawTensor::to_f32_vec`]; the burn side lives in `samplediff-tensor`.
//!
//! Entry points: [`load_path`] (`"cond.pt:0.0"`: a file plus an optional selector) and
//! [`load_bytes`] / [`load_bytes_selected`] for bytes already in memory (the browser). Formats:
//! [`safetensors`] (and ComfyUI `.latent`), [`torch`] (`torch.save` zip files, through the
//! restricted unpickler in [`pickle`]), [`npy`] (`.npy` and `.npz`). Every reader is hardened
//! against hostile files: see [`limits`].

mod archive;
mod bytes;
mod dtype;
mod error;
mod file;
mod layout;
pub mod limits;
mod load;
pub mod npy;
pub mod pickle;
pub mod safetensors;
pub mod structure;
pub mod torch;

pub use bytes::Bytes;
pub use dtype::DType;
pub use error::{FormatError, Result};
pub use file::{RawTensor, TensorFile};
pub use load::{Format, detect_format, load_bytes, load_bytes_selected, select_flat, split_selector};
#[cfg(not(target_arch = "wasm32"))]
pub use load::{load_path, read_file};
