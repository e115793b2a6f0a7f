//! `samplediff sigmas`: the float32 σ schedule a ComfyUI KSampler would run.

use std::process::ExitCode;

use samplediff_chain::model_sampling::ModelSampling;
use samplediff_chain::schedule::{Scheduler, ksampler_sigmas};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sampling {
    /// ModelSamplingDiscreteFlow (the ModelSamplingAuraFlow node with multiplier 1, ModelSamplingSD3 with 1000).
    DiscreteFlow,
    /// ModelSamplingFlux: Qwen-Image's and Flux's sampling when no ModelSampling node is used (shift 1.15).
    Flux,
}

#[derive(clap::Args)]
pub struct Args {
    /// Scheduler: simple, sgm_uniform, karras, exponential, ddim_uniform, beta, normal, linear_quadratic, kl_optimal.
    #[arg(long, default_value = "simple")]
    scheduler: String,
    /// Which model-sampling object supplies the σ table.
    #[arg(long, value_enum, default_value = "discrete-flow")]
    model_sampling: Sampling,
    /// The node's shift (default: 1.73, the ModelSamplingAuraFlow default; 1.15 with --model-sampling flux).
    #[arg(long)]
    shift: Option<f64>,
    /// Timestep multiplier of discrete flow: 1 for ModelSamplingAuraFlow, 1000 for ModelSamplingSD3.
    #[arg(long, default_value_t = 1.0)]
    multiplier: f64,
    /// KSampler steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// KSampler denoise (schedules with denoise < 1 keep the tail of a longer one).
    #[arg(long, default_value_t = 1.0)]
    denoise: f64,
    /// Sampler name (dpm_2, dpm_2_ancestral, uni_pc, uni_pc_bh2 drop the penultimate σ).
    #[arg(long, default_value = "euler")]
    sampler: String,
    /// Print a JSON array of the float32 values (shortest round-trip decimals; NaN as NaN).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let scheduler: Scheduler = args.scheduler.parse()?;
    let (ms, description) = match args.model_sampling {
        Sampling::DiscreteFlow => {
            let shift = args.shift.unwrap_or(1.73);
            check_finite("shift", shift)?;
            check_finite("multiplier", args.multiplier)?;
            if args.multiplier == 0.0 {
                anyhow::bail!("--multiplier must not be 0");
            }
            let ms = ModelSampling::discrete_flow(shift, args.multiplier);
            (ms, format!("discrete flow, shift {shift}, multiplier {}", args.multiplier))
        }
        Sampling::Flux => {
            if args.multiplier != 1.0 {
                anyhow::bail!("--multiplier applies to --model-sampling discrete-flow only");
            }
            let shift = args.shift.unwrap_or(1.15);
            check_finite("shift", shift)?;
            (ModelSampling::flux(shift), format!("flux, shift {shift}"))
        }
    };
    let sigmas = ksampler_sigmas(&ms, scheduler, args.steps, args.denoise, &args.sampler)?;
    if args.json {
        // `{}` on f32 prints the shortest decimal that reads back as the same float32.
        let items: Vec<String> = sigmas.iter().map(|s| s.to_string()).collect();
        println!("[{}]", items.join(", "));
    } else {
        println!(
            "{scheduler}, {} steps, denoise {}, sampler {} ({description}): {} sigmas",
            args.steps,
            args.denoise,
            args.sampler,
            sigmas.len()
        );
        for (i, s) in sigmas.iter().enumerate() {
            println!("{i:4}  {s}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check_finite(name: &str, v: f64) -> anyhow::Result<()> {
    if v.is_finite() { Ok(()) } else { anyhow::bail!("--{name} must be a finite number, got {v}") }
}
