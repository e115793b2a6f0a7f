//! The checks, one per stage, in execution order. Each reads the two traces, their
//! identifications and the walk's first event, and adds findings; each names the settings keys
//! its finding accounts for, so that only unexplained settings become a `settings` finding.

use std::collections::BTreeSet;

use samplediff_chain::latent_format::{WAN21_MEAN, WAN21_STD};
use samplediff_metrics::report::ChannelStats;
use serde_json::Value;

use super::walk::{Event, conditioning_equal, first_event};
use super::{Cause, Ctx, Finding};
use crate::identify::{Convention, NoiseSource, initial_noise};
use crate::manifest::{CondEntry, ModelFingerprint};
use crate::names::call_name;
use crate::numeric::{RoundTrip, bit_equal, fmt, max_abs, narrow_round_trip, rel_rms};
use crate::rounding::MODEL_FLOOR;
use crate::trace::Trace;

/// Metadata keys of a Qwen-Image conditioning dict that ComfyUI's `QwenImage.extra_conds` never
/// reads (spec §8.3): a difference in them changes no number.
const IGNORED_COND_KEYS: &[&str] = &["pooled_output", "attention_mask"];

type Claims = BTreeSet<&'static str>;

pub(super) fn all(ctx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut claims = Claims::new();
    if !ctx.a.is_run() || !ctx.b.is_run() {
        plain_outputs(ctx, &mut out);
        settings(ctx, &mut out, &claims);
        return out;
    }
    let event = first_event(ctx.a, ctx.b);
    latent(ctx, &mut out, &mut claims);
    conditioning(ctx, &event, &mut out, &mut claims);
    metadata(ctx, &event, &mut out);
    noise(ctx, &mut out, &mut claims);
    sigmas(ctx, &event, &mut out, &mut claims);
    model(ctx, &event, &mut out, &mut claims);
    guidance(ctx, &event, &mut out, &mut claims);
    sampler(ctx, &event, &mut out, &mut claims);
    output(ctx, &event, &mut out);
    settings(ctx, &mut out, &claims);
    out
}

/// Conditioning metadata (manifests) equal, or unknown on a side.
pub(super) fn metadata_equal(a: &Trace, b: &Trace) -> bool {
    match (cond_meta(a), cond_meta(b)) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

fn cond_meta(t: &Trace) -> Option<(Vec<CondEntry>, Vec<CondEntry>)> {
    let c = t.manifest.as_ref()?.conditioning.as_ref()?;
    Some((c.positive.clone(), c.negative.clone()))
}

fn step_of_call(t: &Trace, call: usize) -> usize {
    t.call_steps().get(call).copied().unwrap_or(call)
}

fn round_trip_words(rt: &RoundTrip, what: &str) -> String {
    let (full, rounded) = if rt.b_is_rounded { ("A", "B") } else { ("B", "A") };
    format!(
        "{rounded}'s {what} is {full}'s rounded to {} and back ({} elements changed, each by at most {} {} ulp): a {} round trip",
        rt.format.name(),
        rt.changed,
        fmt(rt.max_ulps),
        rt.format.name(),
        rt.format.name()
    )
}

/// How two arrays differ, in words.
fn describe_difference(a: &[f32], b: &[f32], what: &str) -> String {
    if let Some(rt) = narrow_round_trip(a, b) {
        return round_trip_words(&rt, what);
    }
    let nz = |v: &[f32]| v.iter().any(|&x| x != 0.0);
    match (nz(a), nz(b)) {
        (false, true) => return format!("A's {what} is all zeros, B's is not"),
        (true, false) => return format!("B's {what} is all zeros, A's is not"),
        _ => {}
    }
    format!("{what} differs: relative RMS {}, max |Δ| {}", fmt(rel_rms(a, b)), fmt(max_abs(a, b)))
}

fn latent(ctx: &Ctx<'_>, out: &mut Vec<Finding>, claims: &mut Claims) {
    let (Some(ta), Some(tb)) = (ctx.a.get("latent_in"), ctx.b.get("latent_in")) else { return };
    let (va, vb) = (ta.to_f32_vec(), tb.to_f32_vec());
    if ta.shape == tb.shape && bit_equal(&va, &vb) {
        return;
    }
    claims.extend(["init_latent", "hw"]);
    let mut evidence = if ta.shape != tb.shape {
        format!("latent_in shapes differ: {:?} vs {:?}", ta.shape, tb.shape)
    } else {
        describe_difference(&va, &vb, "latent_in")
    };
    let x_same = bit_equal(
        &ctx.a.values(&call_name(0, "x")).unwrap_or_default(),
        &ctx.b.values(&call_name(0, "x")).unwrap_or_default(),
    );
    let sigma0 = ctx.a.call_sigmas().first().copied().unwrap_or(f32::NAN);
    let finding = if x_same && ta.shape == tb.shape {
        evidence += &format!(
            ". No numeric effect: the first sigma is {sigma0}, so x = sigma·noise + (1 − sigma)·latent does not see the latent, and call000.x is bit-identical"
        );
        Finding::new(Cause::InputLatent, 0.95, "latent_in", None, evidence).without_effect()
    } else {
        evidence += &format!(
            ". ComfyUI normalises a non-zero latent (Wan 2.1 process_in) and blends it in at the first sigma ({sigma0}); call000.x differs by relative RMS {}",
            fmt(ctx.diff.get("call000.x").map_or(f64::NAN, |t| t.rel_rms))
        );
        Finding::new(Cause::InputLatent, 0.95, "latent_in", None, evidence)
    };
    out.push(finding);
}

fn conditioning(ctx: &Ctx<'_>, event: &Event, out: &mut Vec<Finding>, claims: &mut Claims) {
    for (side, pred) in [("positive", "cond_denoised"), ("negative", "uncond_denoised")] {
        let (Some(ta), Some(tb)) = (ctx.a.get(side), ctx.b.get(side)) else { continue };
        let (va, vb) = (ta.to_f32_vec(), tb.to_f32_vec());
        if ta.shape == tb.shape && bit_equal(&va, &vb) {
            continue;
        }
        claims.insert("L");
        let mut evidence = if ta.shape != tb.shape {
            format!("{side} conditioning shapes differ: {:?} vs {:?} (another prompt or token count)", ta.shape, tb.shape)
        } else {
            describe_difference(&va, &vb, &format!("{side} conditioning"))
        };
        let mut finding = None;
        if let Event::Conditioning { call } = event {
            let name = call_name(*call, pred);
            match (ctx.a.values(&name), ctx.b.values(&name)) {
                (Some(x), Some(y)) if bit_equal(&x, &y) => {
                    let why = if side == "negative" && ctx.a.setting_f64("cfg") == Some(1.0) {
                        " (cfg is 1: ComfyUI never evaluates the negative prompt)"
                    } else {
                        ""
                    };
                    evidence += &format!(". No numeric effect: with the same x and sigma, {name} is bit-identical{why}");
                    finding = Some(Finding::new(Cause::Conditioning, 0.9, "conditioning", None, evidence.clone()).without_effect());
                }
                (Some(x), Some(y)) => {
                    evidence += &format!(
                        ". Effect: with bit-identical x and sigma at model call {call}, {name} differs by relative RMS {}",
                        fmt(rel_rms(&x, &y))
                    );
                }
                _ => {}
            }
        }
        out.push(finding.unwrap_or_else(|| Finding::new(Cause::Conditioning, 0.95, "conditioning", None, evidence)));
    }
}

/// Keys whose values differ between two JSON objects (non-objects compare whole).
fn differing_keys(a: &Value, b: &Value) -> Vec<String> {
    match (a.as_object(), b.as_object()) {
        (Some(x), Some(y)) => {
            let mut keys: Vec<String> = x.keys().chain(y.keys()).filter(|k| x.get(*k) != y.get(*k)).cloned().collect();
            keys.sort();
            keys.dedup();
            keys
        }
        _ if a != b => vec!["<whole>".into()],
        _ => vec![],
    }
}

fn metadata(ctx: &Ctx<'_>, event: &Event, out: &mut Vec<Finding>) {
    let (Some(ma), Some(mb)) = (cond_meta(ctx.a), cond_meta(ctx.b)) else { return };
    if ma == mb {
        return;
    }
    let mut parts = Vec::new();
    let mut keys = BTreeSet::new();
    for (side, la, lb) in [("positive", &ma.0, &mb.0), ("negative", &ma.1, &mb.1)] {
        if la.len() != lb.len() {
            parts.push(format!("{side}: {} vs {} [tensor, dict] entries", la.len(), lb.len()));
            keys.insert("<entries>".to_string());
            continue;
        }
        for (i, (ea, eb)) in la.iter().zip(lb).enumerate() {
            let k = differing_keys(&ea.meta, &eb.meta);
            if !k.is_empty() {
                parts.push(format!("{side}[{i}] dict A {} vs B {} (keys: {})", ea.meta, eb.meta, k.join(", ")));
                keys.extend(k);
            }
        }
    }
    let mut evidence = format!("conditioning metadata differs: {}", parts.join("; "));
    let ignored = keys.iter().all(|k| IGNORED_COND_KEYS.contains(&k.as_str()));
    // Numeric effect: do the predictions differ where everything else is identical?
    let predictions_equal = !matches!(event, Event::Model { .. } | Event::Conditioning { .. } | Event::InitialState);
    let tensors_equal = conditioning_equal(ctx.a, ctx.b);
    if ignored && predictions_equal && tensors_equal {
        evidence += ". No numeric effect: ComfyUI's Qwen-Image model (extra_conds) reads neither pooled_output nor attention_mask, and every model prediction is bit-identical";
        out.push(Finding::new(Cause::ConditioningMetadata, 1.0, "conditioning", None, evidence).without_effect());
    } else if ignored {
        evidence += ". ComfyUI's Qwen-Image model reads none of these keys, so this is not what changes the numbers";
        out.push(Finding::new(Cause::ConditioningMetadata, 0.9, "conditioning", None, evidence).without_effect());
    } else {
        evidence += ". These keys can change what the model sees (reference latents, areas, masks, timestep ranges)";
        let step = match event {
            Event::Model { call, .. } => Some(step_of_call(ctx.a, *call)),
            _ => None,
        };
        out.push(Finding::new(Cause::ConditioningMetadata, 0.7, "conditioning", step, evidence));
    }
}

fn noise(ctx: &Ctx<'_>, out: &mut Vec<Finding>, claims: &mut Claims) {
    let (na, nb) = (ctx.sa.noise.as_ref(), ctx.sb.noise.as_ref());
    let raw_equal = match (initial_noise(ctx.a), initial_noise(ctx.b)) {
        (Some((x, sx)), Some((y, sy))) => Some(sx == sy && bit_equal(&x, &y)),
        _ => None,
    };
    let sources_differ = match (na, nb) {
        (Some(x), Some(y)) => x.source != y.source || (x.source.is_none() && y.source.is_none()),
        _ => false,
    };
    let identified = (na.and_then(|n| n.source), nb.and_then(|n| n.source));
    let differs = match (raw_equal, identified) {
        (Some(eq), _) => !eq,
        // Without the noise itself: two identified generators/seeds settle it ...
        (None, (Some(x), Some(y))) => x != y,
        // ... else unidentified noise counts only when the other inputs of x_T agree.
        (None, _) => sources_differ && same_latent_and_sigma0(ctx),
    };
    if !differs {
        return;
    }
    claims.insert("seed");
    let describe = |n: Option<&crate::identify::NoiseId>| n.map_or("unknown (no noise tensor, first sigma below 1)".to_string(), |n| n.describe());
    let mut evidence = format!("initial noise differs. A: {}. B: {}", describe(na), describe(nb));
    let (sa, sb) = (na.and_then(|n| n.source), nb.and_then(|n| n.source));
    match (sa, sb) {
        (Some(NoiseSource::TorchCpu { seed: x }), Some(NoiseSource::TorchCpu { seed: y })) if x != y => {
            evidence += &format!(". Different seeds: {x} vs {y}");
        }
        (Some(NoiseSource::TorchCpu { .. }), Some(NoiseSource::CudaPhilox { seed })) => {
            evidence += &format!(". B drew its noise on a CUDA GPU (Philox) for seed {seed}; ComfyUI's KSampler draws initial noise on the CPU");
        }
        (Some(NoiseSource::CudaPhilox { seed }), Some(NoiseSource::TorchCpu { .. })) => {
            evidence += &format!(". A drew its noise on a CUDA GPU (Philox) for seed {seed}; ComfyUI's KSampler draws initial noise on the CPU");
        }
        _ => {}
    }
    if let (Some(x), Some(y)) = (ctx.a.seed(), ctx.b.seed())
        && x != y
        && (x as u32) == (y as u32)
    {
        evidence += &format!(". Seeds {x} and {y} share their low 32 bits, which is all torch's CPU generator uses");
    }
    let confidence = match (sa.is_some(), sb.is_some()) {
        (true, true) => 0.97,
        (true, false) | (false, true) => 0.85,
        _ => 0.6,
    };
    out.push(Finding::new(Cause::Noise, confidence, "noise", None, evidence));
}

fn same_latent_and_sigma0(ctx: &Ctx<'_>) -> bool {
    let latent = match (ctx.a.values("latent_in"), ctx.b.values("latent_in")) {
        (Some(x), Some(y)) => bit_equal(&x, &y),
        (None, None) => true,
        _ => false,
    };
    latent && ctx.a.call_sigmas().first() == ctx.b.call_sigmas().first()
}

fn sigmas(ctx: &Ctx<'_>, event: &Event, out: &mut Vec<Finding>, claims: &mut Claims) {
    let (Some((xa, _)), Some((xb, _))) = (ctx.a.sigmas(), ctx.b.sigmas()) else {
        if let Event::Sigma { call } = event {
            out.push(Finding::new(
                Cause::Sigmas,
                0.7,
                "sigmas",
                Some(step_of_call(ctx.a, *call)),
                format!("model call {call} has the same x but another sigma"),
            ));
        }
        return;
    };
    if bit_equal(&xa, &xb) {
        return;
    }
    claims.extend(["shift", "scheduler", "denoise", "steps", "multiplier"]);
    let list = |s: &[f32]| {
        let shown: Vec<String> = s.iter().take(6).map(|v| format!("{v}")).collect();
        format!("[{}{}]", shown.join(", "), if s.len() > 6 { ", ..." } else { "" })
    };
    let (ia, ib) = (ctx.sa.schedule.as_ref(), ctx.sb.schedule.as_ref());
    let id = |i: Option<&crate::identify::ScheduleId>| match i {
        Some(s) if s.matches_settings => format!("reproduced by its own settings ({})", s.describe()),
        Some(s) => format!("reproduced by {} (NOT its stated settings)", s.describe()),
        None => "no scheduler/shift/denoise in the searched grid reproduces them".into(),
    };
    let mut evidence = format!("sigmas differ. A {} {}; B {} {}", list(&xa), id(ia), list(&xb), id(ib));
    if let (Some(p), Some(q)) = (ia, ib) {
        let mut what = Vec::new();
        if p.scheduler != q.scheduler {
            what.push(format!("scheduler {} vs {}", p.scheduler, q.scheduler));
        }
        if p.shift != q.shift {
            what.push(format!("shift {} vs {}", p.shift, q.shift));
        }
        if p.multiplier != q.multiplier {
            what.push(format!("multiplier {} vs {}", p.multiplier, q.multiplier));
        }
        if p.denoise != q.denoise {
            what.push(format!("denoise {} vs {}", p.denoise, q.denoise));
        }
        if p.steps != q.steps {
            what.push(format!("steps {} vs {}", p.steps, q.steps));
        }
        if !what.is_empty() {
            evidence += &format!(". What differs: {}", what.join(", "));
        }
    }
    let confidence = if ia.is_some() && ib.is_some() { 0.97 } else { 0.8 };
    out.push(Finding::new(Cause::Sigmas, confidence, "sigmas", None, evidence));
}

/// Stages whose weights hash differs, with what the writers say about them.
fn fingerprint_difference(a: Option<&ModelFingerprint>, b: Option<&ModelFingerprint>) -> Option<String> {
    let (a, b) = (a?, b?);
    let mut parts = Vec::new();
    for sa in &a.stages {
        let Some(sb) = b.stage(&sa.stage) else { continue };
        if sa.sha256 == sb.sha256 {
            parts.push(format!("{} weights identical (sha256 {}…)", sa.stage, &sa.sha256[..12.min(sa.sha256.len())]));
            continue;
        }
        let mut s = format!(
            "{} weights differ (sha256 {}… vs {}…",
            sa.stage,
            &sa.sha256[..12.min(sa.sha256.len())],
            &sb.sha256[..12.min(sb.sha256.len())]
        );
        if sa.keys != sb.keys {
            s += &format!(", {} vs {} tensors", sa.keys, sb.keys);
        }
        if sa.dtypes != sb.dtypes {
            s += &format!(", dtypes {:?} vs {:?}", sa.dtypes, sb.dtypes);
        }
        let mut keys: Vec<&String> = sa.detail.keys().chain(sb.detail.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let (x, y) = (sa.detail.get(k), sb.detail.get(k));
            if x != y {
                let show = |v: Option<&Value>| v.map_or("-".to_string(), Value::to_string);
                s += &format!(", {k} {} vs {}", show(x), show(y));
            }
        }
        parts.push(s + ")");
    }
    parts.iter().any(|p| p.contains("differ")).then(|| parts.join("; "))
}

fn model(ctx: &Ctx<'_>, event: &Event, out: &mut Vec<Finding>, claims: &mut Claims) {
    let fa = ctx.a.manifest.as_ref().and_then(|m| m.model.as_ref());
    let fb = ctx.b.manifest.as_ref().and_then(|m| m.model.as_ref());
    let observed = match event {
        Event::Model { call, rel } => Some((*call, *rel)),
        _ => None,
    };
    let observed_words = |call: usize, rel: f64| {
        let preds = ["cond_denoised", "uncond_denoised"]
            .iter()
            .filter_map(|f| {
                let n = call_name(call, f);
                Some(format!("{f} relative RMS {}", fmt(rel_rms(&ctx.a.values(&n)?, &ctx.b.values(&n)?))))
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "model call {call} (step {}): x, sigma and conditioning bit-identical, yet {preds} (largest {}, {}× the float32 rounding floor {})",
            step_of_call(ctx.a, call),
            fmt(rel),
            fmt(rel / MODEL_FLOOR),
            fmt(MODEL_FLOOR)
        )
    };
    if let Some(fp) = fingerprint_difference(fa, fb) {
        claims.extend(["lora", "lora_strength", "weight_dtype", "precision", "model"]);
        let (step, evidence, confidence) = match observed {
            Some((call, rel)) => (
                Some(step_of_call(ctx.a, call)),
                format!("{}. Model fingerprints: {fp}", observed_words(call, rel)),
                0.97,
            ),
            None => (Some(0), format!("model fingerprints: {fp} (the runs part before a model call with identical inputs, so the effect cannot be isolated)"), 0.85),
        };
        out.push(Finding::new(Cause::ModelWeights, confidence, "model", step, evidence));
        return;
    }
    let Some((call, rel)) = observed else {
        // No call with identical inputs to measure the model on: the settings still say it differs.
        let keys = ["lora", "lora_strength", "weight_dtype", "precision"];
        let differing: Vec<String> = ctx
            .diff
            .settings
            .iter()
            .filter(|s| keys.contains(&s.key.as_str()))
            .map(|s| format!("{} {} vs {}", s.key, s.a.as_ref().map_or("(unset)".into(), Value::to_string), s.b.as_ref().map_or("(unset)".into(), Value::to_string)))
            .collect();
        if !differing.is_empty() {
            claims.extend(keys);
            out.push(Finding::new(
                Cause::ModelWeights,
                0.6,
                "model",
                Some(0),
                format!(
                    "the settings load the model differently: {}. No model fingerprint, and the runs part before any model call with identical inputs, so its effect cannot be measured separately",
                    differing.join(", ")
                ),
            ));
        }
        return;
    };
    let step = step_of_call(ctx.a, call);
    if rel <= MODEL_FLOOR {
        out.push(drift(ctx, call, rel));
        return;
    }
    if !metadata_equal(ctx.a, ctx.b)
        && out.iter().any(|f| f.cause == Cause::ConditioningMetadata && f.numeric_effect)
    {
        return; // the metadata finding already carries this effect
    }
    let mut evidence = observed_words(call, rel);
    let env = |t: &Trace| t.manifest.as_ref().and_then(|m| m.environment.clone());
    let dtype_diff = match (env(ctx.a), env(ctx.b)) {
        (Some(x), Some(y)) if x.dtypes != y.dtypes => Some(format!("environment dtypes {:?} vs {:?}", x.dtypes, y.dtypes)),
        _ => None,
    };
    if (2e-3..5e-2).contains(&rel) {
        evidence += ". The size is that of a bfloat16 (8-bit mantissa) difference";
    }
    match (fa, fb) {
        (Some(_), Some(_)) => evidence += ". Model fingerprints are identical: the weights agree, so precision, kernels or attention differ",
        _ => evidence += ". No model fingerprint on both sides to tell weights/LoRA from precision or kernels",
    }
    if let Some(d) = dtype_diff {
        evidence += &format!("; {d}");
        claims.extend(["weight_dtype", "precision"]);
        out.push(Finding::new(Cause::ModelWeights, 0.85, "model", Some(step), evidence));
        return;
    }
    claims.extend(["lora", "lora_strength"]);
    out.push(Finding::new(Cause::ModelOutput, 0.8, "model", Some(step), evidence));
}

/// The first model difference is rounding-sized: describe how it grows.
fn drift(ctx: &Ctx<'_>, call: usize, rel: f64) -> Finding {
    let d = ctx.diff;
    let curve: Vec<String> = d
        .curve
        .iter()
        .filter_map(|p| p.x_rel.map(|x| format!("step {} {}", p.step, fmt(x))))
        .collect();
    let out_rel = d.get("latent_out").map(|t| t.rel_rms);
    let mut evidence = format!(
        "first difference at model call {call}: inputs bit-identical, predictions differ by relative RMS {} — within what float32 rounding explains ({}), e.g. other kernels, FMA contraction or reduction order",
        fmt(rel),
        fmt(MODEL_FLOOR)
    );
    if !curve.is_empty() {
        evidence += &format!(". x relative RMS by step: {}", curve.join(", "));
    }
    if let Some(o) = out_rel {
        evidence += &format!("; latent_out {}", fmt(o));
    }
    match &d.first_divergence {
        Some(div) if div.parting == crate::diff::Parting::Drift => {
            evidence += &format!(
                ". It grows gradually past the floor at {} ({} > {}): slow float drift amplified by the sampler, not an abrupt split",
                div.name,
                fmt(div.rel_rms),
                fmt(div.rounding_floor)
            );
        }
        Some(div) => {
            evidence += &format!(". An abrupt jump follows at {} (relative RMS {}): look for a second cause there", div.name, fmt(div.rel_rms));
        }
        None => evidence += ". It never leaves the float32 rounding floor",
    }
    let env = |t: &Trace| t.manifest.as_ref().and_then(|m| m.environment.clone());
    if let (Some(x), Some(y)) = (env(ctx.a), env(ctx.b)) {
        if x.devices != y.devices {
            evidence += &format!("; devices {:?} vs {:?}", x.devices, y.devices);
        }
        if x.attention_backend != y.attention_backend {
            evidence += &format!("; attention {:?} vs {:?}", x.attention_backend, y.attention_backend);
        }
    }
    Finding::new(Cause::PrecisionDrift, 0.85, "model", Some(step_of_call(ctx.a, call)), evidence)
}

fn guidance(ctx: &Ctx<'_>, event: &Event, out: &mut Vec<Finding>, claims: &mut Claims) {
    let (ga, gb) = (ctx.sa.guidance.as_ref(), ctx.sb.guidance.as_ref());
    let step = match event {
        Event::Guidance { call } => Some(step_of_call(ctx.a, *call)),
        _ => Some(0),
    };
    let spec = |g: Option<&crate::identify::GuidanceId>| g.and_then(|g| g.spec);
    if let (Some(p), Some(q)) = (spec(ga), spec(gb)) {
        if p == q {
            return;
        }
        let base = format!(
            "A's denoised = {}; B's = {} (recomputed from each side's own cond/uncond predictions with the chain's CFG and CFGNorm)",
            ga.map(|g| g.describe()).unwrap_or_default(),
            gb.map(|g| g.describe()).unwrap_or_default()
        );
        if p.cfg != q.cfg {
            claims.insert("cfg");
            out.push(Finding::new(Cause::Cfg, 0.97, "guidance", step, format!("cfg scale {} vs {}. {base}", p.cfg, q.cfg)));
        }
        if p.cfgnorm != q.cfgnorm {
            claims.insert("cfgnorm");
            let show = |n: Option<f64>| n.map_or("none".to_string(), |s| format!("strength {s}"));
            out.push(Finding::new(
                Cause::Cfgnorm,
                0.97,
                "guidance",
                step,
                format!("CFGNorm {} vs {}. {base}", show(p.cfgnorm), show(q.cfgnorm)),
            ));
        }
        return;
    }
    let Event::Guidance { call } = event else { return };
    // Not reproduced on a side: at identical predictions, fit the scale to tell cfg from the rest.
    let fit = |t: &Trace| -> Option<f64> {
        let c = t.values(&call_name(*call, "cond_denoised"))?;
        let u = t.values(&call_name(*call, "uncond_denoised"))?;
        let d = t.values(&call_name(*call, "denoised"))?;
        let (mut num, mut den) = (0.0, 0.0);
        for ((c, u), d) in c.iter().zip(&u).zip(&d) {
            let cu = (*c - *u) as f64;
            num += (*d - *u) as f64 * cu;
            den += cu * cu;
        }
        (den > 0.0).then(|| num / den)
    };
    let (fa, fb) = (fit(ctx.a), fit(ctx.b));
    let evidence = format!(
        "model call {call}: identical cond/uncond predictions, different denoised; least-squares cfg A {} vs B {}. A: {}. B: {}",
        fa.map_or("-".into(), fmt),
        fb.map_or("-".into(), fmt),
        ga.map_or("-".into(), |g| g.describe()),
        gb.map_or("-".into(), |g| g.describe())
    );
    let cause = match (fa, fb) {
        (Some(x), Some(y)) if (x - y).abs() > 1e-3 * x.abs().max(1.0) => Cause::Cfg,
        _ => Cause::Cfgnorm,
    };
    claims.extend(["cfg", "cfgnorm"]);
    out.push(Finding::new(cause, 0.7, "guidance", step, evidence));
}

fn sampler(ctx: &Ctx<'_>, event: &Event, out: &mut Vec<Finding>, claims: &mut Claims) {
    let (ia, ib) = (ctx.sa.sampler.as_ref(), ctx.sb.sampler.as_ref());
    let step = match event {
        Event::Update { call } => Some(step_of_call(ctx.a, call - 1)),
        Event::CallCount { .. } => Some(ctx.a.step_count().min(ctx.b.step_count()).saturating_sub(1)),
        _ => Some(0),
    };
    let describe = |i: Option<&crate::identify::SamplerId>| i.map_or("-".into(), |s| s.describe());
    if let (Some(p), Some(q)) = (ia, ib)
        && p.exact
        && q.exact
        && p.name != q.name
    {
        claims.insert("sampler");
        out.push(Finding::new(
            Cause::SamplerUpdate,
            0.97,
            "sampler",
            step,
            format!(
                "sampler {} vs {}: replaying each side's own recorded predictions through the chain, A's trajectory is {}; B's is {}",
                p.name,
                q.name,
                describe(ia),
                describe(ib)
            ),
        ));
        return;
    }
    if let (Some(p), Some(q)) = (ia, ib)
        && p.exact
        && q.exact
        && p.name == q.name
        && p.step_noise != q.step_noise
    {
        claims.insert("sampler");
        let show = |n: Option<&'static str>| n.unwrap_or("no");
        out.push(Finding::new(
            Cause::SamplerUpdate,
            0.95,
            "sampler",
            step,
            format!(
                "both run {}, but its per-step noise differs: A's trajectory is {}; B's is {}. ComfyUI draws this noise where the latent lives ({} vs {} generator)",
                p.name,
                describe(ia),
                describe(ib),
                show(p.step_noise),
                show(q.step_noise)
            ),
        ));
        return;
    }
    if let Event::Update { call } = event
        && update_sigmas_differ(ctx, *call)
    {
        return; // the schedule moved the update: the sigmas finding covers it
    }
    let evidence = match event {
        Event::Update { call } => {
            let prev = call - 1;
            format!(
                "model call {prev} is bit-identical on both sides (x, sigma, predictions, denoised), but the next x (call {call}) differs by relative RMS {}: the sampler's update differs. A: {}. B: {}",
                fmt(ctx.diff.get(&call_name(*call, "x")).map_or(f64::NAN, |t| t.rel_rms)),
                describe(ia),
                describe(ib)
            )
        }
        Event::CallCount { a, b } => format!(
            "every common model call agrees, but A made {a} calls and B {b}: another sampler or step count. A: {}. B: {}",
            describe(ia),
            describe(ib)
        ),
        _ => return,
    };
    claims.insert("sampler");
    out.push(Finding::new(Cause::SamplerUpdate, 0.75, "sampler", step, evidence));
}

/// Whether the sigmas the update into call `call` used (its step's sigma and the next) differ.
fn update_sigmas_differ(ctx: &Ctx<'_>, call: usize) -> bool {
    let step = step_of_call(ctx.a, call - 1);
    let (Some((sa, _)), Some((sb, _))) = (ctx.a.sigmas(), ctx.b.sigmas()) else { return false };
    let at = |v: &[f32], i: usize| v.get(i).map(|x| x.to_bits());
    at(&sa, step) != at(&sb, step) || at(&sa, step + 1) != at(&sb, step + 1)
}

/// Per channel `b ≈ scale·a + shift`: how close are the fits to `x·std + mean` (Wan 2.1)?
/// Returns (largest relative scale error, largest shift error, smallest R²).
fn wan21_fit(ch: &[ChannelStats]) -> Option<(f64, f64, f64)> {
    if ch.len() != WAN21_STD.len() {
        return None;
    }
    let (mut scale_err, mut shift_err, mut r2) = (0.0f64, 0.0f64, f64::INFINITY);
    for (i, c) in ch.iter().enumerate() {
        let (k, t, q) = (c.scale?, c.shift?, c.r2?);
        scale_err = scale_err.max((k - WAN21_STD[i]).abs() / WAN21_STD[i]);
        shift_err = shift_err.max((t - WAN21_MEAN[i]).abs());
        r2 = r2.min(q);
    }
    Some((scale_err, shift_err, r2))
}

/// The metrics' per-channel fit of the final latents, in words, when it is the Wan 2.1 relation.
fn convention_fit(ctx: &Ctx<'_>) -> Option<(bool, String)> {
    let t = ctx.diff.get("latent_out")?;
    let fits = |ch: &[ChannelStats]| wan21_fit(ch).filter(|(s, m, r2)| *s < 0.02 && *m < 0.02 && *r2 > 0.999);
    // The metrics fit b ≈ scale·a + shift (B is the reference).
    if let Some((s, m, r2)) = fits(&t.metrics.per_channel) {
        return Some((
            true,
            format!(
                "per channel, B = scale·A + shift with scale = Wan 2.1 latents_std (within {}%) and shift = latents_mean (within {}), R² ≥ {}: A is the normalised sampler state, B is ComfyUI's de-normalised LATENT",
                fmt(100.0 * s),
                fmt(m),
                fmt(r2)
            ),
        ));
    }
    // The other direction: a ≈ (b − mean)/std, i.e. scale = 1/std, shift = −mean/std.
    let inverse: Vec<ChannelStats> = t
        .metrics
        .per_channel
        .iter()
        .map(|c| {
            let mut c = c.clone();
            if let (Some(k), Some(sh)) = (c.scale, c.shift)
                && k != 0.0
            {
                c.scale = Some(1.0 / k);
                c.shift = Some(-sh / k);
            }
            c
        })
        .collect();
    fits(&inverse).map(|(s, m, r2)| {
        (
            false,
            format!(
                "per channel, A = scale·B + shift with scale = Wan 2.1 latents_std (within {}%) and shift = latents_mean (within {}), R² ≥ {}: B is the normalised sampler state, A is ComfyUI's de-normalised LATENT",
                fmt(100.0 * s),
                fmt(m),
                fmt(r2)
            ),
        )
    })
}

fn output(ctx: &Ctx<'_>, event: &Event, out: &mut Vec<Finding>) {
    let (oa, ob) = (ctx.sa.output.as_ref(), ctx.sb.output.as_ref());
    let last = ctx.a.step_count().checked_sub(1);
    let fit = convention_fit(ctx);
    if let (Some(p), Some(q)) = (oa, ob)
        && p.convention != q.convention
    {
        let raw_side = if p.convention == Convention::Raw { "A" } else { "B" };
        let mut evidence = format!(
            "A's latent_out is {}; B's is {}. {raw_side} is missing ComfyUI's process_out (Wan 2.1 de-normalisation, latent·std + mean), which KSampler always applies",
            p.describe(),
            q.describe()
        );
        if let Some((_, words)) = &fit {
            evidence += &format!(". Metrics: {words}");
        }
        if let Some(t) = ctx.diff.get("latent_out") {
            evidence += &format!(
                ". Mean |Δ| {}, max |Δ| {}",
                fmt(t.metrics.mean_abs.unwrap_or(f64::NAN)),
                fmt(t.metrics.max_abs.unwrap_or(f64::NAN))
            );
        }
        let confidence = if p.exact && q.exact { 0.98 } else { 0.9 };
        out.push(Finding::new(Cause::OutputConvention, confidence, "output", last, evidence));
        return;
    }
    if *event == Event::Output {
        let evidence = match &fit {
            Some((_, words)) => format!("every model call matches, only latent_out differs; {words}"),
            None => format!(
                "every model call matches, only latent_out differs (relative RMS {}): the last update or the output conversion differs. A: {}. B: {}",
                fmt(ctx.diff.get("latent_out").map_or(f64::NAN, |t| t.rel_rms)),
                oa.map_or("-".into(), |o| o.describe()),
                ob.map_or("-".into(), |o| o.describe())
            ),
        };
        let confidence = if fit.is_some() { 0.9 } else { 0.5 };
        out.push(Finding::new(Cause::OutputConvention, confidence, "output", last, evidence));
    }
}

/// Two outputs without a trace: only the output convention and the shape of the difference.
fn plain_outputs(ctx: &Ctx<'_>, out: &mut Vec<Finding>) {
    let Some(t) = ctx.diff.get("latent_out") else { return };
    if t.bit_identical {
        return;
    }
    if let Some((_, words)) = convention_fit(ctx) {
        let mut sides = String::new();
        for (label, id) in [("A", &ctx.sa.output), ("B", &ctx.sb.output)] {
            if let Some(o) = id {
                sides += &format!(" {label}'s trace: latent_out is {}.", o.describe());
            }
        }
        let evidence = format!(
            "{words}.{sides} Mean |Δ| {}, max |Δ| {}. (Only one side or neither is a trace: the steps before cannot be compared)",
            fmt(t.metrics.mean_abs.unwrap_or(f64::NAN)),
            fmt(t.metrics.max_abs.unwrap_or(f64::NAN))
        );
        out.push(Finding::new(Cause::OutputConvention, 0.9, "output", None, evidence));
        return;
    }
    let pearson = t.metrics.pearson.unwrap_or(f64::NAN);
    let rel = t.rel_rms;
    let tail = "Outputs alone cannot say more: record traces (samplediff trace format) to find the stage";
    if rel <= 1e-3 {
        out.push(Finding::new(
            Cause::PrecisionDrift,
            0.4,
            "output",
            None,
            format!("outputs differ by relative RMS {} (pearson {}): small enough for accumulated float rounding. {tail}", fmt(rel), fmt(pearson)),
        ));
    } else if pearson < 0.5 {
        out.push(Finding::new(
            Cause::Noise,
            0.3,
            "output",
            None,
            format!(
                "outputs are nearly uncorrelated (pearson {}, relative RMS {}) and not related by a per-channel affine map: two different trajectories, most often other initial noise (seed, GPU vs CPU) or another schedule. {tail}",
                fmt(pearson),
                fmt(rel)
            ),
        ));
    } else {
        out.push(Finding::new(
            Cause::ModelOutput,
            0.3,
            "output",
            None,
            format!(
                "outputs are correlated (pearson {}) but differ by relative RMS {}, more than rounding and not by a latent-format affine map: the same start with a different model or guidance is typical. {tail}",
                fmt(pearson),
                fmt(rel)
            ),
        ));
    }
}

fn settings(ctx: &Ctx<'_>, out: &mut Vec<Finding>, claims: &Claims) {
    let left: Vec<&crate::diff::SettingDiff> = ctx.diff.settings.iter().filter(|s| !claims.contains(s.key.as_str())).collect();
    if left.is_empty() {
        return;
    }
    let show = |v: &Option<Value>| v.as_ref().map_or("(unset)".to_string(), Value::to_string);
    let list: Vec<String> = left.iter().map(|s| format!("{} {} vs {}", s.key, show(&s.a), show(&s.b))).collect();
    let numbers_equal = ctx.diff.aligned.iter().all(|t| t.bit_identical);
    let mut evidence = format!("settings differ: {}", list.join(", "));
    if let (Some(x), Some(y)) = (ctx.a.seed(), ctx.b.seed())
        && x != y
        && (x as u32) == (y as u32)
    {
        evidence += &format!(". Seeds {x} and {y} share their low 32 bits, all torch's CPU generator uses: the noise is the same");
    }
    let numeric = out.iter().any(|f| f.numeric_effect);
    let finding = if numbers_equal {
        Finding::new(Cause::Settings, 1.0, "settings", None, evidence + ". No numeric effect: every tensor is bit-identical").without_effect()
    } else if numeric {
        Finding::new(Cause::Settings, 0.3, "settings", None, evidence + ". Their own effect is not isolated: the runs part earlier for the reasons above").without_effect()
    } else {
        Finding::new(Cause::Settings, 0.6, "settings", None, evidence + ". No stage check isolates their effect")
    };
    out.push(finding);
}
