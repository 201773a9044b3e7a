#!/usr/bin/env python3
"""bench_peers.py — the CLIP image tower in vislang, PyTorch and ONNX Runtime, side by side.

All three run the ViT-B/32 image tower (vision transformer + visual projection, 224x224, patch 32,
width 768, 12 layers, quick_gelu; 88M parameters) with random weights, fp32, on the CPU, with the
same thread count and batch sizes, the same warm-up + median-of-N timing, on random pixels:

  vislang  build/bin/vislang bench clip --model ViT-B/32 --batch B --threads T --format json
           --tower image --reps R --warmup W       (random weights written by cli/bench_clip.cpp)
  torch    transformers CLIPVisionModelWithProjection(CLIPVisionConfig at ViT-B/32 shape), random
           init, torch.inference_mode(), torch.set_num_threads(T), set_num_interop_threads(1)
  ORT      the same torch model exported to ONNX (opset 17, dynamic batch) in --onnx-dir, run by
           onnxruntime's CPU provider with intra_op_num_threads=T, inter_op_num_threads=1,
           ORT_ENABLE_ALL graph optimizations, sequential execution

Each framework runs in its own process, so "peak RSS" (getrusage ru_maxrss of that process, MiB)
is its own: for torch it includes importing torch + transformers, for ORT importing onnxruntime
only (the export runs in a separate process first). Ratios > 1 mean vislang is faster.
The weights differ between vislang and the peers (both random); the shapes and the work are the same.

--dtype bf16 runs vislang with --dtype bf16 (bf16 weights and activations, bf16 matmul inputs with
f32 sums) and torch with model.to(torch.bfloat16) on bf16 pixels; ONNX Runtime is skipped (its CPU
provider has no bf16 kernels for these ops).

Run from the repository root after a build:
    python3 tools/reference/bench_peers.py [--threads 2] [--batches 1,32] [--reps 5] [--rounds 1] [--dtype f32|bf16]
On a machine shared with other work, --rounds 3 repeats every measurement and keeps the fastest.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ONNX_NAME = "clip_vit_b32_image_tower.onnx"


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def median_ms(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def make_torch_model(torch):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32, projection_dim=512, hidden_act="quick_gelu",
                           layer_norm_eps=1e-5)
    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(cfg).eval()

    class ImageTower(torch.nn.Module):  # pixels (B, 3, 224, 224) -> image_embeds (B, 512)
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values).image_embeds

    return ImageTower(model).eval()


# ---- workers (each in its own process) -------------------------------------------------------------
def worker_torch(args):
    import torch

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    model = make_torch_model(torch).to(dtype)
    x = torch.randn(args.batch, 3, 224, 224).to(dtype)
    with torch.inference_mode():
        ms = median_ms(lambda: model(x), args.warmup, args.reps)
    return {"ms": ms, "images_per_s": args.batch * 1000.0 / ms, "peak_rss_mib": peak_rss_mib(),
            "threads": torch.get_num_threads(), "version": torch.__version__}


def worker_export(args):
    import warnings

    import numpy as np
    import torch

    warnings.filterwarnings("ignore")  # the tracer's notes on shape checks that are constant at 224x224

    torch.set_num_threads(args.threads)
    model = make_torch_model(torch)
    x = torch.randn(2, 3, 224, 224)
    path = Path(args.onnx_dir) / ONNX_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    kwargs = dict(input_names=["pixel_values"], output_names=["image_embeds"],
                  dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}}, opset_version=17)
    try:
        torch.onnx.export(model, (x,), str(tmp), dynamo=False, **kwargs)
    except TypeError:  # torch without the dynamo switch
        torch.onnx.export(model, (x,), str(tmp), **kwargs)
    os.replace(tmp, path)
    # Sanity: ORT reproduces torch on the exported graph.
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        ref = model(x).numpy()
    got = sess.run(["image_embeds"], {"pixel_values": x.numpy()})[0]
    return {"path": str(path), "max_abs_diff_vs_torch": float(np.abs(got - ref).max()),
            "max_abs_ref": float(np.abs(ref).max())}


def worker_ort(args):
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(Path(args.onnx_dir) / ONNX_NAME), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((args.batch, 3, 224, 224), dtype=np.float32)
    ms = median_ms(lambda: sess.run(["image_embeds"], {"pixel_values": x}), args.warmup, args.reps)
    return {"ms": ms, "images_per_s": args.batch * 1000.0 / ms, "peak_rss_mib": peak_rss_mib(),
            "version": ort.__version__}


# ---- driver -------------------------------------------------------------------------------------------
def run_json(cmd, env=None):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"bench_peers: {' '.join(map(str, cmd))} failed with exit status {p.returncode}:\n{p.stderr}")
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        sys.exit(f"bench_peers: {' '.join(map(str, cmd))} did not print JSON:\n{p.stdout}\n{p.stderr}")


def run_worker(kind, args, batch):
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--batch", str(batch), "--threads",
           str(args.threads), "--reps", str(args.reps), "--warmup", str(args.warmup), "--onnx-dir", args.onnx_dir,
           "--dtype", args.dtype]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    return run_json(cmd, env)


def run_vislang(args, batch):
    cmd = [args.vislang, "bench", "clip", "--model", "ViT-B/32", "--batch", str(batch), "--threads", str(args.threads),
           "--format", "json", "--tower", "image", "--reps", str(args.reps), "--warmup", str(args.warmup),
           "--dtype", args.dtype]
    return run_json(cmd)


def best(runs):  # the fastest of --rounds repetitions (least disturbed by other load)
    return max(runs, key=lambda r: r["images_per_s"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batches", default="1,32", help="comma-separated batch sizes (default 1,32)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1, help="repeat every measurement, keep the fastest")
    ap.add_argument("--vislang", default=str(REPO / "build" / "bin" / "vislang"))
    ap.add_argument("--onnx-dir", default="/tmp/vislang_bench_peers")
    ap.add_argument("--skip-ort", action="store_true")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32", help="vislang and torch run in this dtype")
    ap.add_argument("--worker", choices=["torch", "ort", "export"], help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        fn = {"torch": worker_torch, "ort": worker_ort, "export": worker_export}[args.worker]
        print(json.dumps(fn(args)))
        return
    if not Path(args.vislang).exists():
        sys.exit(f"bench_peers: {args.vislang} not found: build first (cmake -S . -B build && cmake --build build) "
                 "or pass --vislang PATH")
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    args.skip_ort = args.skip_ort or args.dtype != "f32"

    if not args.skip_ort:
        exp = run_worker("export", args, 2)
        print(f"exported {exp['path']} (ORT vs torch max |diff| {exp['max_abs_diff_vs_torch']:.2e}, "
              f"max |ref| {exp['max_abs_ref']:.2e})", file=sys.stderr)

    rows = []
    for b in batches:
        vl, th, ox = [], [], []
        for r in range(args.rounds):
            print(f"batch {b}, round {r + 1}/{args.rounds}: vislang", file=sys.stderr, flush=True)
            vl.append(run_vislang(args, b))
            print(f"batch {b}, round {r + 1}/{args.rounds}: torch", file=sys.stderr, flush=True)
            th.append(run_worker("torch", args, b))
            if not args.skip_ort:
                print(f"batch {b}, round {r + 1}/{args.rounds}: onnxruntime", file=sys.stderr, flush=True)
                ox.append(run_worker("ort", args, b))
        rows.append((b, best(vl), best(th), best(ox) if ox else None))

    v0, t0 = rows[0][1], rows[0][2]
    print(f"CLIP ViT-B/32 image tower, {args.dtype}, CPU ({v0['device_name']}), {args.threads} threads, random weights; "
          f"median of {args.reps} runs after {args.warmup} warm-up, best of {args.rounds} round(s)")
    print(f"vislang {args.vislang}; torch {t0['version']}; onnxruntime "
          f"{rows[0][3]['version'] if rows[0][3] else '(skipped)'}")
    head = (f"{'batch':>5}  {'vislang img/s':>13}  {'torch img/s':>11}  {'ORT img/s':>9}  {'vislang/torch':>13}  "
            f"{'vislang/ORT':>11}  {'RSS vislang':>11}  {'RSS torch':>9}  {'RSS ORT':>8}")
    print(head)
    print("-" * len(head))
    for b, v, t, o in rows:
        ort_ips = f"{o['images_per_s']:9.2f}" if o else f"{'-':>9}"
        ort_ratio = f"{v['images_per_s'] / o['images_per_s']:11.2f}" if o else f"{'-':>11}"
        ort_rss = f"{o['peak_rss_mib']:8.0f}" if o else f"{'-':>8}"
        print(f"{b:>5}  {v['images_per_s']:13.2f}  {t['images_per_s']:11.2f}  {ort_ips}  "
              f"{v['images_per_s'] / t['images_per_s']:13.2f}  {ort_ratio}  {v['peak_rss_mib']:11.0f}  "
              f"{t['peak_rss_mib']:9.0f}  {ort_rss}")
    print("RSS: peak resident set of each process in MiB (torch includes importing torch + transformers).")


if __name__ == "__main__":
    main()
