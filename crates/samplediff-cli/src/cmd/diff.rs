//! `samplediff diff A B [--json]`
//!
//! Aligns two traces stage by stage and step by step, prints the compare metrics of every
//! aligned tensor, the divergence curve, and the first point where the difference leaves what
//! float32 rounding explains. Plain output files (no trace) compare their final outputs.
//! Exit 0 when identical, 1 when anything differs, 2 on error.

use std::process::ExitCode;

use burn::tensor::Device;
use samplediff_trace::render::diff_text;

#[derive(clap::Args)]
pub struct Args {
    /// First run: a trace (safetensors) or any tensor file (`file.pt:selector` works).
    pub a: String,
    /// Second run, the reference of the metrics.
    pub b: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // The diagnosis needs float64 and bit-exact float32: burn's CPU backend.
    let device = Device::flex();
    let a = super::explain::load(&args.a)?;
    let b = super::explain::load(&args.b)?;
    let d = samplediff_trace::diff::diff(&a, &b, &device)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&d)?);
    } else {
        print!("{}", diff_text(&d, &args.a, &args.b));
    }
    Ok(if d.identical() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
