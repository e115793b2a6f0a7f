//! The whole network, `qwen_image/model.py:QwenImageTransformer2DModel._forward`.

use burn::tensor::{DType, Device, Tensor};
use samplediff_chain::lora::StorageDType;
use samplediff_formats::TensorFile;

use crate::block::{FeedForward, FinalLayer, JointBlock, Stream, temb_silu};
use crate::config::{PATCH, QWEN_IMAGE_ROPE_AXES, QwenConfig};
use crate::embed::TimestepEmbedding;
use crate::error::{Result, invalid};
use crate::layers::{Linear, rms_norm};
use crate::patch::{pad_circular, patchify, unpatchify};
use crate::rope::{RopeTable, position_ids, tokens};
use crate::weights::{LoraReport, LoraSpec, Precision, Weights};

/// RoPE base frequency of Qwen-Image.
const ROPE_THETA: f64 = 10000.0;
/// `txt_norm` epsilon.
const TXT_NORM_EPS: f64 = 1e-6;

/// How to load a checkpoint.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// RoPE channels per (frame, row, column) axis; must sum to the head dim.
    pub rope_axes: [usize; 3],
    pub precision: Precision,
    /// UNETLoader's `weight_dtype` (`fp8_e4m3fn`, `fp8_e5m2`): store parameters in this dtype
    /// (LoRA merges round into it) and up-cast them for compute. `None`: ComfyUI's default.
    pub weight_dtype: Option<StorageDType>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { rope_axes: QWEN_IMAGE_ROPE_AXES, precision: Precision::F32, weight_dtype: None }
    }
}

/// The Qwen-Image MMDiT on one burn device.
#[derive(Clone, Debug)]
pub struct QwenImageModel {
    pub config: QwenConfig,
    pub precision: Precision,
    time_embed: TimestepEmbedding,
    txt_norm: Tensor<1>,
    txt_in: Linear,
    img_in: Linear,
    blocks: Vec<JointBlock>,
    norm_out: FinalLayer,
    proj_out: Linear,
    device: Device,
}

impl QwenImageModel {
    /// Builds the model from a ComfyUI-layout checkpoint (keys bare or under `diffusion_model.` /
    /// `model.diffusion_model.`), merging `loras` in order. Returns one report per LoRA.
    pub fn load(
        file: &TensorFile,
        loras: &[LoraSpec<'_>],
        options: &LoadOptions,
        device: &Device,
    ) -> Result<(Self, Vec<LoraReport>)> {
        Self::load_merging_on(file, loras, options, device, device)
    }

    /// [`Self::load`] with the LoRA merge on `merge_device`: each patched weight is merged there,
    /// read back to round it to its storage dtype, and uploaded to `device`. WebGPU in a browser
    /// cannot read back synchronously, so the wasm build merges on the CPU device.
    pub fn load_merging_on(
        file: &TensorFile,
        loras: &[LoraSpec<'_>],
        options: &LoadOptions,
        device: &Device,
        merge_device: &Device,
    ) -> Result<(Self, Vec<LoraReport>)> {
        let (w, reports) = Weights::new(file, loras, options.precision, options.weight_dtype, device)?;
        let w = w.merging_on(merge_device);
        let config = QwenConfig::infer(|p| w.shape(p), w.paths(), options.rope_axes)?;
        let c = &config;
        let dim = c.inner_dim;

        let time_embed = TimestepEmbedding::new(
            w.linear("time_text_embed.timestep_embedder.linear_1", c.timestep_channels, dim)?,
            w.linear("time_text_embed.timestep_embedder.linear_2", dim, dim)?,
            c.timestep_channels,
            device,
        );
        let stream = |prefix: &str, attn: [&str; 6], norms: [&str; 2], out: &str| -> Result<Stream> {
            let b = |name: &str| format!("{prefix}.{name}");
            Ok(Stream {
                modulation: w.linear(&b(attn[0]), dim, 6 * dim)?,
                to_q: w.linear(&b(attn[1]), dim, dim)?,
                to_k: w.linear(&b(attn[2]), dim, dim)?,
                to_v: w.linear(&b(attn[3]), dim, dim)?,
                norm_q: w.vector(&b(norms[0]), c.head_dim)?,
                norm_k: w.vector(&b(norms[1]), c.head_dim)?,
                to_out: w.linear(&b(out), dim, dim)?,
                mlp: FeedForward {
                    proj_in: w.linear(&b(attn[4]), dim, c.mlp_dim)?,
                    proj_out: w.linear(&b(attn[5]), c.mlp_dim, dim)?,
                },
            })
        };
        let mut blocks = Vec::with_capacity(c.depth);
        for i in 0..c.depth {
            let p = format!("transformer_blocks.{i}");
            blocks.push(JointBlock {
                img: stream(
                    &p,
                    ["img_mod.1", "attn.to_q", "attn.to_k", "attn.to_v", "img_mlp.net.0.proj", "img_mlp.net.2"],
                    ["attn.norm_q.weight", "attn.norm_k.weight"],
                    "attn.to_out.0",
                )?,
                txt: stream(
                    &p,
                    ["txt_mod.1", "attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj", "txt_mlp.net.0.proj", "txt_mlp.net.2"],
                    ["attn.norm_added_q.weight", "attn.norm_added_k.weight"],
                    "attn.to_add_out",
                )?,
                heads: c.heads,
                ones: w.ones(dim),
            });
        }
        let model = Self {
            time_embed,
            txt_norm: w.vector("txt_norm.weight", c.joint_dim)?,
            txt_in: w.linear("txt_in", c.joint_dim, dim)?,
            img_in: w.linear("img_in", c.in_channels, dim)?,
            blocks,
            norm_out: FinalLayer { linear: w.linear("norm_out.linear", dim, 2 * dim)?, ones: w.ones(dim) },
            proj_out: w.linear("proj_out", dim, c.in_channels)?,
            precision: options.precision,
            device: device.clone(),
            config,
        };
        Ok((model, reports))
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.precision.dtype()
    }

    /// One model evaluation: `x: [B, C, 1, H, W]` (any float dtype, cast to the compute dtype as
    /// `BaseModel._apply_model` does), `timestep`: one float32 per batch item (σ times the
    /// model-sampling multiplier; host values, see [`crate::embed::timestep_sinusoid`] for why),
    /// `context: [B, L, joint_dim]`. Returns the velocity `[B, C, 1, H, W]` as float32.
    pub fn forward(&self, x: Tensor<5>, timestep: &[f32], context: Tensor<3>) -> Result<Tensor<5>> {
        let c = &self.config;
        let [b, ch, t, h, w] = x.dims();
        let [cb, text_len, cd] = context.dims();
        if ch != c.latent_channels || t != 1 {
            return Err(invalid(format!("latent [{b}, {ch}, {t}, {h}, {w}]: expected {} channels and 1 frame", c.latent_channels)));
        }
        if cb != b || cd != c.joint_dim {
            return Err(invalid(format!("context [{cb}, {text_len}, {cd}] does not fit batch {b} and width {}", c.joint_dim)));
        }
        if timestep.len() != b {
            return Err(invalid(format!("{} timesteps for batch {b}", timestep.len())));
        }
        if h == 0 || w == 0 {
            return Err(invalid("empty latent"));
        }
        let dtype = self.dtype();

        let padded = pad_circular(x.cast(dtype));
        let [_, _, _, hp, wp] = padded.dims();
        let img = self.img_in.forward(patchify(padded));
        let ids = position_ids(text_len, tokens(h), tokens(w), dtype);
        let rope = RopeTable::new(&ids, c.rope_axes, ROPE_THETA, dtype, &self.device);

        let txt = self.txt_in.forward(rms_norm(context.cast(dtype), &self.txt_norm, TXT_NORM_EPS));
        let temb = temb_silu(self.time_embed.forward(timestep, dtype));

        let (mut img, mut txt) = (img, txt);
        for block in &self.blocks {
            (img, txt) = block.forward(img, txt, temb.clone(), &rope);
        }
        let out = self.proj_out.forward(self.norm_out.forward(img, temb));
        debug_assert_eq!(out.dims()[2], c.latent_channels * PATCH * PATCH);
        Ok(unpatchify(out, c.latent_channels, hp, wp, h, w).cast(DType::F32))
    }
}
