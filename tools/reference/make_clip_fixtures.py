#!/usr/bin/env python3
"""Writes tests/fixtures/clip/: small random CLIP models in every input format vislang reads, and the
PyTorch reference outputs that tests/test_clip.cpp compares ClipModel with (STYLE.md practice 7).

Where it sits: transformers / open_clip (the references of record) -> checkpoints -> tools/convert.py
-> tests/fixtures/clip/* -> tests/test_clip.cpp (ClipModel::load, encode_image, encode_text, logits).

What is built (random weights, every float rounded to f16 so that f16 storage is lossless while the
references are computed by torch in float32 from exactly the stored values):
  hf_vit/                  transformers CLIPModel, quick_gelu, saved with save_pretrained
                           (config.json + model.safetensors, f16): read by ClipModel::load directly.
  openclip_vit.safetensors open_clip CLIP ViT with gelu, saved as an OpenCLIP training checkpoint
                           (open_clip_pytorch_model.bin: {"epoch", "name", "state_dict"} with "module."
                           prefixes, plus open_clip_config.json giving the heads and quick_gelu=false),
                           converted with tools/convert.py (act detected from the json). The same
                           weights as open_clip_model.safetensors are converted too and must give
                           identical tensors (checked here; not committed).
  openai_rn.safetensors    open_clip ModifiedResNet CLIP (quick_gelu) saved the way OpenAI ships
                           .pt files: a TorchScript archive (torch.jit.trace of the model, with the
                           input_resolution/context_length/vocab_size tensors OpenAI's archives hold),
                           converted with `--dtype f16 --text-heads 2`. The same model as a plain
                           partially-f16 state_dict (OpenAI's convert_weights) is converted too and must
                           give the same values (checked here; not committed).
  reference.safetensors    inputs and reference outputs: "pixels" (2, 3, 64, 64) f32 — astronaut.png and
                           chelsea.png from shared/data/images, preprocessed by open_clip's eval transform
                           (bicubic resize of the short side, center crop, OpenAI mean/std), so the C++ test
                           does not depend on vislang's image code; "input_ids" (4, 77) i64 from
                           open_clip.tokenize; per model "<m>.image_embeds" (2, E), "<m>.text_embeds"
                           (4, E), "<m>.logits_per_image" (2, 4), all f32. Metadata: format_version,
                           models (name -> path relative to the folder), texts, images, and
                           hf_vit.vislang_config (what convert.py writes for the HF folder; the C++ test
                           checks that ClipConfig::from_hf(config.json) agrees with it).

Size. The CLIP tokenizer's ids reach 49407, so the tests feed real tokenized text through the full
49408-entry vocabulary; the token table dominates. Text width 8 (2 heads of 4) in f16 storage is
49408 * 8 * 2 B = 0.79 MB; vision towers are kept at ~0.1-0.2 MB (ViT width 32, 2 layers, patch 16,
image 64; ResNet stem width 4, blocks (1, 1, 1, 1), image 64), so each model file is < 1 MB.
Width 8 is below OpenAI's head rule (width // 64), so the heads come from open_clip_config.json or
--text-heads: that exercises both paths of convert.py.

--full [DIR] (default /tmp/vislang_clip_full; nothing committed) builds ViT-B/32 (saved as an OpenAI
plain state_dict .pt) and RN50 (saved as a TorchScript archive) at real shapes with random weights,
converts both (f32) and writes DIR/reference.safetensors with 224x224 pixels in the same layout.
Then: VISLANG_FULL_CHECK_DIR=DIR build/bin/vislang_tests --test-suite=models

Bump FORMAT_VERSION when the layout (not the values) changes, together with kClipFixtureVersion in
tests/test_clip.cpp. Re-run after editing (deterministic; takes a few seconds):

    python3 tools/reference/make_clip_fixtures.py
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

FORMAT_VERSION = "1"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "clip")
CONVERT = os.path.join(ROOT, "tools", "convert.py")
IMAGES_DIR = os.environ.get("VISLANG_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
IMAGES = ["astronaut.png", "chelsea.png"]
TEXTS = ["a photo of an astronaut", "a tabby cat lying on a sofa", "a rocket on its launch pad",
         "a cup of coffee"]
SEED = 20240917

sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert as vl_convert  # noqa: E402  (read_safetensors, to compare converted files)


# ---- inputs ---------------------------------------------------------------------------------------
def load_inputs(size):
    import open_clip
    from PIL import Image
    tf = open_clip.image_transform(size, is_train=False)  # bicubic short side, center crop, OpenAI mean/std
    imgs = []
    for name in IMAGES:
        path = os.path.join(IMAGES_DIR, "data", "images", name)
        imgs.append(tf(Image.open(path).convert("RGB")))
    pixels = torch.stack(imgs).to(torch.float32).contiguous()
    ids = open_clip.tokenize(TEXTS).to(torch.int64).contiguous()
    return pixels, ids


# ---- random weights --------------------------------------------------------------------------------
def randomize_(model, gen, round_f16=True):
    """Default inits leave norms at 1/0 and open_clip zeroes bn3.weight; give every float tensor random
    but well-scaled values, then (optionally) round it to f16 so f16 storage is exact."""
    with torch.no_grad():
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            if not t.is_floating_point() or name.endswith("attn_mask") or name == "logit_scale":
                continue
            short = name.rsplit(".", 1)[-1]
            if short == "running_var":
                t.copy_(torch.rand(t.shape, generator=gen) * 0.8 + 0.6)
            elif short == "running_mean":
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif t.dim() == 1 and short == "weight":  # LayerNorm / BatchNorm scale
                t.copy_(1.0 + 0.1 * torch.randn(t.shape, generator=gen))
            elif t.dim() == 1 and short == "bias":
                t.copy_(0.05 * torch.randn(t.shape, generator=gen))
            else:  # matrices, convs, embeddings: N(0, 1/fan_in) (class embedding: fan_in = its size)
                fan_in = max(1, t[0].numel()) if t.dim() > 1 else t.numel()
                t.copy_(torch.randn(t.shape, generator=gen) / np.sqrt(fan_in))
            if round_f16:
                t.copy_(t.half().float())
        if hasattr(model, "logit_scale"):
            model.logit_scale.copy_(model.logit_scale.half().float())
    return model.eval()


# ---- references --------------------------------------------------------------------------------------
def logits(img, txt, logit_scale):
    return logit_scale.exp() * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).t()


@torch.no_grad()
def ref_openclip(model, pixels, ids):
    img = model.encode_image(pixels).float()
    txt = model.encode_text(ids).float()
    return img, txt, logits(img, txt, model.logit_scale.float())


@torch.no_grad()
def ref_hf(model, pixels, ids):
    img = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
    txt = model.text_projection(model.text_model(input_ids=ids).pooler_output)
    out = model(input_ids=ids, pixel_values=pixels)
    lg = logits(img, txt, model.logit_scale)
    assert torch.allclose(lg, out.logits_per_image, atol=1e-4, rtol=1e-4), "HF logits disagree with get_*_features"
    return img, txt, lg


@torch.no_grad()
def check_f64(model, f32_out, pixels, ids, fn):
    """How far float32 torch is from float64 torch: the floor under any tolerance."""
    import copy
    m64 = copy.deepcopy(model).double()
    out64 = fn(m64, pixels.double(), ids)
    return max((a.double() - b).abs().max().item() / b.abs().max().item() for a, b in zip(f32_out, out64))


# ---- conversion ------------------------------------------------------------------------------------------
def run_convert(*args):
    cmd = [sys.executable, CONVERT, *args]
    print("  $ python3 tools/convert.py " + " ".join(os.path.relpath(a, ROOT) if os.path.isabs(a) else a
                                                    for a in args))
    r = subprocess.run(cmd, capture_output=True, text=True)
    for line in r.stderr.splitlines():
        if "%" not in line:
            print("    " + line)
    if r.returncode != 0:
        raise SystemExit(f"convert.py failed ({r.returncode}):\n{r.stderr}")


def same_tensors(a_path, b_path, exact_dtype=True):
    a, ma = vl_convert.read_safetensors(a_path)
    b, mb = vl_convert.read_safetensors(b_path)
    assert sorted(a) == sorted(b), (set(a) ^ set(b))
    for k in a:
        if exact_dtype:
            assert a[k].dtype == b[k].dtype, (k, a[k].dtype, b[k].dtype)
        assert torch.equal(a[k].float(), b[k].float()), k
    ca, cb = json.loads(ma["vislang.config"]), json.loads(mb["vislang.config"])
    ca.pop("name"), cb.pop("name")
    assert ca == cb, (ca, cb)


# ---- the small models ---------------------------------------------------------------------------------
TEXT = dict(context_length=77, vocab_size=49408, width=8, heads=2, layers=2)  # mlp 32


def build_hf(gen):
    from transformers import CLIPConfig, CLIPModel
    cfg = CLIPConfig(
        text_config=dict(vocab_size=49408, hidden_size=8, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu"),
        vision_config=dict(hidden_size=32, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                           image_size=64, patch_size=16, hidden_act="quick_gelu"),
        projection_dim=16)
    cfg._name_or_path = "fixture-hf-vit"
    return randomize_(CLIPModel(cfg), gen)


def build_openclip(gen, vision, quick_gelu, text=TEXT, embed_dim=16, round_f16=True):
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    m = CLIP(embed_dim, CLIPVisionCfg(**vision), CLIPTextCfg(**text), quick_gelu=quick_gelu)
    return randomize_(m, gen, round_f16)


def save_torchscript_openai_style(model, path, image_size):
    """A TorchScript archive like OpenAI's downloads: traced forward/encode_image/encode_text, with the
    three hyper-parameters OpenAI keeps as tensors in the state dict (input_resolution, context_length,
    vocab_size). Returns the archive's state dict."""
    ctx, voc = model.context_length, model.vocab_size
    del model.context_length, model.vocab_size  # plain ints on the open_clip model; buffers while saving
    model.register_buffer("input_resolution", torch.tensor(image_size))
    model.register_buffer("context_length", torch.tensor(ctx))
    model.register_buffer("vocab_size", torch.tensor(voc))
    try:
        pixels = torch.zeros(2, 3, image_size, image_size)
        text = torch.zeros(2, ctx, dtype=torch.int64)
        traced = torch.jit.trace_module(model, dict(forward=(pixels, text), encode_image=(pixels,),
                                                    encode_text=(text,)))
        torch.jit.save(traced, path)
    finally:
        for n in ("input_resolution", "context_length", "vocab_size"):
            delattr(model, n)
        model.context_length, model.vocab_size = ctx, voc
    sd = torch.jit.load(path, map_location="cpu").state_dict()
    assert {"input_resolution", "context_length", "vocab_size"} <= set(sd), sorted(sd)[:5]
    return sd


def write_reference(path, pixels, ids, results, models, extra_meta):
    tensors = {"pixels": pixels, "input_ids": ids}
    for name, (img, txt, lg) in results.items():
        tensors[f"{name}.image_embeds"] = img.float().contiguous()
        tensors[f"{name}.text_embeds"] = txt.float().contiguous()
        tensors[f"{name}.logits_per_image"] = lg.float().contiguous()
    meta = {"format_version": FORMAT_VERSION, "generator": "tools/reference/make_clip_fixtures.py",
            "torch": torch.__version__, "models": json.dumps(models), "texts": json.dumps(TEXTS),
            "images": json.dumps(IMAGES)}
    meta.update(extra_meta)
    # The python library keeps metadata in a hash map (header order varies); convert.py's writer keeps
    # ours sorted, so the bytes are reproducible.
    vl_convert.write_safetensors(path, tensors, dict(sorted(meta.items())))


def make_small():
    import open_clip
    gen = torch.Generator().manual_seed(SEED)
    pixels, ids = load_inputs(64)
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="vislang_clip_fixtures_")
    results, models, floors = {}, {}, {}
    try:
        # (1) Hugging Face folder, read directly by ClipModel::load.
        print("hf_vit: transformers CLIPModel (quick_gelu) -> hf_vit/ (config.json + model.safetensors)")
        hf = build_hf(gen)
        results["hf_vit"] = ref_hf(hf, pixels, ids)
        floors["hf_vit"] = check_f64(hf, results["hf_vit"], pixels, ids, ref_hf)
        hf_dir = os.path.join(OUT, "hf_vit")
        shutil.rmtree(hf_dir, ignore_errors=True)
        hf.half().save_pretrained(hf_dir, safe_serialization=True)
        for f in os.listdir(hf_dir):
            if f not in ("config.json", "model.safetensors"):
                os.remove(os.path.join(hf_dir, f))
        models["hf_vit"] = "hf_vit"
        # convert.py on the HF folder: its config is recorded for the C++ from_hf cross-check.
        hf_conv = os.path.join(tmp, "hf_vit.safetensors")
        run_convert(hf_dir, hf_conv)
        conv, meta = vl_convert.read_safetensors(hf_conv)
        orig, _ = vl_convert.read_safetensors(os.path.join(hf_dir, "model.safetensors"))
        assert sorted(conv) == sorted(k for k in orig if not k.endswith("position_ids"))
        assert all(torch.equal(conv[k], orig[k]) for k in conv)
        hf_config = meta["vislang.config"]

        # (2) OpenCLIP ViT, gelu, training-checkpoint layout.
        print("openclip_vit: open_clip CLIP ViT (gelu) -> open_clip_pytorch_model.bin -> openclip_vit.safetensors")
        ocv = build_openclip(gen, dict(layers=2, width=32, head_width=16, patch_size=16, image_size=64),
                             quick_gelu=False)
        results["openclip_vit"] = ref_openclip(ocv, pixels, ids)
        floors["openclip_vit"] = check_f64(ocv, results["openclip_vit"], pixels, ids, ref_openclip)
        oc_dir = os.path.join(tmp, "openclip")
        os.makedirs(oc_dir)
        sd = {k: v.half() for k, v in ocv.state_dict().items()}
        torch.save({"epoch": 32, "name": "fixture-openclip-vit",
                    "state_dict": {"module." + k: v for k, v in sd.items()}},
                   os.path.join(oc_dir, "open_clip_pytorch_model.bin"))
        from safetensors.torch import save_file
        save_file(sd, os.path.join(oc_dir, "open_clip_model.safetensors"))
        with open(os.path.join(oc_dir, "open_clip_config.json"), "w") as f:
            json.dump({"model_cfg": {"embed_dim": 16,
                                     "vision_cfg": dict(layers=2, width=32, head_width=16, patch_size=16,
                                                        image_size=64),
                                     "text_cfg": TEXT},
                       "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                                          "std": list(open_clip.OPENAI_DATASET_STD)}}, f, indent=2)
        dst = os.path.join(OUT, "openclip_vit.safetensors")
        run_convert(os.path.join(oc_dir, "open_clip_pytorch_model.bin"), dst, "--name", "fixture-openclip-vit")
        run_convert(os.path.join(oc_dir, "open_clip_model.safetensors"), os.path.join(tmp, "oc_st.safetensors"))
        same_tensors(dst, os.path.join(tmp, "oc_st.safetensors"))
        run_convert(oc_dir, os.path.join(tmp, "oc_dir.safetensors"))
        same_tensors(dst, os.path.join(tmp, "oc_dir.safetensors"))
        assert json.loads(vl_convert.read_safetensors(dst)[1]["vislang.config"])["vision"]["act"] == "gelu"
        models["openclip_vit"] = "openclip_vit.safetensors"

        # (3) ModifiedResNet in OpenAI's TorchScript form (and as a plain partially-f16 state dict).
        print("openai_rn: open_clip ModifiedResNet CLIP (quick_gelu) -> TorchScript .pt -> openai_rn.safetensors")
        rn = build_openclip(gen, dict(layers=(1, 1, 1, 1), width=4, image_size=64), quick_gelu=True)
        results["openai_rn"] = ref_openclip(rn, pixels, ids)
        floors["openai_rn"] = check_f64(rn, results["openai_rn"], pixels, ids, ref_openclip)
        jit_path = os.path.join(tmp, "RN-tiny.pt")
        save_torchscript_openai_style(rn, jit_path, 64)
        dst = os.path.join(OUT, "openai_rn.safetensors")
        run_convert(jit_path, dst, "--dtype", "f16", "--text-heads", "2", "--name", "fixture-openai-rn")
        from open_clip.model import convert_weights_to_lp
        import copy
        rn16 = copy.deepcopy(rn)
        convert_weights_to_lp(rn16, torch.float16)  # OpenAI's release dtype mix
        sd = dict(rn16.state_dict())
        sd.update(input_resolution=torch.tensor(64), context_length=torch.tensor(77), vocab_size=torch.tensor(49408))
        plain = os.path.join(tmp, "RN-tiny-state-dict.pt")
        torch.save(sd, plain)
        run_convert(plain, os.path.join(tmp, "rn_plain.safetensors"), "--text-heads", "2")
        same_tensors(dst, os.path.join(tmp, "rn_plain.safetensors"), exact_dtype=False)
        models["openai_rn"] = "openai_rn.safetensors"

        write_reference(os.path.join(OUT, "reference.safetensors"), pixels, ids, results, models,
                        {"hf_vit.vislang_config": hf_config})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("float32 torch vs float64 torch (max |diff| / max |ref|):",
          ", ".join(f"{k} {v:.2e}" for k, v in floors.items()))
    total = 0
    for root, _, files in os.walk(OUT):
        for f in sorted(files):
            p = os.path.join(root, f)
            total += os.path.getsize(p)
            print(f"  {os.path.relpath(p, ROOT)}: {os.path.getsize(p) / 1024:.0f} KiB")
    print(f"wrote {os.path.relpath(OUT, ROOT)} ({total / 1024:.0f} KiB in all)")


def make_full(out_dir):
    """ViT-B/32 and RN50 at real shapes with random weights (f32), for a local check only."""
    gen = torch.Generator().manual_seed(SEED + 1)
    pixels, ids = load_inputs(224)
    os.makedirs(out_dir, exist_ok=True)
    text = dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=12)
    results, models = {}, {}

    print("vit_b32: ViT-B/32 (quick_gelu) as an OpenAI plain state_dict .pt")
    vit = build_openclip(gen, dict(layers=12, width=768, patch_size=32, image_size=224), True, text, 512,
                         round_f16=False)
    results["vit_b32"] = ref_openclip(vit, pixels, ids)
    sd = dict(vit.state_dict())
    sd.update(input_resolution=torch.tensor(224), context_length=torch.tensor(77), vocab_size=torch.tensor(49408))
    torch.save(sd, os.path.join(out_dir, "ViT-B-32.pt"))
    run_convert(os.path.join(out_dir, "ViT-B-32.pt"), os.path.join(out_dir, "vit_b32.safetensors"))
    models["vit_b32"] = "vit_b32.safetensors"
    del vit, sd

    print("rn50: RN50 (quick_gelu) as an OpenAI TorchScript archive")
    rn = build_openclip(gen, dict(layers=(3, 4, 6, 3), width=64, image_size=224), True, text, 1024, round_f16=False)
    results["rn50"] = ref_openclip(rn, pixels, ids)
    save_torchscript_openai_style(rn, os.path.join(out_dir, "RN50.pt"), 224)
    run_convert(os.path.join(out_dir, "RN50.pt"), os.path.join(out_dir, "rn50.safetensors"))
    models["rn50"] = "rn50.safetensors"

    write_reference(os.path.join(out_dir, "reference.safetensors"), pixels, ids, results, models, {})
    for k, (img, txt, lg) in results.items():
        print(f"  {k}: |image_embeds| max {img.abs().max():.3g}, |text_embeds| max {txt.abs().max():.3g}, "
              f"logits {lg.flatten()[:4].tolist()}")
    print(f"wrote {out_dir}/reference.safetensors; now run:\n"
          f"  VISLANG_FULL_CHECK_DIR={out_dir} build/bin/vislang_tests --test-suite=models")


def main():
    ap = argparse.ArgumentParser(description="CLIP golden fixtures for tests/test_clip.cpp")
    ap.add_argument("--full", nargs="?", const="/tmp/vislang_clip_full", metavar="DIR",
                    help="also build ViT-B/32 and RN50 at real shapes into DIR (not committed)")
    ap.add_argument("--skip-small", action="store_true", help="with --full: do not rewrite tests/fixtures/clip")
    a = ap.parse_args()
    torch.manual_seed(SEED)
    if not a.skip_small:
        make_small()
    if a.full:
        make_full(a.full)


if __name__ == "__main__":
    main()
