use std::fmt;

/// Why a tensor could not cross the bridge. One line, naming the tensor and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorError(pub String);

impl TensorError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for TensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TensorError {}

pub type Result<T> = std::result::Result<T, TensorError>;
