//! Tensor names of a trace, and the order in which ComfyUI's chain produces them.
//!
//! A trace names every tensor by stage and step: `positive`, `negative`, `latent_in`, `noise`,
//! `sigmas`, `stepNNN.{x,denoised}`, `callNNN.{x,sigma,cond_denoised,uncond_denoised,denoised}`,
//! `latent_out`. [`Stage`] parses a name and [`Stage::order_key`] sorts tensors into execution
//! order, which is what `diff` walks and what "earliest" means in `explain`.

use std::cmp::Ordering;

/// Field names of a model call, in the order ComfyUI produces them.
pub const CALL_FIELDS: [&str; 5] = ["x", "sigma", "cond_denoised", "uncond_denoised", "denoised"];
/// Field names of a sampler step.
pub const STEP_FIELDS: [&str; 2] = ["x", "denoised"];

/// Where a tensor sits in a sampling run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// Positive conditioning tensor.
    Positive,
    /// Negative conditioning tensor.
    Negative,
    /// The LATENT given to KSampler.
    LatentIn,
    /// The initial noise (`prepare_noise`).
    Noise,
    /// The sigma schedule.
    Sigmas,
    /// `stepNNN.<field>`: what the sampler callback saw at step NNN.
    Step(usize, String),
    /// `callNNN.<field>`: one model call (post-CFG view).
    Call(usize, String),
    /// KSampler's output LATENT.
    LatentOut,
    /// Anything else (kept, compared last, in name order).
    Other(String),
}

impl Stage {
    /// Parses a tensor name.
    pub fn parse(name: &str) -> Stage {
        match name {
            "positive" => return Stage::Positive,
            "negative" => return Stage::Negative,
            "latent_in" => return Stage::LatentIn,
            "noise" => return Stage::Noise,
            "sigmas" => return Stage::Sigmas,
            "latent_out" => return Stage::LatentOut,
            _ => {}
        }
        let indexed = |prefix: &str| -> Option<(usize, String)> {
            let rest = name.strip_prefix(prefix)?;
            let (digits, field) = rest.split_once('.')?;
            if digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) || field.is_empty() {
                return None;
            }
            Some((digits.parse().ok()?, field.to_owned()))
        };
        if let Some((i, f)) = indexed("step") {
            return Stage::Step(i, f);
        }
        if let Some((i, f)) = indexed("call") {
            return Stage::Call(i, f);
        }
        Stage::Other(name.to_owned())
    }

    /// The step a tensor belongs to, when it has one. A call's step is not known from its name
    /// alone (heun makes two calls per step); see [`crate::Trace::step_of_call`].
    pub fn step(&self) -> Option<usize> {
        match self {
            Stage::Step(i, _) => Some(*i),
            _ => None,
        }
    }
}

/// Name of step `i`'s `field`.
pub fn step_name(i: usize, field: &str) -> String {
    format!("step{i:03}.{field}")
}

/// Name of model call `i`'s `field`.
pub fn call_name(i: usize, field: &str) -> String {
    format!("call{i:03}.{field}")
}

fn field_rank(fields: &[&str], f: &str) -> usize {
    fields.iter().position(|x| *x == f).unwrap_or(fields.len())
}

/// Sort key in execution order: inputs, then the run (calls and steps interleaved by index, a
/// step's `x` before its calls, its `denoised` after them), then the output, then unknown names.
/// `call_step` maps a call index to its step (identity when unknown).
pub fn order_key(stage: &Stage, call_step: &dyn Fn(usize) -> usize) -> (u8, usize, u8, usize, String) {
    match stage {
        Stage::Positive => (0, 0, 0, 0, String::new()),
        Stage::Negative => (0, 1, 0, 0, String::new()),
        Stage::LatentIn => (0, 2, 0, 0, String::new()),
        Stage::Noise => (0, 3, 0, 0, String::new()),
        Stage::Sigmas => (0, 4, 0, 0, String::new()),
        Stage::Step(i, f) if f == "x" => (1, *i, 0, 0, String::new()),
        Stage::Call(i, f) => (1, call_step(*i), 1, i * 8 + field_rank(&CALL_FIELDS, f), f.clone()),
        Stage::Step(i, f) => (1, *i, 2, field_rank(&STEP_FIELDS, f), f.clone()),
        Stage::LatentOut => (2, 0, 0, 0, String::new()),
        Stage::Other(n) => (3, 0, 0, 0, n.clone()),
    }
}

/// Compares two names in execution order.
pub fn cmp_names(a: &str, b: &str, call_step: &dyn Fn(usize) -> usize) -> Ordering {
    order_key(&Stage::parse(a), call_step).cmp(&order_key(&Stage::parse(b), call_step))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(Stage::parse("step004.x"), Stage::Step(4, "x".into()));
        assert_eq!(Stage::parse("call012.uncond_denoised"), Stage::Call(12, "uncond_denoised".into()));
        assert_eq!(Stage::parse("stepx.x"), Stage::Other("stepx.x".into()));
        assert_eq!(Stage::parse("latent_out"), Stage::LatentOut);
    }

    #[test]
    fn execution_order() {
        let id = |i: usize| i;
        let mut names = vec!["latent_out", "step001.x", "call001.denoised", "step000.denoised", "call000.x", "positive", "step000.x"];
        names.sort_by(|a, b| cmp_names(a, b, &id));
        assert_eq!(
            names,
            vec!["positive", "step000.x", "call000.x", "step000.denoised", "step001.x", "call001.denoised", "latent_out"]
        );
    }
}
