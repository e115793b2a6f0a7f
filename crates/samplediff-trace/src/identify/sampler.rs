//! Which sampler turns a run's recorded `denoised` predictions into its recorded trajectory:
//! each candidate is driven by the chain from the recorded `call000.x` with the recorded
//! predictions, and must land on every recorded call's `x` bit for bit.

use burn::tensor::{DType, Device, Tensor};
use samplediff_chain::ksampler::{CudaPhiloxNoiseSampler, NoiseSampler, TorchCpuNoiseSampler};
use samplediff_chain::rng::CudaDevice;
use samplediff_chain::model_sampling::ModelSampling;
use samplediff_chain::sampler::Sampler;

use super::push_unique;
use crate::drive::{Answers, drive};
use crate::names::call_name;
use crate::numeric::bit_equal;
use crate::trace::{Trace, host};

/// Samplers that behave like another name (`_gpu` variants, ddim = euler) are not tried twice.
const DUPLICATES: &[&str] = &["dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun_gpu", "ddim"];

/// The identified sampler of one trace.
#[derive(Debug, Clone)]
pub struct SamplerId {
    /// The best candidate's name (the reproducing one when `exact`).
    pub name: String,
    /// Every recorded call's `x` reproduced bit for bit.
    pub exact: bool,
    /// Leading calls whose `x` the candidate reproduced.
    pub matched_calls: usize,
    pub calls: usize,
    /// Whether the candidate is the trace's own `sampler` setting.
    pub matches_settings: bool,
    /// For samplers that draw noise every step: whose noise reproduced it.
    pub step_noise: Option<&'static str>,
    /// The sampler's final state (before inverse noise scaling), when it ran to the end.
    pub samples: Option<Tensor<5>>,
}

impl SamplerId {
    pub fn describe(&self) -> String {
        if self.exact {
            let noise = self.step_noise.map(|n| format!(" with {n} per-step noise")).unwrap_or_default();
            format!("{}{noise} (reproduces all {} recorded model-call inputs bit for bit)", self.name, self.calls)
        } else {
            format!(
                "no implemented sampler reproduces it; closest {} (first {} of {} model-call inputs)",
                self.name, self.matched_calls, self.calls
            )
        }
    }
}

/// Finds the sampler of `trace`, trying its own setting, then `other`'s, then every sampler
/// the chain implements. `sigmas` is the run's complete schedule.
pub fn identify_sampler(
    trace: &Trace,
    other: Option<&Trace>,
    sigmas: &[f32],
    model_sampling: &ModelSampling,
    device: &Device,
) -> Option<SamplerId> {
    let calls = trace.call_count();
    if calls == 0 || sigmas.len() < 2 {
        return None;
    }
    let x0 = trace.tensor5(&call_name(0, "x"), device)?;
    let denoised: Vec<Tensor<5>> = (0..calls).map(|i| trace.tensor5(&call_name(i, "denoised"), device)).collect::<Option<_>>()?;
    let recorded_x: Vec<Vec<f32>> = (0..calls).map(|i| trace.values(&call_name(i, "x"))).collect::<Option<_>>()?;

    let own = trace.setting_str("sampler");
    let mut names: Vec<String> = Vec::new();
    for n in [own.clone(), other.and_then(|o| o.setting_str("sampler"))].into_iter().flatten() {
        push_unique(&mut names, n);
    }
    for n in Sampler::NAMES.iter().filter(|n| !DUPLICATES.contains(n)) {
        push_unique(&mut names, (*n).to_owned());
    }

    let seed = trace.seed().unwrap_or(0);
    let mut best: Option<SamplerId> = None;
    for name in names {
        let Ok(sampler) = Sampler::from_name(&name) else { continue };
        // Stochastic samplers: ComfyUI's CPU generator (`--cpu`), then a CUDA device's Philox.
        let noises: &[Option<&'static str>] = if sampler.is_stochastic() { &[Some("CPU"), Some("CUDA Philox")] } else { &[None] };
        for &step_noise in noises {
            let mut cpu = TorchCpuNoiseSampler::new(seed);
            let mut gpu = CudaPhiloxNoiseSampler::new(seed, CudaDevice::H100_SXM);
            let noise: Option<&mut dyn NoiseSampler> = match step_noise {
                Some("CPU") => Some(&mut cpu),
                Some(_) => Some(&mut gpu),
                None => None,
            };
            let out = drive(sampler, &x0, sigmas, &Answers::Denoised(&denoised), noise, model_sampling, DType::F32);
            let matched = out
                .call_x
                .iter()
                .zip(&recorded_x)
                .take_while(|(got, want)| host(got).is_ok_and(|g| bit_equal(&g, want)))
                .count();
            let exact = matched == calls && out.call_x.len() == calls && out.samples.is_some();
            let id = SamplerId {
                matches_settings: own.as_deref() == Some(name.as_str()),
                name: name.clone(),
                exact,
                matched_calls: matched,
                calls,
                step_noise,
                samples: out.samples,
            };
            if exact {
                return Some(id);
            }
            if best.as_ref().is_none_or(|b| id.matched_calls > b.matched_calls) {
                best = Some(id);
            }
        }
    }
    best.map(|mut b| {
        b.samples = None;
        b
    })
}
