//! LoRA the way ComfyUI's `LoraLoaderModelOnly` applies it to a Qwen-Image model.
//!
//! Three steps, each mirroring one place in ComfyUI (commit a125cd84):
//!
//! 1. **Key mapping** ([`qwen_image_key_map`], `comfy/lora.py:model_lora_keys_unet`): every weight
//!    `diffusion_model.<path>.weight` of the model is reachable from the LoRA prefixes
//!    `lora_unet_<path with . → _>` (kohya), `diffusion_model.<path>`, `<path>`, `transformer.<path>`
//!    (diffusers/PEFT) and `lycoris_<path with . → _>`; other parameters (`.bias`) map to themselves.
//! 2. **Patch loading** ([`PatchSet::add_lora`], `comfy/lora.py:load_lora` and
//!    `weight_adapter/lora.py:LoRAAdapter.load`): for each prefix the up/down pair in any of the
//!    accepted spellings (`lora_up/lora_down`, `lora_B/lora_A`, ...), an optional `.alpha`, and the
//!    whole-tensor patches `.diff`, `.diff_b`, `.w_norm`/`.b_norm`, `.set_weight`.
//! 3. **Merge** ([`merge_weight`], `comfy/lora.py:calculate_weight`): in float32,
//!    `W += f32(f32(strength·alpha/rank) · (up @ down))` per patch in insertion order, then **one**
//!    rounding to the storage dtype ([`round_to_storage`], `comfy/float.py:stochastic_rounding`):
//!    round-to-nearest-even for f32/f16/bf16, ComfyUI's CRC32-seeded stochastic rounding for fp8.
//!
//! The merge runs on burn tensors on any device. Its only GEMM is `up @ down` with the LoRA rank as
//! the inner dimension (4..128); burn and torch may accumulate that dot product in a different
//! order, so a merged weight can differ from ComfyUI's by an ulp of `D` (about 1e-7 relative).
//! Everything else (scale rounding, the add, the final rounding) is exact. For the tiny test model
//! the resulting drift in the final latent is far below the 1e-4 golden tolerance.
//!
//! Not supported (reported as [`LoraError::Unsupported`] rather than silently ignored): LoCon
//! `lora_mid`, DoRA `dora_scale`, `reshape_weight`, and the non-LoRA adapters (LoHa, LoKr, GLoRA,
//! OFT, BOFT), whose keys stay in [`LoraLoad::unused_keys`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use burn::tensor::{Device, Tensor, TensorData};

/// Errors of LoRA loading and merging: one line each.
#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("LoRA tensor {name}: {msg}")]
    BadTensor { name: String, msg: String },
    #[error("LoRA feature not supported: {0}")]
    Unsupported(String),
    #[error("weight {key}: {msg}")]
    Merge { key: String, msg: String },
}

/// One tensor of a LoRA file, decoded to float32 (exact for every float dtype LoRAs ship in;
/// ComfyUI casts LoRA tensors to float32 before use as well).
#[derive(Clone, Debug, PartialEq)]
pub struct LoraTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

impl LoraTensor {
    pub fn new(shape: Vec<usize>, values: Vec<f32>) -> Self {
        Self { shape, values }
    }

    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// A LoRA file: tensor name → tensor.
pub type LoraFile = BTreeMap<String, LoraTensor>;

/// One weight patch, as ComfyUI stores it in `ModelPatcher.patches`.
#[derive(Clone, Debug, PartialEq)]
pub enum Patch {
    /// `W += f32(strength·scale) · (up @ down)`, `scale = alpha / rank` (1.0 without alpha).
    Lora { up: LoraTensor, down: LoraTensor, alpha: Option<f64> },
    /// `W += f32(strength) · diff` (skipped when strength is 0 or the shapes differ).
    Diff(LoraTensor),
    /// `W = set`.
    Set(LoraTensor),
}

/// A patch with the strength it was added with (`LoraLoaderModelOnly`'s `strength_model`).
#[derive(Clone, Debug, PartialEq)]
pub struct StrengthPatch {
    pub strength: f64,
    pub patch: Patch,
}

/// ComfyUI's `key_map`: LoRA prefix → model key, in ComfyUI's insertion order (a Python dict:
/// re-inserting a key keeps its first position and replaces its value).
#[derive(Clone, Debug, Default)]
pub struct KeyMap {
    entries: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl KeyMap {
    fn insert(&mut self, lora_prefix: String, model_key: String) {
        match self.index.get(&lora_prefix) {
            Some(&i) => self.entries[i].1 = model_key,
            None => {
                self.index.insert(lora_prefix.clone(), self.entries.len());
                self.entries.push((lora_prefix, model_key));
            }
        }
    }

    /// The model key a LoRA prefix maps to.
    pub fn get(&self, lora_prefix: &str) -> Option<&str> {
        self.index.get(lora_prefix).map(|&i| self.entries[i].1.as_str())
    }

    /// (LoRA prefix, model key) pairs in ComfyUI's order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(a, b)| (a.as_str(), b.as_str()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The prefix ComfyUI gives every diffusion-model parameter in its state dict.
pub const MODEL_PREFIX: &str = "diffusion_model.";

/// `model_lora_keys_unet` for a Qwen-Image model. `model_keys` are the diffusion model's parameter
/// names with or without the `diffusion_model.` prefix (`transformer_blocks.0.attn.to_q.weight`);
/// the map's values always carry it, as ComfyUI's do (the fp8 rounding seed hashes that full name).
pub fn qwen_image_key_map<'a>(model_keys: impl IntoIterator<Item = &'a str>) -> KeyMap {
    let keys: Vec<String> = model_keys
        .into_iter()
        .map(|k| if k.starts_with(MODEL_PREFIX) { k.to_string() } else { format!("{MODEL_PREFIX}{k}") })
        .collect();
    let mut map = KeyMap::default();
    // Generic part, for every model: kohya names and the plain `diffusion_model.<path>` form.
    for k in &keys {
        match k.strip_suffix(".weight") {
            Some(stem) => {
                let path = &stem[MODEL_PREFIX.len()..];
                map.insert(format!("lora_unet_{}", path.replace('.', "_")), k.clone());
                map.insert(stem.to_string(), k.clone());
            }
            None => map.insert(k.clone(), k.clone()),
        }
    }
    // `unet_to_diffusers` is empty for Qwen-Image; then the QwenImage-specific block.
    for k in &keys {
        if let Some(stem) = k.strip_suffix(".weight") {
            let path = &stem[MODEL_PREFIX.len()..];
            map.insert(path.to_string(), k.clone());
            map.insert(format!("transformer.{path}"), k.clone());
            map.insert(format!("lycoris_{}", path.replace('.', "_")), k.clone());
        }
    }
    map
}

/// What [`PatchSet::add_lora`] did with a file.
#[derive(Clone, Debug, Default)]
pub struct LoraLoad {
    /// Model keys that received a patch.
    pub patched: Vec<String>,
    /// LoRA tensors no mapping consumed (ComfyUI logs them as "lora key not loaded").
    pub unused_keys: Vec<String>,
}

/// All patches of a model, per model key, in the order they were added (several LoRAs stack).
#[derive(Clone, Debug, Default)]
pub struct PatchSet {
    patches: BTreeMap<String, Vec<StrengthPatch>>,
}

/// The spellings of an up/down pair `LoRAAdapter.load` accepts, first match wins.
const UP_DOWN_FORMS: [(&str, &str); 7] = [
    (".lora_up.weight", ".lora_down.weight"),
    ("_lora.up.weight", "_lora.down.weight"),
    (".lora_B.weight", ".lora_A.weight"),
    (".lora.up.weight", ".lora.down.weight"),
    (".lora_B", ".lora_A"),
    (".lora_linear_layer.up.weight", ".lora_linear_layer.down.weight"),
    (".lora_B.default.weight", ".lora_A.default.weight"),
];

impl PatchSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// `LoraLoaderModelOnly`: map `lora`'s tensors through `key_map` and append the patches with
    /// `strength`. A strength of 0 adds nothing (ComfyUI returns the model unchanged).
    pub fn add_lora(&mut self, lora: &LoraFile, key_map: &KeyMap, strength: f64) -> Result<LoraLoad, LoraError> {
        let mut load = LoraLoad::default();
        if strength == 0.0 {
            return Ok(load);
        }
        let mut used = BTreeSet::new();
        // ComfyUI's patch_dict: one patch per model key, a later prefix replacing an earlier one.
        let mut patch_dict: Vec<(String, Patch)> = Vec::new();
        for (x, model_key) in key_map.iter() {
            for (key, patch) in patches_for_prefix(lora, x, model_key, &mut used)? {
                match patch_dict.iter_mut().find(|(k, _)| *k == key) {
                    Some(slot) => slot.1 = patch,
                    None => patch_dict.push((key, patch)),
                }
            }
        }
        load.unused_keys = lora.keys().filter(|k| !used.contains(k.as_str())).cloned().collect();
        // `add_patches` keeps only keys of the model's state dict.
        let model_keys: HashSet<&str> = key_map.iter().map(|(_, k)| k).collect();
        for (key, patch) in patch_dict {
            if model_keys.contains(key.as_str()) {
                self.patches.entry(key.clone()).or_default().push(StrengthPatch { strength, patch });
                load.patched.push(key);
            }
        }
        Ok(load)
    }

    /// The patches of one model key (`diffusion_model.<path>`), empty if none.
    pub fn get(&self, model_key: &str) -> &[StrengthPatch] {
        self.patches.get(model_key).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.patches.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.patches.is_empty()
    }
}

/// `load_lora`'s body for one prefix `x` mapped to `model_key`: the patches it yields in
/// ComfyUI's order (an adapter first, then `.w_norm`, `.diff`, `.diff_b`, `.set_weight`, each
/// replacing the previous one for the same key).
fn patches_for_prefix<'a>(
    lora: &'a LoraFile,
    x: &str,
    model_key: &str,
    used: &mut BTreeSet<&'a str>,
) -> Result<Vec<(String, Patch)>, LoraError> {
    let name = |suffix: &str| format!("{x}{suffix}");
    let mut take = |n: &str| -> Option<&'a LoraTensor> {
        let (k, t) = lora.get_key_value(n)?;
        used.insert(k.as_str());
        Some(t)
    };
    let mut out = Vec::new();
    let alpha = match take(&name(".alpha")) {
        Some(t) => Some(scalar(t, &name(".alpha"))?),
        None => None,
    };
    if lora.contains_key(&name(".dora_scale")) {
        return Err(LoraError::Unsupported(format!("DoRA ({x}.dora_scale)")));
    }
    if let Some((up_s, down_s)) = UP_DOWN_FORMS.iter().find(|(u, _)| lora.contains_key(&name(u))) {
        if *up_s == ".lora_up.weight" && lora.contains_key(&name(".lora_mid.weight")) {
            return Err(LoraError::Unsupported(format!("LoCon mid weights ({x}.lora_mid.weight)")));
        }
        if lora.contains_key(&name(".reshape_weight")) {
            return Err(LoraError::Unsupported(format!("{x}.reshape_weight")));
        }
        let up = take(&name(up_s)).cloned();
        let down = take(&name(down_s)).cloned().ok_or_else(|| LoraError::BadTensor {
            name: name(down_s),
            msg: format!("missing (its partner {x}{up_s} exists)"),
        })?;
        out.push((model_key.to_string(), Patch::Lora { up: up.expect("checked above"), down, alpha }));
    }
    let bias_key = format!("{}.bias", model_key.strip_suffix(".weight").unwrap_or(model_key));
    if let Some(w) = take(&name(".w_norm")) {
        out.push((model_key.to_string(), Patch::Diff(w.clone())));
        if let Some(b) = take(&name(".b_norm")) {
            out.push((bias_key.clone(), Patch::Diff(b.clone())));
        }
    }
    if let Some(d) = take(&name(".diff")) {
        out.push((model_key.to_string(), Patch::Diff(d.clone())));
    }
    if let Some(d) = take(&name(".diff_b")) {
        out.push((bias_key, Patch::Diff(d.clone())));
    }
    if let Some(s) = take(&name(".set_weight")) {
        out.push((model_key.to_string(), Patch::Set(s.clone())));
    }
    Ok(out)
}

fn scalar(t: &LoraTensor, name: &str) -> Result<f64, LoraError> {
    match t.values.as_slice() {
        [v] => Ok(*v as f64),
        _ => Err(LoraError::BadTensor { name: name.into(), msg: format!("expected one value, shape {:?}", t.shape) }),
    }
}

/// `comfy/lora.py:calculate_weight` with `intermediate_dtype=float32`: applies `patches` in order
/// to `weight` (float32, any shape, on its device) and returns the float32 result, not yet rounded
/// to the storage dtype. Patches ComfyUI would skip with a warning (shape mismatch) are errors here.
pub fn merge_weight<const D: usize>(
    weight: Tensor<D>,
    patches: &[StrengthPatch],
    key: &str,
) -> Result<Tensor<D>, LoraError> {
    let device = weight.device();
    let shape = weight.dims();
    let numel: usize = shape.iter().product();
    let mut w = weight;
    for StrengthPatch { strength, patch } in patches {
        match patch {
            Patch::Lora { up, down, alpha } => {
                let (up2, down2) = (as_matrix(up, key, "up")?, as_matrix(down, key, "down")?);
                if up2[1] != down2[0] || up2[0] * down2[1] != numel {
                    return Err(LoraError::Merge {
                        key: key.into(),
                        msg: format!("LoRA up {:?} @ down {:?} does not fit weight {shape:?}", up.shape, down.shape),
                    });
                }
                // Python: `(strength * alpha) * lora_diff` with alpha = alpha/rank as a double;
                // torch turns the double scalar into float32 before the float32 multiply.
                let scale = alpha.map(|a| a / down2[0] as f64).unwrap_or(1.0);
                let factor = (strength * scale) as f32;
                let d = upload(&up.values, up2, &device).matmul(upload(&down.values, down2, &device));
                w = w + d.mul_scalar(factor).reshape(shape);
            }
            Patch::Diff(diff) => {
                if *strength == 0.0 {
                    continue;
                }
                if diff.shape != shape {
                    return Err(LoraError::Merge {
                        key: key.into(),
                        msg: format!("diff shape {:?} != weight shape {shape:?}", diff.shape),
                    });
                }
                let d: Tensor<D> = Tensor::<1>::from_data(TensorData::new(diff.values.clone(), [numel]), &device)
                    .reshape(shape);
                w = w + d.mul_scalar(*strength as f32);
            }
            Patch::Set(set) => {
                if set.numel() != numel {
                    return Err(LoraError::Merge {
                        key: key.into(),
                        msg: format!("set_weight shape {:?} != weight shape {shape:?}", set.shape),
                    });
                }
                w = Tensor::<1>::from_data(TensorData::new(set.values.clone(), [numel]), &device).reshape(shape);
            }
        }
    }
    Ok(w)
}

/// `flatten(start_dim=1)` of an up or down matrix.
fn as_matrix(t: &LoraTensor, key: &str, what: &str) -> Result<[usize; 2], LoraError> {
    match t.shape.as_slice() {
        [rows, rest @ ..] if !rest.is_empty() && t.values.len() == t.numel() => {
            Ok([*rows, rest.iter().product()])
        }
        _ => Err(LoraError::Merge { key: key.into(), msg: format!("LoRA {what} tensor has shape {:?}", t.shape) }),
    }
}

fn upload(values: &[f32], shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// The dtypes a diffusion model's parameters can be stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageDType {
    F32,
    F16,
    BF16,
    /// `torch.float8_e4m3fn`.
    F8E4M3Fn,
    /// `torch.float8_e5m2`.
    F8E5M2,
}

/// `comfy/float.py:stochastic_rounding(value, dtype, seed=string_to_seed(key))` on the CPU: rounds
/// merged float32 values to the storage dtype in place. The results are exactly representable in
/// `dtype` and returned as f32 (every such value is).
///
/// f32/f16/bf16 round to nearest even. fp8 uses ComfyUI's stochastic rounding with a CPU
/// `torch.Generator` seeded with the CRC-32 of `key` (the full `diffusion_model.…` name) and one
/// `torch.rand(dtype=float16)` draw per element in row-major order; `next_u32` must be that
/// generator's 32-bit stream (MT19937 seeded with [`string_to_seed`]`(key)`). When ComfyUI patches
/// on a CUDA device it draws from the CUDA Philox generator instead, whose element order depends on
/// the GPU; those bits are not reproduced here.
pub fn round_to_storage(values: &mut [f32], dtype: StorageDType, next_u32: impl FnMut() -> u32) {
    match dtype {
        StorageDType::F32 => {}
        StorageDType::F16 => values.iter_mut().for_each(|v| *v = half::f16::from_f32(*v).to_f32()),
        StorageDType::BF16 => values.iter_mut().for_each(|v| *v = half::bf16::from_f32(*v).to_f32()),
        StorageDType::F8E4M3Fn | StorageDType::F8E5M2 => fp8::stochastic_round(values, dtype, next_u32),
    }
}

/// [`round_to_storage`] with the generator ComfyUI uses when it patches on the CPU:
/// `torch.Generator("cpu").manual_seed(string_to_seed(key))`, i.e. MT19937 seeded with the CRC.
pub fn round_to_storage_cpu(values: &mut [f32], dtype: StorageDType, key: &str) {
    let mut generator = crate::rng::Mt19937::new(string_to_seed(key) as u64);
    round_to_storage(values, dtype, || generator.next_u32());
}

/// `comfy/model_patcher.py:string_to_seed`: the standard (reflected, 0xEDB88320) CRC-32, fed one
/// Python character at a time. For ASCII keys this is `zlib.crc32(key)`; a non-ASCII character is
/// xor-ed in as its whole code point, as the Python loop does (not as UTF-8 bytes).
pub fn string_to_seed(key: &str) -> u32 {
    let mut crc: u32 = 0xFFFF_FFFF;
    for c in key.chars() {
        crc ^= c as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    crc ^ 0xFFFF_FFFF
}

pub mod fp8 {
    //! The fp8 formats: torch's round-to-nearest-even casts and ComfyUI's stochastic rounding.

    use half::f16;

    use super::StorageDType;

    /// `c10::Float8_e4m3fn(float)`: round to nearest even, |x| ≥ 480 → NaN (no saturation).
    pub fn e4m3fn_from_f32(f: f32) -> u8 {
        let mut bits = f.to_bits();
        let sign = bits & 0x8000_0000;
        bits ^= sign;
        let result: u8 = if bits >= 1087 << 20 {
            0x7F
        } else if bits < 121 << 23 {
            // Below 2^-6: align to the subnormal grid with one float add (RNE by the FPU).
            let denorm = f32::from_bits(141 << 23);
            (f32::from_bits(bits) + denorm).to_bits().wrapping_sub(141 << 23) as u8
        } else {
            let odd = (bits >> 20) & 1;
            bits = bits.wrapping_add(((7u32).wrapping_sub(127) << 23).wrapping_add(0x7FFFF)) + odd;
            (bits >> 20) as u8
        };
        result | (sign >> 24) as u8
    }

    /// `c10::Float8_e5m2(float)`: round to nearest even, |x| ≥ 65536 → inf (NaN stays NaN).
    pub fn e5m2_from_f32(f: f32) -> u8 {
        let mut bits = f.to_bits();
        let sign = bits & 0x8000_0000;
        bits ^= sign;
        let result: u8 = if bits >= 143 << 23 {
            if bits > 0xFF << 23 { 0x7F } else { 0x7C }
        } else if bits < 113 << 23 {
            let denorm = f32::from_bits(134 << 23);
            (f32::from_bits(bits) + denorm).to_bits().wrapping_sub(134 << 23) as u8
        } else {
            let odd = (bits >> 21) & 1;
            bits = bits.wrapping_add(((15u32).wrapping_sub(127) << 23).wrapping_add(0xFFFFF)) + odd;
            (bits >> 21) as u8
        };
        result | (sign >> 24) as u8
    }

    /// fp8 byte → f32 (exact).
    pub fn to_f32(byte: u8, dtype: StorageDType) -> f32 {
        match dtype {
            StorageDType::F8E5M2 => f16::from_bits((byte as u16) << 8).to_f32(),
            _ => {
                let sign = if byte & 0x80 != 0 { -1.0f32 } else { 1.0 };
                let (e, m) = (((byte >> 3) & 0xF) as i32, (byte & 7) as f32);
                if e == 0xF && byte & 7 == 7 {
                    // Keep the NaN's sign so that re-encoding gives back the same byte.
                    f32::from_bits(f32::NAN.to_bits() | ((byte as u32 & 0x80) << 24))
                } else if e == 0 {
                    sign * m * 2f32.powi(-9)
                } else {
                    sign * (1.0 + m / 8.0) * 2f32.powi(e - 7)
                }
            }
        }
    }

    /// Round-to-nearest-even cast to fp8 (torch's `.to(float8_…)`), returned as f32.
    pub fn round_nearest(values: &mut [f32], dtype: StorageDType) {
        for v in values.iter_mut() {
            let byte = match dtype {
                StorageDType::F8E5M2 => e5m2_from_f32(*v),
                _ => e4m3fn_from_f32(*v),
            };
            *v = to_f32(byte, dtype);
        }
    }

    /// `comfy/float.py:manual_stochastic_round_to_float8` over all rows. ComfyUI slices the rows
    /// into chunks of at most 4096·4096 elements but draws from one generator in row-major order,
    /// so on the CPU the slicing changes nothing and the whole tensor is one pass.
    ///
    /// Every step is float16 arithmetic in torch (each op computed in f32 and rounded to f16), which
    /// is what the `h(..)` calls below reproduce: the input is first rounded to f16 (a double
    /// rounding), and `mantissa + U` is rounded to f16 before the floor.
    pub(super) fn stochastic_round(values: &mut [f32], dtype: StorageDType, mut next_u32: impl FnMut() -> u32) {
        let (exp_bits, mant_bits, bias) = match dtype {
            StorageDType::F8E5M2 => (5, 2, 15),
            _ => (4, 3, 7),
        };
        let h = |x: f32| f16::from_f32(x).to_f32();
        let max = match dtype {
            StorageDType::F8E5M2 => 57344.0,
            _ => 448.0,
        };
        let mant_scale = (1 << mant_bits) as f32;
        for v in values.iter_mut() {
            let x = h(*v);
            // torch.rand(float16) on the CPU: one 32-bit draw, its low 11 bits / 2^11.
            let u = (next_u32() & 0x7FF) as f32 / 2048.0;
            let sign = if x == 0.0 || x.is_nan() { if x.is_nan() { f32::NAN } else { 0.0 } } else { x.signum() };
            let a = x.abs();
            let exponent = (h(a.log2()).floor() + bias as f32).clamp(0.0, ((1 << exp_bits) - 1) as f32);
            let normal = exponent != 0.0;
            let mantissa = if normal {
                h(h(a / 2f32.powf(exponent - bias as f32)) - 1.0) * mant_scale
            } else {
                h(a / 2f32.powi(1 - bias - mant_bits))
            };
            let m = h(h(mantissa) + u).floor() / mant_scale;
            let magnitude = if normal {
                h(2f32.powf(exponent - bias as f32) * h(1.0 + m))
            } else {
                h(2f32.powi(1 - bias) * m)
            };
            let r = h(sign * magnitude).clamp(-max, max);
            // The f16 result is then copied into the fp8 tensor (an exact cast by construction;
            // NaN stays NaN).
            *v = match dtype {
                StorageDType::F8E5M2 => to_f32(e5m2_from_f32(r), dtype),
                _ => to_f32(e4m3fn_from_f32(r), dtype),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use super::*;

    fn keys() -> Vec<&'static str> {
        vec!["transformer_blocks.0.attn.to_q.weight", "transformer_blocks.0.attn.to_q.bias", "img_in.weight"]
    }

    #[test]
    fn key_map_covers_every_qwen_spelling() {
        let map = qwen_image_key_map(keys());
        let q = "diffusion_model.transformer_blocks.0.attn.to_q.weight";
        for prefix in [
            "lora_unet_transformer_blocks_0_attn_to_q",
            "diffusion_model.transformer_blocks.0.attn.to_q",
            "transformer_blocks.0.attn.to_q",
            "transformer.transformer_blocks.0.attn.to_q",
            "lycoris_transformer_blocks_0_attn_to_q",
        ] {
            assert_eq!(map.get(prefix), Some(q), "{prefix}");
        }
        assert_eq!(
            map.get("diffusion_model.transformer_blocks.0.attn.to_q.bias"),
            Some("diffusion_model.transformer_blocks.0.attn.to_q.bias")
        );
        assert_eq!(map.get("lora_unet_transformer_blocks_0_attn_to_q_bias"), None);
        // The generic block comes first for all keys, then the Qwen block.
        let order: Vec<&str> = map.iter().map(|(k, _)| k).collect();
        assert_eq!(order[0], "lora_unet_transformer_blocks_0_attn_to_q");
        assert_eq!(order[5], "transformer_blocks.0.attn.to_q");
    }

    fn t(shape: &[usize], values: &[f32]) -> LoraTensor {
        LoraTensor::new(shape.to_vec(), values.to_vec())
    }

    fn file(entries: &[(&str, LoraTensor)]) -> LoraFile {
        entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn every_adapter_spelling_and_whole_tensor_patch_loads() {
        let map = qwen_image_key_map(keys());
        let (up, down) = (t(&[2, 1], &[1.0, 2.0]), t(&[1, 2], &[3.0, 4.0]));
        let q = "diffusion_model.transformer_blocks.0.attn.to_q.weight";
        for (u, d) in [
            ("transformer.transformer_blocks.0.attn.to_q.lora_B.weight", "transformer.transformer_blocks.0.attn.to_q.lora_A.weight"),
            ("diffusion_model.transformer_blocks.0.attn.to_q.lora_up.weight", "diffusion_model.transformer_blocks.0.attn.to_q.lora_down.weight"),
            ("lycoris_transformer_blocks_0_attn_to_q.lora_up.weight", "lycoris_transformer_blocks_0_attn_to_q.lora_down.weight"),
            ("transformer_blocks.0.attn.to_q.lora_B.default.weight", "transformer_blocks.0.attn.to_q.lora_A.default.weight"),
            ("transformer_blocks.0.attn.to_q.lora.up.weight", "transformer_blocks.0.attn.to_q.lora.down.weight"),
        ] {
            let mut set = PatchSet::new();
            let load = set.add_lora(&file(&[(u, up.clone()), (d, down.clone())]), &map, 0.5).unwrap();
            assert_eq!(load.patched, vec![q.to_string()], "{u}");
            assert!(load.unused_keys.is_empty());
            assert!(matches!(set.get(q), [StrengthPatch { strength: 0.5, patch: Patch::Lora { alpha: None, .. } }]));
        }
        let mut set = PatchSet::new();
        let lora = file(&[
            ("lora_unet_transformer_blocks_0_attn_to_q.diff", t(&[2, 2], &[1.0; 4])),
            ("lora_unet_transformer_blocks_0_attn_to_q.diff_b", t(&[2], &[1.0; 2])),
            ("lora_unet_img_in.alpha", t(&[], &[4.0])),
            ("lora_unet_nowhere.lora_up.weight", up.clone()),
        ]);
        let load = set.add_lora(&lora, &map, 1.0).unwrap();
        assert!(matches!(set.get(q), [StrengthPatch { patch: Patch::Diff(_), .. }]));
        assert!(matches!(set.get("diffusion_model.transformer_blocks.0.attn.to_q.bias"), [StrengthPatch { patch: Patch::Diff(_), .. }]));
        // The lone alpha is consumed (ComfyUI marks it loaded); the unmapped tensor is reported.
        assert_eq!(load.unused_keys, vec!["lora_unet_nowhere.lora_up.weight".to_string()]);
        // Strength 0 is LoraLoaderModelOnly's "return the model unchanged".
        let mut none = PatchSet::new();
        assert!(none.add_lora(&lora, &map, 0.0).unwrap().patched.is_empty() && none.is_empty());
        // Two LoRAs stack on the same key in order.
        set.add_lora(&lora, &map, 2.0).unwrap();
        assert_eq!(set.get(q).iter().map(|p| p.strength).collect::<Vec<_>>(), vec![1.0, 2.0]);
    }

    #[test]
    fn dora_and_locon_mid_are_refused_not_ignored() {
        let map = qwen_image_key_map(keys());
        let p = "lora_unet_transformer_blocks_0_attn_to_q";
        let base = [(format!("{p}.lora_up.weight"), t(&[2, 1], &[1.0, 2.0])), (format!("{p}.lora_down.weight"), t(&[1, 2], &[1.0, 1.0]))];
        for extra in ["dora_scale", "lora_mid.weight"] {
            let mut lora: LoraFile = base.iter().cloned().collect();
            lora.insert(format!("{p}.{extra}"), t(&[2], &[1.0, 1.0]));
            let err = PatchSet::new().add_lora(&lora, &map, 1.0).unwrap_err();
            assert!(matches!(err, LoraError::Unsupported(_)), "{extra}: {err}");
        }
    }

    #[test]
    fn merge_is_w_plus_rounded_scale_times_up_down() {
        let device = Device::flex();
        let w = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]), &device);
        // up [2,1] @ down [1,2] = [[3, 4], [6, 8]]; alpha 2 over rank 1 at strength 0.25 → ×0.5.
        let lora = Patch::Lora { up: t(&[2, 1], &[1.0, 2.0]), down: t(&[1, 2], &[3.0, 4.0]), alpha: Some(2.0) };
        let diff = Patch::Diff(t(&[2, 2], &[1.0, 1.0, 1.0, 1.0]));
        let patches = [StrengthPatch { strength: 0.25, patch: lora }, StrengthPatch { strength: -2.0, patch: diff }];
        let merged = merge_weight(w, &patches, "k").unwrap().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(merged, vec![1.0 + 1.5 - 2.0, 2.0 + 2.0 - 2.0, 3.0 + 3.0 - 2.0, 4.0 + 4.0 - 2.0]);
        // The scale is rounded to float32 once before multiplying, as torch does with a Python
        // scalar: 0.1 · (1/3) is not representable, its f32 rounding times 3 is what gets added.
        let w = Tensor::<1>::from_data(TensorData::new(vec![0.0f32, 0.0], [2]), &device);
        let lora = Patch::Lora { up: t(&[2, 1], &[3.0, 3.0]), down: t(&[1, 1], &[1.0]), alpha: Some(1.0 / 3.0) };
        let merged = merge_weight(w, &[StrengthPatch { strength: 0.1, patch: lora }], "k").unwrap();
        assert_eq!(merged.into_data().try_to_vec::<f32>().unwrap(), vec![(0.1f64 / 3.0) as f32 * 3.0; 2]);
        // A LoRA that does not fit is an error, not a silent skip.
        let w = Tensor::<2>::zeros([3, 3], &device);
        let bad = Patch::Lora { up: t(&[2, 1], &[1.0, 1.0]), down: t(&[1, 2], &[1.0, 1.0]), alpha: None };
        assert!(merge_weight(w, &[StrengthPatch { strength: 1.0, patch: bad }], "k").is_err());
    }

    #[test]
    fn wide_storage_rounds_to_nearest_even() {
        let mut v = [1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8), 0.1];
        round_to_storage(&mut v, StorageDType::BF16, || unreachable!("no randomness for bf16"));
        assert_eq!(v, [1.0, 1.0 + 2f32.powi(-6), half::bf16::from_f32(0.1).to_f32()]);
        let mut v = [1.0 + 2f32.powi(-11)];
        round_to_storage(&mut v, StorageDType::F16, || unreachable!());
        assert_eq!(v, [1.0]);
    }

    #[test]
    fn crc32_seed_is_zlib_crc32_for_ascii() {
        // zlib.crc32(b"123456789") == 0xCBF43926, the CRC-32 check value.
        assert_eq!(string_to_seed("123456789"), 0xCBF4_3926);
        assert_eq!(string_to_seed(""), 0);
    }

    #[test]
    fn fp8_rne_matches_the_format_tables() {
        use fp8::*;
        for byte in 0u8..=255 {
            let v = to_f32(byte, StorageDType::F8E4M3Fn);
            if v.is_nan() {
                continue;
            }
            let back = e4m3fn_from_f32(v);
            // -0.0 and 0.0 are distinct bytes and both round-trip.
            assert_eq!(back, byte, "e4m3fn {byte:#x} = {v}");
            let v = to_f32(byte, StorageDType::F8E5M2);
            if !v.is_nan() {
                assert_eq!(e5m2_from_f32(v), byte, "e5m2 {byte:#x} = {v}");
            }
        }
        // Ties go to even: 1 + 1/16 lies halfway between 1 and 1.125.
        assert_eq!(e4m3fn_from_f32(1.0625), 0x38);
        assert_eq!(e4m3fn_from_f32(1.1875), 0x3A);
        // Above the largest finite value 448 there is no saturation: 464 ties to even (448), and
        // anything larger rounds to the 480 code, which is e4m3fn's NaN.
        assert_eq!(e4m3fn_from_f32(464.0), 0x7E);
        assert_eq!(e4m3fn_from_f32(465.0), 0x7F);
        assert_eq!(e5m2_from_f32(1e6), 0x7C);
    }
}
