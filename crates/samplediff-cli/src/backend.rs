//! The burn devices a command can run on, by name (`--backend`).

use burn::tensor::Device;
use samplediff_metrics::Engine;

/// Where a command computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// burn's pure-Rust CPU backend (flex): deterministic, float64 available.
    Cpu,
    /// The GPU through burn-wgpu (Vulkan, Metal, DX12; lavapipe on a machine without a GPU).
    #[cfg(feature = "wgpu")]
    Wgpu,
    /// burn-cuda (opt-in `cuda` feature: its build downloads LLVM, so it is off by default).
    #[cfg(feature = "cuda")]
    Cuda,
}

impl Backend {
    pub fn device(self) -> Device {
        match self {
            Backend::Cpu => Device::flex(),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Device::cuda(0),
        }
    }

    /// Where `compare` computes: the fused host kernel on the CPU; on wgpu the fused GPU
    /// kernels (samplediff-gpu), with burn tensors on the same GPU for the pairs they leave
    /// (mixed or other dtypes) or where they cannot open the GPU; burn tensors elsewhere.
    pub fn engine(self) -> Engine {
        match self {
            Backend::Cpu => Engine::host(),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => match samplediff_gpu::GpuMetrics::new() {
                Ok(gpu) => samplediff_gpu::GpuEngine::new(gpu, Engine::Device(self.device())).engine(),
                Err(_) => Engine::Device(self.device()),
            },
            #[allow(unreachable_patterns)]
            other => Engine::Device(other.device()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => "wgpu",
            #[cfg(feature = "cuda")]
            Backend::Cuda => "cuda",
        }
    }

    /// Every backend compiled into this binary.
    pub fn compiled() -> Vec<Backend> {
        <Backend as clap::ValueEnum>::value_variants().to_vec()
    }
}
