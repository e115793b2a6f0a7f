//! `samplediff bench [A B]`: how fast `compare` is against the speed of reading its inputs, and
//! against numpy and torch computing the same metrics (issue 8). A benchmark, not a test: it
//! prints times and ratios, and `--json` gives them to scripts (docs/performance.md).
//!
//! Without files it writes two float32 safetensors files of `--mib` MiB each (b a smooth
//! field, a = b + small noise) and removes them afterwards.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, anyhow};
use samplediff_formats::{RawTensor, safetensors};
use samplediff_metrics::{CompareOptions, Engine, Host, compare_files};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Files to compare (default: two generated float32 files of `--mib` MiB).
    pub files: Vec<PathBuf>,
    /// Size of each generated file, MiB.
    #[arg(long, default_value_t = 1024)]
    pub mib: usize,
    /// Directory for the generated files.
    #[arg(long, default_value = "/tmp")]
    pub dir: PathBuf,
    /// Timed runs of each contender; the best is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Host kernel threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Python with numpy and/or torch for the reference timings ("" skips them).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// torch device for its timing (cpu, cuda).
    #[arg(long, default_value = "cpu")]
    pub torch_device: String,
    /// Time only this reference (numpy or torch).
    #[arg(long, value_parser = ["numpy", "torch"])]
    pub only: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Keep the generated files (their paths are printed), e.g. to profile `compare` on them.
    #[arg(long)]
    pub keep: bool,
    /// Also time `compare --backend wgpu`: the fused GPU kernels, the inputs uploaded each run
    /// (the GPU is opened once, before the timing).
    #[cfg(feature = "wgpu")]
    #[arg(long)]
    pub gpu: bool,
}

/// One contender's best time.
#[derive(Serialize)]
struct Timing {
    name: String,
    seconds: f64,
    /// seconds / the plain read's seconds.
    vs_read: f64,
    note: String,
}

#[derive(Serialize)]
struct Bench {
    files: Vec<String>,
    bytes: u64,
    threads: usize,
    timings: Vec<Timing>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (files, generated) = match args.files.len() {
        0 => (generate(&args.dir, args.mib)?, true),
        2 => (args.files.clone(), false),
        n => anyhow::bail!("bench takes two files (or none, to generate them), got {n}"),
    };
    let result = measure(&args, &files);
    if generated && !args.keep {
        files.iter().for_each(|f| _ = std::fs::remove_file(f));
    }
    let bench = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&bench)?);
    } else {
        println!(
            "inputs: {} ({:.2} GiB in all), {} threads",
            bench.files.join(", "),
            bench.bytes as f64 / (1u64 << 30) as f64,
            bench.threads
        );
        println!("{:<28} {:>10} {:>9}  note", "contender", "seconds", "x read");
        for t in &bench.timings {
            println!("{:<28} {:>10.4} {:>9.2}  {}", t.name, t.seconds, t.vs_read, t.note);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn measure(args: &Args, files: &[PathBuf]) -> anyhow::Result<Bench> {
    let paths: Vec<&str> =
        files.iter().map(|p| p.to_str().ok_or_else(|| anyhow!("path is not UTF-8"))).collect::<Result<_, _>>()?;
    let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len())).sum::<Result<u64, _>>()?;
    let threads = args.threads.unwrap_or_else(samplediff_metrics::fused::available_threads);
    // Warm the page cache: every contender then reads from memory, as the goal states.
    read_all(files)?;
    let best = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let mut best = f64::INFINITY;
        for _ in 0..args.repeat.max(1) {
            let t = Instant::now();
            f()?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        Ok(best)
    };
    let mut timings = vec![];
    let read = best(&mut || read_all(files).map(|_| ()))?;
    timings.push(("read both files (like cat)".to_string(), read, "read(2) into a 128 KiB buffer".to_string()));
    if let Ok(t) = best(&mut || cat(files)) {
        timings.push(("cat a b > /dev/null".into(), t, "external process".into()));
    }
    // (best time, bytes of the JSON report)
    let compare_with = |engine: &Engine| -> anyhow::Result<(f64, usize)> {
        let mut json_len = 0;
        let t = best(&mut || {
            let (a, b) = (super::compare::load(paths[0])?, super::compare::load(paths[1])?);
            let report = compare_files(&a, &b, &[], engine, &CompareOptions::default()).map_err(|e| anyhow!(e))?;
            json_len = report.to_json().len();
            Ok(())
        })?;
        Ok((t, json_len))
    };
    let (compare, json_len) = compare_with(&Engine::Host(Host { threads, progress: None }))?;
    timings.push(("samplediff compare".into(), compare, format!("load + every metric + JSON ({json_len} bytes)")));
    #[cfg(feature = "wgpu")]
    if args.gpu {
        let (gpu, _) = compare_with(&crate::backend::Backend::Wgpu.engine())?;
        timings.push(("compare --backend wgpu".into(), gpu, "load + upload + GPU passes + JSON".into()));
    }
    if !args.python.is_empty() {
        // The checkout's script: from the working directory (a binary carried to another
        // machine), else where this binary was built.
        let here = Path::new("tools/bench_metrics.py");
        let script = if here.exists() {
            here.to_path_buf()
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/bench_metrics.py")
        };
        let backends = match args.only.as_deref() {
            Some(b) => vec![b],
            None => vec!["numpy", "torch"],
        };
        for backend in backends {
            let device = if backend == "torch" { args.torch_device.as_str() } else { "cpu" };
            match python(&args.python, &script, backend, device, threads, paths[0], paths[1]) {
                Ok((t, note)) => timings.push((format!("{backend} ({device})"), t, note)),
                Err(e) => timings.push((format!("{backend} ({device})"), f64::NAN, format!("skipped: {e}"))),
            }
        }
    }
    Ok(Bench {
        files: paths.iter().map(|s| s.to_string()).collect(),
        bytes,
        threads,
        timings: timings
            .into_iter()
            .map(|(name, seconds, note)| Timing { name, seconds, vs_read: seconds / read, note })
            .collect(),
    })
}

/// Read every byte of the files the way `cat` does; returns the byte count.
fn read_all(files: &[PathBuf]) -> anyhow::Result<u64> {
    let mut buf = vec![0u8; 128 << 10];
    let mut total = 0;
    for f in files {
        let mut file = std::fs::File::open(f).with_context(|| f.display().to_string())?;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    Ok(total)
}

fn cat(files: &[PathBuf]) -> anyhow::Result<()> {
    let status = Command::new("cat").args(files).stdout(std::process::Stdio::null()).status()?;
    status.success().then_some(()).ok_or_else(|| anyhow!("cat failed"))
}

/// The numpy/torch script's best time (it times the metrics with the inputs in memory).
/// Time the reference script with `threads` threads (the same as the kernel's: the ratio is
/// then per core).
fn python(
    py: &str,
    script: &Path,
    backend: &str,
    device: &str,
    threads: usize,
    a: &str,
    b: &str,
) -> anyhow::Result<(f64, String)> {
    let threads = threads.to_string();
    let out = Command::new(py)
        .arg(script)
        .args(["--backend", backend, "--device", device, "--repeat", "2", "--threads", &threads, a, b])
        .env("OMP_NUM_THREADS", &threads)
        .env("MKL_NUM_THREADS", &threads)
        .output()
        .with_context(|| format!("cannot run {py}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!("{}", err.lines().last().unwrap_or("failed"));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("script output")?;
    if let Some(why) = v.get("skipped") {
        anyhow::bail!("{}", why.as_str().unwrap_or("not installed"));
    }
    let version = v.get("torch").or(v.get("numpy")).and_then(|v| v.as_str()).unwrap_or("?");
    let threads = v.get("threads").map(|t| format!(", {t} threads")).unwrap_or_default();
    Ok((v["seconds"].as_f64().unwrap_or(f64::NAN), format!("{backend} {version}{threads}, inputs in memory")))
}

/// Two float32 files of `mib` MiB: b a smooth field, a = b + noise of ~1e-3.
fn generate(dir: &Path, mib: usize) -> anyhow::Result<Vec<PathBuf>> {
    let n = (mib << 20) / 4;
    let mut state = 0x2545F4914F6CDD1Du64;
    let mut b = Vec::with_capacity(n);
    let mut a = Vec::with_capacity(n);
    for i in 0..n {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
        let v = (i as f32 * 1e-4).sin() * 2.0 + noise;
        b.push(v);
        a.push(v + noise * 2e-3);
    }
    let pid = std::process::id();
    let mut out = vec![];
    for (tag, values) in [("a", a), ("b", b)] {
        let path = dir.join(format!("samplediff-bench-{pid}-{tag}.safetensors"));
        let bytes = safetensors::write(&[RawTensor::from_f32("x", vec![n], &values)], &Default::default())
            .map_err(|e| anyhow!("{e}"))?;
        std::fs::write(&path, bytes).with_context(|| path.display().to_string())?;
        out.push(path);
    }
    Ok(out)
}
