#!/usr/bin/env python3
"""Writes tests/fixtures/grad/*.safetensors: PyTorch autograd gradients that tests/test_autograd.cpp
compares vislang's reverse-mode autograd with (STYLE.md practice 7: golden files from the reference).

Where it sits: torch.autograd (the reference of record) -> this file -> tests/fixtures/grad/ ->
tests/test_autograd.cpp ("autograd" suite), which rebuilds each computation with vislang::ops /
models/clip, calls backward() and compares every gradient.

Files (each < 1 MB, all deterministic):
  ops.safetensors        per-op cases. Case "<name>": inputs "<name>.in.<role>" (float roles f64, drawn as
                         f32-representable values so the C++ f32 run sees the same numbers; ids i64, masks
                         u8), a random upstream gradient "<name>.gout", the output "<name>.out" and torch's
                         gradients "<name>.grad.<role>" for every float input, all float64. Metadata "<name>"
                         = JSON params with "op" naming the C++ runner.
  clip_layer.safetensors one HF CLIPEncoderLayer (width 32, 4 heads, mlp 64, quick_gelu) run twice: "plain"
                         (no mask) and "causal" (HF's additive causal mask; C++ uses causal = true). Per case
                         "<case>.x" (2, 7, 32), "<case>.gout", "<case>.out", "<case>.grad.x" and
                         "<case>.grad.<param>"; parameters "param.<HF name>" (shared by both cases).
  clip_model.safetensors a tiny HF CLIPModel (vision: width 32, 2 layers, 4 heads, patch 8, image 32; text:
                         vocab 64, context 8, width 32, 2 layers, 4 heads; projection 16), its parameters
                         "param.<HF name>", "pixels" (4, 3, 32, 32), "input_ids" (4, 8) (eos = 63 at a random
                         position per row, so the pooling takes the first eos as HF does when eos != 2),
                         the CLIP InfoNCE loss "loss" () — L2-normalise both embeddings, logits =
                         exp(logit_scale)·I·Tᵀ, (CE(logits, arange) + CE(logitsᵀ, arange)) / 2 — and
                         "grad.<HF name>" for every parameter, logit_scale included. Metadata "config" is the
                         HF config.json (ClipConfig::from_hf reads it).
The CLIP files hold f32 tensors: parameters and inputs are f32 values, the references (out, loss,
grads) are computed by torch in float64 from exactly those values and rounded once to f32. Attention
runs through torch SDPA ("sdpa"): HF's "eager" path computes the softmax in float32 even for a float64
model, which would leave ~1e-7 noise in the references. A check: the gradient of every k_proj.bias is
zero in exact arithmetic (a per-query constant added to the scores), and must come out below 1e-12.

Bump FORMAT_VERSION when the layout (not the values) changes, together with kGradFixtureVersion in
tests/test_autograd.cpp. Re-run after editing (deterministic, a few seconds):

    python3 tools/reference/make_grad_fixtures.py
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_op_fixtures import write_deterministic  # noqa: E402  (sorted metadata: byte-stable files)

FORMAT_VERSION = "1"
OUT_DIR = os.path.join(HERE, "..", "..", "tests", "fixtures", "grad")

f64, f32, i64, u8 = torch.float64, torch.float32, torch.int64, torch.uint8
gen = torch.Generator().manual_seed(20240923)
TENSORS = {}
CASES = {}


def rand(*shape, lo=-2.0, hi=2.0):
    """f32-representable values in [lo, hi), held in float64."""
    return (torch.rand(shape, generator=gen, dtype=f64) * (hi - lo) + lo).to(f32).to(f64)


def away_from_zero(*shape):
    m = rand(*shape, lo=0.5, hi=2.0)
    return torch.where(rand(*shape) < 0, -m, m)


def randint(lo, hi, *shape):
    return torch.randint(lo, hi, shape, generator=gen, dtype=i64)


def case(name, op, inputs, fn, **params):
    """inputs: role -> tensor (float roles get gradients; None = absent). fn(**inputs) -> output."""
    assert name not in CASES, name
    CASES[name] = dict(op=op, **params)
    leaves = {}
    for role, t in inputs.items():
        if t is None:
            continue
        TENSORS[f"{name}.in.{role}"] = t.contiguous().clone()
        leaves[role] = t.clone().requires_grad_(t.is_floating_point())
    out = fn(*[leaves.get(r) for r in inputs])
    gout = rand(*out.shape)
    out.backward(gout)
    TENSORS[f"{name}.out"] = out.detach().contiguous()
    TENSORS[f"{name}.gout"] = gout.contiguous()
    for role, t in leaves.items():
        if t.is_floating_point():
            g = t.grad if t.grad is not None else torch.zeros_like(t)
            TENSORS[f"{name}.grad.{role}"] = g.contiguous()


# ---- elementwise ------------------------------------------------------------------------------------
BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
          "maximum": torch.maximum, "minimum": torch.minimum, "pow": torch.pow}
UNARY = {
    "neg": torch.neg, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
    "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "abs": torch.abs, "square": torch.square, "reciprocal": torch.reciprocal,
}


def elementwise_cases():
    # broadcasting in both directions: a smaller than the result, then b smaller
    for kind in BINARY:
        for tag, sa, sb in [("bcast_b", (3, 4, 5), (4, 1)), ("bcast_a", (1, 5), (3, 2, 5))]:
            a = rand(*sa, lo=0.25, hi=2.0) if kind == "pow" else rand(*sa)
            b = away_from_zero(*sb) if kind == "div" else rand(*sb, lo=-1.5, hi=1.5)
            case(f"binary.{kind}.{tag}", "binary", {"a": a, "b": b}, BINARY[kind], kind=kind)
    for kind, s, reverse in [("add", 0.75, False), ("sub", 1.25, False), ("mul", -1.5, False), ("div", 2.5, False),
                             ("pow", 2.5, False), ("pow", 3.0, False), ("maximum", 0.25, False),
                             ("minimum", -0.25, False), ("add", 0.5, True), ("sub", 2.0, True), ("mul", 1.75, True),
                             ("div", 1.5, True), ("pow", 1.5, True)]:
        x = rand(3, 5, lo=0.25, hi=2.0) if kind == "pow" else away_from_zero(3, 5) if kind == "div" else rand(3, 5)

        def fn(x, kind=kind, s=s, reverse=reverse):
            xs = torch.full_like(x, s)
            return BINARY[kind](xs, x) if reverse else BINARY[kind](x, xs)
        case(f"scalar.{'r' if reverse else ''}{kind}.{s:g}", "scalar", {"x": x}, fn, kind=kind, s=s, reverse=reverse)
    for kind, fn in UNARY.items():
        if kind in ("log", "sqrt", "rsqrt"):
            x = rand(3, 5, lo=0.2, hi=4.0)
        elif kind == "reciprocal":
            x = away_from_zero(3, 5)
        else:
            x = rand(3, 5, lo=-3.0, hi=3.0)
        case(f"unary.{kind}", "unary", {"x": x}, fn, kind=kind)
    for tag, lo, hi in [("both", -0.5, 0.75), ("lo", 0.25, None), ("hi", None, -0.25)]:
        params = {k: v for k, v in (("lo", lo), ("hi", hi)) if v is not None}
        case(f"clamp.{tag}", "clamp", {"x": rand(4, 5)}, lambda x, lo=lo, hi=hi: torch.clamp(x, min=lo, max=hi),
             **params)
    cond = (rand(4, 1) > 0).to(u8)
    case("where", "where", {"cond": cond, "a": rand(3, 4, 5), "b": rand(5)},
         lambda cond, a, b: torch.where(cond.bool(), a, b))


# ---- reductions, softmax, losses ------------------------------------------------------------------------
def reduction_cases():
    fns = {"sum": lambda x, dm, k: x.sum(dm, keepdim=k), "mean": lambda x, dm, k: x.mean(dm, keepdim=k),
           "max": lambda x, dm, k: x.amax(dm, keepdim=k), "min": lambda x, dm, k: x.amin(dm, keepdim=k)}
    for kind, fn in fns.items():
        for dim, keepdim in [(0, False), (1, True), (-1, False)]:
            case(f"reduce.{kind}.dim{dim}{'.keepdim' if keepdim else ''}", "reduce", {"x": rand(3, 4, 5)},
                 lambda x, fn=fn, dim=dim, keepdim=keepdim: fn(x, dim, keepdim), kind=kind, dim=dim, keepdim=keepdim)
    case("sum_all", "sum_all", {"x": rand(3, 4)}, lambda x: x.sum())
    for k, dim, largest in [(3, -1, True), (2, 0, False)]:
        case(f"topk.k{k}.dim{dim}", "topk", {"x": rand(4, 6)},
             lambda x, k=k, dim=dim, largest=largest: torch.topk(x, k, dim=dim, largest=largest).values,
             k=k, dim=dim, largest=largest)
    for op, fn in [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]:
        for dim in [0, 1, -1]:
            case(f"{op}.dim{dim}", op, {"x": rand(3, 4, 5, lo=-3, hi=3)}, lambda x, fn=fn, dim=dim: fn(x, dim), dim=dim)
    for dim in [0, -1]:
        case(f"l2_normalize.dim{dim}", "l2_normalize", {"x": rand(3, 5)},
             lambda x, dim=dim: F.normalize(x, dim=dim), dim=dim)
    targets = torch.tensor([2, 0, -100, 4, 1, -100], dtype=i64)
    for red in ["mean", "sum", "none"]:
        case(f"cross_entropy.{red}", "cross_entropy", {"logits": rand(6, 5, lo=-3, hi=3), "targets": targets},
             lambda logits, targets, red=red: F.cross_entropy(logits, targets, reduction=red, ignore_index=-100),
             reduction=red, ignore_index=-100)
    case("cross_entropy.ignore_index3", "cross_entropy", {"logits": rand(5, 4), "targets": torch.tensor([3, 0, 3, 1, 2])},
         lambda logits, targets: F.cross_entropy(logits, targets, ignore_index=3), reduction="mean", ignore_index=3)


def norm_cases():
    for tag, affine, bias in [("affine", True, True), ("plain", False, False), ("bias_only", False, True)]:
        w = rand(6, lo=0.5, hi=1.5) if affine else None
        b = rand(6, lo=-0.5, hi=0.5) if bias else None
        case(f"layer_norm.{tag}", "layer_norm", {"x": rand(2, 3, 6), "weight": w, "bias": b},
             lambda x, weight, bias: F.layer_norm(x, (6,), weight, bias, 1e-5), eps=1e-5)
    for tag, affine in [("affine", True), ("plain", False)]:
        w = rand(6, lo=0.5, hi=1.5) if affine else None
        case(f"rms_norm.{tag}", "rms_norm", {"x": rand(4, 6), "weight": w},
             lambda x, weight: F.rms_norm(x, (6,), weight, 1e-6), eps=1e-6)
    mean, var = rand(3, lo=-0.5, hi=0.5), rand(3, lo=0.5, hi=1.5)
    case("batch_norm", "batch_norm", {"x": rand(2, 3, 2, 2), "running_mean": mean, "running_var": var,
                                      "weight": rand(3, lo=0.5, hi=1.5), "bias": rand(3)},
         lambda x, running_mean, running_var, weight, bias: F.batch_norm(
             x, running_mean.detach(), running_var.detach(), weight, bias, False, 0.0, 1e-5),
         eps=1e-5, nograd=["running_mean", "running_var"])


ACT = {"none": lambda t: t, "relu": torch.relu, "gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
       "quick_gelu": lambda t: t * torch.sigmoid(1.702 * t)}


def matmul_cases():
    def mm(a, b, bias=None, trans_a=False, trans_b=False, act="none", alpha=1.0):
        if trans_a:
            a = a.transpose(-2, -1)
        if trans_b:
            b = b.transpose(-2, -1)
        out = alpha * torch.matmul(a, b)
        if bias is not None:
            out = out + bias
        return ACT[act](out)

    specs = [("plain", (3, 4), (4, 5), {}), ("trans_a", (4, 3), (4, 5), {"trans_a": True}),
             ("trans_b", (3, 4), (5, 4), {"trans_b": True}),
             ("trans_ab", (4, 3), (5, 4), {"trans_a": True, "trans_b": True}),
             ("batch_bcast", (2, 1, 3, 4), (3, 4, 5), {}), ("batch_a_only", (2, 3, 4), (4, 5), {}),
             ("vec_a", (4,), (2, 4, 5), {}), ("vec_b", (2, 3, 4), (4,), {}), ("vec_vec", (4,), (4,), {}),
             ("alpha", (3, 4), (4, 5), {"alpha": 0.5})]
    for tag, sa, sb, kw in specs:
        case(f"matmul.{tag}", "matmul", {"a": rand(*sa), "b": rand(*sb)},
             lambda a, b, kw=kw: mm(a, b, **kw), **kw)
    for act in ACT:
        case(f"matmul.bias.{act}", "matmul", {"a": rand(2, 3, 4), "b": rand(4, 5), "bias": rand(5)},
             lambda a, b, bias, act=act: mm(a, b, bias, act=act, alpha=0.5), act=act, alpha=0.5)
    case("linear", "linear", {"x": rand(2, 3, 4), "weight": rand(5, 4), "bias": rand(5)}, F.linear)
    case("linear.nobias", "linear", {"x": rand(3, 4), "weight": rand(5, 4)}, lambda x, weight: F.linear(x, weight))


def attention(q, k, v, attn_mask=None, kpm=None, causal=False):
    """vislang's semantics: additive mask, key padding (nonzero = ignored), causal aligned bottom-right
    (query i sees keys j <= i + Tk - Tq); a query row with every key masked outputs 0."""
    B, H, Tq, D = q.shape
    Tk = k.shape[2]
    s = (q @ k.transpose(-2, -1)) / math.sqrt(D)
    if attn_mask is not None:
        s = s + attn_mask
    masked = torch.zeros(B, H, Tq, Tk, dtype=torch.bool)
    if causal:
        masked |= torch.ones(Tq, Tk).triu(Tk - Tq + 1).bool()
    if kpm is not None:
        masked |= kpm.bool().view(B, 1, 1, Tk)
    s = s.masked_fill(masked, float("-inf"))
    dead = torch.isinf(s).all(-1, keepdim=True) & (s < 0).all(-1, keepdim=True)
    s = torch.where(dead, torch.zeros_like(s), s)
    return torch.where(dead, torch.zeros(()), torch.softmax(s, -1) @ v)


def attention_cases():
    B, H, T, D = 2, 2, 5, 4
    qkv = lambda Tq, Tk, Dv=D: {"q": rand(B, H, Tq, D), "k": rand(B, H, Tk, D), "v": rand(B, H, Tk, Dv)}
    case("attention.plain", "attention", qkv(T, T, 3), attention)
    case("attention.mask_grad", "attention", {**qkv(T, T), "attn_mask": rand(1, H, T, T)},
         lambda q, k, v, attn_mask: attention(q, k, v, attn_mask=attn_mask))
    case("attention.causal_tq3_tk5", "attention", qkv(3, 5), lambda q, k, v: attention(q, k, v, causal=True),
         causal=True)
    case("attention.causal_tq5_tk3", "attention", qkv(5, 3), lambda q, k, v: attention(q, k, v, causal=True),
         causal=True)
    kpm = torch.tensor([[0, 0, 1, 0, 1], [1, 1, 1, 1, 1]], dtype=u8)  # batch 1: every key padded
    case("attention.key_padding_dead_row", "attention", {**qkv(T, T), "key_padding_mask": kpm},
         lambda q, k, v, key_padding_mask: attention(q, k, v, kpm=key_padding_mask))
    mask = rand(T, T)
    mask[1, :] = float("-inf")  # query row 1 fully masked by the additive mask
    case("attention.mask_causal_dead_row", "attention", {**qkv(T, T), "attn_mask": mask},
         lambda q, k, v, attn_mask: attention(q, k, v, attn_mask=attn_mask, causal=True), causal=True,
         nograd=["attn_mask"])


def conv_cases():
    for tag, xs, ws, kw, bias in [("s1p1", (2, 3, 5, 5), (4, 3, 3, 3), dict(), True),
                                  ("s2p1d1", (1, 2, 7, 6), (3, 2, 3, 3), dict(stride=2, padding=1), True),
                                  ("dil2", (1, 2, 7, 7), (2, 2, 3, 2), dict(dilation=2, padding=(1, 0)), False),
                                  ("patch", (2, 3, 8, 8), (5, 3, 4, 4), dict(stride=4), False)]:
        s = kw.get("stride", 1)
        p = kw.get("padding", 0)
        ph, pw = p if isinstance(p, tuple) else (p, p)
        dl = kw.get("dilation", 1)
        case(f"conv2d.{tag}", "conv2d", {"x": rand(*xs), "weight": rand(*ws), "bias": rand(ws[0]) if bias else None},
             lambda x, weight, bias, kw=kw: F.conv2d(x, weight, bias, **kw),
             stride=s, pad_h=ph, pad_w=pw, dilation=dl)


def index_cases():
    ids = torch.tensor([[1, 3, 1], [0, 3, 3]], dtype=i64)  # repeated ids accumulate
    case("embedding", "embedding", {"table": rand(5, 4), "ids": ids}, lambda table, ids: F.embedding(ids, table))
    idx = torch.tensor([2, 0, 2, 1], dtype=i64)
    case("index_select.dim1", "index_select", {"x": rand(3, 4, 2), "index": idx},
         lambda x, index: torch.index_select(x, 1, index), dim=1)
    gidx = torch.tensor([[0, 2, 2], [1, 1, 0], [2, 0, 0]], dtype=i64)
    case("gather.dim1", "gather", {"x": rand(3, 4), "index": gidx}, lambda x, index: torch.gather(x, 1, index), dim=1)
    case("concat.dim1", "concat", {"a": rand(2, 3, 4), "b": rand(2, 1, 4), "c": rand(2, 2, 4)},
         lambda a, b, c: torch.cat([a, b, c], 1), dim=1)
    case("stack.dim2", "stack", {"a": rand(3, 4), "b": rand(3, 4)}, lambda a, b: torch.stack([a, b], 2), dim=2)


# ---- HF CLIP ------------------------------------------------------------------------------------------------
def randomize_(model):
    """Well-scaled random parameters (norm weights near 1), rounded to f32."""
    with torch.no_grad():
        for name, t in model.named_parameters():
            short = name.rsplit(".", 1)[-1]
            if name.endswith("logit_scale"):
                t.fill_(math.log(1 / 0.07))
            elif t.dim() == 1 and short == "weight":
                t.copy_(1.0 + 0.1 * torch.randn(t.shape, generator=gen, dtype=f64))
            elif t.dim() == 1 and short == "bias":
                t.copy_(0.05 * torch.randn(t.shape, generator=gen, dtype=f64))
            else:
                fan_in = max(1, t[0].numel()) if t.dim() > 1 else t.numel()
                t.copy_(torch.randn(t.shape, generator=gen, dtype=f64) / math.sqrt(fan_in))
            t.copy_(t.to(f32).to(f64))
    return model.eval()


def clip_layer_file():
    from transformers import CLIPVisionConfig
    from transformers.models.clip.modeling_clip import CLIPEncoderLayer
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4, hidden_act="quick_gelu",
                           layer_norm_eps=1e-5, attn_implementation="sdpa")
    layer = randomize_(CLIPEncoderLayer(cfg).double())
    tensors = {f"param.{n}": p.detach().to(f32).contiguous() for n, p in layer.named_parameters()}
    B, T = 2, 7
    causal = torch.full((T, T), float("-inf"), dtype=f64).triu(1).view(1, 1, T, T).expand(B, 1, T, T)
    for tag, mask in [("plain", None), ("causal", causal)]:
        x = rand(B, T, 32).requires_grad_()
        layer.zero_grad()
        out = layer(x, mask)
        out = out[0] if isinstance(out, tuple) else out
        gout = rand(B, T, 32)
        out.backward(gout)
        tensors[f"{tag}.x"] = x.detach().to(f32)
        tensors[f"{tag}.gout"] = gout.to(f32)
        tensors[f"{tag}.out"] = out.detach().to(f32)
        tensors[f"{tag}.grad.x"] = x.grad.to(f32)
        for n, p in layer.named_parameters():
            tensors[f"{tag}.grad.{n}"] = p.grad.to(f32).contiguous()
        assert layer.self_attn.k_proj.bias.grad.abs().max() < 1e-12, "attention did not run in float64"
    meta = {"format_version": FORMAT_VERSION, "generator": "make_grad_fixtures.py", "torch": torch.__version__,
            "width": "32", "heads": "4", "mlp_dim": "64", "eps": "1e-5", "act": "quick_gelu"}
    return tensors, meta


def clip_loss(img, txt, logit_scale):
    img = F.normalize(img, dim=-1)
    txt = F.normalize(txt, dim=-1)
    logits = logit_scale.exp() * img @ txt.t()
    labels = torch.arange(img.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def clip_model_file():
    from transformers import CLIPConfig, CLIPModel
    eos = 63
    cfg = CLIPConfig(
        text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=8, hidden_act="quick_gelu",
                         eos_token_id=eos, bos_token_id=62, pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, hidden_act="quick_gelu"),
        projection_dim=16)
    cfg._attn_implementation = "sdpa"  # torch SDPA runs in float64 (HF eager casts softmax to float32)
    model = randomize_(CLIPModel(cfg).double())
    B, T = 4, 8
    pixels = rand(B, 3, 32, 32)
    ids = randint(1, 62, B, T)
    for b, at in enumerate([7, 3, 5, 1]):
        ids[b, at] = eos
        ids[b, at + 1:] = 0  # padding after the end token (the causal mask keeps it out of the pooled state)
    ids[1, 6] = eos  # a second end token: HF (eos != 2) pools at the first one
    img = model.get_image_features(pixel_values=pixels)
    txt = model.get_text_features(input_ids=ids)
    img = img.pooler_output if hasattr(img, "pooler_output") else img
    txt = txt.pooler_output if hasattr(txt, "pooler_output") else txt
    # the same embeddings through the towers directly (what vislang's image_features/text_features mirror)
    img2 = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
    txt2 = model.text_projection(model.text_model(input_ids=ids).pooler_output)
    assert torch.allclose(img, img2) and torch.allclose(txt, txt2)
    loss = clip_loss(img2, txt2, model.logit_scale)
    loss.backward()
    tensors = {"pixels": pixels.to(f32), "input_ids": ids, "loss": loss.detach().to(f32),
               "image_embeds": img2.detach().to(f32), "text_embeds": txt2.detach().to(f32)}
    for n, p in model.named_parameters():
        tensors[f"param.{n}"] = p.detach().to(f32).contiguous()
        tensors[f"grad.{n}"] = p.grad.to(f32).contiguous()
        if n.endswith("k_proj.bias"):
            assert p.grad.abs().max() < 1e-12, f"{n}: attention did not run in float64"
    hf = cfg.to_dict()
    hf["_name_or_path"] = "grad-fixture-tiny-clip"
    meta = {"format_version": FORMAT_VERSION, "generator": "make_grad_fixtures.py", "torch": torch.__version__,
            "config": json.dumps(hf, sort_keys=True, default=str)}
    return tensors, meta


def write(name, tensors, meta):
    path = os.path.join(OUT_DIR, name)
    write_deterministic(tensors, meta, path)
    size = os.path.getsize(path)
    assert size < 1 << 20, f"{path} is {size} bytes; keep each fixture under 1 MB"
    print(f"wrote {os.path.normpath(path)}: {len(tensors)} tensors, {size} bytes")


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    torch.use_deterministic_algorithms(True)
    elementwise_cases()
    reduction_cases()
    norm_cases()
    matmul_cases()
    attention_cases()
    conv_cases()
    index_cases()
    meta = {"format_version": FORMAT_VERSION, "generator": "make_grad_fixtures.py", "torch": torch.__version__}
    for name, params in CASES.items():
        meta[name] = json.dumps(params, sort_keys=True, separators=(",", ":"))
    write("ops.safetensors", TENSORS, meta)
    print(f"  {len(CASES)} op cases:", " ".join(sorted({p['op'] for p in CASES.values()})))
    write("clip_layer.safetensors", *clip_layer_file())
    write("clip_model.safetensors", *clip_model_file())


if __name__ == "__main__":
    main()
