//! Running the order-statistics kernel (`shaders/order_stats.wgsl`): its buffers, one pass of
//! it over a resident tensor pair, and what comes back. What the passes are for, and how the
//! host settles ranks from their counts, is `select.rs`.

use std::num::NonZeroU64;

use wgpu::util::DeviceExt;

use crate::block::block_on;
use crate::context::GpuMetrics;
use crate::error::{GpuError, Result};
use crate::pass::Resident;
use crate::plan::{Elem, TILE_WORDS, bindings};

/// Bins of level 1 (errors: key >> 21; ULP distances: key >> 22).
pub(crate) const L1_BINS: usize = 1024;
/// At most this many decade edges, key prefixes per stream, and gathered key ranges.
pub(crate) const MAX_EDGES: usize = 48;
pub(crate) const MAX_TARGETS: usize = 16;
pub(crate) const MAX_GROUPS: usize = 32;
pub(crate) const REFINE_BINS: usize = 2048;

// Words of the counts buffer (`C_*` in the shader).
const C_E1: usize = 0;
const C_U1: usize = 1024;
const C_BETWEEN: usize = 2048;
const C_TIE: usize = 2112;
const C_GATHERED: usize = 2176;
const C_ULP_MAX: usize = 2177;
const C_SPECIAL: usize = 2178;
const C_ZERO: usize = 2179;
const C_REFINE: usize = 2240;
const COUNT_WORDS: usize = C_REFINE + 2 * MAX_TARGETS * REFINE_BINS;
// Words of the keys buffer (`K_*`).
const K_TARGET_U: usize = 16;
const K_EDGES: usize = 32;
const K_GROUPS: usize = 80;
const K_WANTED: usize = K_GROUPS + 3 * MAX_GROUPS;
const K_OCTAVES: usize = K_WANTED + 32;
const KEY_WORDS: usize = K_OCTAVES + 256;
/// Words of one tile's floored partial.
const FLOORED_WORDS: u64 = 5;

/// Entries the gathering buffer holds (16 bytes each): pairs the host must look at itself.
pub(crate) const GATHER_CAP: usize = 1 << 20;

/// Tags of gathered entries (`TAG_*`).
pub(crate) const TAG_SPECIAL: u32 = 0;
pub(crate) const TAG_EDGE: u32 = 1;
pub(crate) const TAG_GROUP: u32 = 2;

/// What one pass does.
#[derive(Clone, Debug)]
pub(crate) enum Pass {
    /// Level 1 (its decade edges, ascending f32 keys, and its floor are `run`'s arguments).
    Level1,
    /// The next bits of keys with these prefixes: (shift_hi, shift_lo, prefixes) per stream.
    Refine { errors: (u32, u32, Vec<u32>), ulps: (u32, u32, Vec<u32>) },
    /// Indices of pairs whose error key is in `lo..=hi`; `inexact_only`: only those whose
    /// f32 difference is not exact.
    Gather(Vec<Group>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Group {
    pub lo: u32,
    pub hi: u32,
    pub inexact_only: bool,
}

/// A gathered pair: its element index, why it was gathered, and its values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub index: u64,
    pub tag: u32,
    pub a: f64,
    pub b: f64,
}

impl Entry {
    /// |a - b|, exactly (in f64, as the CPU kernel computes it).
    pub fn error(&self) -> f64 {
        (self.a - self.b).abs()
    }
}

/// What a pass gives back.
pub(crate) struct Counts {
    words: Vec<u32>,
    pub gathered: Vec<Entry>,
    /// Per tile (n, sum, max, a, b) of the floored relative error (level 1 only).
    pub floored: Vec<[u32; 5]>,
}

impl Counts {
    pub fn errors_l1(&self) -> &[u32] {
        &self.words[C_E1..C_E1 + L1_BINS]
    }
    pub fn ulps_l1(&self) -> &[u32] {
        &self.words[C_U1..C_U1 + L1_BINS]
    }
    /// Errors with no edge tie, by the number of edges below them.
    pub fn between(&self, edges: usize) -> &[u32] {
        &self.words[C_BETWEEN..C_BETWEEN + edges + 1]
    }
    /// Errors whose key is edge i's and whose f32 difference is exact.
    pub fn ties(&self, edges: usize) -> &[u32] {
        &self.words[C_TIE..C_TIE + edges]
    }
    pub fn ulp_max(&self) -> u32 {
        self.words[C_ULP_MAX]
    }
    pub fn specials(&self) -> u64 {
        self.words[C_SPECIAL] as u64
    }
    pub fn zeros(&self) -> u64 {
        self.words[C_ZERO] as u64
    }
    /// Refine histogram of error target `t` (`ulps`: of the ULP stream's).
    pub fn refined(&self, ulps: bool, t: usize) -> &[u32] {
        let at = C_REFINE + (t + if ulps { MAX_TARGETS } else { 0 }) * REFINE_BINS;
        &self.words[at..at + REFINE_BINS]
    }
}

/// The buffers of the order passes over one tensor pair, made once.
pub(crate) struct OrderRun<'g> {
    g: &'g GpuMetrics,
    segments: Vec<Resident<'g>>,
    elem: Elem,
    tiles: u64,
    counts: wgpu::Buffer,
    gathered: wgpu::Buffer,
    floored: wgpu::Buffer,
    keys: wgpu::Buffer,
}

impl<'g> OrderRun<'g> {
    pub fn new(g: &'g GpuMetrics, segments: Vec<Resident<'g>>, elem: Elem) -> Result<Self> {
        let numel: u64 = segments.iter().map(|s| s.numel).sum();
        // Counts and gathered word indices are 32-bit.
        if numel > u32::MAX as u64 {
            return Err(GpuError::Unsupported(format!("{numel} elements: the order passes count in 32 bits")));
        }
        let words = numel.div_ceil(elem.per_word());
        let tiles = words.div_ceil(TILE_WORDS);
        let buffer = |label, size: u64, usage| {
            g.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        use wgpu::BufferUsages as U;
        Ok(Self {
            g,
            segments,
            elem,
            tiles,
            counts: buffer("order counts", COUNT_WORDS as u64 * 4, U::STORAGE | U::COPY_SRC | U::COPY_DST),
            gathered: buffer("order gathered", GATHER_CAP as u64 * 16, U::STORAGE | U::COPY_SRC),
            floored: buffer("order floored", (tiles * FLOORED_WORDS * 4).max(16), U::STORAGE | U::COPY_SRC),
            keys: buffer("order keys", KEY_WORDS as u64 * 4, U::STORAGE | U::COPY_DST),
        })
    }

    /// Run one pass over the whole pair (`edges`, `floor`: level 1's) and read its results.
    pub fn run(&self, pass: &Pass, edges: &[u32], floor: f32) -> Result<Counts> {
        let started = std::time::Instant::now();
        let g = self.g;
        let oom = g.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = g.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut keys = vec![0u32; KEY_WORDS];
        let (mut kind, mut shifts, mut n_te, mut n_tu, mut n_groups) = (0usize, [0u32; 4], 0, 0, 0);
        match pass {
            Pass::Level1 => {
                if edges.len() > MAX_EDGES {
                    return Err(GpuError::Unsupported(format!("{} decade edges", edges.len())));
                }
                keys[K_EDGES..K_EDGES + edges.len()].copy_from_slice(edges);
                // Per exponent, the edges below its octave (an octave holds at most one edge).
                for (e, below) in keys[K_OCTAVES..].iter_mut().enumerate() {
                    *below = edges.partition_point(|&x| x < (e as u32) << 23) as u32;
                }
            }
            Pass::Refine { errors, ulps } => {
                kind = 1;
                shifts = [errors.0, errors.1, ulps.0, ulps.1];
                if errors.2.len() > MAX_TARGETS || ulps.2.len() > MAX_TARGETS {
                    return Err(GpuError::Unsupported("more ranks than refine targets".into()));
                }
                keys[..errors.2.len()].copy_from_slice(&errors.2);
                for &p in &errors.2 {
                    let lo = p << errors.0;
                    want(&mut keys, lo, lo | ((1u64 << errors.0) - 1) as u32);
                }
                keys[K_TARGET_U..K_TARGET_U + ulps.2.len()].copy_from_slice(&ulps.2);
                (n_te, n_tu) = (errors.2.len() as u32, ulps.2.len() as u32);
            }
            Pass::Gather(groups) => {
                kind = 2;
                if groups.len() > MAX_GROUPS {
                    return Err(GpuError::Unsupported("more key ranges than gather groups".into()));
                }
                for (i, gr) in groups.iter().enumerate() {
                    want(&mut keys, gr.lo, gr.hi);
                    keys[K_GROUPS + 3 * i..K_GROUPS + 3 * i + 3].copy_from_slice(&[
                        gr.lo,
                        gr.hi,
                        gr.inexact_only as u32,
                    ]);
                }
                n_groups = groups.len() as u32;
            }
        }
        g.queue.write_buffer(&self.keys, 0, &words_bytes(&keys));
        let mut encoder = g.device.create_command_encoder(&Default::default());
        encoder.clear_buffer(&self.counts, 0, None);
        let mut groups = Vec::new();
        let mut tile = 0;
        for s in &self.segments {
            for b in bindings(s.numel, self.elem, tile, g.max_binding)? {
                let params: Vec<u32> = vec![
                    b.words as u32,
                    b.numel as u32,
                    b.first_tile as u32,
                    b.tiles as u32,
                    self.elem.code(),
                    edges.len() as u32,
                    GATHER_CAP as u32,
                    shifts[0],
                    shifts[1],
                    shifts[2],
                    shifts[3],
                    n_te,
                    n_tu,
                    n_groups,
                    // ULP distances counted: both sides have one float dtype (`compare` checks).
                    1,
                    floor.to_bits(),
                    0,
                    0,
                    0,
                    0,
                ];
                let params = g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("order params"),
                    contents: &words_bytes(&params),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
                let (offset, size) = (b.word_offset * 4, b.words * 4);
                let range = |buffer| {
                    wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer, offset, size: NonZeroU64::new(size) })
                };
                let entries = [
                    wgpu::BindGroupEntry { binding: 0, resource: range(s.a) },
                    wgpu::BindGroupEntry { binding: 1, resource: range(s.b) },
                    wgpu::BindGroupEntry { binding: 2, resource: self.counts.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 3, resource: self.gathered.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 4, resource: self.floored.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 5, resource: params.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 6, resource: self.keys.as_entire_binding() },
                ];
                let group = g.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("order_stats"),
                    layout: &g.order_layout,
                    entries: &entries,
                });
                groups.push((group, b.grid(g.max_groups)));
            }
            tile += s.numel.div_ceil(self.elem.tile_elems());
        }
        {
            let mut cp = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("order_stats"),
                timestamp_writes: None,
            });
            cp.set_pipeline(&g.order_pipelines[kind]);
            for (group, (x, y)) in &groups {
                cp.set_bind_group(0, group, &[]);
                cp.dispatch_workgroups(*x, *y, 1);
            }
        }
        let staging = g.staging(COUNT_WORDS as u64 * 4, "order counts read-back");
        encoder.copy_buffer_to_buffer(&self.counts, 0, &staging, 0, COUNT_WORDS as u64 * 4);
        g.queue.submit([encoder.finish()]);
        let words = g.with_mapped(&staging, bytes_words)?;
        let n = (words[C_GATHERED] as usize).min(GATHER_CAP);
        let overflow = words[C_GATHERED] as usize > GATHER_CAP;
        let mut gathered = Vec::new();
        if n > 0 && !overflow {
            let staging = g.staging(n as u64 * 16, "order gathered read-back");
            let mut encoder = g.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&self.gathered, 0, &staging, 0, n as u64 * 16);
            g.queue.submit([encoder.finish()]);
            let (per_word, elem) = (self.elem.per_word(), self.elem);
            gathered = g.with_mapped(&staging, |bytes| {
                bytes_words(bytes)
                    .chunks_exact(4)
                    .map(|e| Entry {
                        index: e[0] as u64 * per_word + (e[1] & 1) as u64,
                        tag: e[1] >> 1,
                        a: elem.value(e[2]),
                        b: elem.value(e[3]),
                    })
                    .collect()
            })?;
        }
        let mut floored = Vec::new();
        if matches!(pass, Pass::Level1) && self.tiles > 0 {
            let bytes = self.tiles * FLOORED_WORDS * 4;
            let staging = g.staging(bytes, "order floored read-back");
            let mut encoder = g.device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&self.floored, 0, &staging, 0, bytes);
            g.queue.submit([encoder.finish()]);
            floored = g.with_mapped(&staging, |b| {
                bytes_words(b).chunks_exact(5).map(|w| w.try_into().expect("5 words")).collect()
            })?;
        }
        if let Some(e) = block_on(validation.pop()) {
            return Err(GpuError::Gpu(e.to_string()));
        }
        if let Some(e) = block_on(oom.pop()) {
            return Err(GpuError::Gpu(e.to_string()));
        }
        if overflow {
            return Err(GpuError::Unsupported(format!(
                "more than {GATHER_CAP} pairs for the host to settle (tiny values or ties)"
            )));
        }
        g.phase(
            match pass {
                Pass::Level1 => "order level 1",
                Pass::Refine { .. } => "order refine",
                Pass::Gather(_) => "order gather",
            },
            started,
        );
        Ok(Counts { words, gathered, floored })
    }
}

/// Mark the level-1 bins (key >> 21) of error keys `lo..=hi` as wanted: the refine and gather
/// passes look at a pair only if its bin is.
fn want(keys: &mut [u32], lo: u32, hi: u32) {
    for bin in lo >> 21..=hi >> 21 {
        keys[K_WANTED + (bin >> 5) as usize] |= 1 << (bin & 31);
    }
}

fn words_bytes(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn bytes_words(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()
}
