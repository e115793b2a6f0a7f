//! `.safetensors` / `.latent` bytes: an error or tensors that lie inside the file, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplediff_formats::{Bytes, safetensors};

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = safetensors::read(Bytes::new(data.to_vec())) {
        for t in &file.tensors {
            // The reader promises exactly numel x element size bytes per tensor.
            assert_eq!(t.data.len(), t.numel() * t.dtype.size(), "tensor '{}'", t.name);
        }
    }
});
