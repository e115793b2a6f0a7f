//! The demo's second half: the seed's story on traces, with a real ComfyUI run.
//!
//! "ComfyUI" is a golden run recorded by ComfyUI itself (the tiny Qwen-Image DiT of the test
//! fixtures: UNETLoader → LoRA → ModelSamplingAuraFlow → CFGNorm → KSampler, euler, 4 steps).
//! "The service" is the same workflow through samplediff's reference chain, fed the same model
//! outputs, returning what the user's microservice returned: the sampler state, without
//! ComfyUI's `process_out`. The demo verifies both, compares the outputs, diffs the traces and
//! lets `explain` name the cause with its evidence.

use std::collections::BTreeMap;

use anyhow::{Context, anyhow};
use burn::tensor::{DType, Device, Tensor};
use samplediff_chain::ksampler::inverse_noise_scaling;
use samplediff_chain::model_sampling::ModelSampling;
use samplediff_chain::sampler::Sampler;
use samplediff_formats::{RawTensor, TensorFile};
use samplediff_metrics::render::{RenderOptions, render};
use samplediff_metrics::{CompareOptions, Engine, compare_files};
use samplediff_trace::analysis::SideAnalysis;
use samplediff_trace::diff::{Parting, diff_with};
use samplediff_trace::drive::{Answers, drive};
use samplediff_trace::explain::explain_with;
use samplediff_trace::render::explain_text;
use samplediff_trace::verify::verify;
use samplediff_trace::{Manifest, Trace, host};

/// A run recorded by ComfyUI (see tests/fixtures/comfyui/README.md).
const COMFYUI_RUN: &[u8] = include_bytes!("../../../../../tests/fixtures/comfyui/wf_euler_simple_cfg3.safetensors");

/// The service's trace: ComfyUI's steps reproduced by the chain, latent_out = the sampler state.
fn service_trace(comfy: &Trace, device: &Device) -> anyhow::Result<Trace> {
    let run = comfy.recorded_run(device)?;
    let sigmas = run.sigmas()?;
    let sampler = Sampler::from_name(&run.settings.sampler)?;
    let calls = comfy.call_count();
    let denoised: Vec<Tensor<5>> = (0..calls)
        .map(|i| comfy.tensor5(&format!("call{i:03}.denoised"), device))
        .collect::<Option<_>>()
        .context("the demo run lacks its model outputs")?;
    let x0 = comfy.tensor5("call000.x", device).context("the demo run lacks call000.x")?;
    let ms = ModelSampling::aura_flow(run.settings.shift);
    let out = drive(sampler, &x0, &sigmas, &Answers::Denoised(&denoised), None, &ms, DType::F32);
    let state = out.samples.ok_or_else(|| anyhow!("the chain stopped: {}", out.stopped.unwrap_or_default()))?;
    let raw = inverse_noise_scaling(*sigmas.last().unwrap_or(&0.0), state);
    let mut file: TensorFile = comfy.to_file();
    let values = host(&raw)?;
    for t in &mut file.tensors {
        if t.name == "latent_out" {
            *t = RawTensor::from_f32("latent_out", raw.dims().to_vec(), &values);
        }
    }
    file.metadata.insert("name".into(), "\"service\"".into());
    file.metadata.insert(
        samplediff_trace::MANIFEST_KEY.into(),
        Manifest::new("samplediff demo: a service that skips process_out").to_json(),
    );
    Ok(Trace::from_file(file)?)
}

fn only_output(t: &Trace) -> anyhow::Result<TensorFile> {
    let out = t.get("latent_out").context("no latent_out")?.clone();
    Ok(TensorFile { tensors: vec![out], metadata: BTreeMap::new() })
}

/// Prints the story. Everything is computed on burn's CPU backend (bit-exact, float64 available).
pub fn run() -> anyhow::Result<()> {
    let device = Device::flex();
    let comfy = Trace::from_safetensors(COMFYUI_RUN.to_vec())?;
    let service = service_trace(&comfy, &device)?;

    println!();
    println!("== Part 2: the same story on traces ==");
    println!();
    println!("  ComfyUI: a run recorded by ComfyUI itself (tiny Qwen-Image DiT + LoRA, AuraFlow shift 3.1, CFGNorm,");
    println!("           KSampler euler/simple, 4 steps, cfg 3, seed 1): every model call, every step, latent_out.");
    println!("  service: the same workflow in samplediff's reference chain, fed the same model outputs, returning");
    println!("           what the user's microservice returned: the sampler state.");
    println!();
    for (label, t) in [("ComfyUI", &comfy), ("service", &service)] {
        let v = verify(t, &device)?;
        match v.mismatches.first() {
            None => println!(
                "verify {label}: clean ({} checks: noise, schedule, CFG/CFGNorm, sampler, output)",
                v.checked.len()
            ),
            Some(m) => {
                println!("verify {label}: {} mismatch(es), first [{}]: {}", v.mismatches.len(), m.stage, m.message)
            }
        }
    }

    println!();
    println!("-- compare: service latent_out (A) vs ComfyUI latent_out (B) --");
    let report =
        compare_files(&only_output(&service)?, &only_output(&comfy)?, &[], &Engine::host(), &CompareOptions::default())
            .map_err(|e| anyhow!(e))?;
    let ro =
        RenderOptions { label_a: "service latent_out".into(), label_b: "ComfyUI latent_out".into(), max_details: 1 };
    print!("{}", render(&report, &ro));

    let sa = SideAnalysis::of(&service, Some(&comfy), &device);
    let sb = SideAnalysis::of(&comfy, Some(&service), &device);
    let d = diff_with(&service, &comfy, &sa.floor, &device)?;
    println!();
    println!("-- diff: {} aligned tensors, step by step --", d.aligned.len());
    let identical = d.aligned.iter().filter(|t| t.bit_identical).count();
    println!("bit-identical: {identical} of {} (inputs, every model call, every step)", d.aligned.len());
    if let Some(v) = &d.first_divergence {
        let how = if v.parting == Parting::Split { "an abrupt split, not float drift" } else { "a slow drift" };
        println!(
            "first point beyond float32 rounding: {} (relative RMS {:.3e} > floor {:.3e}): {how}",
            v.name, v.rel_rms, v.rounding_floor
        );
    }

    println!();
    println!("-- explain --");
    let e = explain_with(&service, &comfy, &sa, &sb, &d);
    print!("{}", explain_text(&e));
    Ok(())
}
