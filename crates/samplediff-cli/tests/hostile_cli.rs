//! Issue 9's contract for hostile files at the command line: `samplediff compare HOSTILE GOOD`
//! exits with code 2 and one line on stderr that names the file and its problem, quickly, and
//! nothing the file asks to run is ever run. The corpus and the phrase each error must contain
//! are `tests/fixtures/hostile/MANIFEST.json` (written by `make_hostile.py`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The file every code-running payload of the corpus would create (`make_hostile.py`'s MARKER).
const MARKER: &str = "/tmp/samplediff-hostile-executed";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[test]
fn every_hostile_file_exits_2_with_one_line_and_runs_nothing() {
    let _ = std::fs::remove_file(MARKER);
    let dir = fixtures().join("hostile");
    let manifest: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("MANIFEST.json")).unwrap()).unwrap();
    assert!(manifest.len() >= 50, "corpus has {} files", manifest.len());
    let good = fixtures().join("metrics/f32_drift_a.safetensors");

    let mut failures = Vec::new();
    let mut slowest = (Duration::ZERO, String::new());
    for (file, phrase) in &manifest {
        let start = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_samplediff"))
            .arg("compare")
            .arg(dir.join(file))
            .arg(&good)
            .output()
            .expect("run samplediff");
        let took = start.elapsed();
        if took > slowest.0 {
            slowest = (took, file.clone());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.trim_end_matches('\n');
        if out.status.code() != Some(2) {
            failures.push(format!("{file}: exit {:?} (want 2), stderr {stderr:?}", out.status.code()));
        }
        if line.is_empty() || line.contains('\n') {
            failures.push(format!("{file}: stderr is not one line: {stderr:?}"));
        }
        if !line.contains(file.as_str()) || !line.contains(phrase.as_str()) {
            failures.push(format!("{file}: stderr {line:?} should name the file and say {phrase:?}"));
        }
        if !out.stdout.is_empty() {
            failures.push(format!("{file}: printed a report: {:?}", String::from_utf8_lossy(&out.stdout)));
        }
        // The contract is one second; the margin absorbs a loaded CI machine (the debug binary
        // takes ~0.05 s for any of these files).
        if took > Duration::from_secs(5) {
            failures.push(format!("{file}: took {took:?}"));
        }
    }
    eprintln!("{} hostile files, slowest {:?} ({})", manifest.len(), slowest.0, slowest.1);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(!Path::new(MARKER).exists(), "a payload ran: {MARKER} exists");
}
