//! The samplediff core in the browser (issue 7): a wasm-bindgen ES module over the same crates
//! as the CLI.
//!
//! * [`files`]: the core's readers on bytes (every format, sniffed by content).
//! * [`report`]: the compare report from the core's own `compare_files` on the CPU backend, so
//!   the JSON equals `samplediff compare --json` bit for bit.
//! * [`heatmaps`]: per-channel |a-b| maps (CPU, or WebGPU through burn-wgpu).
//! * [`previews`]: latent-to-RGB previews with ComfyUI's factors, format chosen automatically.
//! * [`traces`]: trace diff (divergence curve) and explain (findings) of the trace crate.
//! * [`workflows`]: the golden workflows replayed and run whole on the CPU backend, as the
//!   CLI's `replay` and `run`, and run whole on WebGPU (the `wasm-cpu` and `wasm-webgpu` columns
//!   of `check-backends`).
//! * [`api`]: the exports; [`boundary`]: why no panic crosses into JavaScript.
//!
//! The JavaScript API is documented in `docs/web.md`; `web/` holds the viewer built on it.

pub mod api;
pub mod backend;
pub mod boundary;
pub mod files;
pub mod heatmaps;
pub mod previews;
pub mod report;
pub mod session;
pub mod traces;
pub mod workflows;
