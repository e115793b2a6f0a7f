//! The fused host kernel: every metric of `compare` from one read of both tensors' bytes, on
//! all CPU cores, in bounded memory (issue 8).
//!
//! The device path ([`crate::compare_tensors_in`]) is written with burn tensor ops and makes
//! a pass over memory per reduction, plus a sort; that is the right shape for a GPU and the
//! reference for this kernel. Here the tensors are cut into fixed chunks; each chunk is decoded
//! block by block straight from the file bytes (f16/bf16/fp8 included, no float copy of the
//! tensor) and every sum, count, extreme, per-channel/per-frame moment, worst element and
//! histogram is updated from the block while it sits in L1.
//!
//! Two things cannot be had exactly from one read in bounded memory: order statistics
//! (percentiles, the ULP median) and the floored relative error under the default floor
//! (1e-3 RMS(b), known only at the end). With the bits of every value counted, a second pass
//! only has to pick out the few values around the wanted ranks (`select`) and to sum the
//! floored ratios. A sample read first predicts both (`predict`), the main pass gathers what
//! was predicted, and further passes run only for what the prediction missed.
//!
//! Results merge in chunk order, so the report is byte-identical for any thread count.

mod decades;
mod decode;
mod predict;
mod select;
mod workers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use samplediff_formats::RawTensor;

use crate::compare::{Begin, begin, unravel};
use crate::lanes::BASELINE_WIDTH;
use crate::moments::{Floored, Moments, Tol, abs_diff, all_finite};
use crate::options::CompareOptions;
use crate::quantiles::{decade_histogram, percentiles, quantile_positions};
use crate::report::{TensorReport, WorstElement};
use crate::{Result, hints};
use decades::Decades;
use decode::{BLOCK, decode, ulp_block, ulp_distances};
use predict::{BandSums, Gathered, Plan, Windows, WindowsOut};
use select::{FirstPass, PassOut, Request, Selection};
pub use workers::available_threads;

/// Elements per chunk, the unit of work and of merge order (fixed: the thread count must not
/// change the result).
const CHUNK: usize = 1 << 16;

/// Pairs bigger than this give back their pages as soon as they are read, a region of
/// [`RELEASE_REGION`] chunks at a time (see [`Bytes::release`](samplediff_formats::Bytes::release));
/// smaller ones are released whole by [`crate::compare_files`] once compared. Either way memory
/// stays bounded whatever the files' size.
const RELEASE_EACH_CHUNK_ABOVE: usize = 512 << 20;

/// Chunks per release (16 MiB of float32 per side): released chunk by chunk, the madvise calls
/// and the TLB shootdowns they cause on the other cores took 0.15 s of 2.0 on 2 x 1 GiB.
const RELEASE_REGION: usize = 64;

/// The widest build of the main pass that may run (see [`limit_simd`]).
static SIMD_LIMIT: AtomicU8 = AtomicU8::new(u8::MAX);

/// Limit the main pass to its baseline (0), AVX2 (1) or AVX-512 (2) build, for tests and
/// measurements that hold the builds against each other (all give the same bits).
#[doc(hidden)]
pub fn limit_simd(level: u8) {
    SIMD_LIMIT.store(level, Ordering::Relaxed);
}

/// Called with the number of input bytes (both sides) each finished chunk has read.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// How the host kernel runs.
#[derive(Clone)]
pub struct Host {
    /// Worker threads (1 on wasm whatever is asked).
    pub threads: usize,
    pub progress: Option<Progress>,
}

impl Default for Host {
    fn default() -> Self {
        Self { threads: available_threads(), progress: None }
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("threads", &self.threads).finish_non_exhaustive()
    }
}

/// Bytes a comparison of `a` and `b` reads per pass (for progress bars).
pub fn pass_bytes(a: &RawTensor, b: &RawTensor) -> u64 {
    (a.data.len() + b.data.len()) as u64
}

/// Compare `a` against the reference `b` with the fused kernel. Same report as the device path
/// on the CPU backend (sums agree to float64 rounding; everything else exactly).
pub fn compare_tensors_host(a: &RawTensor, b: &RawTensor, opts: &CompareOptions, host: &Host) -> Result<TensorReport> {
    let (mut r, tol) = match begin(a, b, opts)? {
        Begin::Done(r) => return Ok(r),
        Begin::Measure(r, tol) => (r, tol),
    };
    let k = Kernel::new(a, b, tol, opts, host);
    let (parts, locals) = workers::run(k.chunks(), host.threads, || Local::new(&k.plan), |l, c| k.main_pass(l, c));
    let total = Total::merge(&k, parts, locals);
    let mut global = total.global;
    let n = global.c.finite;

    // Resolve what the main pass could not: the floored error under the default floor and the
    // exact order statistics.
    let floor = opts.rel_floor.unwrap_or_else(|| if n > 0 { global.default_floor() } else { 0.0 });
    let positions = if n > 0 { quantile_positions(n) } else { vec![] };
    let error_ranks: Vec<u64> = positions.iter().flat_map(|&(lo, hi, _)| [lo, hi]).collect();
    // What the main pass gathered on the sample's prediction (see `predict`).
    let g = total.gathered;
    let ulp_ranks: Vec<u64> = match total.ulp_n {
        0 => vec![],
        m if m % 2 == 1 => vec![m / 2],
        m => vec![m / 2 - 1, m / 2],
    };
    // (The ULP distances' zeros are counted only with their histogram.)
    let [found_e, found_u] = settle(
        [
            Gathering { windows: &k.plan.errors, out: g.errors, ranks: &error_ranks, zeros: total.decades.zero() },
            Gathering { windows: &k.plan.ulps, out: g.ulps, ranks: &ulp_ranks, zeros: 0 },
        ],
        host.threads,
    );
    let mut errors = k.selection(Stream::Errors, &error_ranks, found_e, total.errors, host.threads);
    let mut ulps = k.selection(Stream::Ulps, &ulp_ranks, found_u, total.ulps, host.threads);
    let mut floored = (opts.rel_floor.is_none() && n > 0).then_some(floor);
    if let (Some(band), false) = (k.plan.band, g.band_overflow)
        && floored.is_some()
        && band.lo <= floor
        && floor < band.hi
    {
        global.floored = total.band.floored(floor);
        floored = None;
    }
    loop {
        let (ra, ru) = (errors.request(), ulps.request());
        if ra.is_none() && ru.is_none() && floored.is_none() {
            break;
        }
        let empty = Request::default();
        let (req_a, req_u) = (ra.as_ref().unwrap_or(&empty), ru.as_ref().unwrap_or(&empty));
        let (parts, outs) = workers::run(
            k.chunks(),
            host.threads,
            || (req_a.out(), req_u.out()),
            |l, c| k.refine_pass(l, c, req_a, req_u, floored),
        );
        if floored.take().is_some() {
            global.floored = parts.iter().fold(Floored::default(), |mut f, p| {
                f.merge(p);
                f
            });
        }
        let (mut out_a, mut out_u) = (req_a.out(), req_u.out());
        for (oa, ou) in outs {
            out_a.merge(oa);
            out_u.merge(ou);
        }
        if let Some(req) = &ra {
            errors.resolve(req, out_a);
        }
        if let Some(req) = &ru {
            ulps.resolve(req, out_u);
        }
    }

    global.fill(&mut r, floor);
    if n > 0 {
        let values = errors.values().expect("every pass has run");
        r.percentiles_abs = Some(percentiles(&positions, &values));
        let zero = total.decades.zero();
        r.histogram = Some(decade_histogram(n, zero, global.min_nonzero_ad, global.max_ad, |edges| {
            Ok(edges.iter().map(|&e| zero + total.decades.count_below(e)).collect())
        })?);
        r.worst = total.worst.into_iter().map(|w| w.element(&a.shape)).collect();
    }
    if let Some(channels) = total.channels {
        let per = k.numel as u64 / channels.len() as u64;
        r.per_channel = channels.iter().enumerate().map(|(i, m)| m.channel(i, per)).collect();
    }
    if let Some(frames) = total.frames {
        let per = k.numel as u64 / frames.len() as u64;
        r.per_frame = frames.iter().enumerate().map(|(i, m)| m.frame(i, per)).collect();
    }
    if total.ulp_n > 0 {
        let v = ulps.values().expect("every pass has run");
        r.ulp_max = Some(total.ulp_max);
        r.ulp_median = Some(if v.len() == 1 { v[0] } else { (v[0] + v[1]) / 2.0 });
    }
    r.hints = hints::hints(&r);
    Ok(r)
}

/// Where per-slice statistics cut the flat index space: channels are axis 1 of a 4-D/5-D
/// tensor, frames axis 2 of a 5-D one; a run is a stretch of one channel and one frame.
#[derive(Clone, Copy, Debug)]
struct Slicing {
    run: usize,
    /// (elements per channel step, channels)
    channels: Option<(usize, usize)>,
    /// (elements per frame step, frames)
    frames: Option<(usize, usize)>,
}

impl Slicing {
    fn of(shape: &[usize]) -> Self {
        let inner = |from: usize| shape[from..].iter().product::<usize>();
        match shape.len() {
            4 => Self { run: inner(2), channels: Some((inner(2), shape[1])), frames: None },
            5 => Self { run: inner(3), channels: Some((inner(2), shape[1])), frames: Some((inner(3), shape[2])) },
            _ => Self { run: usize::MAX, channels: None, frames: None },
        }
    }

    /// Elements from `i` to the end of its run.
    fn run_left(&self, i: usize) -> usize {
        if self.run == usize::MAX { usize::MAX } else { self.run - i % self.run }
    }
}

/// One comparison's fixed inputs.
struct Kernel<'a> {
    a: &'a RawTensor,
    b: &'a RawTensor,
    numel: usize,
    tol: Tol,
    /// The floor, when given (then the main pass sums the floored errors too).
    floor: Option<f64>,
    top_k: usize,
    slicing: Slicing,
    /// ULP distances are defined (same float dtype on both sides).
    ulp: bool,
    progress: Option<Progress>,
    /// Per release region, the chunks read so far (all passes), when pages are given back
    /// as they are read.
    released: Option<Vec<AtomicUsize>>,
    /// What the main pass gathers so that no second pass is needed.
    plan: Plan,
}

/// One chunk's share of the main pass, merged in chunk order.
#[derive(Default)]
struct Part {
    global: Moments,
    /// (channel, moments) and (frame, moments) of the runs in this chunk, in order.
    channels: Vec<(usize, Moments)>,
    frames: Vec<(usize, Moments)>,
    worst: Worst,
    ulp_max: u64,
    ulp_n: u64,
    band: BandSums,
}

/// A worker's counts over all its chunks (integers: merge order does not matter), and what it
/// gathered on the plan (sets of values: order does not matter either).
struct Local {
    errors: FirstPass,
    ulps: FirstPass,
    decades: Decades,
    gathered: Gathered,
    /// The last of the k largest errors in this worker's chunks so far: no error ranking below
    /// it can be among the k largest of all, so each chunk's [`Worst`] starts from it (started
    /// afresh, the first blocks of every chunk were searched element by element).
    worst_gate: Gate,
}

impl Local {
    fn new(plan: &Plan) -> Self {
        Self {
            errors: FirstPass::default(),
            ulps: FirstPass::default(),
            decades: Decades::new(&plan.decades),
            gathered: Gathered::new(plan),
            worst_gate: Gate::default(),
        }
    }
}

impl<'a> Kernel<'a> {
    fn new(a: &'a RawTensor, b: &'a RawTensor, tol: Tol, opts: &CompareOptions, host: &Host) -> Self {
        let mut k = Self {
            a,
            b,
            numel: a.numel(),
            tol,
            floor: opts.rel_floor,
            top_k: opts.top_k,
            slicing: Slicing::of(&a.shape),
            ulp: a.dtype == b.dtype && a.dtype.is_float(),
            progress: host.progress.clone(),
            released: (a.data.len() + b.data.len() > RELEASE_EACH_CHUNK_ABOVE)
                .then(|| (0..a.numel().div_ceil(CHUNK * RELEASE_REGION)).map(|_| AtomicUsize::new(0)).collect()),
            plan: Plan::default(),
        };
        k.plan = Plan::new(&k, host.threads, opts.rel_floor.is_none());
        k
    }

    fn chunks(&self) -> usize {
        self.numel.div_ceil(CHUNK)
    }

    /// After the last block of chunk `c`: give back the pages of its release region once all
    /// of its chunks are read (big inputs), and report progress.
    fn finish_chunk(&self, c: usize) {
        let (sa, sb) = (self.a.dtype.size(), self.b.dtype.size());
        let (start, end) = (c * CHUNK, ((c + 1) * CHUNK).min(self.numel));
        if let Some(read) = &self.released {
            // Every pass reads each chunk once: a region is done each time its count reaches a
            // multiple of its chunks.
            let r = c / RELEASE_REGION;
            let chunks = RELEASE_REGION.min(self.chunks() - r * RELEASE_REGION);
            if (read[r].fetch_add(1, Ordering::AcqRel) + 1) % chunks == 0 {
                let (from, to) = (r * RELEASE_REGION * CHUNK, ((r + 1) * RELEASE_REGION * CHUNK).min(self.numel));
                self.a.data.slice(from * sa..to * sa).release();
                self.b.data.slice(from * sb..to * sb).release();
            }
        }
        if let Some(p) = &self.progress {
            p(((end - start) * (sa + sb)) as u64);
        }
    }

    /// The main pass over chunk `c`, compiled for AVX-512 or AVX2 where the CPU has it.
    fn main_pass(&self, l: &mut Local, c: usize) -> Part {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let limit = SIMD_LIMIT.load(Ordering::Relaxed);
            if limit >= 2 && has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw") {
                // SAFETY: the CPU supports these features, checked just above.
                return unsafe { self.main_pass_avx512(l, c) };
            }
            if limit >= 1 && has!("avx2") {
                // SAFETY: as above.
                return unsafe { self.main_pass_avx2(l, c) };
            }
        }
        self.main_pass_body::<BASELINE_WIDTH>(l, c)
    }

    /// The lane loops vectorise 4 wide in AVX2, the eight lanes four at a time (see
    /// `crate::lanes`). No FMA is enabled and Rust never reorders float operations, so the
    /// results are the same bits either way.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn main_pass_avx2(&self, l: &mut Local, c: usize) -> Part {
        self.main_pass_body::<4>(l, c)
    }

    /// The same lanes with AVX-512's instructions, eight f64 to a register (masks, selects,
    /// conversions; see `crate::lanes` for what eight lanes gained here), same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,avx512f,avx512vl,avx512dq,avx512bw")]
    unsafe fn main_pass_avx512(&self, l: &mut Local, c: usize) -> Part {
        self.main_pass_body::<8>(l, c)
    }

    /// The main pass, its sweeps computing `W` lanes at a time (one instantiation per caller,
    /// so that every closure inside is inlined into the function compiled for its
    /// instruction set).
    #[inline(always)]
    fn main_pass_body<const W: usize>(&self, l: &mut Local, c: usize) -> Part {
        let mut part = Part::default();
        part.worst.gate = l.worst_gate;
        let mut blocks = Blocks::new(self, c);
        // Zeroed once per chunk: per block it cost a sixth of the pass's instructions.
        let mut s = Scratch { d: [0.0; BLOCK], values: [0.0; BLOCK], flags: [0; BLOCK] };
        while let Some((i, fa, fb, ba, bb)) = blocks.next() {
            // Almost every block is all finite: its loops then need no masks.
            let finite = all_finite(fa, fb);
            let m = match self.plan.band {
                Some(band) if finite => {
                    let (m, sums) = Moments::of_finite_in_band::<W>(fa, fb, self.tol, band);
                    let n_in = fa.len() - (sums.n_hi + sums.n_lo) as usize;
                    part.band.add_block(sums, n_in, fa, fb, band, &mut l.gathered);
                    m
                }
                Some(band) => {
                    part.band.add::<W>(fa, fb, band, &mut l.gathered);
                    Moments::of_block::<W>(fa, fb, self.tol, self.floor, false)
                }
                None => Moments::of_block::<W>(fa, fb, self.tol, self.floor, finite),
            };
            part.global.merge(&m);
            if let Some((step, n)) = self.slicing.channels {
                merge_into(&mut part.channels, (i / step) % n, &m);
            }
            if let Some((step, n)) = self.slicing.frames {
                merge_into(&mut part.frames, (i / step) % n, &m);
            }
            if finite {
                self.errors::<true>(l, &mut part, &mut s, i, fa, fb, &m);
            } else {
                self.errors::<false>(l, &mut part, &mut s, i, fa, fb, &m);
            }
            if self.ulp {
                // Distances into a buffer first (a tight loop), then counted: one closure
                // call per element would not be inlined.
                let (n, max) = ulp_block(self.a.dtype, ba, bb, finite, &mut s.values);
                let ulps = &s.values[..n];
                part.ulp_max = part.ulp_max.max(max);
                part.ulp_n += n as u64;
                match (&self.plan.ulps, &mut l.gathered.ulps) {
                    // The median from the windows alone: no histogram (it is counted in a pass
                    // of its own if the prediction fails).
                    (Some(w), Some(out)) => w.offer_block(ulps, &mut s.flags, out),
                    (Some(_), None) => {}
                    (None, _) => ulps.iter().enumerate().for_each(|(j, &d)| l.ulps.add(d, j)),
                }
            }
            l.gathered.check(&self.plan);
        }
        l.worst_gate = part.worst.gate;
        self.finish_chunk(c);
        part
    }

    /// The per-element error statistics of one block starting at element `i`: decades, worst
    /// elements, and what the plan gathers for the percentiles, or without a plan for them the
    /// errors' histogram. `FINITE`: no pair of the block has a NaN or Inf. `m`: the block's
    /// moments (its largest and smallest non-zero error).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn errors<const FINITE: bool>(
        &self,
        l: &mut Local,
        part: &mut Part,
        s: &mut Scratch,
        i: usize,
        fa: &[f64],
        fb: &[f64],
        m: &Moments,
    ) {
        let Local { errors, decades, gathered, .. } = l;
        let histogram = self.plan.errors.is_none();
        if !FINITE {
            let mut gather = self.plan.errors.as_ref().zip(gathered.errors.as_mut());
            for (j, (&x, &y)) in fa.iter().zip(fb).enumerate() {
                let Some(d) = abs_diff(x, y) else { continue };
                if histogram {
                    errors.add(d, j);
                }
                decades.add(d);
                part.worst.offer(d, i + j, x, y, self.top_k);
                if let Some((w, out)) = &mut gather {
                    w.offer(d, out);
                }
            }
            return;
        }
        // Each statistic in a loop of its own over the block's errors: the branch-free ones
        // vectorise, and the worst elements are looked at only when the block could hold one.
        let d = &mut s.d[..fa.len()];
        d.iter_mut().zip(fa.iter().zip(fb)).for_each(|(d, (&x, &y))| *d = (x - y).abs());
        decades.add_block(d, m.min_nonzero_ad, m.max_ad);
        if histogram {
            errors.add_block(d);
        }
        // Only if the block's largest error could pass at the block's first index.
        if part.worst.gate.passes(m.max_ad, i) {
            for (j, &dj) in d.iter().enumerate() {
                part.worst.offer(dj, i + j, fa[j], fb[j], self.top_k);
            }
        }
        if let (Some(w), Some(out)) = (&self.plan.errors, &mut gathered.errors) {
            w.offer_block(d, &mut s.flags, out);
        }
    }

    /// The values at `ranks` (ascending) of `stream`: known where the windows found them
    /// (`found`), else located in the stream's histogram: the main pass's (`main`), or, where
    /// the main pass left it out for windows that then missed, one counted in a pass of its own.
    fn selection(
        &self,
        stream: Stream,
        ranks: &[u64],
        found: Vec<Option<f64>>,
        main: FirstPass,
        threads: usize,
    ) -> Selection {
        if let Some(values) = found.iter().copied().collect::<Option<Vec<f64>>>() {
            return Selection::known(values);
        }
        let planned = match stream {
            Stream::Errors => self.plan.errors.is_some(),
            Stream::Ulps => self.plan.ulps.is_some(),
        };
        let first = if planned { self.histogram(stream, threads) } else { main };
        let mut s = Selection::new(ranks, &first, matches!(stream, Stream::Ulps));
        s.settle_found(&found);
        s
    }

    /// The first-pass histogram of `stream`, in a pass of its own.
    fn histogram(&self, stream: Stream, threads: usize) -> FirstPass {
        let (_, locals) = workers::run(self.chunks(), threads, FirstPass::default, |first, c| {
            let mut blocks = Blocks::new(self, c);
            while let Some((_, fa, fb, ba, bb)) = blocks.next() {
                let mut j = 0;
                let mut add = |v: f64| {
                    first.add(v, j);
                    j += 1;
                };
                match stream {
                    Stream::Errors => fa.iter().zip(fb).filter_map(|(&x, &y)| abs_diff(x, y)).for_each(add),
                    Stream::Ulps => ulp_distances(self.a.dtype, ba, bb, |d| add(d as f64)),
                }
            }
            self.finish_chunk(c);
        });
        locals.iter().fold(FirstPass::default(), |mut all, f| {
            all.merge(f);
            all
        })
    }

    /// A later pass over chunk `c`: values for the order statistics, and the floored errors
    /// when `floor` is given.
    fn refine_pass(
        &self,
        (out_a, out_u): &mut (PassOut, PassOut),
        c: usize,
        req_a: &Request,
        req_u: &Request,
        floor: Option<f64>,
    ) -> Floored {
        let mut floored = Floored::default();
        let wants_errors = !(req_a.collect.is_empty() && req_a.refine.is_empty());
        let wants_ulps = self.ulp && !(req_u.collect.is_empty() && req_u.refine.is_empty());
        let mut blocks = Blocks::new(self, c);
        while let Some((_, fa, fb, ba, bb)) = blocks.next() {
            if let Some(floor) = floor {
                floored.merge(&Floored::of(fa, fb, floor));
            }
            if wants_errors {
                for (&x, &y) in fa.iter().zip(fb) {
                    if let Some(d) = abs_diff(x, y) {
                        req_a.offer(d, out_a);
                    }
                }
            }
            if wants_ulps {
                ulp_distances(self.a.dtype, ba, bb, |d| req_u.offer(d as f64, out_u));
            }
        }
        self.finish_chunk(c);
        floored
    }
}

/// A stream of values whose order statistics are reported.
#[derive(Clone, Copy)]
enum Stream {
    Errors,
    Ulps,
}

/// One stream's windows, what the workers gathered in them (`None`: a worker gave up), the
/// ranks wanted and how many zeros are known to come first.
struct Gathering<'a> {
    windows: &'a Option<Windows>,
    out: Option<WindowsOut>,
    ranks: &'a [u64],
    zeros: u64,
}

/// Per stream, the values at the ranks known without a histogram: those among the zeros, and
/// those the windows found. Each window's selection runs as a task of its own: serially they
/// were a tenth of the time of a 2-thread comparison of 2 x 1 GiB (~65 ms after a 1.3 s pass),
/// and more with more threads.
fn settle<const S: usize>(streams: [Gathering; S], threads: usize) -> [Vec<Option<f64>>; S] {
    let mut found: [Vec<Option<f64>>; S] = std::array::from_fn(|s| vec![None; streams[s].ranks.len()]);
    let mut picks = vec![];
    for (s, Gathering { windows, out, ranks, zeros }) in streams.into_iter().enumerate() {
        if let (Some(w), Some(out)) = (windows, out) {
            let (known, todo) = w.picks(ranks, out);
            found[s] = known;
            picks.extend(todo.into_iter().map(|p| (s, p)));
        }
        for (v, &r) in found[s].iter_mut().zip(ranks) {
            if r < zeros {
                *v = Some(0.0);
            }
        }
    }
    let tasks: Vec<_> = picks.into_iter().map(|(s, p)| move || (s, p.select())).collect();
    for (s, values) in workers::each(threads, tasks) {
        values.into_iter().for_each(|(i, v)| found[s][i] = Some(v));
    }
    found
}

/// The blocks of one chunk in order, each decoded into buffers that stay in L1; blocks never
/// straddle a run. A loop over [`Blocks::next`] rather than a callback, so that a pass keeps
/// its whole body in one function, compiled for one instruction set.
struct Blocks<'k, 'a> {
    k: &'k Kernel<'a>,
    i: usize,
    end: usize,
    fa: [f64; BLOCK],
    fb: [f64; BLOCK],
}

impl<'k, 'a> Blocks<'k, 'a> {
    fn new(k: &'k Kernel<'a>, c: usize) -> Self {
        Self { k, i: c * CHUNK, end: ((c + 1) * CHUNK).min(k.numel), fa: [0.0; BLOCK], fb: [0.0; BLOCK] }
    }

    /// The next block: its first element's index, its values and its bytes.
    #[inline(always)]
    #[allow(clippy::type_complexity)]
    fn next(&mut self) -> Option<(usize, &[f64], &[f64], &'a [u8], &'a [u8])> {
        let (k, i) = (self.k, self.i);
        if i >= self.end {
            return None;
        }
        let (sa, sb) = (k.a.dtype.size(), k.b.dtype.size());
        let len = BLOCK.min(self.end - i).min(k.slicing.run_left(i));
        let (a, b): (&'a RawTensor, &'a RawTensor) = (k.a, k.b);
        let (ba, bb) = (&a.data[i * sa..(i + len) * sa], &b.data[i * sb..(i + len) * sb]);
        decode(k.a.dtype, ba, &mut self.fa[..len]);
        decode(k.b.dtype, bb, &mut self.fb[..len]);
        self.i += len;
        Some((i, &self.fa[..len], &self.fb[..len], ba, bb))
    }
}

/// The main pass's per-block buffers.
struct Scratch {
    /// |a-b| of an all-finite block.
    d: [f64; BLOCK],
    /// ULP distances as floats, for the windows.
    values: [f64; BLOCK],
    /// Window flags ([`predict::Windows::offer_block`]).
    flags: [u64; BLOCK],
}

/// Merge a run's moments into the last entry when it is the same slice, else start one.
fn merge_into(list: &mut Vec<(usize, Moments)>, slice: usize, m: &Moments) {
    match list.last_mut() {
        Some((s, acc)) if *s == slice => acc.merge(m),
        _ => list.push((slice, *m)),
    }
}

/// The main pass merged over all chunks.
struct Total {
    global: Moments,
    channels: Option<Vec<Moments>>,
    frames: Option<Vec<Moments>>,
    worst: Vec<Candidate>,
    errors: FirstPass,
    ulps: FirstPass,
    decades: Decades,
    ulp_max: u64,
    ulp_n: u64,
    gathered: Gathered,
    band: BandSums,
}

impl Total {
    fn merge(k: &Kernel, parts: Vec<Part>, locals: Vec<Local>) -> Self {
        let mut t = Total {
            global: Moments::default(),
            channels: k.slicing.channels.map(|(_, n)| vec![Moments::default(); n]),
            frames: k.slicing.frames.map(|(_, n)| vec![Moments::default(); n]),
            worst: vec![],
            errors: FirstPass::default(),
            ulps: FirstPass::default(),
            decades: Decades::new(&k.plan.decades),
            ulp_max: 0,
            ulp_n: 0,
            gathered: Gathered::new(&Plan::default()),
            band: BandSums::default(),
        };
        let mut worst = Worst::default();
        for p in parts {
            t.global.merge(&p.global);
            for (list, acc) in [(&p.channels, &mut t.channels), (&p.frames, &mut t.frames)] {
                if let Some(acc) = acc {
                    list.iter().for_each(|(s, m)| acc[*s].merge(m));
                }
            }
            p.worst.list.into_iter().for_each(|w| worst.offer(w.d, w.index, w.a, w.b, k.top_k));
            t.ulp_max = t.ulp_max.max(p.ulp_max);
            t.ulp_n += p.ulp_n;
            t.band.merge(p.band);
        }
        t.worst = worst.list;
        let mut gathered = Vec::with_capacity(locals.len());
        for l in locals {
            t.errors.merge(&l.errors);
            t.ulps.merge(&l.ulps);
            t.decades.merge(&l.decades);
            gathered.push(l.gathered);
        }
        t.gathered = Gathered::merge(gathered);
        t
    }
}

/// One of the largest errors.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    d: f64,
    index: usize,
    a: f64,
    b: f64,
}

impl Candidate {
    fn gate(self) -> Gate {
        Gate { d: self.d, index: self.index }
    }

    fn element(self, shape: &[usize]) -> WorstElement {
        WorstElement { index: unravel(self.index, shape), a: self.a, b: self.b, abs: (self.a - self.b).abs() }
    }
}

/// The k largest errors seen, largest first, ties by index (the reference's order).
#[derive(Default)]
struct Worst {
    list: Vec<Candidate>,
    /// What an error must rank above to enter: the last of a full list, or what the worker's
    /// earlier chunks set. Nearly every error is turned away by its first comparison.
    gate: Gate,
}

/// An error and its index (the lowest rank before any: -inf).
#[derive(Clone, Copy, Debug)]
struct Gate {
    d: f64,
    index: usize,
}

impl Default for Gate {
    fn default() -> Self {
        Self { d: f64::NEG_INFINITY, index: usize::MAX }
    }
}

impl Gate {
    /// Does error `d` at `index` rank above the gate?
    #[inline(always)]
    fn passes(self, d: f64, index: usize) -> bool {
        d > self.d || (d == self.d && index < self.index)
    }
}

impl Worst {
    #[inline(always)]
    fn offer(&mut self, d: f64, index: usize, a: f64, b: f64, k: usize) {
        if k == 0 || !self.gate.passes(d, index) {
            return;
        }
        let at = self.list.partition_point(|w| !w.gate().passes(d, index));
        self.list.insert(at, Candidate { d, index, a, b });
        self.list.truncate(k);
        if self.list.len() == k {
            self.gate = self.list[k - 1].gate();
        }
    }
}
