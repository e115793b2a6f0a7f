//! Everything known about one side of a comparison: the identifications of [`crate::identify`]
//! and the trace's rounding floor, computed once and shared by `diff`, `explain` and `verify`.

use burn::tensor::Device;
use samplediff_chain::model_sampling::ModelSampling;
use samplediff_chain::sampler::Sampler;

use crate::identify::{
    GuidanceId, NoiseId, OutputId, SamplerId, ScheduleId, identify_guidance, identify_noise, identify_output,
    identify_sampler, identify_schedule,
};
use crate::rounding::{RoundingFloor, measure};
use crate::trace::Trace;

/// One side, identified.
pub struct SideAnalysis {
    pub noise: Option<NoiseId>,
    pub schedule: Option<ScheduleId>,
    pub guidance: Option<GuidanceId>,
    pub sampler: Option<SamplerId>,
    pub output: Option<OutputId>,
    /// The complete sigma schedule the other identifications used.
    pub sigmas: Option<Vec<f32>>,
    pub floor: RoundingFloor,
}

impl SideAnalysis {
    /// Identifies `trace`, with `other`'s settings as the first alternative candidates.
    pub fn of(trace: &Trace, other: Option<&Trace>, device: &Device) -> Self {
        if !trace.is_run() {
            return Self {
                noise: None,
                schedule: None,
                guidance: None,
                sampler: None,
                output: None,
                sigmas: None,
                floor: RoundingFloor::unmeasured("not measured: no recorded model calls"),
            };
        }
        let noise = identify_noise(trace, other, device);
        let schedule = identify_schedule(trace, other);
        let sigmas = schedule.as_ref().map(|s| s.sigmas.clone()).or_else(|| trace.sigmas().map(|s| s.0));
        let model_sampling = match &schedule {
            Some(s) => ModelSampling::discrete_flow(s.shift, s.multiplier),
            None => ModelSampling::discrete_flow(trace.setting_f64("shift").unwrap_or(1.0), trace.multiplier()),
        };
        let guidance = identify_guidance(trace, other, device);
        let sampler = sigmas.as_deref().and_then(|s| identify_sampler(trace, other, s, &model_sampling, device));
        let last_sigma = sigmas.as_ref().and_then(|s| s.last().copied()).unwrap_or(0.0);
        let samples = sampler.as_ref().filter(|s| s.exact).and_then(|s| s.samples.as_ref());
        let output = identify_output(trace, samples, last_sigma, device);

        let chosen = sampler
            .as_ref()
            .filter(|s| s.exact)
            .map(|s| s.name.clone())
            .or_else(|| trace.setting_str("sampler"))
            .and_then(|n| Sampler::from_name(&n).ok())
            .unwrap_or(Sampler::Euler);
        let spec = guidance.as_ref().and_then(|g| g.spec);
        let floor = match &sigmas {
            Some(s) => measure(trace, chosen, spec, s, &model_sampling, device),
            None => RoundingFloor::unmeasured("not measured: the sigma schedule is unknown"),
        };
        Self { noise, schedule, guidance, sampler, output, sigmas, floor }
    }
}
