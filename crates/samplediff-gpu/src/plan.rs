//! How a tensor is cut into tiles, bindings and dispatches.
//!
//! Tiles are the unit of the result: one partial per [`TILE_WORDS`] words of input, the same
//! tiles whatever the binding limit, the upload piece size or the GPU, so the partials (and
//! the sums made of them) never depend on how the work was split. Bindings are the unit of
//! addressing: a storage binding holds at most the device's limit (2 GiB - 1 on Vulkan through
//! wgpu), so a 4 GiB input is read through several bindings, each a whole number of tiles.

use samplediff_formats::DType;

use crate::error::{GpuError, Result};

/// Words (32 bits) per tile; `TILE_WORDS` in `shaders/fused_metrics.wgsl`.
pub const TILE_WORDS: u64 = 16384;
/// Words of one tile's partial; `PARTIAL_WORDS` in the shader.
pub const PARTIAL_WORDS: u64 = 24;
/// Bytes of one tile's partial.
pub const PARTIAL_BYTES: u64 = PARTIAL_WORDS * 4;

/// The element types the kernel reads, with their code in the shader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem {
    F32,
    F16,
    BF16,
}

impl Elem {
    pub fn of(dtype: DType) -> Result<Self> {
        match dtype {
            DType::F32 => Ok(Elem::F32),
            DType::F16 => Ok(Elem::F16),
            DType::BF16 => Ok(Elem::BF16),
            other => Err(GpuError::Input(format!("the GPU kernel reads F32, F16 and BF16, not {}", other.name()))),
        }
    }

    /// The value of an element from its bits (f16/bf16: the low 16).
    pub fn value(self, bits: u32) -> f64 {
        match self {
            Elem::F32 => DType::F32.decode(&bits.to_le_bytes()),
            Elem::F16 => DType::F16.decode(&(bits as u16).to_le_bytes()),
            Elem::BF16 => DType::BF16.decode(&(bits as u16).to_le_bytes()),
        }
    }

    /// `DT_*` in the shader.
    pub fn code(self) -> u32 {
        match self {
            Elem::F32 => 0,
            Elem::F16 => 1,
            Elem::BF16 => 2,
        }
    }

    pub fn per_word(self) -> u64 {
        if self == Elem::F32 { 1 } else { 2 }
    }

    pub fn size(self) -> u64 {
        4 / self.per_word()
    }

    /// Elements of one tile.
    pub fn tile_elems(self) -> u64 {
        TILE_WORDS * self.per_word()
    }
}

/// One binding of the input: a range of both buffers read by one dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Binding {
    /// Offset of the range in the buffers, in words (a multiple of [`TILE_WORDS`]).
    pub word_offset: u64,
    /// Words in the range (the last word of a 16-bit tensor may be half padding).
    pub words: u64,
    /// Elements in the range.
    pub numel: u64,
    /// Index of the range's first tile among the whole tensor's tiles.
    pub first_tile: u64,
    pub tiles: u64,
}

impl Binding {
    /// The 2-D grid of workgroups covering the tiles (at most `max` a dimension).
    pub fn grid(&self, max: u32) -> (u32, u32) {
        let x = self.tiles.min(max as u64);
        (x as u32, self.tiles.div_ceil(x) as u32)
    }
}

/// Cut `numel` elements (starting at tile `first_tile` of the tensor) into bindings of at most
/// `max_binding_bytes` each, of nearly equal size.
pub(crate) fn bindings(numel: u64, elem: Elem, first_tile: u64, max_binding_bytes: u64) -> Result<Vec<Binding>> {
    let words = numel.div_ceil(elem.per_word());
    let max_tiles = max_binding_bytes / 4 / TILE_WORDS;
    if max_tiles == 0 {
        return Err(GpuError::Device(format!(
            "storage bindings of {max_binding_bytes} bytes cannot hold one tile ({} bytes)",
            TILE_WORDS * 4
        )));
    }
    let tiles = words.div_ceil(TILE_WORDS);
    let n = tiles.div_ceil(max_tiles).max(1);
    let per = tiles.div_ceil(n);
    let mut out = Vec::with_capacity(n as usize);
    let mut tile = 0;
    while tile < tiles {
        let count = per.min(tiles - tile);
        let word_offset = tile * TILE_WORDS;
        let w = (count * TILE_WORDS).min(words - word_offset);
        let e = (w * elem.per_word()).min(numel - word_offset * elem.per_word());
        out.push(Binding { word_offset, words: w, numel: e, first_tile: first_tile + tile, tiles: count });
        tile += count;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_cover_every_word_once_in_whole_tiles() {
        let limit = 3 * TILE_WORDS * 4 + 100;
        for numel in [1, 2, 3, 16383, 16384, 16385, 7 * 16384 + 5, 100_000] {
            for elem in [Elem::F32, Elem::BF16] {
                let bs = bindings(numel, elem, 10, limit).unwrap();
                let words = numel.div_ceil(elem.per_word());
                assert_eq!(bs.iter().map(|b| b.words).sum::<u64>(), words, "{numel} {elem:?}");
                assert_eq!(bs.iter().map(|b| b.numel).sum::<u64>(), numel);
                let mut next = 0;
                for b in &bs {
                    assert_eq!(b.word_offset, next);
                    assert_eq!(b.word_offset % TILE_WORDS, 0);
                    assert_eq!(b.first_tile, 10 + b.word_offset / TILE_WORDS);
                    assert_eq!(b.tiles, b.words.div_ceil(TILE_WORDS));
                    assert!(b.tiles <= 3 && b.words * 4 <= limit);
                    next += b.words;
                }
            }
        }
    }

    #[test]
    fn a_4_gib_input_takes_three_bindings_under_the_2_gib_limit() {
        let bs = bindings(1 << 30, Elem::F32, 0, i32::MAX as u64).unwrap();
        assert_eq!(bs.len(), 3);
        assert!(bs.iter().all(|b| b.words * 4 <= i32::MAX as u64));
        assert_eq!(bs.iter().map(|b| b.tiles).sum::<u64>(), (1 << 30) / TILE_WORDS);
    }

    #[test]
    fn grids_cover_the_tiles() {
        let b = Binding { word_offset: 0, words: 0, numel: 0, first_tile: 0, tiles: 100_000 };
        let (x, y) = b.grid(65535);
        assert!(x as u64 * y as u64 >= 100_000 && x <= 65535 && y == 2);
    }

    #[test]
    fn a_limit_below_one_tile_is_an_error() {
        assert!(bindings(10, Elem::F32, 0, 1000).is_err());
    }
}
