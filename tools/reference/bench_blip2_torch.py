#!/usr/bin/env python3
"""bench_blip2_torch.py — BLIP-2 image throughput in vislang and in PyTorch (transformers), side by side.

Both run blip2-itm-vit-g's image path with random weights on the CPU, in float32 or (--dtype bf16) in
bfloat16, with the same thread count, batch sizes and timing (warm-up, then the median of --reps
runs), on random inputs:

  vision + Q-Former   pixels (B, 3, 224, 224) -> ViT-g/14 (39 layers, width 1408) -> (B, 257, 1408)
                      -> Q-Former (12 layers, 32 queries) -> vision_projection -> normalize (B, 32, 256)
  Q-Former alone      image features (B, 257, 1408) -> the same Q-Former + projection

  vislang  build/bin/vislang bench blip2 --format json --threads T --batch ... (cli/bench_blip2.cpp;
           random weights written by models/blip2 write_random_blip2)
  torch    transformers Blip2ForImageTextRetrieval(Blip2Config at blip2-itm-vit-g shape), random init,
           eval(), torch.inference_mode(), torch.set_num_threads(T), set_num_interop_threads(1); the same
           three calls HF's forward(use_image_text_matching_head=False) makes for the image side:
           vision_model -> qformer(query_tokens, encoder_hidden_states) -> normalize(vision_projection(.))

--dtype bf16: vislang runs with --dtype bf16 (weights and activations stored as bf16; every matmul
multiplies bf16 values and sums in f32, see docs/engine.md) and torch with model.to(torch.bfloat16) and
bf16 inputs (its CPU linear layers then run oneDNN's bf16 kernels where the CPU has AVX512_BF16).

Each framework runs in its own process (vislang first, then torch), so their memory does not add up.
For each run the script prints how much CPU other processes used meanwhile (from /proc/stat): a
shared machine is only fit for this when that is ~0.
Ratios > 1 mean vislang is faster. The "ceiling" column is the largest ratio vislang could print against
that torch run: vislang's flops per image (`vislang bench blip2` counts them; its Q-Former cross-attention
needs fewer than written, docs/qformer.md) all at the register-only FMA / vdpbf16ps peak it measured on
the same threads. The weights differ (both random); the shapes and the work are the
same. The machine should be quiet: the load average is printed before and after.

    python3 tools/reference/bench_blip2_torch.py [--threads 2] [--batches 1,8] [--reps 3] [--dtype f32|bf16]
                                                 [--vislang PATH]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peers import median_ms  # noqa: E402  (warm-up, then the median of the timed runs, in ms)


def run_torch(args):
    import torch
    import torch.nn.functional as F
    from transformers import Blip2Config, Blip2ForImageTextRetrieval

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    cfg = Blip2Config(
        vision_config=dict(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39, num_attention_heads=16,
                           image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-6),
        qformer_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                            vocab_size=30523, cross_attention_frequency=2, use_qformer_text_input=True),
        num_query_tokens=32, image_text_hidden_size=256)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    t0 = time.perf_counter()
    model = Blip2ForImageTextRetrieval(cfg).eval().to(dtype)
    build_s = time.perf_counter() - t0

    def image_side(pixels):
        feats = model.vision_model(pixel_values=pixels).last_hidden_state
        return qformer_side(feats)

    def qformer_side(feats):
        q = model.query_tokens.expand(feats.shape[0], -1, -1)
        ones = torch.ones(feats.shape[:-1], dtype=torch.long)
        out = model.qformer(query_embeds=q, encoder_hidden_states=feats, encoder_attention_mask=ones)
        return F.normalize(model.vision_projection(out.last_hidden_state), dim=-1)

    if args.count_flops:
        # torch's own count of the same calls at batch 1 (matmuls and attention, 2 per multiply-add):
        # tests/test_blip2.cpp checks blip2::image_flops(..., as_written = true) against these numbers.
        from torch.utils.flop_counter import FlopCounterMode  # needs grad mode on (not inference_mode)
        feats = model.vision_model(pixel_values=torch.randn(1, 3, 224, 224)).last_hidden_state.detach()
        counts = {}
        for name, fn in (("vision", lambda: model.vision_model(pixel_values=torch.randn(1, 3, 224, 224))),
                         ("qformer", lambda: qformer_side(feats))):
            with FlopCounterMode(display=False) as fc:
                fn()
            counts[name] = fc.get_total_flops()
        print(json.dumps({"torch": torch.__version__, "flops_per_image": counts}))
        return

    rows = []
    with torch.inference_mode():
        for b in args.batches:
            if args.part != "qformer":
                pixels = torch.randn(b, 3, 224, 224).to(dtype)
                rows.append(("vision + Q-Former", b, median_ms(lambda: image_side(pixels), args.warmup, args.reps)))
            if args.part != "vision":
                feats = torch.randn(b, 257, 1408).to(dtype)
                rows.append(("Q-Former alone", b, median_ms(lambda: qformer_side(feats), args.warmup, args.reps)))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "build_s": build_s,
                      "peak_rss_mib": rss, "results": [dict(part=p, batch=b, ms=ms) for p, b, ms in rows]}))


def loadavg():
    return "%.2f %.2f %.2f" % os.getloadavg()


def cpu_busy_s():
    """Seconds of CPU time the whole machine has spent busy (all CPUs, /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def run_measured(cmd, env=None):
    """Runs cmd; returns (stdout, share of one CPU that OTHER processes used meanwhile). The share is
    (machine busy time - the child's CPU time) / wall time: ~0 on a quiet machine; if it is large, the
    numbers of that run are not trustworthy."""
    busy0, kids0, t0 = cpu_busy_s(), resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    kids1, busy1, wall = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_busy_s(), time.time() - t0
    own = (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime)
    return out, max(0.0, (busy1 - busy0) - own) / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--part", choices=["all", "vision", "qformer"], default="all")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32", help="both run in this dtype (default f32)")
    ap.add_argument("--vislang", default=str(REPO / "build" / "bin" / "vislang"), help="the vislang binary")
    ap.add_argument("--model", default="blip2-itm-vit-g",
                    help="vislang's --model: the preset (random weights written for each run), or a model of that "
                         "shape already on disk, e.g. DIR/hf from make_blip2_fixtures.py --full DIR (skips writing 4.6 GB)")
    ap.add_argument("--torch-only", action="store_true", help=argparse.SUPPRESS)  # the worker process
    ap.add_argument("--count-flops", action="store_true",
                    help="only print torch's FlopCounterMode count of one image (f32), then exit")
    args = ap.parse_args()
    args.batches = [int(b) for b in args.batches.split(",") if b]
    if args.torch_only or args.count_flops:
        run_torch(args)
        return 0

    print(f"load average before: {loadavg()} (benchmark only on a quiet machine)", flush=True)
    common = ["--threads", str(args.threads), "--reps", str(args.reps), "--warmup", str(args.warmup),
              "--dtype", args.dtype]
    cmd = [args.vislang, "bench", "blip2", "--format", "json", "--model", args.model,
           "--batch", ",".join(map(str, args.batches)), "--part", args.part, *common]
    print("$ " + " ".join(cmd), flush=True)
    out, vl_other = run_measured(cmd)
    vl = json.loads(out)
    cmd = [sys.executable, __file__, "--torch-only", "--batches", ",".join(map(str, args.batches)), "--part", args.part,
           *common]
    print("$ " + " ".join(cmd[1:]), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    out, th_other = run_measured(cmd, env)
    th = json.loads(out.splitlines()[-1])
    print(f"load average after:  {loadavg()}")
    print(f"other processes used {vl_other:.2f} CPUs during the vislang run, {th_other:.2f} during the torch run "
          f"(more than ~0.1: re-run on a quieter machine)\n")

    print(f"BLIP-2 blip2-itm-vit-g image side, random weights, {args.dtype}, CPU ({vl['device_name']}), "
          f"{args.threads} threads, median of {args.reps} after {args.warmup} warm-up")
    print(f"vislang peak RSS {vl['peak_rss_mib']:.0f} MiB; torch {th['torch']} peak RSS {th['peak_rss_mib']:.0f} MiB\n")
    peak = vl.get("measured_peak_gflops")
    print(f"{'part':<20} {'batch':>5} {'vislang img/s':>14} {'torch img/s':>12} {'ratio':>7} "
          f"{'vislang GFLOP/s':>16} {'torch GFLOP/s':>14} {'ceiling':>8}")
    torch_ms = {(r["part"], r["batch"]): r["ms"] for r in th["results"]}
    for r in vl["results"]:
        t = torch_ms[(r["part"], r["batch"])]
        vl_ips, th_ips = r["batch"] * 1000 / r["ms"], r["batch"] * 1000 / t
        # ceiling: the ratio vislang would print if it ran all its flops at the measured register-only peak
        ceiling = f"{peak / (r['gflop_per_image'] * th_ips):>7.2f}x" if peak else f"{'-':>8}"
        print(f"{r['part']:<20} {r['batch']:>5} {vl_ips:>14.3f} {th_ips:>12.3f} {t / r['ms']:>6.2f}x "
              f"{r['gflop_per_image'] * vl_ips:>16.1f} {r['gflop_per_image_as_written'] * th_ips:>14.1f} {ceiling}")
    if peak:
        print(f"\nGFLOP/s: matmul flops per image (vislang as it runs them, torch as HF writes them) x images/s. "
              f"ceiling: the\nratio vislang would reach with every one of its flops at the measured peak, "
              f"{peak:.1f} GFLOP/s ({vl['measured_peak_of']},\n{args.threads} threads), against this torch run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
