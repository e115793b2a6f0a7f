//! Trace diff and explain: the trace crate's own diagnosis on the CPU device (it needs float64
//! and bit-exact float32), giving the JSON of `samplediff diff --json` and `explain --json`.
//! Plain output files (no trace) work too, with the checks their data allows.

use samplediff_formats::TensorFile;
use samplediff_trace::Trace;

use crate::backend::cpu;
use crate::files::Loaded;

fn trace(f: &Loaded) -> Result<Trace, String> {
    let file: TensorFile = f.file.clone(); // tensors share the file's buffer: no copy
    Trace::from_file(file).map_err(|e| format!("{} is not a usable trace: {e}", f.name))
}

/// Whether a file is a recorded sampling run (it has model calls), not just tensors.
pub fn is_run(f: &Loaded) -> bool {
    trace(f).is_ok_and(|t| t.is_run())
}

/// The two runs aligned stage by stage and step by step, with the divergence curve and the
/// first point float32 rounding no longer explains (B is the reference of the metrics).
pub fn diff_json(a: &Loaded, b: &Loaded) -> Result<String, String> {
    let device = cpu();
    let (ta, tb) = (trace(a)?, trace(b)?);
    let d = samplediff_trace::diff::diff(&ta, &tb, &device).map_err(|e| e.to_string())?;
    serde_json::to_string_pretty(&d).map_err(|e| e.to_string())
}

/// Why the runs differ: findings, earliest root cause first.
pub fn explain_json(a: &Loaded, b: &Loaded) -> Result<String, String> {
    let (ta, tb) = (trace(a)?, trace(b)?);
    Ok(samplediff_trace::explain(&ta, &tb, &cpu()).map_err(|e| e.to_string())?.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(name: &str) -> Loaded {
        let path = format!("{}/../../tests/fixtures/comfyui/{name}", env!("CARGO_MANIFEST_DIR"));
        Loaded::read(name, std::fs::read(&path).unwrap(), None).unwrap()
    }

    #[test]
    fn a_golden_run_against_itself_is_identical() {
        let a = golden("wf_euler_simple_cfg3.safetensors");
        assert!(is_run(&a));
        let e = explain_json(&a, &a).unwrap();
        assert!(e.contains("\"cause\": \"identical\""), "{e}");
        let d = diff_json(&a, &a).unwrap();
        assert!(d.contains("\"first_divergence\": null"), "{d}");
    }
}
