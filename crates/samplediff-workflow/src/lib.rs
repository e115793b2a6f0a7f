//! One run of the user's workflow, end to end, in the burn core:
//! `UNETLoader -> LoraLoaderModelOnly -> ModelSamplingAuraFlow -> CFGNorm -> KSampler`.
//!
//! [`Workflow`] is the description (settings, conditioning, input latent), read from a file in the
//! layout of the golden `wf_*.safetensors` or built by a caller; [`run`] loads the model with its
//! LoRA merged, samples with the chain and returns a trace holding `latent_out`, every
//! `stepNNN.*` and `callNNN.*`. The CLI's `run` and `check-backends`, and the tests, all come
//! through here, so every front end runs the same code. No filesystem: callers pass the files.
//!
//! [`run_async`] is the same run for a device that cannot read back synchronously (WebGPU in a
//! browser): nothing on the sampling path reads a tensor back, so the only difference is where
//! the two readbacks of a run happen (the LoRA merge, on a CPU device; the trace, at the end).

pub mod replay;

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use samplediff_chain::cfg::{CfgNorm, Guidance, PostCfg};
use samplediff_chain::ksampler::{CudaPhiloxNoiseSampler, Hooks, InitialNoise, KSampler, Latent, NoiseSampler, TorchCpuNoiseSampler};
use samplediff_chain::latent_format::LatentFormat;
use samplediff_chain::model_sampling::ModelSampling;
use samplediff_chain::replay::RunSettings;
use samplediff_chain::rng::CudaDevice;
use samplediff_chain::sampler::Sampler;
use samplediff_chain::schedule::{Scheduler, ksampler_sigmas};
use samplediff_formats::{RawTensor, TensorFile};
use samplediff_model::{LoadOptions, LoraSpec, Precision, QwenDenoiser, QwenImageModel};
use samplediff_trace::{Trace, TraceRecorder};
use serde_json::{Value, json};

/// Everything that can go wrong, as one line.
pub type Error = String;
pub type Result<T> = std::result::Result<T, Error>;

/// Where stochastic samplers draw their per-step noise: ComfyUI's `default_noise_sampler` uses the
/// latent's device, i.e. the torch CPU generator with `--cpu` (the golden data) and CUDA Philox on
/// an NVIDIA GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepNoise {
    #[default]
    TorchCpu,
    CudaPhilox(CudaDevice),
}

/// A workflow run's inputs besides the model files.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub settings: RunSettings,
    /// LoRA file name (resolved by the caller) and model strength; `None` or strength 0: no LoRA.
    pub lora: Option<(String, f64)>,
    /// Positive conditioning `[1, L, joint_dim]` and negative (needed when cfg != 1).
    pub positive: RawTensor,
    pub negative: Option<RawTensor>,
    /// The LATENT given to KSampler: 4-D `[B,C,H,W]` or 5-D `[B,C,T,H,W]`.
    pub latent_in: RawTensor,
    pub step_noise: StepNoise,
}

impl Workflow {
    /// Reads a file in the golden layout: settings in the metadata, `positive`, `negative`,
    /// `latent_in` tensors (recorded steps and calls, if any, are ignored).
    pub fn from_file(file: &TensorFile) -> Result<Self> {
        let settings = RunSettings::from_metadata(&file.metadata).map_err(|e| e.to_string())?;
        let lora = match (setting(file, "lora"), setting(file, "lora_strength")) {
            (Some(Value::String(name)), strength) => {
                Some((name, strength.and_then(|s| s.as_f64()).unwrap_or(1.0)))
            }
            _ => None,
        };
        let tensor = |name: &str| file.get(name).cloned().ok_or_else(|| format!("the workflow file has no '{name}' tensor"));
        Ok(Self {
            settings,
            lora,
            positive: tensor("positive")?,
            negative: file.get("negative").cloned(),
            latent_in: tensor("latent_in")?,
            step_noise: StepNoise::TorchCpu,
        })
    }
}

fn setting(file: &TensorFile, key: &str) -> Option<Value> {
    file.metadata.get(key).and_then(|v| serde_json::from_str(v).ok())
}

/// The model files a run needs, already read.
pub struct ModelFiles<'a> {
    pub diffusion_model: &'a TensorFile,
    /// The LoRA named by the workflow, when it has one.
    pub lora: Option<&'a TensorFile>,
}

/// How to run: the device, compute precision and the RoPE axes the checkpoint cannot tell.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub device: Device,
    pub precision: Precision,
    pub rope_axes: [usize; 3],
}

/// Runs the workflow and returns its trace (settings, conditioning, `latent_in`, `noise`,
/// `sigmas`, every step and model call, `latent_out`).
pub fn run(workflow: &Workflow, files: &ModelFiles<'_>, options: &RunOptions) -> Result<Trace> {
    sample(workflow, files, options, Readback::Blocking)?.finish().map_err(|e| e.to_string())
}

/// [`run`] on a device that cannot read back synchronously (burn-wgpu on WebGPU in a browser):
/// the LoRA is merged on `merge_device` (a CPU device) and the merged weights uploaded, and the
/// trace's tensors stay on `options.device` until the run is over, then come back in one
/// asynchronous read. Same chain, same model, same trace layout as [`run`].
pub async fn run_async(
    workflow: &Workflow,
    files: &ModelFiles<'_>,
    options: &RunOptions,
    merge_device: &Device,
) -> Result<Trace> {
    let recorder = sample(workflow, files, options, Readback::Deferred { merge_device })?;
    recorder.finish_async().await.map_err(|e| e.to_string())
}

/// When a run's tensors come back to the host.
#[derive(Clone, Copy)]
enum Readback<'a> {
    /// As they are made, synchronously: LoRA merged on the run's device, trace recorded on the host.
    Blocking,
    /// Never synchronously from the run's device: LoRA merged on `merge_device`, trace kept on the
    /// device for the caller to read when the run is over.
    Deferred { merge_device: &'a Device },
}

/// The whole run, up to a recorder holding its trace (read back or not, per `readback`).
fn sample(workflow: &Workflow, files: &ModelFiles<'_>, options: &RunOptions, readback: Readback<'_>) -> Result<TraceRecorder> {
    let device = &options.device;
    let s = &workflow.settings;
    let loras: Vec<LoraSpec<'_>> = match (&workflow.lora, files.lora) {
        (Some((_, strength)), Some(file)) if *strength != 0.0 => vec![LoraSpec { file, strength: *strength }],
        (Some((name, strength)), None) if *strength != 0.0 => return Err(format!("the workflow needs LoRA '{name}'")),
        _ => Vec::new(),
    };
    let load = LoadOptions { rope_axes: options.rope_axes, precision: options.precision, weight_dtype: None };
    let merge_device = match readback {
        Readback::Blocking => device,
        Readback::Deferred { merge_device } => merge_device,
    };
    let (model, _reports) = QwenImageModel::load_merging_on(files.diffusion_model, &loras, &load, device, merge_device)
        .map_err(|e| e.to_string())?;

    let positive = tensor3(&workflow.positive, device)?;
    let negative = workflow.negative.as_ref().map(|n| tensor3(n, device)).transpose()?;
    let mut denoiser = QwenDenoiser::new(model, positive.clone(), negative.clone());

    let model_sampling = ModelSampling::aura_flow(s.shift);
    let scheduler: Scheduler = s.scheduler.parse().map_err(|e: samplediff_chain::schedule::ScheduleError| e.to_string())?;
    let sigmas = ksampler_sigmas(&model_sampling, scheduler, s.steps, s.denoise, &s.sampler).map_err(|e| e.to_string())?;
    let mut guidance = Guidance::new(s.cfg);
    if let Some(strength) = s.cfgnorm {
        guidance = guidance.with(PostCfg::CfgNorm(CfgNorm::new(strength)));
    }
    let sampler = Sampler::from_name(&s.sampler).map_err(|e| e.to_string())?;
    let mut ksampler = KSampler { sampler, guidance, latent_format: LatentFormat::Wan21, model_sampling };

    let latent = latent(&workflow.latent_in, device)?;
    let mut recorder = TraceRecorder::new(concat!("samplediff ", env!("CARGO_PKG_VERSION")));
    if let Readback::Deferred { .. } = readback {
        recorder = recorder.deferred();
    }
    recorder.settings(settings_json(workflow));
    recorder.raw(renamed(&workflow.positive, "positive"));
    if let Some(n) = &workflow.negative {
        recorder.raw(renamed(n, "negative"));
    }
    recorder.raw(renamed(&workflow.latent_in, "latent_in"));
    recorder.sigmas(&sigmas);

    let mut cpu_noise;
    let mut gpu_noise;
    let noise_sampler: Option<&mut dyn NoiseSampler> = if ksampler.sampler.is_stochastic() {
        match workflow.step_noise {
            StepNoise::TorchCpu => {
                cpu_noise = TorchCpuNoiseSampler::new(s.seed);
                Some(&mut cpu_noise)
            }
            StepNoise::CudaPhilox(gpu) => {
                gpu_noise = CudaPhiloxNoiseSampler::new(s.seed, gpu);
                Some(&mut gpu_noise)
            }
        }
    } else {
        None
    };
    let out = ksampler
        .sample(
            &mut denoiser,
            &latent,
            InitialNoise::Seed { seed: s.seed, batch_index: None },
            &sigmas,
            Hooks { observer: Some(&mut recorder), noise_sampler },
        )
        .map_err(|e| e.to_string())?;
    recorder.tensor("latent_out", &out.to_5d()).map_err(|e| e.to_string())?;
    Ok(recorder)
}

/// The settings as the golden files store them (JSON values).
fn settings_json(w: &Workflow) -> Vec<(&'static str, Value)> {
    let s = &w.settings;
    let mut v = vec![
        ("name", json!(s.name)),
        ("sampler", json!(s.sampler)),
        ("scheduler", json!(s.scheduler)),
        ("steps", json!(s.steps)),
        ("cfg", json!(s.cfg)),
        ("cfgnorm", json!(s.cfgnorm)),
        ("seed", json!(s.seed)),
        ("denoise", json!(s.denoise)),
        ("shift", json!(s.shift)),
    ];
    if let Some((name, strength)) = &w.lora {
        v.push(("lora", json!(name)));
        v.push(("lora_strength", json!(strength)));
    }
    v
}

fn renamed(t: &RawTensor, name: &str) -> RawTensor {
    RawTensor { name: name.to_owned(), ..t.clone() }
}

fn tensor3(t: &RawTensor, device: &Device) -> Result<Tensor<3>> {
    let shape: [usize; 3] = t.shape.clone().try_into().map_err(|_| format!("'{}' must be [B, L, dim], got {:?}", t.name, t.shape))?;
    Ok(Tensor::from_data(TensorData::new(t.to_f32_vec(), shape), device))
}

fn latent(t: &RawTensor, device: &Device) -> Result<Latent> {
    let values = t.to_f32_vec();
    match t.shape.len() {
        4 => Ok(Latent::Image(Tensor::from_data(TensorData::new(values, [t.shape[0], t.shape[1], t.shape[2], t.shape[3]]), device))),
        5 => Ok(Latent::Video(Tensor::from_data(
            TensorData::new(values, [t.shape[0], t.shape[1], t.shape[2], t.shape[3], t.shape[4]]),
            device,
        ))),
        n => Err(format!("latent_in has {n} dims, expected 4 or 5")),
    }
}

/// The largest absolute difference between two float tensors of the same length (NaN if either
/// holds a NaN where the other doesn't).
pub fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| {
        let d = (x - y).abs();
        if d.is_nan() && !(x.is_nan() && y.is_nan()) { f32::NAN } else if d > m { d } else { m }
    })
}

/// Summary of one tensor against a reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    pub name: String,
    pub max_abs: f32,
    pub mean_abs: f64,
}

/// `latent_out` and every `stepNNN.x`/`stepNNN.denoised` of `ours` against `reference`.
pub fn agreement(ours: &Trace, reference: &TensorFile) -> Vec<Agreement> {
    let mut names: Vec<&str> = reference
        .names()
        .filter(|n| *n == "latent_out" || (n.starts_with("step") && (n.ends_with(".x") || n.ends_with(".denoised"))))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| {
            let (a, b) = (ours.values(name)?, reference.get(name)?.to_f32_vec());
            if a.len() != b.len() {
                return Some(Agreement { name: name.to_owned(), max_abs: f32::INFINITY, mean_abs: f64::INFINITY });
            }
            let mean_abs = a.iter().zip(&b).map(|(x, y)| (x - y).abs() as f64).sum::<f64>() / a.len().max(1) as f64;
            Some(Agreement { name: name.to_owned(), max_abs: max_abs(&a, &b), mean_abs })
        })
        .collect()
}

/// Settings as a map (for reports).
pub fn settings_map(w: &Workflow) -> BTreeMap<String, Value> {
    settings_json(w).into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
