//! `compare` on the GPU (issue 8, item 2). The fused main pass: one WGSL kernel
//! (`shaders/fused_metrics.wgsl`) run through wgpu reads both tensors once and gives every
//! count, extreme and sum of samplediff-metrics' `Moments` — NaN/Inf accounting, the
//! torch.isclose count, max/mean |a-b|, RMSE, relative errors, RMS of each side, cosine,
//! Pearson, SNR.
//!
//! * [`GpuMetrics`]: the device and the compiled kernel, made once.
//! * [`GpuMetrics::main_pass`]: tensors in host memory (uploaded in pieces).
//! * [`GpuMetrics::main_pass_resident`]: tensors already in GPU buffers, of any size: inputs
//!   beyond the storage-binding limit are read through several bindings, one dispatch each.
//!
//! Each workgroup reduces one tile ([`TILE_WORDS`] words) in f32 and writes a partial; the
//! host merges the partials in f64 in tile order into samplediff-metrics' `Moments`
//! ([`MainPass`]), whose `fill` makes the report fields as it does for the CPU kernel. Counts
//! and the maximum |a-b| equal the CPU kernel's exactly (pairs at the isclose boundary are
//! decided in f64); sums agree to f32 accumulation within a tile (relative 1e-6 or better). On
//! an H100 the pass read 2 x 4 GiB in 3.46 ms, 82% of the card's copy bandwidth, before
//! its tiny-input test was added (docs/performance.md).
//!
//! Finite pairs with an input below 2^-100 (which a GPU may flush to zero, as an H100 does)
//! are left out of the pass and listed ([`MainPass::specials`]); `main_pass` and `compare`
//! measure them on the host from the tensors' bytes.
//!
//! [`GpuMetrics::compare`] adds the rest of `compare`'s report: the order-statistics kernel
//! (`shaders/order_stats.wgsl`, run by `order.rs`) counts f32 error keys and ULP distances by
//! their bits in two or three radix passes, and the host (`select.rs`) settles each wanted rank
//! exactly from the pairs a gather pass returns with their bits (whole bins when few, else only
//! the equal keys with inexact f32 differences) and the tiny-input pairs, in f64. Percentiles,
//! the decade histogram, the worst elements and the ULP statistics then equal the CPU kernel's;
//! the floored relative error comes from per-tile partials like the sums, latents' per-channel
//! and per-frame statistics from a main pass over each run. Mixed dtypes are left to another
//! engine ([`GpuError::Unsupported`]; [`GpuEngine`] hands them to a fallback engine). |a-b|
//! beyond f32's range (3.4e38) makes the f32 sums infinite where the CPU's f64 sums are not.

mod block;
mod compare;
mod context;
mod error;
mod order;
mod partials;
mod pass;
mod plan;
mod select;
mod timer;

pub use compare::GpuEngine;
pub use context::GpuMetrics;
pub use error::{GpuError, Result};
pub use partials::MainPass;
pub use pass::{Resident, Tolerance};
pub use plan::TILE_WORDS;
pub use timer::GpuTimer;
