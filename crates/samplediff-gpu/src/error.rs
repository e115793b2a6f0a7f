//! One-line errors: bad input is reported, never panicked on.

/// Why a GPU pass could not run.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter (GPU or software rasteriser) was found.
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The adapter would not open a device with the limits the kernel needs.
    #[error("the GPU device could not be opened: {0}")]
    Device(String),
    /// The inputs cannot be compared by this kernel (dtype, sizes, buffer usage).
    #[error("{0}")]
    Input(String),
    /// This comparison is not one the GPU kernels make exactly (other or mixed dtypes, latents
    /// of more than 4096 runs, more tiny or tied values than the host is sent, boundary pairs
    /// on a GPU without f64): the caller should compare elsewhere.
    #[error("not on the GPU: {0}")]
    Unsupported(String),
    /// The GPU refused the work (out of memory, validation) or lost the device.
    #[error("the GPU refused the work: {0}")]
    Gpu(String),
}

pub type Result<T> = std::result::Result<T, GpuError>;
