//! `sample_lcm`: jump to the prediction, then re-noise it to the next sigma.

use burn::tensor::Tensor;

use super::{SamplingContext, report};
use crate::error::Result;

/// `x = x0`, then for a positive next sigma CONST's `noise_scaling(s, noise, x) =
/// s * noise + (1 - s) * x` with fresh noise.
pub(super) fn lcm(ctx: &mut dyn SamplingContext, mut x: Tensor<5>, sigmas: &[f32]) -> Result<Tensor<5>> {
    for i in 0..sigmas.len() - 1 {
        let denoised = ctx.denoise(&x, sigmas[i])?;
        report(ctx, i, sigmas, &x, &denoised);
        x = denoised;
        let s_next = sigmas[i + 1];
        if s_next > 0.0 {
            let noise = ctx.noise(&x, sigmas[i], s_next)?;
            x = crate::ksampler::noise_scaling(s_next, noise, x);
        }
    }
    Ok(x)
}
