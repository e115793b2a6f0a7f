//! Every metric agrees with an independent float64 numpy computation to 1e-9 relative, on both
//! engines (the fused host kernel and burn's CPU backend).
//!
//! Fixtures and expectations come from tests/fixtures/metrics/make_fixtures.py (committed):
//! pairs in safetensors F32/F16/BF16, .npy F64/F32, with NaN/Inf, zeros in b, mixed dtypes.

use burn::tensor::Device;
use samplediff_metrics::{CompareOptions, Engine, Status, TensorReport, compare_files};
use serde_json::Value;

const REL: f64 = 1e-9;

fn fixture_dir() -> String {
    format!("{}/../../tests/fixtures/metrics", env!("CARGO_MANIFEST_DIR"))
}

fn close(got: f64, want: f64, what: &str) {
    let tol = REL * got.abs().max(want.abs()) + 1e-300;
    assert!((got - want).abs() <= tol, "{what}: got {got:e}, numpy {want:e}");
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn check_case(case: &Value, engine: &Engine) {
    let name = case["name"].as_str().unwrap();
    let dir = fixture_dir();
    let load = |key: &str| {
        let path = format!("{dir}/{}", case[key].as_str().unwrap());
        samplediff_formats::load_path(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let report = compare_files(&load("file_a"), &load("file_b"), &[], engine, &CompareOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(report.tensors.len(), 1, "{name}");
    let t: &TensorReport = &report.tensors[0];
    assert_eq!(t.status, Status::Compared, "{name}");
    let e = &case["expected"];
    let w = |k: &str| format!("{name}.{k}");

    for k in [
        "numel",
        "finite_pairs",
        "mismatched",
        "nan_a",
        "nan_b",
        "inf_a",
        "inf_b",
        "nan_position_mismatch",
        "inf_mismatch",
        "rel_zero_b",
    ] {
        let got = match k {
            "numel" => t.numel,
            "finite_pairs" => t.finite_pairs,
            "mismatched" => t.mismatched,
            "nan_a" => t.nan_a,
            "nan_b" => t.nan_b,
            "inf_a" => t.inf_a,
            "inf_b" => t.inf_b,
            "nan_position_mismatch" => t.nan_position_mismatch,
            "inf_mismatch" => t.inf_mismatch,
            _ => t.rel_zero_b,
        };
        assert_eq!(got, Some(u(&e[k])), "{}", w(k));
    }
    assert_eq!(t.values_match, u(&e["mismatched"]) == 0, "{}", w("values_match"));
    let scalars: [(&str, Option<f64>); 17] = [
        ("rtol", t.rtol),
        ("atol", t.atol),
        ("max_abs", t.max_abs),
        ("mean_abs", t.mean_abs),
        ("rmse", t.rmse),
        ("rms_a", t.rms_a),
        ("rms_b", t.rms_b),
        ("max_rel", t.max_rel),
        ("mean_rel", t.mean_rel),
        ("rel_floor", t.rel_floor),
        ("max_rel_floored", t.max_rel_floored),
        ("mean_rel_floored", t.mean_rel_floored),
        ("cosine", t.cosine),
        ("pearson", t.pearson),
        ("snr_db", t.snr_db),
        ("ulp_median", t.ulp_median),
        ("ulp_max", t.ulp_max.map(|v| v as f64)),
    ];
    for (k, got) in scalars {
        match e.get(k) {
            Some(want) => close(got.unwrap_or_else(|| panic!("{} missing", w(k))), f(want), &w(k)),
            None => assert_eq!(got, None, "{}", w(k)),
        }
    }
    if let Some(want) = e.get("ulp_max") {
        assert_eq!(t.ulp_max, Some(u(want)), "{}", w("ulp_max exact"));
    }

    let p = t.percentiles_abs.as_ref().unwrap();
    let pe = &e["percentiles_abs"];
    for (k, got) in [("p50", p.p50), ("p90", p.p90), ("p99", p.p99), ("p999", p.p999)] {
        close(got, f(&pe[k]), &w(k));
    }

    let h = t.histogram.as_ref().unwrap();
    assert_eq!(h.zero, u(&e["histogram"]["zero"]), "{}", w("histogram.zero"));
    let bins = e["histogram"]["bins"].as_array().unwrap();
    assert_eq!(h.bins.len(), bins.len(), "{}", w("histogram bins"));
    for (got, want) in h.bins.iter().zip(bins) {
        assert_eq!(got.count, u(&want["count"]), "{}", w("bin count"));
        close(got.lo, f(&want["lo"]), &w("bin lo"));
        close(got.hi, f(&want["hi"]), &w("bin hi"));
    }

    let worst = e["worst"].as_array().unwrap();
    assert_eq!(t.worst.len(), worst.len(), "{}", w("worst"));
    for (got, want) in t.worst.iter().zip(worst) {
        let idx: Vec<usize> = want["index"].as_array().unwrap().iter().map(|v| u(v) as usize).collect();
        assert_eq!(got.index, idx, "{}", w("worst.index"));
        close(got.a, f(&want["a"]), &w("worst.a"));
        close(got.b, f(&want["b"]), &w("worst.b"));
        close(got.abs, f(&want["abs"]), &w("worst.abs"));
    }

    let ch = e["per_channel"].as_array().unwrap();
    assert_eq!(t.per_channel.len(), ch.len(), "{}", w("per_channel"));
    for (got, want) in t.per_channel.iter().zip(ch) {
        let c = got.channel;
        assert_eq!(c as u64, u(&want["channel"]));
        assert_eq!((got.numel, got.mismatched), (u(&want["numel"]), u(&want["mismatched"])), "{name} ch{c}");
        for (k, g) in [
            ("max_abs", got.max_abs),
            ("mean_abs", got.mean_abs),
            ("rmse", got.rmse),
            ("mean_a", got.mean_a),
            ("mean_b", got.mean_b),
            ("std_a", got.std_a),
            ("std_b", got.std_b),
            ("scale", got.scale.unwrap()),
            ("shift", got.shift.unwrap()),
            ("r2", got.r2.unwrap()),
        ] {
            close(g, f(&want[k]), &format!("{name} ch{c} {k}"));
        }
    }
    let fr = e["per_frame"].as_array().unwrap();
    assert_eq!(t.per_frame.len(), fr.len(), "{}", w("per_frame"));
    for (got, want) in t.per_frame.iter().zip(fr) {
        assert_eq!(
            (got.frame as u64, got.numel, got.mismatched),
            (u(&want["frame"]), u(&want["numel"]), u(&want["mismatched"]))
        );
        close(got.max_abs, f(&want["max_abs"]), &w("frame max_abs"));
        close(got.mean_abs, f(&want["mean_abs"]), &w("frame mean_abs"));
        close(got.rmse, f(&want["rmse"]), &w("frame rmse"));
    }
}

#[test]
fn every_fixture_agrees_with_numpy() {
    let text = std::fs::read_to_string(format!("{}/expected.json", fixture_dir())).unwrap();
    let expected: Value = serde_json::from_str(&text).unwrap();
    let cases = expected["cases"].as_array().unwrap();
    assert!(cases.len() >= 7);
    let mut formats = std::collections::BTreeSet::new();
    for case in cases {
        formats.insert(format!("{}:{}", case["file_a"].as_str().unwrap().rsplit('.').next().unwrap(), case["dtype_a"]));
        check_case(case, &Engine::host());
        check_case(case, &Engine::Device(Device::flex()));
    }
    // safetensors F32/F16/BF16 and .npy are all exercised.
    for want in ["safetensors:\"F32\"", "safetensors:\"F16\"", "safetensors:\"BF16\"", "npy:\"F64\"", "npy:\"F32\""] {
        assert!(formats.contains(want), "no {want} case in {formats:?}");
    }
}

/// The f32 path (what a GPU without f64 runs): the same numbers to float32 accuracy, counts
/// exact. Checked on the CPU backend by asking for f32 explicitly.
#[test]
fn f32_precision_agrees_with_numpy_to_float32_accuracy() {
    let text = std::fs::read_to_string(format!("{}/expected.json", fixture_dir())).unwrap();
    let expected: Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for case in expected["cases"].as_array().unwrap() {
        if case["dtype_a"] == "F64" || case["dtype_b"] == "F64" {
            continue; // f64 files do not fit f32; that loss is not the metric's
        }
        let name = case["name"].as_str().unwrap();
        let load = |key: &str| {
            let path = format!("{}/{}", fixture_dir(), case[key].as_str().unwrap());
            samplediff_formats::load_path(&path).unwrap().tensors.remove(0)
        };
        let t = samplediff_metrics::compare_tensors_in(
            &load("file_a"),
            &load("file_b"),
            &Device::flex(),
            &CompareOptions::default(),
            burn::tensor::FloatDType::F32,
        )
        .unwrap();
        let e = &case["expected"];
        assert_eq!(t.finite_pairs, Some(u(&e["finite_pairs"])), "{name}");
        assert_eq!(t.nan_position_mismatch, Some(u(&e["nan_position_mismatch"])), "{name}");
        assert_eq!(t.mismatched, Some(u(&e["mismatched"])), "{name}");
        for (k, got) in [
            ("max_abs", t.max_abs),
            ("mean_abs", t.mean_abs),
            ("rmse", t.rmse),
            ("cosine", t.cosine),
            ("pearson", t.pearson),
            ("mean_rel", t.mean_rel),
        ] {
            let (got, want) = (got.unwrap(), f(&e[k]));
            assert!((got - want).abs() <= 1e-5 * want.abs().max(1e-6), "{name}.{k} in f32: {got} vs {want}");
        }
        checked += 1;
    }
    assert!(checked >= 5);
}
