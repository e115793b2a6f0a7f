//! Replays every golden ComfyUI run (`tests/fixtures/comfyui/wf_*.safetensors`) through the chain
//! with the recorded model predictions and demands bit-identical results on burn's CPU backend.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use samplediff_chain::replay::{NamedTensor, RecordedRun, ReplayStart, compare, replay, replay_with};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/comfyui")
}

fn workflows() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("wf_"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected the golden wf_* files");
    files
}

fn load(path: &PathBuf, device: &Device) -> RecordedRun {
    let bytes = std::fs::read(path).unwrap();
    let file = samplediff_formats::safetensors::read(samplediff_formats::Bytes::new(bytes)).unwrap();
    let tensors = file
        .tensors
        .iter()
        .map(|t| NamedTensor { name: t.name.clone(), shape: t.shape.clone(), data: t.to_f32_vec() })
        .collect();
    RecordedRun::from_tensors(tensors, &file.metadata, device).unwrap()
}

fn name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

/// The whole chain: scheduler, seed noise, process_in, noise scaling, CFG + CFGNorm, sampler,
/// inverse noise scaling, process_out. Every step, call and the output latent: max abs 0.
#[test]
fn full_replay_is_bit_identical_on_flex() {
    let device = Device::flex();
    for path in workflows() {
        let run = load(&path, &device);
        let replayed = replay(&run).unwrap();
        let cmp = compare(&run, &replayed).unwrap();
        for c in cmp.iter().filter(|c| c.max_abs != 0.0) {
            eprintln!("{}: {} max abs {:e}", name(&path), c.name, c.max_abs);
        }
        eprintln!("{}: {} tensors compared", name(&path), cmp.len());
        assert_eq!(cmp.len(), 2 * run.steps.len() + 2 * run.calls.len() + 1);
        assert!(cmp.iter().all(|c| c.max_abs == 0.0), "{} differs from ComfyUI", name(&path));
    }
}

/// The recomputed schedule is exactly the sigma ComfyUI passed to each model call.
#[test]
fn recomputed_schedule_matches_recorded_call_sigmas() {
    let device = Device::flex();
    for path in workflows() {
        let run = load(&path, &device);
        assert_eq!(run.sigmas().unwrap(), run.sigmas_from_calls().unwrap(), "{}", name(&path));
    }
}

/// Starting from the recorded `call000.x` isolates sampler + guidance from noise generation.
#[test]
fn replay_from_recorded_start_is_bit_identical() {
    let device = Device::flex();
    for path in workflows() {
        let run = load(&path, &device);
        let sigmas = run.sigmas_from_calls().unwrap();
        let replayed = replay_with(&run, &sigmas, ReplayStart::RecordedX, None).unwrap();
        let cmp = compare(&run, &replayed).unwrap();
        assert!(cmp.iter().all(|c| c.max_abs == 0.0), "{} differs from ComfyUI", name(&path));
    }
}
