//! Every file of the hostile corpus (`tests/fixtures/hostile`, made by `make_hostile.py`) is
//! refused with a one-line error naming its problem, within a second, and nothing it asks to
//! run is ever run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use samplediff_formats::{Bytes, load_bytes, load_path};

/// The file every code-running payload in the corpus would create.
const MARKER: &str = "/tmp/samplediff-hostile-executed";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hostile")
}

fn manifest() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir().join("MANIFEST.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_hostile_file_is_refused_quickly_with_a_clear_error() {
    let _ = std::fs::remove_file(MARKER);
    let files = manifest();
    assert!(files.len() >= 50, "corpus has {} files", files.len());
    let mut failures = Vec::new();
    for (file, phrase) in &files {
        let path = dir().join(file);
        let start = Instant::now();
        let result = load_path(path.to_str().unwrap());
        let took = start.elapsed();
        match result {
            Ok(f) => failures.push(format!("{file}: loaded {} tensors instead of failing", f.tensors.len())),
            Err(e) => {
                let msg = e.to_string();
                eprintln!("{file}: {msg}");
                if !msg.contains(phrase.as_str()) {
                    failures.push(format!("{file}: error {msg:?} does not mention {phrase:?}"));
                }
                if msg.contains('\n') || msg.is_empty() {
                    failures.push(format!("{file}: error is not one line: {msg:?}"));
                }
            }
        }
        // Debug builds of this crate; release is several times faster still.
        if took > Duration::from_secs(1) {
            failures.push(format!("{file}: took {took:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(!std::path::Path::new(MARKER).exists(), "a payload ran: {MARKER} exists");
}

#[test]
fn code_running_pickles_name_the_refused_global() {
    for (file, global) in [
        ("reduce_os_system.pt", "os.system"),
        ("reduce_os_system.pkl", "os.system"),
        ("reduce_posix_system.pt", "posix.system"),
        ("reduce_builtins_eval.pt", "builtins.eval"),
        ("reduce_builtins_exec.pkl", "builtins.exec"),
        ("reduce_builtins_getattr.pt", "builtins.getattr"),
        ("reduce_subprocess_popen.pkl", "subprocess.Popen"),
        ("stack_global_os_system.pt", "os.system"),
    ] {
        let e = load_path(dir().join(file).to_str().unwrap()).unwrap_err().to_string();
        assert!(e.contains(&format!("refused pickle global '{global}'")), "{file}: {e}");
        assert!(e.contains("nothing was imported or executed"), "{file}: {e}");
    }
    assert!(!std::path::Path::new(MARKER).exists());
}

/// Random mutations of valid files must give errors or values, never a panic or a hang.
#[test]
fn mutated_valid_files_never_panic() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/formats");
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let start = Instant::now();
    let mut outcomes = [0usize; 2];
    for file in
        ["cond.pt", "state_dict.pt", "proto4.pt", "dtypes.safetensors", "fortran_f8.npy", "arrays_compressed.npz"]
    {
        let original = std::fs::read(fixtures.join(file)).unwrap();
        for round in 0..300 {
            let mut data = original.clone();
            match round % 3 {
                0 => data.truncate(next() as usize % data.len()),
                1 => {
                    for _ in 0..1 + next() % 8 {
                        let i = next() as usize % data.len();
                        data[i] = next() as u8;
                    }
                }
                _ => {
                    let i = next() as usize % data.len();
                    data[i] ^= 1 << (next() % 8);
                }
            }
            let ok = load_bytes(file, Bytes::new(data)).is_ok();
            outcomes[ok as usize] += 1;
        }
    }
    assert!(outcomes[0] > 100, "mutations should mostly fail: {outcomes:?}");
    assert!(start.elapsed() < Duration::from_secs(60), "took {:?}", start.elapsed());
}
