//! `explain`: why two runs differ, as ordered findings with measured evidence.
//!
//! The diagnosis has two halves:
//!
//! * **Each side identified on its own** ([`crate::identify`]): which noise, schedule,
//!   guidance, sampler and output convention reproduce what it recorded. A difference between
//!   the two identifications is a root cause at that stage, even where the trajectories parted
//!   earlier for another reason.
//! * **The first divergence walk** ([`walk`]): along the model calls, the first point where one
//!   stage's inputs are identical on both sides but its outputs are not. Identical `x`, sigma and
//!   conditioning with different predictions means the model differs; identical predictions with
//!   a different `denoised` means the guidance differs; an identical step with a different next
//!   `x` means the sampler update differs.
//!
//! Downstream consequences are not causes: once an input of a stage differs, that stage's
//! differences are left to the earlier finding. Findings with a numeric effect come in execution
//! order (earliest root cause first); differences proven to have no numeric effect come last.

mod checks;
mod walk;

use burn::tensor::Device;
use serde::Serialize;

use crate::analysis::SideAnalysis;
use crate::diff::{TraceDiff, diff_with};
use crate::error::Result;
use crate::trace::Trace;

/// What a finding blames. The names are the JSON cause codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    Identical,
    Settings,
    InputLatent,
    Conditioning,
    ConditioningMetadata,
    Noise,
    Sigmas,
    ModelOutput,
    ModelWeights,
    Cfg,
    Cfgnorm,
    SamplerUpdate,
    OutputConvention,
    PrecisionDrift,
}

impl Cause {
    /// The JSON code.
    pub fn code(self) -> &'static str {
        match self {
            Cause::Identical => "identical",
            Cause::Settings => "settings",
            Cause::InputLatent => "input_latent",
            Cause::Conditioning => "conditioning",
            Cause::ConditioningMetadata => "conditioning_metadata",
            Cause::Noise => "noise",
            Cause::Sigmas => "sigmas",
            Cause::ModelOutput => "model_output",
            Cause::ModelWeights => "model_weights",
            Cause::Cfg => "cfg",
            Cause::Cfgnorm => "cfgnorm",
            Cause::SamplerUpdate => "sampler_update",
            Cause::OutputConvention => "output_convention",
            Cause::PrecisionDrift => "precision_drift",
        }
    }

    /// Position within the run: inputs, then the steps, then the output.
    fn rank(self) -> (u8, u8) {
        match self {
            Cause::Identical => (0, 0),
            Cause::Settings => (0, 1),
            Cause::InputLatent => (0, 2),
            Cause::Conditioning => (0, 3),
            Cause::ConditioningMetadata => (0, 4),
            Cause::Noise => (0, 5),
            Cause::Sigmas => (0, 6),
            Cause::ModelWeights => (1, 0),
            Cause::ModelOutput => (1, 1),
            Cause::PrecisionDrift => (1, 2),
            Cause::Cfg => (1, 3),
            Cause::Cfgnorm => (1, 4),
            Cause::SamplerUpdate => (1, 5),
            Cause::OutputConvention => (2, 0),
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub cause: Cause,
    /// How sure the evidence makes it, 0..1: ≥ 0.9 when the chain reproduced both sides exactly.
    pub confidence: f64,
    /// Where in the run: `settings`, `latent_in`, `conditioning`, `noise`, `sigmas`, `model`,
    /// `guidance`, `sampler`, `output`, `trajectory`.
    pub stage: String,
    /// The step (0-based) for findings inside the run.
    pub step: Option<usize>,
    /// What was measured, in words and numbers.
    pub evidence: String,
    /// False when the difference is proven to change no number (ranked last).
    #[serde(skip)]
    pub numeric_effect: bool,
}

impl Finding {
    pub(crate) fn new(cause: Cause, confidence: f64, stage: &str, step: Option<usize>, evidence: impl Into<String>) -> Self {
        Self { cause, confidence, stage: stage.into(), step, evidence: evidence.into(), numeric_effect: true }
    }

    pub(crate) fn without_effect(mut self) -> Self {
        self.numeric_effect = false;
        self
    }

    fn sort_key(&self) -> (bool, u8, usize, u8) {
        let (phase, within) = self.cause.rank();
        let step = if phase == 1 { self.step.unwrap_or(0) } else { 0 };
        (!self.numeric_effect, phase, step, within)
    }
}

/// The ordered findings.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub findings: Vec<Finding>,
}

impl Explanation {
    /// True when the runs are identical (the single finding is `identical`).
    pub fn identical(&self) -> bool {
        self.findings.len() == 1 && self.findings[0].cause == Cause::Identical
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("findings always serialise")
    }
}

/// Everything the checks read.
pub(crate) struct Ctx<'a> {
    pub a: &'a Trace,
    pub b: &'a Trace,
    pub sa: &'a SideAnalysis,
    pub sb: &'a SideAnalysis,
    pub diff: &'a TraceDiff,
}

/// Explains how `a` and `b` differ (B is the reference of the metrics).
pub fn explain(a: &Trace, b: &Trace, device: &Device) -> Result<Explanation> {
    let sa = SideAnalysis::of(a, Some(b), device);
    let sb = SideAnalysis::of(b, Some(a), device);
    let diff = diff_with(a, b, &sa.floor, device)?;
    Ok(explain_with(a, b, &sa, &sb, &diff))
}

/// [`explain`] from analyses and a diff already computed (the CLI prints both).
pub fn explain_with(a: &Trace, b: &Trace, sa: &SideAnalysis, sb: &SideAnalysis, diff: &TraceDiff) -> Explanation {
    let ctx = Ctx { a, b, sa, sb, diff };
    let mut findings = checks::all(&ctx);
    if findings.is_empty() && diff.identical() && checks::metadata_equal(a, b) {
        let n = diff.aligned.len();
        findings.push(Finding::new(
            Cause::Identical,
            1.0,
            "trajectory",
            None,
            format!("all {n} aligned tensors are bit-identical and the settings agree"),
        ));
    }
    findings.sort_by_key(Finding::sort_key);
    Explanation { findings }
}
