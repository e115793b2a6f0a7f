//! Latent formats (`comfy/latent_formats.py`): how a model's latent space relates to its VAE's,
//! and the cheap latent-to-RGB preview ComfyUI shows while sampling.
//!
//! `process_in` maps a VAE latent into the space the model samples in; `process_out` maps the
//! sampler's result back. Constants are ComfyUI's decimal literals; they are kept as `f64` (the
//! Python float) and rounded to float32 where torch does, so every operation is torch's.

use burn::tensor::{Tensor, TensorData};

use crate::error::{ChainError, Result};

/// A model family's latent format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatentFormat {
    /// Stable Diffusion 1.x (`SD15`): 4 channels, `latent * 0.18215`.
    Sd15,
    /// SDXL: 4 channels, `latent * 0.13025`.
    Sdxl,
    /// Stable Diffusion 3: 16 channels, `(latent - 0.0609) * 1.5305`.
    Sd3,
    /// Flux: 16 channels, `(latent - 0.1159) * 0.3611`.
    Flux,
    /// Wan 2.1, which Qwen-Image uses: 16 channels, 3-D latents, per-channel mean/std.
    Wan21,
}

/// Wan 2.1's per-channel latent mean (`Wan21.latents_mean`).
pub const WAN21_MEAN: [f64; 16] = [
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517, -0.3632, -0.1922,
    -0.9497, 0.2503, -0.2921,
];

/// Wan 2.1's per-channel latent standard deviation (`Wan21.latents_std`).
pub const WAN21_STD: [f64; 16] = [
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253,
    2.8251, 1.9160,
];

const SD15_RGB: [[f64; 3]; 4] =
    [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]];

const SDXL_RGB: [[f64; 3]; 4] =
    [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]];

const SD3_RGB: [[f64; 3]; 16] = [
    [-0.0922, -0.0175, 0.0749],
    [0.0311, 0.0633, 0.0954],
    [0.1994, 0.0927, 0.0458],
    [0.0856, 0.0339, 0.0902],
    [0.0587, 0.0272, -0.0496],
    [-0.0006, 0.1104, 0.0309],
    [0.0978, 0.0306, 0.0427],
    [-0.0042, 0.1038, 0.1358],
    [-0.0194, 0.0020, 0.0669],
    [-0.0488, 0.0130, -0.0268],
    [0.0922, 0.0988, 0.0951],
    [-0.0278, 0.0524, -0.0542],
    [0.0332, 0.0456, 0.0895],
    [-0.0069, -0.0030, -0.0810],
    [-0.0596, -0.0465, -0.0293],
    [-0.1448, -0.1463, -0.1189],
];

const FLUX_RGB: [[f64; 3]; 16] = [
    [-0.0346, 0.0244, 0.0681],
    [0.0034, 0.0210, 0.0687],
    [0.0275, -0.0668, -0.0433],
    [-0.0174, 0.0160, 0.0617],
    [0.0859, 0.0721, 0.0329],
    [0.0004, 0.0383, 0.0115],
    [0.0405, 0.0861, 0.0915],
    [-0.0236, -0.0185, -0.0259],
    [-0.0245, 0.0250, 0.1180],
    [0.1008, 0.0755, -0.0421],
    [-0.0515, 0.0201, 0.0011],
    [0.0428, -0.0012, -0.0036],
    [0.0817, 0.0765, 0.0749],
    [-0.1264, -0.0522, -0.1103],
    [-0.0280, -0.0881, -0.0499],
    [-0.1262, -0.0982, -0.0778],
];

const WAN21_RGB: [[f64; 3]; 16] = [
    [-0.1299, -0.1692, 0.2932],
    [0.0671, 0.0406, 0.0442],
    [0.3568, 0.2548, 0.1747],
    [0.0372, 0.2344, 0.1420],
    [0.0313, 0.0189, -0.0328],
    [0.0296, -0.0956, -0.0665],
    [-0.3477, -0.4059, -0.2925],
    [0.0166, 0.1902, 0.1975],
    [-0.0412, 0.0267, -0.1364],
    [-0.1293, 0.0740, 0.1636],
    [0.0680, 0.3019, 0.1128],
    [0.0032, 0.0581, 0.0639],
    [-0.1251, 0.0927, 0.1699],
    [0.0060, -0.0633, 0.0005],
    [0.3477, 0.2275, 0.2950],
    [0.1984, 0.0913, 0.1861],
];

/// An 8-bit RGB preview image, rows top to bottom, `[r, g, b]` per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewImage {
    pub width: usize,
    pub height: usize,
    pub rgb: Vec<u8>,
}

impl LatentFormat {
    /// Every format, in a fixed order.
    pub const ALL: [LatentFormat; 5] = [Self::Sd15, Self::Sdxl, Self::Sd3, Self::Flux, Self::Wan21];

    /// ComfyUI's class name for the format.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sd15 => "SD15",
            Self::Sdxl => "SDXL",
            Self::Sd3 => "SD3",
            Self::Flux => "Flux",
            Self::Wan21 => "Wan21",
        }
    }

    /// The format of ComfyUI class `name` (case-insensitive), or the model family using it
    /// (`qwen_image` -> Wan21).
    pub fn from_name(name: &str) -> Result<Self> {
        let lower = name.to_ascii_lowercase();
        Ok(match lower.as_str() {
            "sd15" | "sd1" | "sd1.x" => Self::Sd15,
            "sdxl" => Self::Sdxl,
            "sd3" => Self::Sd3,
            "flux" => Self::Flux,
            "wan21" | "wan2.1" | "qwen_image" | "qwen-image" | "qwenimage" => Self::Wan21,
            _ => return Err(ChainError::invalid(format!("unknown latent format '{name}'"))),
        })
    }

    /// Channels of the latent (`latent_channels`).
    pub fn latent_channels(self) -> usize {
        match self {
            Self::Sd15 | Self::Sdxl => 4,
            Self::Sd3 | Self::Flux | Self::Wan21 => 16,
        }
    }

    /// Spatial(-temporal) dimensions (`latent_dimensions`): 3 means `[B, C, T, H, W]` latents.
    pub fn latent_dimensions(self) -> usize {
        match self {
            Self::Wan21 => 3,
            _ => 2,
        }
    }

    /// Latent-to-RGB preview factors, one `[r, g, b]` row per channel (`latent_rgb_factors`).
    pub fn rgb_factors(self) -> &'static [[f64; 3]] {
        match self {
            Self::Sd15 => &SD15_RGB,
            Self::Sdxl => &SDXL_RGB,
            Self::Sd3 => &SD3_RGB,
            Self::Flux => &FLUX_RGB,
            Self::Wan21 => &WAN21_RGB,
        }
    }

    /// The preview's bias (`latent_rgb_factors_bias`), if the format has one.
    pub fn rgb_bias(self) -> Option<[f64; 3]> {
        match self {
            Self::Sd15 => None,
            Self::Sdxl => Some([0.1084, -0.0175, -0.0011]),
            Self::Sd3 => Some([0.2394, 0.2135, 0.1925]),
            Self::Flux => Some([-0.0329, -0.0718, -0.0851]),
            Self::Wan21 => Some([-0.1835, -0.0868, -0.3360]),
        }
    }

    /// VAE latent -> model space.
    pub fn process_in<const D: usize>(self, latent: Tensor<D>) -> Result<Tensor<D>> {
        self.check(&latent)?;
        Ok(match self {
            // LatentFormat.process_in: latent * scale_factor
            Self::Sd15 => latent.mul_scalar(0.18215f64 as f32),
            Self::Sdxl => latent.mul_scalar(0.13025f64 as f32),
            // (latent - shift_factor) * scale_factor
            Self::Sd3 => latent.sub_scalar(0.0609f64 as f32).mul_scalar(1.5305f64 as f32),
            Self::Flux => latent.sub_scalar(0.1159f64 as f32).mul_scalar(0.3611f64 as f32),
            // (latent - mean) * 1.0 / std; the multiply by 1.0 is exact and left out.
            Self::Wan21 => {
                let (mean, std) = wan21_stats::<D>(&latent);
                latent.sub(mean).div(std)
            }
        })
    }

    /// Model space -> VAE latent (ComfyUI applies it to every sampler output).
    pub fn process_out<const D: usize>(self, latent: Tensor<D>) -> Result<Tensor<D>> {
        self.check(&latent)?;
        Ok(match self {
            // LatentFormat.process_out: latent / scale_factor
            Self::Sd15 => latent.div_scalar(0.18215f64 as f32),
            Self::Sdxl => latent.div_scalar(0.13025f64 as f32),
            // latent / scale_factor + shift_factor
            Self::Sd3 => latent.div_scalar(1.5305f64 as f32).add_scalar(0.0609f64 as f32),
            Self::Flux => latent.div_scalar(0.3611f64 as f32).add_scalar(0.1159f64 as f32),
            // latent * std / 1.0 + mean; the divide by 1.0 is exact and left out.
            Self::Wan21 => {
                let (mean, std) = wan21_stats::<D>(&latent);
                latent.mul(std).add(mean)
            }
        })
    }

    /// ComfyUI's Latent2RGB preview of a denoised latent (first batch item, first frame):
    /// `rgb = x0 . factors + bias`, then `((rgb + 1) / 2).clamp(0, 1) * 255` truncated to u8.
    /// The channel sum is a matrix product, so values may differ from torch's in the last ulp,
    /// which can move a pixel by one level.
    pub fn preview(self, x0: &Tensor<5>) -> Result<PreviewImage> {
        self.check(x0)?;
        let [_, c, _, h, w] = x0.dims();
        let device = x0.device();
        let pixels = x0.clone().narrow(0, 0, 1).narrow(2, 0, 1).reshape([c, h * w]).swap_dims(0, 1);
        let factors: Vec<f32> = self.rgb_factors().iter().flatten().map(|&v| v as f32).collect();
        let factors = Tensor::<2>::from_data(TensorData::new(factors, [c, 3]), &device);
        let mut rgb = pixels.matmul(factors);
        if let Some(bias) = self.rgb_bias() {
            let bias: Vec<f32> = bias.iter().map(|&v| v as f32).collect();
            rgb = rgb.add(Tensor::<2>::from_data(TensorData::new(bias, [1, 3]), &device));
        }
        let scaled = rgb.add_scalar(1.0f32).div_scalar(2.0f32).clamp(0.0f32, 1.0f32).mul_scalar(255.0f32);
        let values = scaled
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| ChainError::invalid(format!("cannot read preview values: {e:?}")))?;
        Ok(PreviewImage { width: w, height: h, rgb: values.iter().map(|&v| v as u8).collect() })
    }

    fn check<const D: usize>(self, latent: &Tensor<D>) -> Result<()> {
        let dims = latent.dims();
        if D < 2 || dims[1] != self.latent_channels() {
            return Err(ChainError::invalid(format!(
                "{} latents have {} channels on dim 1, got shape {:?}",
                self.name(),
                self.latent_channels(),
                dims
            )));
        }
        Ok(())
    }
}

/// Wan 2.1 mean and std as float32 tensors of shape `[1, 16, 1, ...]` on the latent's device.
fn wan21_stats<const D: usize>(latent: &Tensor<D>) -> (Tensor<D>, Tensor<D>) {
    let device = latent.device();
    let mut shape = [1usize; D];
    shape[1] = 16;
    let make = |values: &[f64; 16]| {
        let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
        Tensor::<1>::from_data(TensorData::new(v, [16]), &device).reshape(shape)
    };
    (make(&WAN21_MEAN), make(&WAN21_STD))
}
