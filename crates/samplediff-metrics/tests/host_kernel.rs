//! The fused host kernel against the device path (burn's CPU backend, the reference), on every
//! dtype, on shapes whose channels, frames, blocks and chunks do not line up, with non-finite
//! values, ties and zeros; and its report is byte-identical for any thread count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::tensor::Device;
use half::{bf16, f16};
use samplediff_formats::{DType, RawTensor};
use samplediff_metrics::fused::pass_bytes;
use samplediff_metrics::{CompareOptions, Host, TensorReport, compare_tensors, compare_tensors_host};

mod common;

/// A deterministic stream of roughly normal numbers.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        (0..4).map(|_| self.uniform()).sum::<f64>() - 2.0
    }
}

fn encode(name: &str, dtype: DType, shape: &[usize], v: &[f64]) -> RawTensor {
    let data: Vec<u8> = match dtype {
        DType::F64 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        DType::F32 => v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect(),
        DType::BF16 => v.iter().flat_map(|&x| bf16::from_f64(x).to_le_bytes()).collect(),
        DType::F16 => v.iter().flat_map(|&x| f16::from_f64(x).to_le_bytes()).collect(),
        DType::I32 => v.iter().flat_map(|&x| ((x * 100.0) as i32).to_le_bytes()).collect(),
        // fp8 codes straight from the value's bits: every code, NaN included, occurs.
        DType::F8_E4M3 => v.iter().map(|&x| (x.to_bits() >> 20) as u8).collect(),
        other => panic!("no encoder for {other:?}"),
    };
    RawTensor::from_vec(name, dtype, shape.to_vec(), data)
}

/// b: a field; a: b plus an error, with NaN/Inf sprinkled and zeros in b.
fn pair(seed: u64, shape: &[usize], da: DType, db: DType) -> (RawTensor, RawTensor) {
    let n: usize = shape.iter().product();
    let mut r = Rng(seed);
    let b: Vec<f64> = (0..n).map(|i| if i % 97 == 5 { 0.0 } else { r.normal() * 2.0 + 0.3 }).collect();
    let a: Vec<f64> = b
        .iter()
        .enumerate()
        .map(|(i, &x)| match i % 1013 {
            7 => f64::NAN,
            11 => f64::INFINITY,
            _ => x + r.normal() * 1e-3 * (1.0 + (i % 7) as f64),
        })
        .collect();
    (encode("t", da, shape, &a), encode("t", db, shape, &b))
}

fn host(threads: usize) -> Host {
    Host { threads, progress: None }
}

/// Host (on 1 and 3 threads: byte-identical) against the device path.
fn check(a: &RawTensor, b: &RawTensor, opts: &CompareOptions) -> TensorReport {
    let one = compare_tensors_host(a, b, opts, &host(1)).unwrap();
    let three = compare_tensors_host(a, b, opts, &host(3)).unwrap();
    assert_eq!(serde_json::to_string(&one).unwrap(), serde_json::to_string(&three).unwrap());
    common::assert_equivalent(&one, &compare_tensors(a, b, &Device::flex(), opts).unwrap());
    one
}

#[test]
fn every_dtype_and_slicing_agrees_with_the_device_path() {
    let opts = CompareOptions::default();
    let cases: &[(&[usize], DType, DType)] = &[
        (&[300_001], DType::F32, DType::F32),          // five chunks, a ragged end
        (&[1, 16, 3, 37, 29], DType::F32, DType::F32), // runs of 1073: per channel and frame
        (&[8, 5, 7, 3], DType::F32, DType::F32),       // runs of 21
        (&[300, 700], DType::BF16, DType::BF16),       // ties everywhere; ULP in bf16
        (&[2, 4, 50, 60], DType::F16, DType::F32),     // mixed dtypes: no ULP
        (&[5000], DType::F8_E4M3, DType::F8_E4M3),
        (&[1000], DType::I32, DType::I32),
        (&[70_000], DType::F64, DType::F64),
        (&[], DType::F32, DType::F32), // a 0-d scalar
    ];
    for (i, &(shape, da, db)) in cases.iter().enumerate() {
        let (a, b) = pair(i as u64 + 1, shape, da, db);
        let r = check(&a, &b, &opts);
        assert!(r.finite_pairs.unwrap() > 0, "{shape:?}");
    }
}

#[test]
fn options_are_honoured() {
    let (a, b) = pair(42, &[1, 4, 2, 30, 30], DType::F32, DType::F32);
    let opts = CompareOptions { atol: Some(1e-3), rtol: Some(0.0), rel_floor: Some(0.25), top_k: 37 };
    let r = check(&a, &b, &opts);
    assert_eq!((r.rel_floor, r.worst.len()), (Some(0.25), 37));
    let none = CompareOptions { top_k: 0, ..opts };
    assert!(check(&a, &b, &none).worst.is_empty());
}

#[test]
fn order_statistics_are_exact_among_massive_ties() {
    // Three distinct errors (0, 2^-10, 3 * 2^-10) over 200k elements: every percentile lands in
    // a bucket of identical values.
    let n = 200_000;
    let b: Vec<f32> = (0..n).map(|i| (i % 1000) as f32).collect();
    let a: Vec<f32> =
        b.iter().enumerate().map(|(i, &x)| x + [0.0, 1.0 / 1024.0, 3.0 / 1024.0][i % 3 % 2 + i % 5 / 4]).collect();
    let (a, b) = (RawTensor::from_f32("t", vec![n], &a), RawTensor::from_f32("t", vec![n], &b));
    let r = check(&a, &b, &CompareOptions::default());
    assert!(r.histogram.unwrap().zero > 0);
}

#[test]
fn report_is_byte_identical_across_thread_counts() {
    let (a, b) = pair(7, &[1, 16, 4, 90, 80], DType::F32, DType::F32);
    let opts = CompareOptions::default();
    let json = |t| serde_json::to_string(&compare_tensors_host(&a, &b, &opts, &host(t)).unwrap()).unwrap();
    let one = json(1);
    for t in [2, 5, 16] {
        assert_eq!(json(t), one, "{t} threads");
    }
}

#[test]
fn the_avx2_and_avx512_builds_give_the_baseline_builds_bits() {
    let opts = CompareOptions::default();
    for (shape, da, db) in [
        (&[1, 4, 3, 200, 150][..], DType::F32, DType::F32),
        (&[2, 16, 50, 70][..], DType::BF16, DType::BF16),
        (&[300_001][..], DType::F16, DType::F32),
    ] {
        let (a, b) = pair(21, shape, da, db);
        let json = |simd| {
            samplediff_metrics::fused::limit_simd(simd);
            serde_json::to_string(&compare_tensors_host(&a, &b, &opts, &host(2)).unwrap()).unwrap()
        };
        let baseline = json(0);
        assert_eq!(json(1), baseline, "AVX2, {da:?}/{db:?}");
        assert_eq!(json(2), baseline, "AVX-512, {da:?}/{db:?}");
        samplediff_metrics::fused::limit_simd(u8::MAX);
    }
}

/// Bytes the kernel reported reading for one comparison.
fn bytes_read(a: &RawTensor, b: &RawTensor, opts: &CompareOptions) -> u64 {
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let h = Host { threads: 2, progress: Some(Arc::new(move |n| _ = s.fetch_add(n, Ordering::Relaxed))) };
    compare_tensors_host(a, b, opts, &h).unwrap();
    seen.load(Ordering::Relaxed)
}

#[test]
fn ordinary_data_is_read_once() {
    // The sample predicts the percentile and ULP-median buckets and the default floor, so the
    // main pass gathers what a second pass would have looked for (and the result is the same).
    for (da, db) in [(DType::F32, DType::F32), (DType::BF16, DType::BF16), (DType::F16, DType::F32)] {
        let (a, b) = pair(11, &[1, 4, 3, 200, 150], da, db);
        check(&a, &b, &CompareOptions::default());
        assert_eq!(bytes_read(&a, &b, &CompareOptions::default()), pass_bytes(&a, &b), "{da:?}/{db:?}");
    }
    // A floor far from the sample's prediction: still exact, through a second pass.
    let (a, b) = pair(12, &[400_000], DType::F32, DType::F32);
    let opts = CompareOptions { rel_floor: Some(1e-9), ..Default::default() };
    check(&a, &b, &opts);
}

#[test]
fn a_sample_unlike_the_rest_costs_passes_not_exactness() {
    // The sample reads 64 evenly spaced runs of 1024 elements: make every ULP distance and
    // error there small and everywhere else large, so that every window misses its rank (the
    // ULP median and the percentiles then need their histograms counted in passes of their
    // own) and nearly every error lies beyond the decade edges the sample chose.
    let (n, runs, block) = (1usize << 20, 64, 1024);
    let step = (n - block) / (runs - 1);
    let sampled = |i: usize| (0..runs).any(|r| (r * step..r * step + block).contains(&i));
    let b: Vec<f32> = (0..n).map(|i| 1.0 + (i % 4099) as f32 * 1e-4).collect();
    let a: Vec<f32> = b
        .iter()
        .enumerate()
        .map(|(i, &x)| f32::from_bits(x.to_bits() + if sampled(i) { 1 } else { 1000 + (i % 7) as u32 }))
        .collect();
    let (a, b) = (RawTensor::from_f32("t", vec![n], &a), RawTensor::from_f32("t", vec![n], &b));
    let r = check(&a, &b, &CompareOptions::default());
    assert_eq!(r.ulp_median, Some(1003.0));
    assert!(bytes_read(&a, &b, &CompareOptions::default()) > pass_bytes(&a, &b), "a second pass ran");
}

#[test]
fn progress_counts_every_byte_of_every_pass() {
    let (a, b) = pair(9, &[250_000], DType::BF16, DType::F32);
    let seen = Arc::new(AtomicU64::new(0));
    let s = seen.clone();
    let h = Host { threads: 2, progress: Some(Arc::new(move |n| _ = s.fetch_add(n, Ordering::Relaxed))) };
    compare_tensors_host(&a, &b, &CompareOptions::default(), &h).unwrap();
    let (seen, per_pass) = (seen.load(Ordering::Relaxed), pass_bytes(&a, &b));
    assert!(seen >= per_pass && seen % per_pass == 0, "{seen} bytes reported, {per_pass} per pass");
}
