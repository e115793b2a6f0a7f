//! From checkpoint tensors to device weights: prefix handling, storage dtype, LoRA merge, upload.
//!
//! Each parameter goes through the same steps as in ComfyUI's `UNETLoader → LoraLoaderModelOnly`
//! on a full load:
//!
//! 1. decode the file's values (exact for every float dtype);
//! 2. round to the **storage dtype** (`load_state_dict`'s round-to-nearest-even cast): the
//!    `weight_dtype` override if given (UNETLoader's `fp8_e4m3fn` …), else the file's fp8 dtype
//!    for an fp8 file, else the compute dtype;
//! 3. if LoRA patches target it: merge in float32 on the merge device (the model's device unless
//!    [`Weights::merging_on`] names another), read back and round to the storage dtype once more
//!    (stochastic rounding with the CRC32-seeded CPU generator for fp8), see
//!    [`samplediff_chain::lora`];
//! 4. upload in the compute dtype (exact: storage values are representable in it, except for an
//!    explicit f32 storage under bf16 compute, which rounds like ComfyUI's `manual_cast`).

use std::collections::HashMap;

use burn::tensor::{DType, Device, Tensor, TensorData};
use samplediff_chain::lora::{
    self, KeyMap, LoraFile, LoraTensor, MODEL_PREFIX, PatchSet, StorageDType, fp8, merge_weight,
};
use samplediff_formats::{DType as FileDType, RawTensor, TensorFile};

use crate::error::{Result, checkpoint};
use crate::layers::Linear;

/// Compute dtype of the forward pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// float32 everywhere (what ComfyUI does with `--cpu`; the golden data's mode).
    #[default]
    F32,
    /// bfloat16 weights and activations (ComfyUI's default on a recent GPU).
    BF16,
}

impl Precision {
    pub fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::BF16 => DType::BF16,
        }
    }

    fn storage(self) -> StorageDType {
        match self {
            Precision::F32 => StorageDType::F32,
            Precision::BF16 => StorageDType::BF16,
        }
    }
}

/// A LoRA to merge on load, as `LoraLoaderModelOnly(lora, strength_model)`.
#[derive(Clone, Copy, Debug)]
pub struct LoraSpec<'a> {
    pub file: &'a TensorFile,
    pub strength: f64,
}

/// What loading did with one LoRA.
#[derive(Clone, Debug, Default)]
pub struct LoraReport {
    /// Model parameters it patched (`diffusion_model.…` names).
    pub patched: Vec<String>,
    /// Its tensors that mapped to nothing (ComfyUI: "lora key not loaded").
    pub unused_keys: Vec<String>,
}

/// The checkpoint's tensors by parameter path (prefix stripped) and the LoRA patches to apply.
pub struct Weights<'a> {
    tensors: HashMap<&'a str, &'a RawTensor>,
    patches: PatchSet,
    precision: Precision,
    weight_dtype: Option<StorageDType>,
    device: Device,
    /// Where LoRA merges run (their results are read back synchronously).
    merge_device: Device,
}

/// Parameter path of a checkpoint key: ComfyUI accepts bare keys and the `model.diffusion_model.`
/// / `diffusion_model.` prefixes of full checkpoints.
pub fn parameter_path(key: &str) -> &str {
    key.strip_prefix("model.diffusion_model.").or_else(|| key.strip_prefix(MODEL_PREFIX)).unwrap_or(key)
}

impl<'a> Weights<'a> {
    pub fn new(
        file: &'a TensorFile,
        loras: &[LoraSpec<'_>],
        precision: Precision,
        weight_dtype: Option<StorageDType>,
        device: &Device,
    ) -> Result<(Self, Vec<LoraReport>)> {
        if file.tensors.iter().any(|t| t.name.ends_with("scaled_fp8") || t.name.ends_with(".scale_weight")) {
            return Err(checkpoint("scaled-fp8 checkpoints (scale_weight tensors) are not supported"));
        }
        let tensors: HashMap<&str, &RawTensor> = file.tensors.iter().map(|t| (parameter_path(&t.name), t)).collect();
        let key_map: KeyMap = lora::qwen_image_key_map(tensors.keys().copied());
        let mut patches = PatchSet::new();
        let mut reports = Vec::new();
        for spec in loras {
            let decoded = decode_lora(spec.file)?;
            let load = patches.add_lora(&decoded, &key_map, spec.strength)?;
            reports.push(LoraReport { patched: load.patched, unused_keys: load.unused_keys });
        }
        let weights =
            Self { tensors, patches, precision, weight_dtype, device: device.clone(), merge_device: device.clone() };
        Ok((weights, reports))
    }

    /// Merges LoRA patches on `device` instead of the model's device; the merged weights are
    /// uploaded to the model's device as usual. For a device that cannot read back synchronously
    /// (WebGPU in a browser): merge on the CPU.
    pub fn merging_on(mut self, device: &Device) -> Self {
        self.merge_device = device.clone();
        self
    }

    pub fn shape(&self, path: &str) -> Option<&'a [usize]> {
        self.tensors.get(path).map(|t| t.shape.as_slice())
    }

    pub fn paths(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.tensors.keys().copied()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.precision.dtype()
    }

    fn raw(&self, path: &str) -> Result<&'a RawTensor> {
        self.tensors.get(path).copied().ok_or_else(|| checkpoint(format!("missing tensor {path}")))
    }

    /// The storage dtype of a parameter stored as `file_dtype` in the checkpoint.
    fn storage(&self, file_dtype: FileDType) -> StorageDType {
        self.weight_dtype.unwrap_or(match file_dtype {
            FileDType::F8_E4M3 => StorageDType::F8E4M3Fn,
            FileDType::F8_E5M2 => StorageDType::F8E5M2,
            _ => self.precision.storage(),
        })
    }

    /// Steps 1–3 of the module docs: the parameter's values as the model will hold them.
    pub fn values(&self, path: &str) -> Result<(Vec<f32>, Vec<usize>)> {
        let raw = self.raw(path)?;
        if !raw.dtype.is_float() {
            return Err(checkpoint(format!("{path} has non-float dtype {}", raw.dtype)));
        }
        let mut values = raw.to_f32_vec();
        let shape = raw.shape.clone();
        if values.len() != raw.numel() {
            return Err(checkpoint(format!("{path}: {} bytes do not hold shape {shape:?}", raw.data.len())));
        }
        let storage = self.storage(raw.dtype);
        round_nearest(&mut values, storage);
        let key = format!("{MODEL_PREFIX}{path}");
        let patches = self.patches.get(&key);
        if !patches.is_empty() {
            let merged = match shape.len() {
                1 => read(merge_weight(self.upload_for_merge::<1>(&values, &shape), patches, &key)?),
                2 => read(merge_weight(self.upload_for_merge::<2>(&values, &shape), patches, &key)?),
                _ => return Err(checkpoint(format!("{path}: LoRA on a rank-{} tensor", shape.len()))),
            };
            values = merged;
            lora::round_to_storage_cpu(&mut values, storage, &key);
        }
        Ok((values, shape))
    }

    fn upload_for_merge<const D: usize>(&self, values: &[f32], shape: &[usize]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(values.to_vec(), shape.to_vec()), (&self.merge_device, DType::F32))
    }

    /// A 1-D parameter in the compute dtype.
    pub fn vector(&self, path: &str, len: usize) -> Result<Tensor<1>> {
        let (values, shape) = self.values(path)?;
        if shape != [len] {
            return Err(checkpoint(format!("{path} has shape {shape:?}, expected [{len}]")));
        }
        Ok(Tensor::from_data(TensorData::new(values, shape), (&self.device, self.dtype())))
    }

    /// `nn.Linear` `<prefix>.weight` `[out, in]` (+ `<prefix>.bias`), transposed to burn's `[in, out]`.
    pub fn linear(&self, prefix: &str, in_dim: usize, out_dim: usize) -> Result<Linear> {
        let path = format!("{prefix}.weight");
        let (values, shape) = self.values(&path)?;
        if shape != [out_dim, in_dim] {
            return Err(checkpoint(format!("{path} has shape {shape:?}, expected [{out_dim}, {in_dim}]")));
        }
        let mut transposed = vec![0f32; values.len()];
        for (o, row) in values.chunks_exact(in_dim).enumerate() {
            for (i, v) in row.iter().enumerate() {
                transposed[i * out_dim + o] = *v;
            }
        }
        let weight = Tensor::from_data(TensorData::new(transposed, [in_dim, out_dim]), (&self.device, self.dtype()));
        let bias_path = format!("{prefix}.bias");
        let bias = match self.tensors.contains_key(bias_path.as_str()) {
            true => Some(self.vector(&bias_path, out_dim)?),
            false => None,
        };
        Ok(Linear { weight, bias })
    }

    /// A tensor of ones in the compute dtype (the weight of affine-free norms).
    pub fn ones(&self, len: usize) -> Tensor<1> {
        Tensor::ones([len], (&self.device, self.dtype()))
    }
}

/// Round-to-nearest-even into the storage dtype (torch's `.to(dtype)` on load).
fn round_nearest(values: &mut [f32], storage: StorageDType) {
    match storage {
        StorageDType::F8E4M3Fn | StorageDType::F8E5M2 => fp8::round_nearest(values, storage),
        // f32/f16/bf16 rounding has no randomness: the generator is never asked.
        other => lora::round_to_storage(values, other, || 0),
    }
}

fn read<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("converted to float32")
}

/// A LoRA file's tensors as float32 (ComfyUI casts them to float32 before use).
fn decode_lora(file: &TensorFile) -> Result<LoraFile> {
    let mut out = LoraFile::new();
    for t in &file.tensors {
        if !t.dtype.is_float() {
            return Err(checkpoint(format!("LoRA tensor {} has non-float dtype {}", t.name, t.dtype)));
        }
        out.insert(t.name.clone(), LoraTensor::new(t.shape.clone(), t.to_f32_vec()));
    }
    Ok(out)
}
