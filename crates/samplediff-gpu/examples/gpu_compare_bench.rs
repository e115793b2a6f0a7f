//! The whole `compare` report on the GPU (`GpuMetrics::compare`) against the fused CPU kernel,
//! on two GIB-GiB float32 tensors in host memory (issue 8).
//!
//!     cargo run -p samplediff-gpu --example gpu_compare_bench -- [GIB (default 1)]
//!
//! Times, best of 3: the GPU with the tensors already uploaded (`compare_resident`: main pass,
//! order passes, read-backs, the host settling the ranks), the upload alone, and the CPU
//! kernel on every core; then holds the two reports to each other (counts, extremes,
//! percentiles, histogram, worst elements and ULP statistics exactly).

use std::time::{Duration, Instant};

use samplediff_formats::{DType, RawTensor};
use samplediff_gpu::{GpuMetrics, Resident};
use samplediff_metrics::{CompareOptions, Host, compare_tensors_host};

fn best<T>(reps: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut out = None;
    let mut t = Duration::MAX;
    for _ in 0..reps {
        let s = Instant::now();
        let v = f();
        t = t.min(s.elapsed());
        out = Some(v);
    }
    (t, out.expect("one run"))
}

fn main() {
    let gib: f64 = std::env::args().nth(1).map_or(1.0, |s| s.parse().expect("GiB"));
    let n = (gib * (1u64 << 30) as f64 / 4.0) as usize;
    // a = 3 + 2 U(-1, 1), b = a (1 + 1e-4 U(-1, 1)), one NaN in a per 2^20 elements (splitmix64).
    let mut state = 0x1234_5678u64;
    let mut unit = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    };
    let (mut a, mut b) = (Vec::with_capacity(n * 4), Vec::with_capacity(n * 4));
    for i in 0..n {
        let x = 3.0 + 2.0 * unit();
        let y = x * (1.0 + 1e-4 * unit());
        let x = if i % (1 << 20) == 7 { f32::NAN } else { x };
        a.extend_from_slice(&x.to_le_bytes());
        b.extend_from_slice(&y.to_le_bytes());
    }
    let ta = RawTensor::from_vec("a", DType::F32, vec![n], a);
    let tb = RawTensor::from_vec("a", DType::F32, vec![n], b);
    let opts = CompareOptions::default();

    let gpu = GpuMetrics::new().expect("a GPU");
    println!("adapter: {:?}; 2 x {gib} GiB float32 ({n} pairs)", gpu.adapter_info().name);
    let (upload, buffers) = best(1, || gpu.upload_pair(&ta, &tb).expect("upload"));
    let segments: Vec<Resident> = buffers.iter().map(|(x, y, m)| Resident { a: x, b: y, numel: *m }).collect();
    let (resident, g) = best(3, || gpu.compare_resident(&ta, &tb, &segments, &opts).expect("GPU compare"));
    let phases = gpu.last_phases();
    let threads = samplediff_metrics::fused::available_threads();
    let (cpu_t, c) = best(2, || compare_tensors_host(&ta, &tb, &opts, &Host { threads, progress: None }).unwrap());
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("upload (host -> GPU, both):   {:9.2} ms", ms(upload));
    println!("GPU compare, resident inputs: {:9.2} ms", ms(resident));
    for (what, t) in phases {
        println!("  of which {what:<24} {:9.2} ms", ms(t));
    }
    println!("CPU compare, {threads} threads:     {:9.2} ms", ms(cpu_t));
    assert_eq!((g.finite_pairs, g.mismatched, g.max_abs), (c.finite_pairs, c.mismatched, c.max_abs));
    assert_eq!((&g.percentiles_abs, &g.histogram, &g.worst), (&c.percentiles_abs, &c.histogram, &c.worst));
    assert_eq!((g.ulp_max, g.ulp_median), (c.ulp_max, c.ulp_median));
    let rel = |x: Option<f64>, y: Option<f64>| (x.unwrap() - y.unwrap()).abs() / y.unwrap().abs();
    println!(
        "reports agree: order statistics and counts exactly; mean_abs {:.1e}, rmse {:.1e}, cosine {:.1e} relative",
        rel(g.mean_abs, c.mean_abs),
        rel(g.rmse, c.rmse),
        rel(g.cosine, c.cosine)
    );
}
