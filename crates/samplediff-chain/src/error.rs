//! The one error type of the sampling chain: every failure is a one-line message a person can act on.

/// Why a chain operation could not run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChainError {
    /// The caller passed something the chain cannot work with (a shape, a name, a setting).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The model (a [`crate::denoiser::Denoiser`]) failed or answered with something unusable.
    #[error("model: {0}")]
    Model(String),
    /// A recorded trace lacks something a replay needs, or holds it in the wrong form.
    #[error("recorded trace: {0}")]
    Trace(String),
}

impl ChainError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}

/// Shorthand used across the chain.
pub type Result<T, E = ChainError> = std::result::Result<T, E>;
