//! Per-channel maps of |a-b| for the page to draw: the core's [`samplediff_metrics::maps`]
//! (the same maps as the CLI's `--heatmap`), flattened into arrays JavaScript can upload to a
//! GPU buffer or paint on a canvas.

use samplediff_formats::RawTensor;
use samplediff_metrics::maps::{ErrorMap, error_maps};

use crate::backend::cpu;

/// Every channel's map, channel-major: `values[c*h*w + y*w + x]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmaps {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// max |a-b| over batch and frames at each pixel (finite pairs only).
    pub values: Vec<f32>,
    /// 1 where a non-finite value on one side is not matched by the other (drawn apart).
    pub bad: Vec<u8>,
    /// The largest value over all channels (0 when the tensors agree): the colour scale's top.
    pub max: f64,
    /// Which device computed them: `"cpu"` or `"webgpu"`.
    pub device: &'static str,
}

impl Heatmaps {
    pub fn from_maps(maps: &[ErrorMap], device: &'static str) -> Self {
        let (height, width) = maps.first().map_or((0, 0), |m| (m.h, m.w));
        let values: Vec<f32> = maps.iter().flat_map(|m| m.abs.iter().map(|&v| v as f32)).collect();
        let max = maps.iter().flat_map(|m| m.abs.iter().copied()).fold(0.0, f64::max);
        let bad = maps.iter().flat_map(|m| m.bad.iter().map(|&b| b as u8)).collect();
        Heatmaps { channels: maps.len(), height, width, values, bad, max, device }
    }
}

/// The maps on the CPU backend.
pub fn cpu_heatmaps(a: &RawTensor, b: &RawTensor) -> Result<Heatmaps, String> {
    let maps = error_maps(a, b, &cpu()).map_err(|e| e.to_string())?;
    Ok(Heatmaps::from_maps(&maps, "cpu"))
}

/// The maps on WebGPU (burn-wgpu), read back asynchronously as browsers require.
#[cfg(target_arch = "wasm32")]
pub async fn gpu_heatmaps(a: &RawTensor, b: &RawTensor, device: &burn::tensor::Device) -> Result<Heatmaps, String> {
    use burn::tensor::Tensor;
    let Some(t) = samplediff_metrics::maps::error_map_tensors(a, b, device).map_err(|e| e.to_string())? else {
        return Ok(Heatmaps::from_maps(&[], "webgpu"));
    };
    let data = Tensor::cat(vec![t.abs.clone(), t.bad.clone()], 0)
        .into_data_async()
        .await
        .map_err(|e| format!("reading the heatmaps back from WebGPU failed: {e:?}"))?;
    let values: Vec<f64> = data
        .convert::<f64>()
        .try_into_vec::<f64>()
        .map_err(|e| format!("reading the heatmaps back from WebGPU failed: {e:?}"))?;
    Ok(Heatmaps::from_maps(&t.split(&values), "webgpu"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_channel_major_with_the_global_max() {
        // [1, 2, 1, 2] : two channels of 1x2 pixels.
        let a = RawTensor::from_f32("x", vec![1, 2, 1, 2], &[1.0, 2.0, 3.0, f32::NAN]);
        let b = RawTensor::from_f32("x", vec![1, 2, 1, 2], &[1.5, 2.0, 0.0, 4.0]);
        let h = cpu_heatmaps(&a, &b).unwrap();
        assert_eq!((h.channels, h.height, h.width), (2, 1, 2));
        assert_eq!(h.values, vec![0.5, 0.0, 3.0, 0.0]);
        assert_eq!(h.bad, vec![0, 0, 0, 1]);
        assert_eq!(h.max, 3.0);
        let e = cpu_heatmaps(&a, &RawTensor::from_f32("x", vec![4], &[0.0; 4])).unwrap_err();
        assert!(e.contains("cannot map errors of shapes"), "{e}");
    }
}
