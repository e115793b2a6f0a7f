//! `samplediff verify TRACE [--json]`
//!
//! Replays one trace through the reference chain and reports every step where the trace is not
//! what ComfyUI's chain computes from the trace's own settings and model outputs. A golden
//! ComfyUI trace verifies clean. Exit 0 when clean, 1 when something differs, 2 on error.

use std::process::ExitCode;

use burn::tensor::Device;
use samplediff_trace::render::verify_text;
use samplediff_trace::verify::verify;

#[derive(clap::Args)]
pub struct Args {
    /// The trace (safetensors in the trace layout).
    pub trace: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let device = Device::flex();
    let trace = super::explain::load(&args.trace)?;
    let v = verify(&trace, &device)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", verify_text(&v, &args.trace));
    }
    Ok(if v.clean() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
