//! One entry point for every format: sniff the bytes, dispatch, apply a `file:selector`.
//!
//! Formats are recognised by content, never by extension (people rename files): safetensors
//! starts with a little-endian u64 header length and `{`; a zip with a `data.pkl` is torch.save;
//! a zip of `.npy` entries is `.npz`; `\x93NUMPY` is `.npy`; a bare pickle is read with the same
//! restricted unpickler as torch files (values only).

use std::collections::BTreeMap;

use crate::archive::{Archive, looks_like_zip};
use crate::{Bytes, Result, TensorFile, bail, npy, pickle, safetensors, structure, torch};

/// A recognised file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.safetensors` and ComfyUI `.latent`.
    Safetensors,
    /// `torch.save` zip archive (`.pt`, `.pth`, `.ckpt`).
    Torch,
    Npy,
    Npz,
    /// A bare pickle (no archive): values only, tensors cannot occur.
    Pickle,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::Torch => "torch",
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Pickle => "pickle",
        }
    }
}

/// Recognise a file's format from its bytes.
pub fn detect_format(buf: &Bytes) -> Result<Format> {
    if buf.is_empty() {
        bail!("empty file");
    }
    if buf.starts_with(npy::MAGIC) {
        return Ok(Format::Npy);
    }
    if looks_like_zip(buf) {
        let archive = Archive::open(buf.clone())?;
        if torch::is_torch_archive(&archive) {
            return Ok(Format::Torch);
        }
        if !archive.entries().is_empty() && npy::is_npz_archive(&archive) {
            return Ok(Format::Npz);
        }
        bail!("zip archive is neither a torch.save file (no data.pkl) nor an .npz (entries other than .npy)");
    }
    if torch::looks_like_legacy(buf) {
        bail!("legacy (pre-1.6) torch.save format is not supported; re-save it with a current torch");
    }
    if buf.len() >= 9 && buf[8] == b'{' {
        return Ok(Format::Safetensors);
    }
    if buf[0] == 0x80 && buf.get(1).is_some_and(|&v| (2..=5).contains(&v)) {
        return Ok(Format::Pickle);
    }
    let head: Vec<String> = buf.iter().take(8).map(|b| format!("{b:02x}")).collect();
    bail!("unrecognised file format (not safetensors, torch.save, npy, npz or pickle; starts with {})", head.join(" "))
}

/// Read a whole file held in memory. `name_hint` (a file name) only names a lone top-level
/// tensor of `.npy` or `.pt` files (its stem); the format comes from the content.
pub fn load_bytes(name_hint: &str, buf: Bytes) -> Result<TensorFile> {
    load_bytes_selected(name_hint, buf, None)
}

/// Read what `selector` names inside a file held in memory (`None` or `""`: everything). For
/// torch and pickle files the selector walks the saved structure (`0.1`: item 1 of item 0, or
/// a dict key); for flat formats it picks the tensor of that name, or the tensors whose names
/// start with `selector.` (renamed without that prefix).
pub fn load_bytes_selected(name_hint: &str, buf: Bytes, selector: Option<&str>) -> Result<TensorFile> {
    let selector = selector.filter(|s| !s.is_empty());
    let stem = file_stem(name_hint);
    match detect_format(&buf)? {
        Format::Torch => torch::read_selected(buf, &stem, selector),
        Format::Pickle => read_bare_pickle(&buf, &stem, selector),
        Format::Safetensors => select_flat(safetensors::read(buf)?, selector),
        Format::Npy => select_flat(npy::read(buf, &stem)?, selector),
        Format::Npz => select_flat(npy::read_npz(buf)?, selector),
    }
}

fn read_bare_pickle(buf: &[u8], stem: &str, selector: Option<&str>) -> Result<TensorFile> {
    if buf.len() as u64 > crate::limits::MAX_PICKLE_BYTES {
        bail!("pickle of {} bytes (limit {})", buf.len(), crate::limits::MAX_PICKLE_BYTES);
    }
    let p = pickle::parse(buf, false)?;
    let root = match selector {
        Some(sel) => structure::select(&p, p.root, sel)?,
        None => p.root,
    };
    let flat = structure::flatten(&p, root, selector.unwrap_or(stem))?;
    Ok(TensorFile { tensors: Vec::new(), metadata: flat.metadata })
}

/// A file name without directories and extension (`/a/cond.pt` -> `cond`); `tensor` if empty.
fn file_stem(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = match base.rfind('.') {
        Some(i) if i > 0 => &base[..i],
        _ => base,
    };
    if stem.is_empty() { "tensor".to_string() } else { stem.to_string() }
}

/// Selection in a flat file: the tensor called `selector`, or the group `selector.*`.
pub fn select_flat(file: TensorFile, selector: Option<&str>) -> Result<TensorFile> {
    let Some(sel) = selector else { return Ok(file) };
    let TensorFile { tensors, metadata } = file;
    if let Some(t) = tensors.iter().find(|t| t.name == sel) {
        return Ok(TensorFile { tensors: vec![t.clone()], metadata });
    }
    let prefix = format!("{sel}.");
    let group: Vec<_> = tensors
        .into_iter()
        .filter_map(|mut t| {
            let rest = t.name.strip_prefix(&prefix)?.to_string();
            t.name = rest;
            Some(t)
        })
        .collect();
    if group.is_empty() {
        if metadata.contains_key(sel) {
            let mut only = BTreeMap::new();
            only.insert(sel.to_string(), metadata[sel].clone());
            return Ok(TensorFile { tensors: Vec::new(), metadata: only });
        }
        bail!("selector '{sel}': no tensor of that name or under it");
    }
    Ok(TensorFile { tensors: group, metadata })
}

/// Split `file:selector` into the file and the selector. A spec that names an existing file is
/// all file (paths may contain ':', as on Windows `C:\x.pt`); otherwise the split is at the
/// rightmost ':' whose prefix exists. `exists` tells whether a path is a file.
pub fn split_selector(spec: &str, exists: impl Fn(&str) -> bool) -> (&str, Option<&str>) {
    if exists(spec) {
        return (spec, None);
    }
    for (i, _) in spec.rmatch_indices(':') {
        if i > 0 && exists(&spec[..i]) {
            return (&spec[..i], Some(&spec[i + 1..]));
        }
    }
    (spec, None)
}

/// Read a file from disk, with an optional `:selector` suffix (`cond.pt:0.0`). Large files are
/// memory-mapped, so only the tensors read are paged in. Errors do not repeat the path: the
/// caller names the file.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_path(spec: &str) -> Result<TensorFile> {
    let (path, selector) = split_selector(spec, |p| std::path::Path::new(p).is_file());
    let bytes = read_file(path)?;
    load_bytes_selected(path, bytes, selector)
}

/// The bytes of a file: memory-mapped from 1 MiB up, read into memory below.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_file(path: &str) -> Result<Bytes> {
    use std::fs::File;
    let io = |e: std::io::Error| crate::FormatError::new(format!("cannot read: {e}"));
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < (1 << 20) {
        let data = std::fs::read(path).map_err(io)?;
        return Ok(Bytes::new(data));
    }
    // SAFETY: the map is read-only; a file truncated by another process while mapped can still
    // fault, which is the accepted trade-off for not reading multi-gigabyte checkpoints whole.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    Ok(Bytes::mapped(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_split_at_an_existing_prefix() {
        let files = ["cond.pt", "C:\\data\\a.pt", "odd:name.pt"];
        let exists = |p: &str| files.contains(&p);
        assert_eq!(split_selector("cond.pt", exists), ("cond.pt", None));
        assert_eq!(split_selector("cond.pt:0.0", exists), ("cond.pt", Some("0.0")));
        assert_eq!(split_selector("cond.pt:a:b", exists), ("cond.pt", Some("a:b")));
        assert_eq!(split_selector("C:\\data\\a.pt", exists), ("C:\\data\\a.pt", None));
        assert_eq!(split_selector("C:\\data\\a.pt:x", exists), ("C:\\data\\a.pt", Some("x")));
        assert_eq!(split_selector("odd:name.pt:1", exists), ("odd:name.pt", Some("1")));
        assert_eq!(split_selector("missing.pt:1", exists), ("missing.pt:1", None));
    }

    #[test]
    fn stems_name_lone_tensors() {
        assert_eq!(file_stem("/a/b/cond.pt"), "cond");
        assert_eq!(file_stem("C:\\x\\lat.npy"), "lat");
        assert_eq!(file_stem(".hidden"), ".hidden");
        assert_eq!(file_stem(""), "tensor");
    }
}
