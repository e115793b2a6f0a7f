//! The Qwen-Image MMDiT (ComfyUI's `comfy/ldm/qwen_image/model.py`) in burn, on any burn device.
//!
//! * [`QwenImageModel::load`] reads a ComfyUI-layout checkpoint ([`samplediff_formats::TensorFile`]),
//!   infers every size from the tensor shapes ([`QwenConfig`]), takes the RoPE axes as a parameter,
//!   merges LoRAs the way `LoraLoaderModelOnly` does ([`samplediff_chain::lora`]) and uploads the
//!   weights in float32 or bf16 ([`Precision`]); fp8 checkpoints are up-cast on load.
//! * [`QwenImageModel::forward`] is one network evaluation: latent, timestep, text features →
//!   velocity. [`QwenDenoiser`] wraps it as the chain's [`samplediff_chain::denoiser::Denoiser`].
//!
//! No filesystem and no threads here: the crate builds for wasm32-unknown-unknown; callers read the
//! files and pick the device.

pub mod block;
pub mod config;
mod denoiser;
pub mod embed;
mod error;
pub mod layers;
mod model;
pub mod patch;
pub mod rope;
pub mod weights;

pub use config::{QWEN_IMAGE_ROPE_AXES, QwenConfig};
pub use denoiser::QwenDenoiser;
pub use error::{ModelError, Result};
pub use model::{LoadOptions, QwenImageModel};
pub use samplediff_chain::lora::StorageDType;
pub use weights::{LoraReport, LoraSpec, Precision};
