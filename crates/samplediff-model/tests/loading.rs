//! Loading: sizes read from the checkpoint, key prefixes, storage dtypes, refused inputs.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use samplediff_chain::lora::{StorageDType, fp8};
use samplediff_formats::{RawTensor, TensorFile, safetensors};
use samplediff_model::weights::Weights;
use samplediff_model::{LoadOptions, LoraSpec, ModelError, Precision, QwenConfig, QwenImageModel};

const AXES: [usize; 3] = [8, 12, 12];

fn read(rel: &str) -> TensorFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/comfyui").join(rel);
    safetensors::read(samplediff_formats::Bytes::new(std::fs::read(path).unwrap())).unwrap()
}

fn tiny() -> TensorFile {
    read("models/diffusion_models/tiny_qwen.safetensors")
}

fn options() -> LoadOptions {
    LoadOptions { rope_axes: AXES, ..Default::default() }
}

/// A velocity for fixed inputs (odd height, text length 3).
fn velocity(model: &QwenImageModel, device: &Device) -> Vec<f32> {
    let x: Vec<f32> = (0..16 * 5 * 4).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let ctx: Vec<f32> = (0..3 * 48).map(|i| ((i * 13 % 29) as f32 / 14.0) - 1.0).collect();
    let x = Tensor::<5>::from_data(TensorData::new(x, [1, 16, 1, 5, 4]), device);
    let ctx = Tensor::<3>::from_data(TensorData::new(ctx, [1, 3, 48]), device);
    let v = model.forward(x, &[0.7], ctx).unwrap();
    assert_eq!(v.dims(), [1, 16, 1, 5, 4]);
    v.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn sizes_come_from_the_tensor_shapes() {
    let (model, _) = QwenImageModel::load(&tiny(), &[], &options(), &Device::flex()).unwrap();
    let c = &model.config;
    assert_eq!(
        (c.in_channels, c.latent_channels, c.inner_dim, c.head_dim, c.heads, c.joint_dim, c.depth, c.mlp_dim),
        (64, 16, 64, 32, 2, 48, 2, 256)
    );
}

#[test]
fn full_checkpoint_prefixes_load_the_same_model() {
    let device = Device::flex();
    let (bare, _) = QwenImageModel::load(&tiny(), &[], &options(), &device).unwrap();
    let expected = velocity(&bare, &device);
    for prefix in ["diffusion_model.", "model.diffusion_model."] {
        let mut file = tiny();
        file.tensors.iter_mut().for_each(|t| t.name = format!("{prefix}{}", t.name));
        let (model, _) = QwenImageModel::load(&file, &[], &options(), &device).unwrap();
        assert_eq!(velocity(&model, &device), expected, "{prefix}");
    }
}

#[test]
fn wrong_rope_axes_and_shapes_are_errors() {
    let device = Device::flex();
    let bad = LoadOptions { rope_axes: [16, 56, 56], ..Default::default() };
    assert!(matches!(QwenImageModel::load(&tiny(), &[], &bad, &device), Err(ModelError::Invalid(_))));

    let mut file = tiny();
    file.tensors.retain(|t| t.name != "txt_in.weight");
    let err = QwenImageModel::load(&file, &[], &options(), &device).unwrap_err();
    assert!(err.to_string().contains("txt_in.weight"), "{err}");

    let (model, _) = QwenImageModel::load(&tiny(), &[], &options(), &device).unwrap();
    let x = Tensor::<5>::zeros([1, 4, 1, 4, 4], &device);
    let ctx = Tensor::<3>::zeros([1, 2, 48], &device);
    assert!(model.forward(x, &[0.0], ctx).is_err());
}

#[test]
fn config_infer_counts_blocks() {
    let file = tiny();
    let shape = |p: &str| file.get(p).map(|t: &RawTensor| t.shape.as_slice());
    let c = QwenConfig::infer(shape, file.names(), AXES).unwrap();
    assert_eq!(c.depth, 2);
}

/// UNETLoader's fp8 weight_dtype: every parameter is held in fp8 (round-to-nearest-even from the
/// float32 file), and LoRA-patched ones are re-rounded stochastically after the float32 merge.
#[test]
fn fp8_storage_holds_fp8_values_and_rounds_merges_stochastically() {
    let device = Device::flex();
    let file = tiny();
    let lora = read("models/loras/tiny_kohya.safetensors");
    let spec = [LoraSpec { file: &lora, strength: 1.0 }];
    let (fp8_weights, _) = Weights::new(&file, &spec, Precision::F32, Some(StorageDType::F8E4M3Fn), &device).unwrap();
    let (f32_weights, _) = Weights::new(&file, &spec, Precision::F32, None, &device).unwrap();
    let representable = |v: &[f32]| {
        v.iter().all(|&x| fp8::to_f32(fp8::e4m3fn_from_f32(x), StorageDType::F8E4M3Fn).to_bits() == x.to_bits())
    };

    let unpatched = "img_in.weight";
    let (stored, _) = fp8_weights.values(unpatched).unwrap();
    let mut nearest = file.get(unpatched).unwrap().to_f32_vec();
    fp8::round_nearest(&mut nearest, StorageDType::F8E4M3Fn);
    assert_eq!(stored, nearest);

    let patched = "transformer_blocks.0.attn.to_q.weight";
    let (stored, _) = fp8_weights.values(patched).unwrap();
    let (merged, _) = f32_weights.values(patched).unwrap();
    let original = file.get(patched).unwrap().to_f32_vec();
    let mut base = original.clone();
    fp8::round_nearest(&mut base, StorageDType::F8E4M3Fn);
    assert!(representable(&stored));
    // The merge starts from the fp8 weight: reference = fp8(W) + LoRA delta. Stochastic rounding
    // lands on one of the two fp8 neighbours of it, so within one fp8 step.
    let mut moved = 0;
    for i in 0..stored.len() {
        let reference = base[i] + (merged[i] - original[i]);
        let step = (stored[i].abs().max(reference.abs()) * 0.125).max(2f32.powi(-9));
        assert!((stored[i] - reference).abs() <= step, "{} is not an fp8 neighbour of {reference}", stored[i]);
        moved += (stored[i] != base[i]) as usize;
    }
    assert!(moved > 0, "the LoRA should move some fp8 weights");
    let mut nearest_merged: Vec<f32> = (0..stored.len()).map(|i| base[i] + (merged[i] - original[i])).collect();
    fp8::round_nearest(&mut nearest_merged, StorageDType::F8E4M3Fn);
    assert_ne!(stored, nearest_merged, "stochastic rounding should differ from RNE somewhere");

    // And the whole model runs on those weights.
    let opts = LoadOptions { weight_dtype: Some(StorageDType::F8E4M3Fn), ..options() };
    let (model, _) = QwenImageModel::load(&file, &spec, &opts, &device).unwrap();
    assert!(velocity(&model, &device).iter().all(|v| v.is_finite()));
}
