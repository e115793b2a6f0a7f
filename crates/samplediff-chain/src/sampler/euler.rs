//! euler, euler_ancestral (rectified-flow variant) and heun.

use burn::tensor::Tensor;

use super::{SamplingContext, report, to_d};
use crate::error::Result;

/// `sample_euler` with `s_churn = 0`:
/// `x0 = model(x, s_i); d = (x - x0) / s_i; x = x + d * (s_{i+1} - s_i)`.
pub(super) fn euler(ctx: &mut dyn SamplingContext, mut x: Tensor<5>, sigmas: &[f32]) -> Result<Tensor<5>> {
    for i in 0..sigmas.len() - 1 {
        let sigma_hat = sigmas[i];
        let denoised = ctx.denoise(&x, sigma_hat)?;
        let d = to_d(&x, sigma_hat, &denoised);
        report(ctx, i, sigmas, &x, &denoised);
        let dt = sigmas[i + 1] - sigma_hat;
        x = x.add(d.mul_scalar(dt));
    }
    Ok(x)
}

/// `sample_euler_ancestral_RF`, which ComfyUI's `euler_ancestral` runs for CONST models:
/// step to `sigma_down = s_{i+1} * (1 + (s_{i+1}/s_i - 1) * eta)` along the straight line to x0,
/// rescale to the `1 - s_{i+1}` signal level and add fresh noise to reach `s_{i+1}`.
pub(super) fn euler_ancestral_rf(
    ctx: &mut dyn SamplingContext,
    mut x: Tensor<5>,
    sigmas: &[f32],
    eta: f64,
    s_noise: f64,
) -> Result<Tensor<5>> {
    let eta32 = eta as f32;
    for i in 0..sigmas.len() - 1 {
        let (s, s_next) = (sigmas[i], sigmas[i + 1]);
        let denoised = ctx.denoise(&x, s)?;
        report(ctx, i, sigmas, &x, &denoised);
        if s_next == 0.0 {
            x = denoised;
            continue;
        }
        let downstep_ratio = 1.0 + (s_next / s - 1.0) * eta32;
        let sigma_down = s_next * downstep_ratio;
        let alpha_next = 1.0 - s_next;
        let alpha_down = 1.0 - sigma_down;
        // (s_next**2 - sigma_down**2 * alpha_next**2 / alpha_down**2) ** 0.5
        let renoise_coeff =
            (s_next * s_next - sigma_down * sigma_down * (alpha_next * alpha_next) / (alpha_down * alpha_down)).sqrt();
        let ratio = sigma_down / s;
        x = x.mul_scalar(ratio).add(denoised.mul_scalar(1.0 - ratio));
        if eta > 0.0 {
            let noise = ctx.noise(&x, s, s_next)?;
            x = x.mul_scalar(alpha_next / alpha_down).add(noise.mul_scalar(s_noise as f32).mul_scalar(renoise_coeff));
        }
    }
    Ok(x)
}

/// `sample_heun` with `s_churn = 0`: an Euler predictor to `s_{i+1}`, a second model call there,
/// and the average slope; the last step (to sigma 0) is a plain Euler step.
pub(super) fn heun(ctx: &mut dyn SamplingContext, mut x: Tensor<5>, sigmas: &[f32]) -> Result<Tensor<5>> {
    for i in 0..sigmas.len() - 1 {
        // sigma_hat = sigmas[i] * (gamma + 1) with gamma = 0: an exact multiply by one.
        let sigma_hat = sigmas[i];
        let denoised = ctx.denoise(&x, sigma_hat)?;
        let d = to_d(&x, sigma_hat, &denoised);
        report(ctx, i, sigmas, &x, &denoised);
        let dt = sigmas[i + 1] - sigma_hat;
        if sigmas[i + 1] == 0.0 {
            x = x.add(d.mul_scalar(dt));
        } else {
            let x_2 = x.clone().add(d.clone().mul_scalar(dt));
            let denoised_2 = ctx.denoise(&x_2, sigmas[i + 1])?;
            let d_2 = to_d(&x_2, sigmas[i + 1], &denoised_2);
            let d_prime = d.add(d_2).div_scalar(2.0f32);
            x = x.add(d_prime.mul_scalar(dt));
        }
    }
    Ok(x)
}
