//! A workbench for trace pairs with real ComfyUI semantics: the tiny Qwen-Image DiT of the golden
//! fixtures (with its LoRA, in burn), ComfyUI's conditioning tensors from a golden run, and the
//! chain's KSampler, recorded with `TraceRecorder`. A [`Run`] is the seed workflow
//! (UNETLoader → LoraLoaderModelOnly → ModelSamplingAuraFlow → CFGNorm → KSampler); each test
//! changes exactly one thing.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use samplediff_chain::denoiser::{Denoiser, ModelCall, ModelOutput, Predictions};
use samplediff_chain::error::Result as ChainResult;
use samplediff_chain::ksampler::{CudaPhiloxNoiseSampler, Hooks, InitialNoise, KSampler, Latent, NoiseSampler, TorchCpuNoiseSampler, inverse_noise_scaling};
use samplediff_chain::latent_format::LatentFormat;
use samplediff_chain::model_sampling::ModelSampling;
use samplediff_chain::rng::{CudaDevice, CudaPhiloxGenerator, prepare_noise};
use samplediff_chain::sampler::Sampler;
use samplediff_chain::schedule::ksampler_sigmas;
use samplediff_formats::{Bytes, TensorFile, safetensors};
use samplediff_model::weights::Weights;
use samplediff_model::{LoadOptions, LoraSpec, Precision, QwenDenoiser, QwenImageModel};
use samplediff_trace::drive::{Answers, GuidanceSpec, drive};
use samplediff_trace::fingerprint::{F32Weights, file_hash, values_hash};
use samplediff_trace::manifest::{Environment, ModelFingerprint, NoiseInfo};
use samplediff_trace::{Side, Trace, TraceRecorder, host};
use serde_json::{Value, json};

pub const TINY_ROPE_AXES: [usize; 3] = [8, 12, 12];

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/comfyui")
}

pub fn read(path: &Path) -> TensorFile {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    safetensors::read(Bytes::new(bytes)).unwrap()
}

pub fn golden(name: &str) -> Trace {
    Trace::from_file(read(&fixtures().join(name))).unwrap()
}

pub fn golden_names() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("wf_") && n.ends_with(".safetensors"))
        .collect();
    v.sort();
    assert!(v.len() >= 3, "expected the golden wf_* fixtures");
    v
}

/// Where the initial noise comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NoiseKind {
    /// ComfyUI's `prepare_noise` (torch CPU randn).
    Cpu,
    /// `torch.randn(..., device="cuda")` (Philox), as a service drawing noise on the GPU does.
    Philox,
}

/// One run of the seed workflow on the tiny model.
#[derive(Clone, Debug)]
pub struct Run {
    pub seed: u64,
    pub steps: usize,
    pub sampler: &'static str,
    pub scheduler: &'static str,
    pub cfg: f64,
    pub cfgnorm: Option<f64>,
    pub shift: f64,
    pub denoise: f64,
    pub lora_strength: f64,
    pub precision: Precision,
    /// Start from the golden dpmpp2m run's non-zero latent instead of an empty one.
    pub init_latent: bool,
    /// Round the conditioning tensors through float16 (a `.pt` saved in half precision).
    pub cond_f16: bool,
    /// The conditioning dict of both prompts.
    pub cond_meta: Value,
    pub noise: NoiseKind,
    /// Where stochastic samplers draw their per-step noise.
    pub step_noise: NoiseKind,
    /// Return the sampler's normalised state instead of ComfyUI's LATENT (no process_out).
    pub output_raw: bool,
    /// Convert velocity to x0 with a fused multiply-add (what a fused GPU kernel does).
    pub fma_x0: bool,
}

impl Default for Run {
    fn default() -> Self {
        Self {
            seed: 1,
            steps: 4,
            sampler: "euler",
            scheduler: "simple",
            cfg: 3.0,
            cfgnorm: Some(1.0),
            shift: 3.1,
            denoise: 1.0,
            lora_strength: 1.0,
            precision: Precision::F32,
            init_latent: false,
            cond_f16: false,
            cond_meta: json!({"pooled_output": null}),
            noise: NoiseKind::Cpu,
            step_noise: NoiseKind::Cpu,
            output_raw: false,
            fma_x0: false,
        }
    }
}

/// The QwenDenoiser, with an optional fused x0 conversion.
struct Model {
    inner: QwenDenoiser,
    fma_x0: bool,
}

impl Denoiser for Model {
    fn predict(&mut self, call: &ModelCall<'_>) -> ChainResult<Predictions> {
        let p = self.inner.predict(call)?;
        if !self.fma_x0 {
            return Ok(p);
        }
        let fused = |o: ModelOutput| -> ModelOutput {
            let ModelOutput::Velocity(v) = o else { return o };
            let (xs, vs) = (host(call.x).unwrap(), host(&v).unwrap());
            let x0: Vec<f32> = xs.iter().zip(&vs).map(|(&x, &v)| (-v).mul_add(call.sigma, x)).collect();
            ModelOutput::Denoised(Tensor::from_data(TensorData::new(x0, call.x.dims()), &call.x.device()))
        };
        Ok(Predictions { cond: fused(p.cond), uncond: p.uncond.map(fused) })
    }
}

const LORA: &str = "tiny_kohya.safetensors";

fn precision_name(p: Precision) -> &'static str {
    match p {
        Precision::F32 => "F32",
        Precision::BF16 => "BF16",
    }
}

/// Runs the workflow and records it.
pub fn record(run: &Run) -> Trace {
    let device = Device::flex();
    let model_file = read(&fixtures().join("models/diffusion_models/tiny_qwen.safetensors"));
    let lora_file = read(&fixtures().join("models/loras").join(LORA));
    let spec = LoraSpec { file: &lora_file, strength: run.lora_strength };
    let options = LoadOptions { rope_axes: TINY_ROPE_AXES, precision: run.precision, weight_dtype: None };
    let (model, _) = QwenImageModel::load(&model_file, &[spec], &options, &device).unwrap();

    // Conditioning: ComfyUI's own tensors from a golden run.
    let wf = golden("wf_euler_simple_cfg3.safetensors");
    let cond = |name: &str| -> Tensor<3> {
        let t = wf.get(name).unwrap();
        let mut v = t.to_f32_vec();
        if run.cond_f16 {
            v.iter_mut().for_each(|x| *x = half::f16::from_f32(*x).to_f32());
        }
        Tensor::from_data(TensorData::new(v, t.shape.clone()), &device)
    };
    let (positive, negative) = (cond("positive"), cond("negative"));

    let mut rec = TraceRecorder::new("samplediff-trace tests");
    rec.settings([
        ("name", json!("tiny")),
        ("lora", json!(LORA)),
        ("lora_strength", json!(run.lora_strength)),
        ("shift", json!(run.shift)),
        ("cfgnorm", run.cfgnorm.map_or(Value::Null, |s| json!(s))),
        ("seed", json!(run.seed)),
        ("steps", json!(run.steps)),
        ("cfg", json!(run.cfg)),
        ("sampler", json!(run.sampler)),
        ("scheduler", json!(run.scheduler)),
        ("denoise", json!(run.denoise)),
        ("init_latent", json!(run.init_latent)),
    ]);
    rec.conditioning(Side::Positive, &positive, run.cond_meta.clone()).unwrap();
    rec.conditioning(Side::Negative, &negative, run.cond_meta.clone()).unwrap();

    // Model fingerprint: the checkpoint as stored, and the weights as the model computes with them.
    let (weights, _) = Weights::new(&model_file, &[spec], run.precision, None, &device).unwrap();
    let mut paths: Vec<&str> = weights.paths().collect();
    paths.sort();
    let loaded: Vec<F32Weights> = paths
        .iter()
        .map(|p| {
            let (values, shape) = weights.values(p).unwrap();
            F32Weights { name: (*p).to_owned(), shape, values }
        })
        .collect();
    let mut loaded_hash = values_hash("loaded", precision_name(run.precision), &loaded);
    loaded_hash.detail.insert("lora".into(), json!(LORA));
    loaded_hash.detail.insert("strength".into(), json!(run.lora_strength));
    loaded_hash.detail.insert("precision".into(), json!(precision_name(run.precision)));
    let m = rec.manifest_mut();
    m.model = Some(ModelFingerprint { stages: vec![file_hash("base", &model_file), loaded_hash] });
    m.environment = Some(Environment {
        tool: Some("samplediff (burn flex)".into()),
        devices: vec!["cpu".into()],
        attention_backend: Some("burn flex".into()),
        ..Environment::default()
    });
    m.noise = Some(NoiseInfo {
        source: match run.noise {
            NoiseKind::Cpu => "torch_cpu".into(),
            NoiseKind::Philox => "cuda_philox".into(),
        },
        seed: Some(run.seed),
    });

    let latent = if run.init_latent {
        let t = golden("wf_dpmpp2m_simple_d07.safetensors");
        let l = t.get("latent_in").unwrap();
        Latent::Video(Tensor::from_data(TensorData::new(l.to_f32_vec(), l.shape.clone()), &device))
    } else {
        Latent::Image(Tensor::zeros([1, 16, 8, 8], &device))
    };
    rec.tensor("latent_in", &latent.to_5d()).unwrap();
    let shape = [1usize, 16, 1, 8, 8];
    let noise_values = match run.noise {
        NoiseKind::Cpu => prepare_noise(run.seed, &shape, None).unwrap().data,
        NoiseKind::Philox => CudaPhiloxGenerator::manual_seed(run.seed).randn_f32(shape.iter().product(), CudaDevice::H100_SXM),
    };
    let noise = Tensor::<5>::from_data(TensorData::new(noise_values, shape), &device);
    rec.tensor("noise", &noise).unwrap();

    let ms = ModelSampling::aura_flow(run.shift);
    let sigmas = ksampler_sigmas(&ms, run.scheduler.parse().unwrap(), run.steps, run.denoise, run.sampler).unwrap();
    rec.sigmas(&sigmas);
    let guidance = GuidanceSpec { cfg: run.cfg, cfgnorm: run.cfgnorm };
    let sampler = Sampler::from_name(run.sampler).unwrap();
    let mut ks = KSampler { sampler, guidance: guidance.guidance(), latent_format: LatentFormat::Wan21, model_sampling: ms.clone() };
    let mut denoiser = Model { inner: QwenDenoiser::new(model, positive, Some(negative)), fma_x0: run.fma_x0 };
    let mut cpu_noise = TorchCpuNoiseSampler::new(run.seed);
    let mut gpu_noise = CudaPhiloxNoiseSampler::new(run.seed, CudaDevice::H100_SXM);
    let noise_sampler: Option<&mut dyn NoiseSampler> = match (sampler.is_stochastic(), run.step_noise) {
        (false, _) => None,
        (true, NoiseKind::Cpu) => Some(&mut cpu_noise),
        (true, NoiseKind::Philox) => Some(&mut gpu_noise),
    };
    let out = ks
        .sample(&mut denoiser, &latent, InitialNoise::Tensor(noise), &sigmas, Hooks { observer: Some(&mut rec), noise_sampler })
        .unwrap()
        .to_5d();
    let latent_out = if run.output_raw {
        // The service returns the sampler's state: the same run re-driven with its own recorded
        // predictions (bit-identical), inverse noise scaling applied, process_out not.
        assert!(!sampler.is_stochastic(), "the raw-output variant re-drives with CPU noise only");
        raw_state(&rec, sampler, &sigmas, &ms, run.seed, &device)
    } else {
        out
    };
    rec.tensor("latent_out", &latent_out).unwrap();
    rec.finish().unwrap()
}

/// The sampler's final state after inverse noise scaling, re-driven from the recorder's calls.
fn raw_state(rec: &TraceRecorder, sampler: Sampler, sigmas: &[f32], ms: &ModelSampling, seed: u64, device: &Device) -> Tensor<5> {
    let partial = rec.snapshot().unwrap();
    let calls = partial.call_count();
    let denoised: Vec<Tensor<5>> = (0..calls).map(|i| partial.tensor5(&format!("call{i:03}.denoised"), device).unwrap()).collect();
    let x0 = partial.tensor5("call000.x", device).unwrap();
    let mut cpu = TorchCpuNoiseSampler::new(seed);
    let ns: Option<&mut dyn NoiseSampler> = sampler.is_stochastic().then_some(&mut cpu as &mut dyn NoiseSampler);
    let out = drive(sampler, &x0, sigmas, &Answers::Denoised(&denoised), ns, ms, burn::tensor::DType::F32);
    inverse_noise_scaling(*sigmas.last().unwrap(), out.samples.unwrap())
}
