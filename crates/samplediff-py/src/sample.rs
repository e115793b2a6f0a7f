//! `sample`: ComfyUI's KSampler path in the shared core, with a Python callable as the model.
//!
//! The core does everything around the model exactly as ComfyUI does (empty-latent fix, seed
//! noise, sigma schedule, `process_in`, noise scaling, the sampler's updates, CFG, CFGNorm,
//! inverse noise scaling, `process_out`); the callable only answers "what is x0 (or v) for this
//! x at this sigma?". The contract of the callable is written down in the Python docstring
//! (`python/samplediff/__init__.py`, `sample`); in short:
//!
//! * `model_fn(x, sigma, side)` with `x` a float32 array in the latent's rank, `sigma` a float32
//!   array of shape `[B]` (k-diffusion's `sigma * s_in`), `side` `"positive"` or `"negative"`
//!   (the negative side is skipped when cfg == 1, as ComfyUI skips it);
//! * `prediction="x0"`: it returns the denoised prediction; `"velocity"`: the raw flow output v,
//!   turned into `x - v * sigma` as ComfyUI's `CONST.calculate_denoised`;
//! * `prediction="guided"`: `side` is `"guided"` and it returns the final denoised after its own
//!   CFG and post-CFG functions (ComfyUI's `sampling_function`), optionally as
//!   `(denoised, cond_denoised, uncond_denoised)` so a trace records both sides. The core then
//!   passes that denoised to the sampler untouched (a post-CFG function of the chain hands it
//!   over). This is how the ComfyUI node runs ComfyUI's model.
//!
//! With `record`, a `samplediff_trace::TraceRecorder` watches the run and the trace comes back
//! as safetensors bytes (settings and manifest from the caller, noise, sigmas, every step and
//! model call, the latents).
//! The chain runs with the GIL released; it re-enters Python only for the callables. The first
//! exception a callable raises stops the run and is re-raised unchanged to the caller.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use burn::tensor::{Device, Tensor, TensorData};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use samplediff_chain::cfg::{CfgNorm, Guidance, PostCfg};
use samplediff_chain::denoiser::{Denoiser, ModelCall, ModelOutput, Predictions};
use samplediff_chain::error::{ChainError, Result as ChainResult};
use samplediff_chain::ksampler::{
    CallInfo, CudaPhiloxNoiseSampler, Hooks, InitialNoise, KSampler, Latent, NoiseSampler, Observer,
    TorchCpuNoiseSampler, fix_empty_latent_channels,
};
use samplediff_chain::latent_format::LatentFormat;
use samplediff_chain::model_sampling::ModelSampling;
use samplediff_chain::rng::{CudaDevice, prepare_noise};
use samplediff_chain::sampler::{Sampler, StepInfo};
use samplediff_chain::schedule::{Scheduler, ksampler_sigmas};
use samplediff_formats::RawTensor;
use samplediff_trace::manifest::NoiseInfo;
use samplediff_trace::{Manifest, TraceRecorder};
use serde_json::Value;

use crate::arrays::{borrow_tensors, f32_array, read_f32};
use crate::errors::{error, panic_message, run_detached};
use crate::traces::trace_bytes;

/// Largest tensor (elements) the chain will allocate for noise: 4 GiB of float32.
const MAX_NUMEL: usize = 1 << 30;

/// What the model callable returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Prediction {
    X0,
    Velocity,
    Guided,
}

impl Prediction {
    fn parse(name: &str) -> Result<Self, String> {
        match name {
            "x0" | "denoised" => Ok(Self::X0),
            "velocity" | "v" | "flow" => Ok(Self::Velocity),
            "guided" => Ok(Self::Guided),
            other => Err(format!("prediction '{other}': expected 'x0', 'velocity' or 'guided'")),
        }
    }
}

/// The model sampling object a ModelSampling node (or the model's default) installs.
pub fn model_sampling(kind: &str, shift: Option<f64>, multiplier: f64) -> Result<ModelSampling, String> {
    if kind == "qwen_image_default" {
        return Ok(ModelSampling::qwen_image_default());
    }
    let shift = shift.ok_or_else(|| format!("model sampling '{kind}' needs a shift"))?;
    if !(shift.is_finite() && shift > 0.0 && multiplier.is_finite() && multiplier > 0.0) {
        return Err(format!("shift {shift} and multiplier {multiplier} must be finite and > 0"));
    }
    Ok(match kind {
        "discrete_flow" => ModelSampling::discrete_flow(shift, multiplier),
        "aura_flow" => ModelSampling::aura_flow(shift),
        "sd3" => ModelSampling::sd3(shift),
        "flux" => ModelSampling::flux(shift),
        other => {
            return Err(format!(
                "model sampling '{other}': expected discrete_flow, aura_flow, sd3, flux or qwen_image_default"
            ));
        }
    })
}

/// ComfyUI's KSampler schedule (`KSampler.set_steps`) from the core.
pub fn schedule(
    ms: &ModelSampling,
    scheduler: &str,
    steps: usize,
    denoise: f64,
    sampler: &str,
) -> Result<Vec<f32>, String> {
    let scheduler: Scheduler = scheduler.parse().map_err(|e: samplediff_chain::schedule::ScheduleError| e.to_string())?;
    ksampler_sigmas(ms, scheduler, steps, denoise, sampler).map_err(|e| e.to_string())
}

/// `sigmas(...)`: the schedule a ComfyUI KSampler runs, as float32.
// A pyo3 #[pyfunction]: the arguments mirror the Python keyword arguments.
#[allow(clippy::too_many_arguments)]
#[pyfunction]
#[pyo3(signature = (*, steps, scheduler="simple", denoise=1.0, sampler="euler", shift=None, multiplier=1.0, model_sampling="discrete_flow"))]
pub fn sigmas<'py>(
    py: Python<'py>,
    steps: usize,
    scheduler: &str,
    denoise: f64,
    sampler: &str,
    shift: Option<f64>,
    multiplier: f64,
    model_sampling: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let (scheduler, sampler, kind) = (scheduler.to_string(), sampler.to_string(), model_sampling.to_string());
    let s = run_detached(py, move || {
        let ms = self::model_sampling(&kind, shift, multiplier)?;
        schedule(&ms, &scheduler, steps, denoise, &sampler)
    })?;
    let n = s.len();
    f32_array(py, s, &[n])
}

/// `noise(seed, shape, batch_index)`: ComfyUI's `prepare_noise` (torch CPU randn), float32.
#[pyfunction]
#[pyo3(signature = (seed, shape, batch_index=None))]
pub fn noise(py: Python<'_>, seed: u64, shape: Vec<usize>, batch_index: Option<Vec<i64>>) -> PyResult<Bound<'_, PyAny>> {
    let n = run_detached(py, move || {
        check_numel(&shape)?;
        prepare_noise(seed, &shape, batch_index.as_deref()).map_err(|e| e.to_string())
    })?;
    f32_array(py, n.data, &n.shape)
}

fn check_numel(shape: &[usize]) -> Result<usize, String> {
    match shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) {
        Some(n) if n <= MAX_NUMEL => Ok(n),
        _ => Err(format!("shape {shape:?} has more than {MAX_NUMEL} elements")),
    }
}

/// Where stochastic samplers' per-step noise comes from.
enum NoiseSource {
    /// `torch.Generator("cpu").manual_seed(seed)`: ComfyUI on the CPU.
    Cpu(u64),
    /// The CUDA Philox generator of a GPU with this geometry: ComfyUI on an NVIDIA GPU.
    Cuda(u64, CudaDevice),
    /// A Python callable `(sigma, sigma_next) -> noise` (e.g. ComfyUI's Brownian tree sampler).
    Python(Py<PyAny>),
}

/// The first Python exception of a run, kept to be re-raised unchanged.
#[derive(Default)]
struct PyFailure(RefCell<Option<PyErr>>);

impl PyFailure {
    fn keep(&self, e: PyErr) -> ChainError {
        let msg = Python::attach(|py| e.value(py).repr().map(|r| r.to_string()).unwrap_or_else(|_| e.to_string()));
        let mut slot = self.0.borrow_mut();
        if slot.is_none() {
            *slot = Some(e);
        }
        ChainError::Model(format!("a Python callback raised {msg}"))
    }

    fn pending(&self) -> bool {
        self.0.borrow().is_some()
    }
}

/// Layout of the arrays Python sees: the latent's own rank (4-D for 2-D formats), while the
/// chain always works on 5-D `[B, C, T, H, W]`.
#[derive(Clone, Copy)]
struct View {
    four_d: bool,
}

impl View {
    fn shape(&self, dims: [usize; 5]) -> Vec<usize> {
        if self.four_d { vec![dims[0], dims[1], dims[3], dims[4]] } else { dims.to_vec() }
    }
}

fn tensor_values(t: &Tensor<5>) -> ChainResult<Vec<f32>> {
    t.clone().into_data().try_into_vec::<f32>().map_err(|e| ChainError::Model(format!("cannot read tensor: {e:?}")))
}

fn to_tensor(values: Vec<f32>, dims: [usize; 5], device: &Device) -> Tensor<5> {
    Tensor::from_data(TensorData::new(values, dims), device)
}

/// Guided mode: the callable's final denoised, handed from the denoiser to the chain's
/// post-CFG slot (the chain's own CFG result is discarded there).
type GuidedCell = Arc<Mutex<Option<Tensor<5>>>>;

/// A Python callable as the chain's [`Denoiser`].
struct PyModel<'a> {
    model_fn: &'a Py<PyAny>,
    prediction: Prediction,
    view: View,
    failure: &'a PyFailure,
    guided: GuidedCell,
}

/// What one call of the callable answered: the positive (or, guided, final) prediction, the
/// negative one, and in guided mode the positive one.
type Answer = (Option<Vec<f32>>, Option<Vec<f32>>, Option<Vec<f32>>);

impl PyModel<'_> {
    fn output(&self, values: Vec<f32>, dims: [usize; 5], device: &Device) -> ModelOutput {
        let t = to_tensor(values, dims, device);
        match self.prediction {
            Prediction::Velocity => ModelOutput::Velocity(t),
            Prediction::X0 | Prediction::Guided => ModelOutput::Denoised(t),
        }
    }

    /// Asks the callable; `Ok(Err(..))` is a bad answer, `Err(..)` a Python exception.
    fn ask(&self, call: &ModelCall<'_>, x: Vec<f32>, shape: &[usize]) -> PyResult<Result<Answer, String>> {
        let index = call.index;
        let dims = call.x.dims();
        Python::attach(|py| {
            let x = f32_array(py, x, shape)?;
            let sigma = f32_array(py, vec![call.sigma; dims[0]], &[dims[0]])?;
            let ask = |side: &str| self.model_fn.bind(py).call1((x.clone(), sigma.clone(), side));
            let read = |what: String, v: &Bound<'_, PyAny>| read_f32(&what, v, shape);
            if self.prediction == Prediction::Guided {
                let out = ask("guided")?;
                let parts: Vec<Bound<'_, PyAny>> = match out.cast::<PyTuple>() {
                    Ok(t) => t.iter().collect(),
                    Err(_) => vec![out],
                };
                if parts.is_empty() || parts.len() > 3 {
                    return Ok(Err(format!("call {index}: a guided model returns denoised or (denoised, cond, uncond)")));
                }
                let mut values = Vec::new();
                for (i, p) in parts.iter().enumerate() {
                    if p.is_none() && i > 0 {
                        values.push(None);
                        continue;
                    }
                    match read(format!("call {index}: guided output {i}"), p) {
                        Ok(v) => values.push(Some(v)),
                        Err(e) => return Ok(Err(e)),
                    }
                }
                values.resize(3, None);
                let (denoised, cond, uncond) = (values[0].take(), values[1].take(), values[2].take());
                return Ok(Ok((denoised, uncond, cond)));
            }
            let cond = match read(format!("call {index}: positive prediction"), &ask("positive")?) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            let uncond = if call.needs_uncond {
                match read(format!("call {index}: negative prediction"), &ask("negative")?) {
                    Ok(v) => Some(v),
                    Err(e) => return Ok(Err(e)),
                }
            } else {
                None
            };
            Ok(Ok((Some(cond), uncond, None)))
        })
    }
}

impl Denoiser for PyModel<'_> {
    fn predict(&mut self, call: &ModelCall<'_>) -> ChainResult<Predictions> {
        if self.failure.pending() {
            return Err(ChainError::Model("stopped: a Python callback failed".into()));
        }
        let dims = call.x.dims();
        let shape = self.view.shape(dims);
        let x = tensor_values(call.x)?;
        let (first, uncond, guided_cond) = match self.ask(call, x, &shape) {
            Ok(Ok(parts)) => parts,
            Ok(Err(msg)) => return Err(ChainError::Model(msg)),
            Err(e) => return Err(self.failure.keep(e)),
        };
        let device = call.x.device();
        let first = first.ok_or_else(|| ChainError::Model(format!("call {}: the model returned None", call.index)))?;
        if self.prediction == Prediction::Guided {
            // The chain asks for both sides in guided mode (cfg1 optimisation off), so the trace
            // records exactly what the callable reported; a side it did not report is recorded
            // as the final denoised (positive) or zeros (negative, as ComfyUI's skipped side).
            let denoised = to_tensor(first, dims, &device);
            let cond = guided_cond.map_or_else(|| denoised.clone(), |c| to_tensor(c, dims, &device));
            let uncond = uncond.map_or_else(|| denoised.zeros_like(), |u| to_tensor(u, dims, &device));
            *self.guided.lock().map_err(|_| ChainError::Model("guided result lock poisoned".into()))? = Some(denoised);
            return Ok(Predictions { cond: ModelOutput::Denoised(cond), uncond: Some(ModelOutput::Denoised(uncond)) });
        }
        Ok(Predictions { cond: self.output(first, dims, &device), uncond: uncond.map(|u| self.output(u, dims, &device)) })
    }
}

/// Forwards steps to a Python callback (previews) and steps and calls to a trace recorder.
struct Watcher<'a> {
    callback: Option<&'a Py<PyAny>>,
    recorder: Option<TraceRecorder>,
    view: View,
    failure: &'a PyFailure,
}

impl Observer for Watcher<'_> {
    fn on_step(&mut self, step: &StepInfo<'_>) {
        if let Some(rec) = self.recorder.as_mut() {
            rec.on_step(step);
        }
        let Some(cb) = self.callback.filter(|_| !self.failure.pending()) else { return };
        let shape = self.view.shape(step.x.dims());
        let (x, denoised) = match (tensor_values(step.x), tensor_values(step.denoised)) {
            (Ok(x), Ok(d)) => (x, d),
            _ => return,
        };
        let result = Python::attach(|py| -> PyResult<()> {
            let xa = f32_array(py, x, &shape)?;
            let da = f32_array(py, denoised, &shape)?;
            cb.bind(py).call1((step.i, xa, da, step.total_steps))?;
            Ok(())
        });
        if let Err(e) = result {
            self.failure.keep(e);
        }
    }

    fn on_call(&mut self, call: &CallInfo<'_>) {
        if let Some(rec) = self.recorder.as_mut() {
            rec.on_call(call);
        }
    }
}

/// A Python callable as the per-step noise source.
struct PyNoise<'a> {
    f: &'a Py<PyAny>,
    view: View,
    failure: &'a PyFailure,
}

impl NoiseSampler for PyNoise<'_> {
    fn sample(&mut self, x: &Tensor<5>, sigma: f32, sigma_next: f32) -> ChainResult<Tensor<5>> {
        let dims = x.dims();
        let shape = self.view.shape(dims);
        let got = Python::attach(|py| -> PyResult<Result<Vec<f32>, String>> {
            let out = self.f.bind(py).call1((sigma, sigma_next))?;
            Ok(read_f32("noise sampler output", &out, &shape))
        });
        match got {
            Ok(Ok(v)) => Ok(to_tensor(v, dims, &x.device())),
            Ok(Err(msg)) => Err(ChainError::Model(msg)),
            Err(e) => Err(self.failure.keep(e)),
        }
    }
}

/// What a trace gets besides the run: settings, manifest fields and extra tensors.
pub struct TraceRequest {
    /// Settings, each value JSON text (as the golden files store them).
    settings: BTreeMap<String, String>,
    /// Manifest fields as a JSON object (`tool`, `environment`, `model`, `conditioning`, ...).
    manifest: Option<String>,
    /// Extra tensors (`positive`, `negative`, ...), borrowed from Python.
    tensors: Vec<RawTensor>,
}

/// Everything `sample` needs, gathered from Python before the GIL is released.
pub struct Request {
    model_fn: Py<PyAny>,
    latent: Vec<f32>,
    latent_shape: Vec<usize>,
    noise: Option<Vec<f32>>,
    noise_seed: Option<u64>,
    batch_index: Option<Vec<i64>>,
    sigmas: Option<Vec<f32>>,
    steps: Option<usize>,
    scheduler: String,
    denoise: f64,
    sampler: String,
    cfg: f64,
    cfgnorm: Option<f64>,
    latent_format: String,
    prediction: String,
    model_sampling: String,
    shift: Option<f64>,
    multiplier: f64,
    noise_source: Option<NoiseSource>,
    callback: Option<Py<PyAny>>,
    trace: Option<TraceRequest>,
}

/// What a run produced.
struct Outcome {
    latent_out: Vec<f32>,
    out_shape: Vec<usize>,
    trace: Option<Vec<u8>>,
}

enum Failure {
    Message(String),
    Python(PyErr),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Message(s)
    }
}

/// A recorder primed with the caller's settings and manifest, the noise source and the inputs.
fn recorder(t: &TraceRequest, req: &Request, noise: &Tensor<5>, sigmas: &[f32]) -> Result<TraceRecorder, String> {
    let tool = format!("samplediff-python {}", env!("CARGO_PKG_VERSION"));
    let mut base = serde_json::to_value(Manifest::new(tool)).map_err(|e| e.to_string())?;
    if let Some(text) = &t.manifest {
        let given: Value = serde_json::from_str(text).map_err(|e| format!("trace manifest: {e}"))?;
        let Value::Object(fields) = given else { return Err("trace manifest: expected a JSON object".into()) };
        for (k, v) in fields {
            base[k] = v;
        }
    }
    let mut manifest = Manifest::from_json(&base.to_string()).map_err(|e| e.to_string())?;
    if manifest.noise.is_none() {
        let source = if req.noise.is_some() { "tensor" } else if req.noise_seed.is_some() { "torch_cpu" } else { "zeros" };
        manifest.noise = Some(NoiseInfo { source: source.into(), seed: req.noise_seed });
    }
    let mut rec = TraceRecorder::new("samplediff-python");
    *rec.manifest_mut() = manifest;
    for (k, v) in &t.settings {
        let value: Value = serde_json::from_str(v).map_err(|e| format!("trace setting '{k}' is not JSON: {e}"))?;
        rec.setting(k.clone(), value);
    }
    rec.raw(RawTensor::from_f32("latent_in", req.latent_shape.clone(), &req.latent));
    rec.tensor("noise", noise).map_err(|e| e.to_string())?;
    rec.sigmas(sigmas);
    // The caller's tensors last: they may say better what an input was (ComfyUI's LATENT before
    // the empty-latent channel fix, say).
    for raw in &t.tensors {
        rec.raw(raw.clone());
    }
    Ok(rec)
}

fn run(req: &Request) -> Result<Outcome, Failure> {
    let device = Device::flex();
    let sampler = Sampler::from_name(&req.sampler).map_err(|e| e.to_string())?;
    let prediction = Prediction::parse(&req.prediction)?;
    let format = LatentFormat::from_name(&req.latent_format).map_err(|e| e.to_string())?;
    let ms = match (&req.sigmas, req.shift) {
        (Some(_), None) => None,
        _ => Some(model_sampling(&req.model_sampling, req.shift, req.multiplier)?),
    };
    let sigmas = match (&req.sigmas, &ms) {
        (Some(s), _) => s.clone(),
        (None, Some(ms)) => {
            let steps = req.steps.ok_or_else(|| "give either sigmas or steps (with scheduler, denoise, shift)".to_string())?;
            schedule(ms, &req.scheduler, steps, req.denoise, &req.sampler)?
        }
        (None, None) => unreachable!("a model sampling is built whenever sigmas are not given"),
    };
    if matches!(sampler, Sampler::Dpmpp2mSde { .. }) && ms.is_none() {
        return Err(format!("{} needs the model sampling: give shift (and model_sampling, multiplier)", req.sampler).into());
    }
    // Without a shift the samplers need none of the model sampling (only dpmpp_2m_sde reads it).
    let model_sampling_obj = ms.unwrap_or_else(|| ModelSampling::discrete_flow(1.0, 1.0));

    let latent = match req.latent_shape.len() {
        4 => {
            let d: [usize; 4] = req.latent_shape.clone().try_into().expect("rank 4");
            Latent::Image(Tensor::from_data(TensorData::new(req.latent.clone(), d), &device))
        }
        5 => {
            let d: [usize; 5] = req.latent_shape.clone().try_into().expect("rank 5");
            Latent::Video(Tensor::from_data(TensorData::new(req.latent.clone(), d), &device))
        }
        n => return Err(format!("latent has {n} dims, expected 4 ([B,C,H,W]) or 5 ([B,C,T,H,W])").into()),
    };
    let view = View { four_d: req.latent_shape.len() == 4 && format.latent_dimensions() == 2 };
    let fixed_dims = fix_empty_latent_channels(format, &latent).dims();
    let numel = check_numel(&fixed_dims)?;

    let noise_values = match (&req.noise, req.noise_seed) {
        (Some(n), _) => n.clone(),
        (None, Some(seed)) => {
            let n = prepare_noise(seed, &fixed_dims, req.batch_index.as_deref()).map_err(|e| format!("initial noise: {e}"))?;
            if n.shape != fixed_dims {
                return Err(format!("batch_index gives noise of shape {:?} for a latent of shape {:?}", n.shape, fixed_dims).into());
            }
            n.data
        }
        (None, None) => vec![0.0; numel],
    };
    if noise_values.len() != numel {
        return Err(format!("noise has {} values, the latent {fixed_dims:?} needs {numel}", noise_values.len()).into());
    }
    let noise = to_tensor(noise_values, fixed_dims, &device);

    let guided: GuidedCell = Arc::new(Mutex::new(None));
    let guidance = if prediction == Prediction::Guided {
        let cell = guided.clone();
        let mut g = Guidance::new(req.cfg).with(PostCfg::Custom(Box::new(move |_args| {
            cell.lock()
                .ok()
                .and_then(|mut c| c.take())
                .ok_or_else(|| ChainError::Model("the guided model gave no denoised".into()))
        })));
        g.disable_cfg1_optimization = true;
        g
    } else {
        let g = Guidance::new(req.cfg);
        match req.cfgnorm {
            Some(strength) => g.with(PostCfg::CfgNorm(CfgNorm::new(strength))),
            None => g,
        }
    };
    let mut ks = KSampler { sampler, guidance, latent_format: format, model_sampling: model_sampling_obj };

    let failure = PyFailure::default();
    let mut model = PyModel { model_fn: &req.model_fn, prediction, view, failure: &failure, guided };
    let recorder = match &req.trace {
        Some(t) => Some(recorder(t, req, &noise, &sigmas)?),
        None => None,
    };
    let mut watcher = Watcher { callback: req.callback.as_ref(), recorder, view, failure: &failure };
    let mut cpu_noise;
    let mut cuda_noise;
    let mut py_noise;
    let noise_sampler: Option<&mut dyn NoiseSampler> = match &req.noise_source {
        _ if !ks.sampler.is_stochastic() => None,
        None => match req.noise_seed {
            Some(seed) => {
                cpu_noise = TorchCpuNoiseSampler::new(seed);
                Some(&mut cpu_noise)
            }
            None => return Err(format!("sampler {} draws noise: give noise_seed or noise_sampler", req.sampler).into()),
        },
        Some(NoiseSource::Cpu(seed)) => {
            cpu_noise = TorchCpuNoiseSampler::new(*seed);
            Some(&mut cpu_noise)
        }
        Some(NoiseSource::Cuda(seed, dev)) => {
            cuda_noise = CudaPhiloxNoiseSampler::new(*seed, *dev);
            Some(&mut cuda_noise)
        }
        Some(NoiseSource::Python(f)) => {
            py_noise = PyNoise { f, view, failure: &failure };
            Some(&mut py_noise)
        }
    };
    let result = ks.sample(
        &mut model,
        &latent,
        InitialNoise::Tensor(noise),
        &sigmas,
        Hooks { observer: Some(&mut watcher), noise_sampler },
    );
    if let Some(e) = failure.0.borrow_mut().take() {
        return Err(Failure::Python(e));
    }
    let out = result.map_err(|e| e.to_string())?;
    let (out_shape, latent_out) = match &out {
        Latent::Image(t) => (t.dims().to_vec(), t.clone().into_data().try_into_vec::<f32>()),
        Latent::Video(t) => (t.dims().to_vec(), t.clone().into_data().try_into_vec::<f32>()),
    };
    let latent_out = latent_out.map_err(|e| format!("cannot read the output latent: {e:?}"))?;
    let trace = match watcher.recorder.take() {
        Some(mut rec) => {
            rec.raw(RawTensor::from_f32("latent_out", out_shape.clone(), &latent_out));
            let trace = rec.finish().map_err(|e| format!("trace: {e}"))?;
            Some(trace_bytes(&trace)?)
        }
        None => None,
    };
    Ok(Outcome { latent_out, out_shape, trace })
}

fn shape_of(what: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    let arr = obj.cast::<numpy::PyUntypedArray>().map_err(|_| error(format!("{what}: expected a float32 array")))?;
    Ok(numpy::PyUntypedArrayMethods::shape(arr).to_vec())
}

/// `sample(...)`: see the module docs and the Python wrapper's docstring. Returns the output
/// latent and, when `record`, the trace as safetensors bytes.
#[pyfunction]
#[pyo3(signature = (model_fn, latent, *, noise=None, noise_seed=None, batch_index=None, sigmas=None, steps=None,
    scheduler="simple".to_string(), denoise=1.0, sampler="euler".to_string(), cfg=1.0, cfgnorm=None,
    latent_format="wan21".to_string(), prediction="x0".to_string(), model_sampling="discrete_flow".to_string(),
    shift=None, multiplier=1.0, noise_sampler=None, callback=None, record=false, trace_settings=BTreeMap::new(),
    trace_manifest=None, trace_tensors=None))]
#[allow(clippy::too_many_arguments)]
pub fn sample<'py>(
    py: Python<'py>,
    model_fn: Py<PyAny>,
    latent: &Bound<'py, PyAny>,
    noise: Option<&Bound<'py, PyAny>>,
    noise_seed: Option<u64>,
    batch_index: Option<Vec<i64>>,
    sigmas: Option<&Bound<'py, PyAny>>,
    steps: Option<usize>,
    scheduler: String,
    denoise: f64,
    sampler: String,
    cfg: f64,
    cfgnorm: Option<f64>,
    latent_format: String,
    prediction: String,
    model_sampling: String,
    shift: Option<f64>,
    multiplier: f64,
    noise_sampler: Option<&Bound<'py, PyAny>>,
    callback: Option<Py<PyAny>>,
    record: bool,
    trace_settings: BTreeMap<String, String>,
    trace_manifest: Option<String>,
    trace_tensors: Option<&Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyBytes>>)> {
    let latent_shape = shape_of("latent", latent)?;
    let latent_values = read_f32("latent", latent, &latent_shape).map_err(error)?;
    let noise = match noise {
        Some(n) => Some(read_f32("noise", n, &shape_of("noise", n)?).map_err(error)?),
        None => None,
    };
    let sigmas = match sigmas {
        Some(s) => Some(read_f32("sigmas", s, &[s.len()?]).map_err(error)?),
        None => None,
    };
    let noise_source = match noise_sampler {
        None => None,
        Some(obj) if obj.is_callable() => Some(NoiseSource::Python(obj.clone().unbind())),
        Some(obj) => {
            let usage = "noise_sampler: a callable (sigma, sigma_next) -> noise, ('cpu', seed) or ('cuda', seed, sm_count, max_threads_per_sm)";
            let (kind, seed, sms, threads): (String, u64, Option<u32>, Option<u32>) = match obj.extract::<(String, u64)>() {
                Ok((k, s)) => (k, s, None, None),
                Err(_) => {
                    let (k, s, m, t): (String, u64, u32, u32) = obj.extract().map_err(|_| error(usage))?;
                    (k, s, Some(m), Some(t))
                }
            };
            match (kind.as_str(), sms, threads) {
                ("cpu", None, None) => Some(NoiseSource::Cpu(seed)),
                ("cuda", Some(m), Some(t)) => {
                    Some(NoiseSource::Cuda(seed, CudaDevice { multiprocessor_count: m, max_threads_per_multiprocessor: t }))
                }
                _ => return Err(error(usage)),
            }
        }
    };
    let trace = if record {
        let tensors = match trace_tensors {
            Some(t) => borrow_tensors(t)?,
            None => Vec::new(),
        };
        Some(TraceRequest { settings: trace_settings, manifest: trace_manifest, tensors })
    } else {
        None
    };
    let req = Request {
        model_fn,
        latent: latent_values,
        latent_shape,
        noise,
        noise_seed,
        batch_index,
        sigmas,
        steps,
        scheduler,
        denoise,
        sampler,
        cfg,
        cfgnorm,
        latent_format,
        prediction,
        model_sampling,
        shift,
        multiplier,
        noise_source,
        callback,
        trace,
    };
    let outcome = py.detach(|| {
        catch_unwind(AssertUnwindSafe(|| run(&req))).unwrap_or_else(|p| Err(Failure::Message(panic_message(&*p))))
    });
    // Borrowed trace tensors are released here, with the GIL held.
    drop(req);
    let outcome = match outcome {
        Ok(o) => o,
        Err(Failure::Message(m)) => return Err(error(m)),
        Err(Failure::Python(e)) => return Err(e),
    };
    let out = f32_array(py, outcome.latent_out, &outcome.out_shape)?;
    Ok((out, outcome.trace.map(|b| PyBytes::new(py, &b))))
}
