//! `verify`: one trace replayed through the reference chain. Every place where the trace is not
//! what ComfyUI's chain computes from the trace's own settings and its own model outputs is
//! reported; a golden ComfyUI trace verifies clean (the chain is bit-identical to ComfyUI).
//!
//! Checked, each stage from the trace's own recorded inputs (teacher forcing), so one bad stage
//! does not drag every later one along:
//! * the sigmas against the scheduler of the settings, and each call's sigma against them;
//! * the `noise` tensor against ComfyUI's CPU noise for the seed;
//! * `call000.x` against noise scaling of that noise and the (processed) `latent_in`;
//! * every call's `denoised` against CFG + CFGNorm of its own `cond_denoised`/`uncond_denoised`;
//! * every step's `x`/`denoised` against its model call;
//! * the sampler: the chain's sampler driven with the recorded `denoised` must land on every
//!   recorded call's `x` (after a mismatch, deterministic one-step samplers restart from the
//!   recorded state at the next step; multistep samplers carry history, so later steps are
//!   reported as not independently checkable);
//! * `latent_out` against inverse noise scaling + `process_out` of the sampler's final state.

use burn::tensor::{DType, Device, Tensor};
use samplediff_chain::ksampler::{NoiseSampler, TorchCpuNoiseSampler, fix_empty_latent_channels, has_nonzero, inverse_noise_scaling, noise_scaling};
use samplediff_chain::latent_format::LatentFormat;
use samplediff_chain::model_sampling::ModelSampling;
use samplediff_chain::rng::prepare_noise;
use samplediff_chain::sampler::Sampler;
use samplediff_chain::schedule::{Scheduler, ksampler_sigmas};
use serde::Serialize;

use crate::drive::{Answers, GuidanceSpec, drive};
use crate::error::{Result, TraceError};
use crate::names::{call_name, step_name};
use crate::numeric::{bit_equal, fmt, max_abs, rel_rms};
use crate::trace::{Trace, host, to_tensor5};

/// One place where the trace is not what the chain computes.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Mismatch {
    /// `sigmas`, `noise`, `initial_state`, `guidance`, `step_record`, `sampler`, `output`.
    pub stage: String,
    pub step: Option<usize>,
    /// The tensor that differs.
    pub tensor: String,
    pub max_abs: f64,
    pub rel_rms: f64,
    pub message: String,
}

/// The verification of one trace.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub mismatches: Vec<Mismatch>,
    /// What was checked, in words (one line per stage).
    pub checked: Vec<String>,
    /// Stages that could not be checked and why.
    pub skipped: Vec<String>,
}

impl Verification {
    pub fn clean(&self) -> bool {
        self.mismatches.is_empty()
    }
}

struct Report {
    v: Verification,
}

impl Report {
    fn compare(&mut self, stage: &str, step: Option<usize>, tensor: &str, got: &[f32], want: &[f32], what: &str) -> bool {
        if bit_equal(got, want) {
            return true;
        }
        let (m, r) = (max_abs(got, want), rel_rms(got, want));
        self.v.mismatches.push(Mismatch {
            stage: stage.into(),
            step,
            tensor: tensor.into(),
            max_abs: m,
            rel_rms: r,
            message: format!("{tensor} is not {what} (max |Δ| {}, relative RMS {})", fmt(m), fmt(r)),
        });
        false
    }
}

/// Verifies `trace` against the reference chain on `device` (bit-exact on flex).
pub fn verify(trace: &Trace, device: &Device) -> Result<Verification> {
    if !trace.is_run() {
        return Err(TraceError::invalid("nothing to verify: the file records no model calls (call000.x)"));
    }
    let mut r = Report { v: Verification { mismatches: Vec::new(), checked: Vec::new(), skipped: Vec::new() } };
    let calls = trace.call_count();
    let steps = trace.step_count();
    let seed = trace.seed();

    // Sigmas.
    let sampler_name = trace.setting_str("sampler").unwrap_or_else(|| "euler".into());
    let shift = trace.setting_f64("shift");
    let ms = ModelSampling::discrete_flow(shift.unwrap_or(1.0), trace.multiplier());
    let stated = (|| {
        let scheduler: Scheduler = trace.setting_str("scheduler")?.parse().ok()?;
        let steps = trace.setting_f64("steps")? as usize;
        ksampler_sigmas(&ms, scheduler, steps, trace.setting_f64("denoise")?, &sampler_name).ok()
    })();
    let sigmas = match (&stated, trace.values("sigmas")) {
        (Some(s), Some(rec)) => {
            r.compare("sigmas", None, "sigmas", &rec, s, "the schedule of the settings (scheduler, shift, steps, denoise)");
            r.v.checked.push(format!("sigmas: recorded tensor against the settings' schedule ({} values)", s.len()));
            s.clone()
        }
        (Some(s), None) => s.clone(),
        (None, Some(rec)) => {
            r.v.skipped.push("sigmas: the settings do not say scheduler/steps/denoise/shift; using the recorded sigmas".into());
            rec
        }
        (None, None) => match trace.sigmas() {
            Some((s, _)) => {
                r.v.skipped.push("sigmas: no settings and no sigmas tensor; using the calls' sigmas with a final 0".into());
                s
            }
            None => return Err(TraceError::invalid("cannot tell the sigma schedule: no settings, no sigmas tensor")),
        },
    };
    let firsts = trace.step_first_calls();
    for (i, c) in firsts.iter().enumerate() {
        match (c, sigmas.get(i)) {
            (Some(c), Some(&want)) => {
                let got = trace.call_sigmas()[*c];
                if got.to_bits() != want.to_bits() {
                    r.compare("sigmas", Some(i), &call_name(*c, "sigma"), &[got], &[want], &format!("sigma {i} of the schedule"));
                }
            }
            (None, _) => {
                let x = step_name(i, "x");
                r.v.mismatches.push(Mismatch {
                    stage: "step_record".into(),
                    step: Some(i),
                    tensor: x.clone(),
                    max_abs: f64::NAN,
                    rel_rms: f64::NAN,
                    message: format!("{x} equals no model call's x"),
                });
            }
            _ => {}
        }
    }
    r.v.checked.push(format!("call sigmas: {} steps against the schedule", firsts.len()));

    // Initial noise and the initial state.
    let x0 = trace.get(&call_name(0, "x")).ok_or_else(|| TraceError::invalid("no call000.x"))?;
    let shape = x0.shape.clone();
    let cpu_noise = seed.and_then(|s| prepare_noise(s, &shape, None).ok()).map(|n| n.data);
    let noise = match (trace.values("noise"), &cpu_noise) {
        (Some(rec), Some(cpu)) => {
            let source = trace.manifest.as_ref().and_then(|m| m.noise.as_ref()).map(|n| n.source.clone());
            if source.as_deref().is_some_and(|s| s != "torch_cpu") {
                r.v.skipped.push(format!("noise: the manifest says it came from '{}', not ComfyUI's CPU generator", source.unwrap_or_default()));
            } else {
                r.compare("noise", None, "noise", &rec, cpu, "ComfyUI's CPU noise (torch CPU randn) for the seed");
                r.v.checked.push("noise: against torch CPU randn for the seed".into());
            }
            Some(rec)
        }
        (Some(rec), None) => Some(rec),
        (None, Some(cpu)) => Some(cpu.clone()),
        (None, None) => None,
    };
    match noise {
        Some(n) => {
            let sigma0 = sigmas.first().copied().unwrap_or(1.0);
            let n = to_tensor5(&n, &shape, device).ok_or_else(|| TraceError::invalid("noise does not fit call000.x"))?;
            let latent = match trace.latent_in(device) {
                Some(l) => {
                    let fixed = fix_empty_latent_channels(LatentFormat::Wan21, &l);
                    if has_nonzero(&fixed) { LatentFormat::Wan21.process_in(fixed)? } else { fixed }
                }
                None => n.zeros_like(),
            };
            if latent.dims() != n.dims() {
                r.v.skipped.push("initial state: latent_in does not fit the noise".into());
            } else {
                let want = host(&noise_scaling(sigma0, n, latent))?;
                r.compare("initial_state", Some(0), "call000.x", &x0.to_f32_vec(), &want, "sigma0·noise + (1 − sigma0)·process_in(latent_in)");
                r.v.checked.push("initial state: call000.x from the noise and latent_in".into());
            }
        }
        None => r.v.skipped.push("initial state: no seed and no noise tensor".into()),
    }

    // Guidance, call by call.
    let guidance = trace.setting_f64("cfg").map(|cfg| GuidanceSpec { cfg, cfgnorm: trace.cfgnorm().unwrap_or(None) });
    match guidance {
        Some(spec) => {
            let mut g = spec.guidance();
            for k in 0..calls {
                let load = |f: &str| trace.tensor5(&call_name(k, f), device);
                let (Some(x), Some(c), Some(u), Some(d)) = (load("x"), load("cond_denoised"), load("uncond_denoised"), trace.values(&call_name(k, "denoised"))) else {
                    r.v.skipped.push(format!("guidance: call {k} lacks its predictions"));
                    continue;
                };
                let sigma = trace.call_sigmas()[k];
                let u = if g.needs_uncond() { u } else { x.zeros_like() };
                let want = host(&g.apply(&x, sigma, &c, &u)?)?;
                let step = trace.call_steps().get(k).copied();
                r.compare("guidance", step, &call_name(k, "denoised"), &d, &want, &format!("{} of its own predictions", spec.describe()));
            }
            r.v.checked.push(format!("guidance: {calls} calls against {}", spec.describe()));
        }
        None => r.v.skipped.push("guidance: the settings do not say cfg".into()),
    }

    // Step records against their calls.
    for (i, c) in firsts.iter().enumerate() {
        if let Some(c) = c
            && let (Some(sd), Some(cd)) = (trace.values(&step_name(i, "denoised")), trace.values(&call_name(*c, "denoised")))
        {
            r.compare("step_record", Some(i), &step_name(i, "denoised"), &sd, &cd, &format!("call {c}'s denoised"));
        }
    }
    r.v.checked.push(format!("step records: {steps} steps against their model calls"));

    // The sampler, teacher-forced on the recorded predictions.
    let sampler = Sampler::from_name(&sampler_name)?;
    let denoised: Vec<Tensor<5>> = (0..calls)
        .map(|k| trace.tensor5(&call_name(k, "denoised"), device))
        .collect::<Option<_>>()
        .ok_or_else(|| TraceError::invalid("a call lacks its denoised"))?;
    let recorded_x: Vec<Vec<f32>> = (0..calls).map(|k| trace.values(&call_name(k, "x")).unwrap_or_default()).collect();
    let restartable = matches!(sampler, Sampler::Euler | Sampler::Heun | Sampler::Ddim);
    let mut start_step = 0usize;
    let mut final_state = None;
    'segments: loop {
        let first_call = match (start_step, firsts.get(start_step)) {
            (0, _) => 0,
            (_, Some(Some(c))) => *c,
            _ => break,
        };
        let x_start = trace.tensor5(&call_name(first_call, "x"), device).ok_or_else(|| TraceError::invalid("missing call x"))?;
        let mut cpu = TorchCpuNoiseSampler::new(seed.unwrap_or(0));
        let ns: Option<&mut dyn NoiseSampler> = sampler.is_stochastic().then_some(&mut cpu as &mut dyn NoiseSampler);
        let out = drive(sampler, &x_start, &sigmas[start_step..], &Answers::Denoised(&denoised[first_call..]), ns, &ms, DType::F32);
        for (j, got) in out.call_x.iter().enumerate().skip(1) {
            let k = first_call + j;
            let Some(want) = recorded_x.get(k) else { break };
            let step = trace.call_steps().get(k).copied();
            if !r.compare("sampler", step, &call_name(k, "x"), &host(got)?, want, &format!("the {sampler_name} update from the recorded previous state and denoised")) {
                let next = step.map_or(steps, |s| s + 1);
                if restartable && next < steps {
                    start_step = next;
                    continue 'segments;
                }
                if next < steps {
                    r.v.skipped.push(format!(
                        "sampler: steps after {} not checked independently ({sampler_name} carries history across steps)",
                        next - 1
                    ));
                }
                break 'segments;
            }
        }
        if let Some(e) = out.stopped {
            r.v.skipped.push(format!("sampler: stopped early: {e}"));
        }
        final_state = out.samples;
        break;
    }
    r.v.checked.push(format!("sampler: {sampler_name} over {steps} steps from the recorded predictions"));

    // The output LATENT.
    match (final_state, trace.values("latent_out")) {
        (Some(x), Some(rec)) => {
            let last = sigmas.last().copied().unwrap_or(0.0);
            let want = host(&LatentFormat::Wan21.process_out(inverse_noise_scaling(last, x))?)?;
            r.compare("output", steps.checked_sub(1), "latent_out", &rec, &want, "process_out(x_final / (1 − sigma_last)) (ComfyUI's LATENT)");
            r.v.checked.push("output: latent_out against Wan 2.1 process_out of the final state".into());
        }
        (None, Some(_)) => r.v.skipped.push("output: the sampler did not run to the end cleanly".into()),
        (_, None) => r.v.skipped.push("output: no latent_out".into()),
    }
    Ok(r.v)
}
