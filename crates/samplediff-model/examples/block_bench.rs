//! Times one forward of a full-width Qwen-Image joint block in burn, bf16, random weights.
//!
//! ```text
//! cargo run --release -p samplediff-model --example block_bench -- [--device flex|wgpu|vulkan|cuda] \
//!     [--img 4096] [--txt 512] [--dim 3072] [--heads 24] [--warmup 3] [--iters 10] [--f32]
//! ```
//! (`--device wgpu` needs `--features wgpu`, `--device vulkan` `--features vulkan`, `--device cuda` `--features cuda`;
//! `vulkan` pins wgpu to Vulkan and SPIR-V kernels, the wgpu path that has bf16, which WGSL lacks.) The same block in
//! PyTorch eager: `python3 crates/samplediff-model/examples/block_bench_torch.py` with the same flags; both print
//! one `RESULT` line (median milliseconds per forward) so a script can form the ratio.
//!
//! The image tokens form a square grid (4096 = 64×64, i.e. a 1024² image) after 24 rows of text
//! positions, as in the real model; weights are N(0, 0.02) so activations stay in range.

use std::time::Instant;

use burn::tensor::{DType, Device, Distribution, Tensor};
use samplediff_model::block::{FeedForward, JointBlock, Stream};
use samplediff_model::layers::Linear;
use samplediff_model::rope::{RopeTable, position_ids};

struct Args {
    device: String,
    img: usize,
    txt: usize,
    dim: usize,
    heads: usize,
    warmup: usize,
    iters: usize,
    dtype: DType,
}

fn parse() -> Result<Args, String> {
    let mut a = Args { device: "flex".into(), img: 4096, txt: 512, dim: 3072, heads: 24, warmup: 3, iters: 10, dtype: DType::BF16 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--f32" {
            a.dtype = DType::F32;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || value.parse::<usize>().map_err(|e| format!("{flag} {value}: {e}"));
        match flag.as_str() {
            "--device" => a.device = value.clone(),
            "--img" => a.img = num()?,
            "--txt" => a.txt = num()?,
            "--dim" => a.dim = num()?,
            "--heads" => a.heads = num()?,
            "--warmup" => a.warmup = num()?,
            "--iters" => a.iters = num()?.max(1),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.heads == 0 || !a.dim.is_multiple_of(a.heads) || !(a.dim / a.heads).is_multiple_of(8) {
        return Err(format!("dim {} must split into heads {} of a width divisible by 8", a.dim, a.heads));
    }
    Ok(a)
}

fn device(name: &str) -> Result<Device, String> {
    match name {
        "flex" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(Default::default())),
        #[cfg(feature = "vulkan")]
        "vulkan" => Ok(Device::vulkan(Default::default())),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0)),
        other => Err(format!("unknown device {other} (flex; wgpu/vulkan/cuda with --features wgpu/vulkan/cuda)")),
    }
}

fn random_block(dim: usize, heads: usize, dtype: DType, device: &Device) -> JointBlock {
    let w = |rows: usize, cols: usize| Tensor::<2>::random([rows, cols], Distribution::Normal(0.0, 0.02), (device, dtype));
    let b = |n: usize| Tensor::<1>::random([n], Distribution::Normal(0.0, 0.02), (device, dtype));
    let linear = |i: usize, o: usize| Linear { weight: w(i, o), bias: Some(b(o)) };
    let head_dim = dim / heads;
    let stream = || Stream {
        modulation: linear(dim, 6 * dim),
        to_q: linear(dim, dim),
        to_k: linear(dim, dim),
        to_v: linear(dim, dim),
        norm_q: Tensor::ones([head_dim], (device, dtype)),
        norm_k: Tensor::ones([head_dim], (device, dtype)),
        to_out: linear(dim, dim),
        mlp: FeedForward { proj_in: linear(dim, 4 * dim), proj_out: linear(4 * dim, dim) },
    };
    JointBlock { img: stream(), txt: stream(), heads, ones: Tensor::ones([dim], (device, dtype)) }
}

fn main() {
    let args = parse().unwrap_or_else(|e| {
        eprintln!("block_bench: {e}");
        std::process::exit(2);
    });
    let device = device(&args.device).unwrap_or_else(|e| {
        eprintln!("block_bench: {e}");
        std::process::exit(2);
    });
    let (dim, dtype) = (args.dim, args.dtype);
    let head_dim = dim / args.heads;
    // Qwen-Image's split scaled to the head width: 1/8 frame, 7/16 rows, 7/16 columns.
    let axes = [head_dim / 8, head_dim * 7 / 16, head_dim * 7 / 16];
    let side = (args.img as f64).sqrt() as usize;
    let (h_tokens, w_tokens) = (side, args.img / side);

    let block = random_block(dim, args.heads, dtype, &device);
    let ids = position_ids(args.txt, h_tokens, w_tokens, dtype);
    let rope = RopeTable::new(&ids, axes, 10000.0, dtype, &device);
    let img = Tensor::<3>::random([1, h_tokens * w_tokens, dim], Distribution::Normal(0.0, 1.0), (&device, dtype));
    let txt = Tensor::<3>::random([1, args.txt, dim], Distribution::Normal(0.0, 1.0), (&device, dtype));
    let temb = Tensor::<2>::random([1, dim], Distribution::Normal(0.0, 1.0), (&device, dtype));
    device.sync().expect("device sync");

    let run = || {
        let (i, t) = block.forward(img.clone(), txt.clone(), temb.clone(), &rope);
        // Reading one element back forces the whole graph (and any lazy fusion) to execute.
        let _ = (i.slice([0..1, 0..1, 0..1]) + t.slice([0..1, 0..1, 0..1])).into_data();
        device.sync().expect("device sync");
    };
    for _ in 0..args.warmup {
        run();
    }
    let mut times = Vec::with_capacity(args.iters);
    for _ in 0..args.iters {
        let start = Instant::now();
        run();
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = times[times.len() / 2];
    let flops = block_flops(h_tokens * w_tokens, args.txt, dim);
    println!(
        "RESULT burn device={} dtype={:?} img={} txt={} dim={} heads={} median_ms={:.3} min_ms={:.3} tflops={:.1}",
        args.device,
        dtype,
        h_tokens * w_tokens,
        args.txt,
        dim,
        args.heads,
        median,
        times[0],
        flops / (median * 1e-3) / 1e12
    );
}

/// Matmul FLOPs of one block forward (linears + attention), for a throughput figure.
fn block_flops(n_img: usize, n_txt: usize, dim: usize) -> f64 {
    let (n, s) = ((n_img + n_txt) as f64, (n_img + n_txt) as f64);
    let d = dim as f64;
    // per token: q,k,v,out (4·d²) + MLP (8·d²), 2 FLOPs per multiply-add; modulation is per batch.
    let linears = 2.0 * n * 12.0 * d * d + 2.0 * 2.0 * 6.0 * d * d;
    let attention = 2.0 * 2.0 * s * s * d;
    linears + attention
}
