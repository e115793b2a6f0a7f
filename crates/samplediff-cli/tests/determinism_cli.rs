//! Issue 9, determinism: the same inputs give a byte-identical `compare --json` report (and
//! heatmap PNG) in separate processes. The pairs cover every reader (safetensors, .npy, .npz,
//! torch pickles), mixed dtypes, NaN/Inf accounting and a many-tensor ComfyUI run.
//! (Identical reports across thread counts belong with the multi-threaded metrics kernel.)

use std::process::Command;

fn fixture(rel: &str) -> String {
    format!("{}/../../tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// One `samplediff compare A B --json` in a fresh process: (exit code, stdout bytes).
fn compare_json(a: &str, b: &str, extra: &[&str]) -> (Option<i32>, Vec<u8>) {
    let out = Command::new(env!("CARGO_BIN_EXE_samplediff"))
        .args(["compare", a, b, "--json"])
        .args(extra)
        .output()
        .expect("run samplediff");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{a} vs {b}: exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), out.stdout)
}

#[test]
fn compare_json_is_byte_identical_across_processes() {
    let pairs = [
        ("metrics/f32_nonfinite_a.safetensors", "metrics/f32_nonfinite_b.safetensors"),
        ("metrics/mixed_f16_f32_a.safetensors", "metrics/mixed_f16_f32_b.safetensors"),
        ("metrics/bf16_2d_a.safetensors", "metrics/bf16_2d_b.safetensors"),
        ("metrics/f64_affine_a.npy", "metrics/f64_affine_b.npy"),
        ("formats/arrays.npz", "formats/arrays_compressed.npz"),
        ("formats/cond.pt", "formats/cond_pooled.pt"),
        ("comfyui/wf_euler_simple_cfg3.safetensors", "comfyui/wf_heun_karras_cfg1.safetensors"),
    ];
    for (a, b) in pairs {
        let (a, b) = (fixture(a), fixture(b));
        let first = compare_json(&a, &b, &[]);
        let second = compare_json(&a, &b, &[]);
        assert!(!first.1.is_empty(), "{a} vs {b}: empty report");
        assert!(first == second, "{a} vs {b}: two runs gave different reports");
        // Swapping the sides is a different question (relative errors divide by B), but it must
        // be just as stable.
        assert!(compare_json(&b, &a, &[]) == compare_json(&b, &a, &[]), "{b} vs {a}: reports differ");
    }
}

#[test]
fn heatmap_png_is_byte_identical_across_processes() {
    let (a, b) = (fixture("metrics/f16_5d_a.safetensors"), fixture("metrics/f16_5d_b.safetensors"));
    let dir = std::env::temp_dir();
    let png = |i: usize| dir.join(format!("samplediff-determinism-{}-{i}.png", std::process::id()));
    let reports: Vec<_> = (0..2).map(|i| compare_json(&a, &b, &["--heatmap", png(i).to_str().unwrap()])).collect();
    let images: Vec<Vec<u8>> = (0..2).map(|i| std::fs::read(png(i)).expect("heatmap written")).collect();
    (0..2).for_each(|i| std::fs::remove_file(png(i)).unwrap_or(()));
    assert!(reports[0] == reports[1], "reports differ");
    assert!(images[0].starts_with(b"\x89PNG"), "not a PNG");
    assert!(images[0] == images[1], "heatmaps differ");
}
