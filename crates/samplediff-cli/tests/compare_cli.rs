//! `samplediff compare` and `samplediff demo` end to end: exit codes, errors that name the
//! file, cross-format comparison, JSON stability, the heatmap, and the demo's diagnosis.

use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_samplediff"))
}

fn fixture(name: &str) -> String {
    format!("{}/../../tests/fixtures/metrics/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run samplediff")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn exit_codes_match_mismatch_error() {
    let (a, b) = (fixture("f32_drift_a.safetensors"), fixture("f32_drift_b.safetensors"));
    assert_eq!(run(&["compare", &a, &a]).status.code(), Some(0));
    let o = run(&["compare", &a, &b]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("MISMATCH"));
    // Loose enough tolerances turn it into a match.
    assert_eq!(run(&["compare", &a, &b, "--atol", "2", "--rtol", "0"]).status.code(), Some(0));
}

#[test]
fn errors_name_the_file_and_the_problem_on_one_line() {
    let good = fixture("f32_drift_a.safetensors");
    let missing = fixture("no_such_file.safetensors");
    let o = run(&["compare", &good, &missing]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("no_such_file.safetensors") && e.lines().count() == 1, "{e}");

    let junk = std::env::temp_dir().join(format!("samplediff-junk-{}.bin", std::process::id()));
    std::fs::write(&junk, b"definitely not a tensor file").unwrap();
    let o = run(&["compare", junk.to_str().unwrap(), &good]);
    std::fs::remove_file(&junk).ok();
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("samplediff-junk") && e.contains("unrecognised"), "{e}");

    let o = run(&["compare", &good, &good, "--pair", "nope=x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no tensor 'nope'"), "{}", stderr(&o));
    assert_eq!(run(&["compare", &good, &good, "--atol", "-1"]).status.code(), Some(2));
}

#[test]
fn npy_against_safetensors_and_json_is_stable() {
    // An .npy file (tensor named after the file) against itself, then a cross-format pair.
    let npy = fixture("f64_affine_a.npy");
    assert_eq!(run(&["compare", &npy, &npy]).status.code(), Some(0));
    let (a, b) = (fixture("f16_5d_a.safetensors"), fixture("f16_5d_b.safetensors"));
    let first = run(&["compare", &a, &b, "--json", "--top-k", "3"]);
    assert_eq!(first.status.code(), Some(1));
    let second = run(&["compare", &a, &b, "--json", "--top-k", "3"]);
    assert_eq!(first.stdout, second.stdout, "JSON must be byte-identical across runs");
    let j: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(j["verdict"], "mismatch");
    let t = &j["tensors"][0];
    assert_eq!(t["status"], "compared");
    assert_eq!(t["worst"].as_array().unwrap().len(), 3);
    assert_eq!(t["per_channel"].as_array().unwrap().len(), 4);
    assert_eq!(t["per_frame"].as_array().unwrap().len(), 2);
    // The numbers are numpy's (tests/fixtures/metrics/expected.json).
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap();
    let case = expected["cases"].as_array().unwrap().iter().find(|c| c["name"] == "f16_5d").unwrap();
    for k in ["max_abs", "mean_abs", "rmse", "cosine", "snr_db"] {
        let (got, want) = (t[k].as_f64().unwrap(), case["expected"][k].as_f64().unwrap());
        assert!((got - want).abs() <= 1e-9 * want.abs(), "{k}: {got} vs {want}");
    }
}

#[test]
fn heatmap_is_a_png() {
    let (a, b) = (fixture("f32_nonfinite_a.safetensors"), fixture("f32_nonfinite_b.safetensors"));
    let out = std::env::temp_dir().join(format!("samplediff-heat-{}.png", std::process::id()));
    let o = run(&["compare", &a, &b, "--heatmap", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let png = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).ok();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn demo_finds_the_missing_wan21_denormalisation() {
    let o = run(&["demo"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("missing latent de-normalisation (Wan 2.1 process_out)"), "{text}");

    let o = run(&["demo", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = &j["tensors"][0];
    assert_eq!(t["shape_a"], serde_json::json!([1, 16, 1, 147, 110]));
    let mean_abs = t["mean_abs"].as_f64().unwrap();
    assert!((1.0..1.2).contains(&mean_abs), "seed report: mean abs ~1.09, demo {mean_abs}");
    for c in t["per_channel"].as_array().unwrap() {
        assert!(c["r2"].as_f64().unwrap() > 0.99);
    }
}

/// `--backend wgpu` runs the fused GPU kernels (lavapipe in CI): the report equals the CPU
/// kernel's in every count, extreme and order statistic, latents' channels and frames
/// included; mixed dtypes go to burn on the same GPU and still give a full report.
#[test]
fn the_gpu_backend_reports_what_the_cpu_does() {
    let json = |a: &str, b: &str, backend: &str| -> serde_json::Value {
        let o = run(&["compare", &fixture(a), &fixture(b), "--json", "--backend", backend]);
        assert!(matches!(o.status.code(), Some(0 | 1)), "{backend} {a}: {}", stderr(&o));
        serde_json::from_slice(&o.stdout).expect("JSON report")
    };
    for (a, b) in [
        ("bf16_2d_a.safetensors", "bf16_2d_b.safetensors"),
        ("f32_npy_1d_a.npy", "f32_npy_1d_b.npy"),
        ("f32_nonfinite_a.safetensors", "f32_nonfinite_b.safetensors"),
        ("f16_5d_a.safetensors", "f16_5d_b.safetensors"),
    ] {
        let (cpu, gpu) = (json(a, b, "cpu"), json(a, b, "wgpu"));
        assert_eq!(cpu["verdict"], gpu["verdict"], "{a}");
        for (tc, tg) in cpu["tensors"].as_array().unwrap().iter().zip(gpu["tensors"].as_array().unwrap()) {
            for field in [
                "numel",
                "finite_pairs",
                "mismatched",
                "max_abs",
                "nan_a",
                "inf_b",
                "percentiles_abs",
                "histogram",
                "worst",
                "ulp_max",
                "ulp_median",
            ] {
                assert_eq!(tc[field], tg[field], "{a}: {field}");
            }
            for slices in ["per_channel", "per_frame"] {
                let (sc, sg) = (tc[slices].as_array().unwrap(), tg[slices].as_array().unwrap());
                assert_eq!(sc.len(), sg.len(), "{a}: {slices}");
                for (x, y) in sc.iter().zip(sg) {
                    assert_eq!((&x["mismatched"], &x["max_abs"]), (&y["mismatched"], &y["max_abs"]), "{a}: {slices}");
                }
            }
        }
    }
    {
        let (a, b) = ("mixed_f16_f32_a.safetensors", "mixed_f16_f32_b.safetensors");
        let (cpu, gpu) = (json(a, b, "cpu"), json(a, b, "wgpu"));
        let (tc, tg) = (&cpu["tensors"][0], &gpu["tensors"][0]);
        assert_eq!((&tc["finite_pairs"], &tc["mismatched"]), (&tg["finite_pairs"], &tg["mismatched"]), "{a}");
        assert_eq!(tc["per_channel"].as_array().map(Vec::len), tg["per_channel"].as_array().map(Vec::len), "{a}");
    }
}
