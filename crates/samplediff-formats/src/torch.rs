//! PyTorch `torch.save` files (`.pt`, `.pth`, `.ckpt`): the zip format torch writes since 1.6.
//!
//! The archive holds `<name>/data.pkl` (the object, pickled with persistent ids for storages),
//! `<name>/data/<key>` (each storage's raw bytes, stored uncompressed), and `<name>/byteorder`.
//! We unpickle with the restricted machine of [`crate::pickle`], which never imports or runs
//! anything, then rebuild each tensor from its storage, offset, size and stride: contiguous
//! views are zero-copy slices of the file, other views are gathered into C order after checking
//! that every element they reach lies inside the storage's bytes.
//!
//! The legacy (pre-1.6, non-zip) format is recognised and refused with a clear message.

use std::collections::HashMap;

use crate::archive::Archive;
use crate::layout::{CopyBudget, checked_bytes, gather, is_contiguous, swap_bytes, view_extent};
use crate::limits::MAX_PICKLE_BYTES;
use crate::pickle::{self, TensorRef};
use crate::structure::{self, Flat};
use crate::{Bytes, FormatError, RawTensor, Result, TensorFile, bail};

/// Whether this zip archive is a torch.save file (it has a `data.pkl`).
pub fn is_torch_archive(archive: &Archive) -> bool {
    archive.entries().iter().any(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl"))
}

/// Read a whole torch.save file. A top-level tensor is named `root_name`.
pub fn read(buf: Bytes, root_name: &str) -> Result<TensorFile> {
    read_selected(buf, root_name, None)
}

/// Read the part of a torch.save file that `selector` (a path such as `0.0` or
/// `state_dict.model.weight`) names; `None` or `""` reads everything. Only the selected tensors
/// are materialised.
pub fn read_selected(buf: Bytes, root_name: &str, selector: Option<&str>) -> Result<TensorFile> {
    let mut budget = CopyBudget::for_file(buf.len());
    let mut archive = Archive::open(buf)?;
    let pkl_entries: Vec<_> =
        archive.entries().iter().filter(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl")).cloned().collect();
    let pkl = match &pkl_entries[..] {
        [one] => one.clone(),
        [] => bail!("zip archive has no data.pkl: not a torch.save file"),
        many => bail!("zip archive has {} data.pkl entries: not a torch.save file", many.len()),
    };
    let prefix = pkl.name[..pkl.name.len() - "data.pkl".len()].to_string();
    let big_endian = match archive.find(&format!("{prefix}byteorder")).cloned() {
        None => false,
        Some(entry) => match &*archive.read(&entry, 16)? {
            b"little" => false,
            b"big" => true,
            other => bail!("torch archive byteorder is {:?}", String::from_utf8_lossy(other)),
        },
    };
    let data = archive.read(&pkl, MAX_PICKLE_BYTES)?;
    let p = pickle::parse(&data, true)?;
    let root = match selector {
        Some(sel) if !sel.is_empty() => structure::select(&p, p.root, sel)?,
        _ => p.root,
    };
    let name = selector.filter(|s| !s.is_empty()).unwrap_or(root_name);
    let Flat { tensors: views, metadata } = structure::flatten(&p, root, name)?;

    let mut storages = Storages { archive: &mut archive, prefix, cache: HashMap::new() };
    let mut tensors = Vec::with_capacity(views.len());
    for (name, view) in views {
        let t = materialise(&mut storages, &name, view, big_endian, &mut budget)
            .map_err(|e| FormatError::new(format!("tensor '{name}': {e}")))?;
        tensors.push(t);
    }
    Ok(TensorFile { tensors, metadata })
}

/// Storage bytes by key, each archive entry read once (views of one storage share it).
struct Storages<'a> {
    archive: &'a mut Archive,
    prefix: String,
    cache: HashMap<String, Bytes>,
}

impl Storages<'_> {
    fn get(&mut self, key: &str, declared: u64) -> Result<Bytes> {
        if let Some(b) = self.cache.get(key) {
            return Ok(b.clone());
        }
        let path = format!("{}data/{key}", self.prefix);
        let entry = self
            .archive
            .find(&path)
            .cloned()
            .ok_or_else(|| FormatError::new(format!("storage '{key}' is missing from the archive")))?;
        if entry.size < declared {
            bail!("storage '{key}' holds {} bytes but declares {declared}", entry.size);
        }
        let bytes = self.archive.read(&entry, entry.size)?;
        self.cache.insert(key.to_string(), bytes.clone());
        Ok(bytes)
    }
}

fn materialise(
    storages: &mut Storages,
    name: &str,
    view: &TensorRef,
    big_endian: bool,
    budget: &mut CopyBudget,
) -> Result<RawTensor> {
    let elem = view.dtype.size();
    let storage = storages.get(&view.storage.key, view.storage.nbytes)?;
    let numel = crate::layout::checked_numel(&view.shape)?;
    let nbytes = checked_bytes(numel, elem, &view.shape)?;
    let extent = view_extent(&view.shape, &view.stride, view.offset)?;
    let needed = extent.checked_mul(elem).ok_or_else(|| FormatError::new("view extent overflows"))?;
    if needed > storage.len() {
        bail!(
            "view (offset {}, size {:?}, stride {:?}) reaches byte {needed} of a {}-byte storage",
            view.offset,
            view.shape,
            view.stride,
            storage.len()
        );
    }
    let data = if numel == 0 {
        Bytes::new(Vec::new())
    } else if is_contiguous(&view.shape, &view.stride) && !big_endian {
        let start = view.offset * elem;
        storage.slice(start..start + nbytes)
    } else {
        budget.charge(nbytes, "a strided view")?;
        let mut out = gather(&storage, elem, &view.shape, &view.stride, view.offset);
        if big_endian {
            swap_bytes(&mut out, elem);
        }
        Bytes::new(out)
    };
    Ok(RawTensor { name: name.to_string(), dtype: view.dtype, shape: view.shape.clone(), data })
}

/// The first bytes of a legacy (pre-1.6) torch.save file: a pickled magic number.
pub fn looks_like_legacy(buf: &[u8]) -> bool {
    // PROTO 2, LONG1 of 10 bytes: 0x1950a86a20f9469cfc6c little-endian.
    buf.starts_with(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19")
}
