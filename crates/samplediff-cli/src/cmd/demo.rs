//! `samplediff demo`: the main job on data made on the spot, so a newcomer sees what the tool
//! is for with no files. It reproduces the seed report's situation (two 1x16x1x147x110 latents
//! that "should" match: mean |a-b| ~ 1.09, max rel ~ 1e4-1e5) and shows what the report finds:
//! per channel, B = std*A + mean exactly, i.e. a missing Wan 2.1 de-normalisation.
//!
//! The demo is a list of stages, each printing its part; later issues append stages (traces,
//! the explanation) to [`run`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use samplediff_metrics::render::{RenderOptions, render};
use samplediff_metrics::{CompareOptions, CompareReport, compare_files};

use crate::backend::Backend;

pub mod latents;
pub mod story;

#[derive(clap::Args)]
pub struct Args {
    /// Print the comparison report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the per-channel error heatmap to this PNG.
    #[arg(long, value_name = "PNG")]
    pub heatmap: Option<PathBuf>,
    /// Where the metrics are computed.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
}

/// What the stages found (later stages read earlier results from here).
pub struct DemoState {
    pub a: samplediff_formats::TensorFile,
    pub b: samplediff_formats::TensorFile,
    pub report: Option<CompareReport>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (a, b) = latents::seed_pair()?;
    let mut state = DemoState { a, b, report: None };
    if !args.json {
        intro();
    }
    compare_stage(&mut state, &args)?;
    if !args.json {
        story::run()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn intro() {
    println!("samplediff demo: the seed report's case, rebuilt from scratch");
    println!();
    println!("  A = what the microservice returned: the sampler state x (normalised space)");
    println!("  B = what the ComfyUI workflow saved: its LATENT = process_out(x) = x*std + mean (Wan 2.1)");
    println!("  x is synthetic (fixed seed), shape 1x16x1x147x110 like the user's latent.");
    println!("  The seed report saw 'max abs 5.94, mean abs 1.09, max rel 8.26e4' and guessed seven causes.");
    println!();
}

/// Stage 1: compare A with B and print the report.
fn compare_stage(state: &mut DemoState, args: &Args) -> anyhow::Result<()> {
    let (device, engine) = (args.backend.device(), args.backend.engine());
    let report = compare_files(&state.a, &state.b, &[], &engine, &CompareOptions::default()).map_err(|e| anyhow!(e))?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        let ro = RenderOptions {
            label_a: "microservice output (demo, synthetic x)".into(),
            label_b: "ComfyUI LATENT = process_out(x) (demo)".into(),
            ..Default::default()
        };
        print!("{}", render(&report, &ro));
    }
    if let Some(path) = &args.heatmap {
        let maps = samplediff_metrics::maps::error_maps(&state.a.tensors[0], &state.b.tensors[0], &device)
            .map_err(|e| anyhow!(e))?;
        super::compare::heatmap::write(path, "demo: samples [1, 16, 1, 147, 110]  A vs B (reference)", &maps)?;
        if !args.json {
            println!("\nheatmap written to {}", path.display());
        }
    }
    state.report = Some(report);
    Ok(())
}
