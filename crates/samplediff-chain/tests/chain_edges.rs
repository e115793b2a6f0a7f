//! Properties of the chain beyond the recorded runs: every sampler on every scheduler (steps 1,
//! denoise < 1, schedules not ending at 0), the cfg == 1 shortcut, CFGNorm and CFGZeroStar
//! algebra, latent-format round trips, and errors instead of panics.
//!
//! The "oracle" denoiser used below always predicts the same clean latent `x0`. Along a rectified
//! flow `x = sigma * eps + (1 - sigma) * x0` every sampler must then arrive at `x0` when the
//! schedule reaches 0 — exactly, for the samplers whose last step returns the prediction itself.

use std::sync::{Arc, Mutex};

use burn::tensor::{Device, Tensor, TensorData};
use samplediff_chain::cfg::{CfgNorm, Guidance, PostCfg, cfg_combine, cfg_zero_star, channel_norm, skips_uncond};
use samplediff_chain::denoiser::{Denoiser, FnDenoiser, ModelCall, ModelOutput, Predictions};
use samplediff_chain::ksampler::{
    Hooks, InitialNoise, KSampler, Latent, Observer, TorchCpuNoiseSampler, fix_empty_latent_channels,
    inverse_noise_scaling, noise_scaling,
};
use samplediff_chain::latent_format::LatentFormat;
use samplediff_chain::model_sampling::{ModelSampling, constant};
use samplediff_chain::replay::Trace;
use samplediff_chain::sampler::{Sampler, StepInfo};
use samplediff_chain::schedule::{Scheduler, ksampler_sigmas};

const SHAPE: [usize; 5] = [1, 16, 1, 3, 2];

fn device() -> Device {
    Device::flex()
}

/// Deterministic, irregular test values (no RNG needed).
fn pattern(shape: [usize; 5], seed: f32) -> Tensor<5> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7311 + seed).sin() * 1.7).collect();
    Tensor::from_data(TensorData::new(values, shape), &device())
}

fn values(t: &Tensor<5>) -> Vec<f32> {
    t.clone().into_data().try_into_vec::<f32>().unwrap()
}

fn max_abs(a: &Tensor<5>, b: &Tensor<5>) -> f32 {
    values(a).iter().zip(values(b)).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Always predicts `x0` for both sides; counts calls and remembers whether uncond was asked for.
struct Oracle {
    x0: Tensor<5>,
    calls: usize,
    asked_uncond: bool,
}

impl Denoiser for Oracle {
    fn predict(&mut self, call: &ModelCall<'_>) -> samplediff_chain::error::Result<Predictions> {
        assert_eq!(call.index, self.calls, "call indices count up from 0");
        self.calls += 1;
        self.asked_uncond |= call.needs_uncond;
        Ok(Predictions {
            cond: ModelOutput::Denoised(self.x0.clone()),
            uncond: call.needs_uncond.then(|| ModelOutput::Denoised(self.x0.clone())),
        })
    }
}

fn ksampler(sampler: Sampler, cfg: f64) -> KSampler {
    KSampler {
        sampler,
        guidance: Guidance::new(cfg),
        latent_format: LatentFormat::Wan21,
        model_sampling: ModelSampling::aura_flow(3.1),
    }
}

fn all_samplers() -> Vec<Sampler> {
    Sampler::NAMES.iter().map(|n| Sampler::from_name(n).unwrap()).collect()
}

/// The samplers that integrate the rectified flow. ComfyUI's uni_pc treats sigma as a
/// variance-preserving noise level (and with one step makes no update at all), so an oracle does
/// not bring it back to the prediction; it is checked against ComfyUI in `sampler_refs.rs`.
fn flow_samplers() -> Vec<Sampler> {
    all_samplers().into_iter().filter(|s| !matches!(s, Sampler::UniPc { .. })).collect()
}

/// Runs `sampler` from the flow point at `sigmas[0]` with an oracle; returns (out, x0, calls, steps).
fn run_oracle(sampler: Sampler, sigmas: &[f32]) -> (Tensor<5>, Tensor<5>, usize, Vec<f32>) {
    let x0 = pattern(SHAPE, 0.3);
    let eps = pattern(SHAPE, 2.9);
    let x = noise_scaling(sigmas[0], eps, x0.clone());
    let mut oracle = Oracle { x0: x0.clone(), calls: 0, asked_uncond: false };
    let mut noise = TorchCpuNoiseSampler::new(7);
    struct Steps(Vec<f32>);
    impl Observer for Steps {
        fn on_step(&mut self, s: &StepInfo<'_>) {
            self.0.push(s.sigma);
        }
    }
    let mut steps = Steps(Vec::new());
    let out = ksampler(sampler, 2.0)
        .run_sampler(&mut oracle, x, sigmas, Hooks { observer: Some(&mut steps), noise_sampler: Some(&mut noise) })
        .unwrap();
    (out, x0, oracle.calls, steps.0)
}

#[test]
fn every_sampler_lands_on_the_oracle_prediction_for_every_scheduler() {
    let ms = ModelSampling::aura_flow(3.1);
    for scheduler in Scheduler::ALL {
        for steps in [1usize, 2, 7] {
            for denoise in [1.0, 0.6] {
                let sigmas = ksampler_sigmas(&ms, scheduler, steps, denoise, "euler").unwrap();
                assert_eq!(*sigmas.last().unwrap(), 0.0);
                if sigmas[0].is_nan() {
                    // ComfyUI's kl_optimal divides by steps - 1: one step gives [NaN, 0]. The
                    // chain refuses such a schedule instead of sampling NaNs.
                    assert_eq!((scheduler, steps), (Scheduler::KlOptimal, 1));
                    let x = pattern(SHAPE, 0.0);
                    let mut oracle = Oracle { x0: x.clone(), calls: 0, asked_uncond: false };
                    let err = ksampler(Sampler::Euler, 1.0).run_sampler(&mut oracle, x, &sigmas, Hooks::default());
                    assert!(err.unwrap_err().to_string().contains("NaN"));
                    continue;
                }
                for sampler in flow_samplers() {
                    let (out, x0, calls, reported) = run_oracle(sampler, &sigmas);
                    let n = sigmas.len() - 1;
                    let ctx = format!("{sampler} {scheduler} steps {steps} denoise {denoise}");
                    let mut expected = sigmas[..n].to_vec();
                    if matches!(sampler, Sampler::Dpmpp2mSde { .. }) && expected[0] >= 1.0 {
                        // offset_first_sigma_for_snr: a first sigma of 1 has no finite log-SNR.
                        expected[0] = ms.percent_to_sigma(1e-4) as f32;
                    }
                    assert_eq!(reported, expected, "{ctx}: one report per step, at sigma_i");
                    let expected_calls = if sampler == Sampler::Heun { 2 * n - 1 } else { n };
                    assert_eq!(calls, expected_calls, "{ctx}: model calls");
                    let err = max_abs(&out, &x0);
                    assert!(err <= 2e-5, "{ctx}: ended {err:e} away from the prediction");
                }
            }
        }
    }
}

#[test]
fn samplers_whose_last_step_returns_the_prediction_are_exact() {
    let sigmas = ksampler_sigmas(&ModelSampling::aura_flow(3.1), Scheduler::Simple, 5, 1.0, "euler").unwrap();
    for name in ["euler_ancestral", "lcm", "dpmpp_2m", "dpmpp_2m_sde"] {
        let (out, x0, _, _) = run_oracle(Sampler::from_name(name).unwrap(), &sigmas);
        assert_eq!(values(&out), values(&x0), "{name}: x at sigma 0 is the last prediction");
    }
}

#[test]
fn uni_pc_with_one_step_calls_the_model_once_and_stays_finite() {
    for name in ["uni_pc", "uni_pc_bh2"] {
        let sampler = Sampler::from_name(name).unwrap();
        let (out, _, calls, reported) = run_oracle(sampler, &[1.0, 0.0]);
        assert_eq!((calls, reported.len()), (1, 1), "{name}");
        assert!(values(&out).iter().all(|v| v.is_finite()), "{name}");
        // ComfyUI writes 0.001 over the last sigma, and KSampler then divides by 1 - 0.001.
        assert_eq!(sampler.final_sigma(&[1.0, 0.0]), Some(0.001f64 as f32));
        assert_eq!(Sampler::Euler.final_sigma(&[1.0, 0.0]), Some(0.0));
    }
}

#[test]
fn heun_evaluates_twice_per_step_when_the_schedule_does_not_reach_zero() {
    let (_, _, calls, reported) = run_oracle(Sampler::Heun, &[0.9, 0.6, 0.3]);
    assert_eq!(reported.len(), 2);
    assert_eq!(calls, 4);
}

#[test]
fn too_short_schedules_leave_x_alone() {
    for sigmas in [&[][..], &[0.7][..]] {
        for sampler in all_samplers() {
            let x = pattern(SHAPE, 1.0);
            let mut oracle = Oracle { x0: x.clone(), calls: 0, asked_uncond: false };
            let out = sampler.sample(&mut NoCtx(&mut oracle), x.clone(), sigmas).unwrap();
            assert_eq!(values(&out), values(&x));
            assert_eq!(oracle.calls, 0);
        }
    }
}

/// A sampling context for `Sampler::sample` without CFG: the oracle's prediction, no noise.
struct NoCtx<'a>(&'a mut Oracle);
impl samplediff_chain::sampler::SamplingContext for NoCtx<'_> {
    fn denoise(&mut self, x: &Tensor<5>, sigma: f32) -> samplediff_chain::error::Result<Tensor<5>> {
        let p = self.0.predict(&ModelCall { index: self.0.calls, x, sigma, needs_uncond: false })?;
        Ok(p.cond.into_denoised(x, sigma))
    }
    fn noise(&mut self, x: &Tensor<5>, _: f32, _: f32) -> samplediff_chain::error::Result<Tensor<5>> {
        Ok(x.zeros_like())
    }
    fn percent_to_sigma(&self, p: f64) -> f64 {
        ModelSampling::aura_flow(3.1).percent_to_sigma(p)
    }
    fn on_step(&mut self, _: &StepInfo<'_>) {}
}

#[test]
fn denoise_zero_returns_the_latent_unchanged() {
    let ms = ModelSampling::aura_flow(3.1);
    let sigmas = ksampler_sigmas(&ms, Scheduler::Simple, 4, 0.0, "euler").unwrap();
    assert!(sigmas.is_empty());
    let latent = Latent::Video(pattern(SHAPE, 0.5));
    let mut oracle = Oracle { x0: pattern(SHAPE, 0.0), calls: 0, asked_uncond: false };
    let out = ksampler(Sampler::Euler, 3.0)
        .sample(&mut oracle, &latent, InitialNoise::Seed { seed: 1, batch_index: None }, &sigmas, Hooks::default())
        .unwrap();
    let Latent::Video(out) = out else { panic!("a 5-D latent stays 5-D") };
    assert_eq!(values(&out), values(&latent.to_5d()));
    assert_eq!(oracle.calls, 0);
}

#[test]
fn img2img_with_denoise_below_one_returns_the_predicted_latent() {
    // The oracle predicts process_in(latent): sampling must come back to the latent itself.
    let ms = ModelSampling::aura_flow(3.1);
    let latent = pattern(SHAPE, 0.8);
    let clean = LatentFormat::Wan21.process_in(latent.clone()).unwrap();
    for sampler in flow_samplers() {
        let sigmas = ksampler_sigmas(&ms, Scheduler::Normal, 4, 0.45, "euler").unwrap();
        assert!(sigmas[0] < 1.0);
        let mut oracle = Oracle { x0: clean.clone(), calls: 0, asked_uncond: false };
        let mut noise = TorchCpuNoiseSampler::new(11);
        let out = ksampler(sampler, 1.0)
            .sample(
                &mut oracle,
                &Latent::Video(latent.clone()),
                InitialNoise::Seed { seed: 3, batch_index: None },
                &sigmas,
                Hooks { observer: None, noise_sampler: Some(&mut noise) },
            )
            .unwrap();
        let Latent::Video(out) = out else { panic!() };
        let err = max_abs(&out, &latent);
        assert!(err <= 1e-4, "{sampler}: {err:e}");
    }
}

#[test]
fn empty_image_latents_are_widened_and_not_normalised() {
    let empty = Latent::Image(Tensor::zeros([1, 4, 3, 2], &device()));
    let fixed = fix_empty_latent_channels(LatentFormat::Wan21, &empty);
    assert_eq!(fixed.dims(), [1, 16, 1, 3, 2]);
    assert!(values(&fixed).iter().all(|&v| v == 0.0));
    // A non-empty latent keeps its channels (ComfyUI only widens all-zero latents).
    let four = Latent::Image(Tensor::ones([1, 4, 3, 2], &device()));
    assert_eq!(fix_empty_latent_channels(LatentFormat::Wan21, &four).dims(), [1, 4, 1, 3, 2]);
    // An empty latent is not process_in'ed: with an oracle predicting zeros the output is the
    // format's mean (process_out of ~0).
    let sigmas = ksampler_sigmas(&ModelSampling::aura_flow(2.0), Scheduler::Simple, 3, 1.0, "euler").unwrap();
    let mut oracle = Oracle { x0: Tensor::zeros(SHAPE, &device()), calls: 0, asked_uncond: false };
    let out = ksampler(Sampler::Euler, 1.0)
        .sample(
            &mut oracle,
            &Latent::Image(Tensor::zeros([1, 16, 3, 2], &device())),
            InitialNoise::Seed { seed: 5, batch_index: None },
            &sigmas,
            Hooks::default(),
        )
        .unwrap();
    let Latent::Video(out) = out else { panic!("Wan 2.1 latents come back 5-D") };
    let mean = LatentFormat::Wan21.process_out(Tensor::<5>::zeros(SHAPE, &device())).unwrap();
    assert!(max_abs(&out, &mean) < 1e-5);
}

#[test]
fn two_d_formats_hand_back_four_d_latents() {
    let latent = Latent::Image(Tensor::zeros([1, 4, 3, 2], &device()));
    let mut oracle = Oracle { x0: Tensor::zeros([1, 4, 1, 3, 2], &device()), calls: 0, asked_uncond: false };
    let mut k = ksampler(Sampler::Euler, 1.0);
    k.latent_format = LatentFormat::Sd15;
    let out = k.sample(&mut oracle, &latent, InitialNoise::Zeros, &[1.0, 0.5, 0.0], Hooks::default()).unwrap();
    assert!(matches!(out, Latent::Image(t) if t.dims() == [1, 4, 3, 2]));
}

#[test]
fn cfg_one_skips_the_negative_prompt() {
    assert!(skips_uncond(1.0, false));
    assert!(skips_uncond(1.0 + 1e-10, false)); // math.isclose(rel_tol=1e-9)
    assert!(!skips_uncond(1.01, false));
    assert!(!skips_uncond(1.0, true)); // disable_cfg1_optimization
    let sigmas = [1.0, 0.5, 0.0];
    for (cfg, asks) in [(1.0, false), (1.5, true)] {
        let mut oracle = Oracle { x0: pattern(SHAPE, 0.1), calls: 0, asked_uncond: false };
        ksampler(Sampler::Euler, cfg).run_sampler(&mut oracle, pattern(SHAPE, 0.2), &sigmas, Hooks::default()).unwrap();
        assert_eq!(oracle.asked_uncond, asks, "cfg {cfg}");
    }
    // uncond + (cond - uncond) * 1 with uncond = 0 is cond, bit for bit.
    let c = pattern(SHAPE, 0.4);
    assert_eq!(values(&cfg_combine(&c, &c.zeros_like(), 1.0)), values(&c));
}

#[test]
fn a_missing_negative_prediction_is_an_error() {
    let mut d = FnDenoiser(|call: &ModelCall<'_>| {
        Ok(Predictions { cond: ModelOutput::Denoised(call.x.clone()), uncond: None })
    });
    let err = ksampler(Sampler::Euler, 3.0).run_sampler(&mut d, pattern(SHAPE, 0.0), &[1.0, 0.0], Hooks::default());
    assert!(err.unwrap_err().to_string().contains("negative prediction is missing"));
}

#[test]
fn stochastic_samplers_without_noise_are_an_error() {
    for sampler in all_samplers().into_iter().filter(Sampler::is_stochastic) {
        let mut oracle = Oracle { x0: pattern(SHAPE, 0.0), calls: 0, asked_uncond: false };
        let err =
            ksampler(sampler, 1.0).run_sampler(&mut oracle, pattern(SHAPE, 0.0), &[1.0, 0.5, 0.0], Hooks::default());
        assert!(err.is_err(), "{sampler}");
    }
    let bad = Sampler::from_name("euler_cfg_pp").unwrap_err().to_string();
    assert!(bad.contains("not implemented"), "{bad}");
}

#[test]
fn velocity_outputs_use_const_calculate_denoised() {
    let x = pattern(SHAPE, 0.1);
    let v = pattern(SHAPE, 1.3);
    let sigma = 0.637_f32;
    let got = values(&ModelOutput::Velocity(v.clone()).into_denoised(&x, sigma));
    let want: Vec<f32> =
        values(&x).iter().zip(values(&v)).map(|(&x, v)| constant::calculate_denoised(sigma, v, x)).collect();
    assert_eq!(got, want);
    // noise_scaling / inverse_noise_scaling agree with the scalar CONST references too.
    let n = pattern(SHAPE, 2.2);
    let got = values(&noise_scaling(sigma, n.clone(), x.clone()));
    let want: Vec<f32> =
        values(&n).iter().zip(values(&x)).map(|(&n, x)| constant::noise_scaling(sigma, n, x)).collect();
    assert_eq!(got, want);
    let got = values(&inverse_noise_scaling(0.01, x.clone()));
    let want: Vec<f32> = values(&x).iter().map(|&x| constant::inverse_noise_scaling(0.01, x)).collect();
    assert_eq!(got, want);
}

#[test]
fn cfgnorm_strength_scales_the_whole_result() {
    let c = pattern(SHAPE, 0.3);
    let d = pattern(SHAPE, 1.1).mul_scalar(2.0);
    let unit = CfgNorm::new(1.0).apply(&c, &d);
    let half = CfgNorm::new(0.5).apply(&c, &d);
    let want: Vec<f32> = values(&unit).iter().map(|v| v * 0.5f32).collect();
    assert_eq!(values(&half), want, "(d * s) * strength, left to right");
    // Where the CFG result is shorter than the positive prediction the scale clamps to 1.
    let shorter = c.clone().mul_scalar(0.5);
    let out = CfgNorm::new(2.5).apply(&c, &shorter);
    assert_eq!(values(&out), values(&shorter.clone().mul_scalar(2.5f32)));
    // Where it is longer, it is shrunk to the positive prediction's channel norm.
    let longer = c.clone().mul_scalar(3.0);
    let out = CfgNorm::new(1.0).apply(&c, &longer);
    assert!(max_abs(&channel_norm(&out), &channel_norm(&c)) < 1e-5);
}

#[test]
fn channel_norm_is_the_euclidean_norm_over_channels() {
    let t = pattern(SHAPE, 0.9);
    let v = values(&t);
    let norm = values(&channel_norm(&t));
    let plane = SHAPE[2] * SHAPE[3] * SHAPE[4];
    for p in 0..plane {
        let exact: f64 = (0..16).map(|c| (v[c * plane + p] as f64).powi(2)).sum::<f64>().sqrt();
        assert!((norm[p] as f64 - exact).abs() <= 2e-6 * exact, "position {p}");
    }
}

#[test]
fn cfg_zero_star_degenerate_cases() {
    let x = pattern(SHAPE, 0.2);
    let c = pattern(SHAPE, 0.6);
    let d = pattern(SHAPE, 1.4);
    // uncond == cond: alpha = |p|^2 / (|p|^2 + 1e-8) ~ 1, the correction vanishes.
    let out = cfg_zero_star(&x, &c, &c, &d, 4.0).unwrap();
    assert!(max_abs(&out, &d) < 1e-5);
    // x == uncond: alpha = 0 / 1e-8 = 0, so out = d + u*(0-1) + cfg*u*(1-0).
    let out = cfg_zero_star(&x, &c, &x, &d, 4.0).unwrap();
    let want: Vec<f32> = values(&d).iter().zip(values(&x)).map(|(&d, u)| (d + -u) + (4.0 * u) * 1.0).collect();
    assert_eq!(values(&out), want);
}

#[test]
fn post_cfg_functions_run_in_order_and_see_comfyui_arguments() {
    let c = pattern(SHAPE, 0.3);
    let x = pattern(SHAPE, 0.7);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let mut g =
        Guidance::new(1.0).with(PostCfg::CfgNorm(CfgNorm::new(1.0))).with(PostCfg::Custom(Box::new(move |a| {
            // cfg == 1: the negative side was skipped and arrives as zeros, like ComfyUI's.
            assert!(!a.uncond_evaluated);
            assert!(values(a.uncond_denoised).iter().all(|&v| v == 0.0));
            sink.lock().unwrap().push(values(a.denoised));
            Ok(a.denoised.clone().mul_scalar(2.0))
        })));
    let out = g.apply(&x, 0.5, &c, &c.zeros_like()).unwrap();
    // The custom function saw CFGNorm's output (CFGNorm of cond against itself is ~cond).
    assert_eq!(seen.lock().unwrap()[0], values(&CfgNorm::new(1.0).apply(&c, &c)));
    assert_eq!(values(&out), values(&CfgNorm::new(1.0).apply(&c, &c).mul_scalar(2.0)));
}

#[test]
fn latent_formats_round_trip() {
    for format in LatentFormat::ALL {
        let shape = [1, format.latent_channels(), 1, 3, 2];
        let z = pattern(shape, 0.25);
        let back = format.process_out(format.process_in(z.clone()).unwrap()).unwrap();
        assert!(max_abs(&back, &z) <= 1e-6, "{}", format.name());
        assert_eq!(format.rgb_factors().len(), format.latent_channels());
        let wrong = Tensor::<5>::zeros([1, format.latent_channels() + 1, 1, 2, 2], &device());
        assert!(format.process_in(wrong).is_err());
    }
    // Wan 2.1 normalises its own mean to exactly 0.
    let mean = LatentFormat::Wan21.process_out(Tensor::<5>::zeros(SHAPE, &device())).unwrap();
    assert!(values(&LatentFormat::Wan21.process_in(mean).unwrap()).iter().all(|&v| v == 0.0));
    // 4-D latents work the same way.
    let z4 = Tensor::<4>::ones([1, 4, 2, 2], &device());
    let back = LatentFormat::Sdxl.process_out(LatentFormat::Sdxl.process_in(z4).unwrap()).unwrap();
    assert!(back.into_data().try_into_vec::<f32>().unwrap().iter().all(|&v| (v - 1.0).abs() < 1e-6));
}

#[test]
fn preview_of_a_zero_latent_is_the_bias_colour() {
    for format in LatentFormat::ALL {
        let zeros = Tensor::<5>::zeros([1, format.latent_channels(), 2, 3, 4], &device());
        let image = format.preview(&zeros).unwrap();
        assert_eq!((image.width, image.height, image.rgb.len()), (4, 3, 36));
        let bias = format.rgb_bias().unwrap_or([0.0; 3]);
        let want: Vec<u8> = bias.iter().map(|&b| ((b as f32 + 1.0) / 2.0 * 255.0) as u8).collect();
        assert_eq!(&image.rgb[..3], &want[..], "{}", format.name());
    }
}

#[test]
fn trace_records_every_step_and_call() {
    let sigmas = [1.0, 0.7, 0.3, 0.0];
    let mut oracle = Oracle { x0: pattern(SHAPE, 0.4), calls: 0, asked_uncond: false };
    let mut trace = Trace::default();
    ksampler(Sampler::Heun, 2.0)
        .run_sampler(
            &mut oracle,
            pattern(SHAPE, 0.1),
            &sigmas,
            Hooks { observer: Some(&mut trace), noise_sampler: None },
        )
        .unwrap();
    assert_eq!(trace.steps.len(), 3);
    assert_eq!(trace.calls.len(), 5);
    // heun reports its first call of each step.
    assert_eq!(values(&trace.steps[1].0), values(&trace.calls[2].0));
}
