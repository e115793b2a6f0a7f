//! ComfyUI's k-diffusion samplers (`comfy/k_diffusion/sampling.py`), float32, operation for
//! operation.
//!
//! A sampler walks a sigma schedule. At every step it asks the model (CFG included) for the
//! denoised prediction `x0`, reports the step, and moves `x` to the next sigma. Two rules keep it
//! bit-identical to ComfyUI on an IEEE float32 backend:
//!
//! * each tensor formula is written in ComfyUI's exact operation order (x0, then `d`, then x),
//!   never simplified algebraically;
//! * every scalar coefficient is what torch computes with 0-d float32 tensors: `sigmas[i]` are
//!   float32, Python floats (eta, s_noise, 0.5, ...) are rounded to float32 where they meet them,
//!   and `log`/`exp`/`expm1` are correctly rounded float32 functions (see [`scalar`]).
//!
//! Samplers assume a CONST (rectified-flow) model — the family of Qwen-Image, SD3 and Flux —
//! wherever the formula depends on the model sampling (euler_ancestral, lcm, dpmpp_2m_sde).

mod dpmpp;
mod euler;
mod lcm;
mod res_multistep;
pub mod scalar;
mod uni_pc;

pub use uni_pc::UniPcVariant;

use std::fmt;
use std::str::FromStr;

use burn::tensor::Tensor;

use crate::error::{ChainError, Result};

/// What a sampler reports at each step: ComfyUI's sampler callback dict.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo<'a> {
    /// 0-based step index.
    pub i: usize,
    /// Number of steps of the run (`len(sigmas) - 1`).
    pub total_steps: usize,
    /// `sigmas[i]`.
    pub sigma: f32,
    /// The sigma the model was evaluated at (equal to `sigma` for every sampler here).
    pub sigma_hat: f32,
    /// The sampler state at the start of the step (uni_pc: after it, as its ComfyUI callback).
    pub x: &'a Tensor<5>,
    /// The step's (first) denoised prediction, after CFG and post-CFG functions.
    pub denoised: &'a Tensor<5>,
}

/// Everything a sampler needs from its surroundings.
pub trait SamplingContext {
    /// The denoised prediction `x0` at `(x, sigma)`: ComfyUI's wrapped model (CFG included).
    fn denoise(&mut self, x: &Tensor<5>, sigma: f32) -> Result<Tensor<5>>;

    /// Fresh noise of `x`'s shape for the step from `sigma` to `sigma_next`: ComfyUI's
    /// `noise_sampler(sigma, sigma_next)`. Deterministic samplers never call it.
    fn noise(&mut self, x: &Tensor<5>, sigma: f32, sigma_next: f32) -> Result<Tensor<5>>;

    /// ComfyUI's `model_sampling.percent_to_sigma(percent)` as the Python float it returns
    /// (only dpmpp_2m_sde uses it, to move a first sigma of 1 off the singular log-SNR).
    fn percent_to_sigma(&self, percent: f64) -> f64;

    /// Called once per step with the step's state and prediction.
    fn on_step(&mut self, info: &StepInfo<'_>);
}

/// The solver of dpmpp_2m_sde's second-order correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdeSolver {
    /// ComfyUI's default.
    Midpoint,
    /// `dpmpp_2m_sde_heun`.
    Heun,
}

/// A sampler with its (ComfyUI-default unless stated) options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// `euler` (s_churn = 0: deterministic).
    Euler,
    /// `euler_ancestral`, which ComfyUI runs as `sample_euler_ancestral_RF` for CONST models.
    EulerAncestral { eta: f64, s_noise: f64 },
    /// `heun`: two model calls per step except the last.
    Heun,
    /// `dpmpp_2m`.
    Dpmpp2m,
    /// `dpmpp_2m_sde` / `dpmpp_2m_sde_heun` (the noise must come from the context: ComfyUI
    /// draws it from torchsde's Brownian tree, which this crate does not implement).
    Dpmpp2mSde { eta: f64, s_noise: f64, solver: SdeSolver },
    /// `res_multistep` (eta = 0) and `res_multistep_ancestral` (eta = 1).
    ResMultistep { eta: f64, s_noise: f64 },
    /// `lcm`.
    Lcm,
    /// `ddim`: ComfyUI runs euler (its extra random noise only matters for inpainting masks).
    Ddim,
    /// `uni_pc` / `uni_pc_bh2` (schedules for it drop the penultimate sigma).
    UniPc { variant: UniPcVariant },
}

impl Sampler {
    /// The sampler ComfyUI's KSampler node runs for `name`, with the node's default options.
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "euler" => Self::Euler,
            "euler_ancestral" => Self::EulerAncestral { eta: 1.0, s_noise: 1.0 },
            "heun" => Self::Heun,
            "dpmpp_2m" => Self::Dpmpp2m,
            "dpmpp_2m_sde" | "dpmpp_2m_sde_gpu" => {
                Self::Dpmpp2mSde { eta: 1.0, s_noise: 1.0, solver: SdeSolver::Midpoint }
            }
            "dpmpp_2m_sde_heun" | "dpmpp_2m_sde_heun_gpu" => {
                Self::Dpmpp2mSde { eta: 1.0, s_noise: 1.0, solver: SdeSolver::Heun }
            }
            "res_multistep" => Self::ResMultistep { eta: 0.0, s_noise: 1.0 },
            "res_multistep_ancestral" => Self::ResMultistep { eta: 1.0, s_noise: 1.0 },
            "lcm" => Self::Lcm,
            "ddim" => Self::Ddim,
            "uni_pc" => Self::UniPc { variant: UniPcVariant::Bh1 },
            "uni_pc_bh2" => Self::UniPc { variant: UniPcVariant::Bh2 },
            other => {
                return Err(ChainError::invalid(format!(
                    "sampler '{other}' is not implemented (have: {})",
                    Self::NAMES.join(", ")
                )));
            }
        })
    }

    /// Names accepted by [`Sampler::from_name`].
    pub const NAMES: &'static [&'static str] = &[
        "euler",
        "euler_ancestral",
        "heun",
        "dpmpp_2m",
        "dpmpp_2m_sde",
        "dpmpp_2m_sde_gpu",
        "dpmpp_2m_sde_heun",
        "dpmpp_2m_sde_heun_gpu",
        "res_multistep",
        "res_multistep_ancestral",
        "lcm",
        "ddim",
        "uni_pc",
        "uni_pc_bh2",
    ];

    /// Whether the sampler draws noise after the initial noise (through
    /// [`SamplingContext::noise`]).
    pub fn is_stochastic(&self) -> bool {
        match *self {
            Self::EulerAncestral { eta, .. } => eta > 0.0,
            Self::Dpmpp2mSde { eta, s_noise, .. } => eta > 0.0 && s_noise > 0.0,
            Self::ResMultistep { eta, .. } => eta != 0.0,
            Self::Lcm => true,
            Self::Euler | Self::Heun | Self::Dpmpp2m | Self::Ddim | Self::UniPc { .. } => false,
        }
    }

    /// The sigma KSampler's inverse noise scaling divides by after this sampler ran: the
    /// schedule's last, except that ComfyUI's uni_pc overwrites a last sigma of 0 with 0.001 in
    /// the schedule it was given, so the result is divided by `1 - 0.001`.
    pub fn final_sigma(&self, sigmas: &[f32]) -> Option<f32> {
        let last = *sigmas.last()?;
        Some(match self {
            Self::UniPc { .. } if last == 0.0 && sigmas.len() > 1 => 0.001f64 as f32,
            _ => last,
        })
    }

    /// Runs the sampler from `x` (already noise-scaled to `sigmas[0]`) along `sigmas`.
    /// Fewer than two sigmas means no step: `x` comes back unchanged.
    pub fn sample(&self, ctx: &mut dyn SamplingContext, x: Tensor<5>, sigmas: &[f32]) -> Result<Tensor<5>> {
        if sigmas.len() <= 1 {
            return Ok(x);
        }
        if let Some(bad) = sigmas.iter().find(|s| !s.is_finite() || **s < 0.0) {
            return Err(ChainError::invalid(format!("sigma {bad} is not a finite non-negative number")));
        }
        match *self {
            Self::Euler | Self::Ddim => euler::euler(ctx, x, sigmas),
            Self::EulerAncestral { eta, s_noise } => euler::euler_ancestral_rf(ctx, x, sigmas, eta, s_noise),
            Self::Heun => euler::heun(ctx, x, sigmas),
            Self::Dpmpp2m => dpmpp::dpmpp_2m(ctx, x, sigmas),
            Self::Dpmpp2mSde { eta, s_noise, solver } => dpmpp::dpmpp_2m_sde(ctx, x, sigmas, eta, s_noise, solver),
            Self::ResMultistep { eta, s_noise } => res_multistep::res_multistep(ctx, x, sigmas, eta, s_noise),
            Self::Lcm => lcm::lcm(ctx, x, sigmas),
            Self::UniPc { variant } => uni_pc::uni_pc(ctx, x, sigmas, variant),
        }
    }
}

impl FromStr for Sampler {
    type Err = ChainError;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s)
    }
}

impl fmt::Display for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Euler => "euler",
            Self::EulerAncestral { .. } => "euler_ancestral",
            Self::Heun => "heun",
            Self::Dpmpp2m => "dpmpp_2m",
            Self::Dpmpp2mSde { solver: SdeSolver::Midpoint, .. } => "dpmpp_2m_sde",
            Self::Dpmpp2mSde { solver: SdeSolver::Heun, .. } => "dpmpp_2m_sde_heun",
            Self::ResMultistep { eta, .. } if *eta == 0.0 => "res_multistep",
            Self::ResMultistep { .. } => "res_multistep_ancestral",
            Self::Lcm => "lcm",
            Self::Ddim => "ddim",
            Self::UniPc { variant: UniPcVariant::Bh1 } => "uni_pc",
            Self::UniPc { variant: UniPcVariant::Bh2 } => "uni_pc_bh2",
        };
        f.write_str(name)
    }
}

/// k-diffusion's `to_d`: `(x - denoised) / sigma`.
fn to_d(x: &Tensor<5>, sigma: f32, denoised: &Tensor<5>) -> Tensor<5> {
    x.clone().sub(denoised.clone()).div_scalar(sigma)
}

/// Reports a step to the context.
fn report(ctx: &mut dyn SamplingContext, i: usize, sigmas: &[f32], x: &Tensor<5>, denoised: &Tensor<5>) {
    ctx.on_step(&StepInfo { i, total_steps: sigmas.len() - 1, sigma: sigmas[i], sigma_hat: sigmas[i], x, denoised });
}
