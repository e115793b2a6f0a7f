//! fp8 storage rounding of merged LoRA weights against real torch + ComfyUI (`comfy/float.py`).
//!
//! `tests/fixtures/lora_fp8/lora_fp8.safetensors` was written by `generate.py` beside it with torch
//! 2.11 on x86-64: for each case the float32 input, ComfyUI's `stochastic_rounding` to
//! float8_e4m3fn / float8_e5m2 with the CPU generator seeded by the CRC-32 of the parameter name,
//! and torch's round-to-nearest-even cast, all as raw fp8 bytes. Both must match byte for byte.

use std::path::Path;

use samplediff_chain::lora::{StorageDType, fp8, round_to_storage_cpu};
use samplediff_formats::{Bytes, TensorFile, safetensors};

fn fixture() -> TensorFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora_fp8/lora_fp8.safetensors");
    safetensors::read(Bytes::new(std::fs::read(&path).expect("fixture"))).expect("safetensors")
}

fn to_bytes(values: &[f32], dtype: StorageDType) -> Vec<u8> {
    values
        .iter()
        .map(|&v| match dtype {
            StorageDType::F8E5M2 => fp8::e5m2_from_f32(v),
            _ => fp8::e4m3fn_from_f32(v),
        })
        .collect()
}

/// Index and bytes of the first difference, if any.
fn first_diff(ours: &[u8], theirs: &[u8]) -> Option<(usize, u8, u8)> {
    ours.iter().zip(theirs).enumerate().find(|(_, (a, b))| a != b).map(|(i, (a, b))| (i, *a, *b))
}

#[test]
fn fp8_rounding_is_bit_exact_with_comfyui_on_the_cpu() {
    let file = fixture();
    let mut cases = 0;
    for case in 0.. {
        let Some(input) = file.get(&format!("case{case}.input")) else { break };
        let key: String = serde_json::from_str(&file.metadata[&format!("case{case}.key")]).unwrap();
        let values = input.to_f32_vec();
        for (label, dtype) in [("e4m3fn", StorageDType::F8E4M3Fn), ("e5m2", StorageDType::F8E5M2)] {
            let stochastic = file.get(&format!("case{case}.{label}.stochastic")).unwrap();
            let mut ours = values.clone();
            round_to_storage_cpu(&mut ours, dtype, &key);
            let ours = to_bytes(&ours, dtype);
            assert_eq!(ours.len(), stochastic.data.len());
            assert_eq!(first_diff(&ours, &stochastic.data), None, "case{case} {label} stochastic ({key})");

            let nearest = file.get(&format!("case{case}.{label}.nearest")).unwrap();
            let mut ours = values.clone();
            fp8::round_nearest(&mut ours, dtype);
            assert_eq!(first_diff(&to_bytes(&ours, dtype), &nearest.data), None, "case{case} {label} nearest");
        }
        cases += 1;
    }
    assert_eq!(cases, 3);
}

/// The seed matters: a different key draws different noise and rounds some values the other way.
#[test]
fn the_parameter_name_seeds_the_rounding() {
    let file = fixture();
    let input = file.get("case0.input").unwrap().to_f32_vec();
    let expected = &file.get("case0.e4m3fn.stochastic").unwrap().data;
    let mut ours = input.clone();
    round_to_storage_cpu(&mut ours, StorageDType::F8E4M3Fn, "diffusion_model.some.other.weight");
    assert!(first_diff(&to_bytes(&ours, StorageDType::F8E4M3Fn), expected).is_some());
}
