//! The golden workflows inside wasm (issues 3 and 4), on burn's CPU backend (flex):
//!
//! * [`replay`]: a recorded run driven through the reference chain with its recorded model
//!   predictions, as `samplediff replay WF -o OUT` (same core function, same output file);
//! * [`run_workflow`]: the whole workflow from scratch with the burn model, as `samplediff run WF
//!   -o OUT` (same core function, same trace), so a folder of these files is a column of
//!   `samplediff check-backends --include wasm-cpu=DIR`.
//!
//! Only the CPU backend: the chain, the LoRA merge and the trace recorder read tensors back
//! synchronously, which WebGPU in a browser cannot do (its reads are asynchronous).

use std::collections::BTreeMap;

use samplediff_model::{Precision, QWEN_IMAGE_ROPE_AXES};
use samplediff_workflow::replay::replay_file;
use samplediff_workflow::{ModelFiles, RunOptions, Workflow};

use crate::backend::cpu;
use crate::files::Loaded;

/// What the outputs' metadata names as the backend.
pub const BACKEND: &str = "wasm-cpu";

/// Replays a run recorded in the golden layout; returns the safetensors `samplediff replay -o`
/// writes (`stepNNN.x`, `stepNNN.denoised`, `callNNN.x`, `callNNN.denoised`, `latent_out`).
pub fn replay(name: &str, bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let file = Loaded::read(name, bytes, None)?.file;
    let out = replay_file(&file, &cpu()).map_err(|e| format!("{name}: {e}"))?;
    let meta =
        BTreeMap::from([("replayed_from".to_owned(), name.to_owned()), ("backend".to_owned(), BACKEND.to_owned())]);
    out.to_safetensors(&meta)
}

/// Runs the workflow a golden-layout file describes (settings, conditioning, input latent) with
/// `model` and, when the workflow names one, its LoRA; returns the trace `samplediff run -o`
/// writes. `rope_axes` defaults to Qwen-Image's 16,56,56 (the tiny test model needs 8,12,12).
pub fn run_workflow(
    workflow: Vec<u8>,
    model: Vec<u8>,
    lora: Option<Vec<u8>>,
    rope_axes: Option<Vec<usize>>,
) -> Result<Vec<u8>, String> {
    let rope_axes: [usize; 3] = match rope_axes {
        None => QWEN_IMAGE_ROPE_AXES,
        Some(v) => v.try_into().map_err(|v: Vec<usize>| format!("ropeAxes needs three numbers, got {}", v.len()))?,
    };
    let wf_file = Loaded::read("workflow", workflow, None)?.file;
    let wf = Workflow::from_file(&wf_file).map_err(|e| format!("workflow: {e}"))?;
    let model = Loaded::read("model", model, None)?.file;
    let lora = lora.map(|b| Loaded::read("lora", b, None)).transpose()?.map(|l| l.file);
    let options = RunOptions { device: cpu(), precision: Precision::F32, rope_axes };
    let trace = samplediff_workflow::run(&wf, &ModelFiles { diffusion_model: &model, lora: lora.as_ref() }, &options)?;
    trace.to_safetensors().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use samplediff_formats::{Bytes, safetensors};

    use super::*;

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(format!("{}/../../tests/fixtures/comfyui/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn latent_out(bytes: Vec<u8>) -> Vec<f32> {
        safetensors::read(Bytes::new(bytes)).unwrap().get("latent_out").unwrap().to_f32_vec()
    }

    // Natively this is the CLI's replay on the CPU backend, which is bit-exact.
    #[test]
    fn replay_reproduces_the_golden_latent_out() {
        let name = "wf_euler_simple_cfg3.safetensors";
        let got = latent_out(replay(name, fixture(name)).unwrap());
        assert_eq!(got, latent_out(fixture(name)));
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(replay("x", b"not a file".to_vec()).is_err());
        let e = run_workflow(fixture("wf_euler_simple_cfg3.safetensors"), vec![], None, Some(vec![8, 12])).unwrap_err();
        assert!(e.contains("three numbers"), "{e}");
        let model = fixture("models/diffusion_models/tiny_qwen.safetensors");
        let e =
            run_workflow(fixture("wf_euler_simple_cfg3.safetensors"), model, None, Some(vec![8, 12, 12])).unwrap_err();
        assert!(e.contains("LoRA"), "{e}");
    }
}
