//! The first divergence walk: along the model calls, the first stage whose inputs are
//! bit-identical on both sides but whose output is not.

use crate::names::call_name;
use crate::numeric::{bit_equal, rel_rms, value_equal};
use crate::trace::Trace;

/// Where the two runs first part, by what kind of stage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    /// Every call and the output agree.
    None,
    /// The first model call's `x` differs: noise, latent or first sigma.
    InitialState,
    /// Same `x` and sigma but the conditioning tensors differ.
    Conditioning { call: usize },
    /// Same `x` but another sigma.
    Sigma { call: usize },
    /// Same `x`, sigma and conditioning; different per-side predictions.
    Model { call: usize, rel: f64 },
    /// Same predictions; different post-CFG `denoised`.
    Guidance { call: usize },
    /// Call `call - 1` agreed entirely, call `call`'s `x` differs: the sampler's update.
    Update { call: usize },
    /// All common calls agree but one side made more.
    CallCount { a: usize, b: usize },
    /// All calls agree; `latent_out` differs.
    Output,
}

fn same(a: &Trace, b: &Trace, name: &str) -> Option<bool> {
    Some(bit_equal(&a.values(name)?, &b.values(name)?))
}

/// Conditioning tensors equal (both absent counts as equal).
pub(crate) fn conditioning_equal(a: &Trace, b: &Trace) -> bool {
    ["positive", "negative"].iter().all(|n| match (a.values(n), b.values(n)) {
        (Some(x), Some(y)) => value_equal(&x, &y),
        (None, None) => true,
        _ => false,
    })
}

/// Walks the calls of two runs.
pub(crate) fn first_event(a: &Trace, b: &Trace) -> Event {
    let cond_equal = conditioning_equal(a, b);
    let (na, nb) = (a.call_count(), b.call_count());
    for k in 0..na.min(nb) {
        if same(a, b, &call_name(k, "x")) != Some(true) {
            return if k == 0 { Event::InitialState } else { Event::Update { call: k } };
        }
        if same(a, b, &call_name(k, "sigma")) != Some(true) {
            return Event::Sigma { call: k };
        }
        if !cond_equal {
            return Event::Conditioning { call: k };
        }
        let preds = ["cond_denoised", "uncond_denoised"];
        if preds.iter().any(|f| same(a, b, &call_name(k, f)) == Some(false)) {
            let rel = preds
                .iter()
                .filter_map(|f| Some(rel_rms(&a.values(&call_name(k, f))?, &b.values(&call_name(k, f))?)))
                .fold(0.0, f64::max);
            return Event::Model { call: k, rel };
        }
        if same(a, b, &call_name(k, "denoised")) != Some(true) {
            return Event::Guidance { call: k };
        }
    }
    if na != nb {
        return Event::CallCount { a: na, b: nb };
    }
    match same(a, b, "latent_out") {
        Some(false) => Event::Output,
        _ => Event::None,
    }
}
