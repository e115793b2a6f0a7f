//! `samplediff`: compare diffusion-sampling tensors, reproduce ComfyUI's chain, explain differences.
//!
//! Exit codes are a contract: 0 success / match, 1 mismatch, 2 any error (one line on stderr).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backend;
mod cmd;
mod progress;

#[derive(Parser)]
#[command(name = "samplediff", version, about = "Find where two diffusion sampling runs part, and why.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// One value per command line; boxing the arguments buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Compare the tensors of two files (safetensors, .latent, .pt, .npy/.npz).
    Compare(cmd::compare::Args),
    /// The main job on bundled data: the seed's two runs, the report and the explanation.
    Demo(cmd::demo::Args),
    /// Align two traces step by step: metrics per tensor, divergence curve, first split.
    Diff(cmd::diff::Args),
    /// Why two runs differ: ordered findings with cause codes and evidence.
    Explain(cmd::explain::Args),
    /// ComfyUI's initial noise (torch CPU randn) for a seed and shape.
    Noise(cmd::noise::Args),
    /// ComfyUI's sigma schedule for a scheduler, shift and step count.
    Sigmas(cmd::sigmas::Args),
    /// Re-drive a recorded workflow through the reference chain with its recorded model outputs.
    Replay(cmd::replay::Args),
    /// Replay one trace through the reference chain; report every step it does not reproduce.
    Verify(cmd::verify::Args),
    /// Run a whole workflow (model, LoRA, shift, CFGNorm, KSampler) from scratch in the burn core.
    Run(cmd::run::Args),
    /// Run the same workflows on every backend and print the pairwise difference matrix.
    CheckBackends(cmd::check_backends::Args),
    /// Time `compare` against reading its inputs, numpy and torch (a benchmark, not a test).
    Bench(cmd::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The widest build of the host kernel that may run, to time the builds against each other
    // on one machine (docs/performance.md); results are the same bits in every build.
    if let Ok(simd) = std::env::var("SAMPLEDIFF_SIMD") {
        match simd.as_str() {
            "baseline" => samplediff_metrics::fused::limit_simd(0),
            "avx2" => samplediff_metrics::fused::limit_simd(1),
            _ => {}
        }
    }
    let result = match cli.command {
        Command::Compare(a) => cmd::compare::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::Explain(a) => cmd::explain::run(a),
        Command::Noise(a) => cmd::noise::run(a),
        Command::Sigmas(a) => cmd::sigmas::run(a),
        Command::Replay(a) => cmd::replay::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::CheckBackends(a) => cmd::check_backends::run(a),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Bench(a) => cmd::bench::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("samplediff: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
