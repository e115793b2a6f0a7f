//! Difference metrics (issue 2).
