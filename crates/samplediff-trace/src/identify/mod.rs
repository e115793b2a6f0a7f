//! What one side of a comparison did, identified by recomputing it with the chain.
//!
//! Each identifier answers one question about a single trace — which noise, which schedule,
//! which guidance, which sampler, which output convention reproduce what it recorded — trying
//! the trace's own settings first and the other side's settings next (the usual suspects), then
//! a wider search. Because each side is identified on its own, a difference is found even when
//! the two trajectories parted long before (when "first identical inputs" checks see nothing).

pub mod guidance;
pub mod noise;
pub mod output;
pub mod sampler;
pub mod schedule;

pub use guidance::{GuidanceId, identify_guidance};
pub use noise::{NoiseId, NoiseSource, identify_noise, initial_noise};
pub use output::{Convention, OutputId, identify_output};
pub use sampler::{SamplerId, identify_sampler};
pub use schedule::{ScheduleId, identify_schedule};

/// Pushes `v` unless already present.
pub(crate) fn push_unique<T: PartialEq>(list: &mut Vec<T>, v: T) {
    if !list.contains(&v) {
        list.push(v);
    }
}
