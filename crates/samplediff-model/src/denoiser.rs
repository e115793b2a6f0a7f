//! The model as the chain's [`Denoiser`]: a velocity per prompt side.

use burn::tensor::Tensor;
use samplediff_chain::denoiser::{Denoiser, ModelCall, ModelOutput, Predictions};
use samplediff_chain::error::{ChainError, Result};

use crate::model::QwenImageModel;

/// [`QwenImageModel`] with its conditioning, answering the chain's model calls.
///
/// Like ComfyUI's `calc_cond_batch`, both sides run as one batch `[uncond, cond]` when their token
/// counts match, and as two forwards otherwise.
pub struct QwenDenoiser {
    pub model: QwenImageModel,
    /// Positive conditioning `[1 or B, L, joint_dim]`.
    pub positive: Tensor<3>,
    /// Negative conditioning, needed whenever cfg ≠ 1.
    pub negative: Option<Tensor<3>>,
    /// `ModelSamplingDiscreteFlow.multiplier`: the network sees `timestep = σ · multiplier`
    /// (1 for ModelSamplingAuraFlow and Qwen-Image's default, 1000 for ModelSamplingSD3).
    pub multiplier: f32,
}

impl QwenDenoiser {
    pub fn new(model: QwenImageModel, positive: Tensor<3>, negative: Option<Tensor<3>>) -> Self {
        Self { model, positive, negative, multiplier: 1.0 }
    }

    /// Velocities for `x` under each context in `contexts` (all of one token count), batched.
    fn velocities(&self, x: &Tensor<5>, sigma: f32, contexts: &[&Tensor<3>]) -> Result<Vec<Tensor<5>>> {
        let b = x.dims()[0];
        let device = self.model.device();
        let per_batch = |c: &Tensor<3>| -> Result<Tensor<3>> {
            match c.dims()[0] {
                1 => Ok(c.clone().repeat_dim(0, b)),
                n if n == b => Ok(c.clone()),
                n => Err(ChainError::Model(format!("conditioning batch {n} does not fit latent batch {b}"))),
            }
        };
        let context = Tensor::cat(contexts.iter().map(|c| per_batch(c)).collect::<Result<Vec<_>>>()?, 0);
        let xs = Tensor::cat(vec![x.clone(); contexts.len()], 0);
        // `ModelSamplingDiscreteFlow.timestep`: σ · multiplier in float32.
        let timestep = vec![sigma * self.multiplier; b * contexts.len()];
        let v = self
            .model
            .forward(xs.to_device(device), &timestep, context.to_device(device))
            .map_err(|e| ChainError::Model(e.to_string()))?;
        Ok(v.chunk(contexts.len(), 0))
    }
}

impl Denoiser for QwenDenoiser {
    fn predict(&mut self, call: &ModelCall<'_>) -> Result<Predictions> {
        let positive = &self.positive;
        let negative = match (call.needs_uncond, &self.negative) {
            (false, _) => None,
            (true, Some(n)) => Some(n),
            (true, None) => return Err(ChainError::Model("cfg needs a negative conditioning".into())),
        };
        let (cond, uncond) = match negative {
            None => (self.velocities(call.x, call.sigma, &[positive])?.remove(0), None),
            Some(neg) if neg.dims()[1] == positive.dims()[1] => {
                let mut v = self.velocities(call.x, call.sigma, &[neg, positive])?;
                let cond = v.remove(1);
                (cond, Some(v.remove(0)))
            }
            Some(neg) => {
                let cond = self.velocities(call.x, call.sigma, &[positive])?.remove(0);
                (cond, Some(self.velocities(call.x, call.sigma, &[neg])?.remove(0)))
            }
        };
        Ok(Predictions { cond: ModelOutput::Velocity(cond), uncond: uncond.map(ModelOutput::Velocity) })
    }
}
