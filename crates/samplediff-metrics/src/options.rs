/// Knobs of a comparison. `Default` gives torch's tolerances, the 1e-3·RMS(b) relative floor
/// and the ten worst elements.
#[derive(Clone, Debug, PartialEq)]
pub struct CompareOptions {
    /// Absolute tolerance; `None` = torch.testing.assert_close's default for the dtypes.
    pub atol: Option<f64>,
    /// Relative tolerance; `None` = torch's default for the dtypes.
    pub rtol: Option<f64>,
    /// Floor of the denominator of `*_rel_floored`; `None` = 1e-3 × RMS(b).
    pub rel_floor: Option<f64>,
    /// How many worst elements to list.
    pub top_k: usize,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self { atol: None, rtol: None, rel_floor: None, top_k: 10 }
    }
}

/// Relative floor used when none is given: this fraction of RMS(b).
pub const DEFAULT_REL_FLOOR_FRACTION: f64 = 1e-3;
