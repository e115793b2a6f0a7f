//! The GPU main pass against the fused CPU kernel (`samplediff_metrics::compare_tensors_host`)
//! on the same bytes: counts and max |a-b| exactly, sums within 1e-5 relative.
//!
//! Needs a Vulkan/Metal/DX12 adapter; lavapipe will do (`apt-get install mesa-vulkan-drivers
//! libvulkan1`, `XDG_RUNTIME_DIR` set, as tests/run.sh does).

mod common;

use common::{Rng, encode, gpu, near, sums_near};
use samplediff_formats::{DType, RawTensor};
use samplediff_gpu::{GpuMetrics, MainPass, TILE_WORDS, Tolerance};
use samplediff_metrics::{CompareOptions, Host, Moments, Status, TensorReport, compare_tensors_host};

const TOL: Tolerance = Tolerance { rtol: 1.3e-6, atol: 1e-5 };

/// A pair of `n` values: a around 3 (so the centred moments need the shift), b = a plus
/// relative noise, with zeros, equal pairs and every kind of NaN/Inf pairing sprinkled in.
fn values(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = Rng(seed);
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let x = 3.0 + 2.0 * r.unit();
        let mut y = x * (1.0 + 1e-4 * r.unit()) + 1e-6 * r.unit();
        let (mut x, u) = (x as f32, r.next() % 1000);
        match u {
            0 => x = f32::NAN,
            1 => y = f64::NAN,
            2 => (x, y) = (f32::NAN, f64::NAN),
            3 => x = f32::INFINITY,
            4 => (x, y) = (f32::NEG_INFINITY, f64::NEG_INFINITY),
            5 => (x, y) = (f32::INFINITY, f64::NEG_INFINITY),
            6 => (x, y) = (f32::NAN, f64::INFINITY),
            7..=9 => y = 0.0,
            10 => (x, y) = (0.0, 0.0),
            11..=30 => y = x as f64,
            _ => {}
        }
        a.push(x);
        b.push(y as f32);
    }
    (a, b)
}

fn cpu(dtype: DType, a: &[u8], b: &[u8], n: usize) -> TensorReport {
    cpu_with(dtype, a, b, n, TOL)
}

fn cpu_with(dtype: DType, a: &[u8], b: &[u8], n: usize, tol: Tolerance) -> TensorReport {
    let ta = RawTensor::from_vec("x", dtype, vec![n], a.to_vec());
    let tb = RawTensor::from_vec("x", dtype, vec![n], b.to_vec());
    let opts = CompareOptions { rtol: Some(tol.rtol), atol: Some(tol.atol), ..Default::default() };
    compare_tensors_host(&ta, &tb, &opts, &Host { threads: 2, progress: None }).unwrap()
}

/// The report fields the pass's statistics give (`Moments::fill`, as the CPU kernel's do).
fn report(m: &Moments) -> TensorReport {
    let mut r = TensorReport::unmatched(String::new(), Status::Compared);
    m.fill(&mut r, m.default_floor());
    r
}

/// Everything the report takes from the main pass, GPU against CPU.
fn check(pass: &MainPass, r: &TensorReport, what: &str) {
    let ours = report(&pass.moments);
    assert_eq!(Some(pass.moments.c.numel), r.numel, "{what}: numel");
    assert_eq!(ours.finite_pairs, r.finite_pairs, "{what}: finite pairs");
    assert_eq!((ours.nan_a, ours.nan_b), (r.nan_a, r.nan_b), "{what}: NaN");
    assert_eq!((ours.inf_a, ours.inf_b), (r.inf_a, r.inf_b), "{what}: Inf");
    assert_eq!(ours.nan_position_mismatch, r.nan_position_mismatch, "{what}: NaN positions");
    assert_eq!(ours.inf_mismatch, r.inf_mismatch, "{what}: Inf mismatch");
    assert_eq!(ours.mismatched, r.mismatched, "{what}: mismatched (isclose)");
    assert_eq!(ours.rel_zero_b, r.rel_zero_b, "{what}: b == 0");
    assert_eq!(pass.close_undecided, 0, "{what}: the GPU has f64, every pair is decided");
    assert_eq!(ours.max_abs, r.max_abs, "{what}: max |a-b| exactly");
    // The largest relative error comes from the pair the GPU ranked first in f32: exact unless
    // two ratios tie within f32 rounding.
    near(&format!("{what}: max_rel"), ours.max_rel, r.max_rel, 1e-6);
    sums_near(what, &ours, r);
}

/// Smallest non-zero |a-b| and the raw sums, straight from the decoded values in f64 (the
/// report does not show them).
fn reference_extras(dtype: DType, a: &[u8], b: &[u8]) -> (f64, f64, f64) {
    let decode = |bytes: &[u8]| -> Vec<f64> { bytes.chunks_exact(dtype.size()).map(|c| dtype.decode(c)).collect() };
    let (x, y) = (decode(a), decode(b));
    let (mut min_nz, mut sum_a, mut sum_ab) = (f64::INFINITY, 0.0, 0.0);
    for (&x, &y) in x.iter().zip(&y) {
        if x.is_finite() && y.is_finite() {
            if x != y {
                min_nz = min_nz.min((x - y).abs());
            }
            sum_a += x;
            sum_ab += x * y;
        }
    }
    (min_nz, sum_a, sum_ab)
}

fn compare(dtype: DType, n: usize, seed: u64) {
    let (a, b) = values(n, seed);
    let (ba, bb) = (encode(dtype, &a), encode(dtype, &b));
    let what = format!("{dtype:?} n={n}");
    let pass = gpu().main_pass(&ba, &bb, dtype, TOL).unwrap();
    check(&pass, &cpu(dtype, &ba, &bb, n), &what);
    let m = &pass.moments;
    let (min_nz, sum_a, sum_ab) = reference_extras(dtype, &ba, &bb);
    if m.c.finite > 0 {
        assert_eq!(m.min_nonzero_ad, min_nz, "{what}: min non-zero |a-b|");
        assert!((m.sum_a - sum_a).abs() <= 1e-5 * sum_a.abs(), "{what}: sum a {} vs {sum_a}", m.sum_a);
        assert!((m.sum_ab - sum_ab).abs() <= 1e-5 * sum_ab.abs(), "{what}: sum ab {} vs {sum_ab}", m.sum_ab);
    }
}

/// Sizes around the tile (16384 words) and the workgroup (256), none of them round.
const F32_SIZES: [usize; 7] = [1, 3, 255, 1000, 16383, 16385, 3 * 16384 + 4097];

#[test]
fn f32_matches_the_cpu_kernel() {
    for (i, &n) in F32_SIZES.iter().enumerate() {
        compare(DType::F32, n, i as u64);
    }
}

#[test]
fn f16_and_bf16_match_the_cpu_kernel_with_odd_sizes() {
    for dtype in [DType::F16, DType::BF16] {
        for (i, n) in [1usize, 5, 511, 32767, 32769, 2 * 32768 + 1001].into_iter().enumerate() {
            compare(dtype, n, 100 + i as u64);
        }
    }
}

/// Pairs whose |a-b| lies within a few f32 steps of rtol|b|: the isclose count still equals
/// the CPU's f64 decision. rtol = 0.3 (not a binary fraction) makes the f32 rounding of the
/// tolerance as large as the spacing of the differences, so an f32 test alone gets some of
/// these pairs wrong (asserted below: the test is not vacuous).
#[test]
fn pairs_at_the_tolerance_boundary_are_decided_as_in_f64() {
    let tol = Tolerance { rtol: 0.3, atol: 0.0 };
    let mut r = Rng(7);
    let (mut a, mut b) = (vec![], vec![]);
    for _ in 0..20_000 {
        let y = (1.5 + r.unit() * 0.5) as f32 * if r.next().is_multiple_of(2) { 1.0 } else { -100.0 };
        // The f32 nearest y (1 + rtol), then up to 3 steps either way (|a - b| exact in f32).
        let mut x = (y as f64 * (1.0 + tol.rtol)) as f32;
        let steps = r.next() % 7;
        for _ in 0..steps {
            x = f32::from_bits(x.to_bits() + 1);
        }
        for _ in 0..3 {
            x = f32::from_bits(x.to_bits() - 1);
        }
        a.push(x);
        b.push(y);
    }
    let f32_wrong = a
        .iter()
        .zip(&b)
        .filter(|&(&x, &y)| {
            let f64_close = (x as f64 - y as f64).abs() <= tol.rtol * (y as f64).abs();
            let f32_close = (x - y).abs() <= (tol.rtol as f32) * y.abs();
            f64_close != f32_close
        })
        .count();
    assert!(f32_wrong > 100, "pairs an f32 test decides wrongly: {f32_wrong}");
    let (ba, bb) = (encode(DType::F32, &a), encode(DType::F32, &b));
    let report = cpu_with(DType::F32, &ba, &bb, a.len(), tol);
    let m = gpu().main_pass(&ba, &bb, DType::F32, tol).unwrap();
    check(&m, &report, "boundary");
}

/// Values around 1000 with spread 1: Pearson's centred moments would lose every digit to
/// cancellation if the GPU summed a, a^2 in f32; the per-tile shift keeps them to 1e-5.
#[test]
fn large_offsets_keep_the_centred_moments_accurate() {
    let mut r = Rng(11);
    let n = 70_001;
    let a: Vec<f32> = (0..n).map(|_| (1000.0 + r.unit()) as f32).collect();
    let b: Vec<f32> = a.iter().map(|&x| x + (0.1 * r.unit()) as f32).collect();
    let (ba, bb) = (encode(DType::F32, &a), encode(DType::F32, &b));
    let report = cpu(DType::F32, &ba, &bb, n);
    let pearson = report.pearson.unwrap();
    assert!(pearson > 0.9 && pearson < 0.999, "a correlation the cancellation would wreck: {pearson}");
    check(&gpu().main_pass(&ba, &bb, DType::F32, TOL).unwrap(), &report, "offset 1000");
}

#[test]
fn a_tile_opening_on_a_half_finite_pair_keeps_its_sums() {
    // The tile's first pair has a finite side far from the one finite pair (a NaN partner): a
    // shift taken from it alone made the raw sums cancel to rounding noise (sum b^2 < 0, RMS(b)
    // NaN where the CPU says 0).
    for (a, b) in
        [([999.4f32, 999.4, f32::NAN], [f32::NAN, 0.0, 3.0]), ([f32::NAN, 999.4, 1.0], [999.4, 0.0, f32::NAN])]
    {
        let (ba, bb) = (encode(DType::F32, &a), encode(DType::F32, &b));
        let r = cpu(DType::F32, &ba, &bb, 3);
        check(&gpu().main_pass(&ba, &bb, DType::F32, TOL).unwrap(), &r, &format!("{a:?} / {b:?}"));
    }
}

/// The same bytes through one upload, through resident buffers, through segments, and through
/// bindings as small as one tile give bit-identical results: tiles, not the split, define them.
#[test]
fn the_result_does_not_depend_on_how_the_input_is_split() {
    let g = gpu();
    let n = 5 * 16384 + 123;
    let (a, b) = values(n, 42);
    let (ba, bb) = (encode(DType::F32, &a), encode(DType::F32, &b));
    let host = g.main_pass(&ba, &bb, DType::F32, TOL).unwrap();
    let upload = |bytes: &[u8]| copy_to(g, bytes);
    let (ga, gb) = (upload(&ba), upload(&bb));
    let resident = g.main_pass_resident(&ga, &gb, n as u64, DType::F32, TOL).unwrap();
    let split = 2 * TILE_WORDS as usize * 4;
    let (ga1, gb1, ga2, gb2) = (upload(&ba[..split]), upload(&bb[..split]), upload(&ba[split..]), upload(&bb[split..]));
    let segments = [
        samplediff_gpu::Resident { a: &ga1, b: &gb1, numel: 2 * TILE_WORDS },
        samplediff_gpu::Resident { a: &ga2, b: &gb2, numel: n as u64 - 2 * TILE_WORDS },
    ];
    let (segmented, _) = g.main_pass_segments(&segments, DType::F32, TOL, false).unwrap();
    let small = GpuMetrics::new().unwrap().with_max_binding(TILE_WORDS * 4);
    let (sa, sb) = (copy_to(&small, &ba), copy_to(&small, &bb));
    let tiny_bindings = small.main_pass_resident(&sa, &sb, n as u64, DType::F32, TOL).unwrap();
    let bits = |p: &MainPass| {
        let m = &p.moments;
        format!(
            "{:?}",
            (m.c, p.close_undecided, m.sum_ad.to_bits(), m.sum_ab.to_bits(), m.cab.to_bits(), m.max_rel.to_bits())
        )
    };
    for (what, m) in [("resident", &resident), ("segments", &segmented), ("one-tile bindings", &tiny_bindings)] {
        assert_eq!(bits(m), bits(&host), "{what}");
    }
    check(&host, &cpu(DType::F32, &ba, &bb, n), "split");
}

/// Finite pairs with an input below 2^-100 (subnormals among them) are left out of the GPU's
/// counts and sums and listed by index (a GPU that flushes them, as an H100 does, would count
/// them wrong), in whole tiles and the last one, through one-tile bindings; `main_pass`
/// measures them on the host and equals the CPU kernel. f16 subnormals are no such pairs: the
/// kernel decodes them exactly.
#[test]
fn tiny_inputs_are_left_to_the_host() {
    let n = 3 * 16384 + 999;
    let (mut a, mut b) = values(n, 8);
    let mut r = Rng(3);
    for i in (0..n).step_by(53) {
        match r.next() % 4 {
            0 => a[i] = f32::from_bits((r.next() % 0x0080_0000) as u32 | 0x10000),
            1 => b[i] = -1e-35,
            2 => (a[i], b[i]) = (1e-31, 0.0),
            _ => (a[i], b[i]) = (3e-6, -5e-7),
        }
    }
    let small = GpuMetrics::new().unwrap().with_max_binding(TILE_WORDS * 4);
    for dtype in [DType::F32, DType::BF16, DType::F16] {
        let (ba, bb) = (encode(dtype, &a), encode(dtype, &b));
        let size = dtype.size();
        let tiny = |v: f64| v != 0.0 && v.abs() < 2f64.powi(-100);
        let expect: Vec<u64> = (0..n)
            .filter(|&i| {
                let (x, y) = (dtype.decode(&ba[i * size..]), dtype.decode(&bb[i * size..]));
                x.is_finite() && y.is_finite() && (tiny(x) || tiny(y))
            })
            .map(|i| i as u64)
            .collect();
        assert_eq!(expect.is_empty(), dtype == DType::F16, "{dtype:?}: the data has tiny pairs");
        let reference = cpu(dtype, &ba, &bb, n);
        let left =
            small.main_pass_resident(&copy_to(&small, &ba), &copy_to(&small, &bb), n as u64, dtype, TOL).unwrap();
        assert_eq!(left.specials, expect, "{dtype:?}: the pairs left to the host");
        assert_eq!(left.moments.c.finite + expect.len() as u64, reference.finite_pairs.unwrap(), "{dtype:?}");
        let host = gpu().main_pass(&ba, &bb, dtype, TOL).unwrap();
        assert!(host.specials.is_empty());
        check(&host, &reference, &format!("{dtype:?} tiny"));
    }
}

/// A buffer holding `bytes`, padded with zeros to whole words.
fn copy_to(g: &GpuMetrics, bytes: &[u8]) -> wgpu::Buffer {
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().next_multiple_of(4), 0);
    let buf = g.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: padded.len() as u64,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    g.queue().write_buffer(&buf, 0, &padded);
    buf
}

#[test]
fn a_timed_pass_reports_gpu_time_where_the_device_can() {
    let g = gpu();
    let (a, b) = values(100_000, 3);
    let (ga, gb) = (copy_to(g, &encode(DType::F32, &a)), copy_to(g, &encode(DType::F32, &b)));
    let (m, t) = g.main_pass_resident_timed(&ga, &gb, 100_000, DType::F32, TOL).unwrap();
    assert_eq!(m.moments.c.numel, 100_000);
    assert_eq!(t.is_some(), g.has_timestamps());
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let g = gpu();
    let msg = |r: samplediff_gpu::Result<MainPass>| r.unwrap_err().to_string();
    assert!(msg(g.main_pass(&[0; 8], &[0; 4], DType::F32, TOL)).contains("differ in size"));
    assert!(msg(g.main_pass(&[0; 6], &[0; 6], DType::F32, TOL)).contains("whole number"));
    assert!(msg(g.main_pass(&[0; 8], &[0; 8], DType::F64, TOL)).contains("F64"));
    let bad = Tolerance { rtol: f64::NAN, atol: 0.0 };
    assert!(msg(g.main_pass(&[0; 8], &[0; 8], DType::F32, bad)).contains("tolerances"));
    let short = copy_to(g, &[0; 8]);
    assert!(msg(g.main_pass_resident(&short, &short, 3, DType::F32, TOL)).contains("bytes, 12 needed"));
    let empty = g.main_pass(&[], &[], DType::BF16, TOL).unwrap().moments;
    let r = report(&empty);
    assert_eq!((empty.c.numel, r.max_abs, r.mismatched), (0, None, Some(0)));
}
