//! Valid but unusual tensors are compared correctly and reported, never panic, and never
//! poison the other metrics; the JSON is byte-identical across runs.

use burn::tensor::Device;
use samplediff_formats::{DType, RawTensor, TensorFile};
use samplediff_metrics::{CompareOptions, Engine, Status, Verdict, compare_files, compare_tensors};

mod common;

/// The host kernel's report, after checking that burn's CPU backend gives the same one.
fn cmp(a: &RawTensor, b: &RawTensor) -> samplediff_metrics::TensorReport {
    let opts = CompareOptions::default();
    let host = Engine::host().compare(a, b, &opts).unwrap();
    common::assert_equivalent(&host, &compare_tensors(a, b, &Device::flex(), &opts).unwrap());
    host
}

fn f32t(shape: Vec<usize>, v: &[f32]) -> RawTensor {
    RawTensor::from_f32("x", shape, v)
}

#[test]
fn nan_is_counted_and_never_turns_max_abs_into_nan() {
    let a = f32t(vec![5], &[1.0, f32::NAN, 3.0, f32::NAN, 5.0]);
    let b = f32t(vec![5], &[1.5, 2.0, 3.0, f32::NAN, 5.0]);
    let r = cmp(&a, &b);
    assert_eq!(r.max_abs, Some(0.5));
    assert_eq!((r.nan_a, r.nan_b, r.nan_position_mismatch), (Some(2), Some(1), Some(1)));
    assert_eq!(r.finite_pairs, Some(3));
    // element 0 (0.5 off) and element 1 (NaN vs 2) mismatch; NaN vs NaN agrees.
    assert_eq!(r.mismatched, Some(2));
    assert!(!r.values_match);
    assert!(r.hints.iter().any(|h| h.kind == "nan_mismatch"));
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"max_abs\":0.5"), "{json}");
}

#[test]
fn infinities_equal_agree_unequal_mismatch() {
    let a = f32t(vec![3], &[f32::INFINITY, f32::NEG_INFINITY, 1.0]);
    let b = f32t(vec![3], &[f32::INFINITY, 7.0, 1.0]);
    let r = cmp(&a, &b);
    assert_eq!((r.inf_a, r.inf_b, r.inf_mismatch, r.mismatched), (Some(2), Some(1), Some(1), Some(1)));
    assert_eq!(r.max_abs, Some(0.0));
    assert_eq!(r.finite_pairs, Some(1));
}

#[test]
fn an_error_that_overflows_to_infinity_is_reported_in_the_top_decade() {
    // Finite f64 inputs near the largest float with opposite signs: |a-b| overflows. Once this
    // hung: the histogram looked for the decade of infinity by counting up from i32::MAX.
    let f64t = |v: &[f64]| {
        let data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        RawTensor::from_vec("x", DType::F64, vec![v.len()], data)
    };
    let r = cmp(&f64t(&[1.7e308, 1.0, 2.0]), &f64t(&[-1.7e308, 1.0, 2.5]));
    assert_eq!((r.finite_pairs, r.max_abs), (Some(3), Some(f64::INFINITY)));
    let h = r.histogram.as_ref().expect("a histogram");
    let top = h.bins.last().expect("bins");
    assert_eq!((top.lo, top.count, h.zero), (1e308, 1, 1));
    assert_eq!(h.bins.iter().map(|b| b.count).sum::<u64>(), 2);
    // A tensor large enough for the sampled plan (and its decade edges) takes the same path.
    let n = 300_000;
    let a: Vec<f64> = (0..n).map(|i| if i % 1000 == 0 { 1.7e308 } else { 1.0 + i as f64 * 1e-9 }).collect();
    let b: Vec<f64> = (0..n).map(|i| if i % 1000 == 0 { -1.7e308 } else { 1.0 }).collect();
    let r = cmp(&f64t(&a), &f64t(&b));
    let h = r.histogram.as_ref().expect("a histogram");
    assert_eq!((h.bins.last().map(|b| (b.lo, b.count)), h.zero), (Some((1e308, 300)), 0));
    assert_eq!(h.bins.iter().map(|b| b.count).sum::<u64>() + h.zero, n as u64);
}

#[test]
fn all_nan_has_counts_but_no_value_metrics() {
    let a = f32t(vec![2], &[f32::NAN, f32::NAN]);
    let r = cmp(&a, &a);
    assert_eq!(r.status, Status::Compared);
    assert!(r.values_match, "NaN at the same positions agrees");
    assert_eq!((r.finite_pairs, r.max_abs, r.percentiles_abs.is_none()), (Some(0), None, true));
}

#[test]
fn identical_tensors_match_with_zero_error_and_null_snr() {
    let a = f32t(vec![1, 2, 2, 2], &[1.0, -2.0, 3.0, 0.0, 5.0, 6.0, 7.0, 8.0]);
    let r = cmp(&a, &a);
    assert!(r.values_match);
    assert_eq!((r.max_abs, r.mean_abs, r.rmse, r.snr_db), (Some(0.0), Some(0.0), Some(0.0), None));
    assert_eq!((r.ulp_max, r.ulp_median), (Some(0), Some(0.0)));
    assert_eq!(r.cosine, Some(1.0));
    assert_eq!(r.histogram.as_ref().unwrap().zero, 8);
    assert!(r.histogram.as_ref().unwrap().bins.is_empty());
    assert!(r.hints.is_empty());
    // per-channel on a 4-D tensor, with a perfect identity fit
    assert_eq!(r.per_channel.len(), 2);
    assert!((r.per_channel[0].scale.unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn empty_and_zero_size_tensors() {
    for shape in [vec![0], vec![2, 0, 3], vec![1, 4, 0, 5]] {
        let a = f32t(shape.clone(), &[]);
        let r = cmp(&a, &a);
        assert_eq!(r.status, Status::Compared);
        assert!(r.values_match);
        assert_eq!((r.numel, r.mismatched, r.max_abs), (Some(0), Some(0), None));
        assert!(r.per_channel.is_empty() && r.worst.is_empty());
    }
}

#[test]
fn zero_dim_scalars() {
    let a = f32t(vec![], &[2.0]);
    let b = f32t(vec![], &[2.5]);
    let r = cmp(&a, &b);
    assert_eq!((r.numel, r.max_abs, r.max_rel), (Some(1), Some(0.5), Some(0.2)));
    assert_eq!(r.worst[0].index, Vec::<usize>::new());
    assert_eq!(r.pearson, None, "a single element has no correlation");
    assert_eq!(r.percentiles_abs.as_ref().unwrap().p999, 0.5);
}

#[test]
fn zeros_in_b_are_left_out_of_rel_and_counted() {
    let a = f32t(vec![3], &[1.0, 1e-3, 2.0]);
    let b = f32t(vec![3], &[0.0, 0.0, 1.0]);
    let r = cmp(&a, &b);
    assert_eq!((r.rel_zero_b, r.max_rel, r.mean_rel), (Some(2), Some(1.0), Some(1.0)));
    // floored: floor = 1e-3 * RMS(b) = 1e-3/sqrt(3); |a-b| / max(|b|, floor)
    let floor = 1e-3 / 3f64.sqrt();
    assert!((r.rel_floor.unwrap() - floor).abs() < 1e-18);
    assert!((r.max_rel_floored.unwrap() - 1.0 / floor).abs() < 1e-6);
    let all_zero_b = cmp(&f32t(vec![2], &[1.0, 2.0]), &f32t(vec![2], &[0.0, 0.0]));
    assert_eq!((all_zero_b.max_rel, all_zero_b.max_rel_floored, all_zero_b.cosine), (None, None, None));
}

#[test]
fn mismatched_shapes_and_dtypes() {
    let a = f32t(vec![2, 3], &[0.0; 6]);
    let b = f32t(vec![3, 2], &[0.0; 6]);
    let r = cmp(&a, &b);
    assert_eq!(r.status, Status::ShapeMismatch);
    assert!(r.message.as_ref().unwrap().contains("[2, 3] vs [3, 2]"));
    assert_eq!(r.max_abs, None);

    // I32 against F32: compared in f64, exact ints, loosest tolerance (float32's).
    let ints =
        RawTensor::from_vec("x", DType::I32, vec![3], [1i32, -2, 3].iter().flat_map(|v| v.to_le_bytes()).collect());
    let floats = f32t(vec![3], &[1.0, -2.0, 3.000001]);
    let r = cmp(&ints, &floats);
    assert!(!r.dtypes_match);
    assert!(r.values_match, "within rtol 1.3e-6: {r:?}");
    assert_eq!((r.rtol, r.atol), (Some(1.3e-6), Some(1e-5)));
    assert_eq!(r.ulp_max, None);
}

#[test]
fn malformed_layout_is_an_error() {
    let bad = RawTensor::from_vec("x", DType::F32, vec![4], vec![0; 7]);
    let e = compare_tensors(&bad, &bad, &Device::flex(), &CompareOptions::default()).unwrap_err();
    assert_eq!(Engine::host().compare(&bad, &bad, &CompareOptions::default()).unwrap_err(), e);
    assert!(e.0.contains("needs 16 bytes but holds 7"), "{e}");
}

#[test]
fn file_statuses_and_summary() {
    let file = |ts: Vec<RawTensor>| TensorFile { tensors: ts, metadata: Default::default() };
    let named = |n: &str, shape: Vec<usize>, v: &[f32]| RawTensor::from_f32(n, shape, v);
    let a = file(vec![
        named("x", vec![2], &[1.0, 2.0]),
        named("y", vec![2], &[1.0, 2.0]),
        named("z", vec![1], &[0.0]),
        named("only_a", vec![1], &[0.0]),
    ]);
    let b = file(vec![
        named("x", vec![2], &[1.0, 2.0]),
        named("y", vec![2], &[1.0, 3.0]),
        named("z", vec![2], &[0.0, 0.0]),
        named("only_b", vec![1], &[0.0]),
    ]);
    let r = compare_files(&a, &b, &[], &Engine::host(), &CompareOptions::default()).unwrap();
    assert_eq!(r.verdict, Verdict::Mismatch);
    let statuses: Vec<(&str, Status)> = r.tensors.iter().map(|t| (t.name.as_str(), t.status)).collect();
    assert_eq!(
        statuses,
        vec![
            ("x", Status::Compared),
            ("y", Status::Compared),
            ("z", Status::ShapeMismatch),
            ("only_a", Status::OnlyInA),
            ("only_b", Status::OnlyInB)
        ]
    );
    let s = &r.summary;
    assert_eq!((s.compared, s.matching, s.only_in_a, s.only_in_b, s.shape_mismatch), (2, 1, 1, 1, 1));
    assert_eq!(s.ranking[0].name, "y", "worst first");

    let pairs = vec![("only_a".to_string(), "only_b".to_string())];
    let r = compare_files(&a, &b, &pairs, &Engine::host(), &CompareOptions::default()).unwrap();
    assert!(r.tensors.iter().any(|t| t.name == "only_a=only_b" && t.status == Status::Compared && t.values_match));

    let same = compare_files(&a, &a, &[], &Engine::host(), &CompareOptions::default()).unwrap();
    assert_eq!(same.verdict, Verdict::Match);
}

#[test]
fn json_is_byte_identical_across_runs() {
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let va: Vec<f32> = (0..2 * 3 * 2 * 7 * 5).map(|_| next()).collect();
    let mut vb: Vec<f32> = va.iter().map(|v| v + next() * 1e-2).collect();
    vb[7] = f32::NAN;
    let a = TensorFile {
        tensors: vec![RawTensor::from_f32("lat", vec![2, 3, 2, 7, 5], &va)],
        metadata: Default::default(),
    };
    let b = TensorFile {
        tensors: vec![RawTensor::from_f32("lat", vec![2, 3, 2, 7, 5], &vb)],
        metadata: Default::default(),
    };
    let run = || compare_files(&a, &b, &[], &Engine::host(), &CompareOptions::default()).unwrap().to_json();
    let first = run();
    for _ in 0..3 {
        assert_eq!(run(), first);
    }
    assert!(first.contains("\"per_frame\"") && first.contains("\"histogram\""));
}
