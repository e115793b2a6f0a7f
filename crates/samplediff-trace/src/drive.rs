//! Driving the chain's samplers with a run's recorded model predictions.
//!
//! The chain's own replay (`samplediff_chain::replay`) re-runs a whole KSampler; the diagnosis
//! needs finer tools: run a *candidate* sampler or guidance over a trace and keep whatever it
//! produced up to the point where it stops agreeing (a wrong sampler may ask for more model calls
//! than were recorded), and run the same arithmetic in float64 to measure float32 rounding.
//! [`drive`] does that with its own [`SamplingContext`], calling the chain's `Sampler::sample`
//! and `Guidance::apply` unchanged, so in float32 it is the chain bit for bit.

use burn::tensor::{DType, Tensor};
use samplediff_chain::cfg::{CfgNorm, Guidance, PostCfg};
use samplediff_chain::error::{ChainError, Result as ChainResult};
use samplediff_chain::ksampler::NoiseSampler;
use samplediff_chain::model_sampling::ModelSampling;
use samplediff_chain::sampler::{Sampler, SamplingContext, StepInfo};

/// What the sampler gets as the model's answer for each call.
pub enum Answers<'a> {
    /// The recorded post-CFG `denoised` of each call, as is (isolates the sampler).
    Denoised(&'a [Tensor<5>]),
    /// CFG (+ CFGNorm) recomputed from the recorded per-side predictions of each call.
    Guided { cond: &'a [Tensor<5>], uncond: &'a [Tensor<5>], guidance: GuidanceSpec },
}

/// A guidance setting: the KSampler's cfg and an optional CFGNorm strength.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuidanceSpec {
    pub cfg: f64,
    pub cfgnorm: Option<f64>,
}

impl GuidanceSpec {
    /// The chain's guidance for this setting.
    pub fn guidance(&self) -> Guidance {
        let g = Guidance::new(self.cfg);
        match self.cfgnorm {
            Some(s) => g.with(PostCfg::CfgNorm(CfgNorm::new(s))),
            None => g,
        }
    }

    pub fn describe(&self) -> String {
        match self.cfgnorm {
            Some(s) => format!("cfg {} + CFGNorm {}", self.cfg, s),
            None => format!("cfg {} without CFGNorm", self.cfg),
        }
    }
}

/// What a drive produced (possibly cut short).
#[derive(Default)]
pub struct Driven {
    /// `x` of every model call the sampler made.
    pub call_x: Vec<Tensor<5>>,
    /// The `denoised` each call returned to the sampler.
    pub call_denoised: Vec<Tensor<5>>,
    /// `(x, denoised)` per step.
    pub steps: Vec<(Tensor<5>, Tensor<5>)>,
    /// The sampler's final state (before inverse noise scaling), when it finished.
    pub samples: Option<Tensor<5>>,
    /// Why it stopped early.
    pub stopped: Option<String>,
}

struct Ctx<'a, 'n> {
    answers: &'a Answers<'a>,
    guidance: Option<Guidance>,
    dtype: DType,
    noise: Option<&'n mut dyn NoiseSampler>,
    model_sampling: &'a ModelSampling,
    out: Driven,
}

impl SamplingContext for Ctx<'_, '_> {
    fn denoise(&mut self, x: &Tensor<5>, sigma: f32) -> ChainResult<Tensor<5>> {
        let k = self.out.call_x.len();
        let cast = |t: &Tensor<5>| t.clone().cast(self.dtype);
        let denoised = match self.answers {
            Answers::Denoised(d) => {
                cast(d.get(k).ok_or_else(|| ChainError::Trace(format!("the sampler asks for model call {k}, only {} recorded", d.len())))?)
            }
            Answers::Guided { cond, uncond, .. } => {
                let missing = || ChainError::Trace(format!("the sampler asks for model call {k}, only {} recorded", cond.len()));
                let c = cast(cond.get(k).ok_or_else(missing)?);
                let u = cast(uncond.get(k).ok_or_else(missing)?);
                let g = self.guidance.as_mut().expect("guided answers carry a guidance");
                let u = if g.needs_uncond() { u } else { x.zeros_like() };
                g.apply(x, sigma, &c, &u)?
            }
        };
        if denoised.dims() != x.dims() {
            return Err(ChainError::Trace(format!("call {k}: recorded shape {:?}, x has {:?}", denoised.dims(), x.dims())));
        }
        self.out.call_x.push(x.clone());
        self.out.call_denoised.push(denoised.clone());
        Ok(denoised)
    }

    fn noise(&mut self, x: &Tensor<5>, sigma: f32, sigma_next: f32) -> ChainResult<Tensor<5>> {
        match self.noise.as_deref_mut() {
            Some(n) => Ok(n.sample(x, sigma, sigma_next)?.cast(self.dtype)),
            None => Err(ChainError::Invalid("this sampler draws noise and no noise sampler was given".into())),
        }
    }

    fn percent_to_sigma(&self, percent: f64) -> f64 {
        self.model_sampling.percent_to_sigma(percent)
    }

    fn on_step(&mut self, info: &StepInfo<'_>) {
        self.out.steps.push((info.x.clone(), info.denoised.clone()));
    }
}

/// Runs `sampler` from `x0` along `sigmas`, answering model calls from `answers`, in `dtype`
/// (`F32` is the chain exactly; `F64` measures rounding). Never fails: a stop is recorded.
pub fn drive(
    sampler: Sampler,
    x0: &Tensor<5>,
    sigmas: &[f32],
    answers: &Answers<'_>,
    noise: Option<&mut dyn NoiseSampler>,
    model_sampling: &ModelSampling,
    dtype: DType,
) -> Driven {
    let guidance = match answers {
        Answers::Guided { guidance, .. } => Some(guidance.guidance()),
        Answers::Denoised(_) => None,
    };
    let mut ctx = Ctx { answers, guidance, dtype, noise, model_sampling, out: Driven::default() };
    match sampler.sample(&mut ctx, x0.clone().cast(dtype), sigmas) {
        Ok(x) => ctx.out.samples = Some(x),
        Err(e) => ctx.out.stopped = Some(e.to_string()),
    }
    ctx.out
}
