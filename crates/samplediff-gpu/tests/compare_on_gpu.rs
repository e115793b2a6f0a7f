//! `GpuMetrics::compare`, the whole report on the GPU, against the fused CPU kernel on the same
//! bytes: counts, extremes, percentiles, the decade histogram, the worst elements and the ULP
//! statistics exactly; sums (and what the floor, a fraction of RMS(b), scales) within 1e-5.
//!
//! The data is chosen to reach every way the host settles a rank: continuous errors, errors
//! that are exact in f32 and tie by the hundred thousand (bf16, identical tensors), errors at a
//! power of ten exactly and within f32 rounding of one, tiny inputs the GPU might flush, and
//! NaN/Inf pairs. Needs a wgpu adapter; lavapipe will do.

mod common;

use common::{Rng, encode, gpu, near, sums_near};
use samplediff_formats::{DType, RawTensor};
use samplediff_gpu::{GpuError, GpuMetrics};
use samplediff_metrics::{CompareOptions, Host, TensorReport, compare_tensors_host};

fn tensor(dtype: DType, shape: Vec<usize>, v: &[f32]) -> RawTensor {
    RawTensor::from_vec("x", dtype, shape, encode(dtype, v))
}

/// The GPU's report of `a` against `b` equals the CPU kernel's.
fn same_report(dtype: DType, a: &[f32], b: &[f32], opts: &CompareOptions, what: &str) -> TensorReport {
    same_report_on(gpu(), dtype, a, b, opts, what)
}

fn same_report_on(
    gpu: &GpuMetrics,
    dtype: DType,
    a: &[f32],
    b: &[f32],
    opts: &CompareOptions,
    what: &str,
) -> TensorReport {
    let (ta, tb) = (tensor(dtype, vec![a.len()], a), tensor(dtype, vec![b.len()], b));
    let cpu = compare_tensors_host(&ta, &tb, opts, &Host { threads: 2, progress: None }).unwrap();
    let g = gpu.compare(&ta, &tb, opts).unwrap_or_else(|e| panic!("{what}: {e}"));
    let what = format!("{what} ({dtype:?}, n={})", a.len());
    assert_eq!(g.numel, cpu.numel, "{what}: numel");
    assert_eq!(g.finite_pairs, cpu.finite_pairs, "{what}: finite");
    assert_eq!((g.nan_a, g.nan_b, g.inf_a, g.inf_b), (cpu.nan_a, cpu.nan_b, cpu.inf_a, cpu.inf_b), "{what}: NaN/Inf");
    assert_eq!(g.mismatched, cpu.mismatched, "{what}: mismatched");
    assert_eq!(g.max_abs, cpu.max_abs, "{what}: max |a-b|");
    assert_eq!(g.percentiles_abs, cpu.percentiles_abs, "{what}: percentiles");
    assert_eq!(g.histogram, cpu.histogram, "{what}: histogram");
    assert_eq!(g.worst, cpu.worst, "{what}: worst elements");
    assert_eq!((g.ulp_max, g.ulp_median), (cpu.ulp_max, cpu.ulp_median), "{what}: ULP");
    near(&format!("{what}: max_rel"), g.max_rel, cpu.max_rel, 1e-6);
    sums_near(&what, &g, &cpu);
    for (name, x, y) in [
        ("rel_floor", g.rel_floor, cpu.rel_floor),
        ("max_rel_floored", g.max_rel_floored, cpu.max_rel_floored),
        ("mean_rel_floored", g.mean_rel_floored, cpu.mean_rel_floored),
    ] {
        near(&format!("{what}: {name}"), x, y, 1e-5);
    }
    g
}

fn opts() -> CompareOptions {
    CompareOptions::default()
}

/// a around 3, b = a with relative noise, and NaN/Inf pairs sprinkled in.
fn noisy(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = Rng(seed);
    let mut a = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    for _ in 0..n {
        let x = (3.0 + 2.0 * r.unit()) as f32;
        let mut y = (x as f64 * (1.0 + 1e-3 * r.unit())) as f32;
        let mut x = x;
        match r.next() % 500 {
            0 => x = f32::NAN,
            1 => y = f32::INFINITY,
            2 => y = 0.0,
            3..=9 => y = x,
            _ => {}
        }
        a.push(x);
        b.push(y);
    }
    (a, b)
}

#[test]
fn continuous_errors_in_every_dtype() {
    for (i, n) in [1usize, 7, 1000, 16385, 3 * 16384 + 4097].into_iter().enumerate() {
        let (a, b) = noisy(n, i as u64);
        for dtype in [DType::F32, DType::F16, DType::BF16] {
            same_report(dtype, &a, &b, &opts(), "noisy");
        }
    }
}

/// Bindings of one tile: every pass reads the tensor through several, and what the order passes
/// gather (element indices, per-tile partials) is numbered across them.
#[test]
fn bindings_of_one_tile_give_the_same_report() {
    let small = GpuMetrics::new().unwrap().with_max_binding(16384 * 4);
    let (a, b) = noisy(5 * 16384 + 77, 3);
    for dtype in [DType::F32, DType::BF16] {
        same_report_on(&small, dtype, &a, &b, &opts(), "one-tile bindings");
    }
}

/// How many refine passes a report takes: the errors' ranks settle after one if the pairs in
/// their bins are few enough for the host to take whole, else a second narrows each to one key;
/// ULP distances below 2^11 take one.
#[test]
fn a_second_refine_pass_runs_only_for_crowded_bins() {
    let g = GpuMetrics::new().unwrap();
    let refines = |g: &GpuMetrics| g.last_phases().iter().filter(|(what, _)| *what == "order refine").count();
    let mut r = Rng(17);
    let a: Vec<f32> = (0..50_000).map(|_| (3.0 + 2.0 * r.unit()) as f32).collect();
    let b: Vec<f32> = a.iter().map(|&x| (x as f64 * (1.0 + 1e-4 * r.unit())) as f32).collect();
    same_report_on(&g, DType::F32, &a, &b, &opts(), "continuous");
    assert_eq!(refines(&g), 1, "continuous errors, ULP distances below 2^11");
    let same: Vec<f32> = (0..300_000).map(|_| (r.next() % 1000) as f32).collect();
    same_report_on(&g, DType::F32, &same, &same, &opts(), "identical");
    assert_eq!(refines(&g), 2, "300k errors of one key");
}

#[test]
fn exact_errors_tied_by_the_hundred_thousand() {
    // Integers apart by 0..3: every error exact in f32, a few keys shared by ~100k pairs each
    // (no pair is gathered: the exact pairs of a key all have its value).
    let mut r = Rng(5);
    let n = 400_000;
    let b: Vec<f32> = (0..n).map(|_| (r.next() % 1000) as f32).collect();
    let a: Vec<f32> = b.iter().map(|&y| y + (r.next() % 4) as f32).collect();
    same_report(DType::F32, &a, &b, &opts(), "integer errors");
    same_report(DType::BF16, &a, &b, &opts(), "integer errors");
    // Identical tensors: one key (0) for every pair, the worst elements the first indices.
    let g = same_report(DType::F32, &b, &b, &opts(), "identical");
    assert_eq!(g.worst.len(), 10);
    assert_eq!(g.worst[9].index, vec![9]);
}

#[test]
fn errors_at_and_within_rounding_of_a_power_of_ten() {
    // Errors of exactly 1 and 0.1f32 (exact: counted at the edge), and errors whose exact
    // value differs from 0.1f32 by less than its rounding (gathered and settled in f64). With
    // 400k pairs the bins around 0.1 are too crowded to gather whole: each rank is narrowed to
    // its key, and only the key's inexact pairs are gathered.
    for n in [50_000, 400_000] {
        powers_of_ten(n);
    }
}

fn powers_of_ten(n: usize) {
    let mut r = Rng(9);
    let (mut a, mut b) = (vec![], vec![]);
    for i in 0..n {
        let y = (1.0 + r.unit()) as f32 * 1e-6;
        let d = match i % 4 {
            0 => 1.0f32,
            1 => 0.1f32,
            2 => 0.1f32 + y,
            _ => (r.unit() * 10.0) as f32,
        };
        let base = if i % 4 == 2 { -y } else { 0.0 };
        b.push(base);
        a.push(base + d);
    }
    same_report(DType::F32, &a, &b, &opts(), "powers of ten");
}

#[test]
fn tiny_inputs_are_settled_on_the_host() {
    // Inputs below 2^-100, subnormals among them: a GPU may flush them (an H100 through Vulkan
    // does, in the main pass and the order passes); the host does not.
    let mut r = Rng(13);
    let (mut a, mut b) = noisy(40_000, 21);
    for i in (0..a.len()).step_by(37) {
        a[i] = (r.unit() * 1e-38) as f32;
        b[i] = f32::from_bits((r.next() % 0x0080_0000) as u32);
    }
    for i in (5..a.len()).step_by(101) {
        (a[i], b[i]) = (1e-31, 3e-31);
    }
    // f16 subnormals (f16 has no values below 2^-100; a hardware conversion might flush these).
    for i in (11..a.len()).step_by(211) {
        (a[i], b[i]) = (3e-6, -5e-7);
    }
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        same_report(dtype, &a, &b, &opts(), "tiny");
    }
}

/// Latents: per-channel and per-frame statistics from one main pass a run, as the CPU
/// kernel's (counts and maxima exactly, sums to 1e-5).
#[test]
fn latents_have_their_channels_and_frames() {
    for (shape, dtype) in [(vec![2, 4, 16, 9], DType::F32), (vec![1, 3, 5, 7, 11], DType::F16)] {
        let n = shape.iter().product();
        let (a, b) = noisy(n, 31);
        let (ta, tb) = (tensor(dtype, shape.clone(), &a), tensor(dtype, shape.clone(), &b));
        let cpu = compare_tensors_host(&ta, &tb, &opts(), &Host { threads: 2, progress: None }).unwrap();
        let g = gpu().compare(&ta, &tb, &opts()).unwrap();
        assert_eq!((g.per_channel.len(), g.per_frame.len()), (cpu.per_channel.len(), cpu.per_frame.len()));
        assert!(!g.per_channel.is_empty());
        for (x, y) in g.per_channel.iter().zip(&cpu.per_channel) {
            assert_eq!((x.channel, x.numel, x.mismatched, x.max_abs), (y.channel, y.numel, y.mismatched, y.max_abs));
            for (name, p, q) in
                [("mean_abs", x.mean_abs, y.mean_abs), ("rmse", x.rmse, y.rmse), ("std_b", x.std_b, y.std_b)]
            {
                near(&format!("{shape:?} channel {}: {name}", x.channel), Some(p), Some(q), 1e-5);
            }
            near(&format!("{shape:?} scale"), x.scale, y.scale, 1e-4);
        }
        for (x, y) in g.per_frame.iter().zip(&cpu.per_frame) {
            assert_eq!((x.frame, x.numel, x.mismatched, x.max_abs), (y.frame, y.numel, y.mismatched, y.max_abs));
            near(&format!("{shape:?} frame {}", x.frame), Some(x.rmse), Some(y.rmse), 1e-5);
        }
        assert_eq!((&g.percentiles_abs, &g.worst), (&cpu.percentiles_abs, &cpu.worst), "{shape:?}");
    }
}

#[test]
fn every_top_k_and_a_given_floor() {
    let (a, b) = noisy(20_000, 77);
    for top_k in [0, 1, 10, 25_000] {
        let o = CompareOptions { top_k, ..opts() };
        same_report(DType::F32, &a, &b, &o, &format!("top_k {top_k}"));
    }
    let o = CompareOptions { rel_floor: Some(0.5), atol: Some(1e-3), rtol: Some(1e-4), ..opts() };
    same_report(DType::F16, &a, &b, &o, "floor 0.5");
}

#[test]
fn what_the_gpu_leaves_to_the_cpu_is_said() {
    let (a, b) = noisy(3 * 3 * 3 * 5000, 1);
    let conv = (tensor(DType::F32, vec![5000, 3, 3, 3], &a), tensor(DType::F32, vec![5000, 3, 3, 3], &b));
    assert!(matches!(gpu().compare(&conv.0, &conv.1, &opts()), Err(GpuError::Unsupported(_))));
    let (a, b) = noisy(64, 1);
    let mixed = (tensor(DType::F32, vec![64], &a), tensor(DType::F16, vec![64], &b));
    assert!(matches!(gpu().compare(&mixed.0, &mixed.1, &opts()), Err(GpuError::Unsupported(_))));
    // All non-finite: a report with counts and no value metrics.
    let nan = vec![f32::NAN; 5];
    let r = gpu().compare(&tensor(DType::F32, vec![5], &nan), &tensor(DType::F32, vec![5], &nan), &opts()).unwrap();
    assert_eq!((r.finite_pairs, r.max_abs, r.percentiles_abs.is_none()), (Some(0), None, true));
}
