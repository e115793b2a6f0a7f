//! Files from the browser: bytes in memory, read by the core's format sniffing (the content
//! decides the format, never the name), and described for the page.

use std::collections::BTreeMap;

use samplediff_formats::{Bytes, RawTensor, TensorFile, detect_format, load_bytes_selected};
use serde::Serialize;

/// One file read into memory.
pub struct Loaded {
    /// The file's name: it names a lone `.npy`/`.pt` tensor (its stem, exactly as the CLI's
    /// path does) and prefixes every error.
    pub name: String,
    /// `safetensors`, `torch`, `npy`, `npz` or `pickle`.
    pub format: &'static str,
    pub file: TensorFile,
}

impl Loaded {
    /// Read `bytes`; `selector` picks inside the file (`0.0` of a torch conditioning, a tensor
    /// name or group of a flat file), as after the `:` of a CLI path.
    pub fn read(name: &str, bytes: Vec<u8>, selector: Option<&str>) -> Result<Self, String> {
        let bytes = Bytes::new(bytes);
        let format = detect_format(&bytes).map_err(|e| format!("{name}: {e}"))?.name();
        let file = load_bytes_selected(name, bytes, selector).map_err(|e| format!("{name}: {e}"))?;
        Ok(Loaded { name: name.to_string(), format, file })
    }

    pub fn tensor(&self, name: &str) -> Result<&RawTensor, String> {
        self.file.get(name).ok_or_else(|| format!("{}: no tensor '{name}'", self.name))
    }

    pub fn summary(&self) -> FileSummary {
        FileSummary {
            name: self.name.clone(),
            format: self.format,
            tensors: self
                .file
                .tensors
                .iter()
                .map(|t| TensorSummary {
                    name: t.name.clone(),
                    dtype: t.dtype.name(),
                    shape: t.shape.clone(),
                    numel: t.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64)),
                })
                .collect(),
            metadata: self.file.metadata.clone(),
        }
    }
}

/// What a file holds, for a page to list.
#[derive(Debug, Serialize)]
pub struct FileSummary {
    pub name: String,
    pub format: &'static str,
    pub tensors: Vec<TensorSummary>,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct TensorSummary {
    pub name: String,
    pub dtype: &'static str,
    pub shape: Vec<usize>,
    /// `null` if the element count overflows (the readers refuse such shapes anyway).
    pub numel: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_sniffed_and_errors_name_the_file() {
        let t = RawTensor::from_f32("lat", vec![1, 2], &[1.0, 2.0]);
        let bytes = samplediff_formats::safetensors::write(&[t], &Default::default()).unwrap();
        let f = Loaded::read("renamed.npy", bytes, None).unwrap();
        let s = f.summary();
        assert_eq!((s.format, s.tensors[0].name.as_str(), s.tensors[0].numel), ("safetensors", "lat", Some(2)));
        let e = Loaded::read("junk.bin", b"hello world, not a tensor".to_vec(), None).err().unwrap();
        assert!(e.starts_with("junk.bin: unrecognised file format"), "{e}");
        assert!(f.tensor("nope").unwrap_err().contains("no tensor 'nope'"));
    }
}
