//! The burn DiT against real ComfyUI, model call by model call.
//!
//! Every `tests/fixtures/comfyui/wf_*.safetensors` recorded each model call of a ComfyUI run
//! (UNETLoader(tiny_qwen) → LoraLoaderModelOnly(lora, strength) → ModelSamplingAuraFlow → CFGNorm →
//! KSampler, CPU, float32): the sampler's `x` and `sigma` and the per-side predictions
//! `cond_denoised = x − v_cond·σ` (and `uncond_denoised` when cfg ≠ 1). Loading the same model with
//! the same LoRA here and evaluating it on the recorded inputs must reproduce those predictions.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use samplediff_chain::denoiser::{Denoiser, ModelCall};
use samplediff_formats::{TensorFile, safetensors};
use samplediff_model::{LoadOptions, LoraSpec, Precision, QwenDenoiser, QwenImageModel};

/// Bound on |ours − ComfyUI| per element of each prediction (float32 on both sides; the residual is
/// GEMM/reduction order).
const TOLERANCE: f32 = 1e-5;
const TINY_ROPE_AXES: [usize; 3] = [8, 12, 12];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/comfyui")
}

fn read(path: &Path) -> TensorFile {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    safetensors::read(samplediff_formats::Bytes::new(bytes)).unwrap()
}

fn tensor<const D: usize>(file: &TensorFile, name: &str, device: &Device) -> Tensor<D> {
    let t = file.get(name).unwrap_or_else(|| panic!("missing {name}"));
    Tensor::from_data(TensorData::new(t.to_f32_vec(), t.shape.clone()), device)
}

fn meta<T: serde::de::DeserializeOwned>(file: &TensorFile, key: &str) -> T {
    serde_json::from_str(&file.metadata[key]).unwrap_or_else(|e| panic!("metadata {key}: {e}"))
}

fn max_abs(a: Tensor<5>, b: Tensor<5>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

/// The tiny model with the workflow's LoRA at `strength` (the recorded one when `None`).
fn load_model(wf: &TensorFile, strength: Option<f64>, precision: Precision, device: &Device) -> QwenImageModel {
    let model_file = read(&fixtures().join("models/diffusion_models/tiny_qwen.safetensors"));
    let lora_name: String = meta(wf, "lora");
    let strength = strength.unwrap_or_else(|| meta(wf, "lora_strength"));
    let lora_file = read(&fixtures().join("models/loras").join(&lora_name));
    let options = LoadOptions { rope_axes: TINY_ROPE_AXES, precision, weight_dtype: None };
    let (model, reports) =
        QwenImageModel::load(&model_file, &[LoraSpec { file: &lora_file, strength }], &options, device).unwrap();
    assert!(reports[0].unused_keys.is_empty(), "unused LoRA keys {:?}", reports[0].unused_keys);
    model
}

/// Runs every recorded call of one workflow file; returns the worst error per side.
fn check_workflow(path: &Path) -> (f32, f32) {
    let device = Device::flex();
    let wf = read(path);
    let cfg: f64 = meta(&wf, "cfg");
    let model = load_model(&wf, None, Precision::F32, &device);

    let positive = tensor::<3>(&wf, "positive", &device);
    let negative = tensor::<3>(&wf, "negative", &device);
    let mut denoiser = QwenDenoiser::new(model, positive, Some(negative));

    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let (mut worst_cond, mut worst_uncond) = (0f32, 0f32);
    for index in 0.. {
        let prefix = format!("call{index:03}");
        if wf.get(&format!("{prefix}.x")).is_none() {
            assert!(index > 0, "{name}: no recorded calls");
            break;
        }
        let x = tensor::<5>(&wf, &format!("{prefix}.x"), &device);
        let sigma = wf.get(&format!("{prefix}.sigma")).unwrap().to_f32_vec()[0];
        let call = ModelCall { index, x: &x, sigma, needs_uncond: cfg != 1.0 };
        let predictions = denoiser.predict(&call).unwrap();

        let cond = predictions.cond.into_denoised(&x, sigma);
        let err = max_abs(cond, tensor(&wf, &format!("{prefix}.cond_denoised"), &device));
        let mut line = format!("{name} {prefix} sigma {sigma:.6}: cond max|d| {err:.3e}");
        worst_cond = worst_cond.max(err);
        if let Some(uncond) = predictions.uncond {
            let err = max_abs(uncond.into_denoised(&x, sigma), tensor(&wf, &format!("{prefix}.uncond_denoised"), &device));
            line += &format!(", uncond max|d| {err:.3e}");
            worst_uncond = worst_uncond.max(err);
        }
        println!("{line}");
    }
    (worst_cond, worst_uncond)
}

#[test]
fn every_recorded_model_call_matches_comfyui() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("wf_"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "expected the wf_*.safetensors fixtures");
    for path in files {
        let (cond, uncond) = check_workflow(&path);
        println!("{}: worst cond {cond:.3e}, worst uncond {uncond:.3e}", path.display());
        assert!(cond <= TOLERANCE && uncond <= TOLERANCE, "{}: cond {cond:e}, uncond {uncond:e}", path.display());
    }
}

/// The error of the first recorded positive prediction for a model variant.
fn first_call_error(file: &str, strength: Option<f64>, precision: Precision) -> f32 {
    let device = Device::flex();
    let wf = read(&fixtures().join(file));
    let model = load_model(&wf, strength, precision, &device);
    let x = tensor::<5>(&wf, "call000.x", &device);
    let sigma = wf.get("call000.sigma").unwrap().to_f32_vec()[0];
    let v = model.forward(x.clone(), &[sigma], tensor(&wf, "positive", &device)).unwrap();
    max_abs(x - v.mul_scalar(sigma), tensor(&wf, "call000.cond_denoised", &device))
}

/// The comparison above can fail: without the LoRA merged, the predictions miss by orders of
/// magnitude more than the tolerance (measured 2e-2).
#[test]
fn the_lora_merge_is_visible_in_the_predictions() {
    for file in ["wf_euler_simple_cfg3.safetensors", "wf_heun_karras_cfg1.safetensors"] {
        let err = first_call_error(file, Some(0.0), Precision::F32);
        assert!(err > 1e-3, "{file}: without the LoRA the error is only {err:e}");
    }
}

/// bf16 compute (ComfyUI's GPU default) stays close to ComfyUI's float32 predictions. The bound is
/// loose on purpose: bf16 keeps 8 bits of mantissa, and this checks the path runs sanely.
#[test]
fn bf16_compute_tracks_float32() {
    for file in ["wf_euler_simple_cfg3.safetensors", "wf_heun_karras_cfg1.safetensors"] {
        let err = first_call_error(file, None, Precision::BF16);
        println!("{file}: bf16 vs ComfyUI float32, first call: max|d| {err:.3e}");
        assert!(err.is_finite() && err < 0.1, "{file}: bf16 error {err:e}");
    }
}
