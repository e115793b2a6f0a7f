//! `uni_pc` / `uni_pc_bh2` (`comfy/extra_samplers/uni_pc.py:sample_unipc`): UniPC multistep with
//! data prediction, B(h) = h (bh1) or e^h - 1 (bh2), order `min(3, len(sigmas) - 2)`, lower order at
//! the end.
//!
//! ComfyUI runs it as a variance-preserving solver, not a flow one: a last sigma of 0 becomes 0.001
//! (written into the caller's schedule, so KSampler's inverse noise scaling then divides by
//! `1 - 0.001`; see [`super::Sampler::final_sigma`]), `x` is divided by `sqrt(1 + sigma_0^2)`, the
//! model sees `x * sqrt(1 + sigma^2)` and its x0 is turned into an epsilon and back through
//! `alpha = 1 / sqrt(1 + sigma^2)`, and the result is divided by the last alpha. Unlike the
//! k-diffusion samplers its callback reports `x` *after* each step.
//!
//! Bit level: the 2x2 and 3x3 systems ComfyUI hands to `torch.linalg.solve` (LAPACK `sgesv`, MKL on
//! x86) are solved in reference LAPACK's operation order (partial pivoting, multiply by the pivot's
//! reciprocal), which matched every recorded order-3 step; the `tensordot` of the differences with
//! their weights accumulates with fused multiply-adds as BLAS does (see [`weighted_sum`]). With
//! those, ComfyUI's recorded uni_pc runs are reproduced bit for bit except where torch's own MKL
//! `exp`/`log`/`sqrt` is one ulp off the correctly rounded value (see [`super::scalar`]).

use burn::tensor::{Tensor, TensorData};

use super::scalar::{exp, expm1, ln};
use super::{SamplingContext, StepInfo};
use crate::error::{ChainError, Result};

/// UniPC's B(h) variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniPcVariant {
    /// `uni_pc`: B(h) = h.
    Bh1,
    /// `uni_pc_bh2`: B(h) = e^h - 1.
    Bh2,
}

/// `SigmaConvert.marginal_log_mean_coeff`: `0.5 * log(1 / (sigma^2 + 1))`.
fn log_mean_coeff(s: f32) -> f32 {
    0.5 * ln(1.0 / (s * s + 1.0))
}

/// `SigmaConvert.marginal_alpha`.
fn alpha(s: f32) -> f32 {
    exp(log_mean_coeff(s))
}

/// `SigmaConvert.marginal_std`: `sqrt(1 - exp(2 * lmc))`.
fn std(s: f32) -> f32 {
    (1.0 - exp(2.0 * log_mean_coeff(s))).sqrt()
}

/// `SigmaConvert.marginal_lambda`: `lmc - 0.5 * log(1 - exp(2 * lmc))`.
fn lambda(s: f32) -> f32 {
    let lmc = log_mean_coeff(s);
    lmc - 0.5 * ln(1.0 - exp(2.0 * lmc))
}

struct UniPc<'a> {
    ctx: &'a mut dyn SamplingContext,
    variant: UniPcVariant,
}

impl UniPc<'_> {
    /// `UniPC.data_prediction_fn` over `predict_eps_sigma`: the model's x0 at `x * sqrt(1 + t^2)`,
    /// as an epsilon, then as UniPC's x0 of `x`.
    fn model_fn(&mut self, x: &Tensor<5>, t: f32) -> Result<Tensor<5>> {
        let input = x.clone().mul_scalar((t * t + 1.0).sqrt());
        let denoised = self.ctx.denoise(&input, t)?;
        let noise = input.sub(denoised).div_scalar(t);
        Ok(x.clone().sub(noise.mul_scalar(std(t))).div_scalar(alpha(t)))
    }

    /// `multistep_uni_pc_bh_update`; returns the new x and, when the corrector ran, the model's
    /// prediction at it.
    fn update(
        &mut self,
        x: &Tensor<5>,
        models: &[Tensor<5>],
        ts: &[f32],
        t: f32,
        order: usize,
        use_corrector: bool,
    ) -> Result<(Tensor<5>, Option<Tensor<5>>)> {
        let t_prev_0 = ts[ts.len() - 1];
        let model_prev_0 = &models[models.len() - 1];
        let lambda_prev_0 = lambda(t_prev_0);
        let lambda_t = lambda(t);
        let (sigma_prev_0, sigma_t) = (std(t_prev_0), std(t));
        let alpha_t = exp(log_mean_coeff(t));
        let h = lambda_t - lambda_prev_0;

        let mut rks = Vec::with_capacity(order);
        let mut d1s = Vec::with_capacity(order);
        for i in 1..order {
            let t_prev_i = ts[ts.len() - 1 - i];
            let model_prev_i = &models[models.len() - 1 - i];
            let rk = (lambda(t_prev_i) - lambda_prev_0) / h;
            rks.push(rk);
            d1s.push(model_prev_i.clone().sub(model_prev_0.clone()).div_scalar(rk));
        }
        rks.push(1.0);

        let hh = -h;
        let h_phi_1 = expm1(hh);
        let mut h_phi_k = h_phi_1 / hh - 1.0;
        let mut factorial: u64 = 1;
        let b_h = match self.variant {
            UniPcVariant::Bh1 => hh,
            UniPcVariant::Bh2 => expm1(hh),
        };
        let mut r = vec![vec![0.0f32; order]; order];
        let mut b = vec![0.0f32; order];
        for i in 1..=order {
            for (j, &rk) in rks.iter().enumerate() {
                r[i - 1][j] = match i - 1 {
                    0 => 1.0,
                    1 => rk,
                    _ => rk * rk, // torch.pow(rks, 2) is rks * rks; order <= 3
                };
            }
            b[i - 1] = h_phi_k * factorial as f32 / b_h;
            factorial *= i as u64 + 1;
            h_phi_k = h_phi_k / hh - (1.0 / factorial as f64) as f32;
        }

        let rhos_p = match (d1s.is_empty(), order) {
            (true, _) => Vec::new(),
            (false, 2) => vec![0.5],
            (false, _) => solve(sub_matrix(&r, order - 1), b[..order - 1].to_vec()),
        };
        let rhos_c = match (use_corrector, order) {
            (false, _) => Vec::new(),
            (true, 1) => vec![0.5],
            (true, _) => solve(r.clone(), b.clone()),
        };

        // x_t_ = (sigma_t / sigma_prev_0) * x - (alpha_t * h_phi_1) * model_prev_0
        let x_t_ = x.clone().mul_scalar(sigma_t / sigma_prev_0).sub(model_prev_0.clone().mul_scalar(alpha_t * h_phi_1));
        let mut x_t = match weighted_sum(&d1s, &rhos_p)? {
            Some(pred_res) => x_t_.clone().sub(pred_res.mul_scalar(alpha_t * b_h)),
            None => x_t_.clone(),
        };
        let mut model_t = None;
        if use_corrector {
            let m = self.model_fn(&x_t, t)?;
            let d1_t = m.clone().sub(model_prev_0.clone());
            let last = d1_t.mul_scalar(rhos_c[rhos_c.len() - 1]);
            let correction = match weighted_sum(&d1s, &rhos_c[..rhos_c.len() - 1])? {
                Some(corr_res) => corr_res.add(last),
                None => last,
            };
            x_t = x_t_.sub(correction.mul_scalar(alpha_t * b_h));
            model_t = Some(m);
        }
        Ok((x_t, model_t))
    }
}

/// `torch.tensordot(D1s, rhos, dims=([1], [0]))` over the first `rhos.len()` differences.
///
/// Torch hands this to a BLAS matrix-vector product, which accumulates with fused multiply-adds
/// from zero: `acc = fma(d_k, rho_k, acc)` for k = 0, 1, ... (verified: it makes ComfyUI's order-3
/// uni_pc steps bit-identical, where two rounded products and a sum miss by an ulp). burn has no
/// fused multiply-add, so this small reduction is evaluated on the host with `f32::mul_add`.
fn weighted_sum(d1s: &[Tensor<5>], rhos: &[f32]) -> Result<Option<Tensor<5>>> {
    if rhos.is_empty() || d1s.is_empty() {
        return Ok(None);
    }
    let first = &d1s[0];
    if rhos.len() == 1 {
        // fma(d, rho, 0) is the rounded product.
        return Ok(Some(first.clone().mul_scalar(rhos[0])));
    }
    let mut acc = vec![0.0f32; first.dims().iter().product()];
    for (d, &rho) in d1s.iter().zip(rhos) {
        let values = d
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| ChainError::invalid(format!("cannot read a uni_pc difference as float32: {e:?}")))?;
        for (a, v) in acc.iter_mut().zip(values) {
            *a = v.mul_add(rho, *a);
        }
    }
    Ok(Some(Tensor::from_data(TensorData::new(acc, first.dims()), &first.device())))
}

fn sub_matrix(r: &[Vec<f32>], n: usize) -> Vec<Vec<f32>> {
    r[..n].iter().map(|row| row[..n].to_vec()).collect()
}

/// `torch.linalg.solve(a, b)` for a tiny float32 system, in reference LAPACK `sgesv` order:
/// `sgetrf` (partial pivoting on the first largest |a|, column scaled by the pivot's reciprocal,
/// rank-1 updates) then `sgetrs` (row swaps, unit-lower then upper triangular solves).
fn solve(mut a: Vec<Vec<f32>>, mut b: Vec<f32>) -> Vec<f32> {
    let n = b.len();
    let mut pivots = vec![0usize; n];
    for j in 0..n {
        let mut p = j;
        for i in j + 1..n {
            if a[i][j].abs() > a[p][j].abs() {
                p = i;
            }
        }
        pivots[j] = p;
        if a[p][j] != 0.0 {
            a.swap(j, p);
            let pivot = a[j][j];
            if pivot.abs() >= f32::MIN_POSITIVE {
                let inv = 1.0 / pivot;
                for row in a.iter_mut().skip(j + 1) {
                    row[j] *= inv;
                }
            } else {
                for row in a.iter_mut().skip(j + 1) {
                    row[j] /= pivot;
                }
            }
        }
        for i in j + 1..n {
            for k in j + 1..n {
                a[i][k] -= a[i][j] * a[j][k];
            }
        }
    }
    for (j, &p) in pivots.iter().enumerate() {
        b.swap(j, p);
    }
    for k in 0..n {
        if b[k] != 0.0 {
            for i in k + 1..n {
                b[i] -= b[k] * a[i][k];
            }
        }
    }
    for k in (0..n).rev() {
        if b[k] != 0.0 {
            b[k] /= a[k][k];
            for i in 0..k {
                b[i] -= b[k] * a[i][k];
            }
        }
    }
    b
}

/// `sample_unipc(model, x, sigmas, variant)`.
// The step loops mirror the Python reference's indexing (`timesteps[step]`, list shifts).
#[allow(clippy::needless_range_loop)]
pub(super) fn uni_pc(
    ctx: &mut dyn SamplingContext,
    x: Tensor<5>,
    sigmas: &[f32],
    variant: UniPcVariant,
) -> Result<Tensor<5>> {
    let mut timesteps = sigmas.to_vec();
    let last = timesteps.len() - 1;
    if timesteps[last] == 0.0 {
        timesteps[last] = 0.001f64 as f32;
    }
    let ts = timesteps.as_slice();
    let steps = ts.len() - 1;
    let order = 3.min(ts.len() - 2);
    let mut solver = UniPc { ctx, variant };
    // noise / sqrt(1 + t0 ** 2)
    let mut x = x.div_scalar((1.0 + ts[0] * ts[0]).sqrt());
    let mut models: Vec<Tensor<5>> = Vec::new();
    let mut t_prev: Vec<f32> = Vec::new();
    for step_index in 0..steps {
        if step_index == 0 {
            models.push(solver.model_fn(&x, ts[0])?);
            t_prev.push(ts[0]);
        } else if step_index < order {
            let t = ts[step_index];
            let (x_new, model_x) = solver.update(&x, &models, &t_prev, t, step_index, true)?;
            x = x_new;
            let model_x = match model_x {
                Some(m) => m,
                None => solver.model_fn(&x, t)?,
            };
            models.push(model_x);
            t_prev.push(t);
        } else {
            let extra_final_step = usize::from(step_index == steps - 1);
            for step in step_index..=step_index + extra_final_step {
                let t = ts[step];
                let step_order = order.min(steps + 1 - step);
                let use_corrector = step != steps;
                let (x_new, model_x) = solver.update(&x, &models, &t_prev, t, step_order, use_corrector)?;
                x = x_new;
                // Python: list[i] = list[i + 1] for i < order - 1; the last entry stays until replaced.
                for i in 0..order - 1 {
                    t_prev[i] = t_prev[i + 1];
                    models[i] = models[i + 1].clone();
                }
                *t_prev.last_mut().expect("at least one previous step") = t;
                if step < steps {
                    let model_x = match model_x {
                        Some(m) => m,
                        None => solver.model_fn(&x, t)?,
                    };
                    *models.last_mut().expect("at least one previous model") = model_x;
                }
            }
        }
        let denoised = models.last().expect("the first step evaluates the model").clone();
        solver.ctx.on_step(&StepInfo {
            i: step_index,
            total_steps: steps,
            sigma: sigmas[step_index],
            sigma_hat: ts[step_index],
            x: &x,
            denoised: &denoised,
        });
    }
    Ok(x.div_scalar(alpha(ts[last])))
}
