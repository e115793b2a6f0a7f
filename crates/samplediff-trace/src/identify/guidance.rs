//! Which CFG scale and CFGNorm reproduce a run's `denoised` from its own per-side predictions,
//! recomputed with the chain's `cfg` module (bit-exact against ComfyUI).

use burn::tensor::Device;

use super::push_unique;
use crate::drive::GuidanceSpec;
use crate::names::call_name;
use crate::numeric::{bit_equal, fmt};
use crate::trace::{Trace, host};

/// Calls checked per candidate (enough to see CFGNorm's clamp act; keeps long runs cheap).
const MAX_CALLS: usize = 8;

/// The identified guidance of one trace.
#[derive(Debug, Clone, PartialEq)]
pub struct GuidanceId {
    /// The reproducing setting; `None` when no candidate did.
    pub spec: Option<GuidanceSpec>,
    pub calls_checked: usize,
    /// Whether the reproducing setting is the trace's own.
    pub matches_settings: bool,
    /// Least-squares CFG scale of call 0 (`denoised ≈ uncond + s·(cond − uncond)`), for evidence.
    pub fitted_cfg: Option<f64>,
}

impl GuidanceId {
    pub fn describe(&self) -> String {
        match &self.spec {
            Some(s) => format!("{} (bit-exact over {} calls)", s.describe(), self.calls_checked),
            None => format!(
                "no tried cfg/CFGNorm setting reproduces its denoised{}",
                self.fitted_cfg.map(|s| format!(" (least-squares cfg without CFGNorm: {})", fmt(s))).unwrap_or_default()
            ),
        }
    }
}

fn stated(t: &Trace) -> Option<GuidanceSpec> {
    Some(GuidanceSpec { cfg: t.setting_f64("cfg")?, cfgnorm: t.cfgnorm().unwrap_or(None) })
}

/// Finds the guidance that turns `trace`'s `cond_denoised`/`uncond_denoised` into its `denoised`.
pub fn identify_guidance(trace: &Trace, other: Option<&Trace>, device: &Device) -> Option<GuidanceId> {
    let calls = trace.call_count().min(MAX_CALLS);
    if calls == 0 || !trace.has(&call_name(0, "cond_denoised")) {
        return None;
    }
    let own = stated(trace);
    let theirs = other.and_then(stated);
    let mut candidates = Vec::new();
    for s in [own, theirs].into_iter().flatten() {
        push_unique(&mut candidates, s);
    }
    let cfgs: Vec<f64> = candidates.iter().map(|s| s.cfg).collect();
    let norms: Vec<Option<f64>> = candidates.iter().map(|s| s.cfgnorm).chain([None, Some(1.0)]).collect();
    for &cfg in &cfgs {
        for &cfgnorm in &norms {
            push_unique(&mut candidates, GuidanceSpec { cfg, cfgnorm });
        }
    }

    let load = |i: usize, f: &str| trace.tensor5(&call_name(i, f), device);
    let mut data = Vec::with_capacity(calls);
    for i in 0..calls {
        let sigma = trace.values(&call_name(i, "sigma"))?.first().copied()?;
        data.push((load(i, "x")?, sigma, load(i, "cond_denoised")?, load(i, "uncond_denoised")?, trace.values(&call_name(i, "denoised"))?));
    }
    let fitted_cfg = fit_cfg(trace);
    for spec in candidates {
        let mut g = spec.guidance();
        let ok = data.iter().all(|(x, sigma, c, u, d)| {
            let u = if g.needs_uncond() { u.clone() } else { x.zeros_like() };
            g.apply(x, *sigma, c, &u).ok().and_then(|t| host(&t).ok()).is_some_and(|v| bit_equal(&v, d))
        });
        if ok {
            return Some(GuidanceId { spec: Some(spec), calls_checked: calls, matches_settings: Some(spec) == own, fitted_cfg });
        }
    }
    Some(GuidanceId { spec: None, calls_checked: calls, matches_settings: false, fitted_cfg })
}

/// `s = <d − u, c − u> / <c − u, c − u>` on call 0.
fn fit_cfg(trace: &Trace) -> Option<f64> {
    let c = trace.values(&call_name(0, "cond_denoised"))?;
    let u = trace.values(&call_name(0, "uncond_denoised"))?;
    let d = trace.values(&call_name(0, "denoised"))?;
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for ((&c, &u), &d) in c.iter().zip(&u).zip(&d) {
        let cu = c as f64 - u as f64;
        num += (d as f64 - u as f64) * cu;
        den += cu * cu;
    }
    (den > 0.0).then(|| num / den)
}
