//! ComfyUI's sampling chain in burn (issue 3).
