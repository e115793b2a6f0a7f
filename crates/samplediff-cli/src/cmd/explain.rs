//! `samplediff explain A B [--json]`
//!
//! Why two runs differ: ordered findings (earliest root cause first), each with a cause code,
//! a confidence and the measured evidence. Works on traces and, with fewer checks, on two plain
//! output files. JSON: `{"findings": [{"cause", "confidence", "stage", "step", "evidence"}]}`.
//! Exit 0 when identical, 1 when differences were found, 2 on error.

use std::process::ExitCode;

use anyhow::Context;
use burn::tensor::Device;
use samplediff_trace::Trace;
use samplediff_trace::render::explain_text;

#[derive(clap::Args)]
pub struct Args {
    /// First run: a trace (safetensors) or any tensor file (`file.pt:selector` works).
    pub a: String,
    /// Second run (the reference of the metrics).
    pub b: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Reads a trace, or any tensor file the formats crate knows as a plain output.
pub fn load(spec: &str) -> anyhow::Result<Trace> {
    let file = samplediff_formats::load_path(spec).with_context(|| format!("cannot read {spec}"))?;
    Trace::from_file(file).with_context(|| format!("{spec} is not a usable trace"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let device = Device::flex();
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    let e = samplediff_trace::explain(&a, &b, &device)?;
    if args.json {
        println!("{}", e.to_json());
    } else {
        print!("{}", explain_text(&e));
    }
    Ok(if e.identical() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
