"""One forward of a full-width Qwen-Image joint block in PyTorch eager, the counterpart of block_bench.rs.

    python3 crates/samplediff-model/examples/block_bench_torch.py [--device cuda|cpu] [--img 4096]
        [--txt 512] [--dim 3072] [--heads 24] [--warmup 3] [--iters 10] [--f32]

Written from the architecture (not ComfyUI's code): per stream a 6-way modulation, affine-free
LayerNorms, q/k RMSNorm, interleaved-pair RoPE over [text, image], SDPA, GELU-tanh MLP. Prints one
RESULT line with the median milliseconds per forward, like the Rust example.
"""
import argparse, math, time
import torch
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
for name, default in [("img", 4096), ("txt", 512), ("dim", 3072), ("heads", 24), ("warmup", 3), ("iters", 10)]:
    p.add_argument(f"--{name}", type=int, default=default)
p.add_argument("--f32", action="store_true")
a = p.parse_args()
dev, dt, D, H = torch.device(a.device), (torch.float32 if a.f32 else torch.bfloat16), a.dim, a.heads
hd = D // H
torch.manual_seed(0)

def lin(i, o):  # weight [out, in] as nn.Linear stores it
    return (torch.randn(o, i, device=dev, dtype=dt) * 0.02, torch.randn(o, device=dev, dtype=dt) * 0.02)

def stream():
    return dict(mod=lin(D, 6 * D), q=lin(D, D), k=lin(D, D), v=lin(D, D), out=lin(D, D),
                nq=torch.ones(hd, device=dev, dtype=dt), nk=torch.ones(hd, device=dev, dtype=dt),
                ff1=lin(D, 4 * D), ff2=lin(4 * D, D))

img_w, txt_w = stream(), stream()

def rope_table(n_txt, h, w):
    axes = [hd // 8, hd * 7 // 16, hd * 7 // 16]
    start = max(h // 2, w // 2)
    t = torch.arange(start, start + n_txt, dtype=torch.float64)
    r, c = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    ids = torch.cat([t[:, None].repeat(1, 3), torch.stack([torch.zeros(h * w), r.flatten(), c.flatten()], 1).double()])
    ang = torch.cat([ids[:, i:i + 1] / 10000 ** torch.linspace(0, (d - 2) / d, d // 2, dtype=torch.float64) for i, d in enumerate(axes)], 1)
    return ang.cos().float().to(dev, dt)[None, :, None, :], ang.sin().float().to(dev, dt)[None, :, None, :]

def rope(x, cos, sin):  # x [B, S, H, hd], pairs (2k, 2k+1)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack([cos * x0 - sin * x1, sin * x0 + cos * x1], -1).flatten(-2)

def block(img, txt, temb, cos, sin):
    s = F.silu(temb)
    im = F.linear(s, *img_w["mod"]).chunk(6, -1)
    tm = F.linear(s, *txt_w["mod"]).chunk(6, -1)
    mod = lambda x, sh, sc: torch.addcmul(sh[:, None], F.layer_norm(x, (D,), eps=1e-6), 1 + sc[:, None])
    qkv = lambda x, w: [F.rms_norm(F.linear(x, *w["q"]).unflatten(-1, (H, hd)), (hd,), w["nq"], 1e-6),
                        F.rms_norm(F.linear(x, *w["k"]).unflatten(-1, (H, hd)), (hd,), w["nk"], 1e-6),
                        F.linear(x, *w["v"]).unflatten(-1, (H, hd))]
    iq, ik, iv = qkv(mod(img, im[0], im[1]), img_w)
    tq, tk, tv = qkv(mod(txt, tm[0], tm[1]), txt_w)
    q, k, v = (torch.cat([t, i], 1) for t, i in ((tq, iq), (tk, ik), (tv, iv)))
    q, k = rope(q, cos, sin), rope(k, cos, sin)
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2).flatten(2)
    n = txt.shape[1]
    img = img + im[2][:, None] * F.linear(o[:, n:], *img_w["out"])
    txt = txt + tm[2][:, None] * F.linear(o[:, :n], *txt_w["out"])
    ff = lambda x, w: F.linear(F.gelu(F.linear(x, *w["ff1"]), approximate="tanh"), *w["ff2"])
    img = torch.addcmul(img, im[5][:, None], ff(mod(img, im[3], im[4]), img_w))
    txt = torch.addcmul(txt, tm[5][:, None], ff(mod(txt, tm[3], tm[4]), txt_w))
    return img, txt

side = int(math.isqrt(a.img))
h, w = side, a.img // side
cos, sin = rope_table(a.txt, h, w)
img = torch.randn(1, h * w, D, device=dev, dtype=dt)
txt = torch.randn(1, a.txt, D, device=dev, dtype=dt)
temb = torch.randn(1, D, device=dev, dtype=dt)
sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
times = []
with torch.inference_mode():
    for i in range(a.warmup + a.iters):
        sync(); t0 = time.perf_counter()
        block(img, txt, temb, cos, sin)
        sync(); times.append((time.perf_counter() - t0) * 1e3)
times = sorted(times[a.warmup:])
med = times[len(times) // 2]
N = h * w + a.txt
flops = 2 * N * 12 * D * D + 2 * 2 * 6 * D * D + 2 * 2 * N * N * D
print(f"RESULT torch device={a.device} dtype={str(dt).split('.')[-1]} img={h * w} txt={a.txt} dim={D} heads={H} "
      f"median_ms={med:.3f} min_ms={times[0]:.3f} tflops={flops / (med * 1e-3) / 1e12:.1f} torch={torch.__version__}")
