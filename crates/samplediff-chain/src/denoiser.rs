//! "The model" as the chain sees it.
//!
//! ComfyUI asks its model one question per prompt side: given the latent `x` at noise level `sigma`,
//! what is the prediction? Three very different things answer that question here, and all of them
//! implement [`Denoiser`]:
//!
//! * the burn Qwen-Image DiT, which returns the raw network output, a velocity `v`
//!   ([`ModelOutput::Velocity`]); the chain turns it into `x0` exactly as ComfyUI's
//!   `CONST.calculate_denoised` does;
//! * a Python callback (the ComfyUI node, a microservice), which may return either form;
//! * a recorded trace (see [`crate::replay`]), which already holds `x0` per side
//!   ([`ModelOutput::Denoised`]).
//!
//! A denoiser owns its conditioning (text embeddings, or nothing for a trace) the way ComfyUI's
//! `CFGGuider` owns its conds: the chain only says which sides it needs. Asking for both sides in
//! one call lets an implementation batch them as ComfyUI does (`[uncond, cond]` when the prompts
//! have equal token counts), which matters for GEMM rounding in a real network.

use burn::tensor::Tensor;

use crate::error::Result;

/// One model evaluation the chain asks for.
#[derive(Debug, Clone, Copy)]
pub struct ModelCall<'a> {
    /// 0-based count of model calls in this sampling run (heun makes two per step).
    pub index: usize,
    /// The sampler's state, `[B, C, T, H, W]`, in the model's normalised latent space.
    pub x: &'a Tensor<5>,
    /// The noise level of `x` (one value for the whole batch, as k-diffusion passes `sigma * s_in`).
    pub sigma: f32,
    /// Whether the negative side is needed. False when ComfyUI's cfg == 1 shortcut skips it.
    pub needs_uncond: bool,
}

/// A model's answer for one prompt side.
#[derive(Debug, Clone)]
pub enum ModelOutput {
    /// Raw output of a rectified-flow (CONST) network, already cast to float32:
    /// the chain computes `x0 = x - v * sigma` (ComfyUI `CONST.calculate_denoised`).
    Velocity(Tensor<5>),
    /// The denoised prediction `x0` itself (a trace, or a callback that did the conversion).
    Denoised(Tensor<5>),
}

impl ModelOutput {
    /// The `x0` prediction for input `x` at `sigma`. For a velocity this is ComfyUI's
    /// `model_input - model_output * sigma`: one multiply, then one subtract, both float32.
    pub fn into_denoised(self, x: &Tensor<5>, sigma: f32) -> Tensor<5> {
        match self {
            ModelOutput::Velocity(v) => x.clone().sub(v.mul_scalar(sigma)),
            ModelOutput::Denoised(x0) => x0,
        }
    }
}

/// The predictions for the sides a [`ModelCall`] asked for.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// The positive prompt's prediction.
    pub cond: ModelOutput,
    /// The negative prompt's prediction; must be `Some` when the call had `needs_uncond`.
    pub uncond: Option<ModelOutput>,
}

/// Anything that maps `(x, sigma, conditioning)` to model predictions.
pub trait Denoiser {
    /// Evaluates the model once for the positive side, and for the negative side too when
    /// `call.needs_uncond` is set.
    fn predict(&mut self, call: &ModelCall<'_>) -> Result<Predictions>;
}

impl<D: Denoiser + ?Sized> Denoiser for &mut D {
    fn predict(&mut self, call: &ModelCall<'_>) -> Result<Predictions> {
        (**self).predict(call)
    }
}

impl<D: Denoiser + ?Sized> Denoiser for Box<D> {
    fn predict(&mut self, call: &ModelCall<'_>) -> Result<Predictions> {
        (**self).predict(call)
    }
}

/// A [`Denoiser`] made of a closure: handy for tests and for foreign callbacks.
pub struct FnDenoiser<F>(pub F);

impl<F> Denoiser for FnDenoiser<F>
where
    F: FnMut(&ModelCall<'_>) -> Result<Predictions>,
{
    fn predict(&mut self, call: &ModelCall<'_>) -> Result<Predictions> {
        (self.0)(call)
    }
}
