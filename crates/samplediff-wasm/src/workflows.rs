//! The golden workflows inside wasm (issues 3 and 4):
//!
//! * [`replay`]: a recorded run driven through the reference chain with its recorded model
//!   predictions on burn's CPU backend (flex), as `samplediff replay WF -o OUT` (same core
//!   function, same output file);
//! * [`run_workflow`]: the whole workflow from scratch with the burn model on the CPU backend, as
//!   `samplediff run WF -o OUT` (same core function, same trace), so a folder of these files is a
//!   column of `samplediff check-backends --include wasm-cpu=DIR`;
//! * [`run_workflow_webgpu`] (browser build): the same run on burn-wgpu's WebGPU device through
//!   the core's asynchronous front end (`samplediff_workflow::run_async`: WebGPU buffers can only
//!   be read asynchronously), the `wasm-webgpu` column.

use std::collections::BTreeMap;

use burn::tensor::Device;
use samplediff_formats::TensorFile;
use samplediff_model::{Precision, QWEN_IMAGE_ROPE_AXES};
use samplediff_workflow::replay::replay_file;
use samplediff_workflow::{ModelFiles, RunOptions, Workflow};

use crate::backend::cpu;
use crate::files::Loaded;

/// What the outputs' metadata names as the backend.
pub const BACKEND: &str = "wasm-cpu";

/// The inputs of a run, decoded: what both run exports take.
struct RunInputs {
    workflow: Workflow,
    model: TensorFile,
    lora: Option<TensorFile>,
    rope_axes: [usize; 3],
}

impl RunInputs {
    fn read(
        workflow: Vec<u8>,
        model: Vec<u8>,
        lora: Option<Vec<u8>>,
        rope_axes: Option<Vec<usize>>,
    ) -> Result<Self, String> {
        let rope_axes: [usize; 3] = match rope_axes {
            None => QWEN_IMAGE_ROPE_AXES,
            Some(v) => {
                v.try_into().map_err(|v: Vec<usize>| format!("ropeAxes needs three numbers, got {}", v.len()))?
            }
        };
        let wf_file = Loaded::read("workflow", workflow, None)?.file;
        let workflow = Workflow::from_file(&wf_file).map_err(|e| format!("workflow: {e}"))?;
        let model = Loaded::read("model", model, None)?.file;
        let lora = lora.map(|b| Loaded::read("lora", b, None)).transpose()?.map(|l| l.file);
        Ok(Self { workflow, model, lora, rope_axes })
    }

    fn files(&self) -> ModelFiles<'_> {
        ModelFiles { diffusion_model: &self.model, lora: self.lora.as_ref() }
    }

    fn options(&self, device: Device) -> RunOptions {
        RunOptions { device, precision: Precision::F32, rope_axes: self.rope_axes }
    }
}

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
    let inputs = RunInputs::read(workflow, model, lora, rope_axes)?;
    let trace = samplediff_workflow::run(&inputs.workflow, &inputs.files(), &inputs.options(cpu()))?;
    trace.to_safetensors().map_err(|e| e.to_string())
}

/// [`run_workflow`] on burn-wgpu's WebGPU device (initialised here if it was not yet; an error
/// says why when the browser has none). The LoRA is merged on the CPU device and uploaded; the
/// trace is read back once, asynchronously, when the run is over.
#[cfg(target_arch = "wasm32")]
pub async fn run_workflow_webgpu(
    workflow: Vec<u8>,
    model: Vec<u8>,
    lora: Option<Vec<u8>>,
    rope_axes: Option<Vec<usize>>,
) -> Result<Vec<u8>, String> {
    let inputs = RunInputs::read(workflow, model, lora, rope_axes)?;
    let gpu = crate::backend::init_webgpu().await?;
    let trace = samplediff_workflow::run_async(&inputs.workflow, &inputs.files(), &inputs.options(gpu), &cpu()).await?;
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
