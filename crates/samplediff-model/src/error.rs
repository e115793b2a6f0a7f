//! The model crate's one error type: every failure is a one-line message.

use samplediff_chain::lora::LoraError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The checkpoint lacks a tensor the architecture needs, or holds one of the wrong shape.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The caller's inputs do not fit the model (shapes, RoPE axes, dtypes).
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error(transparent)]
    Lora(#[from] LoraError),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

pub(crate) fn checkpoint(msg: impl Into<String>) -> ModelError {
    ModelError::Checkpoint(msg.into())
}

pub(crate) fn invalid(msg: impl Into<String>) -> ModelError {
    ModelError::Invalid(msg.into())
}
