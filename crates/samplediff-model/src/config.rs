//! The model's hyper-parameters, read off the checkpoint's tensor shapes.
//!
//! ComfyUI itself infers only `in_channels` and the depth from the file and takes the rest from
//! its Qwen-Image defaults; reading every size from the shapes lets the same code load the real
//! 20B model and the tiny test model. Only the RoPE split of the head dimension cannot be read from
//! any tensor, so it is a parameter.

use crate::error::{Result, checkpoint, invalid};

/// Patch size of the latent → token mapping; ComfyUI's `process_img` hard-codes 2.
pub const PATCH: usize = 2;

/// Qwen-Image's own RoPE axes (frame, row, column) in channels of the head dimension.
pub const QWEN_IMAGE_ROPE_AXES: [usize; 3] = [16, 56, 56];

/// The sizes of a Qwen-Image MMDiT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QwenConfig {
    /// Channels of one patch token, `latent_channels · PATCH²` (`img_in.weight.shape[1]`).
    pub in_channels: usize,
    /// Channels of the latent (`in_channels / 4`, 16 for Qwen-Image).
    pub latent_channels: usize,
    /// Width of the transformer (`img_in.weight.shape[0]`, 3072 for Qwen-Image).
    pub inner_dim: usize,
    /// Width of one attention head (`attn.norm_q.weight.shape[0]`, 128).
    pub head_dim: usize,
    pub heads: usize,
    /// Width of the text features (`txt_norm.weight.shape[0]`, 3584).
    pub joint_dim: usize,
    /// Number of joint transformer blocks (60).
    pub depth: usize,
    /// Hidden width of the feed-forward networks (`4 · inner_dim`).
    pub mlp_dim: usize,
    /// Width of the sinusoidal timestep features (256).
    pub timestep_channels: usize,
    /// RoPE channels per position axis; they must sum to `head_dim`.
    pub rope_axes: [usize; 3],
}

impl QwenConfig {
    /// Reads the sizes from `shape_of(path)` (tensor paths without the `diffusion_model.` prefix)
    /// and the block paths present in the checkpoint.
    pub fn infer<'a>(
        shape_of: impl Fn(&str) -> Option<&'a [usize]>,
        paths: impl Iterator<Item = &'a str>,
        rope_axes: [usize; 3],
    ) -> Result<Self> {
        let need = |path: &str, rank: usize| -> Result<&'a [usize]> {
            let shape = shape_of(path).ok_or_else(|| checkpoint(format!("missing tensor {path}")))?;
            if shape.len() != rank {
                return Err(checkpoint(format!("{path} has shape {shape:?}, expected rank {rank}")));
            }
            Ok(shape)
        };
        let img_in = need("img_in.weight", 2)?;
        let (inner_dim, in_channels) = (img_in[0], img_in[1]);
        let head_dim = need("transformer_blocks.0.attn.norm_q.weight", 1)?[0];
        let joint_dim = need("txt_norm.weight", 1)?[0];
        let mlp_dim = need("transformer_blocks.0.img_mlp.net.0.proj.weight", 2)?[0];
        let timestep_channels = need("time_text_embed.timestep_embedder.linear_1.weight", 2)?[1];
        let proj_out = need("proj_out.weight", 2)?[0];

        let mut depth = 0;
        for path in paths {
            if let Some(rest) = path.strip_prefix("transformer_blocks.") {
                let index: usize = rest
                    .split('.')
                    .next()
                    .and_then(|i| i.parse().ok())
                    .ok_or_else(|| checkpoint(format!("unexpected tensor name {path}")))?;
                depth = depth.max(index + 1);
            }
        }

        if head_dim == 0 || inner_dim % head_dim != 0 {
            return Err(checkpoint(format!("inner dim {inner_dim} is not a multiple of head dim {head_dim}")));
        }
        if in_channels % (PATCH * PATCH) != 0 {
            return Err(checkpoint(format!("img_in takes {in_channels} channels, not a multiple of {}", PATCH * PATCH)));
        }
        let latent_channels = in_channels / (PATCH * PATCH);
        if proj_out != in_channels {
            // ComfyUI's unpatchify reshapes to the input's channel count.
            return Err(checkpoint(format!("proj_out gives {proj_out} channels per token, img_in takes {in_channels}")));
        }
        if rope_axes.iter().sum::<usize>() != head_dim || rope_axes.iter().any(|a| a % 2 != 0) {
            return Err(invalid(format!(
                "RoPE axes {rope_axes:?} must be even and sum to the head dim {head_dim} (Qwen-Image: 16,56,56)"
            )));
        }
        if timestep_channels % 2 != 0 {
            return Err(checkpoint(format!("odd timestep embedding width {timestep_channels}")));
        }
        Ok(Self {
            in_channels,
            latent_channels,
            inner_dim,
            head_dim,
            heads: inner_dim / head_dim,
            joint_dim,
            depth,
            mlp_dim,
            timestep_channels,
            rope_axes,
        })
    }
}
