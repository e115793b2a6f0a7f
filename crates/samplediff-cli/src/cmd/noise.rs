//! `samplediff noise`: ComfyUI's initial noise for a seed and latent shape, written to safetensors.
//!
//! The default generator is torch's CPU `randn` exactly as `comfy.sample.prepare_noise` calls it
//! (bit-exact). `--generator cuda-philox` instead writes the emulation of torch's CUDA `randn` for
//! a GPU with the given SM count and threads per SM, so it can be compared with a real GPU.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use samplediff_chain::rng::{CudaDevice, CudaPhiloxGenerator, prepare_noise};
use samplediff_formats::{DType, RawTensor, safetensors};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generator {
    /// torch.randn on the CPU (what ComfyUI's KSampler uses for the initial noise).
    TorchCpu,
    /// Emulation of torch.randn on an NVIDIA GPU (Philox; depends on the GPU's size).
    CudaPhilox,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Precision {
    F32,
    F64,
}

#[derive(clap::Args)]
pub struct Args {
    /// The KSampler seed (0 ..= 2^64-1; the CPU generator uses only its low 32 bits).
    #[arg(long)]
    seed: u64,
    /// Latent shape, comma-separated, e.g. 1,16,1,147,110.
    #[arg(long, value_delimiter = ',', required = true)]
    shape: Vec<usize>,
    /// The LATENT's batch_index, comma-separated (e.g. 0,0,1): one draw per batch slot, reordered.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    batch_index: Option<Vec<i64>>,
    /// Which random generator to reproduce.
    #[arg(long, value_enum, default_value = "torch-cpu")]
    generator: Generator,
    /// cuda-philox only: the GPU's multiprocessor count (H100 SXM: 132, RTX 4090: 128).
    #[arg(long, default_value_t = 132)]
    cuda_sms: u32,
    /// cuda-philox only: the GPU's max resident threads per multiprocessor (H100: 2048, RTX 4090: 1536).
    #[arg(long, default_value_t = 2048)]
    cuda_threads_per_sm: u32,
    /// cuda-philox only: the dtype torch.randn is asked for.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: Precision,
    /// Output safetensors file (tensor `noise`).
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut meta = BTreeMap::new();
    meta.insert("seed".to_string(), args.seed.to_string());
    let tensor = match args.generator {
        Generator::TorchCpu => {
            if args.dtype != Precision::F32 {
                anyhow::bail!("--dtype applies to --generator cuda-philox only (ComfyUI's CPU noise is float32)");
            }
            let noise = prepare_noise(args.seed, &args.shape, args.batch_index.as_deref())?;
            meta.insert("generator".to_string(), "torch_cpu".to_string());
            if let Some(bi) = &args.batch_index {
                meta.insert("batch_index".to_string(), json_list(bi));
            }
            meta.insert("shape".to_string(), json_list(&noise.shape));
            RawTensor::from_f32("noise", noise.shape, &noise.data)
        }
        Generator::CudaPhilox => {
            if args.batch_index.is_some() {
                anyhow::bail!("--batch-index applies to the torch-cpu generator only");
            }
            let numel = args
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .with_context(|| format!("shape {:?} is too large", args.shape))?;
            let device = CudaDevice {
                multiprocessor_count: args.cuda_sms,
                max_threads_per_multiprocessor: args.cuda_threads_per_sm,
            };
            if device.multiprocessor_count == 0 || device.max_threads_per_multiprocessor < 256 {
                anyhow::bail!("--cuda-sms must be >= 1 and --cuda-threads-per-sm >= 256");
            }
            let mut generator = CudaPhiloxGenerator::manual_seed(args.seed);
            meta.insert("generator".to_string(), "cuda_philox_emulated".to_string());
            meta.insert("cuda_sms".to_string(), args.cuda_sms.to_string());
            meta.insert("cuda_threads_per_sm".to_string(), args.cuda_threads_per_sm.to_string());
            meta.insert("shape".to_string(), json_list(&args.shape));
            match args.dtype {
                Precision::F32 => RawTensor::from_f32("noise", args.shape.clone(), &generator.randn_f32(numel, device)),
                Precision::F64 => {
                    let bytes = generator.randn_f64(numel, device).iter().flat_map(|v| v.to_le_bytes()).collect();
                    RawTensor::from_vec("noise", DType::F64, args.shape.clone(), bytes)
                }
            }
        }
    };
    let bytes = safetensors::write(&[tensor], &meta)?;
    std::fs::write(&args.output, bytes).with_context(|| format!("cannot write {}", args.output.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn json_list<T: std::fmt::Display>(values: &[T]) -> String {
    let items: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    format!("[{}]", items.join(","))
}
