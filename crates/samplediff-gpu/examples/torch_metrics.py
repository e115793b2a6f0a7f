#!/usr/bin/env python3
"""torch on the GPU computing the metrics of `compare`: the baseline of gpu_bench (issue 8).

    python3 crates/samplediff-gpu/examples/torch_metrics.py [GIB]   # default 4

Makes two GIB-GiB float32 tensors on cuda like gpu_bench's fill kernel (a = 3 + 2 U(-1,1),
b = a (1 + 1e-4 U(-1,1)), one NaN in a per 2^20), then times with the inputs on the GPU, best
of 5 after a warm-up, each followed by torch.cuda.synchronize():

* copy:        c.copy_(a); c.copy_(b)  (bytes read + written per second, as the issue counts)
* sum:         a.sum() + b.sum()       (a plain read of both)
* kernel_f32:  what samplediff-gpu's main pass gives (NaN/Inf counts, isclose, max/mean abs,
               RMSE, RMS of each side, max/mean relative error, cosine, Pearson, SNR), float32
* compare_f32: the whole compare metric set, tools/bench_metrics.py's metrics_torch_on (adds
               the floored relative error, percentiles by sort, the decade histogram, the 10
               worst), float32
* compare_f64: the same in float64, as tools/bench_metrics.py computes it (if memory allows)

Prints one JSON line per measurement.
"""
import json, math, sys, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools"))
from bench_metrics import metrics_torch_on  # noqa: E402  (the repository's tools/, found from here)

RTOL, ATOL = 1.3e-6, 1e-5


def best_of(f, reps=5):
    f()
    torch.cuda.synchronize()
    best = math.inf
    for _ in range(reps):
        torch.cuda.synchronize()
        t = time.perf_counter()
        f()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def kernel_set(a, b):
    out = {"nan_a": a.isnan().sum(), "nan_b": b.isnan().sum(), "inf_a": a.isinf().sum(), "inf_b": b.isinf().sum()}
    out["mismatched"] = (~torch.isclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True)).sum()
    fin = torch.isfinite(a) & torch.isfinite(b)
    a, b = a[fin], b[fin]
    d = (a - b).abs()
    out["max_abs"], out["mean_abs"], out["rmse"] = d.max(), d.mean(), (d * d).mean().sqrt()
    out["rms_a"], out["rms_b"] = (a * a).mean().sqrt(), (b * b).mean().sqrt()
    nz = b != 0
    rel = d[nz] / b[nz].abs()
    out["max_rel"], out["mean_rel"] = rel.max(), rel.mean()
    out["cosine"] = (a * b).sum() / ((a * a).sum() * (b * b).sum()).sqrt()
    ca, cb = a - a.mean(), b - b.mean()
    out["pearson"] = (ca * cb).sum() / ((ca * ca).sum() * (cb * cb).sum()).sqrt()
    out["snr_db"] = 10 * torch.log10((b * b).sum() / (d * d).sum())
    return {k: float(v) for k, v in out.items()}


def main():
    gib = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
    n = int(gib * 2**30) // 4
    g = torch.Generator(device="cuda").manual_seed(0)
    a = 3 + 2 * (torch.rand(n, device="cuda", generator=g) * 2 - 1)
    b = a * (1 + 1e-4 * (torch.rand(n, device="cuda", generator=g) * 2 - 1))
    a[:: 1 << 20] = float("nan")
    read = 2 * n * 4
    info = {"torch": torch.__version__, "device": torch.cuda.get_device_name(), "gib_per_side": gib}
    print(json.dumps({"setup": info}), flush=True)

    c = torch.empty_like(a)
    t = best_of(lambda: (c.copy_(a), c.copy_(b)))
    print(json.dumps({"copy_ms": t * 1e3, "GBps_read_plus_write": 2 * read / t / 1e9}), flush=True)
    del c
    t = best_of(lambda: a.sum() + b.sum())
    print(json.dumps({"sum_ms": t * 1e3, "GBps_read": read / t / 1e9}), flush=True)
    t = best_of(lambda: kernel_set(a, b))
    print(json.dumps({"kernel_f32_ms": t * 1e3, "result": kernel_set(a, b)}), flush=True)
    for name, conv in (("compare_f32", lambda x: x), ("compare_f64", lambda x: x.double())):
        try:
            torch.cuda.empty_cache()
            t = best_of(lambda: metrics_torch_on(conv(a), conv(b)), reps=3)
            print(json.dumps({f"{name}_ms": t * 1e3, "max_abs": metrics_torch_on(conv(a), conv(b))["max_abs"]}), flush=True)
        except torch.OutOfMemoryError as e:
            print(json.dumps({f"{name}_ms": None, "error": str(e).splitlines()[0]}), flush=True)


if __name__ == "__main__":
    main()
