//! ComfyUI's sampling chain in burn (issue 3).

pub mod linspace;
pub mod model_sampling;
pub mod rng;
pub mod schedule;
