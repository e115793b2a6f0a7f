//! `res_multistep` (second-order exponential multistep, arXiv 2308.02157) and its ancestral form.

use burn::tensor::Tensor;

use super::scalar::{ancestral_step, exp, expm1, ln, nan_to_num};
use super::{SamplingContext, report, to_d};
use crate::error::Result;

/// k-diffusion's `res_multistep(eta, cfg_pp=False)`: Euler for the first step and whenever
/// `sigma_down` is 0, the two-step exponential integrator otherwise, then `sigma_up` noise.
///
/// With `eta = 0` (plain `res_multistep`) `sigma_up` is 0: ComfyUI still draws noise and adds
/// `noise * s_noise * 0.0`, which can only turn a `-0.0` into `+0.0`; this port skips that draw.
pub(super) fn res_multistep(
    ctx: &mut dyn SamplingContext,
    mut x: Tensor<5>,
    sigmas: &[f32],
    eta: f64,
    s_noise: f64,
) -> Result<Tensor<5>> {
    let t_fn = |s: f32| -ln(s);
    let phi1 = |t: f32| expm1(t) / t;
    let phi2 = |t: f32| (phi1(t) - 1.0) / t;
    let mut old: Option<(Tensor<5>, f32)> = None; // (old_denoised, old_sigma_down)
    for i in 0..sigmas.len() - 1 {
        let denoised = ctx.denoise(&x, sigmas[i])?;
        let (sigma_down, sigma_up) = ancestral_step(sigmas[i], sigmas[i + 1], eta);
        report(ctx, i, sigmas, &x, &denoised);
        x = match &old {
            Some((old_denoised, old_sigma_down)) if sigma_down != 0.0 => {
                let t = t_fn(sigmas[i]);
                let t_old = t_fn(*old_sigma_down);
                let t_next = t_fn(sigma_down);
                let t_prev = t_fn(sigmas[i - 1]);
                let h = t_next - t;
                let c2 = (t_prev - t_old) / h;
                let (phi1_val, phi2_val) = (phi1(-h), phi2(-h));
                let b1 = nan_to_num(phi1_val - phi2_val / c2);
                let b2 = nan_to_num(phi2_val / c2);
                // sigma_fn(h) * x + h * (b1 * denoised + b2 * old_denoised)
                let combo = denoised.clone().mul_scalar(b1).add(old_denoised.clone().mul_scalar(b2));
                x.mul_scalar(exp(-h)).add(combo.mul_scalar(h))
            }
            _ => {
                let d = to_d(&x, sigmas[i], &denoised);
                let dt = sigma_down - sigmas[i];
                x.add(d.mul_scalar(dt))
            }
        };
        if sigmas[i + 1] > 0.0 && sigma_up != 0.0 {
            let noise = ctx.noise(&x, sigmas[i], sigmas[i + 1])?;
            x = x.add(noise.mul_scalar(s_noise as f32).mul_scalar(sigma_up));
        }
        old = Some((denoised, sigma_down));
    }
    Ok(x)
}
