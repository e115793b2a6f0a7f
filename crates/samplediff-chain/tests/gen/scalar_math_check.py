#!/usr/bin/env python3
"""How often torch's float32 log/exp/expm1/logit (the CPU kernels samplers use on 0-d sigma
tensors) differ from the correctly rounded result that samplediff's `sampler::scalar` computes
(float64 evaluation, one rounding to float32). Prints one line per function; writes nothing.

Usage:  python3 scalar_math_check.py [N]
"""
import math
import sys

import numpy as np
import torch

torch.set_num_threads(1)
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
g = torch.Generator().manual_seed(0)
sigmas = torch.exp(torch.empty(n).uniform_(math.log(1e-4), 0.0, generator=g)).float()  # (1e-4, 1]
ts = torch.empty(n).uniform_(-12.0, 12.0, generator=g).float()


def correctly_rounded(fn, values):
    return np.array([fn(float(v)) for v in values.tolist()], dtype=np.float64).astype(np.float32)


def logit64(v):
    q = np.float32(v) / (np.float32(1.0) - np.float32(v))  # torch rounds the quotient to f32 first
    return math.log(float(q)) if v != 1.0 else math.inf


def report(name, torch_fn, ref_fn, values):
    got = torch_fn(values).numpy()
    want = correctly_rounded(ref_fn, values)
    diff = got.view(np.int32).astype(np.int64) - want.view(np.int32).astype(np.int64)
    bad = np.count_nonzero(diff)
    # 0-d tensors (what samplers use) must take the same per-element path
    zero_d = [float(torch_fn(values[i].clone().reshape(()))) for i in range(0, n, max(1, n // 2000))]
    same = all(np.float32(a) == got[i * max(1, n // 2000)] for i, a in enumerate(zero_d))
    print(f"{name:6s}: {bad} of {n} differ from correctly rounded (max {np.abs(diff).max()} ulp); "
          f"0-d results equal vector results: {same}")


print("torch", torch.__version__, "capability", torch.backends.cpu.get_cpu_capability(), "mkl", torch.backends.mkl.is_available())
report("sqrt", torch.sqrt, math.sqrt, sigmas)
report("pow.5", lambda t: t ** 0.5, math.sqrt, sigmas)
report("log", torch.log, math.log, sigmas)
report("exp", torch.exp, math.exp, ts)
report("expm1", torch.expm1, math.expm1, ts)
report("logit", torch.logit, logit64, sigmas.clamp(max=0.9999))
