//! The GPU benchmark of issue 8: the fused main pass against the card's copy bandwidth.
//!
//!     cargo run -p samplediff-gpu --example gpu_bench -- [GIB (default 4)] [--check] [--copy-gbps X]
//!
//! (The dev profile optimises this crate and its dependencies; only GPU time is at stake.)
//! `examples/torch_metrics.py` times torch on the same card for comparison.
//!
//! Makes two GIB-GiB float32 tensors on the GPU (a fill kernel, no upload), then times, best
//! of 10 each:
//! * copy: `copy_buffer_to_buffer` of the same bytes (a and b into a third buffer), reported as
//!   bytes read per second and as bytes read + written per second (the way torch's and the
//!   issue's "copy bandwidth" counts);
//! * plain read: a kernel that reads both inputs once with the fused kernel's tiling and sums
//!   them (what any reduction over these bytes costs here);
//! * the fused main pass (`main_pass_segments`): GPU time from timestamp queries, and wall time
//!   of the whole call (dispatches, partials read back, f64 fold); once with the GPU idle
//!   before each run, once with a few plain-read passes queued before each (a busy GPU keeps
//!   its clocks up; one woken from idle between short kernels may not).
//!
//! `--copy-gbps X` adds the ratio to a copy bandwidth measured elsewhere (read + write GB/s,
//! e.g. torch's `c.copy_(a)` on the same card, which Vulkan's `copy_buffer_to_buffer` may not
//! reach).
//!
//! `--check` reads both tensors back and holds the GPU result to the CPU kernel
//! (`samplediff_metrics::compare_tensors_host`): counts and max |a-b| exactly, sums to 1e-5.

use std::time::{Duration, Instant};

use samplediff_formats::{DType, RawTensor};
use samplediff_gpu::{GpuMetrics, GpuTimer, MainPass, Resident, TILE_WORDS, Tolerance};
use samplediff_metrics::{Moments, Status, TensorReport};
use wgpu::util::DeviceExt;

const TOL: Tolerance = Tolerance { rtol: 1.3e-6, atol: 1e-5 };
const REPS: usize = 10;
/// Plain-read passes (~3 ms each on an H100) queued before each busy-GPU run.
const BUSY_PASSES: usize = 4;
/// The issue's torch figure: the metric set on 2 x 4 GiB float32 on an H100 (torch 2.11).
const TORCH_ISSUE_MS: f64 = 136.0;

fn main() {
    if let Err(e) = run() {
        eprintln!("gpu_bench: {e}");
        std::process::exit(1);
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn run() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let gib: f64 = args.first().filter(|a| !a.starts_with("--")).map(|a| a.parse()).transpose()?.unwrap_or(4.0);
    let check = args.iter().any(|a| a == "--check");
    // Copy bandwidth measured elsewhere (GB/s, read + write; e.g. torch on the same card).
    let copy_ref: Option<f64> = args
        .iter()
        .position(|a| a == "--copy-gbps")
        .map(|i| args.get(i + 1).ok_or("--copy-gbps needs a value"))
        .transpose()?
        .map(|v| v.parse())
        .transpose()?;
    let g = GpuMetrics::new()?;
    let info = g.adapter_info();
    println!(
        "device: {} ({:?}, driver {} {}), f64 tolerance test: {}, timestamps: {}",
        info.name,
        info.backend,
        info.driver,
        info.driver_info,
        g.exact_close(),
        g.has_timestamps()
    );
    let bench = Bench::new(&g, gib)?;
    println!(
        "inputs: 2 x {gib} GiB float32 ({} elements a side) in {} buffer(s) a side, bindings of at most {} MiB",
        bench.numel,
        bench.segments.len(),
        bench.max_binding >> 20
    );
    let read_bytes = 2.0 * bench.numel as f64 * 4.0;

    let (copy_gpu, copy_wall) = bench.copy()?;
    let copy = copy_gpu.unwrap_or(copy_wall);
    println!(
        "copy_buffer_to_buffer a->c, b->c: best {} ({}), wall best {}: {:.0} GB/s read, {:.0} GB/s read+write",
        ms(copy),
        if copy_gpu.is_some() { "GPU timestamps" } else { "wall" },
        ms(copy_wall),
        read_bytes / copy.as_secs_f64() / 1e9,
        2.0 * read_bytes / copy.as_secs_f64() / 1e9
    );
    let plain = bench.read_sum()?;
    if let Some(t) = plain {
        println!(
            "plain read (sum kernel, same tiling): best {}: {:.0} GB/s read",
            ms(t),
            read_bytes / t.as_secs_f64() / 1e9
        );
    }

    let copy_rw = 2.0 * read_bytes / copy.as_secs_f64();
    let mut m = None;
    for busy in [false, true] {
        let (pass, fused_gpu, fused_wall) = bench.fused(busy)?;
        let fused = fused_gpu.unwrap_or(fused_wall);
        let fused_bw = read_bytes / fused.as_secs_f64();
        println!(
            "fused main pass{}: best {} ({}){}: {:.0} GB/s read",
            if busy { ", GPU kept busy" } else { ", GPU idle before each run" },
            ms(fused),
            if fused_gpu.is_some() { "GPU timestamps" } else { "wall" },
            if busy {
                String::new()
            } else {
                format!(", wall best {} (the whole call: dispatches, partials read back, f64 fold)", ms(fused_wall))
            },
            fused_bw / 1e9
        );
        let mut ratios = vec![format!("{:.1}% of copy_buffer_to_buffer (read+write)", 100.0 * fused_bw / copy_rw)];
        if let Some(t) = plain {
            ratios.push(format!("{:.1}% of the plain read", 100.0 * t.as_secs_f64() / fused.as_secs_f64()));
        }
        if let Some(c) = copy_ref {
            ratios
                .push(format!("{:.1}% of the given copy bandwidth {c} GB/s (read+write)", 100.0 * fused_bw / 1e9 / c));
        }
        println!("  ratio: fused read bandwidth = {}", ratios.join(", "));
        if gib == 4.0 {
            println!(
                "  vs torch (issue: {TORCH_ISSUE_MS} ms on 2 x 4 GiB, H100): {:.1}x faster (GPU time){}",
                TORCH_ISSUE_MS / 1e3 / fused.as_secs_f64(),
                if busy {
                    String::new()
                } else {
                    format!(", {:.1}x (wall)", TORCH_ISSUE_MS / 1e3 / fused_wall.as_secs_f64())
                }
            );
        }
        m = Some(pass.moments);
    }
    let m: Moments = m.expect("two runs");
    let r = report(&m);
    println!(
        "result: finite {} of {}, NaN a {}, mismatched {}, max|a-b| {:e}, mean|a-b| {:e}, max rel {:e}, cosine {:.9}, pearson {:.9}",
        m.c.finite,
        m.c.numel,
        m.c.nan_a,
        r.mismatched.unwrap_or(0),
        m.max_ad,
        r.mean_abs.unwrap_or(f64::NAN),
        m.max_rel,
        r.cosine.unwrap_or(f64::NAN),
        r.pearson.unwrap_or(f64::NAN)
    );
    if check {
        bench.check(&m)?;
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// The report fields the pass's statistics give (`Moments::fill`, as the CPU kernel's do).
fn report(m: &Moments) -> TensorReport {
    let mut r = TensorReport::unmatched(String::new(), Status::Compared);
    m.fill(&mut r, m.default_floor());
    r
}

struct Bench<'g> {
    g: &'g GpuMetrics,
    numel: u64,
    /// Each side in buffers of at most the device's largest buffer, whole tiles each.
    segments: Vec<(wgpu::Buffer, wgpu::Buffer, u64)>,
    /// The copies' destination.
    dst: wgpu::Buffer,
    max_binding: u64,
    reader: Reader,
}

impl<'g> Bench<'g> {
    fn new(g: &'g GpuMetrics, gib: f64) -> Res<Self> {
        let device = g.device();
        let limits = device.limits();
        let tile_bytes = TILE_WORDS * 4;
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size) / tile_bytes * tile_bytes;
        let max_buffer = limits.max_buffer_size / tile_bytes * tile_bytes;
        let total = (gib * (1u64 << 30) as f64) as u64 / tile_bytes * tile_bytes;
        if total == 0 {
            return Err(format!("{gib} GiB is less than one tile").into());
        }
        let numel = total / 4;
        let buffer = |size, label| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let mut segments = Vec::new();
        let mut left = total;
        while left > 0 {
            let size = left.min(max_buffer);
            segments.push((buffer(size, "a"), buffer(size, "b"), size / 4));
            left -= size;
        }
        let dst = buffer(segments[0].2 * 4, "copy destination");
        let reader = Reader::new(g, &segments, max_binding);
        let bench = Self { g, numel, segments, dst, max_binding, reader };
        bench.fill()?;
        Ok(bench)
    }

    /// Fill the inputs with the fill kernel, binding by binding.
    fn fill(&self) -> Res<()> {
        let device = self.g.device();
        let pipeline = pipeline(device, "fill");
        let mut encoder = device.create_command_encoder(&Default::default());
        let mut first = 0u64;
        for (a, b, n) in &self.segments {
            for (offset, words) in ranges(*n, self.max_binding / 4) {
                let params = uniform(device, &[(first + offset) as u32, words as u32]);
                let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &pipeline.get_bind_group_layout(0),
                    entries: &[
                        entry(0, range(a, offset * 4, words * 4)),
                        entry(1, range(b, offset * 4, words * 4)),
                        entry(2, params.as_entire_binding()),
                    ],
                });
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &group, &[]);
                let (x, y) = grid(words.div_ceil(256));
                pass.dispatch_workgroups(x, y, 1);
            }
            first += n;
        }
        self.g.queue().submit([encoder.finish()]);
        wait(device);
        Ok(())
    }

    /// Best GPU time (encoder timestamps, where the device has them) and best wall time of
    /// copying both inputs.
    fn copy(&self) -> Res<(Option<Duration>, Duration)> {
        let device = self.g.device();
        let stamps = device.features().contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);
        let timer = GpuTimer::new(self.g);
        let (mut best_gpu, mut best_wall) = (None::<Duration>, Duration::MAX);
        for rep in 0..=REPS {
            let mut encoder = device.create_command_encoder(&Default::default());
            if stamps {
                encoder.write_timestamp(timer.query_set(), 0);
            }
            for (a, b, n) in &self.segments {
                encoder.copy_buffer_to_buffer(a, 0, &self.dst, 0, n * 4);
                encoder.copy_buffer_to_buffer(b, 0, &self.dst, 0, n * 4);
            }
            if stamps {
                encoder.write_timestamp(timer.query_set(), 1);
                timer.resolve(&mut encoder);
            }
            let t = Instant::now();
            self.g.queue().submit([encoder.finish()]);
            wait(device);
            let wall = t.elapsed();
            // The first run is a warm-up (lazy initialisation of the destination).
            if rep > 0 {
                best_wall = best_wall.min(wall);
                if stamps {
                    let t = timer.elapsed(self.g)?.unwrap_or_default();
                    best_gpu = Some(best_gpu.map_or(t, |b| b.min(t)));
                }
            }
        }
        Ok((best_gpu, best_wall))
    }

    /// Best GPU time of the plain-read kernel (None without timestamps).
    fn read_sum(&self) -> Res<Option<Duration>> {
        if !self.g.has_timestamps() {
            return Ok(None);
        }
        let timer = GpuTimer::new(self.g);
        let mut best = Duration::MAX;
        for rep in 0..=REPS {
            let mut encoder = self.g.device().create_command_encoder(&Default::default());
            self.reader.record(&mut encoder, Some(&timer));
            timer.resolve(&mut encoder);
            self.g.queue().submit([encoder.finish()]);
            wait(self.g.device());
            if rep > 0 {
                best = best.min(timer.elapsed(self.g)?.unwrap_or_default());
            }
        }
        Ok(Some(best))
    }

    /// Queue `n` plain-read passes without waiting: the GPU is busy when the next timed work
    /// starts, as in a long comparison, instead of waking from idle.
    fn busy(&self, n: usize) {
        let mut encoder = self.g.device().create_command_encoder(&Default::default());
        for _ in 0..n {
            self.reader.record(&mut encoder, None);
        }
        self.g.queue().submit([encoder.finish()]);
    }

    /// Best GPU time and best wall time of the fused main pass, and its result.
    /// `busy`: each run follows a few plain-read passes queued just before it.
    fn fused(&self, busy: bool) -> Res<(MainPass, Option<Duration>, Duration)> {
        let segments: Vec<Resident> = self.segments.iter().map(|(a, b, n)| Resident { a, b, numel: *n }).collect();
        let (mut best_gpu, mut best_wall, mut last) = (None::<Duration>, Duration::MAX, None);
        for rep in 0..=REPS {
            if busy {
                self.busy(BUSY_PASSES);
            }
            let t = Instant::now();
            let (m, gpu) = self.g.main_pass_segments(&segments, DType::F32, TOL, true)?;
            let wall = t.elapsed();
            if rep > 0 {
                best_wall = best_wall.min(wall);
                if let Some(t) = gpu {
                    best_gpu = Some(best_gpu.map_or(t, |b| b.min(t)));
                }
            }
            if let Some(prev) = &last {
                let same = |p: &MainPass| {
                    let m = &p.moments;
                    (m.c, p.close_undecided, m.sum_ad.to_bits(), m.sum_ab.to_bits(), m.cab.to_bits())
                };
                if same(prev) != same(&m) {
                    return Err("two runs of the fused pass gave different results".into());
                }
            }
            last = Some(m);
        }
        Ok((last.expect("runs"), best_gpu, best_wall))
    }

    /// Read both inputs back and hold the GPU result to the CPU kernel.
    fn check(&self, m: &Moments) -> Res<()> {
        let t = Instant::now();
        let (a, b) = (self.read_back(0)?, self.read_back(1)?);
        let n = self.numel as usize;
        let ta = RawTensor::from_vec("a", DType::F32, vec![n], a);
        let tb = RawTensor::from_vec("b", DType::F32, vec![n], b);
        let opts =
            samplediff_metrics::CompareOptions { rtol: Some(TOL.rtol), atol: Some(TOL.atol), ..Default::default() };
        let r = samplediff_metrics::compare_tensors_host(&ta, &tb, &opts, &samplediff_metrics::Host::default())?;
        let g = report(m);
        let counts = |r: &TensorReport| (r.finite_pairs, r.nan_a, r.nan_b, r.mismatched, r.rel_zero_b, r.max_abs);
        let (counts_gpu, counts_cpu) = (counts(&g), counts(&r));
        let rel = |g: Option<f64>, c: Option<f64>| match (g, c) {
            (Some(g), Some(c)) => (g - c).abs() / c.abs(),
            _ => f64::INFINITY,
        };
        let worst = [
            rel(g.mean_abs, r.mean_abs),
            rel(g.rmse, r.rmse),
            rel(g.rms_a, r.rms_a),
            rel(g.rms_b, r.rms_b),
            rel(g.mean_rel, r.mean_rel),
            rel(g.cosine, r.cosine),
            rel(g.pearson, r.pearson),
            rel(g.snr_db, r.snr_db),
            rel(g.max_rel, r.max_rel),
        ]
        .into_iter()
        .fold(0.0, f64::max);
        println!(
            "check vs CPU kernel ({:.1} s): counts and max|a-b| {} ({counts_gpu:?} vs {counts_cpu:?}); largest relative difference of the sums {worst:.2e} ({})",
            t.elapsed().as_secs_f64(),
            if counts_gpu == counts_cpu { "equal" } else { "DIFFER" },
            if worst <= 1e-5 { "within 1e-5" } else { "OVER 1e-5" }
        );
        if counts_gpu != counts_cpu || worst > 1e-5 {
            return Err("the GPU result disagrees with the CPU kernel".into());
        }
        Ok(())
    }

    /// Side 0 (a) or 1 (b), read back to host memory.
    fn read_back(&self, side: usize) -> Res<Vec<u8>> {
        let device = self.g.device();
        let mut out = Vec::with_capacity(self.numel as usize * 4);
        for seg in &self.segments {
            let (src, n) = (if side == 0 { &seg.0 } else { &seg.1 }, seg.2);
            let staging = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read-back"),
                size: n * 4,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut encoder = device.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(src, 0, &staging, 0, n * 4);
            self.g.queue().submit([encoder.finish()]);
            out.extend_from_slice(&map(device, &staging)?);
        }
        Ok(out)
    }
}

/// The plain-read kernel, bound to the inputs.
struct Reader {
    pipeline: wgpu::ComputePipeline,
    groups: Vec<(wgpu::BindGroup, (u32, u32))>,
}

impl Reader {
    fn new(g: &GpuMetrics, segments: &[(wgpu::Buffer, wgpu::Buffer, u64)], max_binding: u64) -> Self {
        let device = g.device();
        let pipeline = pipeline(device, "read_sum");
        let tiles: u64 = segments.iter().map(|s| s.2.div_ceil(TILE_WORDS)).sum();
        let out = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read_sum out"),
            size: tiles * 4,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let mut groups = vec![];
        let mut first_tile = 0u64;
        for (a, b, n) in segments {
            for (offset, words) in ranges(*n, max_binding / 4) {
                let t = words / TILE_WORDS;
                let params = uniform(device, &[t as u32, first_tile as u32]);
                let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &pipeline.get_bind_group_layout(0),
                    entries: &[
                        entry(10, range(a, offset * 4, words * 4)),
                        entry(11, range(b, offset * 4, words * 4)),
                        entry(12, out.as_entire_binding()),
                        entry(13, params.as_entire_binding()),
                    ],
                });
                groups.push((group, grid(t)));
                first_tile += t;
            }
        }
        Self { pipeline, groups }
    }

    /// One pass over both inputs.
    fn record(&self, encoder: &mut wgpu::CommandEncoder, timer: Option<&GpuTimer>) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("read_sum"),
            timestamp_writes: timer.map(|t| wgpu::ComputePassTimestampWrites {
                query_set: t.query_set(),
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            }),
        });
        pass.set_pipeline(&self.pipeline);
        for (group, (x, y)) in &self.groups {
            pass.set_bind_group(0, group, &[]);
            pass.dispatch_workgroups(*x, *y, 1);
        }
    }
}

/// (offset, words) ranges of at most `max_words` (whole tiles) covering `n` words.
fn ranges(n: u64, max_words: u64) -> Vec<(u64, u64)> {
    let step = max_words / TILE_WORDS * TILE_WORDS;
    (0..n).step_by(step as usize).map(|o| (o, step.min(n - o))).collect()
}

fn grid(groups: u64) -> (u32, u32) {
    let x = groups.min(65535);
    (x as u32, groups.div_ceil(x) as u32)
}

fn pipeline(device: &wgpu::Device, entry: &str) -> wgpu::ComputePipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("gpu_bench"),
        source: wgpu::ShaderSource::Wgsl(include_str!("../../../shaders/gpu_bench.wgsl").into()),
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: None,
        module: &module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    })
}

fn uniform(device: &wgpu::Device, words: &[u32]) -> wgpu::Buffer {
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.resize(16, 0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: None,
        contents: &bytes,
        usage: wgpu::BufferUsages::UNIFORM,
    })
}

fn range(buffer: &wgpu::Buffer, offset: u64, size: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer, offset, size: std::num::NonZeroU64::new(size) })
}

fn entry(binding: u32, resource: wgpu::BindingResource<'_>) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry { binding, resource }
}

fn wait(device: &wgpu::Device) {
    device.poll(wgpu::PollType::wait_indefinitely()).expect("the GPU finished its work");
}

fn map(device: &wgpu::Device, buffer: &wgpu::Buffer) -> Res<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    buffer.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = tx.send(r);
    });
    wait(device);
    rx.recv()??;
    let bytes = buffer.get_mapped_range(..)?.to_vec();
    buffer.unmap();
    Ok(bytes)
}
