//! Every entry of `tests/fixtures/comfyui/schedules.json` (real ComfyUI `KSampler(...).sigmas`):
//! bit-exact, except exponential / kl_optimal, which may differ by 1 ulp because torch takes their
//! float32 exp/tan from Intel MKL (see `schedule::torch_f32`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use samplediff_chain::model_sampling::ModelSampling;
use samplediff_chain::schedule::{Scheduler, ksampler_sigmas};

#[derive(serde::Deserialize)]
struct Entry {
    scheduler: String,
    shift: f64,
    multiplier: f64,
    steps: usize,
    denoise: f64,
    sampler: String,
    sigmas_f32_hex: Vec<String>,
}

/// Parses Python's `float.hex()` output (`0x1.8p-3`, `0x0.0p+0`, `nan`, `inf`) exactly.
fn parse_hex_float(s: &str) -> f32 {
    match s {
        "nan" | "-nan" => return f32::NAN,
        "inf" => return f32::INFINITY,
        "-inf" => return f32::NEG_INFINITY,
        _ => {}
    }
    let (neg, s) = s.strip_prefix('-').map_or((false, s), |r| (true, r));
    let s = s.strip_prefix("0x").expect("hex float");
    let (mantissa, exp) = s.split_once('p').expect("exponent");
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut value = u64::from_str_radix(int, 16).unwrap() as f64;
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        value += c.to_digit(16).unwrap() as f64 * scale;
        scale /= 16.0;
    }
    let v = value * 2f64.powi(exp.parse::<i32>().unwrap());
    let v = v as f32;
    assert_eq!(v as f64, value * 2f64.powi(exp.parse::<i32>().unwrap()), "{s} is not a float32");
    if neg { -v } else { v }
}

/// Distance in float32 steps between two finite values of the same sign (NaN == NaN).
fn ulps(a: f32, b: f32) -> u32 {
    if a.is_nan() && b.is_nan() {
        return 0;
    }
    if a.is_nan() || b.is_nan() {
        return u32::MAX;
    }
    let key = |x: f32| {
        let bits = x.to_bits() as i64;
        if bits < 0x8000_0000 { bits } else { 0x8000_0000 - bits }
    };
    (key(a) - key(b)).unsigned_abs() as u32
}

#[test]
fn every_golden_schedule_matches() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/comfyui/schedules.json");
    let entries: Vec<Entry> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(entries.len(), 540);

    let mut tables: BTreeMap<(u64, u64), ModelSampling> = BTreeMap::new();
    let mut exact: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for e in &entries {
        let ms = tables
            .entry((e.shift.to_bits(), e.multiplier.to_bits()))
            .or_insert_with(|| ModelSampling::discrete_flow(e.shift, e.multiplier));
        let scheduler: Scheduler = e.scheduler.parse().unwrap();
        let got = ksampler_sigmas(ms, scheduler, e.steps, e.denoise, &e.sampler).unwrap();
        let want: Vec<f32> = e.sigmas_f32_hex.iter().map(|h| parse_hex_float(h)).collect();
        let allowed = match scheduler {
            Scheduler::Exponential | Scheduler::KlOptimal => 1,
            _ => 0,
        };
        let worst = if got.len() == want.len() {
            got.iter().zip(&want).map(|(&a, &b)| ulps(a, b)).max().unwrap_or(0)
        } else {
            u32::MAX
        };
        let counts = exact.entry(e.scheduler.clone()).or_default();
        counts.1 += 1;
        if worst == 0 {
            counts.0 += 1;
        }
        if worst > allowed {
            failures.push(format!(
                "{} shift {} mult {} steps {} denoise {} {}: worst {} ulp\n  got  {:?}\n  want {:?}",
                e.scheduler, e.shift, e.multiplier, e.steps, e.denoise, e.sampler, worst, got, want
            ));
        }
    }
    for (name, (ok, total)) in &exact {
        eprintln!("{name:17} {ok}/{total} bit-exact");
    }
    assert!(failures.is_empty(), "{} of 540 schedules out of tolerance:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn hex_parser_is_exact() {
    assert_eq!(parse_hex_float("0x1.0000000000000p+0"), 1.0);
    assert_eq!(parse_hex_float("0x0.0p+0"), 0.0);
    assert_eq!(parse_hex_float("0x1.8p-1"), 0.75);
    assert!(parse_hex_float("nan").is_nan());
    assert_eq!(ulps(1.0, f32::from_bits(1.0f32.to_bits() + 1)), 1);
}
