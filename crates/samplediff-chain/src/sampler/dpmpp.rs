//! DPM-Solver++(2M) and its SDE variant.

use burn::tensor::Tensor;

use super::scalar::{exp, expm1, ln, logit};
use super::{SamplingContext, SdeSolver, report};
use crate::error::Result;

/// `t = -log(sigma)` (k-diffusion's `t_fn`; `+inf` at sigma 0).
fn t_fn(sigma: f32) -> f32 {
    -ln(sigma)
}

/// `sigma = exp(-t)` (k-diffusion's `sigma_fn`).
fn sigma_fn(t: f32) -> f32 {
    exp(-t)
}

/// `sample_dpmpp_2m`. It uses the EPS-style `t = -log(sigma)` even for flow models, as ComfyUI
/// does. First step and the step to sigma 0 are first order.
pub(super) fn dpmpp_2m(ctx: &mut dyn SamplingContext, mut x: Tensor<5>, sigmas: &[f32]) -> Result<Tensor<5>> {
    let mut old_denoised: Option<Tensor<5>> = None;
    for i in 0..sigmas.len() - 1 {
        let denoised = ctx.denoise(&x, sigmas[i])?;
        report(ctx, i, sigmas, &x, &denoised);
        let (t, t_next) = (t_fn(sigmas[i]), t_fn(sigmas[i + 1]));
        let h = t_next - t;
        let x_scale = sigma_fn(t_next) / sigma_fn(t);
        let phi = expm1(-h);
        x = match &old_denoised {
            Some(old) if sigmas[i + 1] != 0.0 => {
                let h_last = t - t_fn(sigmas[i - 1]);
                let r = h_last / h;
                // 1 / (2 * r) is torch's reciprocal of the float32 product.
                let k = 1.0 / (2.0 * r);
                let denoised_d = denoised.clone().mul_scalar(1.0 + k).sub(old.clone().mul_scalar(k));
                x.mul_scalar(x_scale).sub(denoised_d.mul_scalar(phi))
            }
            _ => x.mul_scalar(x_scale).sub(denoised.clone().mul_scalar(phi)),
        };
        old_denoised = Some(denoised);
    }
    Ok(x)
}

/// `sample_dpmpp_2m_sde` for a CONST model: half-log-SNR `lambda = -logit(sigma)`, the first sigma
/// moved off 1 by `percent_to_sigma(1e-4)`, and noise from the context (ComfyUI uses a torchsde
/// Brownian tree between the smallest positive and the largest sigma).
pub(super) fn dpmpp_2m_sde(
    ctx: &mut dyn SamplingContext,
    mut x: Tensor<5>,
    sigmas: &[f32],
    eta: f64,
    s_noise: f64,
    solver: SdeSolver,
) -> Result<Tensor<5>> {
    let mut sigmas = sigmas.to_vec();
    // offset_first_sigma_for_snr (CONST): a first sigma >= 1 would make lambda -inf.
    if sigmas.len() > 1 && sigmas[0] >= 1.0 {
        sigmas[0] = ctx.percent_to_sigma(1e-4) as f32;
    }
    let sigmas = sigmas.as_slice();
    let lambda_fn = |s: f32| -logit(s);
    let (eta32, s_noise32) = (eta as f32, s_noise as f32);
    let mut old_denoised: Option<Tensor<5>> = None;
    let mut h_last: Option<f32> = None;
    for i in 0..sigmas.len() - 1 {
        let denoised = ctx.denoise(&x, sigmas[i])?;
        report(ctx, i, sigmas, &x, &denoised);
        let mut h = None;
        if sigmas[i + 1] == 0.0 {
            x = denoised.clone();
        } else {
            let (lambda_s, lambda_t) = (lambda_fn(sigmas[i]), lambda_fn(sigmas[i + 1]));
            let hh = lambda_t - lambda_s;
            // eta + 1 is Python float arithmetic, rounded to float32 when it meets h.
            let h_eta = hh * (eta + 1.0) as f32;
            let alpha_t = sigmas[i + 1] * exp(lambda_t);
            // sigmas[i+1] / sigmas[i] * (-h * eta).exp() * x + alpha_t * (-h_eta).expm1().neg() * denoised
            let x_coeff = sigmas[i + 1] / sigmas[i] * exp(-hh * eta32);
            let neg_phi = -expm1(-h_eta);
            x = x.mul_scalar(x_coeff).add(denoised.clone().mul_scalar(alpha_t * neg_phi));
            if let (Some(old), Some(h_prev)) = (&old_denoised, h_last) {
                let r = h_prev / hh;
                let diff = denoised.clone().sub(old.clone());
                let coeff = match solver {
                    SdeSolver::Heun => alpha_t * (neg_phi / -h_eta + 1.0) * (1.0 / r),
                    SdeSolver::Midpoint => 0.5 * alpha_t * neg_phi * (1.0 / r),
                };
                x = x.add(diff.mul_scalar(coeff));
            }
            if eta > 0.0 && s_noise > 0.0 {
                let noise = ctx.noise(&x, sigmas[i], sigmas[i + 1])?;
                let scale = (-expm1(-2.0 * hh * eta32)).sqrt();
                x = x.add(noise.mul_scalar(sigmas[i + 1]).mul_scalar(scale).mul_scalar(s_noise32));
            }
            h = Some(hh);
        }
        old_denoised = Some(denoised);
        h_last = h;
    }
    Ok(x)
}
