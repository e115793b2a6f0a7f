//! `samplediff diff`, `explain`, `verify` and the demo's trace story end to end: exit codes
//! (0 identical/clean, 1 differences, 2 errors), the JSON schema of the findings, plain output
//! files without a trace.

use std::process::{Command, Output};

use samplediff_formats::{Bytes, RawTensor, safetensors};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_samplediff")).args(args).output().expect("run samplediff")
}

fn golden(name: &str) -> String {
    format!("{}/../../tests/fixtures/comfyui/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn temp(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("samplediff-trace-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name).to_string_lossy().into_owned()
}

const EULER: &str = "wf_euler_simple_cfg3.safetensors";

#[test]
fn verify_golden_is_clean_and_a_tampered_trace_is_not() {
    let o = run(&["verify", &golden(EULER)]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("clean"));

    let file = safetensors::read(Bytes::new(std::fs::read(golden(EULER)).unwrap())).unwrap();
    let mut tensors = file.tensors.clone();
    let t = tensors.iter_mut().find(|t| t.name == "call001.denoised").unwrap();
    let mut v = t.to_f32_vec();
    v[0] += 0.5;
    *t = RawTensor::from_f32("call001.denoised", t.shape.clone(), &v);
    let path = temp("tampered.safetensors");
    std::fs::write(&path, safetensors::write(&tensors, &file.metadata).unwrap()).unwrap();
    let o = run(&["verify", &path, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["mismatches"][0]["stage"], "guidance");
    assert_eq!(j["mismatches"][0]["tensor"], "call001.denoised");
}

#[test]
fn explain_exit_codes_and_json_schema() {
    let o = run(&["explain", &golden(EULER), &golden(EULER), "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &j["findings"][0];
    assert_eq!(f["cause"], "identical");
    let mut keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["cause", "confidence", "evidence", "stage", "step"]);

    let o = run(&["explain", &golden(EULER), &golden("wf_dpmpp2m_simple_d07.safetensors"), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let causes: Vec<&str> = j["findings"].as_array().unwrap().iter().map(|f| f["cause"].as_str().unwrap()).collect();
    for c in ["noise", "sigmas", "cfg", "cfgnorm", "sampler_update"] {
        assert!(causes.contains(&c), "{causes:?}");
    }

    let o = run(&["explain", &golden(EULER), "no_such_trace.safetensors"]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("no_such_trace.safetensors") && e.lines().count() == 1, "{e}");
}

#[test]
fn diff_prints_metrics_curve_and_the_first_split() {
    let o = run(&["diff", &golden(EULER), &golden(EULER)]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("every aligned tensor is bit-identical"));

    let o = run(&["diff", &golden(EULER), &golden("wf_heun_karras_cfg1.safetensors")]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    for want in ["divergence curve", "first point beyond float32 rounding", "cosine", "settings that differ"] {
        assert!(text.contains(want), "missing '{want}' in\n{text}");
    }
    let o = run(&["diff", &golden(EULER), &golden(EULER), "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["aligned"].as_array().unwrap().len() > 20);
    assert!(j["aligned"][0]["metrics"]["cosine"].is_number());
}

/// Two plain output files, no trace: the output convention is still found (B = A·std + mean).
#[test]
fn explain_two_plain_outputs() {
    let file = safetensors::read(Bytes::new(std::fs::read(golden(EULER)).unwrap())).unwrap();
    let out = file.get("latent_out").unwrap();
    let per_channel: usize = out.shape[2..].iter().product();
    let comfy = out.to_f64_vec();
    let mean = samplediff_chain::latent_format::WAN21_MEAN;
    let std = samplediff_chain::latent_format::WAN21_STD;
    let raw: Vec<f32> =
        comfy.iter().enumerate().map(|(i, v)| ((v - mean[i / per_channel]) / std[i / per_channel]) as f32).collect();
    let (a, b) = (temp("service_out.safetensors"), temp("comfy_out.safetensors"));
    let meta = Default::default();
    std::fs::write(&a, safetensors::write(&[RawTensor::from_f32("samples", out.shape.clone(), &raw)], &meta).unwrap())
        .unwrap();
    std::fs::write(
        &b,
        safetensors::write(&[RawTensor::from_f32("samples", out.shape.clone(), &out.to_f32_vec())], &meta).unwrap(),
    )
    .unwrap();
    let o = run(&["explain", &a, &b, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["findings"][0]["cause"], "output_convention", "{j}");
    assert!(j["findings"][0]["evidence"].as_str().unwrap().contains("A is the normalised sampler state"));

    // A plain output against a ComfyUI trace: the trace side's convention is identified too.
    let o = run(&["explain", &a, &golden(EULER), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["findings"][0]["cause"], "output_convention", "{j}");
    assert!(
        j["findings"][0]["evidence"].as_str().unwrap().contains("B's trace: latent_out is ComfyUI's LATENT"),
        "{j}"
    );
}

#[test]
fn demo_tells_the_story_on_traces() {
    let o = run(&["demo"]);
    assert_eq!(o.status.code(), Some(0));
    let text = stdout(&o);
    assert!(text.contains("verify ComfyUI: clean"), "{text}");
    assert!(text.contains("1. output_convention"), "{text}");
    assert!(text.contains("bit-identical: 31 of 32"), "{text}");
}
