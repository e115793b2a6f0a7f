//! Terminal text for `diff`, `explain` and `verify` (the JSON is the serde form of the same
//! structures).

use std::fmt::Write;

use crate::diff::{Parting, TraceDiff};
use crate::explain::Explanation;
use crate::numeric::fmt;
use crate::verify::Verification;

/// Width of the divergence curve's bars.
const BAR: usize = 40;
/// The curve's scale: relative RMS from 1e-9 (empty bar) to 1e0 (full bar).
const DECADES: f64 = 9.0;

fn bar(rel: f64) -> String {
    if rel == 0.0 {
        return "·".into();
    }
    let t = ((rel.log10() + DECADES) / DECADES).clamp(0.0, 1.0);
    "█".repeat(((t * BAR as f64).round() as usize).max(1))
}

fn status(rel: f64, floor: f64, identical: bool) -> &'static str {
    if identical {
        "identical"
    } else if rel <= floor {
        "rounding"
    } else {
        "DIFFERS"
    }
}

/// The `diff` report.
pub fn diff_text(d: &TraceDiff, label_a: &str, label_b: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "A: {label_a}\nB: {label_b} (reference)");
    if d.settings.is_empty() {
        let _ = writeln!(o, "settings: equal");
    } else {
        let _ = writeln!(o, "settings that differ:");
        for s in &d.settings {
            let show = |v: &Option<serde_json::Value>| v.as_ref().map_or("(unset)".into(), |v| v.to_string());
            let _ = writeln!(o, "  {:<16} {} vs {}", s.key, show(&s.a), show(&s.b));
        }
    }
    for (side, names) in [("A", &d.only_in_a), ("B", &d.only_in_b)] {
        if !names.is_empty() {
            let _ = writeln!(o, "only in {side}: {}", names.join(", "));
        }
    }
    let _ = writeln!(o, "\naligned tensors, in execution order (relative RMS = RMS(A-B)/RMS(B)):");
    let _ = writeln!(o, "  {:<26} {:>5} {:>10} {:>10} {:>10} {:>9} {:>8} {:>10}  status", "tensor", "step", "rel RMS", "max |Δ|", "mean |Δ|", "cosine", "max ulp", "floor");
    for t in &d.aligned {
        let m = &t.metrics;
        let _ = writeln!(
            o,
            "  {:<26} {:>5} {:>10} {:>10} {:>10} {:>9} {:>8} {:>10}  {}",
            t.name,
            t.step.map_or("-".into(), |s| s.to_string()),
            fmt(t.rel_rms),
            m.max_abs.map_or("-".into(), fmt),
            m.mean_abs.map_or("-".into(), fmt),
            m.cosine.map_or("-".into(), |c| format!("{c:.6}")),
            m.ulp_max.map_or("-".into(), |u| u.to_string()),
            fmt(t.rounding_floor),
            status(t.rel_rms, t.rounding_floor, t.bit_identical)
        );
    }
    if !d.curve.is_empty() {
        let _ = writeln!(o, "\ndivergence curve: relative RMS of each step's x (bar: log scale 1e-9 .. 1)");
        for p in &d.curve {
            let x = p.x_rel.unwrap_or(f64::NAN);
            let _ = writeln!(
                o,
                "  step {:>3}  x {:>10}  denoised {:>10}  {}",
                p.step,
                fmt(x),
                p.denoised_rel.map_or("-".into(), fmt),
                if x.is_nan() { String::new() } else { bar(x) }
            );
        }
        if let Some(out) = d.get("latent_out") {
            let _ = writeln!(o, "  output    latent_out {:>10}  {}", fmt(out.rel_rms), bar(out.rel_rms));
        }
    }
    let _ = writeln!(o);
    match &d.first_difference {
        None => {
            let _ = writeln!(o, "every aligned tensor is bit-identical");
        }
        Some(n) => {
            let _ = writeln!(o, "first difference: {n}");
        }
    }
    match &d.first_divergence {
        Some(v) => {
            let how = match v.parting {
                Parting::Split => "an abrupt split: it appears at once, far above rounding",
                Parting::Drift => "a slow drift: it grew there from rounding-level differences",
            };
            let _ = writeln!(
                o,
                "first point beyond float32 rounding: {} (step {}), relative RMS {} > floor {} — {how}",
                v.name,
                v.step.map_or("-".into(), |s| s.to_string()),
                fmt(v.rel_rms),
                fmt(v.rounding_floor)
            );
        }
        None if d.first_difference.is_some() => {
            let _ = writeln!(o, "every difference stays within what float32 rounding explains");
        }
        None => {}
    }
    let _ = writeln!(o, "rounding floor: chain part {}; model part {} (see docs/trace-format.md)", d.floor_method, fmt(crate::rounding::MODEL_FLOOR));
    o
}

/// The `explain` report.
pub fn explain_text(e: &Explanation) -> String {
    let mut o = String::new();
    if e.findings.is_empty() {
        let _ = writeln!(o, "the runs differ, but no check could name a cause from what the files hold");
    }
    for (i, f) in e.findings.iter().enumerate() {
        let step = f.step.map_or(String::new(), |s| format!(", step {s}"));
        let _ = writeln!(o, "{}. {}  (confidence {:.2}; stage {}{step})", i + 1, f.cause.code(), f.confidence, f.stage);
        let _ = writeln!(o, "   {}", f.evidence);
    }
    o
}

/// The `verify` report.
pub fn verify_text(v: &Verification, label: &str) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{label}");
    for c in &v.checked {
        let _ = writeln!(o, "  checked: {c}");
    }
    for s in &v.skipped {
        let _ = writeln!(o, "  not checked: {s}");
    }
    if v.clean() {
        let _ = writeln!(o, "clean: the trace is exactly what ComfyUI's chain computes from its own settings and model outputs");
    } else {
        let _ = writeln!(o, "{} place(s) where the trace is not what ComfyUI's chain computes:", v.mismatches.len());
        for m in &v.mismatches {
            let step = m.step.map_or("-".into(), |s| s.to_string());
            let _ = writeln!(o, "  [{} step {step}] {}", m.stage, m.message);
        }
    }
    o
}
