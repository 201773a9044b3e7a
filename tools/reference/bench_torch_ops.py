#!/usr/bin/env python3
"""bench_torch_ops.py — vislang vs PyTorch on the ops of a ViT-B/32 forward at batch 32.

Runs `build/bin/vislang bench ops --format json` and the same cases in PyTorch (same thread count,
same shapes, same warm-up + median-of-N timing, inference mode), then prints both side by side with
the speed ratio vislang/torch (> 1 means vislang is faster). The case names, shapes and flop/byte
counts are the ones defined in cli/bench_ops.cpp; rates here are computed from the vislang counts so
both columns use the same numerator.

Run from the repository root after a build:
    python3 tools/reference/bench_torch_ops.py [--threads 2] [--reps 10] [--device cpu|cuda]
On a machine shared with other work, --rounds 3 alternates the two runs and keeps each case's
fastest median.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def torch_cases(torch, F, device):
    """name -> zero-argument callable, mirroring make_cases() in cli/bench_ops.cpp."""
    g = torch.Generator(device="cpu").manual_seed(1234)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device)

    B, T, R, D, MLP, H, HD = 32, 50, 1600, 768, 3072, 12, 64
    cases = {}

    def mm(name, M, K, N):
        a, b = randn(M, K), randn(K, N)
        cases[name] = lambda: torch.matmul(a, b)

    mm("matmul_fc1", R, D, MLP)
    mm("matmul_fc2", R, MLP, D)
    mm("matmul_qkv", R, D, 3 * D)
    x, w, bias = randn(R, D), randn(MLP, D), randn(MLP)

    def linear_quick_gelu():
        y = F.linear(x, w, bias)
        return y * torch.sigmoid(1.702 * y)

    cases["linear_fc1_quick_gelu"] = linear_quick_gelu
    q, k, v = randn(B, H, T, HD), randn(B, H, T, HD), randn(B, H, T, HD)
    cases["attention"] = lambda: F.scaled_dot_product_attention(q, k, v)
    xl, wl, bl = randn(R, D), randn(D), randn(D)
    cases["layer_norm"] = lambda: F.layer_norm(xl, (D,), wl, bl, 1e-5)
    xg = randn(R, MLP)
    cases["gelu"] = lambda: F.gelu(xg)
    cases["quick_gelu"] = lambda: xg * torch.sigmoid(1.702 * xg)
    xs = randn(B * H, T, T)
    cases["softmax"] = lambda: torch.softmax(xs, -1)
    xc, wc = randn(B, 3, 224, 224), randn(D, 3, 32, 32)
    cases["conv2d_patch"] = lambda: F.conv2d(xc, wc, stride=32)
    return cases


def median_ms(fn, warmup, reps, sync):
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    n = len(ts)
    return ts[n // 2] if n % 2 else 0.5 * (ts[n // 2 - 1] + ts[n // 2])


def run_vislang(binary, args):
    cmd = [str(binary), "bench", "ops", "--format", "json", "--device", args.device, "--threads", str(args.threads),
           "--reps", str(args.reps), "--warmup", str(args.warmup)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"bench_torch_ops: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_threads = int(os.environ.get("OMP_NUM_THREADS", 0)) or os.cpu_count() or 1
    ap.add_argument("--threads", type=int, default=default_threads, help="threads for both (default %(default)s)")
    ap.add_argument("--reps", type=int, default=10, help="timed runs per case (median)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    ap.add_argument("--rounds", type=int, default=1, help="alternate vislang/torch this many times, keep the best")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--binary", default="build/bin/vislang", help="path to the vislang binary")
    args = ap.parse_args()

    binary = Path(args.binary)
    if not binary.exists() and not binary.is_absolute() and (REPO / binary).exists():
        binary = REPO / binary
    if not binary.exists():
        sys.exit(f"bench_torch_ops: {args.binary} not found; build first: "
                 "cmake -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j")

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    vis, tor, meta = {}, {}, None
    with torch.inference_mode():
        cases = torch_cases(torch, F, device)
        for _ in range(args.rounds):
            meta = run_vislang(binary, args)
            for r in meta["results"]:
                prev = vis.get(r["name"])
                if prev is None or r["ms"] < prev["ms"]:
                    vis[r["name"]] = r
            for name, fn in cases.items():
                ms = median_ms(fn, args.warmup, args.reps, sync)
                tor[name] = min(ms, tor.get(name, float("inf")))

    print(f"vislang vs torch {torch.__version__} on {meta['device']} ({meta['device_name']}), "
          f"{args.threads} threads, median of {args.reps} runs" + (f", best of {args.rounds} rounds" if args.rounds > 1 else ""))
    if meta.get("peak_gflops_f32"):
        print(f"fp32 peak {meta['peak_gflops_f32']:.1f} GFLOP/s nominal, "
              f"{meta['measured_fma_peak_gflops_f32']:.1f} GFLOP/s measured (FMA loop)")
    print()
    hdr = f"{'op':<22} {'vislang ms':>10} {'torch ms':>10} {'vislang GF/s':>12} {'torch GF/s':>11} " \
          f"{'vislang GB/s':>12} {'torch GB/s':>11} {'vislang/torch':>13}"
    print(hdr)
    print("-" * len(hdr))
    for name, r in vis.items():
        if name not in tor:
            continue
        t_ms = tor[name]
        flops = r["gflops"] * r["ms"] * 1e6  # per call, from the vislang counts
        nbytes = r["gbps"] * r["ms"] * 1e6
        print(f"{name:<22} {r['ms']:>10.3f} {t_ms:>10.3f} {r['gflops']:>12.1f} {flops / t_ms / 1e6:>11.1f} "
              f"{r['gbps']:>12.1f} {nbytes / t_ms / 1e6:>11.1f} {t_ms / r['ms']:>12.2f}x")
    print("\nvislang/torch = torch time / vislang time (> 1: vislang faster). "
          "Elementwise flop counts are nominal; compare their GB/s.")


if __name__ == "__main__":
    main()
