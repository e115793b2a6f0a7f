//! [`TraceRecorder`]: plugs into the chain's KSampler as its [`Observer`] and collects what a
//! trace holds, so any run of the chain (the CLI, the Python package, a test) can write one.
//!
//! ```ignore
//! let mut rec = TraceRecorder::new("samplediff 0.1.0");
//! rec.settings([("seed", json!(1)), ("sampler", json!("euler")), ...]);
//! rec.tensor("positive", &positive)?; rec.tensor("latent_in", &latent)?; rec.tensor("noise", &noise)?;
//! rec.sigmas(&sigmas);
//! let out = ksampler.sample(&mut denoiser, &latent, InitialNoise::Tensor(noise), &sigmas,
//!                           Hooks { observer: Some(&mut rec), noise_sampler: None })?;
//! rec.tensor("latent_out", &out_5d)?;
//! let trace = rec.finish()?;
//! ```

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use samplediff_chain::ksampler::{CallInfo, Observer};
use samplediff_chain::sampler::StepInfo;
use samplediff_formats::RawTensor;
use serde_json::Value;

use crate::error::{Result, TraceError};
use crate::manifest::{CondEntry, Conditioning, Manifest};
use crate::names::{call_name, step_name};
use crate::trace::{Trace, host};

/// Collects a run's tensors, settings and manifest.
pub struct TraceRecorder {
    settings: BTreeMap<String, Value>,
    manifest: Manifest,
    tensors: Vec<RawTensor>,
    /// The first failure inside an observer callback (callbacks cannot return errors).
    error: Option<TraceError>,
}

impl TraceRecorder {
    /// A recorder whose manifest names `tool` as the writer.
    pub fn new(tool: impl Into<String>) -> Self {
        Self { settings: BTreeMap::new(), manifest: Manifest::new(tool), tensors: Vec::new(), error: None }
    }

    /// Sets one setting (stored JSON-encoded, like the golden files).
    pub fn setting(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.settings.insert(key.into(), value.into());
        self
    }

    /// Sets several settings.
    pub fn settings<K: Into<String>>(&mut self, entries: impl IntoIterator<Item = (K, Value)>) -> &mut Self {
        for (k, v) in entries {
            self.settings.insert(k.into(), v);
        }
        self
    }

    /// The manifest, to fill in environment and model fingerprints.
    pub fn manifest_mut(&mut self) -> &mut Manifest {
        &mut self.manifest
    }

    /// Records a tensor under `name` as float32 values.
    pub fn tensor<const D: usize>(&mut self, name: &str, t: &Tensor<D>) -> Result<&mut Self> {
        let values = host(t)?;
        self.push(RawTensor::from_f32(name, t.dims().to_vec(), &values));
        Ok(self)
    }

    /// Records a tensor already on the host.
    pub fn raw(&mut self, t: RawTensor) -> &mut Self {
        self.push(t);
        self
    }

    /// Records the sigma schedule as the `sigmas` tensor.
    pub fn sigmas(&mut self, sigmas: &[f32]) -> &mut Self {
        self.push(RawTensor::from_f32("sigmas", vec![sigmas.len()], sigmas));
        self
    }

    /// Records one side's conditioning: the tensor under `positive`/`negative` and its dict
    /// (ComfyUI's `[[tensor, meta]]`) in the manifest.
    pub fn conditioning(&mut self, side: Side, t: &Tensor<3>, meta: Value) -> Result<&mut Self> {
        let name = side.name();
        self.tensor(name, t)?;
        let cond = self.manifest.conditioning.get_or_insert_with(Conditioning::default);
        let entry = CondEntry { tensor: name.into(), meta };
        match side {
            Side::Positive => cond.positive = vec![entry],
            Side::Negative => cond.negative = vec![entry],
        }
        Ok(self)
    }

    /// What has been recorded so far, as a trace (the recorder keeps going).
    pub fn snapshot(&self) -> Result<Trace> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        Trace::from_parts(&self.settings, Some(self.manifest.clone()), self.tensors.clone())
    }

    /// The finished trace; fails if a callback could not read a tensor back.
    pub fn finish(self) -> Result<Trace> {
        if let Some(e) = self.error {
            return Err(e);
        }
        Trace::from_parts(&self.settings, Some(self.manifest), self.tensors)
    }

    fn push(&mut self, t: RawTensor) {
        self.tensors.retain(|old| old.name != t.name);
        self.tensors.push(t);
    }

    fn record(&mut self, name: String, t: &Tensor<5>) {
        if self.error.is_some() {
            return;
        }
        match host(t) {
            Ok(v) => self.push(RawTensor::from_f32(name, t.dims().to_vec(), &v)),
            Err(e) => self.error = Some(e),
        }
    }
}

/// A conditioning side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Positive,
    Negative,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Positive => "positive",
            Side::Negative => "negative",
        }
    }
}

impl Observer for TraceRecorder {
    fn on_step(&mut self, step: &StepInfo<'_>) {
        self.record(step_name(step.i, "x"), step.x);
        self.record(step_name(step.i, "denoised"), step.denoised);
    }

    fn on_call(&mut self, call: &CallInfo<'_>) {
        let i = call.index;
        self.record(call_name(i, "x"), call.x);
        self.push(RawTensor::from_f32(call_name(i, "sigma"), vec![1], &[call.sigma]));
        self.record(call_name(i, "cond_denoised"), call.cond_denoised);
        self.record(call_name(i, "uncond_denoised"), call.uncond_denoised);
        self.record(call_name(i, "denoised"), call.denoised);
    }
}
