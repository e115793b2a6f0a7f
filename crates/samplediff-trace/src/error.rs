//! One error type for the crate: a one-line message a person can act on.

/// Why a trace could not be read, written, compared, explained or verified.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TraceError {
    /// The file is not a trace we can use (missing tensor, bad manifest, bad shape).
    #[error("trace: {0}")]
    Invalid(String),
    /// The sampling chain refused a recomputation.
    #[error("chain: {0}")]
    Chain(String),
    /// The metrics refused a comparison.
    #[error("metrics: {0}")]
    Metrics(String),
}

impl TraceError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}

impl From<samplediff_chain::error::ChainError> for TraceError {
    fn from(e: samplediff_chain::error::ChainError) -> Self {
        Self::Chain(e.to_string())
    }
}

impl From<samplediff_metrics::MetricsError> for TraceError {
    fn from(e: samplediff_metrics::MetricsError) -> Self {
        Self::Metrics(e.to_string())
    }
}

impl From<samplediff_formats::FormatError> for TraceError {
    fn from(e: samplediff_formats::FormatError) -> Self {
        Self::Invalid(e.to_string())
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = TraceError> = std::result::Result<T, E>;
