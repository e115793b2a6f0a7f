//! A whole `compare` report on the GPU: the main pass (`pass.rs`) for every count and sum, the
//! order passes (`order.rs`, settled in `select.rs`) for the percentiles, the decade histogram,
//! the worst elements, the ULP distances and the floored relative error. Values the CPU kernel
//! reports exactly (counts, extremes, order statistics) come out the same here; sums agree to
//! the GPU's f32 accumulation within a tile.

use std::sync::Arc;

use samplediff_formats::RawTensor;
use samplediff_metrics::{Begin, CompareOptions, Comparer, Engine, MetricsError, TensorReport, begin, hints};

use crate::context::GpuMetrics;
use crate::error::{GpuError, Result};
use crate::pass::{Resident, Tolerance};
use crate::plan::{Elem, TILE_WORDS};
use crate::select::settle;

/// Bytes of each side uploaded per submission: bounds wgpu's staging memory.
const PIECE_BYTES: usize = 256 << 20;

impl GpuMetrics {
    /// Compare `a` against the reference `b` on the GPU, with the report of
    /// `samplediff_metrics::compare_tensors_host`. [`GpuError::Unsupported`] for what only the
    /// CPU does exactly: 4-D/5-D tensors (per-channel and per-frame statistics), dtypes other
    /// than F32/F16/BF16 or differing between the sides, a GPU without f64 meeting pairs at the
    /// tolerance boundary, or more tiny or tied values than the host is sent.
    pub fn compare(&self, a: &RawTensor, b: &RawTensor, opts: &CompareOptions) -> Result<TensorReport> {
        // (Layout errors first: the upload reads the bytes the shapes promise.)
        if let Begin::Done(r) = begin(a, b, opts).map_err(|e| GpuError::Input(e.0))? {
            return Ok(r);
        }
        if Self::supported(a, b)?.is_none() {
            return self.compare_resident(a, b, &[], opts);
        }
        let buffers = self.upload_pair(a, b)?;
        let segments: Vec<Resident> =
            buffers.iter().map(|(ga, gb, numel)| Resident { a: ga, b: gb, numel: *numel }).collect();
        self.compare_resident(a, b, &segments, opts)
    }

    /// [`GpuMetrics::compare`] of tensors already on the GPU: `segments` hold the bytes of `a`
    /// and `b` (as [`GpuMetrics::main_pass_segments`] takes them); the host copies are read
    /// only where a rank needs a pair's exact error.
    pub fn compare_resident(
        &self,
        a: &RawTensor,
        b: &RawTensor,
        segments: &[Resident],
        opts: &CompareOptions,
    ) -> Result<TensorReport> {
        let (mut r, tol) = match begin(a, b, opts).map_err(|e| GpuError::Input(e.0))? {
            Begin::Done(r) => return Ok(r),
            Begin::Measure(r, tol) => (r, tol),
        };
        let elem = Self::supported(a, b)?.expect("a tensor pair with elements");
        let (main, _) =
            self.main_pass_segments(segments, a.dtype, Tolerance { rtol: tol.rtol, atol: tol.atol }, false)?;
        if main.close_undecided > 0 {
            return Err(GpuError::Unsupported("pairs at the tolerance boundary on a GPU without f64".into()));
        }
        let mut global = main.moments;
        let n = global.c.finite;
        let floor = opts.rel_floor.unwrap_or_else(|| if n > 0 { global.default_floor() } else { 0.0 });
        let settled = if n > 0 {
            let run = crate::order::OrderRun::new(self, segments.to_vec(), elem)?;
            Some(settle(&run, a, b, &global, floor, opts.top_k)?)
        } else {
            None
        };
        if let Some(s) = &settled {
            (global.max_ad, global.min_nonzero_ad, global.floored) = (s.max_ad, s.min_nonzero_ad, s.floored);
        }
        global.fill(&mut r, floor);
        if let Some(s) = settled {
            r.percentiles_abs = Some(s.percentiles);
            r.histogram = Some(s.histogram);
            r.worst = s.worst;
            (r.ulp_max, r.ulp_median) = (Some(s.ulp.0), Some(s.ulp.1));
        }
        r.hints = hints::hints(&r);
        Ok(r)
    }

    /// The element type of a pair the GPU compares (`None`: nothing to measure, the shapes
    /// differ or there are no elements), or why it does not.
    fn supported(a: &RawTensor, b: &RawTensor) -> Result<Option<Elem>> {
        if a.shape != b.shape || a.numel() == 0 {
            return Ok(None);
        }
        if a.dtype != b.dtype {
            return Err(GpuError::Unsupported(format!("dtypes differ ({} vs {})", a.dtype.name(), b.dtype.name())));
        }
        let elem = Elem::of(a.dtype).map_err(|e| GpuError::Unsupported(e.to_string()))?;
        if matches!(a.shape.len(), 4 | 5) {
            return Err(GpuError::Unsupported("per-channel statistics of a 4-D/5-D tensor".into()));
        }
        Ok(Some(elem))
    }

    /// Both tensors in GPU buffers: one buffer pair per segment of whole tiles that fits the
    /// device's largest buffer. Returns (a, b, elements) per segment, as
    /// [`GpuMetrics::compare_resident`] takes them.
    pub fn upload_pair(&self, a: &RawTensor, b: &RawTensor) -> Result<Vec<(wgpu::Buffer, wgpu::Buffer, u64)>> {
        let elem = Self::supported(a, b)?.ok_or_else(|| GpuError::Input("no elements to upload".into()))?;
        let numel = a.numel() as u64;
        let size = elem.size();
        let max_buffer = self.device.limits().max_buffer_size;
        let per_segment = (max_buffer / 4 / TILE_WORDS).max(1) * elem.tile_elems();
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut out = Vec::new();
        let mut start = 0;
        while start < numel {
            let n = per_segment.min(numel - start);
            let bytes = (n * size).next_multiple_of(4);
            let buffer = |label| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            };
            let (ga, gb) = (buffer("compare a"), buffer("compare b"));
            for (g, t) in [(&ga, a), (&gb, b)] {
                let range = (start * size) as usize..((start + n) * size) as usize;
                let data = &t.data[range];
                for (i, piece) in data.chunks(PIECE_BYTES).enumerate() {
                    // `upload` writes at the buffer's start: offset by hand for later pieces.
                    let at = (i * PIECE_BYTES) as u64;
                    let whole = piece.len() / 4 * 4;
                    self.queue.write_buffer(g, at, &piece[..whole]);
                    if whole < piece.len() {
                        let mut last = [0u8; 4];
                        last[..piece.len() - whole].copy_from_slice(&piece[whole..]);
                        self.queue.write_buffer(g, at + whole as u64, &last);
                    }
                    self.queue.submit([]);
                    self.wait()?;
                }
            }
            out.push((ga, gb, n));
            start += n;
        }
        if let Some(e) = crate::block::block_on(oom.pop()) {
            return Err(GpuError::Unsupported(format!("the tensors do not fit the GPU: {e}")));
        }
        Ok(out)
    }
}

/// `compare`'s engine on the GPU: [`GpuMetrics::compare`] for every pair it takes, and
/// `fallback` (the host kernel, or burn on the same GPU) for the pairs it leaves
/// ([`GpuError::Unsupported`]).
pub struct GpuEngine {
    gpu: GpuMetrics,
    fallback: Engine,
}

impl GpuEngine {
    pub fn new(gpu: GpuMetrics, fallback: Engine) -> Self {
        Self { gpu, fallback }
    }

    /// As an `Engine` for `samplediff_metrics::compare_files`.
    pub fn engine(self) -> Engine {
        Engine::Custom(Arc::new(self))
    }
}

impl std::fmt::Debug for GpuEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEngine")
            .field("adapter", &self.gpu.adapter_info().name)
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl Comparer for GpuEngine {
    fn compare(&self, a: &RawTensor, b: &RawTensor, opts: &CompareOptions) -> samplediff_metrics::Result<TensorReport> {
        match self.gpu.compare(a, b, opts) {
            Err(GpuError::Unsupported(_)) => self.fallback.compare(a, b, opts),
            other => other.map_err(|e| MetricsError::new(e.to_string())),
        }
    }
}
