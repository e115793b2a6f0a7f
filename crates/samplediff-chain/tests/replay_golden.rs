//! Replays every golden ComfyUI run (`tests/fixtures/comfyui/wf_*.safetensors`) through the chain
//! with the recorded model predictions and demands bit-identical results on burn's CPU backend.

use std::path::PathBuf;

use burn::tensor::Device;
use samplediff_chain::replay::{NamedTensor, RecordedRun, ReplayStart, compare, replay};

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

#[test]
fn replay_from_recorded_start_is_bit_identical() {
    let device = Device::flex();
    for path in workflows() {
        let run = load(&path, &device);
        let sigmas = run.sigmas_from_calls().unwrap();
        let replayed = replay(&run, &sigmas, ReplayStart::RecordedX, None).unwrap();
        let cmp = compare(&run, &replayed).unwrap();
        let worst = cmp.iter().fold(0.0f32, |w, c| w.max(c.max_abs));
        for c in &cmp {
            if c.max_abs != 0.0 {
                eprintln!("{}: {} max abs {:e}", path.display(), c.name, c.max_abs);
            }
        }
        eprintln!("{}: {} tensors, worst {worst:e}", path.file_name().unwrap().to_str().unwrap(), cmp.len());
        assert!(cmp.iter().all(|c| c.max_abs == 0.0), "{} differs from ComfyUI", path.display());
    }
}
