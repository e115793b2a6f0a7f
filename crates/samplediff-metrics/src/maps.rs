//! Per-channel maps of |a-b| for pictures (the CLI's `--heatmap`).
//!
//! A map is the last two axes (H, W) of one channel, reduced by max over every other axis
//! except the channel (batch, frames), so a single bad frame still shows. The channel axis is
//! axis 1 for 4-D and 5-D tensors; anything else is one map.

use burn::tensor::{Device, Tensor};
use samplediff_formats::RawTensor;
use samplediff_tensor::{DeviceTensor, validate};

use crate::Result;
use crate::device_ops::read_floats;

/// One channel's map: `h * w` values, row-major.
#[derive(Clone, Debug)]
pub struct ErrorMap {
    pub channel: usize,
    pub h: usize,
    pub w: usize,
    /// max |a-b| over the finite pairs at each pixel (0 where none is finite).
    pub abs: Vec<f64>,
    /// Pixels where some element is non-finite on one side and not matched by the other
    /// (NaN vs number, Inf vs anything else): drawn apart, they are not in `abs`.
    pub bad: Vec<bool>,
}

/// (channels, reduced axes count, h, w) of the map layout for `shape`.
fn layout(shape: &[usize]) -> (usize, usize, usize) {
    let r = shape.len();
    let c = if r >= 4 { shape[1] } else { 1 };
    let h = if r >= 2 { shape[r - 2] } else { 1 };
    let w = if r >= 1 { shape[r - 1] } else { 1 };
    (c, h, w)
}

/// The maps of `a` against `b` (same shape; checked). Empty when there is nothing to draw.
pub fn error_maps(a: &RawTensor, b: &RawTensor, device: &Device) -> Result<Vec<ErrorMap>> {
    let Some(t) = error_map_tensors(a, b, device)? else {
        return Ok(vec![]);
    };
    let values = read_floats(vec![t.abs.clone(), t.bad.clone()])?;
    Ok(t.split(&values))
}

/// The maps still on the device, for callers that must read back asynchronously (WebGPU in
/// the browser): `abs` and `bad` (1 where bad, else 0), each `channels * h * w` values,
/// channel-major. Read both (abs first) and hand the values to [`MapTensors::split`].
pub struct MapTensors {
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub abs: Tensor<1>,
    pub bad: Tensor<1>,
}

impl MapTensors {
    /// The maps from the values of `abs` followed by those of `bad`.
    pub fn split(&self, values: &[f64]) -> Vec<ErrorMap> {
        let (c, h, w) = (self.channels, self.h, self.w);
        let hw = h * w;
        let (abs, bad) = values.split_at((c * hw).min(values.len()));
        (0..c)
            .map(|ch| ErrorMap {
                channel: ch,
                h,
                w,
                abs: abs.get(ch * hw..(ch + 1) * hw).unwrap_or_default().to_vec(),
                bad: bad.get(ch * hw..(ch + 1) * hw).unwrap_or_default().iter().map(|&x| x > 0.0).collect(),
            })
            .collect()
    }
}

/// The map computation of [`error_maps`], without the read-back; `None` for empty tensors.
pub fn error_map_tensors(a: &RawTensor, b: &RawTensor, device: &Device) -> Result<Option<MapTensors>> {
    let numel = validate(a)?;
    validate(b)?;
    if a.shape != b.shape {
        return Err(crate::MetricsError::new(format!("cannot map errors of shapes {:?} and {:?}", a.shape, b.shape)));
    }
    if numel == 0 {
        return Ok(None);
    }
    let (c, h, w) = layout(&a.shape);
    let hw = h * w;
    let rest = numel / (c * hw); // batch and frames, reduced by max
    let (ta, tb) = (DeviceTensor::upload(a, device)?.values, DeviceTensor::upload(b, device)?.values);
    let finite = ta.clone().is_finite().bool_and(tb.clone().is_finite());
    let nonfinite = finite.bool_not();
    let ad = ta.clone().sub(tb.clone()).abs().mask_fill(nonfinite.clone(), 0.0);
    let nan_both = ta.clone().is_nan().bool_and(tb.clone().is_nan());
    let inf_equal = ta.clone().is_inf().bool_and(ta.equal(tb));
    let bad = nonfinite.bool_and(nan_both.bool_or(inf_equal).bool_not());
    // [pre, C, post] with pre*post = rest*hw; move C first, then pixels last.
    let pre = if a.shape.len() >= 4 { a.shape[0] } else { 1 };
    let to_maps = |t: Tensor<1>| {
        t.reshape([pre, c, rest / pre, hw]).swap_dims(0, 1).reshape([c, rest, hw]).max_dim(1).reshape([c * hw])
    };
    let bad_f = ad.zeros_like().mask_fill(bad, 1.0);
    Ok(Some(MapTensors { channels: c, h, w, abs: to_maps(ad), bad: to_maps(bad_f) }))
}
