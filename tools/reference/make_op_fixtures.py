#!/usr/bin/env python3
"""Writes tests/fixtures/ops.safetensors: golden inputs and outputs of every op in kernels/ops.h.

Where it sits: PyTorch (the reference of record) -> this file -> tests/test_fixtures.cpp, which runs
each case through vislang::ops with the reference CPU kernels and again with the optimized ones,
and compares with a per-op tolerance (STYLE.md practice 7: golden files from the reference).

Layout. Each case has a name such as "softmax.dim1"; its tensors are "<case>.<role>" ("softmax.dim1.x",
"softmax.dim1.out"), and the metadata entry "<case>" holds its parameters as a JSON string, with
"op" naming the runner in the C++ test. Other metadata: format_version, generator, torch.
Inputs are drawn in float64, rounded to their storage dtype (f32 unless the case says f16/bf16/int),
and outputs are computed by torch in float64 *from the rounded inputs*, then rounded once to the
output dtype (f32, or the f16/bf16 input dtype), so each output is the correctly rounded result.
"transposed": [roles] lists inputs stored as x.transpose(-2, -1).contiguous(): the test passes
stored.t() (a non-contiguous view) to the op, so strided inputs are covered too.

Bump FORMAT_VERSION when the layout (not the values) changes, together with kFormatVersion in
tests/test_fixtures.cpp. Re-run after editing:

    python tools/reference/make_op_fixtures.py
"""
import json
import math
import os
import struct

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save

FORMAT_VERSION = "1"
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "fixtures", "ops.safetensors")

f64, f32, f16, bf16, i64, i32, u8 = (torch.float64, torch.float32, torch.float16, torch.bfloat16,
                                     torch.int64, torch.int32, torch.uint8)
gen = torch.Generator().manual_seed(20240611)
TENSORS = {}
CASES = {}


def rand(*shape, lo=-2.0, hi=2.0, dtype=f32):
    return (torch.rand(shape, generator=gen, dtype=f64) * (hi - lo) + lo).to(dtype)


def randn(*shape, std=1.0, dtype=f32):
    return (torch.randn(shape, generator=gen, dtype=f64) * std).to(dtype)


def randint(lo, hi, *shape, dtype=i64):
    return torch.randint(lo, hi, shape, generator=gen, dtype=i64).to(dtype)


def d(x):
    return None if x is None else x.to(f64)


def case(name, op, inputs, outputs, out_dtype=f32, **params):
    """inputs: role -> tensor (already in storage dtype; None = absent optional input).
    outputs: role -> tensor (float64 results are rounded to out_dtype; integer results kept)."""
    assert name not in CASES, name
    CASES[name] = dict(op=op, **params)
    transposed = set(params.get("transposed", []))
    for role, t in inputs.items():
        if t is None:
            continue
        if role in transposed:
            t = t.transpose(-2, -1)
        TENSORS[f"{name}.{role}"] = t.contiguous().clone()
    for role, t in outputs.items():
        if t.is_floating_point():
            t = t.to(out_dtype)
        TENSORS[f"{name}.{role}"] = t.contiguous().clone()


def no_ties(x, dim):
    s = x.sort(dim=dim).values
    assert (s.diff(dim=dim) != 0).all(), "tie in a topk/argmax input: change the seed"


# ---- elementwise ---------------------------------------------------------------------------------
BINARY = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
          "maximum": torch.maximum, "minimum": torch.minimum, "pow": torch.pow}


def away_from_zero(*shape, dtype=f32):
    m = rand(*shape, lo=0.5, hi=2.0, dtype=f64)
    s = torch.where(rand(*shape, dtype=f64) < 0, -1.0, 1.0)
    return (m * s).to(dtype)


def elementwise_cases():
    shapes = {"add": ((3, 1, 5), (4, 1)), "sub": ((4, 5), (3, 1, 1)), "mul": ((3, 4, 5), (5,)),
              "div": ((3, 4, 5), (4, 1)), "maximum": ((3, 4, 5), (3, 1, 5)), "minimum": ((3, 4, 5), (1, 4, 1)),
              "pow": ((3, 5), (5,))}
    for kind, (sa, sb) in shapes.items():
        a = rand(*sa, lo=0.25, hi=2.0) if kind == "pow" else rand(*sa)
        b = away_from_zero(*sb) if kind == "div" else rand(*sb)
        if kind in ("maximum", "minimum"):  # a few exact ties
            a.view(-1)[:3] = 0.5
            b.view(-1)[:3] = 0.5
        case(f"binary.{kind}", "binary", {"a": a, "b": b}, {"out": BINARY[kind](d(a), d(b))}, kind=kind)
    a, b = rand(3, 5), rand(3, 5)
    case("binary.add.strided", "binary", {"a": a, "b": b}, {"out": d(a) + d(b)}, kind="add", transposed=["a"])
    a, b = rand(4, 7, dtype=f16), rand(4, 7, dtype=f16)
    case("binary.add.f16", "binary", {"a": a, "b": b}, {"out": d(a) + d(b)}, out_dtype=f16, kind="add")
    a, b = rand(4, 7, dtype=bf16), rand(7, dtype=bf16)
    case("binary.mul.bf16", "binary", {"a": a, "b": b}, {"out": d(a) * d(b)}, out_dtype=bf16, kind="mul")

    # scalar ops: out = x ∘ s, or s ∘ x when reverse
    for kind, s, reverse in [("add", 0.75, False), ("sub", 1.25, False), ("mul", -1.5, False), ("div", 3.0, False),
                             ("pow", 2.5, False), ("pow", 3.0, False), ("sub", 2.0, True), ("div", 1.5, True),
                             ("maximum", 0.25, False), ("minimum", -0.25, False)]:
        x = rand(3, 5, 7, lo=0.1, hi=3.0) if (kind == "pow" and s != 3.0) else \
            away_from_zero(3, 5, 7) if (kind == "div" and reverse) else rand(3, 5, 7)
        xs = torch.full_like(d(x), s)
        out = BINARY[kind](xs, d(x)) if reverse else BINARY[kind](d(x), xs)
        name = f"scalar.{'r' if reverse else ''}{kind}.{s:g}"
        case(name, "scalar", {"x": x}, {"out": out}, kind=kind, s=s, reverse=reverse)

    # unary
    unary = {
        "neg": torch.neg, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
        "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu, "gelu": F.gelu,
        "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"), "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
        "abs": torch.abs, "square": torch.square, "reciprocal": torch.reciprocal,
    }
    positive = {"log", "sqrt", "rsqrt"}
    for kind, fn in unary.items():
        if kind in positive:
            x = rand(3, 5, 7, lo=0.05, hi=4.0)
        elif kind == "reciprocal":
            x = away_from_zero(3, 5, 7)
        else:
            x = rand(3, 5, 7, lo=-4.0, hi=4.0)
            x.view(-1)[0] = 0.0
        case(f"unary.{kind}", "unary", {"x": x}, {"out": fn(d(x))}, kind=kind)
    x = rand(5, 7, lo=-3, hi=3)
    case("unary.exp.strided", "unary", {"x": x}, {"out": torch.exp(d(x))}, kind="exp", transposed=["x"])
    x = rand(5, 7, lo=-4, hi=4, dtype=f16)
    case("unary.gelu.f16", "unary", {"x": x}, {"out": F.gelu(d(x))}, out_dtype=f16, kind="gelu")
    x = rand(5, 7, lo=-4, hi=4, dtype=bf16)
    case("unary.sigmoid.bf16", "unary", {"x": x}, {"out": torch.sigmoid(d(x))}, out_dtype=bf16, kind="sigmoid")
    for act in ["none", "relu", "gelu", "gelu_tanh", "quick_gelu"]:
        x = rand(3, 7, lo=-4, hi=4)
        fn = (lambda t: t) if act == "none" else unary[act]
        case(f"activation.{act}", "activation", {"x": x}, {"out": fn(d(x))}, act=act)

    # clamp (a missing bound is absent from the params)
    for name, lo, hi in [("both", -0.5, 0.75), ("lo", 0.0, None), ("hi", None, -0.25)]:
        x = rand(3, 5, 7)
        params = {k: v for k, v in (("lo", lo), ("hi", hi)) if v is not None}
        case(f"clamp.{name}", "clamp", {"x": x}, {"out": torch.clamp(d(x), min=lo, max=hi)}, **params)

    cond = (rand(4, 5) > 0).to(u8)
    a, b = rand(3, 4, 5), rand(1, 5)
    case("where", "where", {"cond": cond, "a": a, "b": b}, {"out": torch.where(cond.bool(), d(a), d(b))})


# ---- reductions, softmax, losses ------------------------------------------------------------------
def reduction_cases():
    fns = {"sum": lambda x, dm, k: x.sum(dm, keepdim=k), "mean": lambda x, dm, k: x.mean(dm, keepdim=k),
           "max": lambda x, dm, k: x.amax(dm, keepdim=k), "min": lambda x, dm, k: x.amin(dm, keepdim=k)}
    for kind, fn in fns.items():
        for dim, keepdim in [(0, False), (1, True), (-1, False)]:
            x = rand(3, 5, 7)
            name = f"reduce.{kind}.dim{dim}{'.keepdim' if keepdim else ''}"
            case(name, "reduce", {"x": x}, {"out": fn(d(x), dim, keepdim)}, kind=kind, dim=dim, keepdim=keepdim)
    x = rand(3, 33, dtype=f16)
    case("reduce.sum.f16", "reduce", {"x": x}, {"out": d(x).sum(-1)}, out_dtype=f16, kind="sum", dim=-1,
         keepdim=False)
    x = rand(3, 5, 7)
    case("sum_all", "sum_all", {"x": x}, {"out": d(x).sum()})

    for dim, keepdim in [(1, False), (-1, True)]:
        x = rand(3, 5, 7)
        no_ties(x, dim)
        case(f"argmax.dim{dim}{'.keepdim' if keepdim else ''}", "argmax", {"x": x},
             {"out": d(x).argmax(dim, keepdim=keepdim)}, dim=dim, keepdim=keepdim)
    for k, dim, largest in [(3, -1, True), (2, 1, False), (5, 0, True)]:
        x = rand(5, 6, 7)
        no_ties(x, dim)
        r = torch.topk(d(x), k, dim=dim, largest=largest, sorted=True)
        case(f"topk.k{k}.dim{dim}.{'largest' if largest else 'smallest'}", "topk", {"x": x},
             {"values": r.values, "indices": r.indices}, k=k, dim=dim, largest=largest)

    for op, fn in [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]:
        for dim in [1, -1, 0]:
            if op == "log_softmax" and dim == 0:
                continue
            x = rand(3, 5, 7, lo=-4, hi=4)
            case(f"{op}.dim{dim}", op, {"x": x}, {"out": fn(d(x), dim)}, dim=dim)
    x = rand(4, 9, lo=-4, hi=4)
    case("softmax.strided", "softmax", {"x": x}, {"out": torch.softmax(d(x), -1)}, dim=-1, transposed=["x"])
    x = rand(4, 9, lo=-4, hi=4, dtype=f16)
    case("softmax.f16", "softmax", {"x": x}, {"out": torch.softmax(d(x), -1)}, out_dtype=f16, dim=-1)
    x = rand(4, 9, lo=-4, hi=4, dtype=bf16)
    case("softmax.bf16", "softmax", {"x": x}, {"out": torch.softmax(d(x), 1)}, out_dtype=bf16, dim=1)

    for dim in [1, -1]:
        x = rand(3, 5, 7)
        case(f"l2_normalize.dim{dim}", "l2_normalize", {"x": x}, {"out": F.normalize(d(x), p=2.0, dim=dim, eps=1e-12)},
             dim=dim, eps=1e-12)
    x = torch.zeros(2, 5)
    x[1] = rand(5)
    case("l2_normalize.zero_row", "l2_normalize", {"x": x}, {"out": F.normalize(d(x), dim=-1, eps=1e-12)},
         dim=-1, eps=1e-12)

    logits = rand(7, 5, lo=-3, hi=3)
    targets = torch.tensor([0, 4, -100, 2, 1, -100, 3], dtype=i64)
    for red in ["mean", "sum", "none"]:
        out = F.cross_entropy(d(logits), targets, reduction=red, ignore_index=-100)
        case(f"cross_entropy.{red}", "cross_entropy", {"logits": logits, "targets": targets}, {"out": out},
             reduction=red, ignore_index=-100)
    targets = torch.tensor([0, 4, 1, 2, 1, 3, 3], dtype=i64)
    out = F.cross_entropy(d(logits), targets, reduction="mean", ignore_index=1)
    case("cross_entropy.mean.ignore1", "cross_entropy", {"logits": logits, "targets": targets}, {"out": out},
         reduction="mean", ignore_index=1)


# ---- normalization ---------------------------------------------------------------------------------
def norm_cases():
    x, w, b = rand(3, 5, 7), rand(7, lo=0.5, hi=1.5), rand(7, lo=-0.5, hi=0.5)
    case("layer_norm.affine", "layer_norm", {"x": x, "weight": w, "bias": b},
         {"out": F.layer_norm(d(x), (7,), d(w), d(b), eps=1e-5)}, eps=1e-5)
    x = rand(3, 5, 7, lo=1, hi=3)  # large mean: a one-pass variance would lose digits
    case("layer_norm.plain", "layer_norm", {"x": x}, {"out": F.layer_norm(d(x), (7,), eps=1e-5)}, eps=1e-5)
    x, w, b = rand(4, 16, dtype=bf16), rand(16, lo=0.5, hi=1.5, dtype=bf16), rand(16, dtype=bf16)
    case("layer_norm.bf16", "layer_norm", {"x": x, "weight": w, "bias": b},
         {"out": F.layer_norm(d(x), (16,), d(w), d(b), eps=1e-5)}, out_dtype=bf16, eps=1e-5)

    def rms(x, w, eps):
        y = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
        return y if w is None else y * w

    x, w = rand(3, 5, 7), rand(7, lo=0.5, hi=1.5)
    case("rms_norm.weight", "rms_norm", {"x": x, "weight": w}, {"out": rms(d(x), d(w), 1e-6)}, eps=1e-6)
    x = rand(3, 7)
    case("rms_norm.plain", "rms_norm", {"x": x}, {"out": rms(d(x), None, 1e-5)}, eps=1e-5)

    x = rand(2, 3, 5, 4)
    rm, rv = rand(3, lo=-0.5, hi=0.5), rand(3, lo=0.5, hi=2.0)
    w, b = rand(3, lo=0.5, hi=1.5), rand(3, lo=-0.5, hi=0.5)
    case("batch_norm.affine", "batch_norm",
         {"x": x, "running_mean": rm, "running_var": rv, "weight": w, "bias": b},
         {"out": F.batch_norm(d(x), d(rm), d(rv), d(w), d(b), training=False, eps=1e-5)}, eps=1e-5)
    x = rand(2, 3, 5)
    case("batch_norm.plain", "batch_norm", {"x": x, "running_mean": rm, "running_var": rv},
         {"out": F.batch_norm(d(x), d(rm), d(rv), training=False, eps=1e-3)}, eps=1e-3)


# ---- matrix products and attention ---------------------------------------------------------------
ACT = {"none": lambda t: t, "relu": torch.relu, "gelu": F.gelu,
       "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "quick_gelu": lambda t: t * torch.sigmoid(1.702 * t)}


def matmul_cases():
    def mm(name, sa, sb, trans_a=False, trans_b=False, bias=False, act="none", alpha=1.0, dtype=f32):
        a, b = rand(*sa, dtype=dtype), rand(*sb, dtype=dtype)
        A = d(a).transpose(-2, -1) if trans_a else d(a)
        B = d(b).transpose(-2, -1) if trans_b else d(b)
        bias_t = rand(B.shape[-1], dtype=dtype) if bias else None
        out = alpha * torch.matmul(A, B)
        if bias:
            out = out + d(bias_t)
        out = ACT[act](out)
        case(name, "matmul", {"a": a, "b": b, "bias": bias_t}, {"out": out}, out_dtype=dtype, trans_a=trans_a,
             trans_b=trans_b, act=act, alpha=alpha)

    mm("matmul.2d", (5, 7), (7, 3))
    mm("matmul.batched", (2, 5, 7), (2, 7, 3))
    mm("matmul.broadcast_batch", (2, 1, 5, 7), (3, 7, 4))
    mm("matmul.trans_a", (7, 5), (7, 3), trans_a=True)
    mm("matmul.trans_b", (5, 7), (3, 7), trans_b=True)
    mm("matmul.trans_ab.batched", (2, 7, 5), (2, 3, 7), trans_a=True, trans_b=True)
    mm("matmul.bias_gelu", (5, 7), (7, 3), bias=True, act="gelu")
    mm("matmul.alpha_bias_relu.trans_b", (5, 7), (3, 7), trans_b=True, bias=True, act="relu", alpha=0.5)
    mm("matmul.k33", (3, 33), (33, 5))
    mm("matmul.bf16", (5, 16), (16, 3), dtype=bf16)
    mm("matmul.f16.bias_gelu_tanh", (5, 16), (16, 3), bias=True, act="gelu_tanh", dtype=f16)

    x, w, b = rand(2, 3, 7), rand(5, 7), rand(5)
    case("linear.bias", "linear", {"x": x, "weight": w, "bias": b}, {"out": F.linear(d(x), d(w), d(b))}, act="none")
    x, w = rand(4, 7), rand(5, 7)
    case("linear.nobias", "linear", {"x": x, "weight": w}, {"out": F.linear(d(x), d(w))}, act="none")
    x, w, b = rand(3, 7), rand(5, 7), rand(5)
    case("linear.quick_gelu", "linear", {"x": x, "weight": w, "bias": b},
         {"out": ACT["quick_gelu"](F.linear(d(x), d(w), d(b)))}, act="quick_gelu")


def sdpa_ref(q, k, v, mask=None, kpm=None, causal=False, scale=None):
    """The vislang contract (kernels/backend.h, ATTENTION): causal is bottom-right aligned (query i
    sees keys j <= i + Tk - Tq) and a query row with every key masked outputs zeros."""
    q, k, v = d(q), d(k), d(v)
    s = scale if scale is not None else 1.0 / math.sqrt(q.shape[-1])
    scores = s * (q @ k.transpose(-2, -1))
    if mask is not None:
        scores = scores + d(mask)
    tq, tk = scores.shape[-2:]
    allowed = torch.ones(scores.shape, dtype=torch.bool)
    if causal:
        allowed &= torch.arange(tk)[None, :] <= torch.arange(tq)[:, None] + (tk - tq)
    if kpm is not None:
        allowed &= ~kpm.bool()[:, None, None, :]
    scores = scores.masked_fill(~allowed, float("-inf"))
    dead = ~allowed.any(-1, keepdim=True)
    p = torch.softmax(scores.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)
    return p @ v


def attention_cases():
    def att(name, B, H, Tq, Tk, D, Dv, mask_shape=None, kpm=None, causal=False, scale=None, dtype=f32):
        q, k, v = rand(B, H, Tq, D, dtype=dtype), rand(B, H, Tk, D, dtype=dtype), rand(B, H, Tk, Dv, dtype=dtype)
        mask = None
        if mask_shape is not None:
            mask = rand(*mask_shape, lo=-2, hi=1)
            mask.view(-1)[1::4] = float("-inf")  # some keys masked, never a whole row
            mask = mask.to(dtype)
        params = {"causal": causal}
        if scale is not None:
            params["scale"] = scale
        case(name, "sdpa", {"q": q, "k": k, "v": v, "attn_mask": mask, "key_padding_mask": kpm},
             {"out": sdpa_ref(q, k, v, mask, kpm, causal, scale)}, out_dtype=dtype, **params)

    att("sdpa.cross_lengths", 2, 3, 5, 6, 8, 4)
    att("sdpa.mask_2d", 2, 3, 5, 6, 8, 4, mask_shape=(5, 6))
    att("sdpa.mask_per_batch", 2, 3, 5, 6, 8, 4, mask_shape=(2, 1, 5, 6))
    att("sdpa.causal", 1, 2, 6, 6, 8, 8, causal=True)
    att("sdpa.causal.tq_lt_tk", 2, 2, 4, 7, 8, 4, causal=True)
    att("sdpa.causal.tq_gt_tk.dead_rows", 1, 2, 6, 4, 8, 4, causal=True)  # rows 0, 1 see no key -> zeros
    kpm = torch.tensor([[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 1]], dtype=u8)
    att("sdpa.key_padding", 2, 3, 5, 6, 8, 4, kpm=kpm)
    kpm = torch.tensor([[0, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=u8)
    att("sdpa.key_padding.all_padded", 2, 1, 3, 6, 8, 4, kpm=kpm)  # batch 1 -> zeros
    kpm = torch.tensor([[0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0, 0]], dtype=u8)
    att("sdpa.all_options", 2, 2, 5, 7, 8, 6, mask_shape=(1, 2, 5, 7), kpm=kpm, causal=True, scale=0.3)
    att("sdpa.bf16", 1, 2, 5, 6, 16, 8, dtype=bf16)


# ---- convolution and pooling ----------------------------------------------------------------------
def conv_cases():
    def conv(name, xs, ws, bias=True, stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
        x, w = rand(*xs), rand(*ws, lo=-1, hi=1)
        b = rand(ws[0]) if bias else None
        out = F.conv2d(d(x), d(w), d(b), stride=stride, padding=padding, dilation=dilation)
        case(name, "conv2d", {"x": x, "w": w, "bias": b}, {"out": out}, stride=list(stride), padding=list(padding),
             dilation=list(dilation))

    conv("conv2d.basic", (2, 3, 7, 6), (4, 3, 3, 3))
    conv("conv2d.stride_pad_dilation", (2, 3, 9, 7), (4, 3, 3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    conv("conv2d.patch.nobias", (1, 3, 8, 8), (5, 3, 4, 4), bias=False, stride=(4, 4))
    conv("conv2d.1x1", (2, 5, 3, 3), (3, 5, 1, 1))

    def pool(name, xs, kernel, stride=None, padding=(0, 0), ceil_mode=False, count_include_pad=True):
        x = rand(*xs)
        out = F.avg_pool2d(d(x), kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
                           count_include_pad=count_include_pad)
        case(name, "avg_pool2d", {"x": x}, {"out": out}, kernel=list(kernel), stride=list(stride or (0, 0)),
             padding=list(padding), ceil_mode=ceil_mode, count_include_pad=count_include_pad)

    pool("avg_pool2d.k2", (2, 3, 7, 9), (2, 2))
    pool("avg_pool2d.k3s2p1.include_pad", (2, 3, 7, 9), (3, 3), (2, 2), (1, 1), count_include_pad=True)
    pool("avg_pool2d.k3s2p1.exclude_pad", (2, 3, 7, 9), (3, 3), (2, 2), (1, 1), count_include_pad=False)
    pool("avg_pool2d.ceil.include_pad", (1, 2, 7, 8), (3, 2), (2, 3), (1, 0), ceil_mode=True, count_include_pad=True)
    pool("avg_pool2d.ceil.exclude_pad", (1, 2, 7, 8), (3, 2), (2, 3), (1, 0), ceil_mode=True,
         count_include_pad=False)


# ---- indexing, joining, casting -------------------------------------------------------------------
def index_cases():
    table = rand(11, 6)
    ids = randint(0, 11, 3, 4)
    case("embedding.i64", "embedding", {"table": table, "ids": ids}, {"out": d(table)[ids]})
    ids = randint(0, 11, 5, dtype=i32)
    case("embedding.i32", "embedding", {"table": table, "ids": ids}, {"out": d(table)[ids.long()]})

    x = rand(5, 7, 3)
    idx = torch.tensor([6, 0, 3, 3], dtype=i64)
    case("index_select.dim1", "index_select", {"x": x, "index": idx}, {"out": d(x).index_select(1, idx)}, dim=1)
    idx = torch.tensor([4, 1], dtype=i32)
    case("index_select.dim0.i32", "index_select", {"x": x, "index": idx},
         {"out": d(x).index_select(0, idx.long())}, dim=0)
    x = rand(4, 6)
    idx = torch.tensor([5, 2], dtype=i64)
    case("index_select.strided", "index_select", {"x": x, "index": idx}, {"out": d(x).index_select(1, idx)},
         dim=1, transposed=["x"])

    x = rand(4, 6)
    idx = randint(0, 6, 4, 3)
    case("gather.dim1", "gather", {"x": x, "index": idx}, {"out": torch.gather(d(x), 1, idx)}, dim=1)
    idx = randint(0, 4, 2, 6)
    case("gather.dim0", "gather", {"x": x, "index": idx}, {"out": torch.gather(d(x), 0, idx)}, dim=0)

    def join(name, op, xs, dim):
        out = (torch.cat if op == "concat" else torch.stack)([d(t) for t in xs], dim)
        case(name, op, {f"x.{i}": t for i, t in enumerate(xs)}, {"out": out}, dim=dim, n=len(xs))

    join("concat.dim1", "concat", [rand(2, 3, 4), rand(2, 1, 4), rand(2, 5, 4)], 1)
    join("concat.dim0", "concat", [rand(1, 3), rand(2, 3)], 0)
    join("concat.dim-1", "concat", [rand(2, 3), rand(2, 1), rand(2, 2)], -1)
    join("stack.dim1", "stack", [rand(3, 4), rand(3, 4), rand(3, 4)], 1)
    join("stack.dim0", "stack", [rand(2, 5), rand(2, 5)], 0)

    x = rand(5, 7)
    parts = torch.split(d(x), 3, dim=1)
    case("split.size3.dim1", "split", {"x": x}, {f"out.{i}": p for i, p in enumerate(parts)}, split_size=3, dim=1,
         n=len(parts))
    parts = torch.chunk(d(x), 3, dim=0)
    case("chunk.3.dim0", "chunk", {"x": x}, {f"out.{i}": p for i, p in enumerate(parts)}, chunks=3, dim=0,
         n=len(parts))

    # Casts are exact: compared bit for bit (NaN == NaN). f32 -> f16/bf16 rounds to nearest even.
    inf, nan = float("inf"), float("nan")
    e16 = [0.0, -0.0, 1.0, 1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11), 65504.0, 65519.0, 65520.0, 1e6, -1e6,
           2**-24, 2**-25, 3 * 2**-25, 2**-26, 2**-14, 2**-14 - 2**-24, 1e-10, inf, -inf, nan, 0.1, -3.14159, 1000.7]
    x = torch.cat([torch.tensor(e16, dtype=f32), rand(40, lo=-100, hi=100)])
    case("cast.f32_to_f16", "cast", {"x": x}, {"out": x.half()}, out_dtype=f16, dtype="f16")
    e_bf = [0.0, -0.0, 1.0, 1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8), 3.4028234663852886e38, 3.3e38, 1e-40, 1e-45,
            inf, -inf, nan, 0.1, -3.14159, 1000.7]
    x = torch.cat([torch.tensor(e_bf, dtype=f32), rand(40, lo=-100, hi=100)])
    case("cast.f32_to_bf16", "cast", {"x": x}, {"out": x.bfloat16()}, out_dtype=bf16, dtype="bf16")
    x = torch.cat([torch.tensor([0.0, 1.0, -2.5, 65504.0, 2**-24, inf, -inf, nan], dtype=f16), rand(20, dtype=f16)])
    case("cast.f16_to_f32", "cast", {"x": x}, {"out": x.float()}, dtype="f32")
    x = torch.cat([torch.tensor([0.0, 0.5, -0.5, 2.999, -2.999, 7.0, -7.0], dtype=f32), rand(20, lo=-50, hi=50)])
    case("cast.f32_to_i64", "cast", {"x": x}, {"out": x.to(i64)}, dtype="i64")
    case("cast.f32_to_i32", "cast", {"x": x}, {"out": x.to(i32)}, dtype="i32")
    x = randint(-1000, 1000, 17)
    case("cast.i64_to_f32", "cast", {"x": x}, {"out": x.to(f32)}, dtype="f32")
    x = rand(3, 5)
    case("cast.f32_to_f16.strided", "cast", {"x": x}, {"out": x.half()}, out_dtype=f16, dtype="f16", transposed=["x"])


def write_deterministic(tensors, metadata, path):
    """safetensors.torch.save, then the header re-emitted with "__metadata__" keys sorted: the library
    keeps metadata in a hash map, so its order (and the file's bytes) would change on every run."""
    blob = save(tensors, metadata=metadata)
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])  # keeps the library's tensor order
    header = {"__metadata__": dict(sorted(header.pop("__metadata__").items())), **header}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob[8 + n:])
    loaded = load_file(path)  # the official reader accepts it; the data bytes are the library's own
    assert all(loaded[k].dtype == t.dtype and loaded[k].shape == t.shape for k, t in tensors.items())
    assert loaded.keys() == tensors.keys()


def main():
    elementwise_cases()
    reduction_cases()
    norm_cases()
    matmul_cases()
    attention_cases()
    conv_cases()
    index_cases()
    metadata = {"format_version": FORMAT_VERSION, "generator": "make_op_fixtures.py", "torch": torch.__version__}
    for name, params in CASES.items():
        assert name not in metadata
        metadata[name] = json.dumps(params, sort_keys=True, separators=(",", ":"))
    write_deterministic(TENSORS, metadata, OUT)
    size = os.path.getsize(OUT)
    assert size < 1 << 20, f"{OUT} is {size} bytes; keep the fixtures under 1 MB"
    ops = sorted({p["op"] for p in CASES.values()})
    print(f"wrote {os.path.normpath(OUT)}: {len(CASES)} cases, {len(TENSORS)} tensors, {size} bytes")
    print("ops:", " ".join(ops))


if __name__ == "__main__":
    main()
