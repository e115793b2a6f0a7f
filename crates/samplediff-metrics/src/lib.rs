//! Difference metrics between two tensors, computed on burn tensors on any device, and the
//! compare report (issue 2).
//!
//! * [`compare_tensors`]: one pair (B is the reference) -> [`TensorReport`]: closeness verdict
//!   under torch's tolerances ([`tolerance`]), absolute / relative / floored-relative errors,
//!   cosine, Pearson, SNR, NaN/Inf accounting, ULP distance, percentiles, a decade histogram,
//!   the worst elements, per-channel statistics with the affine fit b ~ scale*a + shift, per
//!   frame statistics, and [`hints`].
//! * [`compare_tensors_host`]: the same report from the fused host kernel ([`fused`]): one read
//!   of both tensors' bytes on all CPU cores; what the CPU engine of [`compare_files`] runs.
//! * [`compare_files`]: two [`TensorFile`](samplediff_formats::TensorFile)s -> [`CompareReport`]
//!   (pairing by name or `--pair`, verdict, ranking).
//! * [`render`]: the terminal report; [`CompareReport::to_json`]: the stable JSON.
//! * [`maps`]: per-channel |a-b| maps for heatmaps.
//!
//! No filesystem; threads only in the host kernel and never on wasm32-unknown-unknown.

mod compare;
mod device_ops;
mod engine;
mod error;
pub mod fused;
pub mod hints;
mod lanes;
pub mod maps;
mod moments;
mod options;
mod pairing;
pub mod quantiles;
pub mod render;
pub mod report;
mod slices;
pub mod tolerance;
pub mod ulp;

#[doc(hidden)]
pub use compare::{Begin, begin};
pub use compare::{compare_tensors, compare_tensors_in, pair_name, unravel};
pub use engine::{Comparer, Engine};
pub use error::{MetricsError, Result};
pub use fused::{Host, compare_tensors_host};
/// The main pass's sufficient statistics and their report fields ([`Moments::fill`]), for
/// samplediff-gpu, which folds its GPU partials into them: one definition of every metric.
/// Not a stable API.
#[doc(hidden)]
pub use moments::{Counts, Floored, Moments, Tol};
pub use options::{CompareOptions, DEFAULT_REL_FLOOR_FRACTION};
pub use pairing::{assemble, compare_files, match_tensors, parse_pair};
pub use report::{CompareReport, Status, TensorReport, Verdict};
