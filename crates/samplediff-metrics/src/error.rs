use std::fmt;

/// A comparison that could not be made (bad tensor layout, unknown `--pair` name, device
/// failure). One line naming what and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsError(pub String);

impl MetricsError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MetricsError {}

impl From<samplediff_tensor::TensorError> for MetricsError {
    fn from(e: samplediff_tensor::TensorError) -> Self {
        Self(e.0)
    }
}

pub type Result<T> = std::result::Result<T, MetricsError>;
