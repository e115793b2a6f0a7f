//! Every valid fixture decodes to exactly the values torch/numpy report for it.
//!
//! The fixtures and `expected.json` come from `tests/fixtures/formats/make_fixtures.py`, which
//! writes each file with the real library and records every value as torch/numpy convert it to
//! float64 (as bit patterns). Nothing here compares the readers with themselves.

use std::collections::BTreeMap;
use std::path::PathBuf;

use samplediff_formats::{DType, Format, TensorFile, detect_format, load_path, read_file};
use serde::Deserialize;

#[derive(Deserialize)]
struct Expected {
    dtype: String,
    shape: Vec<usize>,
    bits: Vec<u64>,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/formats")
}

fn path(name: &str) -> String {
    dir().join(name).to_string_lossy().into_owned()
}

fn load(spec: &str) -> TensorFile {
    load_path(&path(spec)).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

fn expected() -> BTreeMap<String, BTreeMap<String, Expected>> {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_fixture_matches_torch_and_numpy_values() {
    let mut checked_values = 0usize;
    for (file, tensors) in expected() {
        let loaded = load(&file);
        let names: Vec<&str> = loaded.names().collect();
        assert_eq!(names.len(), tensors.len(), "{file}: tensors {names:?}");
        for (name, want) in &tensors {
            let t = loaded.get(name).unwrap_or_else(|| panic!("{file}: no tensor '{name}' in {names:?}"));
            assert_eq!(t.dtype.name(), want.dtype, "{file}:{name} dtype");
            assert_eq!(t.shape, want.shape, "{file}:{name} shape");
            assert_eq!(t.data.len(), t.numel() * t.dtype.size(), "{file}:{name} byte count");
            let got = t.to_f64_vec();
            assert_eq!(got.len(), want.bits.len(), "{file}:{name} count");
            for (i, (g, &w)) in got.iter().zip(&want.bits).enumerate() {
                let w = f64::from_bits(w);
                if w.is_nan() {
                    assert!(g.is_nan(), "{file}:{name}[{i}]: {g} should be NaN");
                } else {
                    assert_eq!(g.to_bits(), w.to_bits(), "{file}:{name}[{i}]: {g} != {w}");
                }
            }
            checked_values += got.len();
        }
    }
    assert!(checked_values > 500, "only {checked_values} values checked");
}

#[test]
fn formats_are_sniffed_from_content() {
    for (file, format) in [
        ("dtypes.safetensors", Format::Safetensors),
        ("sample.latent", Format::Safetensors),
        ("cond.pt", Format::Torch),
        ("state_dict.pt", Format::Torch),
        ("c_f4.npy", Format::Npy),
        ("arrays.npz", Format::Npz),
        ("arrays_compressed.npz", Format::Npz),
    ] {
        assert_eq!(detect_format(&read_file(&path(file)).unwrap()).unwrap(), format, "{file}");
    }
}

#[test]
fn comfyui_conditioning_flattens_by_path() {
    let f = load("cond.pt");
    assert_eq!(f.names().collect::<Vec<_>>(), ["0.0"]);
    assert_eq!(f.get("0.0").unwrap().shape, [1, 7, 16]);
    assert_eq!(f.metadata["0.1"], r#"{"pooled_output": null}"#);
    assert_eq!(f.metadata["__structure__"], r#"[[{"tensor": "F32[1, 7, 16]"}, {"pooled_output": null}]]"#);

    let t = load("cond.pt:0.0");
    assert_eq!(t.names().collect::<Vec<_>>(), ["0.0"]);
    assert_eq!(t.tensors[0].to_f64_vec(), f.tensors[0].to_f64_vec());

    let meta = load("cond.pt:0.1");
    assert!(meta.tensors.is_empty());
    assert_eq!(meta.metadata["pooled_output"], "null");

    let pair = load("cond.pt:0");
    assert_eq!(pair.names().collect::<Vec<_>>(), ["0"]);
    assert_eq!(pair.metadata["1"], r#"{"pooled_output": null}"#);

    let pooled = load("cond_pooled.pt");
    assert_eq!(pooled.names().collect::<Vec<_>>(), ["0.0", "0.1.pooled_output"]);
    assert_eq!(pooled.metadata["0.1.strength"], "0.75");
    assert_eq!(pooled.metadata["0.1.area"], "[64, 64, 0, 0]");
    let e = load_path(&path("cond.pt:0.2")).unwrap_err().to_string();
    assert!(e.contains("index 2 is past the 2 items"), "{e}");
}

#[test]
fn state_dict_keeps_plain_values_as_json() {
    let f = load("state_dict.pt");
    assert_eq!(f.metadata["epoch"], "3");
    let config: serde_json::Value = serde_json::from_str(&f.metadata["config"]).unwrap();
    assert_eq!(config["name"], "tiny");
    assert_eq!(config["lr"], 1e-4);
    assert_eq!(config["betas"], serde_json::json!([0.9, 0.999]));
    assert_eq!(config["flags"], serde_json::json!([true, null]));
    // Views were gathered to C order; dtypes survive.
    let transposed = f.get("transposed").unwrap();
    assert_eq!(transposed.shape, [6, 4]);
    assert_eq!(f.get("bf16").unwrap().dtype, DType::BF16);
    assert_eq!(f.get("f8").unwrap().dtype, DType::F8_E4M3);
    assert!(f.get("scalar").unwrap().shape.is_empty());
    assert_eq!(f.get("empty").unwrap().numel(), 0);

    // A selector picks the nested module and renames relative to it.
    let linear = load("state_dict.pt:linear");
    let mut names: Vec<_> = linear.names().collect();
    names.sort();
    assert_eq!(names, ["bias", "weight"]);
    let one = load("state_dict.pt:linear.weight");
    assert_eq!(one.names().collect::<Vec<_>>(), ["linear.weight"]);
}

#[test]
fn safetensors_metadata_and_latents() {
    let f = load("dtypes.safetensors");
    assert_eq!(f.metadata["source"], "make_fixtures.py");
    let latent = load("sample.latent");
    assert_eq!(latent.get("latent_tensor").unwrap().shape, [1, 4, 8, 8]);
    assert_eq!(latent.metadata["prompt"], "{}");
    let only = load("dtypes.safetensors:bf16");
    assert_eq!(only.names().collect::<Vec<_>>(), ["bf16"]);
}

#[test]
fn npz_selects_entries_and_npy_names_by_stem() {
    let f = load("arrays.npz:fortran_f8");
    assert_eq!(f.names().collect::<Vec<_>>(), ["fortran_f8"]);
    assert_eq!(f.tensors[0].shape, [2, 3, 4]);
    let npy = load("c_f4.npy");
    assert_eq!(npy.names().collect::<Vec<_>>(), ["c_f4"]);
}

#[test]
fn loaded_torch_tensors_round_trip_through_safetensors() {
    let f = load("state_dict.pt");
    let bytes = samplediff_formats::safetensors::write(&f.tensors, &Default::default()).unwrap();
    let back = samplediff_formats::safetensors::read(samplediff_formats::Bytes::new(bytes)).unwrap();
    for t in &f.tensors {
        let b = back.get(&t.name).unwrap();
        assert_eq!((b.dtype, &b.shape, &*b.data), (t.dtype, &t.shape, &*t.data), "{}", t.name);
    }
}

/// torch writes `byteorder` = `big` on big-endian machines. Re-pack the torch-written
/// conditioning that way (storage bytes swapped, pickle untouched) and expect the same values.
#[test]
fn big_endian_torch_archives_are_swapped() {
    use std::io::{Read, Write};
    use zip::write::SimpleFileOptions;

    let original = std::fs::read(dir().join("cond.pt")).unwrap();
    let mut src = zip::ZipArchive::new(std::io::Cursor::new(original)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..src.len() {
        let mut entry = src.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if name.ends_with("/byteorder") {
            data = b"big".to_vec();
        } else if name.contains("/data/") {
            data.chunks_exact_mut(4).for_each(|c| c.reverse()); // the one storage is float32
        }
        out.start_file(name, stored).unwrap();
        out.write_all(&data).unwrap();
    }
    let swapped = out.finish().unwrap().into_inner();
    let big = samplediff_formats::load_bytes("cond.pt", samplediff_formats::Bytes::new(swapped)).unwrap();
    let little = load("cond.pt");
    assert_eq!(big.tensors[0].to_f64_vec(), little.tensors[0].to_f64_vec());
}
