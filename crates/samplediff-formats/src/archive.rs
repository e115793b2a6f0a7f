//! Zip containers (torch.save files and .npz), read defensively.
//!
//! The `zip` crate parses the central directory; on top of it we check what a zip bomb lies
//! about before anything is inflated: entries must lie inside the file and must not overlap
//! (overlapping entries are how a small zip inflates to terabytes), a deflated entry may not
//! declare more than deflate can produce from its compressed size, and inflation is capped by
//! `take` at the declared size and by a total budget. Stored entries (what torch.save and
//! `np.savez` write) are sliced out of the shared buffer without a copy, so a memory-mapped
//! multi-gigabyte checkpoint is never read as a whole.

use std::io::{Cursor, Read};

use zip::{CompressionMethod, ZipArchive};

use crate::limits::{MAX_DEFLATE_RATIO, MAX_INFLATED_BYTES, MAX_ZIP_ENTRIES};
use crate::{Bytes, FormatError, Result, bail};

/// One file inside the archive, already checked against the archive's bytes.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub size: u64,
    index: usize,
    data_start: u64,
    compressed_size: u64,
    stored: bool,
}

pub struct Archive {
    buf: Bytes,
    zip: ZipArchive<Cursor<Bytes>>,
    entries: Vec<Entry>,
    inflated: u64,
}

/// Whether `buf` starts like a zip archive (a local file header, or the end record of an empty one).
pub fn looks_like_zip(buf: &[u8]) -> bool {
    buf.starts_with(b"PK\x03\x04") || buf.starts_with(b"PK\x05\x06")
}

impl Archive {
    pub fn open(buf: Bytes) -> Result<Self> {
        let mut zip = ZipArchive::new(Cursor::new(buf.clone()))
            .map_err(|e| FormatError::new(format!("invalid zip archive: {e}")))?;
        if zip.len() > MAX_ZIP_ENTRIES {
            bail!("zip archive has {} entries (limit {MAX_ZIP_ENTRIES})", zip.len());
        }
        let mut entries = Vec::with_capacity(zip.len());
        let mut spans = Vec::with_capacity(zip.len());
        for index in 0..zip.len() {
            let file =
                zip.by_index_raw(index).map_err(|e| FormatError::new(format!("invalid zip entry #{index}: {e}")))?;
            let name = file
                .name()
                .map_err(|e| FormatError::new(format!("invalid zip entry name #{index}: {e}")))?
                .into_owned();
            if file.is_dir() {
                continue;
            }
            if file.encrypted() {
                bail!("zip entry '{name}' is encrypted");
            }
            let stored = match file.compression() {
                CompressionMethod::Stored => true,
                CompressionMethod::Deflated => false,
                other => bail!("zip entry '{name}' uses unsupported compression {other}"),
            };
            let (size, compressed_size, header_start) = (file.size(), file.compressed_size(), file.header_start());
            let data_start =
                file.data_start().ok_or_else(|| FormatError::new(format!("zip entry '{name}' has no data offset")))?;
            let data_end =
                data_start.checked_add(compressed_size).filter(|&end| end <= buf.len() as u64).ok_or_else(|| {
                    FormatError::new(format!(
                        "zip entry '{name}' claims {compressed_size} bytes past the end of the file"
                    ))
                })?;
            if stored && size != compressed_size {
                bail!("zip entry '{name}' is stored but declares {size} bytes in {compressed_size}");
            }
            if !stored {
                if size > compressed_size.saturating_mul(MAX_DEFLATE_RATIO).saturating_add(1024) {
                    bail!(
                        "zip entry '{name}' declares {size} bytes from {compressed_size} compressed: more than deflate can produce (zip bomb)"
                    );
                }
                if size > MAX_INFLATED_BYTES {
                    bail!("zip entry '{name}' inflates to {size} bytes (limit {MAX_INFLATED_BYTES})");
                }
            }
            spans.push((header_start, data_end, name.clone()));
            entries.push(Entry { name, size, index, data_start, compressed_size, stored });
        }
        spans.sort();
        for pair in spans.windows(2) {
            if pair[1].0 < pair[0].1 {
                bail!("zip entries '{}' and '{}' overlap (zip bomb)", pair[0].2, pair[1].2);
            }
        }
        Ok(Self { buf, zip, entries, inflated: 0 })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The entry's bytes: a slice of the archive when stored, inflated (at most `limit` bytes,
    /// counted against the archive's inflation budget) when deflated.
    pub fn read(&mut self, entry: &Entry, limit: u64) -> Result<Bytes> {
        let name = &entry.name;
        if entry.size > limit {
            bail!("zip entry '{name}' is {} bytes (limit {limit})", entry.size);
        }
        if entry.stored {
            let start = entry.data_start as usize;
            return Ok(self.buf.slice(start..start + entry.compressed_size as usize));
        }
        self.inflated = self.inflated.saturating_add(entry.size);
        if self.inflated > MAX_INFLATED_BYTES {
            bail!("zip entries inflate to more than {MAX_INFLATED_BYTES} bytes together");
        }
        let file = self.zip.by_index(entry.index).map_err(|e| FormatError::new(format!("zip entry '{name}': {e}")))?;
        // Never trust the declared size for the allocation: start small, read one byte past it.
        let mut data = Vec::with_capacity((entry.size as usize).min(1 << 24));
        file.take(entry.size + 1)
            .read_to_end(&mut data)
            .map_err(|e| FormatError::new(format!("zip entry '{name}' does not inflate: {e}")))?;
        if data.len() as u64 != entry.size {
            bail!(
                "zip entry '{name}' inflates to {}{} bytes but declares {}",
                data.len(),
                if data.len() as u64 > entry.size { "+" } else { "" },
                entry.size
            );
        }
        Ok(Bytes::new(data))
    }
}
