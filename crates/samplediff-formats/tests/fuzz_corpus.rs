//! Every input of the committed fuzz corpus (`fuzz/corpus/<target>/`, which keeps every input that
//! ever crashed a fuzz target) goes through the same calls as its fuzz target, in the ordinary
//! test build: a regression found by fuzzing stays fixed without the instrumented build.
//! (The trace manifest target needs the trace crate; its corpus is replayed by `fuzz/run.sh`.)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use samplediff_formats::{Bytes, load_bytes, load_bytes_selected, npy, pickle, safetensors, structure, torch};

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
        .into_iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(p).unwrap()))
        .collect()
}

/// Runs `f` on every input of `target`'s corpus; a panic names the input.
fn replay(target: &str, f: impl Fn(&[u8])) {
    let start = Instant::now();
    for (name, data) in corpus(target) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&data)));
        assert!(result.is_ok(), "fuzz/corpus/{target}/{name} panics");
    }
    assert!(start.elapsed() < Duration::from_secs(60), "{target}: {:?}", start.elapsed());
}

fn consistent(file: &samplediff_formats::TensorFile) {
    for t in &file.tensors {
        assert_eq!(t.data.len(), t.numel() * t.dtype.size(), "tensor '{}'", t.name);
    }
}

#[test]
fn safetensors_corpus() {
    replay("safetensors", |d| {
        if let Ok(f) = safetensors::read(Bytes::new(d.to_vec())) {
            consistent(&f);
        }
    });
}

#[test]
fn pickle_corpus() {
    replay("pickle", |d| {
        for storages in [false, true] {
            let Ok(p) = pickle::parse(d, storages) else { continue };
            let _ = structure::to_json(&p, p.root, 1 << 16);
            let _ = structure::flatten(&p, p.root, "root");
            if let Ok(id) = structure::select(&p, p.root, "0.0") {
                let _ = structure::flatten(&p, id, "0.0");
            }
        }
    });
}

#[test]
fn torch_corpus() {
    replay("torch", |d| {
        let buf = Bytes::new(d.to_vec());
        if let Ok(f) = torch::read(buf.clone(), "tensor") {
            consistent(&f);
        }
        let _ = torch::read_selected(buf, "tensor", Some("0"));
    });
}

#[test]
fn npy_and_npz_corpus() {
    replay("npy", |d| {
        if let Ok(f) = npy::read(Bytes::new(d.to_vec()), "array") {
            consistent(&f);
        }
    });
    replay("npz", |d| {
        if let Ok(f) = npy::read_npz(Bytes::new(d.to_vec())) {
            consistent(&f);
        }
    });
}

#[test]
fn load_corpus() {
    replay("load", |d| {
        let buf = Bytes::new(d.to_vec());
        if let Ok(f) = load_bytes("input.bin", buf.clone()) {
            consistent(&f);
            for t in f.tensors.iter().filter(|t| t.numel() <= 1 << 20) {
                assert_eq!(t.to_f64_vec().len(), t.numel());
            }
        }
        let _ = load_bytes_selected("input.bin", buf, Some("0"));
    });
}
