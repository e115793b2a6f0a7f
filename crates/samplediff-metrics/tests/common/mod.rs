//! Holding the two engines' reports against each other.

use samplediff_metrics::TensorReport;
use serde_json::Value;

/// The two reports say the same: counts, shapes, order statistics and extremes exactly; sums
/// (summed in different orders) to float64 rounding. The worst elements' errors must be equal;
/// their indices too, except among equal errors (the device sort's tie order is its own).
pub fn assert_equivalent(host: &TensorReport, device: &TensorReport) {
    let (mut h, mut d) = (serde_json::to_value(host).unwrap(), serde_json::to_value(device).unwrap());
    let (wh, wd) = (h["worst"].take(), d["worst"].take());
    // (An infinite error is `null` in JSON.)
    let abs = |w: &Value| w.as_array().unwrap().iter().map(|e| e["abs"].as_f64()).collect::<Vec<_>>();
    assert_eq!(abs(&wh), abs(&wd), "{}: worst errors differ", host.name);
    let ah = abs(&wh);
    for (i, (x, y)) in wh.as_array().unwrap().iter().zip(wd.as_array().unwrap()).enumerate() {
        let tied = ah.iter().filter(|&&v| v == ah[i]).count() > 1;
        if !tied {
            assert_eq!(x, y, "{}: worst element {i}", host.name);
        }
    }
    same(&h, &d, &host.name);
}

fn same(x: &Value, y: &Value, path: &str) {
    match (x, y) {
        (Value::Object(a), Value::Object(b)) => {
            assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{path}");
            for (k, v) in a {
                if k == "shift" && v.is_f64() && b[k].is_f64() {
                    // mean_b - scale * mean_a: a difference of terms the size of mean_b, so
                    // its rounding is relative to them, not to the (possibly tiny) result.
                    let (s, t, m) = (v.as_f64().unwrap(), b[k].as_f64().unwrap(), a["mean_b"].as_f64().unwrap());
                    let tol = 1e-11 * (m.abs() + s.abs()) + 1e-14;
                    assert!((s - t).abs() <= tol, "{path}.shift: host {s:e} vs device {t:e}");
                    continue;
                }
                same(v, &b[k], &format!("{path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: lengths");
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                same(v, w, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            let tol = 1e-11 * a.abs().max(b.abs()) + 1e-14;
            assert!((a - b).abs() <= tol, "{path}: host {a:e} vs device {b:e}");
        }
        _ => assert_eq!(x, y, "{path}"),
    }
}
