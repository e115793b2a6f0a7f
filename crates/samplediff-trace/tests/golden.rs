//! The golden ComfyUI traces as traces: read as they are, verified clean by the reference chain,
//! identical to themselves, and written back without loss.

mod common;

use burn::tensor::Device;
use common::{golden, golden_names};
use samplediff_trace::verify::verify;
use samplediff_trace::{Cause, Trace, explain};

#[test]
fn every_golden_trace_verifies_clean() {
    let device = Device::flex();
    for name in golden_names() {
        let t = golden(&name);
        let v = verify(&t, &device).unwrap();
        for m in &v.mismatches {
            eprintln!("{name}: {}", m.message);
        }
        for s in &v.skipped {
            eprintln!("{name}: skipped {s}");
        }
        assert!(v.clean(), "{name}: {} mismatches", v.mismatches.len());
        assert!(v.checked.len() >= 5, "{name}: too little checked: {:?}", v.checked);
    }
}

/// verify can fail: a golden trace with one step's x nudged by one ulp is caught at that step.
#[test]
fn verify_reports_a_tampered_step() {
    let device = Device::flex();
    let t = golden("wf_euler_simple_cfg3.safetensors");
    let mut file = t.to_file();
    for name in ["call002.x", "step002.x"] {
        let raw = file.tensors.iter_mut().find(|r| r.name == name).unwrap();
        let mut v = raw.to_f32_vec();
        v[7] = f32::from_bits(v[7].to_bits() + 1);
        *raw = samplediff_formats::RawTensor::from_f32(name, raw.shape.clone(), &v);
    }
    let v = verify(&Trace::from_file(file).unwrap(), &device).unwrap();
    assert!(!v.clean());
    let first = &v.mismatches[0];
    assert_eq!((first.stage.as_str(), first.step, first.tensor.as_str()), ("sampler", Some(2), "call002.x"), "{:?}", v.mismatches);
    // euler restarts from the recorded state: step 3 is checked on its own and is fine.
    assert!(v.mismatches.iter().all(|m| m.step == Some(2)), "{:?}", v.mismatches);
}

#[test]
fn a_golden_trace_explained_against_itself_is_identical() {
    let device = Device::flex();
    for name in golden_names() {
        let t = golden(&name);
        let e = explain(&t, &t.clone(), &device).unwrap();
        assert!(e.identical(), "{name}: {:?}", e.findings);
        assert_eq!(e.findings[0].cause, Cause::Identical);
    }
}

#[test]
fn write_and_read_back_is_lossless() {
    for name in golden_names() {
        let t = golden(&name);
        let back = Trace::from_safetensors(t.to_safetensors().unwrap()).unwrap();
        assert_eq!(back.settings(), t.settings());
        assert_eq!(back.tensors().len(), t.tensors().len());
        for x in t.tensors() {
            assert_eq!(back.get(&x.name).unwrap().data[..], x.data[..], "{name}: {}", x.name);
        }
    }
}

/// The golden runs are identified by the chain: ComfyUI's CPU noise for their seed (the heun run's
/// seed is above 2^32), their own schedule, guidance and sampler, and ComfyUI's output convention.
#[test]
fn golden_runs_are_identified() {
    use samplediff_trace::analysis::SideAnalysis;
    use samplediff_trace::identify::{Convention, NoiseSource};
    let device = Device::flex();
    for name in golden_names() {
        let t = golden(&name);
        let s = SideAnalysis::of(&t, None, &device);
        let seed = t.seed().unwrap();
        let noise = s.noise.as_ref().unwrap();
        assert_eq!(noise.source, Some(NoiseSource::TorchCpu { seed }), "{name}: {noise:?}");
        assert!(noise.exact);
        assert!(s.schedule.as_ref().unwrap().matches_settings, "{name}: {:?}", s.schedule);
        assert!(s.guidance.as_ref().unwrap().matches_settings, "{name}: {:?}", s.guidance);
        let sampler = s.sampler.as_ref().unwrap();
        assert!(sampler.exact && sampler.matches_settings, "{name}: {}", sampler.describe());
        let out = s.output.as_ref().unwrap();
        assert_eq!(out.convention, Convention::ProcessOut);
        assert!(out.exact, "{name}: {out:?}");
        // The measured float32 rounding of the chain is tiny but not zero.
        let worst = s.floor.chain.values().copied().fold(0.0, f64::max);
        eprintln!("{name}: chain rounding floor worst {worst:e} over {} tensors", s.floor.chain.len());
        assert!(worst > 0.0 && worst < 1e-5, "{name}: {worst:e}");
    }
}

/// A schedule that neither side's settings give is found by the grid search (here: the golden
/// euler run's settings are hidden, so only the search can recover shift 3.1 / simple).
#[test]
fn schedule_search_recovers_unstated_settings() {
    use samplediff_trace::identify::identify_schedule;
    let t = golden("wf_euler_simple_cfg3.safetensors");
    let mut file = t.to_file();
    for k in ["shift", "scheduler", "denoise"] {
        file.metadata.remove(k);
    }
    let hidden = Trace::from_file(file).unwrap();
    let start = std::time::Instant::now();
    let id = identify_schedule(&hidden, None).unwrap();
    eprintln!("found {} in {:?}", id.describe(), start.elapsed());
    assert!(!id.matches_settings);
    assert_eq!(id.sigmas, t.sigmas().unwrap().0);
    assert_eq!(id.scheduler.name(), "simple");
    assert!((id.shift - 3.1).abs() < 1e-9, "{}", id.describe());
}
