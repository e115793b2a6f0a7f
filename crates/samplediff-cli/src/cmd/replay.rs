//! `samplediff replay WF.safetensors [-o out.safetensors] [--backend cpu|wgpu]`
//!
//! Re-drives a recorded ComfyUI run through the reference chain, with the run's recorded model
//! predictions standing in for the model, and reports how far each recomputed tensor
//! (`stepNNN.x`, `stepNNN.denoised`, `callNNN.x`, `callNNN.denoised`, `latent_out`) is from the
//! recorded one. Exit 0 when every tensor matches exactly, 1 otherwise.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use samplediff_chain::replay::{NamedTensor, RecordedRun, compare, replay};
use samplediff_formats::{Bytes, RawTensor, safetensors};

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
    let tensors = file
        .tensors
        .iter()
        .filter(|t| t.dtype.is_float())
        .map(|t| NamedTensor { name: t.name.clone(), shape: t.shape.clone(), data: t.to_f32_vec() })
        .collect();
    let run = RecordedRun::from_tensors(tensors, &file.metadata, &device)?;
    let replayed = replay(&run)?;
    let comparisons = compare(&run, &replayed)?;

    let mut worst = 0.0f32;
    let mut mismatched = 0usize;
    for c in &comparisons {
        println!("{:<24} max abs {:e}", c.name, c.max_abs);
        if c.max_abs != 0.0 {
            mismatched += 1;
        }
        worst = if c.max_abs.is_nan() || worst.is_nan() { f32::NAN } else { worst.max(c.max_abs) };
    }
    println!(
        "{}: {} of {} tensors identical to ComfyUI's, worst max abs {:e} (backend {})",
        run.settings.name,
        comparisons.len() - mismatched,
        comparisons.len(),
        worst,
        args.backend.name()
    );

    if let Some(out) = &args.output {
        let mut raws = Vec::new();
        for (name, tensor) in replayed.named() {
            let shape = tensor.dims().to_vec();
            let values = tensor
                .into_data()
                .try_into_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("cannot read {name} as float32: {e:?}"))?;
            raws.push(RawTensor::from_f32(name, shape, &values));
        }
        let mut meta = BTreeMap::new();
        meta.insert("replayed_from".to_owned(), args.input.display().to_string());
        meta.insert("backend".to_owned(), args.backend.name().to_owned());
        let bytes = safetensors::write(&raws, &meta)?;
        std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))?;
    }
    Ok(if mismatched == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
