//! Replaying a recorded ComfyUI run through the chain.
//!
//! A trace in the layout of the golden `wf_*.safetensors` files holds, for every model call, the
//! positive and negative x0 predictions ComfyUI's model produced (`callNNN.cond_denoised`,
//! `callNNN.uncond_denoised`). [`ReplayDenoiser`] hands those back call by call, so everything
//! around the model — noise, noise scaling, CFG, CFGNorm, the sampler, the latent format — is
//! recomputed by the chain and can be compared with what ComfyUI recorded (`stepNNN.x`,
//! `stepNNN.denoised`, `callNNN.denoised`, `latent_out`).
//!
//! The trace arrives as plain named float32 arrays ([`NamedTensor`]) plus the file's metadata, so
//! this module reads no files (it runs in wasm); the CLI and tests decode safetensors for it.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;

use crate::cfg::{CfgNorm, Guidance, PostCfg};
use crate::denoiser::{Denoiser, ModelCall, ModelOutput, Predictions};
use crate::error::{ChainError, Result};
use crate::ksampler::{CallInfo, Hooks, InitialNoise, KSampler, Latent, NoiseSampler, Observer, TorchCpuNoiseSampler};
use crate::latent_format::LatentFormat;
use crate::model_sampling::ModelSampling;
use crate::sampler::{Sampler, StepInfo};
use crate::schedule::{ScheduleError, Scheduler, ksampler_sigmas};

/// A named float32 array in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The run's settings, from the trace's metadata (each value JSON-encoded).
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    pub name: String,
    pub sampler: String,
    pub scheduler: String,
    pub steps: usize,
    pub cfg: f64,
    /// CFGNorm strength; `None` when the workflow has no CFGNorm node.
    pub cfgnorm: Option<f64>,
    pub seed: u64,
    pub denoise: f64,
    /// ModelSamplingAuraFlow shift.
    pub shift: f64,
}

impl RunSettings {
    /// Reads the settings from safetensors metadata (`{"cfg": "3.0", "sampler": "\"euler\"", ...}`).
    pub fn from_metadata(meta: &BTreeMap<String, String>) -> Result<Self> {
        let get = |key: &str| -> Result<Value> {
            let raw = meta.get(key).ok_or_else(|| ChainError::Trace(format!("metadata has no '{key}'")))?;
            serde_json::from_str(raw).map_err(|e| ChainError::Trace(format!("metadata '{key}' is not JSON: {e}")))
        };
        let string = |key: &str| -> Result<String> {
            get(key)?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| ChainError::Trace(format!("metadata '{key}' is not a string")))
        };
        let float = |key: &str| -> Result<f64> {
            get(key)?.as_f64().ok_or_else(|| ChainError::Trace(format!("metadata '{key}' is not a number")))
        };
        let uint = |key: &str| -> Result<u64> {
            get(key)?.as_u64().ok_or_else(|| ChainError::Trace(format!("metadata '{key}' is not an unsigned integer")))
        };
        let cfgnorm = match meta.get("cfgnorm") {
            None => None,
            Some(_) => match get("cfgnorm")? {
                Value::Null => None,
                v => Some(v.as_f64().ok_or_else(|| ChainError::Trace("metadata 'cfgnorm' is not a number".into()))?),
            },
        };
        Ok(Self {
            name: string("name").unwrap_or_default(),
            sampler: string("sampler")?,
            scheduler: string("scheduler")?,
            steps: uint("steps")? as usize,
            cfg: float("cfg")?,
            cfgnorm,
            seed: uint("seed")?,
            denoise: float("denoise")?,
            shift: float("shift")?,
        })
    }
}

/// One recorded model call.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub x: Tensor<5>,
    pub sigma: f32,
    pub cond_denoised: Tensor<5>,
    pub uncond_denoised: Tensor<5>,
    pub denoised: Tensor<5>,
}

/// One recorded sampler step.
#[derive(Debug, Clone)]
pub struct RecordedStep {
    pub x: Tensor<5>,
    pub denoised: Tensor<5>,
}

/// A whole recorded run, on a burn device.
#[derive(Debug, Clone)]
pub struct RecordedRun {
    pub settings: RunSettings,
    pub latent_in: Latent,
    pub latent_out: Tensor<5>,
    pub calls: Vec<RecordedCall>,
    pub steps: Vec<RecordedStep>,
}

impl RecordedRun {
    /// Builds the run from a trace's tensors and metadata.
    pub fn from_tensors(tensors: Vec<NamedTensor>, meta: &BTreeMap<String, String>, device: &Device) -> Result<Self> {
        let settings = RunSettings::from_metadata(meta)?;
        let mut by_name: BTreeMap<String, NamedTensor> = tensors.into_iter().map(|t| (t.name.clone(), t)).collect();
        let latent_out = to_tensor5(take(&mut by_name, "latent_out")?, device)?;
        let mut calls = Vec::new();
        for i in 0.. {
            let key = |field: &str| format!("call{i:03}.{field}");
            if !by_name.contains_key(&key("x")) {
                break;
            }
            let sigma_t = take(&mut by_name, &key("sigma"))?;
            let sigma = *sigma_t.data.first().ok_or_else(|| ChainError::Trace(format!("{} is empty", key("sigma"))))?;
            let mut take5 = |field: &str| to_tensor5(take(&mut by_name, &key(field))?, device);
            calls.push(RecordedCall {
                x: take5("x")?,
                sigma,
                cond_denoised: take5("cond_denoised")?,
                uncond_denoised: take5("uncond_denoised")?,
                denoised: take5("denoised")?,
            });
        }
        let mut steps = Vec::new();
        for i in 0.. {
            let x_name = format!("step{i:03}.x");
            if !by_name.contains_key(&x_name) {
                break;
            }
            steps.push(RecordedStep {
                x: to_tensor5(take(&mut by_name, &x_name)?, device)?,
                denoised: to_tensor5(take(&mut by_name, &format!("step{i:03}.denoised"))?, device)?,
            });
        }
        let latent_in = take(&mut by_name, "latent_in")?;
        let latent_in = match latent_in.shape.len() {
            4 => Latent::Image(to_tensor::<4>(latent_in, device)?),
            5 => Latent::Video(to_tensor5(latent_in, device)?),
            n => return Err(ChainError::Trace(format!("latent_in has {n} dims, expected 4 or 5"))),
        };
        if calls.is_empty() {
            return Err(ChainError::Trace("no recorded model calls (call000.*)".into()));
        }
        Ok(Self { settings, latent_in, latent_out, calls, steps })
    }

    /// The step sigmas the recorded calls imply: each step's first call's sigma, then 0 (every
    /// ComfyUI scheduler ends at 0). A stand-in until a run's schedule is recomputed from its
    /// settings; heun makes two calls per step but the last.
    pub fn sigmas_from_calls(&self) -> Result<Vec<f32>> {
        let steps = self.steps.len();
        let first_call = |i: usize| if self.settings.sampler == "heun" { 2 * i } else { i };
        let mut sigmas = Vec::with_capacity(steps + 1);
        for i in 0..steps {
            let call = self
                .calls
                .get(first_call(i))
                .ok_or_else(|| ChainError::Trace(format!("step {i} has no recorded model call")))?;
            sigmas.push(call.sigma);
        }
        sigmas.push(0.0);
        Ok(sigmas)
    }

    /// The run's model sampling: what the ModelSamplingAuraFlow node installs for its shift.
    pub fn model_sampling(&self) -> ModelSampling {
        ModelSampling::aura_flow(self.settings.shift)
    }

    /// The run's schedule, recomputed from its settings like ComfyUI's KSampler does.
    pub fn sigmas(&self) -> Result<Vec<f32>> {
        let scheduler: Scheduler =
            self.settings.scheduler.parse().map_err(|e: ScheduleError| ChainError::Trace(e.to_string()))?;
        ksampler_sigmas(
            &self.model_sampling(),
            scheduler,
            self.settings.steps,
            self.settings.denoise,
            &self.settings.sampler,
        )
        .map_err(|e| ChainError::Trace(e.to_string()))
    }

    /// The KSampler settings of this run: its sampler, cfg, a CFGNorm if it had one, Wan 2.1.
    pub fn ksampler(&self) -> Result<KSampler> {
        let mut guidance = Guidance::new(self.settings.cfg);
        if let Some(strength) = self.settings.cfgnorm {
            guidance = guidance.with(PostCfg::CfgNorm(CfgNorm::new(strength)));
        }
        Ok(KSampler {
            sampler: Sampler::from_name(&self.settings.sampler)?,
            guidance,
            latent_format: LatentFormat::Wan21,
            model_sampling: self.model_sampling(),
        })
    }
}

fn take(map: &mut BTreeMap<String, NamedTensor>, name: &str) -> Result<NamedTensor> {
    map.remove(name).ok_or_else(|| ChainError::Trace(format!("no tensor '{name}'")))
}

fn to_tensor<const D: usize>(t: NamedTensor, device: &Device) -> Result<Tensor<D>> {
    if t.shape.len() != D {
        return Err(ChainError::Trace(format!("{} has shape {:?}, expected {D} dims", t.name, t.shape)));
    }
    if t.shape.iter().product::<usize>() != t.data.len() {
        return Err(ChainError::Trace(format!("{} has {} values for shape {:?}", t.name, t.data.len(), t.shape)));
    }
    Ok(Tensor::from_data(TensorData::new(t.data, t.shape), device))
}

fn to_tensor5(t: NamedTensor, device: &Device) -> Result<Tensor<5>> {
    to_tensor::<5>(t, device)
}

/// A [`Denoiser`] that answers call `k` with the recorded x0 predictions of call `k`.
pub struct ReplayDenoiser<'a> {
    calls: &'a [RecordedCall],
}

impl<'a> ReplayDenoiser<'a> {
    pub fn new(calls: &'a [RecordedCall]) -> Self {
        Self { calls }
    }
}

impl Denoiser for ReplayDenoiser<'_> {
    fn predict(&mut self, call: &ModelCall<'_>) -> Result<Predictions> {
        let rec = self.calls.get(call.index).ok_or_else(|| {
            ChainError::Trace(format!(
                "the chain made model call {} but only {} were recorded",
                call.index,
                self.calls.len()
            ))
        })?;
        if rec.cond_denoised.dims() != call.x.dims() {
            return Err(ChainError::Trace(format!(
                "call {}: recorded predictions have shape {:?}, x has {:?}",
                call.index,
                rec.cond_denoised.dims(),
                call.x.dims()
            )));
        }
        Ok(Predictions {
            cond: ModelOutput::Denoised(rec.cond_denoised.clone()),
            uncond: call.needs_uncond.then(|| ModelOutput::Denoised(rec.uncond_denoised.clone())),
        })
    }
}

/// Everything a replay recomputes.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// `(stepNNN.x, stepNNN.denoised)` per step.
    pub steps: Vec<(Tensor<5>, Tensor<5>)>,
    /// `(callNNN.x, callNNN.denoised)` per model call.
    pub calls: Vec<(Tensor<5>, Tensor<5>)>,
}

impl Observer for Trace {
    fn on_step(&mut self, step: &StepInfo<'_>) {
        self.steps.push((step.x.clone(), step.denoised.clone()));
    }
    fn on_call(&mut self, call: &CallInfo<'_>) {
        self.calls.push((call.x.clone(), call.denoised.clone()));
    }
}

/// Where a replay starts.
// One value per replay; boxing the tensor handle buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ReplayStart {
    /// The full KSampler path from `latent_in`, with ComfyUI's initial noise for the run's seed.
    Seed,
    /// The full KSampler path from `latent_in` with this initial noise.
    Noise(Tensor<5>),
    /// From the recorded, already noise-scaled `call000.x` (skips noise and noise scaling).
    RecordedX,
}

/// A replay's recomputed tensors.
#[derive(Debug, Clone)]
pub struct Replayed {
    pub trace: Trace,
    pub latent_out: Tensor<5>,
}

impl Replayed {
    /// The recomputed tensors under the trace's names, in a stable order.
    pub fn named(&self) -> Vec<(String, Tensor<5>)> {
        let mut out = Vec::new();
        for (i, (x, d)) in self.trace.steps.iter().enumerate() {
            out.push((format!("step{i:03}.x"), x.clone()));
            out.push((format!("step{i:03}.denoised"), d.clone()));
        }
        for (i, (x, d)) in self.trace.calls.iter().enumerate() {
            out.push((format!("call{i:03}.x"), x.clone()));
            out.push((format!("call{i:03}.denoised"), d.clone()));
        }
        out.push(("latent_out".to_owned(), self.latent_out.clone()));
        out
    }
}

/// Replays the run the way ComfyUI ran it: its recomputed schedule, the initial noise of its
/// seed, and (for stochastic samplers) per-step noise from a CPU generator seeded with its seed,
/// as the recorded `--cpu` runs drew it.
pub fn replay(run: &RecordedRun) -> Result<Replayed> {
    let sigmas = run.sigmas()?;
    replay_with(run, &sigmas, ReplayStart::Seed, None)
}

/// Drives the chain with the run's recorded predictions from `start` along `sigmas`.
/// `noise_sampler` overrides the per-step noise of stochastic samplers (default: a CPU generator
/// seeded with the run's seed).
pub fn replay_with(
    run: &RecordedRun,
    sigmas: &[f32],
    start: ReplayStart,
    noise_sampler: Option<&mut dyn NoiseSampler>,
) -> Result<Replayed> {
    let mut ksampler = run.ksampler()?;
    let mut denoiser = ReplayDenoiser::new(&run.calls);
    let mut trace = Trace::default();
    let mut cpu_noise = TorchCpuNoiseSampler::new(run.settings.seed);
    let noise_sampler: Option<&mut dyn NoiseSampler> = match noise_sampler {
        Some(n) => Some(n),
        None if ksampler.sampler.is_stochastic() => Some(&mut cpu_noise),
        None => None,
    };
    let hooks = Hooks { observer: Some(&mut trace), noise_sampler };
    let initial = match start {
        ReplayStart::Seed => Some(InitialNoise::Seed { seed: run.settings.seed, batch_index: None }),
        ReplayStart::Noise(noise) => Some(InitialNoise::Tensor(noise)),
        ReplayStart::RecordedX => None,
    };
    let latent_out = match initial {
        Some(noise) => match ksampler.sample(&mut denoiser, &run.latent_in, noise, sigmas, hooks)? {
            Latent::Video(t) => t,
            Latent::Image(t) => t.unsqueeze_dim(2),
        },
        None => ksampler.sample_from(&mut denoiser, run.calls[0].x.clone(), sigmas, hooks)?,
    };
    if trace.calls.len() != run.calls.len() {
        return Err(ChainError::Trace(format!(
            "the chain made {} model calls, the trace recorded {}",
            trace.calls.len(),
            run.calls.len()
        )));
    }
    Ok(Replayed { trace, latent_out })
}

/// One recomputed tensor against its recorded counterpart.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub name: String,
    /// Largest absolute difference (`inf` for a shape mismatch, NaN where either side is NaN).
    pub max_abs: f32,
}

/// Compares every recomputed tensor with the trace's tensor of the same name.
pub fn compare(run: &RecordedRun, replayed: &Replayed) -> Result<Vec<Comparison>> {
    let mut recorded: BTreeMap<String, &Tensor<5>> = BTreeMap::new();
    for (i, s) in run.steps.iter().enumerate() {
        recorded.insert(format!("step{i:03}.x"), &s.x);
        recorded.insert(format!("step{i:03}.denoised"), &s.denoised);
    }
    for (i, c) in run.calls.iter().enumerate() {
        recorded.insert(format!("call{i:03}.x"), &c.x);
        recorded.insert(format!("call{i:03}.denoised"), &c.denoised);
    }
    recorded.insert("latent_out".into(), &run.latent_out);
    let mut out = Vec::new();
    for (name, got) in replayed.named() {
        let want = recorded.get(&name).ok_or_else(|| ChainError::Trace(format!("the trace has no '{name}'")))?;
        out.push(Comparison { name, max_abs: max_abs_diff(&got, want)? });
    }
    if replayed.trace.steps.len() != run.steps.len() {
        return Err(ChainError::Trace(format!(
            "the chain made {} steps, the trace recorded {}",
            replayed.trace.steps.len(),
            run.steps.len()
        )));
    }
    Ok(out)
}

/// Largest absolute elementwise difference, computed on the host in f32.
pub fn max_abs_diff(a: &Tensor<5>, b: &Tensor<5>) -> Result<f32> {
    if a.dims() != b.dims() {
        return Ok(f32::INFINITY);
    }
    let read = |t: &Tensor<5>| {
        t.clone()
            .into_data()
            .try_into_vec::<f32>()
            .map_err(|e| ChainError::invalid(format!("cannot read tensor as float32: {e:?}")))
    };
    let (a, b) = (read(a)?, read(b)?);
    let mut worst = 0.0f32;
    for (x, y) in a.iter().zip(&b) {
        let d = (x - y).abs();
        if d.is_nan() {
            return Ok(f32::NAN);
        }
        worst = worst.max(d);
    }
    Ok(worst)
}
