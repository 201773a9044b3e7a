#!/usr/bin/env python3
"""Writes tests/fixtures/fusion/{early,late,late-product,hybrid}.safetensors: PyTorch golden values for
one training step of each VQA fusion model of models/fusion/ (STYLE.md practice 7), read by
tests/test_fusion.cpp.

Where it sits: this script (torch, float64) -> tests/fixtures/fusion/ -> tests/test_fusion.cpp, which
builds the same model in vislang on the same weights (WeightScope::from_params), runs the forward, the
cross-entropy and backward() in float32, and compares the logits, the loss and EVERY parameter gradient.

The torch modules below mirror models/fusion/*.h name for name (state_dict keys = vislang weight names):
pre-LN blocks (HF CLIPEncoderLayer layout) with exact GELU, LayerNorm eps 1e-5, attention with q/k/v/out
projections, padded question keys (after EOT) masked, answer from position 0.

Files (one per strategy), tensors:
  param.<name>     f32  the weights (random, so that every gradient is non-trivial: LayerNorm gains
                        1 + N(0, 0.1²), everything else N(0, 0.1²))
  input.pixels     f32  (B, 3, S, S)
  input.ids        i64  (B, T): SOT, tokens, EOT, then zero padding (rows of different lengths)
  input.targets    i64  (B): answer indices
  logits           f64  (B, A)
  loss             f64  ()   mean cross-entropy
  grad.<name>      f64  dL/d(param), computed in float64 from the f32 weights
metadata: format_version, strategy and the config (image_size, patch_size, vocab_size, context_length,
answers, width, heads, mlp_dim, joint_layers, image_layers, text_layers, fusion_hidden).

Bump FORMAT_VERSION when the layout changes, together with kFusionFixtureVersion in tests/test_fusion.cpp.
Deterministic; runs in a second:

    python3 tools/reference/make_fusion_fixtures.py
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT_VERSION = "1"
SEED = 20261129
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "fusion")

sys.path.insert(0, os.path.join(ROOT, "tools"))
from convert import write_safetensors  # noqa: E402  (torch + numpy only)

# A tiny config: 4 patches, 6 question positions, 7 answers.
CFG = dict(image_size=16, patch_size=8, vocab_size=20, context_length=6, answers=7, width=16, heads=2,
           mlp_dim=32, joint_layers=2, image_layers=1, text_layers=2, fusion_hidden=24)
B = 3
EPS = 1e-5


# ---- the pieces (models/fusion/common.h) ------------------------------------------------------------
class Attention(nn.Module):  # nn::MultiHeadAttention
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, xq, xkv, pad=None):  # pad: (B, Tk) bool, True = ignore the key
        Bn, Tq, C = xq.shape
        Tk, H = xkv.shape[1], self.heads
        q = self.q_proj(xq).view(Bn, Tq, H, C // H).transpose(1, 2)
        k = self.k_proj(xkv).view(Bn, Tk, H, C // H).transpose(1, 2)
        v = self.v_proj(xkv).view(Bn, Tk, H, C // H).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(C // H)
        if pad is not None:
            s = s.masked_fill(pad[:, None, None, :], float("-inf"))
        o = torch.softmax(s, -1) @ v
        return self.out_proj(o.transpose(1, 2).reshape(Bn, Tq, C))


class Mlp(nn.Module):
    def __init__(self, d, m):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(d, m), nn.Linear(m, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):  # clip::EncoderLayer
    def __init__(self, c):
        super().__init__()
        d = c["width"]
        self.layer_norm1 = nn.LayerNorm(d, eps=EPS)
        self.self_attn = Attention(d, c["heads"])
        self.layer_norm2 = nn.LayerNorm(d, eps=EPS)
        self.mlp = Mlp(d, c["mlp_dim"])

    def forward(self, x, pad=None):
        h = self.layer_norm1(x)
        x = x + self.self_attn(h, h, pad)
        return x + self.mlp(self.layer_norm2(x))


class Blocks(nn.Module):
    def __init__(self, c, n):
        super().__init__()
        self.layers = nn.ModuleList([Block(c) for _ in range(n)])

    def forward(self, x, pad=None):
        for l in self.layers:
            x = l(x, pad)
        return x


class PatchEmbed(nn.Module):
    def __init__(self, c, cls=False):
        super().__init__()
        n = (c["image_size"] // c["patch_size"]) ** 2
        if cls:
            self.cls_token = nn.Parameter(torch.zeros(c["width"]))
        self.patch_embedding = nn.Conv2d(3, c["width"], c["patch_size"], stride=c["patch_size"])
        self.position_embedding = nn.Parameter(torch.zeros(n, c["width"]))

    def forward(self, px):
        return self.patch_embedding(px).flatten(2).transpose(1, 2) + self.position_embedding


class TokenEmbed(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Parameter(torch.zeros(c["vocab_size"], c["width"]))
        self.position_embedding = nn.Parameter(torch.zeros(c["context_length"], c["width"]))

    def forward(self, ids):
        return self.token_embedding[ids] + self.position_embedding


def padding_mask(ids, eot):  # True after the first EOT
    is_eot = (ids == eot).long()
    return (torch.cumsum(is_eot, 1) - is_eot) > 0


# ---- the three strategies ---------------------------------------------------------------------------
class Early(nn.Module):  # models/fusion/early.h
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.cls_token = nn.Parameter(torch.zeros(c["width"]))
        self.type_embedding = nn.Parameter(torch.zeros(2, c["width"]))
        self.image = PatchEmbed(c)
        self.text = TokenEmbed(c)
        self.encoder = Blocks(c, c["joint_layers"])
        self.final_norm = nn.LayerNorm(c["width"], eps=EPS)
        self.classifier = nn.Linear(c["width"], c["answers"])

    def forward(self, px, ids):
        Bn = px.shape[0]
        img = self.image(px) + self.type_embedding[0]
        txt = self.text(ids) + self.type_embedding[1]
        x = torch.cat([self.cls_token.expand(Bn, 1, -1), img, txt], 1)
        pad = torch.cat([torch.zeros(Bn, 1 + img.shape[1], dtype=torch.bool), padding_mask(ids, self.c["vocab_size"] - 1)], 1)
        x = self.encoder(x, pad)
        return self.classifier(self.final_norm(x[:, 0]))


class Late(nn.Module):  # models/fusion/late.h
    def __init__(self, c, product):
        super().__init__()
        self.c, self.product = c, product
        self.image = PatchEmbed(c, cls=True)
        self.image_encoder = Blocks(c, c["image_layers"])
        self.image_norm = nn.LayerNorm(c["width"], eps=EPS)
        self.text = TokenEmbed(c)
        self.text_encoder = Blocks(c, c["text_layers"])
        self.text_norm = nn.LayerNorm(c["width"], eps=EPS)
        f = c["width"] if product else 2 * c["width"]
        self.fusion = Mlp(f, c["fusion_hidden"])
        self.fusion.fc2 = nn.Linear(c["fusion_hidden"], c["answers"])

    def forward(self, px, ids):
        Bn = px.shape[0]
        x = torch.cat([self.image.cls_token.expand(Bn, 1, -1), self.image(px)], 1)
        v = self.image_norm(self.image_encoder(x)[:, 0])
        q = self.text_norm(self.text_encoder(self.text(ids), padding_mask(ids, self.c["vocab_size"] - 1))[:, 0])
        h = v * q if self.product else torch.cat([v, q], 1)
        return self.fusion(h)


class HybridLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["width"]
        self.self_norm = nn.LayerNorm(d, eps=EPS)
        self.self_attn = Attention(d, c["heads"])
        self.cross_norm = nn.LayerNorm(d, eps=EPS)
        self.cross_attn = Attention(d, c["heads"])
        self.mlp_norm = nn.LayerNorm(d, eps=EPS)
        self.mlp = Mlp(d, c["mlp_dim"])

    def forward(self, x, m, pad):
        h = self.self_norm(x)
        x = x + self.self_attn(h, h, pad)
        x = x + self.cross_attn(self.cross_norm(x), m)
        return x + self.mlp(self.mlp_norm(x))


class Hybrid(nn.Module):  # models/fusion/hybrid.h
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.image = PatchEmbed(c)
        self.image_encoder = Blocks(c, c["image_layers"])
        self.image_norm = nn.LayerNorm(c["width"], eps=EPS)
        self.text = TokenEmbed(c)
        self.layers = nn.ModuleList([HybridLayer(c) for _ in range(c["text_layers"])])
        self.final_norm = nn.LayerNorm(c["width"], eps=EPS)
        self.classifier = nn.Linear(c["width"], c["answers"])

    def forward(self, px, ids):
        m = self.image_norm(self.image_encoder(self.image(px)))
        pad = padding_mask(ids, self.c["vocab_size"] - 1)
        x = self.text(ids)
        for l in self.layers:
            x = l(x, m, pad)
        return self.classifier(self.final_norm(x[:, 0]))


def build(strategy, c):
    if strategy == "early":
        return Early(c)
    if strategy == "late":
        return Late(c, product=False)
    if strategy == "late-product":
        return Late(c, product=True)
    return Hybrid(c)


def main():
    os.makedirs(OUT, exist_ok=True)
    c = CFG
    for k, strategy in enumerate(["early", "late", "late-product", "hybrid"]):
        g = torch.Generator().manual_seed(SEED + k)
        model = build(strategy, c)
        params = {}
        with torch.no_grad():
            for name, p in model.named_parameters():
                w = torch.randn(p.shape, generator=g, dtype=torch.float32) * 0.1
                if "norm" in name and name.endswith(".weight"):
                    w = w + 1.0
                p.copy_(w)
                params[name] = w
        px = torch.randn(B, 3, c["image_size"], c["image_size"], generator=g, dtype=torch.float32)
        V, T = c["vocab_size"], c["context_length"]
        ids = torch.zeros(B, T, dtype=torch.int64)
        for b, n in enumerate([T - 2, 1, 3][:B]):  # words per row: a full row, a short one, one in between
            ids[b, 0] = V - 2
            ids[b, 1:1 + n] = torch.randint(1, V - 2, (n,), generator=g)
            ids[b, 1 + n] = V - 1
        targets = torch.randint(0, c["answers"], (B,), generator=g)

        model = model.double()
        logits = model(px.double(), ids)
        loss = F.cross_entropy(logits, targets)
        loss.backward()
        tensors = {"input.pixels": px, "input.ids": ids, "input.targets": targets,
                   "logits": logits.detach(), "loss": loss.detach()}
        for name, p in model.named_parameters():
            tensors["param." + name] = params[name]
            tensors["grad." + name] = p.grad.detach()
        meta = {"format_version": FORMAT_VERSION, "generator": "tools/reference/make_fusion_fixtures.py",
                "torch": torch.__version__, "strategy": strategy}
        meta.update({k2: str(v) for k2, v in c.items()})
        path = os.path.join(OUT, strategy + ".safetensors")
        write_safetensors(path, {n: t.contiguous() for n, t in tensors.items()}, meta)
        print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes, {len(tensors)} tensors, "
              f"loss {loss.item():.6f})")


if __name__ == "__main__":
    main()
