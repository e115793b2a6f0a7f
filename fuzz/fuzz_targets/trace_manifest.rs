//! The trace manifest (`samplediff.manifest` metadata of a trace file), parsed by the real
//! `samplediff-trace/src/manifest.rs` compiled into this target: the trace crate itself pulls in
//! burn, which would make every fuzz build many minutes longer. The file's only dependency on
//! its crate is `crate::error`, which the shim below provides with the same shape.
//!
//! Input: the manifest text, or (when it parses as one) a safetensors trace file whose metadata
//! holds the manifest, as `Trace::from_file` reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use samplediff_formats::{Bytes, safetensors};

mod error {
    /// Same constructor and message shape as `samplediff_trace::error::TraceError`.
    #[derive(Debug)]
    #[allow(dead_code)] // the message is carried, as in the real type, but nothing reads it here
    pub enum TraceError {
        Invalid(String),
    }

    impl TraceError {
        pub(crate) fn invalid(msg: impl Into<String>) -> Self {
            Self::Invalid(msg.into())
        }
    }

    pub type Result<T, E = TraceError> = std::result::Result<T, E>;
}

#[allow(dead_code)]
#[path = "../../crates/samplediff-trace/src/manifest.rs"]
mod manifest;

fn parse(text: &str) {
    if let Ok(m) = manifest::Manifest::from_json(text) {
        // Serialising back is infallible by contract (`to_json` expects it).
        let _ = m.to_json();
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        parse(text);
    }
    if let Ok(file) = safetensors::read(Bytes::new(data.to_vec())) {
        if let Some(text) = file.metadata.get(manifest::MANIFEST_KEY) {
            parse(text);
        }
    }
});
