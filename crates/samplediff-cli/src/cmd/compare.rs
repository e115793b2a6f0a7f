//! `samplediff compare A B`: compare the tensors of two files, B being the reference.
//!
//! Exit code 0 when every tensor matches, 1 on any mismatch (values, shapes, missing tensors),
//! 2 on errors (unreadable file, unknown `--pair` name), each naming the file and the problem.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use burn::tensor::Device;
use samplediff_formats::TensorFile;
use samplediff_metrics::render::{RenderOptions, render};
use samplediff_metrics::{CompareOptions, CompareReport, Status, Verdict, compare_files, maps, parse_pair};

use crate::backend::Backend;
use crate::progress;

pub mod heatmap;

#[derive(clap::Args)]
pub struct Args {
    /// File A (safetensors, .latent, .pt, .npy/.npz), optionally `file:selector` (`cond.pt:0.0`).
    pub a: String,
    /// File B, the reference (relative errors divide by B).
    pub b: String,
    /// Print the report as JSON (stable schema) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Absolute tolerance (default: torch.testing.assert_close's for the dtypes).
    #[arg(long)]
    pub atol: Option<f64>,
    /// Relative tolerance (default: torch.testing.assert_close's for the dtypes).
    #[arg(long)]
    pub rtol: Option<f64>,
    /// Floor of |b| in the floored relative error (default 1e-3 x RMS(b)).
    #[arg(long)]
    pub rel_floor: Option<f64>,
    /// Write a PNG of per-channel |a-b| maps of the worst tensor.
    #[arg(long, value_name = "PNG")]
    pub heatmap: Option<PathBuf>,
    /// Compare tensor NAME_A of A with NAME_B of B (repeatable).
    #[arg(long = "pair", value_name = "NAME_A=NAME_B")]
    pub pairs: Vec<String>,
    /// Where the metrics are computed.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// How many worst elements to list per tensor.
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    let pairs = args.pairs.iter().map(|p| parse_pair(p)).collect::<Result<Vec<_>, _>>()?;
    for (v, flag) in [(args.atol, "--atol"), (args.rtol, "--rtol"), (args.rel_floor, "--rel-floor")] {
        if v.is_some_and(|v| !(v >= 0.0 && v.is_finite())) {
            anyhow::bail!("{flag} must be a finite number >= 0");
        }
    }
    let opts = CompareOptions { atol: args.atol, rtol: args.rtol, rel_floor: args.rel_floor, top_k: args.top_k };
    let device = args.backend.device();
    let (engine, bar) = progress::attach(args.backend.engine(), &a, &b);
    let report = on_device(args.backend, || compare_files(&a, &b, &pairs, &engine, &opts).map_err(|e| anyhow!(e)));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = report?;

    if let Some(path) = &args.heatmap {
        write_heatmap(path, &report, &a, &b, &device, args.backend)?;
        if !args.json {
            eprintln!("heatmap written to {}", path.display());
        }
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        let ro = RenderOptions { label_a: args.a.clone(), label_b: args.b.clone(), ..Default::default() };
        print!("{}", render(&report, &ro));
    }
    Ok(exit_code(&report))
}

pub fn exit_code(report: &CompareReport) -> ExitCode {
    match report.verdict {
        Verdict::Match => ExitCode::SUCCESS,
        Verdict::Mismatch => ExitCode::from(1),
    }
}

/// Read a file (`path[:selector]`); errors name it.
pub fn load(spec: &str) -> anyhow::Result<TensorFile> {
    samplediff_formats::load_path(spec).map_err(|e| anyhow!("{spec}: {e}"))
}

/// Run `f`, turning a panic inside a GPU backend (no adapter, lost device) into an error.
fn on_device<T>(backend: Backend, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    if backend == Backend::Cpu {
        return f();
    }
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    out.unwrap_or_else(|p| {
        let msg =
            p.downcast_ref::<String>().map(String::as_str).or(p.downcast_ref::<&str>().copied()).unwrap_or("panic");
        Err(anyhow!("backend {backend:?} failed: {}", msg.lines().next().unwrap_or(msg)))
    })
}

/// The heatmap of the worst-ranked compared tensor.
fn write_heatmap(
    path: &std::path::Path,
    report: &CompareReport,
    a: &TensorFile,
    b: &TensorFile,
    device: &Device,
    backend: Backend,
) -> anyhow::Result<()> {
    let name = report
        .summary
        .ranking
        .first()
        .map(|e| e.name.clone())
        .ok_or_else(|| anyhow!("{}: no compared tensor to draw", path.display()))?;
    let t = report.tensors.iter().find(|t| t.name == name && t.status == Status::Compared).expect("ranked");
    let find = |f: &TensorFile, n: &Option<String>| f.tensors.iter().find(|x| Some(&x.name) == n.as_ref()).cloned();
    let (ta, tb) = (find(a, &t.name_a).expect("paired"), find(b, &t.name_b).expect("paired"));
    let maps = on_device(backend, || maps::error_maps(&ta, &tb, device).map_err(|e| anyhow!(e)))?;
    let title = format!("{} {:?}  A vs B (reference)", t.name, ta.shape);
    heatmap::write(path, &title, &maps).context("heatmap")
}
