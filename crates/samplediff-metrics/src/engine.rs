//! Where a comparison runs: the fused host kernel, burn tensors on a device, or a kernel
//! from another crate (samplediff-gpu's fused GPU kernel, which depends on this one).

use std::sync::Arc;

use burn::tensor::Device;
use samplediff_formats::RawTensor;

use crate::fused::{Host, compare_tensors_host};
use crate::options::CompareOptions;
use crate::report::TensorReport;
use crate::{Result, compare_tensors};

/// The two implementations of the metrics. Both give the same report (sums to float64
/// rounding on the CPU; float32 devices to their own precision).
#[derive(Clone, Debug)]
pub enum Engine {
    /// The fused single-read kernel on the CPU's cores: the fast path for files.
    Host(Host),
    /// burn tensor ops on any burn device (GPUs, or the CPU backend as the reference).
    Device(Device),
    /// A comparison implemented elsewhere.
    Custom(Arc<dyn Comparer>),
}

/// One pair compared (B the reference) into the report every engine gives.
pub trait Comparer: Send + Sync + std::fmt::Debug {
    fn compare(&self, a: &RawTensor, b: &RawTensor, opts: &CompareOptions) -> Result<TensorReport>;
}

impl Engine {
    /// The host kernel on every core the machine offers.
    pub fn host() -> Self {
        Engine::Host(Host::default())
    }

    /// Compare one pair (B is the reference).
    pub fn compare(&self, a: &RawTensor, b: &RawTensor, opts: &CompareOptions) -> Result<TensorReport> {
        match self {
            Engine::Host(host) => compare_tensors_host(a, b, opts, host),
            Engine::Device(device) => compare_tensors(a, b, device, opts),
            Engine::Custom(c) => c.compare(a, b, opts),
        }
    }
}

impl From<Device> for Engine {
    fn from(device: Device) -> Self {
        Engine::Device(device)
    }
}
