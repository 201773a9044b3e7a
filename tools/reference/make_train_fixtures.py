#!/usr/bin/env python3
"""Writes tests/fixtures/train/*.safetensors: PyTorch golden values for the training pieces
(STYLE.md practice 7), read by tests/test_train.cpp.

Where it sits: this script (torch + OpenCLIP, the references of record) -> tests/fixtures/train/ ->
tests/test_train.cpp (nn/loss.h, nn/optim.h compared element by element).

Files (every tensor name below is what the C++ test reads):
  clip_loss.safetensors      image_emb (B, E), text_emb (B, E), logit_scale () f32 inputs;
                             OpenCLIP's ClipLoss on F.normalize'd features with logit_scale.exp(),
                             computed in float64 from the f32 values: loss, grad.image_emb,
                             grad.text_emb, grad.logit_scale, acc_i2t, acc_t2i;
                             fixed.loss, fixed.grad.image_emb, fixed.grad.text_emb for the
                             fixed-temperature form (logits = I Tᵀ / temperature, metadata temperature)
  adamw.safetensors          torch.optim.AdamW (foreach=False: the single-tensor path, as on the CPU
                             by default) in float32, 10 steps, two param groups (metadata decay /
                             no_decay: comma-separated names, weight_decay, betas, eps), lr per step in
                             lr (10) f64; init.<name>, grad.<name>.<k> (absent: no grad at step k),
                             expected.<name>, expected.exp_avg.<name>, expected.exp_avg_sq.<name>,
                             expected.step.<name> (i64)
  clip_grad_norm.safetensors torch.nn.utils.clip_grad_norm_ in float32 for two max_norms:
                             <case>.grad.<i> before, <case>.clipped.<i> after, <case>.total_norm;
                             metadata <case>.max_norm
  lr_schedule.safetensors    openclip (100) f64: open_clip_train.scheduler.cosine_lr(base 5e-4, warmup
                             10, steps 100) at steps 0..99 (or the same formula when OpenCLIP is not
                             importable: metadata openclip_source says which);
                             formula (60) f64: the documented formula with min_lr and a start factor

Bump FORMAT_VERSION when the layout changes, together with kTrainFixtureVersion in tests/test_train.cpp.
Deterministic; runs in a second (torch; OpenCLIP optional):

    python3 tools/reference/make_train_fixtures.py
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

FORMAT_VERSION = "1"
SEED = 20250611
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "train")

sys.path.insert(0, os.path.join(ROOT, "tools"))
from convert import write_safetensors  # noqa: E402  (torch + numpy only, no safetensors package)


def meta(**kw):
    m = {"format_version": FORMAT_VERSION, "generator": "tools/reference/make_train_fixtures.py",
         "torch": torch.__version__}
    m.update({k: str(v) for k, v in kw.items()})
    return m


def save(name, tensors, metadata):
    path = os.path.join(OUT, name)
    write_safetensors(path, {k: v.contiguous() for k, v in tensors.items()}, metadata)
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes, {len(tensors)} tensors)")


# ---- the contrastive losses -------------------------------------------------------------------------
def clip_loss_fixture(g):
    try:
        from open_clip.loss import ClipLoss
        source = "open_clip.loss.ClipLoss"

        def clip_loss(i, t, scale):
            return ClipLoss()(i, t, scale)
    except ImportError:  # the same formula, written out
        source = "formula (OpenCLIP not importable)"

        def clip_loss(i, t, scale):
            logits = scale * i @ t.T
            labels = torch.arange(i.shape[0])
            return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    B, E = 8, 16
    img = torch.randn(B, E, generator=g)
    # Captions correlated with their images (so the accuracies are neither 0 nor 1), different norms.
    txt = 0.5 * img + torch.randn(B, E, generator=g) * 1.3
    img = img * (1 + torch.rand(B, 1, generator=g) * 3)
    scale = torch.tensor(2.3, dtype=torch.float32)  # not the init value: exp(2.3) ≈ 9.97
    temperature = 0.07

    def run(f):
        i64 = img.double().requires_grad_()
        t64 = txt.double().requires_grad_()
        s64 = scale.double().requires_grad_()
        loss = f(i64, t64, s64)
        loss.backward()
        return loss.detach(), i64.grad, t64.grad, s64.grad

    def learnable(i, t, s):
        return clip_loss(F.normalize(i, dim=-1), F.normalize(t, dim=-1), s.exp())

    def fixed(i, t, s):
        I, T = F.normalize(i, dim=-1), F.normalize(t, dim=-1)
        logits = I @ T.T / temperature
        labels = torch.arange(I.shape[0])
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    loss, gi, gt, gs = run(learnable)
    floss, fgi, fgt, _ = run(fixed)
    with torch.no_grad():
        logits = F.normalize(img.double(), dim=-1) @ F.normalize(txt.double(), dim=-1).T
        acc_i2t = (logits.argmax(1) == torch.arange(B)).double().mean()
        acc_t2i = (logits.argmax(0) == torch.arange(B)).double().mean()
        # torch's own float32 loss: the floor under any f32 tolerance
        f32 = learnable(img, txt, scale)
    save("clip_loss.safetensors", {
        "image_emb": img, "text_emb": txt, "logit_scale": scale,
        "loss": loss, "grad.image_emb": gi, "grad.text_emb": gt, "grad.logit_scale": gs,
        "acc_i2t": acc_i2t, "acc_t2i": acc_t2i,
        "fixed.loss": floss, "fixed.grad.image_emb": fgi, "fixed.grad.text_emb": fgt,
    }, meta(temperature=repr(temperature), reference=source, seed=SEED,
            f32_loss_vs_f64=f"{abs(f32.item() - loss.item()):.3e}"))


# ---- AdamW --------------------------------------------------------------------------------------------
def adamw_fixture(g):
    # Names chosen to exercise the default no-decay rule of nn/optim.h: 2-D weights are decayed; a
    # bias, a norm gain and a 2-D embedding table are not.
    shapes = {"fc1.weight": (6, 5), "fc1.bias": (6,), "conv.weight": (3, 2, 2, 2), "ln_1.weight": (5,),
              "token_embedding.weight": (7, 4)}
    decay = ["fc1.weight", "conv.weight"]
    no_decay = ["fc1.bias", "ln_1.weight", "token_embedding.weight"]
    lr0, wd, betas, eps, steps = 1e-2, 0.2, (0.9, 0.98), 1e-6, 10
    lrs = [lr0 * (0.5 + 0.5 * math.cos(math.pi * k / steps)) + 1e-4 for k in range(steps)]
    no_grad_at = {("fc1.bias", 3), ("conv.weight", 3), ("conv.weight", 7)}  # grad None: skipped
    params = {n: torch.randn(*s, generator=g).requires_grad_() for n, s in shapes.items()}
    init = {f"init.{n}": p.detach().clone() for n, p in params.items()}
    opt = torch.optim.AdamW([{"params": [params[n] for n in decay], "weight_decay": wd},
                             {"params": [params[n] for n in no_decay], "weight_decay": 0.0}],
                            lr=lr0, betas=betas, eps=eps, foreach=False)
    out = dict(init)
    for k in range(steps):
        for n, p in params.items():
            if (n, k) in no_grad_at:
                p.grad = None
            else:
                grad = torch.randn(*shapes[n], generator=g) * (0.1 + k * 0.05)
                p.grad = grad
                out[f"grad.{n}.{k}"] = grad.clone()
        for group in opt.param_groups:
            group["lr"] = lrs[k]
        opt.step()
    for n, p in params.items():
        st = opt.state[p]
        out[f"expected.{n}"] = p.detach().clone()
        out[f"expected.exp_avg.{n}"] = st["exp_avg"].clone()
        out[f"expected.exp_avg_sq.{n}"] = st["exp_avg_sq"].clone()
        out[f"expected.step.{n}"] = st["step"].to(torch.int64).reshape(())
    out["lr"] = torch.tensor(lrs, dtype=torch.float64)
    save("adamw.safetensors", out, meta(decay=",".join(decay), no_decay=",".join(no_decay), weight_decay=repr(wd),
                                        beta1=repr(betas[0]), beta2=repr(betas[1]), eps=repr(eps), steps=steps,
                                        seed=SEED))


# ---- clip_grad_norm_ ------------------------------------------------------------------------------------
def clip_grad_norm_fixture(g):
    shapes = [(4, 3), (5,), (2, 3, 2)]
    out, md = {}, {}
    for case, max_norm in (("clip", 1.0), ("noclip", 100.0)):
        ps = [torch.zeros(*s, requires_grad=True) for s in shapes]
        for i, p in enumerate(ps):
            p.grad = torch.randn(*shapes[i], generator=g) * (i + 1)
            out[f"{case}.grad.{i}"] = p.grad.clone()
        total = torch.nn.utils.clip_grad_norm_(ps, max_norm, norm_type=2.0)
        for i, p in enumerate(ps):
            out[f"{case}.clipped.{i}"] = p.grad.clone()
        out[f"{case}.total_norm"] = total.detach().double().reshape(())
        md[f"{case}.max_norm"] = repr(max_norm)
    save("clip_grad_norm.safetensors", out, meta(**md))


# ---- the learning-rate schedule ---------------------------------------------------------------------------
def formula_lr(step, base_lr, warmup, total, min_lr=0.0, start_factor=0.0):
    """nn/optim.h CosineSchedule::lr_at, written out in python."""
    if step < warmup:
        return base_lr * (start_factor + (1 - start_factor) * (step + 1) / warmup)
    if step >= total:
        return min_lr
    e, es = step - warmup, total - warmup
    return min_lr + 0.5 * (1 + math.cos(math.pi * e / es)) * (base_lr - min_lr)


def lr_schedule_fixture():
    base, warmup, total = 5e-4, 10, 100
    try:
        from open_clip_train.scheduler import cosine_lr

        class _Opt:  # cosine_lr only assigns param_groups[*]["lr"]
            param_groups = [{"lr": 0.0}]

        adjust = cosine_lr(_Opt(), base, warmup, total)
        openclip = [adjust(s) for s in range(total)]
        source = "open_clip_train.scheduler.cosine_lr"
    except ImportError:
        openclip = [formula_lr(s, base, warmup, total) for s in range(total)]
        source = "formula (open_clip_train not importable)"
    formula = [formula_lr(s, 3e-3, 7, 50, min_lr=1e-5, start_factor=0.1) for s in range(60)]
    save("lr_schedule.safetensors", {"openclip": torch.tensor(openclip, dtype=torch.float64),
                                     "formula": torch.tensor(formula, dtype=torch.float64)},
         meta(openclip_source=source, openclip_args="base_lr=5e-4 warmup=10 steps=100",
              formula_args="base_lr=3e-3 warmup=7 total=50 min_lr=1e-5 warmup_start_factor=0.1"))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    clip_loss_fixture(g)
    adamw_fixture(g)
    clip_grad_norm_fixture(g)
    lr_schedule_fixture()


if __name__ == "__main__":
    main()
