//! `samplediff replay WF.safetensors [-o out.safetensors] [--backend cpu|wgpu]`
//!
//! Re-drives a recorded ComfyUI run through the reference chain, with the run's recorded model
//! predictions standing in for the model, and reports how far each recomputed tensor
//! (`stepNNN.x`, `stepNNN.denoised`, `callNNN.x`, `callNNN.denoised`, `latent_out`) is from the
//! recorded one. Exit 0 when every tensor matches exactly, 1 otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use samplediff_formats::{Bytes, safetensors};
use samplediff_workflow::replay::replay_file;

use crate::backend::Backend;

#[derive(clap::Args)]
pub struct Args {
    /// A recorded run in the layout of the golden `wf_*.safetensors` files.
    pub input: PathBuf,
    /// Write the recomputed tensors here (safetensors, float32).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Where the chain computes (`cpu` is bit-exact against ComfyUI's CPU runs).
    #[arg(long, value_enum, default_value = "cpu")]
    pub backend: Backend,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let device = args.backend.device();
    let bytes = std::fs::read(&args.input).with_context(|| format!("cannot read {}", args.input.display()))?;
    let file =
        safetensors::read(Bytes::new(bytes)).with_context(|| format!("{} is not safetensors", args.input.display()))?;
    let replayed = replay_file(&file, &device).map_err(|e| anyhow!("{}: {e}", args.input.display()))?;

    for c in &replayed.comparisons {
        println!("{:<24} max abs {:e}", c.name, c.max_abs);
    }
    let mismatched = replayed.comparisons.iter().filter(|c| c.max_abs != 0.0).count();
    println!(
        "{}: {} of {} tensors identical to ComfyUI's, worst max abs {:e} (backend {})",
        replayed.name,
        replayed.comparisons.len() - mismatched,
        replayed.comparisons.len(),
        replayed.worst(),
        args.backend.name()
    );

    if let Some(out) = &args.output {
        let mut meta = BTreeMap::new();
        meta.insert("replayed_from".to_owned(), args.input.display().to_string());
        meta.insert("backend".to_owned(), args.backend.name().to_owned());
        let bytes = replayed.to_safetensors(&meta).map_err(|e| anyhow!(e))?;
        std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(if replayed.identical() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
