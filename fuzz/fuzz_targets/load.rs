//! What the CLI, Python and the browser call on a dropped file: content sniffing, dispatch to
//! the reader, a selector, then decoding the tensors to numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplediff_formats::{Bytes, load_bytes, load_bytes_selected};

/// Decoding allocates 8 bytes per element; a legitimately broadcast view of a tiny file can
/// hold millions of elements, which is not what this target looks for.
const DECODE_LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::new(data.to_vec());
    if let Ok(file) = load_bytes("input.bin", buf.clone()) {
        for t in &file.tensors {
            assert_eq!(t.data.len(), t.numel() * t.dtype.size(), "tensor '{}'", t.name);
            if t.numel() <= DECODE_LIMIT {
                assert_eq!(t.to_f64_vec().len(), t.numel());
                assert_eq!(t.to_f32_vec().len(), t.numel());
            }
        }
    }
    let _ = load_bytes_selected("input.bin", buf, Some("0"));
});
