//! `samplediff run` semantics against real ComfyUI: every golden workflow, from its seed, on
//! burn's CPU backend in float32, reproduces ComfyUI's `latent_out` and every step to 1e-4.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use samplediff_formats::{Bytes, TensorFile, safetensors};
use samplediff_model::Precision;
use samplediff_workflow::{ModelFiles, RunOptions, Workflow, agreement, run};

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
