//! `samplediff check-backends`: the same workflows on every backend, held against each other and
//! against ComfyUI.
//!
//! Each workflow in `--workflows DIR` (files `wf_*.safetensors` in the golden layout, with
//! ComfyUI's recorded `latent_out`) runs from scratch on every backend compiled into this binary
//! (`--backends` narrows the list); `--include LABEL=DIR` adds traces produced elsewhere (the wasm
//! build in a browser, another machine) as one more column, read from `DIR/<workflow file name>`.
//! The report is a matrix of pairwise worst max-abs / mean-abs differences of `latent_out` over
//! all workflows, each pair checked against its tolerance (see [`tolerance`]). Exit 0 when every
//! pair is within tolerance, 1 otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use samplediff_formats::{TensorFile, load_path};
use samplediff_workflow::{ModelFiles, RunOptions, Workflow, max_abs};
use serde::Serialize;

use crate::backend::Backend;
use crate::cmd::run::{precision, rope_axes};

#[derive(clap::Args)]
pub struct Args {
    /// Folder of `wf_*.safetensors` workflows with ComfyUI's recorded `latent_out`.
    #[arg(long, default_value = "tests/fixtures/comfyui")]
    pub workflows: PathBuf,
    /// ComfyUI models folder (default: WORKFLOWS/models).
    #[arg(long)]
    pub models: Option<PathBuf>,
    #[arg(long, default_value = "8,12,12")]
    pub rope_axes: String,
    /// Comma-separated backends to run (default: every compiled one).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub backends: Vec<Backend>,
    /// Add externally produced traces as a column: LABEL=DIR (DIR/<workflow file name>).
    #[arg(long = "include")]
    pub includes: Vec<String>,
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Also write each backend's traces to OUT/<backend>/<workflow file name>.
    #[arg(long)]
    pub save: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// Documented tolerances (max abs on `latent_out`, float32; the table in `docs/backends.md`, which a
/// test holds to this function). ComfyUI's own CPU run is the oracle: issue #4 asks 1e-4 of burn's
/// CPU backend; the model's matmuls and attention reductions are the only non-elementwise work, so
/// any two of our backends differ by accumulation order alone (and by the transcendental functions:
/// libm's for `wasm-cpu`, the GPU's `exp`/`tanh` for `wgpu` and `wasm-webgpu`).
pub fn tolerance(a: &str, b: &str) -> f32 {
    if a == "comfyui" || b == "comfyui" { 1e-4 } else { 5e-5 }
}

#[derive(Serialize)]
struct Cell {
    a: String,
    b: String,
    max_abs: f32,
    mean_abs: f64,
    tolerance: f32,
    ok: bool,
}

#[derive(Serialize)]
struct Report {
    workflows: Vec<String>,
    columns: Vec<String>,
    pairs: Vec<Cell>,
    ok: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let models = args.models.clone().unwrap_or_else(|| args.workflows.join("models"));
    let model = read(&models.join("diffusion_models/tiny_qwen.safetensors"))?;
    let mut names: Vec<String> = std::fs::read_dir(&args.workflows)
        .with_context(|| format!("cannot list {}", args.workflows.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("wf_") && n.ends_with(".safetensors"))
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("no wf_*.safetensors in {}", args.workflows.display());
    }
    let backends = if args.backends.is_empty() { Backend::compiled() } else { args.backends.clone() };
    let options = |b: Backend| -> anyhow::Result<RunOptions> {
        Ok(RunOptions {
            device: b.device(),
            precision: precision(&args.precision)?,
            rope_axes: rope_axes(&args.rope_axes)?,
        })
    };

    // column -> workflow -> latent_out values
    let mut columns: BTreeMap<String, BTreeMap<String, Vec<f32>>> = BTreeMap::new();
    for name in &names {
        let golden = read(&args.workflows.join(name))?;
        let out = golden.get("latent_out").ok_or_else(|| anyhow!("{name} has no recorded latent_out"))?;
        columns.entry("comfyui".into()).or_default().insert(name.clone(), out.to_f32_vec());
        let wf = Workflow::from_file(&golden).map_err(|e| anyhow!("{name}: {e}"))?;
        let lora = wf.lora.as_ref().map(|(l, _)| read(&models.join("loras").join(l))).transpose()?;
        for &b in &backends {
            let trace = samplediff_workflow::run(
                &wf,
                &ModelFiles { diffusion_model: &model, lora: lora.as_ref() },
                &options(b)?,
            )
            .map_err(|e| anyhow!("{name} on {}: {e}", b.name()))?;
            if let Some(dir) = &args.save {
                let dir = dir.join(b.name());
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join(name), trace.to_safetensors()?)?;
            }
            let v = trace.values("latent_out").ok_or_else(|| anyhow!("{name} on {}: no latent_out", b.name()))?;
            columns.entry(b.name().into()).or_default().insert(name.clone(), v);
        }
    }
    for inc in &args.includes {
        let (label, dir) = inc.split_once('=').ok_or_else(|| anyhow!("--include wants LABEL=DIR, got '{inc}'"))?;
        for name in &names {
            let file = read(&Path::new(dir).join(name))?;
            let t = file.get("latent_out").ok_or_else(|| anyhow!("{dir}/{name} has no latent_out"))?;
            columns.entry(label.into()).or_default().insert(name.clone(), t.to_f32_vec());
        }
    }

    let labels: Vec<String> = columns.keys().cloned().collect();
    let mut pairs = Vec::new();
    for (i, a) in labels.iter().enumerate() {
        for b in &labels[i + 1..] {
            let (mut worst, mut mean_sum, mut n) = (0f32, 0f64, 0usize);
            for name in &names {
                let (x, y) = (&columns[a][name], &columns[b][name]);
                if x.len() != y.len() {
                    bail!("{name}: {a} and {b} have different sizes");
                }
                let m = max_abs(x, y);
                worst = if m.is_nan() || worst.is_nan() { f32::NAN } else { worst.max(m) };
                mean_sum += x.iter().zip(y).map(|(p, q)| (p - q).abs() as f64).sum::<f64>();
                n += x.len();
            }
            let tol = tolerance(a, b);
            pairs.push(Cell {
                a: a.clone(),
                b: b.clone(),
                max_abs: worst,
                mean_abs: mean_sum / n.max(1) as f64,
                tolerance: tol,
                ok: worst <= tol,
            });
        }
    }
    let ok = pairs.iter().all(|p| p.ok);
    let report = Report { workflows: names, columns: labels, pairs, ok };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_matrix(&report);
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_matrix(r: &Report) {
    println!("latent_out over {} workflows: worst max abs / mean abs between columns", r.workflows.len());
    let w = 22;
    let label = r.columns.iter().map(String::len).max().unwrap_or(0) + 1;
    print!("{:<label$}", "");
    for c in &r.columns {
        print!("{c:>w$}");
    }
    println!();
    for a in &r.columns {
        print!("{a:<label$}");
        for b in &r.columns {
            let cell = r.pairs.iter().find(|p| (&p.a == a && &p.b == b) || (&p.a == b && &p.b == a));
            match cell {
                None => print!("{:>w$}", "-"),
                Some(p) => {
                    print!("{:>w$}", format!("{:.1e}/{:.1e}{}", p.max_abs, p.mean_abs, if p.ok { "" } else { "!" }))
                }
            }
        }
        println!();
    }
    for p in &r.pairs {
        let (a, b, ok) = (&p.a, &p.b, if p.ok { "ok" } else { "OUT OF TOLERANCE" });
        println!("{a:>label$} vs {b:<label$} max abs {:<10.3e} tolerance {:<8.0e} {ok}", p.max_abs, p.tolerance);
    }
}

fn read(path: &Path) -> anyhow::Result<TensorFile> {
    load_path(&path.to_string_lossy()).map_err(|e| anyhow!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::tolerance;

    /// Every pair in the tolerance table of docs/backends.md ("`a` vs `b`, `c` | 1e-4 | why") is
    /// asserted with exactly that tolerance, both ways round, and the table covers the wasm columns.
    #[test]
    fn documented_tolerances_are_the_asserted_ones() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/backends.md")).unwrap();
        let section = doc.split("\n## ").find(|s| s.starts_with("Tolerances")).expect("a '## Tolerances' section");
        let labels =
            |cell: &str| -> Vec<String> { cell.split(',').map(|l| l.trim().trim_matches('`').to_owned()).collect() };
        let mut pairs = Vec::new();
        for row in section.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let (left, right) = cells[1].split_once(" vs ").unwrap_or_else(|| panic!("not a pair: {row}"));
            let documented: f32 = cells[2].parse().unwrap_or_else(|_| panic!("not a tolerance: {row}"));
            for a in labels(left) {
                for b in labels(right) {
                    assert_eq!(tolerance(&a, &b), documented, "{a} vs {b}");
                    assert_eq!(tolerance(&b, &a), documented, "{b} vs {a}");
                    pairs.push((a.clone(), b));
                }
            }
        }
        let needed = [
            ("comfyui", "cpu"),
            ("cpu", "wgpu"),
            ("comfyui", "wasm-cpu"),
            ("cpu", "wasm-cpu"),
            ("wgpu", "wasm-cpu"),
            ("comfyui", "wasm-webgpu"),
            ("cpu", "wasm-webgpu"),
            ("wgpu", "wasm-webgpu"),
            ("wasm-cpu", "wasm-webgpu"),
        ];
        for (a, b) in needed {
            assert!(
                pairs.iter().any(|(x, y)| (x == a && y == b) || (x == b && y == a)),
                "docs/backends.md gives no tolerance for {a} vs {b}"
            );
        }
    }
}
