//! [`Trace`]: one sampling run as named tensors plus settings and an optional manifest.
//!
//! Reading accepts the golden ComfyUI layout as it is (settings as JSON-encoded metadata values,
//! no manifest) and any other tensor file (then it is a "plain output": only what the tensors
//! allow can be checked). Writing produces a safetensors file that reads back identically.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use samplediff_chain::ksampler::Latent;
use samplediff_chain::replay::{NamedTensor, RecordedRun};
use samplediff_formats::{Bytes, RawTensor, TensorFile, safetensors};
use serde_json::Value;

use crate::error::{Result, TraceError};
use crate::manifest::{MANIFEST_KEY, Manifest};
use crate::names::{Stage, call_name, cmp_names, step_name};

/// Settings keys that label a run without affecting it.
pub const LABEL_KEYS: &[&str] = &["name"];

/// One recorded sampling run (or a plain output file).
#[derive(Debug, Clone)]
pub struct Trace {
    /// The file's metadata as stored (settings JSON-encoded, plus the manifest).
    pub metadata: BTreeMap<String, String>,
    pub manifest: Option<Manifest>,
    tensors: Vec<RawTensor>,
    index: BTreeMap<String, usize>,
}

impl Trace {
    /// A trace from a decoded tensor file. A manifest that is present but malformed is an error;
    /// a missing one is fine (the golden layout has none).
    pub fn from_file(file: TensorFile) -> Result<Self> {
        let manifest = match file.metadata.get(MANIFEST_KEY) {
            Some(text) => Some(Manifest::from_json(text)?),
            None => None,
        };
        let mut index = BTreeMap::new();
        for (i, t) in file.tensors.iter().enumerate() {
            if index.insert(t.name.clone(), i).is_some() {
                return Err(TraceError::invalid(format!("tensor '{}' appears twice", t.name)));
            }
        }
        Ok(Self { metadata: file.metadata, manifest, tensors: file.tensors, index })
    }

    /// A trace from safetensors bytes.
    pub fn from_safetensors(bytes: Vec<u8>) -> Result<Self> {
        Self::from_file(safetensors::read(Bytes::new(bytes))?)
    }

    /// Builds a trace from parts (what [`crate::TraceRecorder`] does).
    pub fn from_parts(
        settings: &BTreeMap<String, Value>,
        manifest: Option<Manifest>,
        tensors: Vec<RawTensor>,
    ) -> Result<Self> {
        let mut metadata: BTreeMap<String, String> = settings.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        if let Some(m) = &manifest {
            metadata.insert(MANIFEST_KEY.into(), m.to_json());
        }
        Self::from_file(TensorFile { tensors, metadata })
    }

    /// The trace as a tensor file (tensors in execution order).
    pub fn to_file(&self) -> TensorFile {
        let mut tensors = self.tensors.clone();
        let steps = self.call_steps();
        let call_step = |i: usize| steps.get(i).copied().unwrap_or(i);
        tensors.sort_by(|a, b| cmp_names(&a.name, &b.name, &call_step));
        TensorFile { tensors, metadata: self.metadata.clone() }
    }

    /// The trace as safetensors bytes.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        let file = self.to_file();
        Ok(safetensors::write(&file.tensors, &file.metadata)?)
    }

    pub fn tensors(&self) -> &[RawTensor] {
        &self.tensors
    }

    pub fn get(&self, name: &str) -> Option<&RawTensor> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }

    pub fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// A tensor's values as float32, if the tensor exists and is floating point.
    pub fn values(&self, name: &str) -> Option<Vec<f32>> {
        self.get(name).filter(|t| t.dtype.is_float()).map(RawTensor::to_f32_vec)
    }

    /// The settings: every metadata value except the manifest, JSON-decoded (a value that is not
    /// JSON is kept as a string).
    pub fn settings(&self) -> BTreeMap<String, Value> {
        self.metadata
            .iter()
            .filter(|(k, _)| k.as_str() != MANIFEST_KEY && !k.starts_with("__"))
            .map(|(k, v)| (k.clone(), serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.clone()))))
            .collect()
    }

    pub fn setting(&self, key: &str) -> Option<Value> {
        let raw = self.metadata.get(key)?;
        Some(serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.clone())))
    }

    pub fn setting_f64(&self, key: &str) -> Option<f64> {
        self.setting(key)?.as_f64()
    }

    pub fn setting_str(&self, key: &str) -> Option<String> {
        self.setting(key)?.as_str().map(str::to_owned)
    }

    pub fn seed(&self) -> Option<u64> {
        self.setting("seed")?.as_u64()
    }

    /// CFGNorm strength: `Some(None)` when the settings say there is none (`null`), `None` when
    /// the settings do not say.
    pub fn cfgnorm(&self) -> Option<Option<f64>> {
        match self.setting("cfgnorm")? {
            Value::Null => Some(None),
            v => v.as_f64().map(Some),
        }
    }

    /// The timestep multiplier of the model sampling (1 = ModelSamplingAuraFlow, the default).
    pub fn multiplier(&self) -> f64 {
        self.setting_f64("multiplier").unwrap_or(1.0)
    }

    /// Whether the trace records a sampling run (at least one model call), not just outputs.
    pub fn is_run(&self) -> bool {
        self.has(&call_name(0, "x"))
    }

    /// Number of recorded model calls (`call000.x`, `call001.x`, ... without gaps).
    pub fn call_count(&self) -> usize {
        (0..).take_while(|&i| self.has(&call_name(i, "x"))).count()
    }

    /// Number of recorded sampler steps.
    pub fn step_count(&self) -> usize {
        (0..).take_while(|&i| self.has(&step_name(i, "x"))).count()
    }

    /// The step of every call: a step's first call is the one whose `x` equals the step's `x`;
    /// the calls after it (heun's second evaluation) belong to the same step. Calls are assigned
    /// in order, so a trace without steps maps call `i` to step `i`.
    pub fn call_steps(&self) -> Vec<usize> {
        let calls = self.call_count();
        let starts = self.step_first_calls();
        let mut out = Vec::with_capacity(calls);
        let mut step = 0usize;
        for c in 0..calls {
            while starts.get(step + 1).is_some_and(|&s| s.is_some_and(|s| s <= c)) {
                step += 1;
            }
            out.push(if starts.is_empty() { c } else { step });
        }
        out
    }

    /// For every step, the index of the call that evaluated its `x` (None when no call matches).
    pub fn step_first_calls(&self) -> Vec<Option<usize>> {
        let calls = self.call_count();
        let mut next = 0usize;
        let mut out = Vec::new();
        for s in 0..self.step_count() {
            let sx = self.get(&step_name(s, "x"));
            let found = (next..calls).find(|&c| match (sx, self.get(&call_name(c, "x"))) {
                (Some(a), Some(b)) => a.shape == b.shape && a.data[..] == b.data[..],
                _ => false,
            });
            if let Some(c) = found {
                next = c + 1;
            }
            out.push(found);
        }
        out
    }

    /// Each model call's sigma.
    pub fn call_sigmas(&self) -> Vec<f32> {
        (0..self.call_count())
            .map(|i| self.values(&call_name(i, "sigma")).and_then(|v| v.first().copied()).unwrap_or(f32::NAN))
            .collect()
    }

    /// The step sigmas: the `sigmas` tensor when recorded; otherwise each step's first call's
    /// sigma followed by 0 (every ComfyUI scheduler ends at 0). The flag says which.
    pub fn sigmas(&self) -> Option<(Vec<f32>, bool)> {
        if let Some(s) = self.values("sigmas") {
            return Some((s, true));
        }
        let call_sigmas = self.call_sigmas();
        let firsts = self.step_first_calls();
        if firsts.is_empty() || firsts.iter().any(Option::is_none) {
            return None;
        }
        let mut s: Vec<f32> = firsts.iter().map(|c| call_sigmas[c.unwrap()]).collect();
        s.push(0.0);
        Some((s, false))
    }

    /// The final output: `latent_out`, else a file's only tensor, else a ComfyUI `.latent`'s
    /// `latent_tensor` or a `samples` tensor.
    pub fn final_output(&self) -> Option<&RawTensor> {
        if let Some(t) = self.get("latent_out") {
            return Some(t);
        }
        if !self.is_run() {
            let floats: Vec<&RawTensor> = self.tensors.iter().filter(|t| t.dtype.is_float()).collect();
            if floats.len() == 1 {
                return Some(floats[0]);
            }
        }
        self.get("latent_tensor").or_else(|| self.get("samples"))
    }

    /// The chain's view of this run, for replays. Needs the golden settings keys.
    pub fn recorded_run(&self, device: &Device) -> Result<RecordedRun> {
        let tensors = self
            .tensors
            .iter()
            .filter(|t| t.dtype.is_float() && matches!(Stage::parse(&t.name), Stage::Call(..) | Stage::Step(..) | Stage::LatentIn | Stage::LatentOut))
            .map(|t| NamedTensor { name: t.name.clone(), shape: t.shape.clone(), data: t.to_f32_vec() })
            .collect();
        Ok(RecordedRun::from_tensors(tensors, &self.metadata, device)?)
    }

    /// The `latent_in` LATENT as the chain takes it.
    pub fn latent_in(&self, device: &Device) -> Option<Latent> {
        let t = self.get("latent_in")?;
        let data = TensorData::new(t.to_f32_vec(), t.shape.clone());
        match t.shape.len() {
            4 => Some(Latent::Image(Tensor::from_data(data, device))),
            5 => Some(Latent::Video(Tensor::from_data(data, device))),
            _ => None,
        }
    }

    /// A tensor as a 5-D float32 burn tensor (a 4-D one gains `T = 1`).
    pub fn tensor5(&self, name: &str, device: &Device) -> Option<Tensor<5>> {
        let t = self.get(name)?;
        to_tensor5(&t.to_f32_vec(), &t.shape, device)
    }
}

/// Values of shape `shape` as a 5-D tensor (4-D gains `T = 1` at dim 2).
pub fn to_tensor5(values: &[f32], shape: &[usize], device: &Device) -> Option<Tensor<5>> {
    let shape5: [usize; 5] = match shape.len() {
        5 => shape.try_into().ok()?,
        4 => [shape[0], shape[1], 1, shape[2], shape[3]],
        _ => return None,
    };
    if shape5.iter().product::<usize>() != values.len() {
        return None;
    }
    Some(Tensor::from_data(TensorData::new(values.to_vec(), shape5), device))
}

/// Reads a float tensor back to the host as float32 values.
pub fn host<const D: usize>(t: &Tensor<D>) -> Result<Vec<f32>> {
    t.clone()
        .try_into_vec_as::<f32>()
        .map_err(|e| TraceError::Chain(format!("cannot read a tensor back from the device: {e:?}")))
}
