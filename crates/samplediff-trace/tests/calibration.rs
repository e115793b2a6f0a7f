//! Calibration of the float32 rounding floor (see `samplediff_trace::rounding` and
//! docs/trace-format.md): the numbers behind the constants, measured, and the margins the
//! floor must keep.

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::{Run, fixtures, golden, golden_names, read, record};
use samplediff_chain::denoiser::{Denoiser, ModelCall};
use samplediff_model::{LoadOptions, LoraSpec, Precision, QwenDenoiser, QwenImageModel};
use samplediff_trace::analysis::SideAnalysis;
use samplediff_trace::numeric::{F32_UNIT_ROUNDOFF, rel_rms};
use samplediff_trace::rounding::{
    CHAIN_SAFETY, MEASURED_BF16_WEIGHTS, MEASURED_F16_CONDITIONING, MEASURED_LORA_HALF, MEASURED_MODEL_REORDER, MODEL_FLOOR,
};
use samplediff_trace::{Trace, host};

/// The same float32 model through other kernels: ComfyUI/torch (recorded) against burn flex,
/// every recorded call of every golden run, relative RMS of each side's prediction.
fn model_reorder_noise() -> f64 {
    let device = Device::flex();
    let mut worst = 0.0f64;
    for name in golden_names() {
        let t = golden(&name);
        let model_file = read(&fixtures().join("models/diffusion_models/tiny_qwen.safetensors"));
        let lora = read(&fixtures().join("models/loras").join(t.setting_str("lora").unwrap()));
        let spec = LoraSpec { file: &lora, strength: t.setting_f64("lora_strength").unwrap() };
        let options = LoadOptions { rope_axes: common::TINY_ROPE_AXES, precision: Precision::F32, weight_dtype: None };
        let (model, _) = QwenImageModel::load(&model_file, &[spec], &options, &device).unwrap();
        let cond = |n: &str| {
            let r = t.get(n).unwrap();
            Tensor::<3>::from_data(TensorData::new(r.to_f32_vec(), r.shape.clone()), &device)
        };
        let mut d = QwenDenoiser::new(model, cond("positive"), Some(cond("negative")));
        let cfg1 = t.setting_f64("cfg") == Some(1.0);
        for k in 0..t.call_count() {
            let x = t.tensor5(&format!("call{k:03}.x"), &device).unwrap();
            let sigma = t.call_sigmas()[k];
            let p = d.predict(&ModelCall { index: k, x: &x, sigma, needs_uncond: !cfg1 }).unwrap();
            let c = host(&p.cond.into_denoised(&x, sigma)).unwrap();
            worst = worst.max(rel_rms(&c, &t.values(&format!("call{k:03}.cond_denoised")).unwrap()));
            if let Some(u) = p.uncond {
                let u = host(&u.into_denoised(&x, sigma)).unwrap();
                worst = worst.max(rel_rms(&u, &t.values(&format!("call{k:03}.uncond_denoised")).unwrap()));
            }
        }
    }
    worst
}

/// Relative RMS of the first call's predictions between two recorded runs.
fn first_prediction_change(a: &Trace, b: &Trace) -> f64 {
    ["cond_denoised", "uncond_denoised"]
        .iter()
        .map(|f| rel_rms(&a.values(&format!("call000.{f}")).unwrap(), &b.values(&format!("call000.{f}")).unwrap()))
        .fold(0.0, f64::max)
}

#[test]
fn model_floor_sits_between_reordering_and_lower_precision() {
    let reorder = model_reorder_noise();
    let base = record(&Run::default());
    let f16 = first_prediction_change(&base, &record(&Run { cond_f16: true, ..Run::default() }));
    let bf16 = first_prediction_change(&base, &record(&Run { precision: Precision::BF16, ..Run::default() }));
    let lora = first_prediction_change(&base, &record(&Run { lora_strength: 0.5, ..Run::default() }));
    eprintln!("model reorder noise (burn vs ComfyUI, f32): {reorder:.3e} relative RMS ({:.1} unit roundoffs)", reorder / F32_UNIT_ROUNDOFF);
    eprintln!("float16 round trip of the conditioning, first prediction: {f16:.3e}");
    eprintln!("bfloat16 weights and compute, first prediction: {bf16:.3e}");
    eprintln!("LoRA strength 0.5 instead of 1, first prediction: {lora:.3e}");
    eprintln!("MODEL_FLOOR {MODEL_FLOOR:.3e}");
    // The recorded calibration constants are what this measures (within a factor 2).
    for (name, measured, recorded) in [
        ("reorder", reorder, MEASURED_MODEL_REORDER),
        ("f16 conditioning", f16, MEASURED_F16_CONDITIONING),
        ("bf16 weights", bf16, MEASURED_BF16_WEIGHTS),
        ("LoRA half strength", lora, MEASURED_LORA_HALF),
    ] {
        assert!(measured <= 2.0 * recorded && measured >= recorded / 2.0, "{name}: measured {measured:e}, recorded {recorded:e}");
    }
    // Margins: the floor is >= 50x above float32 reordering and >= 10x below a real model change.
    assert!(50.0 * reorder <= MODEL_FLOOR, "floor {MODEL_FLOOR:e} too close to reorder noise {reorder:e}");
    assert!(MODEL_FLOOR * 10.0 <= lora.min(bf16), "floor {MODEL_FLOOR:e} would hide a model change");
    // A changed input can be smaller than the floor: inputs are compared bit for bit instead.
    assert!(f16 < MODEL_FLOOR);
}

/// The chain part of the floor, measured per trace (float32 vs float64 replay), stays a few
/// unit roundoffs: the safety factor turns it into a floor far below any real cause.
#[test]
fn chain_floor_is_a_few_unit_roundoffs() {
    let device = Device::flex();
    for name in golden_names() {
        let t = golden(&name);
        let s = SideAnalysis::of(&t, None, &device);
        let worst = s.floor.chain.values().copied().fold(0.0, f64::max);
        eprintln!("{name}: float32 vs float64 chain replay, worst {worst:.3e} ({:.1} u); floor x{CHAIN_SAFETY}", worst / F32_UNIT_ROUNDOFF);
        assert!(worst > 0.0, "a replay with no rounding at all is suspicious");
        assert!(worst < 64.0 * F32_UNIT_ROUNDOFF, "{name}: {worst:e}");
    }
}
