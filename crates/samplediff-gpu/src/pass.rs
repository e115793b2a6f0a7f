//! Running the main pass: inputs to bindings, one dispatch per binding, partials back.

use std::num::NonZeroU64;
use std::time::Duration;

use samplediff_formats::DType;
use wgpu::util::DeviceExt;

use crate::block::block_on;
use crate::context::GpuMetrics;
use crate::error::{GpuError, Result};
use crate::partials::MainPass;
use crate::plan::{Binding, Elem, PARTIAL_BYTES, PARTIAL_WORDS, bindings};
use crate::timer::GpuTimer;

/// torch.isclose's tolerances: close when |a-b| <= atol + rtol |b|.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub rtol: f64,
    pub atol: f64,
}

/// A stretch of a tensor pair already on the GPU: elements `0..numel` of buffers `a` and `b`
/// (little-endian, packed; made with `STORAGE` usage and at least `numel` elements rounded up
/// to whole 32-bit words long).
#[derive(Clone, Copy, Debug)]
pub struct Resident<'a> {
    pub a: &'a wgpu::Buffer,
    pub b: &'a wgpu::Buffer,
    pub numel: u64,
}

/// Bytes of each side uploaded at a time by [`GpuMetrics::main_pass`]: bounds the staging
/// memory whatever the tensors' size.
const PIECE_BYTES: u64 = 256 << 20;

/// Pairs a main pass leaves to the host at most (`MainPass::specials`); more, and the GPU is
/// the wrong tool for the tensor (its values mostly tiny).
const SPECIALS_CAP: u64 = 1 << 16;

impl GpuMetrics {
    /// The main pass over two tensors in host memory (`a`, `b`: their bytes, little-endian,
    /// `dtype` F32, F16 or BF16 on both sides), uploaded piece by piece.
    pub fn main_pass(&self, a: &[u8], b: &[u8], dtype: DType, tol: Tolerance) -> Result<MainPass> {
        let elem = Elem::of(dtype)?;
        let size = elem.size() as usize;
        if a.len() != b.len() {
            return Err(GpuError::Input(format!("the tensors differ in size: {} and {} bytes", a.len(), b.len())));
        }
        if !a.len().is_multiple_of(size) {
            return Err(GpuError::Input(format!(
                "{} bytes are not a whole number of {} elements",
                a.len(),
                dtype.name()
            )));
        }
        let numel = (a.len() / size) as u64;
        let run = Run::new(self, numel, elem, tol)?;
        if numel == 0 {
            return run.finish(None).map(|(m, _)| m);
        }
        let piece = (PIECE_BYTES / 4 / crate::TILE_WORDS).max(1) * elem.tile_elems();
        let bytes = (piece.min(numel) * elem.size()).next_multiple_of(4);
        let (ga, gb) = (self.input_buffer("main_pass a", bytes), self.input_buffer("main_pass b", bytes));
        let mut start = 0;
        while start < numel {
            let n = piece.min(numel - start);
            let range = start as usize * size..(start + n) as usize * size;
            self.upload(&ga, 0, &a[range.clone()]);
            self.upload(&gb, 0, &b[range]);
            let mut encoder = self.device.create_command_encoder(&Default::default());
            run.record(&mut encoder, &[Resident { a: &ga, b: &gb, numel: n }], start / elem.tile_elems(), None)?;
            self.queue.submit([encoder.finish()]);
            // One piece in flight: the staging copies of the uploads stay bounded.
            self.wait()?;
            start += n;
        }
        let mut pass = run.finish(None)?.0;
        pass.add_specials(a, b, dtype, tol);
        Ok(pass)
    }

    /// The main pass over a tensor pair already on the GPU (what the bandwidth goal measures).
    /// Pairs with tiny inputs are left in [`MainPass::specials`] for the caller, who has the
    /// values (`main_pass` adds them itself).
    pub fn main_pass_resident(
        &self,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        numel: u64,
        dtype: DType,
        tol: Tolerance,
    ) -> Result<MainPass> {
        self.main_pass_segments(&[Resident { a, b, numel }], dtype, tol, false).map(|(m, _)| m)
    }

    /// [`GpuMetrics::main_pass_resident`], also returning the GPU time of the kernel's
    /// dispatches (timestamp queries; `None` where the device has none).
    pub fn main_pass_resident_timed(
        &self,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        numel: u64,
        dtype: DType,
        tol: Tolerance,
    ) -> Result<(MainPass, Option<Duration>)> {
        self.main_pass_segments(&[Resident { a, b, numel }], dtype, tol, true)
    }

    /// The main pass over a tensor pair held in several buffer pairs, in order (for tensors
    /// larger than the device's largest buffer). Every segment but the last must hold a whole
    /// number of tiles ([`crate::TILE_WORDS`] words).
    pub fn main_pass_segments(
        &self,
        segments: &[Resident],
        dtype: DType,
        tol: Tolerance,
        timed: bool,
    ) -> Result<(MainPass, Option<Duration>)> {
        let elem = Elem::of(dtype)?;
        let numel = segments.iter().map(|s| s.numel).sum();
        let run = Run::new(self, numel, elem, tol)?;
        let timer = (timed && self.timestamps).then(|| GpuTimer::new(self));
        let mut encoder = self.device.create_command_encoder(&Default::default());
        run.record(&mut encoder, segments, 0, timer.as_ref())?;
        if let Some(t) = &timer {
            t.resolve(&mut encoder);
        }
        self.queue.submit([encoder.finish()]);
        run.finish(timer)
    }

    /// A buffer of `size` bytes the kernels read inputs from.
    pub(crate) fn input_buffer(&self, label: &str, size: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Write `bytes` at byte `at` (a multiple of 4) of `buffer` (a trailing part word is padded
    /// with zeros).
    pub(crate) fn upload(&self, buffer: &wgpu::Buffer, at: u64, bytes: &[u8]) {
        let whole = bytes.len() / 4 * 4;
        self.queue.write_buffer(buffer, at, &bytes[..whole]);
        if whole < bytes.len() {
            let mut last = [0u8; 4];
            last[..bytes.len() - whole].copy_from_slice(&bytes[whole..]);
            self.queue.write_buffer(buffer, at + whole as u64, &last);
        }
    }

    pub(crate) fn wait(&self) -> Result<()> {
        self.device.poll(wgpu::PollType::wait_indefinitely()).map(|_| ()).map_err(|e| GpuError::Gpu(e.to_string()))
    }

    /// `f` of the bytes of `buffer` (MAP_READ), after the work submitted so far.
    pub(crate) fn with_mapped<T>(&self, buffer: &wgpu::Buffer, f: impl FnOnce(&[u8]) -> T) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        buffer.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| GpuError::Gpu(e.to_string()))?
            .map_err(|e| GpuError::Gpu(format!("reading results back: {e}")))?;
        let out = f(&buffer.get_mapped_range(..).map_err(|e| GpuError::Gpu(e.to_string()))?);
        buffer.unmap();
        Ok(out)
    }

    pub(crate) fn staging(&self, size: u64, label: &str) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }
}

/// One main pass: the partials of every tile of the tensor, filled by one or more recordings.
struct Run<'g> {
    g: &'g GpuMetrics,
    elem: Elem,
    numel: u64,
    tol: Tolerance,
    tiles: u64,
    partials: wgpu::Buffer,
    /// Word 0: pairs left to the host; then (first tile of the binding, element in it) each.
    specials: wgpu::Buffer,
    tol64: Option<wgpu::Buffer>,
    /// Capture validation and out-of-memory errors as results, not panics (fields drop in
    /// order: the scope pushed last comes first).
    validation: wgpu::ErrorScopeGuard,
    oom: wgpu::ErrorScopeGuard,
}

impl<'g> Run<'g> {
    fn new(g: &'g GpuMetrics, numel: u64, elem: Elem, tol: Tolerance) -> Result<Self> {
        if !(tol.rtol >= 0.0 && tol.atol >= 0.0 && tol.rtol.is_finite() && tol.atol.is_finite()) {
            return Err(GpuError::Input(format!(
                "tolerances must be finite and >= 0 (rtol {}, atol {})",
                tol.rtol, tol.atol
            )));
        }
        let tiles = numel.div_ceil(elem.tile_elems());
        if tiles * PARTIAL_WORDS > u32::MAX as u64 {
            return Err(GpuError::Input(format!("{numel} elements are more than the kernel indexes")));
        }
        let oom = g.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = g.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let partials = g.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("fused_metrics partials"),
            size: (tiles * PARTIAL_BYTES).max(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let specials = g.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("fused_metrics specials"),
            size: (1 + 2 * SPECIALS_CAP) * 4,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let tol64 = g.exact_close.then(|| {
            let bytes: Vec<u8> = [tol.rtol, tol.atol].iter().flat_map(|v| v.to_le_bytes()).collect();
            g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("fused_metrics tol64"),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            })
        });
        Ok(Self { g, elem, numel, tol, tiles, partials, specials, tol64, validation, oom })
    }

    /// Record the dispatches over `segments`, whose first element is the start of tile
    /// `first_tile` of the tensor, in one compute pass (timed by `timer` if given).
    fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        segments: &[Resident],
        first_tile: u64,
        timer: Option<&GpuTimer>,
    ) -> Result<()> {
        let mut groups = Vec::new();
        let mut tile = first_tile;
        for (i, s) in segments.iter().enumerate() {
            let words = s.numel.div_ceil(self.elem.per_word());
            if i + 1 < segments.len() && s.numel % self.elem.tile_elems() != 0 {
                return Err(GpuError::Input(format!(
                    "segment {i} holds {} elements, not a multiple of the tile ({})",
                    s.numel,
                    self.elem.tile_elems()
                )));
            }
            for (side, buffer) in [("a", s.a), ("b", s.b)] {
                if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
                    return Err(GpuError::Input(format!("buffer {side} of segment {i} lacks STORAGE usage")));
                }
                if buffer.size() < words * 4 {
                    return Err(GpuError::Input(format!(
                        "buffer {side} of segment {i} holds {} bytes, {} needed",
                        buffer.size(),
                        words * 4
                    )));
                }
            }
            for b in bindings(s.numel, self.elem, tile, self.g.max_binding)? {
                groups.push((self.bind_group(s, &b)?, b.grid(self.g.max_groups)));
            }
            tile += s.numel.div_ceil(self.elem.tile_elems());
        }
        if tile > self.tiles {
            return Err(GpuError::Input(format!(
                "the segments hold more tiles ({tile}) than the tensor ({})",
                self.tiles
            )));
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("fused_metrics"),
            timestamp_writes: timer.map(|t| wgpu::ComputePassTimestampWrites {
                query_set: t.query_set(),
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            }),
        });
        pass.set_pipeline(&self.g.pipeline);
        for (group, (x, y)) in &groups {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*x, *y, 1);
        }
        Ok(())
    }

    fn bind_group(&self, s: &Resident, b: &Binding) -> Result<wgpu::BindGroup> {
        if b.numel > u32::MAX as u64 || b.first_tile + b.tiles > u32::MAX as u64 {
            return Err(GpuError::Input(format!("a binding of {} elements is more than the kernel indexes", b.numel)));
        }
        let params: Vec<u8> = [b.words as u32, b.numel as u32, b.first_tile as u32, b.tiles as u32, self.elem.code()]
            .into_iter()
            .chain([(self.tol.rtol as f32).to_bits(), (self.tol.atol as f32).to_bits(), SPECIALS_CAP as u32])
            .flat_map(u32::to_le_bytes)
            .collect();
        let params = self.g.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("fused_metrics params"),
            contents: &params,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let (offset, size) = (b.word_offset * 4, b.words * 4);
        let range = |buffer, size| {
            wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer, offset, size: NonZeroU64::new(size) })
        };
        // The vec4 view covers the range's whole 16-byte groups; a range without any is never
        // read through it (it holds no whole tile), so a placeholder stands in.
        let vec4 = |buffer| if size >= 16 { range(buffer, size / 16 * 16) } else { self.g.empty.as_entire_binding() };
        let mut entries = vec![
            wgpu::BindGroupEntry { binding: 0, resource: vec4(s.a) },
            wgpu::BindGroupEntry { binding: 1, resource: range(s.a, size) },
            wgpu::BindGroupEntry { binding: 2, resource: vec4(s.b) },
            wgpu::BindGroupEntry { binding: 3, resource: range(s.b, size) },
            wgpu::BindGroupEntry { binding: 4, resource: self.partials.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 5, resource: params.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 7, resource: self.specials.as_entire_binding() },
        ];
        if let Some(t) = &self.tol64 {
            entries.push(wgpu::BindGroupEntry { binding: 6, resource: t.as_entire_binding() });
        }
        Ok(self.g.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("fused_metrics"),
            layout: &self.g.layout,
            entries: &entries,
        }))
    }

    /// Read the partials (and the timer) back and fold them in f64, straight from the mapped
    /// buffer.
    fn finish(self, timer: Option<GpuTimer>) -> Result<(MainPass, Option<Duration>)> {
        let g = self.g;
        let used = self.tiles * PARTIAL_BYTES;
        // The partials, then the count of pairs left to the host.
        let staging = g.staging(used + 4, "fused_metrics partials read-back");
        let mut encoder = g.device.create_command_encoder(&Default::default());
        if used > 0 {
            encoder.copy_buffer_to_buffer(&self.partials, 0, &staging, 0, used);
        }
        encoder.copy_buffer_to_buffer(&self.specials, 0, &staging, used, 4);
        g.queue.submit([encoder.finish()]);
        let pass = g.with_mapped(&staging, |bytes| {
            let n = u32::from_le_bytes(bytes[used as usize..].try_into().expect("4 bytes"));
            (MainPass::from_partials(&bytes[..used as usize], self.numel), n as u64)
        });
        let pass = pass.and_then(|(mut pass, n)| {
            if n > SPECIALS_CAP {
                return Err(GpuError::Unsupported(format!(
                    "more than {SPECIALS_CAP} pairs with inputs below 2^-100 (which a GPU may flush to zero)"
                )));
            }
            pass.specials = self.read_specials(n)?;
            Ok(pass)
        });
        let elapsed = timer.map(|t| t.elapsed(g)).transpose();
        if let Some(e) = block_on(self.validation.pop()) {
            return Err(GpuError::Gpu(e.to_string()));
        }
        if let Some(e) = block_on(self.oom.pop()) {
            return Err(GpuError::Gpu(e.to_string()));
        }
        Ok((pass?, elapsed?.flatten()))
    }

    /// The element indices of the `n` pairs left to the host, ascending.
    fn read_specials(&self, n: u64) -> Result<Vec<u64>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let g = self.g;
        let staging = g.staging(n * 8, "fused_metrics specials read-back");
        let mut encoder = g.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.specials, 4, &staging, 0, n * 8);
        g.queue.submit([encoder.finish()]);
        let tile = self.elem.tile_elems();
        let mut out = g.with_mapped(&staging, |bytes| {
            bytes
                .chunks_exact(8)
                .map(|e| {
                    let word = |i: usize| u32::from_le_bytes(e[i..i + 4].try_into().expect("4 bytes")) as u64;
                    word(0) * tile + word(4)
                })
                .collect::<Vec<u64>>()
        })?;
        out.sort_unstable();
        Ok(out)
    }
}
