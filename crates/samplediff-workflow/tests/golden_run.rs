//! `samplediff run` semantics against real ComfyUI: every golden workflow, from its seed, on
//! burn's CPU backend in float32, reproduces ComfyUI's `latent_out` and every step to 1e-4.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use samplediff_formats::{Bytes, TensorFile, safetensors};
use samplediff_model::Precision;
use samplediff_workflow::{ModelFiles, RunOptions, Workflow, agreement, run, run_async};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/comfyui")
}

fn read(path: &Path) -> TensorFile {
    safetensors::read(Bytes::new(std::fs::read(path).unwrap())).unwrap()
}

#[test]
fn every_golden_workflow_runs_to_comfyui_latent_out() {
    let dir = fixtures();
    let model = read(&dir.join("models/diffusion_models/tiny_qwen.safetensors"));
    let mut wfs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("wf_"))
        .collect();
    wfs.sort();
    assert!(wfs.len() >= 3);
    let options = RunOptions { device: Device::flex(), precision: Precision::F32, rope_axes: [8, 12, 12] };
    for path in wfs {
        let golden = read(&path);
        let wf = Workflow::from_file(&golden).unwrap();
        let lora = wf.lora.as_ref().map(|(name, _)| read(&dir.join("models/loras").join(name)));
        let trace = run(&wf, &ModelFiles { diffusion_model: &model, lora: lora.as_ref() }, &options).unwrap();
        let rows = agreement(&trace, &golden);
        assert!(rows.iter().any(|r| r.name == "latent_out"));
        for r in &rows {
            println!("{}: {} max abs {:e} mean abs {:e}", path.file_name().unwrap().to_str().unwrap(), r.name, r.max_abs, r.mean_abs);
            assert!(r.max_abs <= 1e-4, "{} {}: max abs {}", path.display(), r.name, r.max_abs);
        }
    }
}

/// The asynchronous front end (WebGPU's) on the CPU backend: LoRA merged on a second CPU device,
/// trace read back at the end in one transaction. Nothing else differs, so the trace is the
/// blocking run's, bit for bit, tensor for tensor.
#[test]
fn run_async_records_the_blocking_runs_trace() {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    let dir = fixtures();
    let model = read(&dir.join("models/diffusion_models/tiny_qwen.safetensors"));
    let golden = read(&dir.join("wf_euler_simple_cfg3.safetensors"));
    let wf = Workflow::from_file(&golden).unwrap();
    let lora = wf.lora.as_ref().map(|(name, _)| read(&dir.join("models/loras").join(name)));
    assert!(lora.is_some(), "the workflow exercises the LoRA merge");
    let files = ModelFiles { diffusion_model: &model, lora: lora.as_ref() };
    let options = RunOptions { device: Device::flex(), precision: Precision::F32, rope_axes: [8, 12, 12] };

    let blocking = run(&wf, &files, &options).unwrap().to_file();
    // The CPU backend's reads are ready at once: one poll finishes the run.
    let merge_device = Device::flex();
    let run = pin!(run_async(&wf, &files, &options, &merge_device));
    let Poll::Ready(deferred) = run.poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("the CPU run was not ready")
    };
    let deferred = deferred.unwrap().to_file();

    let names = |f: &TensorFile| f.tensors.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&deferred), names(&blocking));
    assert!(names(&blocking).iter().any(|n| n == "latent_out") && names(&blocking).len() > 20);
    for (a, b) in deferred.tensors.iter().zip(&blocking.tensors) {
        assert_eq!((&a.shape, &*a.data), (&b.shape, &*b.data), "{}", a.name);
    }
    assert_eq!(deferred.metadata, blocking.metadata);
}
