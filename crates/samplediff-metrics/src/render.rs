//! The terminal report: verdict first, then one line per tensor, then details (errors,
//! distribution, worst elements, per-channel fit, hints) for the worst mismatching tensors.

use std::fmt::Write;

use crate::report::{CompareReport, Status, TensorReport, Verdict};

/// How much detail the text report shows.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// Labels of the two sides (file names).
    pub label_a: String,
    pub label_b: String,
    /// Detailed sections for at most this many mismatching tensors (worst first).
    pub max_details: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self { label_a: "A".into(), label_b: "B".into(), max_details: 3 }
    }
}

/// A number in 4 significant digits, plain when moderate, scientific otherwise; "-" for none.
pub fn num(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(v) if v.is_nan() => "-".into(),
        Some(v) if v.is_infinite() => {
            if v > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            }
        }
        Some(0.0) => "0".into(),
        Some(v) if (1e-3..1e5).contains(&v.abs()) => {
            let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
            format!("{v:.digits$}")
        }
        Some(v) => {
            let s = format!("{v:.3e}");
            // Rust writes 5.940e-7; print 5.940e-07 like numpy/torch.
            match s.split_once('e') {
                Some((m, e)) => {
                    let (sign, digits) = if let Some(d) = e.strip_prefix('-') { ("-", d) } else { ("+", e) };
                    format!("{m}e{sign}{digits:0>2}")
                }
                None => s,
            }
        }
    }
}

fn count(x: Option<u64>) -> String {
    x.map_or("-".into(), |v| v.to_string())
}

fn shape(s: &Option<Vec<usize>>) -> String {
    s.as_ref().map_or("-".into(), |s| format!("{s:?}"))
}

fn mark(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

pub fn render(report: &CompareReport, opts: &RenderOptions) -> String {
    let mut o = String::new();
    let s = &report.summary;
    let differing = s.compared - s.matching + s.only_in_a + s.only_in_b + s.shape_mismatch;
    let verdict = match report.verdict {
        Verdict::Match => "MATCH".to_string(),
        Verdict::Mismatch => format!("MISMATCH ({differing} of {} tensors differ)", report.tensors.len()),
    };
    let _ = writeln!(o, "verdict: {verdict}");
    let _ = writeln!(o, "A: {}", opts.label_a);
    let _ = writeln!(o, "B: {} (reference)", opts.label_b);
    let _ = writeln!(o);

    // Overview: one line per tensor.
    let w = report.tensors.iter().map(|t| t.name.len()).max().unwrap_or(6).clamp(6, 48);
    let shape_cell = |t: &TensorReport| match (&t.shape_a, &t.shape_b) {
        (Some(a), Some(b)) if a != b => format!("{a:?} vs {b:?}"),
        (Some(a), _) | (None, Some(a)) => format!("{a:?}"),
        _ => "-".into(),
    };
    let sw = report.tensors.iter().map(|t| shape_cell(t).len()).max().unwrap_or(5).clamp(5, 48);
    let _ = writeln!(
        o,
        "{:<w$}  {:<14} {:<sw$} {:<9} {:>10} {:>10} {:>12}",
        "tensor", "status", "shape", "dtype", "max_abs", "mean_abs", "mismatched"
    );
    for t in &report.tensors {
        let status = match t.status {
            Status::Compared if t.values_match => "match",
            Status::Compared => "MISMATCH",
            Status::OnlyInA => "only in A",
            Status::OnlyInB => "only in B",
            Status::ShapeMismatch => "SHAPE DIFFERS",
        };
        let shp = shape_cell(t);
        let dtype = match (&t.dtype_a, &t.dtype_b) {
            (Some(a), Some(b)) if a != b => format!("{a}/{b}"),
            (Some(a), _) | (None, Some(a)) => a.clone(),
            _ => "-".into(),
        };
        let name: String = if t.name.len() > w { format!("{}~", &t.name[..w - 1]) } else { t.name.clone() };
        let mism = match (t.mismatched, t.numel) {
            (Some(m), Some(n)) => format!("{m}/{n}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            o,
            "{name:<w$}  {status:<14} {shp:<sw$} {dtype:<9} {:>10} {:>10} {mism:>12}",
            num(t.max_abs),
            num(t.mean_abs)
        );
    }

    // Details for the worst mismatching tensors.
    let worst: Vec<&TensorReport> = s
        .ranking
        .iter()
        .filter(|e| !e.values_match)
        .filter_map(|e| report.tensors.iter().find(|t| t.name == e.name))
        .collect();
    for t in worst.iter().take(opts.max_details) {
        let _ = writeln!(o);
        detail(&mut o, t);
    }
    if worst.len() > opts.max_details {
        let _ = writeln!(
            o,
            "\n({} more mismatching tensors; --json lists every metric of every tensor)",
            worst.len() - opts.max_details
        );
    }
    if s.ranking.len() > 1 {
        let _ = writeln!(o, "\nranking by rmse / RMS(b), worst first:");
        for (i, e) in s.ranking.iter().take(10).enumerate() {
            let _ =
                writeln!(o, "  {:>2}. {:<w$} {:>10}  max_abs {:>10}", i + 1, e.name, num(e.rel_rmse), num(e.max_abs));
        }
    }
    o
}

/// The full section of one compared tensor.
pub fn detail(o: &mut String, t: &TensorReport) {
    let _ = writeln!(o, "== {} {} {}", t.name, shape(&t.shape_a), t.dtype_a.as_deref().unwrap_or("-"));
    let _ = writeln!(
        o,
        "  shapes match: {}   dtypes match: {}{}   values match: {}",
        mark(t.shapes_match),
        mark(t.dtypes_match),
        if t.dtypes_match {
            String::new()
        } else {
            format!(" ({} vs {})", t.dtype_a.as_deref().unwrap_or("-"), t.dtype_b.as_deref().unwrap_or("-"))
        },
        mark(t.values_match)
    );
    let _ = writeln!(
        o,
        "  mismatched: {} of {} elements outside |a-b| <= atol {} + rtol {} * |b|",
        count(t.mismatched),
        count(t.numel),
        num(t.atol),
        num(t.rtol)
    );
    let _ = writeln!(
        o,
        "  abs error     max {:>10}   mean {:>10}   rmse {:>10}",
        num(t.max_abs),
        num(t.mean_abs),
        num(t.rmse)
    );
    if let Some(p) = &t.percentiles_abs {
        let _ = writeln!(
            o,
            "                p50 {:>10}    p90 {:>10}    p99 {:>10}   p99.9 {}",
            num(Some(p.p50)),
            num(Some(p.p90)),
            num(Some(p.p99)),
            num(Some(p.p999))
        );
    }
    let _ = writeln!(
        o,
        "  rel error     max {:>10}   mean {:>10}   |a-b|/|b|, {} element(s) with b = 0 left out",
        num(t.max_rel),
        num(t.mean_rel),
        count(t.rel_zero_b)
    );
    let _ = writeln!(
        o,
        "  floored rel   max {:>10}   mean {:>10}   |a-b|/max(|b|, {})",
        num(t.max_rel_floored),
        num(t.mean_rel_floored),
        num(t.rel_floor)
    );
    let snr = match (t.snr_db, t.mismatched) {
        (None, _) if t.max_abs == Some(0.0) => "inf (no error)".to_string(),
        (v, _) => format!("{} dB", num(v)),
    };
    let _ = writeln!(o, "  agreement     cosine {}   pearson {}   SNR {snr}", num(t.cosine), num(t.pearson));
    let _ = writeln!(o, "  scale         RMS(a) {}   RMS(b) {}", num(t.rms_a), num(t.rms_b));
    if let Some(max) = t.ulp_max {
        let _ =
            writeln!(o, "  ulp ({})     max {max}   median {}", t.dtype_a.as_deref().unwrap_or("-"), num(t.ulp_median));
    }
    let _ = writeln!(
        o,
        "  non-finite    NaN a/b {}/{}   Inf a/b {}/{}   NaN position mismatches {}   Inf mismatches {}",
        count(t.nan_a),
        count(t.nan_b),
        count(t.inf_a),
        count(t.inf_b),
        count(t.nan_position_mismatch),
        count(t.inf_mismatch)
    );
    if let Some(h) = &t.histogram {
        let total: u64 = h.zero + h.bins.iter().map(|b| b.count).sum::<u64>();
        let _ = writeln!(o, "  |a-b| histogram ({total} finite pairs):");
        let bar = |c: u64| "#".repeat(((c as f64 / total.max(1) as f64) * 40.0).ceil() as usize);
        if h.zero > 0 {
            let _ = writeln!(o, "    {:>21} {:>9} {}", "= 0", h.zero, bar(h.zero));
        }
        for b in &h.bins {
            let _ = writeln!(o, "    [{:>9}, {:>9}) {:>9} {}", num(Some(b.lo)), num(Some(b.hi)), b.count, bar(b.count));
        }
    }
    if !t.worst.is_empty() {
        let _ = writeln!(o, "  worst elements:");
        let _ = writeln!(o, "    {:<24} {:>12} {:>12} {:>12}", "index", "a", "b", "|a-b|");
        for e in &t.worst {
            let _ = writeln!(
                o,
                "    {:<24} {:>12} {:>12} {:>12}",
                format!("{:?}", e.index),
                num(Some(e.a)),
                num(Some(e.b)),
                num(Some(e.abs))
            );
        }
    }
    if !t.per_channel.is_empty() {
        let _ = writeln!(o, "  per channel (fit b ~ scale*a + shift):");
        let _ = writeln!(
            o,
            "    {:>3} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "ch", "max_abs", "mean_abs", "mean_a", "mean_b", "std_a", "std_b", "scale", "shift", "R^2"
        );
        for c in &t.per_channel {
            let _ = writeln!(
                o,
                "    {:>3} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
                c.channel,
                num(Some(c.max_abs)),
                num(Some(c.mean_abs)),
                num(Some(c.mean_a)),
                num(Some(c.mean_b)),
                num(Some(c.std_a)),
                num(Some(c.std_b)),
                num(c.scale),
                num(c.shift),
                c.r2.map_or("-".into(), |r| format!("{r:.6}"))
            );
        }
    }
    if t.per_frame.len() > 1 {
        let _ = writeln!(o, "  per frame:");
        for f in &t.per_frame {
            let _ = writeln!(
                o,
                "    t={:<4} max_abs {:>10}  mean_abs {:>10}  rmse {:>10}",
                f.frame,
                num(Some(f.max_abs)),
                num(Some(f.mean_abs)),
                num(Some(f.rmse))
            );
        }
    }
    for h in &t.hints {
        let _ = writeln!(o, "  hint: {}", h.message);
    }
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn numbers_read_well() {
        assert_eq!(num(Some(5.94123)), "5.941");
        assert_eq!(num(Some(82600.0)), "82600");
        assert_eq!(num(Some(826000.0)), "8.260e+05");
        assert_eq!(num(Some(1.09)), "1.090");
        assert_eq!(num(Some(2.5e-7)), "2.500e-07");
        assert_eq!(num(Some(0.0)), "0");
        assert_eq!(num(None), "-");
    }
}
