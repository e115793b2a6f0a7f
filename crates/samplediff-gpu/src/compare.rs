//! A whole `compare` report on the GPU: the main pass (`pass.rs`) for every count and sum, the
//! order passes (`order.rs`, settled in `select.rs`) for the percentiles, the decade histogram,
//! the worst elements, the ULP distances and the floored relative error. Values the CPU kernel
//! reports exactly (counts, extremes, order statistics) come out the same here; sums agree to
//! the GPU's f32 accumulation within a tile.

use std::sync::Arc;

use samplediff_formats::RawTensor;
use samplediff_metrics::{Begin, CompareOptions, Comparer, Engine, MetricsError, Moments, TensorReport, begin, hints};

use crate::context::GpuMetrics;
use crate::error::{GpuError, Result};
use crate::pass::{Resident, Tolerance};
use crate::plan::{Elem, TILE_WORDS};
use crate::select::settle;

/// Bytes of each side uploaded per submission: bounds wgpu's staging memory.
const PIECE_BYTES: usize = 256 << 20;

/// At most this many runs (one channel of one frame) get a main pass each; more, and the
/// tensor is no latent (a convolution's weights: runs of nine) and goes elsewhere.
const MAX_RUNS: usize = 4096;

/// How a 4-D/5-D tensor is cut for its per-channel (axis 1) and per-frame (axis 2 of 5-D)
/// statistics, as the CPU kernel cuts it: runs of `run` elements, each in one channel and
/// one frame; run r is in channel (r / frames) % channels and frame r % frames.
#[derive(Clone, Copy, Debug)]
struct Slicing {
    run: usize,
    runs: usize,
    channels: usize,
    frames: Option<usize>,
}

impl Slicing {
    fn of(shape: &[usize]) -> Option<Self> {
        let inner = |from: usize| shape[from..].iter().product::<usize>();
        let numel = inner(0);
        let (run, frames) = match shape.len() {
            4 => (inner(2), None),
            5 => (inner(3), Some(shape[2])),
            _ => return None,
        };
        (run > 0).then(|| Self { run, runs: numel / run, channels: shape[1], frames })
    }
}

impl GpuMetrics {
    /// Compare `a` against the reference `b` on the GPU, with the report of
    /// `samplediff_metrics::compare_tensors_host`. 4-D/5-D tensors (latents) get their
    /// per-channel and per-frame statistics from a main pass over each run of one channel and
    /// one frame. [`GpuError::Unsupported`] for what only the CPU does exactly: dtypes other
    /// than F32/F16/BF16 or differing between the sides, a GPU without f64 meeting pairs at the
    /// tolerance boundary, more tiny or tied values than the host is sent, or 4-D/5-D tensors
    /// of more than 4096 runs (not latents: a convolution's weights have runs of nine).
    pub fn compare(&self, a: &RawTensor, b: &RawTensor, opts: &CompareOptions) -> Result<TensorReport> {
        // (Layout errors first: the upload reads the bytes the shapes promise.)
        if let Begin::Done(r) = begin(a, b, opts).map_err(|e| GpuError::Input(e.0))? {
            return Ok(r);
        }
        if Self::supported(a, b)?.is_none() {
            return self.compare_resident(a, b, &[], opts);
        }
        let started = std::time::Instant::now();
        let buffers = self.upload_pair(a, b)?;
        self.phase("upload", started);
        let segments: Vec<Resident> =
            buffers.iter().map(|(ga, gb, numel)| Resident { a: ga, b: gb, numel: *numel }).collect();
        self.compare_resident(a, b, &segments, opts)
    }

    /// [`GpuMetrics::compare`] of tensors already on the GPU: `segments` hold the bytes of `a`
    /// and `b` (as [`GpuMetrics::main_pass_segments`] takes them); the host copies are read
    /// only for the pairs the main pass leaves (tiny inputs) and, where the worst elements tie
    /// by the hundred thousand, for the first ties by index.
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
        if let Ok(mut p) = self.phases.lock() {
            p.retain(|(what, _)| *what == "upload");
        }
        let started = std::time::Instant::now();
        let tolerance = Tolerance { rtol: tol.rtol, atol: tol.atol };
        let (mut main, _) = self.main_pass_segments(segments, a.dtype, tolerance, false)?;
        main.add_specials(&a.data, &b.data, a.dtype, tolerance);
        if main.close_undecided > 0 {
            return Err(GpuError::Unsupported("pairs at the tolerance boundary on a GPU without f64".into()));
        }
        self.phase("main pass", started);
        let mut global = main.moments;
        let n = global.c.finite;
        let floor = opts.rel_floor.unwrap_or_else(|| if n > 0 { global.default_floor() } else { 0.0 });
        let settled = if n > 0 {
            let run = crate::order::OrderRun::new(self, segments.to_vec(), elem)?;
            let started = std::time::Instant::now();
            let s = settle(&run, a, b, &global, floor, opts.top_k)?;
            self.phase("order statistics in all", started);
            Some(s)
        } else {
            None
        };
        if let Some(s) = &settled {
            (global.max_ad, global.min_nonzero_ad, global.floored) = (s.max_ad, s.min_nonzero_ad, s.floored);
        }
        global.fill(&mut r, floor);
        if let Some(slicing) = Slicing::of(&a.shape) {
            let started = std::time::Instant::now();
            self.slices(a, b, tolerance, slicing, &mut r)?;
            self.phase("per-run passes", started);
        }
        if let Some(s) = settled {
            r.percentiles_abs = Some(s.percentiles);
            r.histogram = Some(s.histogram);
            r.worst = s.worst;
            (r.ulp_max, r.ulp_median) = (Some(s.ulp.0), Some(s.ulp.1));
        }
        r.hints = hints::hints(&r);
        Ok(r)
    }

    /// Per-channel (and for 5-D, per-frame) statistics: the main pass over each run of one
    /// channel and one frame, merged in order.
    fn slices(&self, a: &RawTensor, b: &RawTensor, tol: Tolerance, s: Slicing, r: &mut TensorReport) -> Result<()> {
        let size = a.dtype.size();
        let mut channels = vec![Moments::default(); s.channels];
        let mut frames = vec![Moments::default(); s.frames.unwrap_or(0)];
        for run in 0..s.runs {
            let bytes = run * s.run * size..(run + 1) * s.run * size;
            let m = self.main_pass(&a.data[bytes.clone()], &b.data[bytes], a.dtype, tol)?.moments;
            let frames_n = s.frames.unwrap_or(1);
            channels[(run / frames_n) % s.channels].merge(&m);
            if let Some(f) = frames.get_mut(run % frames_n) {
                f.merge(&m);
            }
        }
        let numel = a.numel() as u64;
        r.per_channel = channels.iter().enumerate().map(|(i, m)| m.channel(i, numel / s.channels as u64)).collect();
        if !frames.is_empty() {
            r.per_frame = frames.iter().enumerate().map(|(i, m)| m.frame(i, numel / frames.len() as u64)).collect();
        }
        Ok(())
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
        if let Some(s) = Slicing::of(&a.shape)
            && s.runs > MAX_RUNS
        {
            return Err(GpuError::Unsupported(format!("per-channel statistics over {} runs", s.runs)));
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
            let (ga, gb) = (self.input_buffer("compare a", bytes), self.input_buffer("compare b", bytes));
            for (g, t) in [(&ga, a), (&gb, b)] {
                let range = (start * size) as usize..((start + n) * size) as usize;
                for (i, piece) in t.data[range].chunks(PIECE_BYTES).enumerate() {
                    self.upload(g, (i * PIECE_BYTES) as u64, piece);
                    // One piece in flight: wgpu's staging copies stay bounded.
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

#[cfg(test)]
mod tests {
    use super::*;
    use samplediff_formats::DType;
    use samplediff_metrics::{Host, compare_tensors_host};

    /// A GPU that flushes tiny inputs in the main pass sees a smallest non-zero error far
    /// above the true one (the H100 did, on the tiny-inputs test): the decade edges it chose
    /// miss the histogram's lowest bins, and level 1 must count again at the right ones.
    #[test]
    fn decade_edges_are_recounted_when_the_main_pass_extremes_are_off() {
        let g = GpuMetrics::new().expect("a wgpu adapter (lavapipe will do)");
        let n = 20_000;
        let b: Vec<f32> = (0..n).map(|i| 1.0 + i as f32 * 1e-4).collect();
        let mut a: Vec<f32> = b.iter().enumerate().map(|(i, &y)| y + (i % 7) as f32 * 1e-3).collect();
        let mut b = b;
        // Errors down at 2e-30, which the main pass is told it never saw.
        for i in (0..n).step_by(97) {
            (a[i], b[i]) = (3e-30, 1e-30);
        }
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (ta, tb) = (
            RawTensor::from_vec("x", DType::F32, vec![n], bytes(&a)),
            RawTensor::from_vec("x", DType::F32, vec![n], bytes(&b)),
        );
        let opts = CompareOptions::default();
        let cpu = compare_tensors_host(&ta, &tb, &opts, &Host { threads: 2, progress: None }).unwrap();

        let buffers = g.upload_pair(&ta, &tb).unwrap();
        let segments: Vec<Resident> = buffers.iter().map(|(x, y, m)| Resident { a: x, b: y, numel: *m }).collect();
        let tol = Tolerance { rtol: cpu.rtol.unwrap(), atol: cpu.atol.unwrap() };
        let mut m = g.main_pass_segments(&segments, DType::F32, tol, false).unwrap().0.moments;
        m.min_nonzero_ad = 0.5;
        let run = crate::order::OrderRun::new(&g, segments.clone(), Elem::F32).unwrap();
        g.phases.lock().unwrap().clear();
        let s = settle(&run, &ta, &tb, &m, m.default_floor(), 10).unwrap();
        let level1 = g.last_phases().iter().filter(|(what, _)| *what == "order level 1").count();
        assert_eq!(level1, 2, "level 1 counted again");
        assert!(cpu.histogram.as_ref().unwrap().bins[0].lo < 1e-29);
        assert_eq!(Some(s.histogram), cpu.histogram);
        assert_eq!(Some(s.percentiles), cpu.percentiles_abs);
    }
}
