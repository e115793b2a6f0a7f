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
//!
//! By default each tensor is read back to the host as it is recorded. [`TraceRecorder::deferred`]
//! keeps them on their device instead and reads them all at the end in one transaction; with
//! [`TraceRecorder::finish_async`] that is how a run on WebGPU in a browser records a trace (its
//! buffers can only be read asynchronously, and a chain callback cannot await).

use std::collections::BTreeMap;

use burn::tensor::{Tensor, TensorData, Transaction};
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
    tensors: Vec<Entry>,
    /// Keep recorded tensors on their device until the trace is finished.
    deferred: bool,
    /// The first failure inside an observer callback (callbacks cannot return errors).
    error: Option<TraceError>,
}

/// One recorded tensor: on the host, or (deferred readback) still on its device, flattened.
// One entry per recorded tensor, dwarfed by the tensor data itself; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Host(RawTensor),
    Device { name: String, shape: Vec<usize>, values: Tensor<1> },
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Host(t) => &t.name,
            Entry::Device { name, .. } => name,
        }
    }
}

impl TraceRecorder {
    /// A recorder whose manifest names `tool` as the writer.
    pub fn new(tool: impl Into<String>) -> Self {
        Self {
            settings: BTreeMap::new(),
            manifest: Manifest::new(tool),
            tensors: Vec::new(),
            deferred: false,
            error: None,
        }
    }

    /// Keeps every tensor recorded from now on on its device, to be read back when the trace is
    /// finished ([`Self::finish_async`] on a device that cannot read synchronously). The tensors
    /// stay in device memory until then.
    pub fn deferred(mut self) -> Self {
        self.deferred = true;
        self
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
        if self.deferred {
            self.push(on_device(name.to_owned(), t));
        } else {
            let values = host(t)?;
            self.push(Entry::Host(RawTensor::from_f32(name, t.dims().to_vec(), &values)));
        }
        Ok(self)
    }

    /// Records a tensor already on the host.
    pub fn raw(&mut self, t: RawTensor) -> &mut Self {
        self.push(Entry::Host(t));
        self
    }

    /// Records the sigma schedule as the `sigmas` tensor.
    pub fn sigmas(&mut self, sigmas: &[f32]) -> &mut Self {
        self.push(Entry::Host(RawTensor::from_f32("sigmas", vec![sigmas.len()], sigmas)));
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

    /// What has been recorded so far, as a trace (the recorder keeps going). Deferred tensors are
    /// read back synchronously.
    pub fn snapshot(&self) -> Result<Trace> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let read = read_sync(self.pending())?;
        Trace::from_parts(&self.settings, Some(self.manifest.clone()), self.resolve(read)?)
    }

    /// The finished trace, deferred tensors read back synchronously; fails if a tensor could not
    /// be read back.
    pub fn finish(self) -> Result<Trace> {
        let read = read_sync(self.pending());
        self.assemble(read)
    }

    /// The finished trace, deferred tensors read back asynchronously in one transaction: what a
    /// device that cannot block (WebGPU in a browser) needs.
    pub async fn finish_async(self) -> Result<Trace> {
        let pending = self.pending();
        let read = if pending.is_empty() {
            Ok(Vec::new())
        } else {
            transaction(pending).execute_async().await.map_err(read_error)
        };
        self.assemble(read)
    }

    /// The device tensors still to read, in recording order.
    fn pending(&self) -> Vec<Tensor<1>> {
        self.tensors
            .iter()
            .filter_map(|e| match e {
                Entry::Device { values, .. } => Some(values.clone()),
                Entry::Host(_) => None,
            })
            .collect()
    }

    /// Every entry as a host tensor, `read` holding the pending ones' data in order.
    fn resolve(&self, read: Vec<TensorData>) -> Result<Vec<RawTensor>> {
        let mut read = read.into_iter();
        self.tensors
            .iter()
            .map(|e| match e {
                Entry::Host(t) => Ok(t.clone()),
                Entry::Device { name, shape, .. } => {
                    let data =
                        read.next().ok_or_else(|| TraceError::Chain("a deferred tensor was not read back".into()))?;
                    let values = data.try_into_vec_as::<f32>().map_err(read_error)?;
                    Ok(RawTensor::from_f32(name.clone(), shape.clone(), &values))
                }
            })
            .collect()
    }

    fn assemble(self, read: Result<Vec<TensorData>>) -> Result<Trace> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let tensors = self.resolve(read?)?;
        Trace::from_parts(&self.settings, Some(self.manifest), tensors)
    }

    fn push(&mut self, t: Entry) {
        self.tensors.retain(|old| old.name() != t.name());
        self.tensors.push(t);
    }

    fn record(&mut self, name: String, t: &Tensor<5>) {
        if self.error.is_some() {
            return;
        }
        if self.deferred {
            self.push(on_device(name, t));
            return;
        }
        match host(t) {
            Ok(v) => self.push(Entry::Host(RawTensor::from_f32(name, t.dims().to_vec(), &v))),
            Err(e) => self.error = Some(e),
        }
    }
}

fn on_device<const D: usize>(name: String, t: &Tensor<D>) -> Entry {
    let shape = t.dims().to_vec();
    Entry::Device { name, values: t.clone().reshape([shape.iter().product::<usize>()]), shape }
}

fn read_sync(pending: Vec<Tensor<1>>) -> Result<Vec<TensorData>> {
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    transaction(pending).try_execute().map_err(read_error)
}

/// One read of every pending tensor (a single submission on a GPU).
fn transaction(pending: Vec<Tensor<1>>) -> Transaction {
    pending.into_iter().fold(Transaction::default(), Transaction::register)
}

fn read_error(e: impl std::fmt::Debug) -> TraceError {
    TraceError::Chain(format!("cannot read a tensor back from the device: {e:?}"))
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
        self.push(Entry::Host(RawTensor::from_f32(call_name(i, "sigma"), vec![1], &[call.sigma])));
        self.record(call_name(i, "cond_denoised"), call.cond_denoised);
        self.record(call_name(i, "uncond_denoised"), call.uncond_denoised);
        self.record(call_name(i, "denoised"), call.denoised);
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use burn::tensor::{Device, TensorData};

    use super::*;

    /// Polls a future that needs no waking (the CPU backend's reads are ready at once).
    fn ready<F: Future>(f: F) -> F::Output {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the CPU backend's read was not ready"),
        }
    }

    fn record(mut rec: TraceRecorder) -> TraceRecorder {
        let device = Device::flex();
        let t = |seed: f32| {
            let v: Vec<f32> = (0..24).map(|i| (i as f32 * seed).sin()).collect();
            Tensor::<5>::from_data(TensorData::new(v, [1, 2, 1, 3, 4]), &device)
        };
        rec.setting("seed", 7);
        rec.tensor("latent_in", &t(0.3)).unwrap();
        rec.sigmas(&[1.0, 0.5, 0.0]);
        rec.on_step(&StepInfo { i: 0, total_steps: 2, sigma: 1.0, sigma_hat: 1.0, x: &t(0.7), denoised: &t(1.1) });
        // Recording a name again replaces it, on the host or on the device alike.
        rec.tensor("latent_in", &t(0.9)).unwrap();
        rec.tensor("latent_out", &t(1.3).narrow(1, 0, 1)).unwrap();
        rec
    }

    fn names_and_bits(trace: &Trace) -> Vec<(String, Vec<usize>, Vec<u8>)> {
        let file = trace.to_file();
        file.tensors.into_iter().map(|t| (t.name, t.shape, t.data.to_vec())).collect()
    }

    #[test]
    fn deferred_readback_records_the_same_trace() {
        let immediate = record(TraceRecorder::new("t")).finish().unwrap();
        let deferred_sync = record(TraceRecorder::new("t").deferred()).finish().unwrap();
        let deferred_async = ready(record(TraceRecorder::new("t").deferred()).finish_async()).unwrap();
        let snapshot = record(TraceRecorder::new("t").deferred()).snapshot().unwrap();
        let want = names_and_bits(&immediate);
        assert_eq!(want.len(), 5, "latent_in, sigmas, step000.x, step000.denoised, latent_out");
        for got in [&deferred_sync, &deferred_async, &snapshot] {
            assert_eq!(names_and_bits(got), want);
            assert_eq!(got.metadata, immediate.metadata);
        }
        assert_eq!(immediate.values("latent_in").unwrap()[1], (0.9f32).sin());
    }
}
