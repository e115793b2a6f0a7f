//! The golden replays on burn-wgpu: how far a GPU (or lavapipe) run of the chain is from ComfyUI's
//! CPU results. Build with `--features wgpu`; needs a Vulkan/Metal/DX12 adapter (lavapipe will do:
//! `apt-get install mesa-vulkan-drivers libvulkan1`, `XDG_RUNTIME_DIR` set).
//!
//! WGSL does not promise correctly rounded division and square root, and drivers may contract
//! `a * b + c` into a fused multiply-add, so bit-exactness is not expected; the bar is
//! 1e-6 absolute on every recomputed tensor. The measured differences are printed per workflow.
#![cfg(feature = "wgpu")]

use std::path::PathBuf;

use burn::tensor::{Device, DeviceKind};
use samplediff_chain::replay::{NamedTensor, RecordedRun, compare, max_abs_diff, replay};

fn workflows() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/comfyui");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("wf_"))
        .collect();
    files.sort();
    files
}

fn load(path: &PathBuf, device: &Device) -> RecordedRun {
    let file =
        samplediff_formats::safetensors::read(samplediff_formats::Bytes::new(std::fs::read(path).unwrap())).unwrap();
    let tensors = file
        .tensors
        .iter()
        .map(|t| NamedTensor { name: t.name.clone(), shape: t.shape.clone(), data: t.to_f32_vec() })
        .collect();
    RecordedRun::from_tensors(tensors, &file.metadata, device).unwrap()
}

#[test]
fn wgpu_replay_is_within_1e_6_of_comfyui() {
    let gpu = Device::wgpu(DeviceKind::DefaultDevice);
    let cpu = Device::flex();
    let mut overall = 0.0f32;
    for path in workflows() {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let on_gpu = replay(&load(&path, &gpu)).unwrap();
        let run_cpu = load(&path, &cpu);
        let on_cpu = replay(&run_cpu).unwrap();
        // Against ComfyUI (recorded tensors uploaded to the GPU) ...
        let vs_comfy = compare(&load(&path, &gpu), &on_gpu).unwrap();
        let worst = vs_comfy.iter().fold(0.0f32, |w, c| w.max(c.max_abs));
        let worst_name = vs_comfy.iter().max_by(|a, b| a.max_abs.total_cmp(&b.max_abs)).unwrap().name.clone();
        let identical = vs_comfy.iter().filter(|c| c.max_abs == 0.0).count();
        // ... and against the same chain on flex.
        let out_gpu = on_gpu.latent_out.clone().to_device(&cpu);
        let vs_flex = max_abs_diff(&out_gpu, &on_cpu.latent_out).unwrap();
        eprintln!("{name}: computed on {:?}", on_gpu.latent_out.device());
        eprintln!(
            "{name}: wgpu vs ComfyUI worst max abs {worst:e} ({worst_name}), {identical}/{} tensors identical; \
             latent_out wgpu vs flex {vs_flex:e}",
            vs_comfy.len()
        );
        overall = overall.max(worst);
    }
    eprintln!("wgpu replay: worst max abs over all workflows {overall:e}");
    assert!(overall <= 1e-6, "wgpu replay differs from ComfyUI by {overall:e}");
}
