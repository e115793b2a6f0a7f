//! `torch.save` zip files: archive checks, the unpickler, and rebuilding every tensor view.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplediff_formats::{Bytes, torch};

fuzz_target!(|data: &[u8]| {
    let buf = Bytes::new(data.to_vec());
    let _ = torch::read(buf.clone(), "tensor");
    // A selector only materialises what it names: a second path through the reader.
    let _ = torch::read_selected(buf, "tensor", Some("0"));
});
