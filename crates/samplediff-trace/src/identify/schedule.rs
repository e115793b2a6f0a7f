//! Which (scheduler, shift, multiplier, denoise) reproduce a run's sigmas, searched with the
//! chain's schedulers: the run's own settings, then the other side's, then a grid.

use samplediff_chain::model_sampling::ModelSampling;
use samplediff_chain::schedule::{COMFY_SAMPLER_NAMES, Scheduler, ksampler_sigmas};

use super::push_unique;
use crate::trace::Trace;

/// A schedule setting that reproduces a run's sigmas.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleId {
    pub scheduler: Scheduler,
    pub shift: f64,
    pub multiplier: f64,
    pub denoise: f64,
    pub steps: usize,
    /// The sigmas (complete, ending in 0).
    pub sigmas: Vec<f32>,
    /// Whether these are the trace's own settings.
    pub matches_settings: bool,
    /// Whether the trace recorded its sigmas (else the step sigmas of its calls, final 0 assumed).
    pub recorded: bool,
}

impl ScheduleId {
    pub fn describe(&self) -> String {
        let mult = if self.multiplier != 1.0 { format!(", multiplier {}", self.multiplier) } else { String::new() };
        format!("{} scheduler, shift {}{mult}, denoise {}, {} steps", self.scheduler, self.shift, self.denoise, self.steps)
    }
}

/// The schedule settings a trace states.
#[derive(Debug, Clone, Default)]
struct Stated {
    scheduler: Option<Scheduler>,
    shift: Option<f64>,
    multiplier: Option<f64>,
    denoise: Option<f64>,
}

fn stated(t: &Trace) -> Stated {
    Stated {
        scheduler: t.setting_str("scheduler").and_then(|s| s.parse().ok()),
        shift: t.setting_f64("shift"),
        multiplier: Some(t.multiplier()),
        denoise: t.setting_f64("denoise"),
    }
}

/// Shifts tried when neither side's settings reproduce the sigmas.
fn shift_grid() -> Vec<f64> {
    let mut v: Vec<f64> = (10..=200).map(|i| i as f64 * 0.05).collect();
    for s in [1.15, 1.73, 3.1] {
        push_unique(&mut v, s);
    }
    v
}

fn denoise_grid() -> Vec<f64> {
    (1..=20).map(|i| i as f64 * 0.05).collect()
}

/// Finds settings that reproduce `trace`'s sigmas (to within one float32 ulp per value: the
/// `exponential` and `kl_optimal` schedulers are within an ulp of torch).
pub fn identify_schedule(trace: &Trace, other: Option<&Trace>) -> Option<ScheduleId> {
    let (target, recorded) = trace.sigmas()?;
    if target.len() < 2 {
        return None;
    }
    let steps = target.len() - 1;
    let sampler = trace.setting_str("sampler").filter(|s| COMFY_SAMPLER_NAMES.contains(&s.as_str())).unwrap_or_else(|| "euler".into());
    let own = stated(trace);
    let theirs = other.map(stated).unwrap_or_default();

    let reproduces = |s: &[f32]| -> bool {
        if s.len() != target.len() {
            return false;
        }
        let n = if recorded { s.len() } else { s.len() - 1 };
        s[..n].iter().zip(&target[..n]).all(|(a, b)| within_ulp(*a, *b)) && (recorded || s[n] == 0.0)
    };
    let try_one = |ms: &ModelSampling, sch: Scheduler, denoise: f64| -> Option<Vec<f32>> {
        let s = ksampler_sigmas(ms, sch, steps, denoise, &sampler).ok()?;
        reproduces(&s).then_some(s)
    };
    let found = |sch, shift, mult, denoise, sigmas, own_settings| ScheduleId {
        scheduler: sch,
        shift,
        multiplier: mult,
        denoise,
        steps,
        sigmas,
        matches_settings: own_settings,
        recorded,
    };

    // 1. Both sides' stated values, own first.
    let mut schedulers = Vec::new();
    let mut shifts = Vec::new();
    let mut mults = Vec::new();
    let mut denoises = Vec::new();
    for s in [&own, &theirs] {
        if let Some(v) = s.scheduler {
            push_unique(&mut schedulers, v);
        }
        if let Some(v) = s.shift {
            push_unique(&mut shifts, v);
        }
        if let Some(v) = s.multiplier {
            push_unique(&mut mults, v);
        }
        if let Some(v) = s.denoise {
            push_unique(&mut denoises, v);
        }
    }
    push_unique(&mut mults, 1.0);
    push_unique(&mut denoises, 1.0);
    for &shift in &shifts {
        for &mult in &mults {
            let ms = ModelSampling::discrete_flow(shift, mult);
            for &sch in &schedulers {
                for &denoise in &denoises {
                    if let Some(s) = try_one(&ms, sch, denoise) {
                        let own_settings = Some(sch) == own.scheduler
                            && Some(shift) == own.shift
                            && mult == own.multiplier.unwrap_or(1.0)
                            && Some(denoise) == own.denoise;
                        return Some(found(sch, shift, mult, denoise, s, own_settings));
                    }
                }
            }
        }
    }
    // 2. A grid over every scheduler.
    let mut all_shifts = shifts.clone();
    for s in shift_grid() {
        push_unique(&mut all_shifts, s);
    }
    for d in denoise_grid() {
        push_unique(&mut denoises, d);
    }
    for &shift in &all_shifts {
        for &mult in &mults {
            // One sigma table per (shift, multiplier), shared by every scheduler and denoise.
            let ms = ModelSampling::discrete_flow(shift, mult);
            for sch in Scheduler::ALL {
                for &denoise in &denoises {
                    if let Some(s) = try_one(&ms, sch, denoise) {
                        return Some(found(sch, shift, mult, denoise, s, false));
                    }
                }
            }
        }
    }
    None
}

/// Equal, or neighbours as float32 values.
fn within_ulp(a: f32, b: f32) -> bool {
    a == b || (a.is_finite() && b.is_finite() && a.signum() == b.signum() && a.to_bits().abs_diff(b.to_bits()) <= 1)
}
