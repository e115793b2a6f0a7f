//! Latent previews: ComfyUI's latent-to-RGB factors per latent format (from the chain crate),
//! the automatic choice for a tensor, and the preview itself on the CPU backend. With WebGPU
//! the page draws the same formula with `shaders/latent_preview.wgsl` from [`latent_slice`].

use burn::tensor::{Tensor, TensorData};
use samplediff_chain::latent_format::LatentFormat;
use samplediff_formats::RawTensor;
use serde::Serialize;

use crate::backend::cpu;

/// One latent format as the page needs it.
#[derive(Debug, Serialize)]
pub struct FormatInfo {
    /// ComfyUI's class name (`SD15`, `SDXL`, `SD3`, `Flux`, `Wan21`).
    pub name: &'static str,
    pub channels: usize,
    /// One `[r, g, b]` row per channel.
    pub factors: Vec<[f64; 3]>,
    pub bias: Option<[f64; 3]>,
}

pub fn formats() -> Vec<FormatInfo> {
    LatentFormat::ALL
        .iter()
        .map(|&f| FormatInfo {
            name: f.name(),
            channels: f.latent_channels(),
            factors: f.rgb_factors().to_vec(),
            bias: f.rgb_bias(),
        })
        .collect()
}

/// The format a latent most likely has, from its shape: 16 channels on axis 1 are taken for
/// Wan 2.1 (Qwen-Image and Wan use it, and they are what this tool is for), 4 channels for
/// SD 1.x. Flux, SD3 and SDXL share those channel counts and are chosen by hand.
pub fn auto_format(shape: &[usize]) -> Option<LatentFormat> {
    if !matches!(shape.len(), 4 | 5) {
        return None;
    }
    match shape[1] {
        16 => Some(LatentFormat::Wan21),
        4 => Some(LatentFormat::Sd15),
        _ => None,
    }
}

/// The part of a latent a preview shows: batch item 0, frame 0, as `[channels, h, w]` float32.
#[derive(Debug, Clone, PartialEq)]
pub struct LatentSlice {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub values: Vec<f32>,
}

/// Cut the preview slice out of a `[B, C, H, W]` or `[B, C, T, H, W]` tensor without decoding
/// the rest (a video latent may be large).
pub fn latent_slice(t: &RawTensor) -> Result<LatentSlice, String> {
    samplediff_tensor::validate(t).map_err(|e| e.to_string())?;
    let s = &t.shape;
    let (c, frames, h, w) = match s.len() {
        4 => (s[1], 1, s[2], s[3]),
        5 => (s[1], s[2], s[3], s[4]),
        _ => return Err(format!("tensor '{}' of shape {s:?} is not a latent ([B,C,H,W] or [B,C,T,H,W])", t.name)),
    };
    if s[0] == 0 || c == 0 || frames == 0 || h == 0 || w == 0 {
        return Err(format!("tensor '{}' of shape {s:?} is empty", t.name));
    }
    let size = t.dtype.size();
    let mut values = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        let start = ch * frames * h * w; // element [0, ch, 0, 0, 0]
        let bytes = &t.data[start * size..(start + h * w) * size];
        values.extend(bytes.chunks_exact(size).map(|e| t.dtype.decode(e) as f32));
    }
    Ok(LatentSlice { channels: c, height: h, width: w, values })
}

/// An RGBA preview (opaque), rows top to bottom.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub width: usize,
    pub height: usize,
    pub rgba: Vec<u8>,
    pub format: &'static str,
}

/// ComfyUI's Latent2RGB preview of `t` in `format`, computed by the chain crate on the CPU.
pub fn preview(t: &RawTensor, format: LatentFormat) -> Result<Preview, String> {
    let slice = latent_slice(t)?;
    if slice.channels != format.latent_channels() {
        return Err(format!(
            "tensor '{}' has {} channels; {} latents have {}",
            t.name,
            slice.channels,
            format.name(),
            format.latent_channels()
        ));
    }
    let (c, h, w) = (slice.channels, slice.height, slice.width);
    let x0 = Tensor::<5>::from_data(TensorData::new(slice.values, [1, c, 1, h, w]), &cpu());
    let img = format.preview(&x0).map_err(|e| e.to_string())?;
    let rgba = img.rgb.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    Ok(Preview { width: img.width, height: img.height, rgba, format: format.name() })
}

/// A format by name, or the automatic choice for `t`.
pub fn choose(t: &RawTensor, name: Option<&str>) -> Result<LatentFormat, String> {
    match name.filter(|n| !n.is_empty() && *n != "auto") {
        Some(n) => LatentFormat::from_name(n).map_err(|e| e.to_string()),
        None => auto_format(&t.shape)
            .ok_or_else(|| format!("no latent format has {:?} channels; choose one by name", t.shape.get(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_channel_latents_are_wan() {
        assert_eq!(auto_format(&[1, 16, 1, 147, 110]), Some(LatentFormat::Wan21));
        assert_eq!(auto_format(&[1, 16, 14, 10]), Some(LatentFormat::Wan21));
        assert_eq!(auto_format(&[1, 4, 64, 64]), Some(LatentFormat::Sd15));
        assert_eq!(auto_format(&[1, 3, 64, 64]), None);
        assert_eq!(auto_format(&[16, 64]), None);
    }

    #[test]
    fn slice_is_batch_zero_frame_zero() {
        // [1, 2, 2, 1, 2]: channel 0 frames (1,2),(3,4); channel 1 frames (5,6),(7,8).
        let t = RawTensor::from_f32("x", vec![1, 2, 2, 1, 2], &[1., 2., 3., 4., 5., 6., 7., 8.]);
        let s = latent_slice(&t).unwrap();
        assert_eq!((s.channels, s.height, s.width), (2, 1, 2));
        assert_eq!(s.values, vec![1., 2., 5., 6.]);
        assert!(latent_slice(&RawTensor::from_f32("v", vec![3], &[0.; 3])).unwrap_err().contains("not a latent"));
    }

    #[test]
    fn preview_is_the_chains_latent2rgb() {
        // One pixel of a 4-channel SD1.5 latent: rgb = x . factors, then ((rgb+1)/2)*255.
        let t = RawTensor::from_f32("x", vec![1, 4, 1, 1], &[1.0, 0.0, 0.0, 0.0]);
        let p = preview(&t, LatentFormat::Sd15).unwrap();
        let want = |f: f64| (((f + 1.0) / 2.0).clamp(0.0, 1.0) * 255.0) as u8;
        assert_eq!(p.rgba, vec![want(0.3512), want(0.2297), want(0.3227), 255]);
        assert!(preview(&t, LatentFormat::Wan21).unwrap_err().contains("has 4 channels"));
    }
}
