//! A recorded run replayed from its file: the chain's [`samplediff_chain::replay`] with the file
//! handling around it, so the CLI's `samplediff replay` and the wasm module's `replay` decode the
//! same tensors, drive the same chain and write the same safetensors.

use std::collections::BTreeMap;

use burn::tensor::Device;
use samplediff_chain::replay::{Comparison, NamedTensor, RecordedRun, compare, replay};
use samplediff_formats::{RawTensor, TensorFile, safetensors};

use crate::Result;

/// What a replay recomputed, and how far each tensor is from the recorded one.
#[derive(Debug, Clone)]
pub struct ReplayOutput {
    /// The run's name from its settings.
    pub name: String,
    /// One entry per recomputed tensor, in [`Self::tensors`]' order.
    pub comparisons: Vec<Comparison>,
    /// `stepNNN.x`, `stepNNN.denoised`, `callNNN.x`, `callNNN.denoised`, `latent_out` (float32).
    pub tensors: Vec<RawTensor>,
}

impl ReplayOutput {
    /// Whether every recomputed tensor equals the recorded one exactly.
    pub fn identical(&self) -> bool {
        self.comparisons.iter().all(|c| c.max_abs == 0.0)
    }

    /// The worst max abs over all tensors (NaN when any is NaN).
    pub fn worst(&self) -> f32 {
        self.comparisons
            .iter()
            .fold(0.0f32, |w, c| if c.max_abs.is_nan() || w.is_nan() { f32::NAN } else { w.max(c.max_abs) })
    }

    /// The recomputed tensors as a safetensors file with `metadata` (the caller says where and
    /// from what it ran).
    pub fn to_safetensors(&self, metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
        safetensors::write(&self.tensors, metadata).map_err(|e| format!("cannot write the replay: {e}"))
    }
}

/// Replays a file in the layout of the golden `wf_*.safetensors` (settings in the metadata, every
/// model call's recorded predictions) on `device`, the run's recorded predictions standing in for
/// the model.
pub fn replay_file(file: &TensorFile, device: &Device) -> Result<ReplayOutput> {
    let tensors = file
        .tensors
        .iter()
        .filter(|t| t.dtype.is_float())
        .map(|t| NamedTensor { name: t.name.clone(), shape: t.shape.clone(), data: t.to_f32_vec() })
        .collect();
    let run = RecordedRun::from_tensors(tensors, &file.metadata, device).map_err(|e| e.to_string())?;
    let replayed = replay(&run).map_err(|e| e.to_string())?;
    let comparisons = compare(&run, &replayed).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (name, tensor) in replayed.named() {
        let shape = tensor.dims().to_vec();
        let values =
            tensor.into_data().try_into_vec::<f32>().map_err(|e| format!("cannot read {name} as float32: {e:?}"))?;
        out.push(RawTensor::from_f32(name, shape, &values));
    }
    Ok(ReplayOutput { name: run.settings.name.clone(), comparisons, tensors: out })
}
