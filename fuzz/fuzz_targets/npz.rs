//! `.npz` bytes: the defensive zip reader (stored and deflated entries) and every `.npy` inside.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplediff_formats::{Bytes, npy};

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = npy::read_npz(Bytes::new(data.to_vec())) {
        for t in &file.tensors {
            assert_eq!(t.data.len(), t.numel() * t.dtype.size(), "tensor '{}'", t.name);
        }
    }
});
