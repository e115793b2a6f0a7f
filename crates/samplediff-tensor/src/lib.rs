//! Bridge between samplediff-formats tensors and burn tensors.
//!
//! A [`RawTensor`](samplediff_formats::RawTensor) of any dtype decodes to a burn float tensor on
//! any [`Device`](burn::tensor::Device), in f64 where the device supports it and f32 otherwise
//! ([`compute_dtype`]); a burn tensor encodes back to a `RawTensor` of any dtype ([`encode`]).
//! No filesystem and no threads: this crate builds for wasm32-unknown-unknown.

mod bridge;
pub mod encode;
mod error;

pub use bridge::{DeviceTensor, checked_numel, compute_dtype, read_f64, read_i64, to_raw, to_tensor, validate};
pub use error::{Result, TensorError};
