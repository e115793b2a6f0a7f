//! `diff`: two traces aligned stage by stage and step by step.
//!
//! Every tensor name both sides have is compared with `samplediff-metrics` (B is the reference),
//! in execution order. The divergence curve is the relative RMS difference of each step's `x`
//! and `denoised`. Each tensor also gets the relative RMS float32 rounding explains there (see
//! [`crate::rounding`]); the first tensor above it is where the runs part, and how the
//! difference got there tells a slow float drift (it grew from rounding-level) from an abrupt
//! split (it jumped from equal or rounding-level to far above the floor at once).

use burn::tensor::Device;
use samplediff_metrics::{CompareOptions, TensorReport, compare_tensors};
use serde::Serialize;
use serde_json::Value;

use crate::analysis::SideAnalysis;
use crate::error::Result;
use crate::names::{Stage, cmp_names, step_name};
use crate::numeric::rel_rms;
use crate::rounding::RoundingFloor;
use crate::trace::{LABEL_KEYS, Trace};

/// A jump by more than this factor over the largest relative difference seen before, landing
/// above the floor, is an abrupt split rather than growth.
pub const SPLIT_JUMP: f64 = 1000.0;

/// One setting that differs.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SettingDiff {
    pub key: String,
    pub a: Option<Value>,
    pub b: Option<Value>,
}

/// One aligned tensor.
#[derive(Debug, Clone, Serialize)]
pub struct Aligned {
    pub name: String,
    /// Step of the tensor (a call's step is the step it evaluated).
    pub step: Option<usize>,
    /// `RMS(a − b) / RMS(b)`.
    pub rel_rms: f64,
    /// The relative RMS float32 rounding explains here.
    pub rounding_floor: f64,
    pub bit_identical: bool,
    /// The compare metrics (B is the reference).
    pub metrics: TensorReport,
}

/// One point of the divergence curve.
#[derive(Debug, Clone, Serialize)]
pub struct CurvePoint {
    pub step: usize,
    pub x_rel: Option<f64>,
    pub denoised_rel: Option<f64>,
    pub x_floor: Option<f64>,
}

/// How the runs part.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Parting {
    /// The difference grew from rounding level to above the floor.
    Drift,
    /// It appeared above the floor at once.
    Split,
}

/// The first tensor whose difference float32 rounding no longer explains.
#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    pub name: String,
    pub step: Option<usize>,
    pub rel_rms: f64,
    pub rounding_floor: f64,
    pub parting: Parting,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct TraceDiff {
    pub settings: Vec<SettingDiff>,
    pub aligned: Vec<Aligned>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub curve: Vec<CurvePoint>,
    /// The first tensor that differs at all.
    pub first_difference: Option<String>,
    /// The first tensor beyond the rounding floor.
    pub first_divergence: Option<Divergence>,
    /// How the floor was obtained.
    pub floor_method: String,
}

impl TraceDiff {
    /// Whether nothing differs (settings other than labels, or any tensor bit).
    pub fn identical(&self) -> bool {
        self.settings.is_empty()
            && self.only_in_a.is_empty()
            && self.only_in_b.is_empty()
            && self.aligned.iter().all(|a| a.bit_identical)
    }

    pub fn get(&self, name: &str) -> Option<&Aligned> {
        self.aligned.iter().find(|a| a.name == name)
    }
}

/// Settings that differ, labels (`name`) left out.
pub fn settings_diff(a: &Trace, b: &Trace) -> Vec<SettingDiff> {
    let (sa, sb) = (a.settings(), b.settings());
    let mut keys: Vec<&String> = sa.keys().chain(sb.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !LABEL_KEYS.contains(&k.as_str()))
        .filter(|k| sa.get(*k) != sb.get(*k))
        .map(|k| SettingDiff { key: k.clone(), a: sa.get(k).cloned(), b: sb.get(k).cloned() })
        .collect()
}

/// Compares `a` against `b` (the reference). `floor` is A's rounding floor.
pub fn diff_with(a: &Trace, b: &Trace, floor: &RoundingFloor, device: &Device) -> Result<TraceDiff> {
    let steps = a.call_steps();
    let call_step = |i: usize| steps.get(i).copied().unwrap_or(i);
    let mut pairs: Vec<(String, &samplediff_formats::RawTensor, &samplediff_formats::RawTensor)> = Vec::new();
    let mut only_in_a = Vec::new();
    let mut only_in_b = Vec::new();
    if !a.is_run() || !b.is_run() {
        // A plain output on either side: compare the final outputs, whatever their names.
        if let (Some(x), Some(y)) = (a.final_output(), b.final_output()) {
            pairs.push(("latent_out".into(), x, y));
        }
    } else {
        for t in a.tensors() {
            match b.get(&t.name) {
                Some(u) => pairs.push((t.name.clone(), t, u)),
                None => only_in_a.push(t.name.clone()),
            }
        }
        for t in b.tensors() {
            if !a.has(&t.name) {
                only_in_b.push(t.name.clone());
            }
        }
    }
    pairs.sort_by(|x, y| cmp_names(&x.0, &y.0, &call_step));

    let opts = CompareOptions { top_k: 5, ..CompareOptions::default() };
    let mut aligned = Vec::with_capacity(pairs.len());
    for (name, x, y) in pairs {
        let metrics = compare_tensors(x, y, device, &opts)?;
        let (xv, yv) = (x.to_f32_vec(), y.to_f32_vec());
        let bit_identical = x.shape == y.shape && x.dtype == y.dtype && x.data[..] == y.data[..];
        let rel = if x.shape == y.shape { rel_rms(&xv, &yv) } else { f64::INFINITY };
        let step = match Stage::parse(&name) {
            Stage::Step(i, _) => Some(i),
            Stage::Call(i, _) => Some(call_step(i)),
            _ => None,
        };
        aligned.push(Aligned { rounding_floor: floor.threshold(&name), name, step, rel_rms: rel, bit_identical, metrics });
    }

    let curve = (0..a.step_count().max(b.step_count()))
        .map(|i| {
            let get = |f: &str| aligned.iter().find(|t| t.name == step_name(i, f));
            CurvePoint {
                step: i,
                x_rel: get("x").map(|t| t.rel_rms),
                denoised_rel: get("denoised").map(|t| t.rel_rms),
                x_floor: get("x").map(|t| t.rounding_floor),
            }
        })
        .collect();

    let first_difference = aligned.iter().find(|t| !t.bit_identical).map(|t| t.name.clone());
    let mut seen = 0.0f64;
    let mut first_divergence = None;
    for t in &aligned {
        let rel = if t.rel_rms.is_nan() { f64::INFINITY } else { t.rel_rms };
        if rel > t.rounding_floor {
            let parting = if seen == 0.0 || rel > SPLIT_JUMP * seen.max(t.rounding_floor) { Parting::Split } else { Parting::Drift };
            first_divergence =
                Some(Divergence { name: t.name.clone(), step: t.step, rel_rms: rel, rounding_floor: t.rounding_floor, parting });
            break;
        }
        seen = seen.max(rel);
    }
    Ok(TraceDiff {
        settings: settings_diff(a, b),
        aligned,
        only_in_a,
        only_in_b,
        curve,
        first_difference,
        first_divergence,
        floor_method: floor.method.clone(),
    })
}

/// Compares `a` against `b`, measuring A's rounding floor first.
pub fn diff(a: &Trace, b: &Trace, device: &Device) -> Result<TraceDiff> {
    let side = SideAnalysis::of(a, Some(b), device);
    diff_with(a, b, &side.floor, device)
}
