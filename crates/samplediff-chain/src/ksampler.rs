//! The KSampler node's numeric path, end to end (`nodes.py:common_ksampler` ->
//! `comfy/sample.py` -> `comfy/samplers.py:CFGGuider` -> `KSAMPLER.sample`):
//!
//! ```text
//! latent = fix_empty_latent_channels(latent)          # 4-D empty latents become 5-D, 16 ch
//! noise  = prepare_noise(latent, seed)                # caller's (crate::rng)
//! if sigmas is empty: return latent
//! x_lat  = process_in(latent) if any(latent != 0) else latent
//! x      = sigmas[0] * noise + (1 - sigmas[0]) * x_lat          # CONST.noise_scaling
//! x      = sampler(model = CFG(denoiser) + post-CFG, x, sigmas)
//! x      = x / (1 - sigmas[-1])                                 # CONST.inverse_noise_scaling
//! return process_out(x)                                          # always
//! ```
//!
//! The chain assumes a CONST (rectified-flow) model, as Qwen-Image, SD3 and Flux are. Tensors are
//! 5-D `[B, C, T, H, W]` throughout; a 4-D latent of a 2-D format (SD1.x, SDXL, SD3, Flux) is run
//! as `T = 1` and handed back 4-D, as ComfyUI keeps it.
//!
//! [`Observer`] sees every sampler step (ComfyUI's callback: `x`, `denoised`) and every model call
//! (the post-CFG view: `x`, `sigma`, `cond_denoised`, `uncond_denoised`, `denoised`), which is what a
//! trace records as `stepNNN.*` and `callNNN.*`.

use burn::tensor::{Tensor, TensorData};

use crate::cfg::Guidance;
use crate::denoiser::{Denoiser, ModelCall};
use crate::error::{ChainError, Result};
use crate::latent_format::LatentFormat;
use crate::model_sampling::ModelSampling;
use crate::rng::{CudaDevice, CudaPhiloxGenerator, TorchCpuGenerator, prepare_noise};
use crate::sampler::{Sampler, SamplingContext, StepInfo};

/// A LATENT's samples as ComfyUI holds them: 4-D images or 5-D videos.
#[derive(Debug, Clone)]
pub enum Latent {
    /// `[B, C, H, W]` (what `EmptySD3LatentImage` and SD-family VAEs produce).
    Image(Tensor<4>),
    /// `[B, C, T, H, W]`.
    Video(Tensor<5>),
}

impl Latent {
    /// The samples as a 5-D tensor (`T = 1` inserted for images).
    pub fn to_5d(&self) -> Tensor<5> {
        match self {
            Latent::Image(t) => t.clone().unsqueeze_dim(2),
            Latent::Video(t) => t.clone(),
        }
    }

    /// Shape of the samples.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Latent::Image(t) => t.dims().to_vec(),
            Latent::Video(t) => t.dims().to_vec(),
        }
    }
}

/// One model call as the post-CFG functions see it: what a trace records as `callNNN.*`.
#[derive(Debug, Clone, Copy)]
pub struct CallInfo<'a> {
    /// 0-based model-call index.
    pub index: usize,
    pub sigma: f32,
    /// The sampler's input for this call.
    pub x: &'a Tensor<5>,
    pub cond_denoised: &'a Tensor<5>,
    /// All zeros when the cfg == 1 shortcut skipped the negative prompt.
    pub uncond_denoised: &'a Tensor<5>,
    /// The prediction the sampler uses: CFG, then every post-CFG function.
    pub denoised: &'a Tensor<5>,
}

/// Watches a sampling run; both methods default to doing nothing.
pub trait Observer {
    /// Once per sampler step (ComfyUI's sampler callback).
    fn on_step(&mut self, _step: &StepInfo<'_>) {}
    /// Once per model call, after CFG and post-CFG functions.
    fn on_call(&mut self, _call: &CallInfo<'_>) {}
}

/// Source of the noise stochastic samplers draw during sampling (ComfyUI's
/// `noise_sampler(sigma, sigma_next)`).
pub trait NoiseSampler {
    /// Noise of `x`'s shape on `x`'s device.
    fn sample(&mut self, x: &Tensor<5>, sigma: f32, sigma_next: f32) -> Result<Tensor<5>>;
}

/// CONST `noise_scaling`: `sigma * noise + (1 - sigma) * latent`.
pub fn noise_scaling(sigma: f32, noise: Tensor<5>, latent: Tensor<5>) -> Tensor<5> {
    noise.mul_scalar(sigma).add(latent.mul_scalar(1.0 - sigma))
}

/// CONST `inverse_noise_scaling`: `x / (1 - sigma)` (a division by exactly 1 for a last sigma of 0).
pub fn inverse_noise_scaling(sigma: f32, x: Tensor<5>) -> Tensor<5> {
    x.div_scalar(1.0 - sigma)
}

/// Whether any element is non-zero (`torch.count_nonzero(latent) > 0`; `-0.0` counts as zero).
pub fn has_nonzero<const D: usize>(t: &Tensor<D>) -> bool {
    t.clone().not_equal_elem(0.0f32).any().into_scalar::<bool>()
}

/// ComfyUI's `process_in(latent) if count_nonzero(latent) > 0 else latent` (`comfy/sample.py`),
/// decided on the device: both sides are computed and the device's own `any` selects one,
/// elementwise. Nothing is read back to the host (a browser's WebGPU cannot read a buffer
/// synchronously), and a selection copies values, so the result is bit for bit the branch's.
pub fn process_in_if_nonzero(format: LatentFormat, latent: Tensor<5>) -> Result<Tensor<5>> {
    let nonzero = latent.clone().not_equal_elem(0.0f32).any().reshape([1; 5]).expand(latent.dims());
    let processed = format.process_in(latent.clone())?;
    Ok(latent.mask_where(nonzero, processed))
}

/// `comfy/sample.py:fix_empty_latent_channels`: an all-zero latent with the wrong channel count
/// becomes zeros with the format's channels; a 4-D latent of a 3-D format gains `T = 1`.
/// Returns the 5-D tensor the chain works on. Reads the latent back only when its channel count
/// is wrong (the output's shape depends on it), never for a latent of the format's channels.
pub fn fix_empty_latent_channels(format: LatentFormat, latent: &Latent) -> Tensor<5> {
    let mut t = latent.to_5d();
    let dims = t.dims();
    let channels = format.latent_channels();
    if dims[1] != channels && !has_nonzero(&t) {
        let [b, _, f, h, w] = dims;
        t = Tensor::zeros([b, channels, f, h, w], &t.device());
    }
    t
}

/// The noise a run starts from.
// One value per run; boxing the tensor handle buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum InitialNoise {
    /// ComfyUI's `prepare_noise(latent, seed, batch_index)`: torch CPU `randn` of the fixed
    /// latent's shape (one draw per batch slot when the LATENT has a `batch_index`).
    Seed { seed: u64, batch_index: Option<Vec<i64>> },
    /// Noise of the fixed latent's shape, made elsewhere.
    Tensor(Tensor<5>),
    /// KSamplerAdvanced's `add_noise = disable`: zeros.
    Zeros,
}

/// Optional hooks of a run.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Sees every step and model call.
    pub observer: Option<&'a mut dyn Observer>,
    /// Required by stochastic samplers (euler_ancestral, lcm, dpmpp_2m_sde, res_multistep_ancestral).
    pub noise_sampler: Option<&'a mut dyn NoiseSampler>,
}

/// The KSampler's settings besides the model: sampler, guidance, latent format, model sampling.
#[derive(Debug)]
pub struct KSampler {
    pub sampler: Sampler,
    /// CFG scale and the post-CFG functions (a CFGNorm node adds one).
    pub guidance: Guidance,
    pub latent_format: LatentFormat,
    /// The model sampling (shift, multiplier); the samplers read only its `percent_to_sigma`
    /// (dpmpp_2m_sde), the sigmas come from the caller.
    pub model_sampling: ModelSampling,
}

impl KSampler {
    /// The whole KSampler path from a LATENT to the output LATENT.
    pub fn sample(
        &mut self,
        denoiser: &mut dyn Denoiser,
        latent: &Latent,
        noise: InitialNoise,
        sigmas: &[f32],
        hooks: Hooks<'_>,
    ) -> Result<Latent> {
        let fixed = fix_empty_latent_channels(self.latent_format, latent);
        if sigmas.is_empty() {
            return Ok(self.restore_rank(latent, fixed));
        }
        let noise = match noise {
            InitialNoise::Seed { seed, batch_index } => {
                let noise = prepare_noise(seed, &fixed.dims(), batch_index.as_deref())
                    .map_err(|e| ChainError::invalid(format!("initial noise: {e}")))?;
                if noise.shape != fixed.dims() {
                    return Err(ChainError::invalid(format!(
                        "batch_index gives noise of shape {:?} for a latent of shape {:?}",
                        noise.shape,
                        fixed.dims()
                    )));
                }
                noise.to_tensor::<5>(&fixed.device()).map_err(|e| ChainError::invalid(format!("initial noise: {e}")))?
            }
            InitialNoise::Tensor(n) => {
                if n.dims() != fixed.dims() {
                    return Err(ChainError::invalid(format!(
                        "noise shape {:?} differs from the latent's {:?}",
                        n.dims(),
                        fixed.dims()
                    )));
                }
                n
            }
            InitialNoise::Zeros => fixed.zeros_like(),
        };
        let latent_in = process_in_if_nonzero(self.latent_format, fixed)?;
        let x = noise_scaling(sigmas[0], noise, latent_in);
        let out = self.sample_from(denoiser, x, sigmas, hooks)?;
        Ok(self.restore_rank(latent, out))
    }

    /// The sampler, inverse noise scaling and `process_out`, from an already noise-scaled `x`
    /// (ComfyUI's `KSAMPLER.sample` from the `noise_scaling` call on, plus `process_latent_out`).
    pub fn sample_from(
        &mut self,
        denoiser: &mut dyn Denoiser,
        x: Tensor<5>,
        sigmas: &[f32],
        hooks: Hooks<'_>,
    ) -> Result<Tensor<5>> {
        let samples = self.run_sampler(denoiser, x, sigmas, hooks)?;
        let last = self.sampler.final_sigma(sigmas).unwrap_or(0.0);
        let samples = inverse_noise_scaling(last, samples);
        self.latent_format.process_out(samples)
    }

    /// The sampler alone, with CFG and post-CFG functions around the denoiser: what ComfyUI's
    /// `sample_<name>(model, x, sigmas)` returns.
    pub fn run_sampler(
        &mut self,
        denoiser: &mut dyn Denoiser,
        x: Tensor<5>,
        sigmas: &[f32],
        hooks: Hooks<'_>,
    ) -> Result<Tensor<5>> {
        if sigmas.is_empty() {
            return Err(ChainError::invalid("no sigmas to sample with"));
        }
        if self.sampler.is_stochastic() && hooks.noise_sampler.is_none() {
            return Err(ChainError::invalid(format!("sampler {} draws noise: give it a noise sampler", self.sampler)));
        }
        let mut ctx = ChainContext {
            denoiser,
            guidance: &mut self.guidance,
            observer: hooks.observer,
            noise_sampler: hooks.noise_sampler,
            model_sampling: &self.model_sampling,
            calls: 0,
        };
        self.sampler.sample(&mut ctx, x, sigmas)
    }

    fn restore_rank(&self, original: &Latent, out: Tensor<5>) -> Latent {
        match original {
            Latent::Image(_) if self.latent_format.latent_dimensions() == 2 => Latent::Image(out.squeeze_dim(2)),
            _ => Latent::Video(out),
        }
    }
}

/// The model as the sampler sees it: denoiser + CFG + post-CFG, with the hooks.
struct ChainContext<'a, 'h> {
    denoiser: &'a mut dyn Denoiser,
    guidance: &'a mut Guidance,
    observer: Option<&'h mut dyn Observer>,
    noise_sampler: Option<&'h mut dyn NoiseSampler>,
    model_sampling: &'a ModelSampling,
    calls: usize,
}

impl SamplingContext for ChainContext<'_, '_> {
    fn denoise(&mut self, x: &Tensor<5>, sigma: f32) -> Result<Tensor<5>> {
        let needs_uncond = self.guidance.needs_uncond();
        let index = self.calls;
        let predictions = self.denoiser.predict(&ModelCall { index, x, sigma, needs_uncond })?;
        let cond = predictions.cond.into_denoised(x, sigma);
        let uncond = match (needs_uncond, predictions.uncond) {
            (true, Some(u)) => u.into_denoised(x, sigma),
            (true, None) => {
                return Err(ChainError::Model(format!("call {index}: the negative prediction is missing")));
            }
            // cfg == 1: ComfyUI never evaluates the negative side and passes zeros on.
            (false, _) => x.zeros_like(),
        };
        let denoised = self.guidance.apply(x, sigma, &cond, &uncond)?;
        if let Some(obs) = self.observer.as_deref_mut() {
            obs.on_call(&CallInfo {
                index,
                sigma,
                x,
                cond_denoised: &cond,
                uncond_denoised: &uncond,
                denoised: &denoised,
            });
        }
        self.calls += 1;
        Ok(denoised)
    }

    fn noise(&mut self, x: &Tensor<5>, sigma: f32, sigma_next: f32) -> Result<Tensor<5>> {
        match self.noise_sampler.as_deref_mut() {
            Some(n) => {
                let noise = n.sample(x, sigma, sigma_next)?;
                if noise.dims() != x.dims() {
                    return Err(ChainError::invalid(format!(
                        "noise sampler gave shape {:?} for x of shape {:?}",
                        noise.dims(),
                        x.dims()
                    )));
                }
                Ok(noise)
            }
            None => Err(ChainError::invalid("this sampler draws noise but no noise sampler was given")),
        }
    }

    fn percent_to_sigma(&self, percent: f64) -> f64 {
        self.model_sampling.percent_to_sigma(percent)
    }

    fn on_step(&mut self, info: &StepInfo<'_>) {
        if let Some(obs) = self.observer.as_deref_mut() {
            obs.on_step(info);
        }
    }
}

/// ComfyUI's `default_noise_sampler(x, seed)` for a latent on the CPU: a
/// `torch.Generator("cpu")` seeded with `seed`, one `randn` of `x`'s shape per call.
#[derive(Debug, Clone)]
pub struct TorchCpuNoiseSampler {
    generator: TorchCpuGenerator,
}

impl TorchCpuNoiseSampler {
    pub fn new(seed: u64) -> Self {
        Self { generator: TorchCpuGenerator::manual_seed(seed) }
    }
}

impl NoiseSampler for TorchCpuNoiseSampler {
    fn sample(&mut self, x: &Tensor<5>, _sigma: f32, _sigma_next: f32) -> Result<Tensor<5>> {
        let dims = x.dims();
        let values = self.generator.randn(dims.iter().product());
        Ok(Tensor::from_data(TensorData::new(values, dims), &x.device()))
    }
}

/// ComfyUI's `default_noise_sampler(x, seed)` for a latent on an NVIDIA GPU: the CUDA Philox
/// generator seeded with `seed` (emulated; see [`crate::rng::philox`] for its float32 caveat).
#[derive(Debug, Clone)]
pub struct CudaPhiloxNoiseSampler {
    generator: CudaPhiloxGenerator,
    device: CudaDevice,
}

impl CudaPhiloxNoiseSampler {
    pub fn new(seed: u64, device: CudaDevice) -> Self {
        Self { generator: CudaPhiloxGenerator::manual_seed(seed), device }
    }
}

impl NoiseSampler for CudaPhiloxNoiseSampler {
    fn sample(&mut self, x: &Tensor<5>, _sigma: f32, _sigma_next: f32) -> Result<Tensor<5>> {
        let dims = x.dims();
        let values = self.generator.randn_f32(dims.iter().product(), self.device);
        Ok(Tensor::from_data(TensorData::new(values, dims), &x.device()))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Device;

    use super::*;

    fn bits(t: Tensor<5>) -> Vec<u32> {
        t.into_data().try_into_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn process_in_if_nonzero_selects_the_branch_bit_for_bit() {
        let device = Device::flex();
        let shape = [1, 16, 1, 2, 3];
        let values: Vec<f32> = (0..96).map(|i| (i as f32 * 0.37).sin()).collect();
        let latent = Tensor::<5>::from_data(TensorData::new(values, shape), &device);
        let processed = LatentFormat::Wan21.process_in(latent.clone()).unwrap();
        assert_eq!(bits(process_in_if_nonzero(LatentFormat::Wan21, latent).unwrap()), bits(processed));

        // All zeros, -0.0 included (torch.count_nonzero counts neither): left alone, signs kept.
        let zeros: Vec<f32> = (0..96).map(|i| if i % 2 == 0 { 0.0 } else { -0.0 }).collect();
        let empty = Tensor::<5>::from_data(TensorData::new(zeros, shape), &device);
        assert_eq!(bits(process_in_if_nonzero(LatentFormat::Wan21, empty.clone()).unwrap()), bits(empty));
    }
}
