//! ComfyUI's σ schedules (`comfy/samplers.py`, `comfy/k_diffusion/sampling.py`), float32 and
//! bit for bit.
//!
//! [`ksampler_sigmas`] is what the KSampler node computes in its constructor (`KSampler.set_steps`):
//! the scheduler run for the right number of steps, the penultimate σ dropped for the samplers
//! that want that, and the tail kept when `denoise < 1`. [`calculate_sigmas`] is the bare
//! `comfy.samplers.calculate_sigmas`.
//!
//! Bit-exactness: every scheduler is reproduced exactly (the golden `schedules.json` entries match
//! bit for bit; karras through a port of the SLEEF `powf` torch uses) except where torch calls
//! Intel MKL's float32 `exp` / `tan` — `exponential`, `kl_optimal` — which are within 1 ulp
//! (see [`torch_f32`]).

mod beta_ppf;
pub mod torch_f32;

use std::fmt;
use std::str::FromStr;

pub use beta_ppf::{beta_cdf, beta_ppf};

use crate::linspace::{linspace_f32, numpy_linspace_no_endpoint};
use crate::model_sampling::ModelSampling;

/// The nine schedulers of `comfy.samplers.SCHEDULER_HANDLERS`, in ComfyUI's UI order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheduler {
    Simple,
    SgmUniform,
    Karras,
    Exponential,
    DdimUniform,
    Beta,
    Normal,
    LinearQuadratic,
    KlOptimal,
}

impl Scheduler {
    pub const ALL: [Scheduler; 9] = [
        Scheduler::Simple,
        Scheduler::SgmUniform,
        Scheduler::Karras,
        Scheduler::Exponential,
        Scheduler::DdimUniform,
        Scheduler::Beta,
        Scheduler::Normal,
        Scheduler::LinearQuadratic,
        Scheduler::KlOptimal,
    ];

    /// ComfyUI's name for the scheduler.
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Simple => "simple",
            Scheduler::SgmUniform => "sgm_uniform",
            Scheduler::Karras => "karras",
            Scheduler::Exponential => "exponential",
            Scheduler::DdimUniform => "ddim_uniform",
            Scheduler::Beta => "beta",
            Scheduler::Normal => "normal",
            Scheduler::LinearQuadratic => "linear_quadratic",
            Scheduler::KlOptimal => "kl_optimal",
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheduler {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheduler::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| ScheduleError::UnknownScheduler(s.to_string()))
    }
}

/// `comfy.samplers.SAMPLER_NAMES` at the ComfyUI commit the project follows (a125cd8).
pub const COMFY_SAMPLER_NAMES: &[&str] = &[
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
];

/// `KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS`: these get a schedule for one more step with its
/// second-to-last σ removed.
pub const DISCARD_PENULTIMATE_SIGMA_SAMPLERS: &[&str] = &["dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2"];

/// More schedule steps than this (after `steps / denoise`) are refused rather than computed.
pub const MAX_SCHEDULE_STEPS: usize = 1_000_000;

/// Why a schedule cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    #[error("unknown scheduler '{0}' (known: simple, sgm_uniform, karras, exponential, ddim_uniform, beta, normal, linear_quadratic, kl_optimal)")]
    UnknownScheduler(String),
    #[error("unknown sampler '{0}' (see ComfyUI's KSampler.SAMPLERS)")]
    UnknownSampler(String),
    #[error("steps must be at least 1")]
    ZeroSteps,
    #[error("denoise must be a number, got {0}")]
    BadDenoise(f64),
    #[error("{steps} steps at denoise {denoise} need a {needed}-step schedule; more than {MAX_SCHEDULE_STEPS} is refused")]
    TooManySteps { steps: usize, denoise: f64, needed: f64 },
}

/// `comfy.samplers.calculate_sigmas(model_sampling, scheduler, steps)`: `steps + 1` values ending
/// in 0 (fewer for `beta`, which skips repeated table indices). `steps` must be at least 1.
pub fn calculate_sigmas(ms: &ModelSampling, scheduler: Scheduler, steps: usize) -> Vec<f32> {
    match scheduler {
        Scheduler::Simple => simple(ms, steps),
        Scheduler::SgmUniform => normal(ms, steps, true),
        Scheduler::Karras => karras(steps, ms.sigma_min() as f64, ms.sigma_max() as f64),
        Scheduler::Exponential => exponential(steps, ms.sigma_min() as f64, ms.sigma_max() as f64),
        Scheduler::DdimUniform => ddim_uniform(ms, steps),
        Scheduler::Beta => beta(ms, steps, 0.6, 0.6),
        Scheduler::Normal => normal(ms, steps, false),
        Scheduler::LinearQuadratic => linear_quadratic(ms, steps, 0.025),
        Scheduler::KlOptimal => kl_optimal(steps, ms.sigma_min() as f64, ms.sigma_max() as f64),
    }
}

/// The σ schedule a ComfyUI `KSampler(model, steps, sampler, scheduler, denoise)` runs
/// (`KSampler.set_steps`).
///
/// * `denoise > 0.9999`: the full schedule for `steps`;
/// * `denoise <= 0`: empty (ComfyUI then returns the latent untouched);
/// * otherwise the schedule for `int(steps / denoise)` steps, of which the last `steps + 1` values
///   are kept.
///
/// For the samplers in [`DISCARD_PENULTIMATE_SIGMA_SAMPLERS`] every schedule is computed for one
/// more step and its second-to-last value dropped. Unlike ComfyUI, which silently falls back to
/// `euler`/`simple`, unknown names are errors.
pub fn ksampler_sigmas(
    ms: &ModelSampling,
    scheduler: Scheduler,
    steps: usize,
    denoise: f64,
    sampler: &str,
) -> Result<Vec<f32>, ScheduleError> {
    if !COMFY_SAMPLER_NAMES.contains(&sampler) {
        return Err(ScheduleError::UnknownSampler(sampler.to_string()));
    }
    if steps == 0 {
        return Err(ScheduleError::ZeroSteps);
    }
    if denoise.is_nan() {
        return Err(ScheduleError::BadDenoise(denoise));
    }
    let discard = DISCARD_PENULTIMATE_SIGMA_SAMPLERS.contains(&sampler);
    let for_sampler = |n: usize| {
        let n = if discard { n + 1 } else { n };
        let mut sigmas = calculate_sigmas(ms, scheduler, n);
        if discard && sigmas.len() >= 2 {
            sigmas.remove(sigmas.len() - 2); // torch.cat([sigmas[:-2], sigmas[-1:]])
        }
        sigmas
    };
    if denoise > 0.9999 {
        return Ok(for_sampler(steps));
    }
    if denoise <= 0.0 {
        return Ok(Vec::new());
    }
    let needed = (steps as f64 / denoise).trunc(); // Python int() of a positive float
    if needed > MAX_SCHEDULE_STEPS as f64 {
        return Err(ScheduleError::TooManySteps { steps, denoise, needed });
    }
    let sigmas = for_sampler(needed as usize);
    let keep = (steps + 1).min(sigmas.len());
    Ok(sigmas[sigmas.len() - keep..].to_vec())
}

/// `math.isclose(v, 0, abs_tol=1e-5)`.
fn is_close_to_zero(v: f64) -> bool {
    v.abs() <= 1e-5
}

/// `simple_scheduler`: evenly spaced indices into the table, from the top.
fn simple(ms: &ModelSampling, steps: usize) -> Vec<f32> {
    let table = ms.sigmas();
    let ss = table.len() as f64 / steps as f64;
    let mut sigs: Vec<f32> = (0..steps).map(|x| table[table.len() - 1 - (x as f64 * ss) as usize]).collect();
    sigs.push(0.0);
    sigs
}

/// `ddim_scheduler`: every `len/steps`-th table entry from index 1 upwards, reversed. For flow
/// models it does not start at σ = 1.
fn ddim_uniform(ms: &ModelSampling, steps: usize) -> Vec<f32> {
    let table = ms.sigmas();
    let (mut steps, mut sigs) = (steps, vec![0.0f32]);
    if is_close_to_zero(table[1] as f64) {
        steps += 1;
        sigs.clear();
    }
    let ss = (table.len() / steps).max(1);
    sigs.extend(table.iter().skip(1).step_by(ss));
    sigs.reverse();
    sigs
}

/// `normal_scheduler` (and `sgm_uniform` with `sgm`): a float32 linspace over timesteps mapped
/// back through `sigma()`. Since `timestep()` does not undo the shift, the low end is shifted
/// twice, exactly as in ComfyUI.
fn normal(ms: &ModelSampling, steps: usize, sgm: bool) -> Vec<f32> {
    let start = ms.timestep(ms.sigma_max()) as f64;
    let end = ms.timestep(ms.sigma_min());
    let mut append_zero = true;
    let timesteps = if sgm {
        let mut ts = linspace_f32(start, end as f64, steps + 1);
        ts.pop();
        ts
    } else {
        let mut steps = steps;
        if is_close_to_zero(ms.sigma(end) as f64) {
            steps += 1;
            append_zero = false;
        }
        linspace_f32(start, end as f64, steps)
    };
    let mut sigs: Vec<f32> = timesteps.into_iter().map(|t| ms.sigma(t)).collect();
    if append_zero {
        sigs.push(0.0);
    }
    sigs
}

/// `get_sigmas_karras(n, σmin, σmax, rho=7)`: `(a + ramp·(b − a))^7` in float32 with `a`, `b` the
/// f64 seventh roots.
fn karras(n: usize, sigma_min: f64, sigma_max: f64) -> Vec<f32> {
    const RHO: f64 = 7.0;
    let min_inv_rho = sigma_min.powf(1.0 / RHO);
    let max_inv_rho = sigma_max.powf(1.0 / RHO);
    let span = (min_inv_rho - max_inv_rho) as f32;
    let bases: Vec<f32> = linspace_f32(0.0, 1.0, n).into_iter().map(|r| max_inv_rho as f32 + r * span).collect();
    let mut sigs = torch_f32::pow_tensor_scalar(&bases, RHO);
    sigs.push(0.0);
    sigs
}

/// `get_sigmas_exponential`: `exp(linspace(ln σmax, ln σmin, n))` in float32.
fn exponential(n: usize, sigma_min: f64, sigma_max: f64) -> Vec<f32> {
    let mut sigs: Vec<f32> = linspace_f32(sigma_max.ln(), sigma_min.ln(), n).into_iter().map(torch_f32::exp).collect();
    sigs.push(0.0);
    sigs
}

/// `beta_scheduler(alpha, beta)`: table indices `rint(ppf(1 − k/steps) · (len−1))`, skipping an
/// index equal to the previous one.
fn beta(ms: &ModelSampling, steps: usize, alpha: f64, beta: f64) -> Vec<f32> {
    let table = ms.sigmas();
    let total = (table.len() - 1) as f64;
    let mut sigs = Vec::with_capacity(steps + 1);
    let mut last = f64::NAN;
    for y in numpy_linspace_no_endpoint(0.0, 1.0, steps) {
        let t = (beta_ppf(1.0 - y, alpha, beta) * total).round_ties_even();
        if t != last {
            sigs.push(table[t as usize]);
        }
        last = t;
    }
    sigs.push(0.0);
    sigs
}

/// `linear_quadratic_schedule(threshold_noise=0.025, linear_steps=steps//2)` (Mochi): linear
/// then quadratic in Python floats, times `sigma_max` in float32.
fn linear_quadratic(ms: &ModelSampling, steps: usize, threshold: f64) -> Vec<f32> {
    let schedule: Vec<f64> = if steps == 1 {
        vec![1.0, 0.0]
    } else {
        let linear_steps = steps / 2;
        let l = linear_steps as f64;
        let mut s: Vec<f64> = (0..linear_steps).map(|i| i as f64 * threshold / l).collect();
        let step_diff = l - threshold * steps as f64;
        let quadratic_steps = (steps - linear_steps) as f64;
        let quadratic_coef = step_diff / (l * (quadratic_steps * quadratic_steps));
        let linear_coef = threshold / l - 2.0 * step_diff / (quadratic_steps * quadratic_steps);
        let constant = quadratic_coef * (l * l);
        s.extend((linear_steps..steps).map(|i| {
            let i = i as f64;
            quadratic_coef * (i * i) + linear_coef * i + constant
        }));
        s.push(1.0);
        s.into_iter().map(|x| 1.0 - x).collect()
    };
    let sigma_max = ms.sigma_max();
    schedule.into_iter().map(|v| v as f32 * sigma_max).collect()
}

/// `kl_optimal_scheduler`: `tan(w·atan σmin + (1−w)·atan σmax)` in float32, `w = k/(n−1)`.
/// For n = 1 that is 0/0: ComfyUI returns `[NaN, 0]`, and so does this.
fn kl_optimal(n: usize, sigma_min: f64, sigma_max: f64) -> Vec<f32> {
    let (atan_min, atan_max) = (sigma_min.atan() as f32, sigma_max.atan() as f32);
    let divisor = (n as f32) - 1.0;
    let mut sigs: Vec<f32> = (0..n)
        .map(|k| {
            let w = k as f32 / divisor;
            torch_f32::tan(w * atan_min + (1.0 - w) * atan_max)
        })
        .collect();
    sigs.push(0.0);
    sigs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: &[&str]) -> Vec<f32> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    /// §3.1 of the spec: simple at shift 3.1 (torch printout).
    #[test]
    fn simple_shift_3_1_matches_the_spec_example() {
        let ms = ModelSampling::aura_flow(3.1);
        let got = ksampler_sigmas(&ms, Scheduler::Simple, 4, 1.0, "euler").unwrap();
        assert_eq!(got, f(&["1.0", "0.9029126", "0.75609756", "0.5081967", "0"]));
        let got = ksampler_sigmas(&ms, Scheduler::Simple, 8, 1.0, "euler").unwrap();
        assert_eq!(
            got,
            f(&["1.0", "0.95594716", "0.9029126", "0.8378378", "0.75609756", "0.6503496", "0.5081967", "0.30693066", "0"])
        );
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for s in Scheduler::ALL {
            assert_eq!(s.name().parse::<Scheduler>().unwrap(), s);
        }
        assert!(matches!("Karras".parse::<Scheduler>(), Err(ScheduleError::UnknownScheduler(_))));
        let ms = ModelSampling::aura_flow(3.1);
        assert!(matches!(ksampler_sigmas(&ms, Scheduler::Simple, 4, 1.0, "eulr"), Err(ScheduleError::UnknownSampler(_))));
        assert_eq!(ksampler_sigmas(&ms, Scheduler::Simple, 0, 1.0, "euler"), Err(ScheduleError::ZeroSteps));
        assert!(matches!(ksampler_sigmas(&ms, Scheduler::Simple, 4, f64::NAN, "euler"), Err(ScheduleError::BadDenoise(_))));
        assert!(matches!(
            ksampler_sigmas(&ms, Scheduler::Simple, 4, 1e-9, "euler"),
            Err(ScheduleError::TooManySteps { .. })
        ));
    }

    #[test]
    fn every_scheduler_handles_one_step() {
        let ms = ModelSampling::aura_flow(3.1);
        for s in Scheduler::ALL {
            let got = ksampler_sigmas(&ms, s, 1, 1.0, "euler").unwrap();
            assert_eq!(got.len(), 2, "{s}");
            assert_eq!(got[1], 0.0, "{s}");
            if s == Scheduler::KlOptimal {
                assert!(got[0].is_nan()); // ComfyUI divides 0 by 0 here too
            } else {
                assert!(got[0] > 0.0 && got[0] <= 1.0, "{s}: {got:?}");
            }
        }
    }

    #[test]
    fn denoise_keeps_the_tail_of_a_longer_schedule() {
        let ms = ModelSampling::aura_flow(3.1);
        let long = ksampler_sigmas(&ms, Scheduler::Normal, 36, 1.0, "euler").unwrap(); // int(20 / 0.55) = 36
        let part = ksampler_sigmas(&ms, Scheduler::Normal, 20, 0.55, "euler").unwrap();
        assert_eq!(part.len(), 21);
        assert_eq!(&long[long.len() - 21..], &part[..]);
        assert!(ksampler_sigmas(&ms, Scheduler::Normal, 20, 0.0, "euler").unwrap().is_empty());
        assert!(ksampler_sigmas(&ms, Scheduler::Normal, 20, -0.5, "euler").unwrap().is_empty());
        assert_eq!(
            ksampler_sigmas(&ms, Scheduler::Normal, 20, 0.99995, "euler").unwrap(),
            ksampler_sigmas(&ms, Scheduler::Normal, 20, 1.0, "euler").unwrap()
        );
    }

    #[test]
    fn discard_penultimate_drops_the_second_to_last_of_a_longer_schedule() {
        let ms = ModelSampling::aura_flow(3.1);
        for s in Scheduler::ALL {
            let mut longer = ksampler_sigmas(&ms, s, 9, 1.0, "euler").unwrap();
            let got = ksampler_sigmas(&ms, s, 8, 1.0, "uni_pc").unwrap();
            let n = longer.len();
            longer.remove(n - 2);
            assert_eq!(got.len(), longer.len(), "{s}");
            assert!(got.iter().zip(&longer).all(|(a, b)| a.to_bits() == b.to_bits()), "{s}");
        }
    }

    #[test]
    fn schedules_descend_to_zero() {
        for ms in [ModelSampling::aura_flow(3.1), ModelSampling::sd3(3.0), ModelSampling::qwen_image_default()] {
            for s in Scheduler::ALL {
                for steps in [2, 3, 7, 50] {
                    let got = ksampler_sigmas(&ms, s, steps, 1.0, "euler").unwrap();
                    assert_eq!(*got.last().unwrap(), 0.0);
                    assert!(got.windows(2).all(|w| w[0] > w[1]), "{s} {steps}: {got:?}");
                }
            }
        }
    }

    #[test]
    fn beta_can_return_fewer_values_when_indices_repeat() {
        let ms = ModelSampling::aura_flow(3.1);
        let got = ksampler_sigmas(&ms, Scheduler::Beta, 2000, 1.0, "euler").unwrap();
        assert!(got.len() < 2001);
        assert_eq!(got[0], 1.0);
    }
}
