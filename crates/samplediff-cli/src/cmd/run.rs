//! `samplediff run`: the whole workflow from scratch in the burn core.
//!
//! * `samplediff run WF.safetensors --models DIR [--rope-axes 8,12,12] [--backend cpu|wgpu] -o out.safetensors`
//!   reads a file in the golden layout (settings in the metadata, `positive`, `negative`,
//!   `latent_in`), loads `DIR/diffusion_models/tiny_qwen.safetensors` (or `--model`) and the LoRA
//!   the settings name from `DIR/loras/`, and writes the run's trace: `latent_out`, every
//!   `stepNNN.x`/`stepNNN.denoised` and `callNNN.*`. When the file holds a recorded `latent_out`,
//!   the agreement with it is printed.
//! * The plain form takes the same settings as flags: `samplediff run --model M.safetensors
//!   --positive pos.pt --negative neg.pt --width 880 --height 1176 --seed 12345 --steps 20 ...`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use samplediff_chain::replay::RunSettings;
use samplediff_chain::rng::CudaDevice;
use samplediff_formats::{RawTensor, TensorFile, load_path};
use samplediff_model::Precision;
use samplediff_workflow::{ModelFiles, RunOptions, StepNoise, Workflow, agreement};

use crate::backend::Backend;

#[derive(clap::Args)]
pub struct Args {
    /// A workflow file in the golden layout; omit it to give every setting as a flag.
    pub workflow: Option<PathBuf>,
    /// A ComfyUI models folder (`diffusion_models/`, `loras/`).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// The diffusion model file (default: DIR/diffusion_models/tiny_qwen.safetensors).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// RoPE channels per axis (frame, row, column); Qwen-Image's are 16,56,56.
    #[arg(long, default_value = "16,56,56")]
    pub rope_axes: String,
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    pub backend: Backend,
    /// Compute precision of the model: f32 (ComfyUI --cpu) or bf16 (ComfyUI on a recent GPU).
    #[arg(long, default_value = "f32")]
    pub precision: String,
    /// Draw the samplers' per-step noise as torch does on an NVIDIA GPU (CUDA Philox, H100 layout)
    /// instead of the CPU generator.
    #[arg(long)]
    pub gpu_step_noise: bool,
    /// Write the trace here (safetensors).
    #[arg(short, long)]
    pub output: Option<PathBuf>,

    // The plain form's settings (they also override a workflow file's).
    #[arg(long)]
    pub lora: Option<PathBuf>,
    #[arg(long)]
    pub lora_strength: Option<f64>,
    /// Positive conditioning `[1, L, dim]` (any supported file; `file.pt:0.0` selects inside a pickle).
    #[arg(long)]
    pub positive: Option<String>,
    #[arg(long)]
    pub negative: Option<String>,
    /// Input LATENT file; without it an empty latent of --width x --height pixels.
    #[arg(long)]
    pub latent: Option<String>,
    #[arg(long)]
    pub width: Option<usize>,
    #[arg(long)]
    pub height: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub steps: Option<usize>,
    #[arg(long)]
    pub cfg: Option<f64>,
    #[arg(long)]
    pub sampler: Option<String>,
    #[arg(long)]
    pub scheduler: Option<String>,
    #[arg(long)]
    pub denoise: Option<f64>,
    #[arg(long)]
    pub shift: Option<f64>,
    /// CFGNorm strength (omit for no CFGNorm node in the plain form).
    #[arg(long)]
    pub cfgnorm: Option<f64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let recorded = args.workflow.as_ref().map(|p| read(p)).transpose()?;
    let mut wf = match &recorded {
        Some(file) => {
            Workflow::from_file(file).map_err(|e| anyhow!("{}: {e}", args.workflow.as_ref().unwrap().display()))?
        }
        None => plain_workflow(&args)?,
    };
    override_settings(&mut wf, &args);
    if args.gpu_step_noise {
        wf.step_noise = StepNoise::CudaPhilox(CudaDevice::H100_SXM);
    }

    let model_path = match (&args.model, &args.models) {
        (Some(m), _) => m.clone(),
        (None, Some(dir)) => dir.join("diffusion_models/tiny_qwen.safetensors"),
        (None, None) => bail!("give --models DIR or --model FILE"),
    };
    let model = read(&model_path)?;
    let lora_path = match (&args.lora, &wf.lora, &args.models) {
        (Some(p), _, _) => Some(p.clone()),
        (None, Some((name, _)), Some(dir)) => Some(dir.join("loras").join(name)),
        (None, Some((name, _)), None) => bail!("the workflow uses LoRA '{name}': give --models DIR or --lora FILE"),
        _ => None,
    };
    let lora = lora_path.as_ref().map(|p| read(p)).transpose()?;
    let options = RunOptions {
        device: args.backend.device(),
        precision: precision(&args.precision)?,
        rope_axes: rope_axes(&args.rope_axes)?,
    };
    let trace = samplediff_workflow::run(&wf, &ModelFiles { diffusion_model: &model, lora: lora.as_ref() }, &options)
        .map_err(|e| anyhow!("run failed: {e}"))?;

    if let Some(out) = &args.output {
        std::fs::write(out, trace.to_safetensors()?).with_context(|| format!("cannot write {}", out.display()))?;
    }
    match &recorded {
        Some(file) if file.get("latent_out").is_some() => {
            let rows = agreement(&trace, file);
            let worst = rows.iter().map(|r| r.max_abs).fold(0.0f32, f32::max);
            for r in &rows {
                println!("{:<20} max abs {:<12e} mean abs {:e}", r.name, r.max_abs, r.mean_abs);
            }
            println!(
                "against the recorded run: worst max abs {worst:e} over {} tensors (backend {})",
                rows.len(),
                args.backend.name()
            );
        }
        _ => println!("latent_out written ({} steps, backend {})", wf.settings.steps, args.backend.name()),
    }
    Ok(ExitCode::SUCCESS)
}

fn read(path: &Path) -> anyhow::Result<TensorFile> {
    load_path(&path.to_string_lossy()).map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn one_tensor(spec: &str, name: &str) -> anyhow::Result<RawTensor> {
    let file = load_path(spec).map_err(|e| anyhow!("{spec}: {e}"))?;
    let floats: Vec<&RawTensor> = file.tensors.iter().filter(|t| t.dtype.is_float()).collect();
    match floats.as_slice() {
        [t] => Ok(RawTensor { name: name.to_owned(), ..(*t).clone() }),
        _ => bail!("{spec}: expected one float tensor, found {} (select one with file:path)", floats.len()),
    }
}

fn plain_workflow(args: &Args) -> anyhow::Result<Workflow> {
    let positive = one_tensor(args.positive.as_deref().context("the plain form needs --positive")?, "positive")?;
    let negative = args.negative.as_deref().map(|n| one_tensor(n, "negative")).transpose()?;
    let latent_in = match (&args.latent, args.width, args.height) {
        (Some(l), _, _) => one_tensor(l, "latent_in")?,
        (None, Some(w), Some(h)) => {
            // EmptySD3LatentImage: zeros [1, 16, h/8, w/8].
            let shape = vec![1, 16, h / 8, w / 8];
            RawTensor::from_f32("latent_in", shape.clone(), &vec![0.0; shape.iter().product()])
        }
        _ => bail!("give --latent FILE or --width and --height"),
    };
    Ok(Workflow {
        settings: RunSettings {
            name: "run".into(),
            sampler: "euler".into(),
            scheduler: "simple".into(),
            steps: 20,
            cfg: 1.0,
            cfgnorm: None,
            seed: 0,
            denoise: 1.0,
            shift: 3.1,
        },
        lora: args.lora.as_ref().map(|p| (p.file_name().unwrap_or_default().to_string_lossy().into_owned(), 1.0)),
        positive,
        negative,
        latent_in,
        step_noise: StepNoise::TorchCpu,
    })
}

fn override_settings(wf: &mut Workflow, a: &Args) {
    let s = &mut wf.settings;
    if let Some(v) = a.seed {
        s.seed = v
    }
    if let Some(v) = a.steps {
        s.steps = v
    }
    if let Some(v) = a.cfg {
        s.cfg = v
    }
    if let Some(v) = &a.sampler {
        s.sampler = v.clone()
    }
    if let Some(v) = &a.scheduler {
        s.scheduler = v.clone()
    }
    if let Some(v) = a.denoise {
        s.denoise = v
    }
    if let Some(v) = a.shift {
        s.shift = v
    }
    if a.cfgnorm.is_some() {
        s.cfgnorm = a.cfgnorm
    }
    if let (Some(strength), Some(lora)) = (a.lora_strength, wf.lora.as_mut()) {
        lora.1 = strength;
    }
}

pub fn precision(p: &str) -> anyhow::Result<Precision> {
    match p {
        "f32" | "float32" => Ok(Precision::F32),
        "bf16" | "bfloat16" => Ok(Precision::BF16),
        other => bail!("unknown precision '{other}' (f32 or bf16)"),
    }
}

pub fn rope_axes(s: &str) -> anyhow::Result<[usize; 3]> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| x.trim().parse())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--rope-axes '{s}'"))?;
    v.try_into().map_err(|_| anyhow!("--rope-axes needs three numbers, e.g. 16,56,56"))
}
