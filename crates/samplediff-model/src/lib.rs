//! Qwen-Image DiT (issue 4).
