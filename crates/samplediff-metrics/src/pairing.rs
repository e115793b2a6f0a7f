//! File-level comparison: which tensor of A goes with which of B, and the summary.

use std::collections::BTreeSet;

use samplediff_formats::TensorFile;

use crate::compare::pair_name;
use crate::engine::Engine;
use crate::options::CompareOptions;
use crate::report::{CompareReport, RankEntry, Status, Summary, TensorReport, Verdict};
use crate::{MetricsError, Result};

/// Parse one `--pair NAME_A=NAME_B` (split at the first `=`).
pub fn parse_pair(spec: &str) -> Result<(String, String)> {
    match spec.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
        _ => Err(MetricsError::new(format!("--pair '{spec}': expected NAME_A=NAME_B"))),
    }
}

/// Decide the pairs, in report order: explicit `pairs` first claim their tensors; if neither
/// side was given pairs and each file holds exactly one tensor, those two go together whatever
/// their names; the rest pair by equal name. Returns (index in A, index in B) options.
pub fn match_tensors(
    a: &TensorFile,
    b: &TensorFile,
    pairs: &[(String, String)],
) -> Result<Vec<(Option<usize>, Option<usize>)>> {
    let find = |f: &TensorFile, side: &str, name: &str| {
        f.tensors.iter().position(|t| t.name == name).ok_or_else(|| {
            let names: Vec<&str> = f.names().collect();
            MetricsError::new(format!("--pair: file {side} has no tensor '{name}' (it has: {})", names.join(", ")))
        })
    };
    let mut b_for_a: Vec<Option<usize>> = vec![None; a.tensors.len()];
    let mut used_b = BTreeSet::new();
    for (na, nb) in pairs {
        let (ia, ib) = (find(a, "A", na)?, find(b, "B", nb)?);
        if b_for_a[ia].is_some() || !used_b.insert(ib) {
            return Err(MetricsError::new(format!("--pair {na}={nb}: a tensor is paired twice")));
        }
        b_for_a[ia] = Some(ib);
    }
    if pairs.is_empty() && a.tensors.len() == 1 && b.tensors.len() == 1 {
        b_for_a[0] = Some(0);
        used_b.insert(0);
    }
    for (ia, t) in a.tensors.iter().enumerate() {
        if b_for_a[ia].is_some() {
            continue;
        }
        if let Some(ib) = b.tensors.iter().position(|u| u.name == t.name).filter(|ib| !used_b.contains(ib)) {
            b_for_a[ia] = Some(ib);
            used_b.insert(ib);
        }
    }
    let mut out: Vec<(Option<usize>, Option<usize>)> =
        b_for_a.into_iter().enumerate().map(|(ia, ib)| (Some(ia), ib)).collect();
    out.extend((0..b.tensors.len()).filter(|ib| !used_b.contains(ib)).map(|ib| (None, Some(ib))));
    Ok(out)
}

/// Compare every tensor of `a` with its partner in the reference `b`, tensor by tensor (so
/// memory holds one pair's working set, whatever the files' size).
pub fn compare_files(
    a: &TensorFile,
    b: &TensorFile,
    pairs: &[(String, String)],
    engine: &Engine,
    opts: &CompareOptions,
) -> Result<CompareReport> {
    let mut tensors = Vec::new();
    for (ia, ib) in match_tensors(a, b, pairs)? {
        let report = match (ia, ib) {
            (Some(ia), Some(ib)) => {
                let (ta, tb) = (&a.tensors[ia], &b.tensors[ib]);
                let report = engine
                    .compare(ta, tb, opts)
                    .map_err(|e| MetricsError::new(format!("{}: {e}", pair_name(&ta.name, &tb.name))))?;
                // A memory-mapped file's pages of this pair are not needed again.
                ta.data.release();
                tb.data.release();
                report
            }
            (Some(ia), None) => {
                let t = &a.tensors[ia];
                let mut r = TensorReport::unmatched(t.name.clone(), Status::OnlyInA);
                r.name_a = Some(t.name.clone());
                r.shape_a = Some(t.shape.clone());
                r.dtype_a = Some(t.dtype.name().into());
                r.message = Some("only in A".into());
                r
            }
            (None, Some(ib)) => {
                let t = &b.tensors[ib];
                let mut r = TensorReport::unmatched(t.name.clone(), Status::OnlyInB);
                r.name_b = Some(t.name.clone());
                r.shape_b = Some(t.shape.clone());
                r.dtype_b = Some(t.dtype.name().into());
                r.message = Some("only in B".into());
                r
            }
            (None, None) => unreachable!("match_tensors never yields an empty pair"),
        };
        tensors.push(report);
    }
    Ok(assemble(tensors))
}

/// Verdict and summary over per-tensor reports.
pub fn assemble(tensors: Vec<TensorReport>) -> CompareReport {
    let count = |s: Status| tensors.iter().filter(|t| t.status == s).count();
    let compared: Vec<&TensorReport> = tensors.iter().filter(|t| t.status == Status::Compared).collect();
    let mut ranking: Vec<RankEntry> = compared
        .iter()
        .map(|t| RankEntry {
            name: t.name.clone(),
            rel_rmse: rel_rmse(t),
            max_abs: t.max_abs,
            mismatched: t.mismatched,
            values_match: t.values_match,
        })
        .collect();
    let key = |e: &RankEntry| e.rel_rmse.unwrap_or(if e.mismatched.unwrap_or(0) > 0 { f64::INFINITY } else { 0.0 });
    ranking.sort_by(|x, y| key(y).total_cmp(&key(x)).then(y.mismatched.cmp(&x.mismatched)).then(x.name.cmp(&y.name)));
    let summary = Summary {
        compared: compared.len(),
        matching: compared.iter().filter(|t| t.values_match).count(),
        only_in_a: count(Status::OnlyInA),
        only_in_b: count(Status::OnlyInB),
        shape_mismatch: count(Status::ShapeMismatch),
        ranking,
    };
    let all_match = tensors.iter().all(|t| t.status == Status::Compared && t.values_match);
    CompareReport { verdict: if all_match { Verdict::Match } else { Verdict::Mismatch }, tensors, summary }
}

/// rmse / RMS(b); `None` when b is all zeros (or nothing was measured).
fn rel_rmse(t: &TensorReport) -> Option<f64> {
    let (rmse, rms_b) = (t.rmse?, t.rms_b?);
    (rms_b > 0.0).then(|| rmse / rms_b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use samplediff_formats::RawTensor;

    fn file(names: &[&str]) -> TensorFile {
        TensorFile {
            tensors: names.iter().map(|n| RawTensor::from_f32(*n, vec![1], &[1.0])).collect(),
            metadata: Default::default(),
        }
    }

    #[test]
    fn single_tensors_pair_regardless_of_name() {
        assert_eq!(match_tensors(&file(&["x"]), &file(&["y"]), &[]).unwrap(), vec![(Some(0), Some(0))]);
    }

    #[test]
    fn names_then_leftovers_in_file_order() {
        let m = match_tensors(&file(&["a", "b", "c"]), &file(&["c", "d", "a"]), &[]).unwrap();
        assert_eq!(m, vec![(Some(0), Some(2)), (Some(1), None), (Some(2), Some(0)), (None, Some(1))]);
    }

    #[test]
    fn explicit_pairs_win_and_unknown_names_are_errors() {
        let pairs = vec![("b".to_string(), "d".to_string())];
        let m = match_tensors(&file(&["a", "b"]), &file(&["d", "a"]), &pairs).unwrap();
        assert_eq!(m, vec![(Some(0), Some(1)), (Some(1), Some(0))]);
        let bad = vec![("zz".to_string(), "d".to_string())];
        let e = match_tensors(&file(&["a"]), &file(&["d"]), &bad).unwrap_err();
        assert!(e.0.contains("file A has no tensor 'zz'"), "{e}");
        assert!(parse_pair("noequals").is_err());
        assert_eq!(parse_pair("x=y=z").unwrap(), ("x".into(), "y=z".into()));
    }
}
