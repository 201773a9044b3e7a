#!/usr/bin/env python3
"""Writes tests/fixtures/vit_tiny.safetensors: the educational ViT of models/vit/ built in plain PyTorch
at the "tiny" shape with a fixed seed, an input batch and the reference output (STYLE.md practice 7).

Where it sits: this script (torch, the reference of record) -> tests/fixtures/vit_tiny.safetensors ->
tests/test_vit.cpp (vislang::vit::VisionTransformer::load + forward, compared element by element).

The module below is written with nothing but torch.nn (Conv2d, Linear, LayerNorm, GELU) and follows
models/vit/vision_transformer.h line for line:
    patch_embed.proj (Conv2d with bias) -> flatten/transpose -> [cls_token; patches] + pos_embed
    -> depth x pre-LN block (q/k/v/out Linears, softmax(q kᵀ / sqrt(d)) v; fc1 -> GELU -> fc2)
    -> norm -> token 0
The hand-written attention is checked against torch.nn.MultiheadAttention with the same weights (packed
into in_proj_weight), so the fixture does not rest on our own reading of attention alone.

File layout (all names are what the C++ test reads):
    model.<name>   every weight, named as models/vit/vision_transformer.h documents, stored f16
                   (the random values are rounded to f16 first, so the storage is lossless and the
                   C++ side widens them to exactly the f32 values the reference used)
    pixels         (2, 3, 32, 32) input, f16-rounded values stored f16
    expected       (2, 64) output, computed in float64 from those values, stored f32
    metadata       format_version, config (JSON), torch, seed, f32_vs_f64 (how far torch's own f32
                   forward is from the f64 reference: the floor under any tolerance)

Bump FORMAT_VERSION when the layout changes, together with kVitFixtureVersion in tests/test_vit.cpp.
Deterministic; re-run after editing (needs torch and numpy only; a second):

    python3 tools/reference/make_vit_fixture.py
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT_VERSION = "1"
SEED = 20250101
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "vit_tiny.safetensors")
# The "tiny" preset of ViTConfig::preset (models/vit/vision_transformer.cpp).
TINY = dict(image_size=32, patch_size=8, width=64, depth=2, heads=4, mlp_dim=128, eps=1e-6, act="gelu")

sys.path.insert(0, os.path.join(ROOT, "tools"))
from convert import write_safetensors  # noqa: E402  (torch + numpy only, no safetensors package)


class Attention(nn.Module):
    """Multi-head self-attention with separate q/k/v/out projections (nn::MultiHeadAttention)."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x):                                                  # (B, T, C)
        B, T, C = x.shape
        H, D = self.heads, C // self.heads

        def split(t):                                                      # (B, T, C) -> (B, H, T, D)
            return t.view(B, T, H, D).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D), dim=-1)  # (B, H, T, T)
        o = (a @ v).transpose(1, 2).reshape(B, T, C)                       # (B, T, C)
        return self.out_proj(o)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm1 = nn.LayerNorm(c["width"], eps=c["eps"])
        self.attn = Attention(c["width"], c["heads"])
        self.norm2 = nn.LayerNorm(c["width"], eps=c["eps"])
        self.mlp = Mlp(c["width"], c["mlp_dim"])

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, c):
        super().__init__()
        P = c["patch_size"]
        self.proj = nn.Conv2d(3, c["width"], kernel_size=P, stride=P, bias=True)

    def forward(self, x):                                # (B, 3, S, S)
        return self.proj(x).flatten(2).transpose(1, 2)   # (B, N, C)


class VisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        n = (c["image_size"] // c["patch_size"]) ** 2
        self.patch_embed = PatchEmbed(c)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c["width"]))
        self.pos_embed = nn.Parameter(torch.zeros(1, n + 1, c["width"]))
        self.blocks = nn.ModuleList([Block(c) for _ in range(c["depth"])])
        self.norm = nn.LayerNorm(c["width"], eps=c["eps"])

    def forward(self, pixels):                                          # (B, 3, S, S)
        x = self.patch_embed(pixels)                                    # (B, N, C)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)  # (B, N + 1, C)
        x = x + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.norm(x)[:, 0]                                       # (B, C)


def randomize_(model, gen):
    """Well-scaled random values for every tensor (norm weights near 1, small biases), rounded to f16."""
    with torch.no_grad():
        for name, t in model.named_parameters():
            short = name.rsplit(".", 1)[-1]
            if "norm" in name and short == "weight":
                v = 1.0 + 0.1 * torch.randn(t.shape, generator=gen)
            elif short == "bias":
                v = 0.05 * torch.randn(t.shape, generator=gen)
            elif name in ("cls_token", "pos_embed"):
                v = 0.5 * torch.randn(t.shape, generator=gen)
            else:  # Linear / Conv weights: N(0, 1/fan_in), so activations stay O(1)
                v = torch.randn(t.shape, generator=gen) / math.sqrt(t[0].numel())
            t.copy_(v.half().float())
    return model.eval()


@torch.no_grad()
def check_attention_against_torch(model):
    """The hand-written attention equals nn.MultiheadAttention with the same (packed) weights."""
    for blk in model.blocks:
        a = blk.attn
        C = a.q_proj.weight.shape[0]
        mha = nn.MultiheadAttention(C, a.heads, batch_first=True).double()
        mha.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
        mha.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        mha.out_proj.weight.copy_(a.out_proj.weight)
        mha.out_proj.bias.copy_(a.out_proj.bias)
        x = torch.randn(2, 5, C, dtype=torch.float64)
        ref, _ = mha(x, x, x, need_weights=False)
        diff = (a(x) - ref).abs().max().item()
        assert diff < 1e-12, f"hand-written attention differs from nn.MultiheadAttention by {diff}"


def main():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = randomize_(VisionTransformer(TINY), gen).double()
    S = TINY["image_size"]
    pixels = torch.randn(2, 3, S, S, generator=gen, dtype=torch.float64).half().double()

    check_attention_against_torch(model)
    with torch.no_grad():
        expected = model(pixels)                                # float64: the reference of record
        got32 = model.float()(pixels.float()).double()          # torch's own float32 forward
    f32_vs_f64 = (got32 - expected).abs().max().item() / expected.abs().max().item()

    tensors = {f"model.{k}": v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    tensors["pixels"] = pixels.to(torch.float16).contiguous()
    tensors["expected"] = expected.to(torch.float32).contiguous()
    meta = {"format_version": FORMAT_VERSION, "config": json.dumps(TINY), "torch": torch.__version__,
            "seed": str(SEED), "generator": "tools/reference/make_vit_fixture.py",
            "f32_vs_f64": f"{f32_vs_f64:.3e}"}
    write_safetensors(OUT, tensors, meta)
    n_params = sum(v.numel() for k, v in tensors.items() if k.startswith("model."))
    print(f"wrote {os.path.relpath(OUT, ROOT)} ({os.path.getsize(OUT) / 1024:.1f} KiB): {len(tensors) - 2} weights, "
          f"{n_params} parameters, pixels {tuple(pixels.shape)}, expected {tuple(expected.shape)}, "
          f"max|expected| {expected.abs().max().item():.4f}, torch f32 vs f64: {f32_vs_f64:.3e} (relative)")


if __name__ == "__main__":
    main()
