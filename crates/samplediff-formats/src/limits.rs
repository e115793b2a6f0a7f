//! Hard limits for reading untrusted files.
//!
//! Every reader checks its arithmetic and refuses inputs past these bounds with an error instead
//! of allocating, recursing or looping on the file's word. The numbers are far above anything a
//! real checkpoint, latent or conditioning file needs, and far below what would hurt the machine.

/// Deepest nesting of containers a pickle may build (ComfyUI conditionings nest 3 deep, state
/// dicts 2). The unpickler is iterative, so this bounds output work, not the call stack.
pub const MAX_PICKLE_DEPTH: usize = 1000;

/// Most objects (strings, ints, lists, tensors, ...) one pickle may create. A state dict costs
/// about 15 objects per tensor, so this is room for ~100k tensors at ~64 MiB of bookkeeping.
pub const MAX_PICKLE_OBJECTS: usize = 2_000_000;

/// Most entries on the pickle machine's value stack at once.
pub const MAX_PICKLE_STACK: usize = 1_000_000;

/// Most memo entries (`PUT`/`MEMOIZE`) one pickle may define.
pub const MAX_PICKLE_MEMO: usize = 2_000_000;

/// Largest `data.pkl` (or bare pickle) we parse. torch's are a few hundred bytes per tensor.
pub const MAX_PICKLE_BYTES: u64 = 128 << 20;

/// Largest integer literal in a pickle, in bytes (Python refuses to print ints past 4300 digits).
pub const MAX_PICKLE_LONG_BYTES: usize = 1024;

/// Most nodes the structure of a pickle may expand to when shared references are followed
/// (a "billion laughs" pickle shares one list many times over).
pub const MAX_STRUCTURE_NODES: u64 = 1_000_000;

/// Most bytes of text (strings, keys, numbers as JSON) the structure of a pickle may expand to
/// when shared references are followed. Without sharing a structure's text is about the size of
/// its pickle (at most [`MAX_PICKLE_BYTES`]); a small pickle that names one long string a
/// million times is refused before any of it is written out.
pub const MAX_STRUCTURE_TEXT: u64 = 128 << 20;

/// Most bytes the names of one file's tensors and metadata entries (`model.layer.0.weight`) may
/// add up to. Names repeat their parents' keys, so shared deep paths multiply them.
pub const MAX_NAME_BYTES: usize = 64 << 20;

/// `__structure__` metadata longer than this is replaced by a note that it was omitted.
pub const MAX_STRUCTURE_JSON: usize = 1 << 20;

/// One metadata value (a tensor-free part of a pickle, as JSON) longer than this is replaced by
/// a note that it was omitted.
pub const MAX_METADATA_JSON: usize = 16 << 20;

/// Bytes that gathering strided views, byte-swapping and decompressing may allocate beyond the
/// size of the file itself (views with stride 0 can legitimately be larger than their storage).
pub const COPY_SLACK_BYTES: u64 = 256 << 20;

/// Most bytes all deflated zip entries of one file may inflate to, together.
pub const MAX_INFLATED_BYTES: u64 = 4 << 30;

/// Deflate cannot expand its input by more than about 1032:1; a zip entry that declares more is
/// lying about its size (the classic zip bomb), and we refuse it before inflating anything.
pub const MAX_DEFLATE_RATIO: u64 = 1032;

/// Most entries in one zip archive.
pub const MAX_ZIP_ENTRIES: usize = 1_000_000;

/// Largest `.npy` header (numpy itself refuses headers over 10000 bytes by default).
pub const MAX_NPY_HEADER: usize = 65_536;

/// Most dimensions of one tensor (numpy's own limit is 64).
pub const MAX_DIMS: usize = 64;
