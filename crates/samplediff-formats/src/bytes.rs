use std::ops::Range;
use std::sync::Arc;

/// A cheap, cloneable view into one shared byte buffer (a whole file read into memory, or a
/// memory map). Tensors of one file share the buffer instead of copying their data out.
#[derive(Clone)]
pub struct Bytes {
    buf: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: Range<usize>,
}

impl Bytes {
    pub fn new(buf: impl AsRef<[u8]> + Send + Sync + 'static) -> Self {
        let len = buf.as_ref().len();
        Self { buf: Arc::new(buf), range: 0..len }
    }

    /// A sub-view; `range` is relative to this view and must lie inside it.
    pub fn slice(&self, range: Range<usize>) -> Self {
        assert!(range.start <= range.end && range.end <= self.len(), "Bytes::slice out of range");
        Self { buf: self.buf.clone(), range: self.range.start + range.start..self.range.start + range.end }
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
