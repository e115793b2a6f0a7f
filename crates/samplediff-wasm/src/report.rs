//! The compare report: the core's own [`compare_files`] with the CLI's CPU engine (the fused
//! host kernel, one thread here), so the JSON is the CLI's `compare --json`, byte for byte, for
//! the same files and options (the kernel's result does not depend on its thread count).

use samplediff_formats::TensorFile;
use samplediff_metrics::{CompareOptions, CompareReport, Engine, compare_files, parse_pair};
use serde::Deserialize;

/// The knobs of `samplediff compare`, as a JavaScript object (every field optional):
/// `{ atol, rtol, relFloor, topK, pairs: ["nameA=nameB", ...] }`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Options {
    pub atol: Option<f64>,
    pub rtol: Option<f64>,
    pub rel_floor: Option<f64>,
    pub top_k: Option<usize>,
    #[serde(default)]
    pub pairs: Vec<String>,
}

impl Options {
    fn core(&self) -> Result<(CompareOptions, Vec<(String, String)>), String> {
        let defaults = CompareOptions::default();
        let o = CompareOptions {
            atol: self.atol,
            rtol: self.rtol,
            rel_floor: self.rel_floor,
            top_k: self.top_k.unwrap_or(defaults.top_k),
        };
        for (what, v) in [("atol", o.atol), ("rtol", o.rtol), ("relFloor", o.rel_floor)] {
            if v.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                return Err(format!("option {what} must be a finite number >= 0"));
            }
        }
        let pairs = self.pairs.iter().map(|p| parse_pair(p).map_err(|e| e.to_string())).collect::<Result<_, _>>()?;
        Ok((o, pairs))
    }
}

/// Compare every tensor of `a` with its partner in the reference `b`.
pub fn compare(a: &TensorFile, b: &TensorFile, options: &Options) -> Result<CompareReport, String> {
    let (opts, pairs) = options.core()?;
    compare_files(a, b, &pairs, &Engine::host(), &opts).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use samplediff_formats::RawTensor;

    fn file(values: &[f32]) -> TensorFile {
        TensorFile { tensors: vec![RawTensor::from_f32("x", vec![values.len()], values)], metadata: Default::default() }
    }

    #[test]
    fn report_is_the_cores_own() {
        let (a, b) = (file(&[1.0, 2.0, 3.5]), file(&[1.0, 2.5, 3.0]));
        let ours = compare(&a, &b, &Options::default()).unwrap().to_json();
        let core = compare_files(&a, &b, &[], &Engine::host(), &CompareOptions::default()).unwrap().to_json();
        assert_eq!(ours, core);
        assert!(ours.contains("\"verdict\": \"mismatch\""), "{ours}");
    }

    #[test]
    fn options_reach_the_core_and_bad_ones_are_errors() {
        let (a, b) = (file(&[1.0, 2.0]), file(&[1.0, 2.5]));
        let loose = Options { atol: Some(1.0), ..Default::default() };
        assert!(compare(&a, &b, &loose).unwrap().to_json().contains("\"verdict\": \"match\""));
        let bad = Options { rtol: Some(-1.0), ..Default::default() };
        assert_eq!(compare(&a, &b, &bad).unwrap_err(), "option rtol must be a finite number >= 0");
        let pair = Options { pairs: vec!["nope".into()], ..Default::default() };
        assert!(compare(&a, &b, &pair).unwrap_err().contains("expected NAME_A=NAME_B"));
    }
}
