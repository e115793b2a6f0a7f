//! How large a difference float32 rounding explains, per tensor of a trace.
//!
//! Two runs that do the same math in float32 but in a different order (other kernels, FMA
//! contraction, another reduction tree, another GPU) differ by rounding. The floor used by
//! `diff` and `explain` is calibrated in two parts:
//!
//! * **Chain floor, measured per trace.** The chain's arithmetic around the model (CFG, CFGNorm,
//!   the sampler updates, inverse noise scaling, `process_out`) is replayed from the trace's
//!   recorded start with its recorded model predictions twice: in float32 (bit-identical to
//!   ComfyUI) and in float64. `RMS(f32 − f64) / RMS(f64)` at every call, step and the output is
//!   the rounding error one float32 run carries there; two float32 runs may differ by up to
//!   about twice that, so a tensor's floor is [`CHAIN_SAFETY`] times it (never below one unit
//!   roundoff, `2^-24`).
//! * **Model floor, a calibrated constant.** The model is not in a trace, so its rounding cannot
//!   be replayed; [`MODEL_FLOOR`] is the relative RMS by which a model's predictions may differ
//!   on bit-identical inputs. Calibration (tests/calibration.rs, docs/trace-format.md): the
//!   bundled Qwen-Image DiT in burn (flex) against ComfyUI/torch on the CPU — the same float32
//!   math through other kernels — differs by at most [`MEASURED_MODEL_REORDER`] (12 unit
//!   roundoffs) over every recorded call; a real change of the model moves the first prediction
//!   by [`MEASURED_LORA_HALF`] (LoRA strength 1 → 0.5) or [`MEASURED_BF16_WEIGHTS`] (bfloat16
//!   weights). The floor, 2^-14 ≈ 6.1e-5, sits 80× above the reordering (room for a deeper model
//!   with longer reductions) and 24× below the smallest real change measured.
//!
//! Inputs (conditioning, latent_in, noise, sigmas) have a floor of zero: they are data, not
//! computed, so any difference is a difference.

use std::collections::BTreeMap;

use burn::tensor::{DType, Device, FloatDType, Tensor};
use samplediff_chain::ksampler::{NoiseSampler, TorchCpuNoiseSampler, inverse_noise_scaling};
use samplediff_chain::latent_format::{LatentFormat, WAN21_MEAN, WAN21_STD};
use samplediff_chain::model_sampling::ModelSampling;
use samplediff_chain::sampler::Sampler;
use samplediff_tensor::compute_dtype;
use serde::Serialize;

use crate::drive::{Answers, GuidanceSpec, drive};
use crate::names::{Stage, call_name, step_name};
use crate::numeric::F32_UNIT_ROUNDOFF;
use crate::trace::{Trace, host};

/// Relative RMS a model's predictions may differ by on identical inputs through float32
/// rounding alone (2^-14).
pub const MODEL_FLOOR: f64 = 6.103_515_625e-5;
/// Factor between one float32 run's measured rounding error and the floor of a difference.
pub const CHAIN_SAFETY: f64 = 16.0;
/// Calibration record: burn vs ComfyUI (torch CPU), every recorded call of the golden traces.
pub const MEASURED_MODEL_REORDER: f64 = 7.3e-7;
/// Calibration record: first prediction with the LoRA at half strength.
pub const MEASURED_LORA_HALF: f64 = 1.5e-3;
/// Calibration record: first prediction with bfloat16 weights.
pub const MEASURED_BF16_WEIGHTS: f64 = 4.4e-3;
/// Calibration record: first prediction after a float16 round trip of the conditioning. Below
/// the model floor: a changed *input* can hide under it, which is why inputs are compared bit
/// for bit (floor 0) and checked before the model.
pub const MEASURED_F16_CONDITIONING: f64 = 6.5e-6;

/// The rounding floor of every tensor of one trace.
#[derive(Debug, Clone, Serialize)]
pub struct RoundingFloor {
    /// Measured float32-vs-float64 relative RMS of the chain replay, by tensor name.
    pub chain: BTreeMap<String, f64>,
    /// [`MODEL_FLOOR`].
    pub model: f64,
    /// How the chain part was obtained (or why it was not).
    pub method: String,
}

impl RoundingFloor {
    /// A floor without a chain measurement (plain outputs, or no float64 on the device).
    pub fn unmeasured(why: impl Into<String>) -> Self {
        Self { chain: BTreeMap::new(), model: MODEL_FLOOR, method: why.into() }
    }

    /// The relative RMS difference float32 rounding explains for tensor `name`.
    pub fn threshold(&self, name: &str) -> f64 {
        match Stage::parse(name) {
            Stage::Positive | Stage::Negative | Stage::LatentIn | Stage::Noise | Stage::Sigmas => 0.0,
            Stage::Call(_, f) if f == "sigma" => 0.0,
            _ => {
                let chain = self.chain.get(name).copied().unwrap_or(0.0).max(F32_UNIT_ROUNDOFF);
                (CHAIN_SAFETY * chain).max(self.model)
            }
        }
    }
}

/// Measures the chain floor of `trace` (see the module docs). `sampler`, `guidance`, `sigmas`
/// and `model_sampling` are the run's, as identified; without a guidance the recorded
/// `denoised` is fed as is (the floor then covers the sampler only).
pub fn measure(
    trace: &Trace,
    sampler: Sampler,
    guidance: Option<GuidanceSpec>,
    sigmas: &[f32],
    model_sampling: &ModelSampling,
    device: &Device,
) -> RoundingFloor {
    if compute_dtype(device) != FloatDType::F64 {
        return RoundingFloor::unmeasured("not measured: the device has no float64");
    }
    let calls = trace.call_count();
    let load = |f: &str| -> Option<Vec<Tensor<5>>> { (0..calls).map(|i| trace.tensor5(&call_name(i, f), device)).collect() };
    let (Some(x0), Some(cond), Some(uncond), Some(denoised)) =
        (trace.tensor5(&call_name(0, "x"), device), load("cond_denoised"), load("uncond_denoised"), load("denoised"))
    else {
        return RoundingFloor::unmeasured("not measured: the trace has no model calls");
    };
    let answers = match guidance {
        Some(g) => Answers::Guided { cond: &cond, uncond: &uncond, guidance: g },
        None => Answers::Denoised(&denoised),
    };
    let seed = trace.seed().unwrap_or(0);
    let run = |dtype: DType| {
        let mut noise = TorchCpuNoiseSampler::new(seed);
        let ns: Option<&mut dyn NoiseSampler> = sampler.is_stochastic().then_some(&mut noise as &mut dyn NoiseSampler);
        drive(sampler, &x0, sigmas, &answers, ns, model_sampling, dtype)
    };
    let (f32_run, f64_run) = (run(DType::F32), run(DType::F64));
    let mut chain = BTreeMap::new();
    let mut put = |name: String, a: &Tensor<5>, b: &Tensor<5>| {
        // Against the float64 values themselves: rounding them to f32 would hide half an ulp.
        if let (Ok(a), Ok(b)) = (host(a), host64(b)) {
            chain.insert(name, rel_rms_f64(&a, &b));
        }
    };
    for (i, (a, b)) in f32_run.call_x.iter().zip(&f64_run.call_x).enumerate() {
        put(call_name(i, "x"), a, b);
    }
    for (i, (a, b)) in f32_run.call_denoised.iter().zip(&f64_run.call_denoised).enumerate() {
        put(call_name(i, "denoised"), a, b);
    }
    for (i, (a, b)) in f32_run.steps.iter().zip(&f64_run.steps).enumerate() {
        put(step_name(i, "x"), &a.0, &b.0);
        put(step_name(i, "denoised"), &a.1, &b.1);
    }
    if let (Some(a), Some(b)) = (&f32_run.samples, &f64_run.samples) {
        // float32: the chain's own output path; float64: the same formula on the host (the
        // latent format's constants are float32 tensors and cannot meet a float64 one).
        let last = *sigmas.last().unwrap_or(&0.0);
        let out32 = LatentFormat::Wan21.process_out(inverse_noise_scaling(last, a.clone())).ok().and_then(|t| host(&t).ok());
        let out64 = host64(b).ok().map(|v| process_out_f64(&v, b.dims(), last as f64));
        if let (Some(a), Some(b)) = (out32, out64) {
            chain.insert("latent_out".into(), rel_rms_f64(&a, &b));
        }
    }
    let what = if guidance.is_some() { "CFG/CFGNorm and sampler" } else { "sampler" };
    RoundingFloor {
        chain,
        model: MODEL_FLOOR,
        method: format!("{what} replayed in float32 and float64 from call000.x with the recorded predictions"),
    }
}

/// `x / (1 − σ_last) · std + mean` per channel (Wan 2.1), in float64.
fn process_out_f64(x: &[f64], dims: [usize; 5], last: f64) -> Vec<f64> {
    let per_channel = dims[2] * dims[3] * dims[4];
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            let c = (i / per_channel) % dims[1];
            v / (1.0 - last) * WAN21_STD[c % 16] + WAN21_MEAN[c % 16]
        })
        .collect()
}

fn host64(t: &Tensor<5>) -> crate::error::Result<Vec<f64>> {
    t.clone()
        .try_into_vec_as::<f64>()
        .map_err(|e| crate::error::TraceError::Chain(format!("cannot read a tensor back from the device: {e:?}")))
}

fn rel_rms_f64(a: &[f32], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let diff: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).powi(2)).sum();
    let scale: f64 = b.iter().map(|y| y * y).sum();
    if scale == 0.0 { 0.0 } else { (diff / scale).sqrt() }
}
