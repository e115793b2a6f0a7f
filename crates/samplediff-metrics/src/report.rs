//! The compare report: plain serde types whose field names are a public contract (issue 2,
//! item 4); fields may be added, never renamed. Every list is in a fixed order (file order,
//! channel order, ranking with a name tie-break) so the same inputs give byte-identical JSON.
//! Non-finite floats serialise as `null` (JSON has no NaN/Infinity); each field says when.

use serde::Serialize;

/// The whole comparison of two files.
#[derive(Clone, Debug, Serialize)]
pub struct CompareReport {
    /// `"match"` when every tensor was compared and its values are close; else `"mismatch"`.
    pub verdict: Verdict,
    /// One entry per tensor: A's file order, then the tensors only B has, in B's order.
    pub tensors: Vec<TensorReport>,
    pub summary: Summary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Match,
    Mismatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Compared,
    OnlyInA,
    OnlyInB,
    ShapeMismatch,
}

/// One compared (or unmatched) tensor. Metric fields are `null` unless `status` is `compared`.
///
/// Which elements count: the value metrics (`max_abs` .. `snr_db`, percentiles, histogram,
/// worst, per-channel) use the *finite pairs*, elements where both sides are finite. NaN and
/// Inf are counted (`nan_a` .. `inf_b`, `nan_position_mismatch`, `inf_mismatch`) and decide
/// `mismatched`, but never turn a metric into NaN.
#[derive(Clone, Debug, Serialize)]
pub struct TensorReport {
    /// The tensor's name; for a pair with different names, `"name_a=name_b"`.
    pub name: String,
    pub name_a: Option<String>,
    pub name_b: Option<String>,
    pub status: Status,
    /// One line on why a tensor was not compared (missing, shapes differ), or `null`.
    pub message: Option<String>,
    pub shape_a: Option<Vec<usize>>,
    pub shape_b: Option<Vec<usize>>,
    pub dtype_a: Option<String>,
    pub dtype_b: Option<String>,
    pub shapes_match: bool,
    pub dtypes_match: bool,
    /// Every element close under `atol`/`rtol` (NaN = NaN at the same position counts as close).
    pub values_match: bool,
    pub atol: Option<f64>,
    pub rtol: Option<f64>,
    pub numel: Option<u64>,
    /// Elements where both sides are finite: the population of the value metrics.
    pub finite_pairs: Option<u64>,
    /// Elements failing `|a-b| <= atol + rtol*|b|` (torch.isclose; equal infinities are close,
    /// NaN against NaN is close, NaN against anything else is not).
    pub mismatched: Option<u64>,
    pub max_abs: Option<f64>,
    pub mean_abs: Option<f64>,
    pub rmse: Option<f64>,
    /// Root mean square of each side over the finite pairs (the scale the errors compare to).
    pub rms_a: Option<f64>,
    pub rms_b: Option<f64>,
    /// |a-b|/|b| over finite pairs with b != 0 (the torch/seed definition); `rel_zero_b` says
    /// how many pairs were left out because b is exactly 0.
    pub max_rel: Option<f64>,
    pub mean_rel: Option<f64>,
    pub rel_zero_b: Option<u64>,
    /// |a-b| / max(|b|, rel_floor): relative error that does not explode near zero.
    pub max_rel_floored: Option<f64>,
    pub mean_rel_floored: Option<f64>,
    /// 1e-3 x RMS(b) unless given (`--rel-floor`).
    pub rel_floor: Option<f64>,
    /// sum(a*b)/sqrt(sum(a^2) sum(b^2)); `null` when either side is all zeros.
    pub cosine: Option<f64>,
    /// Pearson correlation; `null` when either side is constant.
    pub pearson: Option<f64>,
    /// 10 log10(sum(b^2) / sum((a-b)^2)); `null` when there is no error (infinite SNR) or no signal.
    pub snr_db: Option<f64>,
    pub nan_a: Option<u64>,
    pub nan_b: Option<u64>,
    pub inf_a: Option<u64>,
    pub inf_b: Option<u64>,
    /// Elements where exactly one side is NaN.
    pub nan_position_mismatch: Option<u64>,
    /// Elements where at least one side is infinite and the two differ.
    pub inf_mismatch: Option<u64>,
    /// Distance in units in the last place of the inputs' dtype, over finite pairs; `null` when
    /// the dtypes differ or are not floats.
    pub ulp_max: Option<u64>,
    pub ulp_median: Option<f64>,
    pub percentiles_abs: Option<Percentiles>,
    pub histogram: Option<Histogram>,
    /// The largest |a-b| (finite pairs), largest first, ties by index.
    pub worst: Vec<WorstElement>,
    /// Per channel (axis 1) of a 4-D or 5-D tensor; empty otherwise.
    pub per_channel: Vec<ChannelStats>,
    /// Per frame (axis 2) of a 5-D tensor; empty otherwise.
    pub per_frame: Vec<FrameStats>,
    /// Plain-language observations (e.g. a channel-wise affine relation).
    pub hints: Vec<Hint>,
}

/// Percentiles of |a-b| over the finite pairs, numpy's default 'linear' interpolation (the same
/// as torch.quantile): position q(n-1) in the sorted errors, linear between neighbours.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
}

/// |a-b| over the finite pairs in decades: `zero` exact matches, then bins [lo, hi) with
/// hi = 10 lo, from the decade of the smallest non-zero error to that of the largest.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Histogram {
    pub zero: u64,
    pub bins: Vec<HistogramBin>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct HistogramBin {
    pub lo: f64,
    pub hi: f64,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorstElement {
    /// Full multi-dimensional index (C order).
    pub index: Vec<usize>,
    pub a: f64,
    pub b: f64,
    pub abs: f64,
}

/// Error statistics of one frame (axis 2 of a 5-D latent).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FrameStats {
    pub frame: usize,
    pub numel: u64,
    pub mismatched: u64,
    pub max_abs: f64,
    pub mean_abs: f64,
    pub rmse: f64,
}

/// One channel: its errors plus the least-squares fit b ~ scale*a + shift and its R^2. A near
/// perfect fit with scale != 1 or shift != 0 is how a missing (de-)normalisation shows itself.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ChannelStats {
    pub channel: usize,
    pub numel: u64,
    pub mismatched: u64,
    pub max_abs: f64,
    pub mean_abs: f64,
    pub rmse: f64,
    pub mean_a: f64,
    pub mean_b: f64,
    pub std_a: f64,
    pub std_b: f64,
    /// `null` when a is constant in this channel (no slope to fit).
    pub scale: Option<f64>,
    pub shift: Option<f64>,
    /// `null` when either side is constant in this channel.
    pub r2: Option<f64>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Hint {
    /// Machine-readable kind, e.g. `"channel_affine"`, `"latent_denormalisation_missing"`.
    pub kind: String,
    pub message: String,
}

/// File-level totals and the ranking of compared tensors by error.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub compared: usize,
    pub matching: usize,
    pub only_in_a: usize,
    pub only_in_b: usize,
    pub shape_mismatch: usize,
    /// Compared tensors, worst first.
    pub ranking: Vec<RankEntry>,
}

/// A tensor's place in the ranking: by `rel_rmse` = rmse / RMS(b) (scale-free, so a latent and a
/// sigma are comparable), then mismatched count, then name.
#[derive(Clone, Debug, Serialize)]
pub struct RankEntry {
    pub name: String,
    pub rel_rmse: Option<f64>,
    pub max_abs: Option<f64>,
    pub mismatched: Option<u64>,
    pub values_match: bool,
}

impl CompareReport {
    /// Stable, pretty JSON (same inputs, same bytes).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report types always serialise")
    }
}
