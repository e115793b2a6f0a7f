//! Sampling traces and their diagnosis (issue 5).
//!
//! * [`Trace`]: one run as named tensors (`positive`, `latent_in`, `noise`, `sigmas`,
//!   `stepNNN.*`, `callNNN.*`, `latent_out`) plus settings and a JSON [`Manifest`]; reads the
//!   golden ComfyUI layout as it is. [`TraceRecorder`] writes one from any chain run.
//! * [`diff`]: two traces aligned stage by stage and step by step, compare metrics per tensor,
//!   the divergence curve, and the first point beyond float32 rounding ([`rounding`]).
//! * [`explain`]: ordered findings with cause codes and measured evidence.
//! * [`verify`]: one trace replayed through the reference chain.
//!
//! No filesystem, no threads: builds for wasm32-unknown-unknown; the CLI does the file I/O.

pub mod analysis;
pub mod diff;
pub mod drive;
mod error;
pub mod explain;
pub mod fingerprint;
pub mod identify;
pub mod manifest;
pub mod names;
pub mod numeric;
pub mod recorder;
pub mod render;
pub mod rounding;
mod trace;
pub mod verify;

pub use error::{Result, TraceError};
pub use explain::{Cause, Explanation, Finding, explain};
pub use manifest::{MANIFEST_KEY, Manifest};
pub use recorder::{Side, TraceRecorder};
pub use trace::{LABEL_KEYS, Trace, host, to_tensor5};
