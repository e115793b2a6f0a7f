#!/usr/bin/env python3
"""The compare metric set computed the straightforward way, in numpy or torch: the baseline
`samplediff bench` holds its own kernel against (issue 8).

    python3 tools/bench_metrics.py --backend numpy|torch [--device cpu|cuda] A.safetensors B.safetensors

Reads the first tensor of each safetensors file (F32/F16/BF16/F64; no safetensors package
needed), then times, with the inputs already in memory, what `samplediff compare` reports:
isclose / mismatched, NaN/Inf counts, max/mean abs, RMSE, RMS of each side, max/mean relative
error (b != 0), floored relative error, cosine, Pearson, SNR, percentiles p50/p90/p99/p99.9,
the decade histogram and the 10 worst elements. Prints one JSON line: {"backend", "seconds", ...}.
"""
import argparse, json, struct, sys, time

DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "bf16"}


def read_first_tensor(path):
    import numpy as np
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        header.pop("__metadata__", None)
        name, info = next(iter(header.items()))
        start, end = info["data_offsets"]
        f.seek(8 + n + start)
        raw = f.read(end - start)
    if info["dtype"] == "BF16":
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).reshape(info["shape"])
    return np.frombuffer(raw, dtype=DTYPES[info["dtype"]]).reshape(info["shape"])


def metrics_numpy(a, b):
    import numpy as np
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    fin = np.isfinite(a) & np.isfinite(b)
    out = {"nan_a": int(np.isnan(a).sum()), "nan_b": int(np.isnan(b).sum()),
           "inf_a": int(np.isinf(a).sum()), "inf_b": int(np.isinf(b).sum())}
    out["mismatched"] = int((~np.isclose(a, b, rtol=1.3e-6, atol=1e-5, equal_nan=True)).sum())
    a, b = a[fin], b[fin]
    d = np.abs(a - b)
    out["max_abs"], out["mean_abs"] = float(d.max()), float(d.mean())
    out["rmse"] = float(np.sqrt((d * d).mean()))
    out["rms_a"], out["rms_b"] = float(np.sqrt((a * a).mean())), float(np.sqrt((b * b).mean()))
    nz = b != 0
    rel = d[nz] / np.abs(b[nz])
    out["max_rel"], out["mean_rel"] = float(rel.max()), float(rel.mean())
    floor = 1e-3 * out["rms_b"]
    relf = d / np.maximum(np.abs(b), floor)
    out["max_rel_floored"], out["mean_rel_floored"] = float(relf.max()), float(relf.mean())
    out["cosine"] = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
    out["pearson"] = float(np.corrcoef(a, b)[0, 1])
    out["snr_db"] = float(10 * np.log10((b * b).sum() / (d * d).sum()))
    out["percentiles"] = [float(x) for x in np.quantile(d, [0.5, 0.9, 0.99, 0.999])]
    nzd = d[d > 0]
    edges = 10.0 ** np.arange(np.floor(np.log10(nzd.min())), np.floor(np.log10(nzd.max())) + 2)
    out["histogram"] = np.histogram(nzd, bins=edges)[0].tolist()
    worst = np.argpartition(d, -10)[-10:]
    out["worst"] = sorted(d[worst].tolist(), reverse=True)
    return out


def metrics_torch(a, b, device):
    import torch
    # Uploaded straight into the call, so that nothing here keeps the float64 copies alive.
    up = lambda x: torch.from_numpy(x.copy()).to(device).double()
    out = metrics_torch_on(up(a), up(b))
    if device != "cpu":
        torch.cuda.synchronize()
    return out


def metrics_torch_on(a, b):
    """The metric set on torch tensors already on their device, in their dtype (also what
    crates/samplediff-gpu/examples/torch_metrics.py times on the GPU). Intermediates are freed
    as soon as they are used: 2 x 4 GiB in float64 then fits on an 80 GB card."""
    import torch
    a, b = a.ravel(), b.ravel()
    fin = torch.isfinite(a) & torch.isfinite(b)
    out = {"nan_a": int(a.isnan().sum()), "nan_b": int(b.isnan().sum()),
           "inf_a": int(a.isinf().sum()), "inf_b": int(b.isinf().sum())}
    out["mismatched"] = int((~torch.isclose(a, b, rtol=1.3e-6, atol=1e-5, equal_nan=True)).sum())
    a, b = a[fin], b[fin]
    d = (a - b).abs()
    out["max_abs"], out["mean_abs"] = float(d.max()), float(d.mean())
    out["rmse"] = float((d * d).mean().sqrt())
    out["rms_a"], out["rms_b"] = float((a * a).mean().sqrt()), float((b * b).mean().sqrt())
    nz = b != 0
    rel = d[nz] / b[nz].abs()
    out["max_rel"], out["mean_rel"] = float(rel.max()), float(rel.mean())
    del rel, nz
    floor = 1e-3 * out["rms_b"]
    relf = d / b.abs().clamp_min(floor)
    out["max_rel_floored"], out["mean_rel_floored"] = float(relf.max()), float(relf.mean())
    del relf
    out["cosine"] = float((a * b).sum() / ((a * a).sum() * (b * b).sum()).sqrt())
    ca, cb = a - a.mean(), b - b.mean()
    out["pearson"] = float((ca * cb).sum() / ((ca * ca).sum() * (cb * cb).sum()).sqrt())
    del ca, cb
    out["snr_db"] = float(10 * torch.log10((b * b).sum() / (d * d).sum()))
    del a, b
    # torch.quantile refuses inputs over 16M elements: sort, as a script would then do.
    s = d.sort().values
    n = s.numel()
    out["percentiles"] = [float(s[min(int((n - 1) * q), n - 1)]) for q in (0.5, 0.9, 0.99, 0.999)]
    del s
    nzd = d[d > 0]
    lo, hi = int(torch.floor(torch.log10(nzd.min()))), int(torch.floor(torch.log10(nzd.max())))
    out["histogram"] = [int(((nzd >= 10.0 ** k) & (nzd < 10.0 ** (k + 1))).sum()) for k in range(lo, hi + 1)]
    out["worst"] = d.topk(10).values.tolist()
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--backend", choices=["numpy", "torch"], required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("a")
    p.add_argument("b")
    args = p.parse_args()
    try:
        a, b = read_first_tensor(args.a), read_first_tensor(args.b)
        if args.backend == "torch":
            import torch
            if args.threads > 0:
                torch.set_num_threads(args.threads)
            run = lambda: metrics_torch(a, b, args.device)
            extra = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        else:
            import numpy
            run = lambda: metrics_numpy(a, b)
            extra = {"numpy": numpy.__version__}
    except ImportError as e:
        print(json.dumps({"backend": args.backend, "skipped": str(e)}))
        return
    best, out = None, None
    for _ in range(args.repeat):
        t = time.perf_counter()
        out = run()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    print(json.dumps({"backend": args.backend, "device": args.device, "seconds": best, **extra, "max_abs": out["max_abs"]}))


if __name__ == "__main__":
    sys.exit(main())
