//! `.npy` bytes: header literal, dtype, shape arithmetic, Fortran order and byte swapping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplediff_formats::{Bytes, npy};

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = npy::read(Bytes::new(data.to_vec()), "array") {
        let t = &file.tensors[0];
        assert_eq!(t.data.len(), t.numel() * t.dtype.size());
    }
});
