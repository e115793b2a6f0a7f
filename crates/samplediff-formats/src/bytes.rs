use std::ops::Range;
use std::sync::Arc;

/// A cheap, cloneable view into one shared byte buffer (a whole file read into memory, or a
/// memory map). Tensors of one file share the buffer instead of copying their data out.
#[derive(Clone)]
pub struct Bytes {
    buf: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
    /// The memory map behind `buf`, when it is one (so its pages can be released).
    #[cfg(not(target_arch = "wasm32"))]
    map: Option<Arc<memmap2::Mmap>>,
}

impl Bytes {
    pub fn new(buf: impl AsRef<[u8]> + Send + Sync + 'static) -> Self {
        let len = buf.as_ref().len();
        Self {
            buf: Arc::new(buf),
            range: 0..len,
            #[cfg(not(target_arch = "wasm32"))]
            map: None,
        }
    }

    /// A memory-mapped file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn mapped(map: memmap2::Mmap) -> Self {
        let map = Arc::new(map);
        Self { buf: map.clone(), range: 0..map.len(), map: Some(map) }
    }

    /// Drop this view's pages from the process's resident memory when it is a memory-mapped
    /// file (they stay in the OS page cache and fault back in if read again); bytes held in
    /// memory are untouched. What keeps comparing files larger than RAM within bounded memory.
    pub fn release(&self) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            // Whole pages inside the view only: the neighbours may still be in use.
            const PAGE: usize = 4096;
            let start = self.range.start.div_ceil(PAGE) * PAGE;
            let end = self.range.end / PAGE * PAGE;
            if end > start {
                // SAFETY: the map is a read-only, file-backed mapping: MADV_DONTNEED only drops
                // the process's copy of the pages; the next read faults the same file contents
                // back in, so no reference into the map ever sees different bytes.
                let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start) };
            }
        }
    }

    /// A sub-view; `range` is relative to this view and must lie inside it.
    pub fn slice(&self, range: Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= self.len(), "Bytes::slice out of range");
        Self {
            buf: self.buf.clone(),
            range: self.range.start + range.start..self.range.start + range.end,
            #[cfg(not(target_arch = "wasm32"))]
            map: self.map.clone(),
        }
    }

    pub fn len(&self) -> usize {
        self.range.len()
    }

    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &(*self.buf).as_ref()[self.range.clone()]
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_ref()
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bytes({} bytes)", self.len())
    }
}
