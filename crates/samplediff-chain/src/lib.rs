//! ComfyUI's sampling chain in burn (issue 3).

pub mod linspace;
pub mod model_sampling;
pub mod rng;
pub mod schedule;

pub mod lora;
pub mod error;
pub mod denoiser;
pub mod cfg;
pub mod sampler;
pub mod latent_format;
pub mod ksampler;
pub mod replay;
