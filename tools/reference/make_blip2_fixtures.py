#!/usr/bin/env python3
"""Writes tests/fixtures/blip2/: a small random BLIP-2 retrieval model in the input formats vislang
reads, the PyTorch reference outputs tests/test_blip2.cpp compares Blip2Retrieval with, and the
VisualAdapter parity fixture (STYLE.md practice 7).

Where it sits: transformers' Blip2ForImageTextRetrieval (the reference of record) -> checkpoints ->
tools/convert.py -> tests/fixtures/blip2/* -> tests/test_blip2.cpp (models/blip2/blip2.h,
nn/visual_adapter.h).

What is built (random weights, every float rounded to f16 so that f16 storage is lossless while the
references are computed by torch in float32 from exactly the stored values; the shape is vislang's
"blip2-tiny" preset in models/blip2/config.cpp — keep the two in sync):
  vision   image 56, patch 14 (16 patches + class = 17 tokens), width 48, 2 layers, 4 heads, mlp 96
  qformer  width 64, 3 layers (cross-attention in layers 0 and 2: frequency 2), 4 heads, mlp 128,
           vocab 512, 32 positions; 8 query tokens; embedding width 32
  The vision and Q-Former widths differ on purpose: a key/value projection read with the wrong width
  fails to load instead of passing by accident.

  hf/                     transformers Blip2ForImageTextRetrieval saved with save_pretrained
                          (config.json + model.safetensors, f16): read by Blip2Retrieval::load.
  lavis.safetensors       the same weights renamed to LAVIS's blip2_image_text_matching layout
                          (visual_encoder.*, ln_vision, Qformer.bert.*, vision_proj, text_proj,
                          attn.q_bias / attn.v_bias, plus temp and the unused Qformer.cls.* LM head),
                          saved the way LAVIS's runner saves checkpoints ({"model": state_dict} without
                          the frozen vision encoder) next to an eva_vit_g-style vision file with one
                          block too many (LAVIS drops it), converted with
                          `tools/convert.py CKPT --vision-weights EVA --vision-layers 2 --vision-heads 4
                          --text-heads 4`. The HF folder is converted too, into a temporary file that
                          must hold identical tensors (checked here; not committed).
  reference.safetensors   inputs and float32 reference outputs:
                            pixels (2, 3, 56, 56)        astronaut.png, chelsea.png through HF's
                                                         BlipImageProcessor (bicubic resize to 56x56, no
                                                         crop, CLIP mean/std)
                            input_ids, attention_mask (3, 10) i64   made-up BERT-style ids ([CLS]=101 ...
                                                         [SEP]=102, zero padded: lengths 10, 7, 4); the
                                                         WordPiece tokenizer is tested elsewhere
                            vision_last_hidden_state (2, 17, 48), query_output (2, 8, 64),
                            image_embeds (2, 8, 32), text_last_hidden_state (3, 10, 64), text_embeds
                            (3, 32), itc_scores (2, 3), itm_logits (6, 2) for the pairs (image i, text
                            j) at row 3i + j, itm_probabilities (2, 3)
                          Metadata: format_version, hf_vislang_config (what convert.py writes for hf/;
                          the C++ test checks Blip2Config::from_hf(config.json) agrees), f64_floor.
  adapter.safetensors     VisualAdapter in its three modes (the PyTorch module VisualAdapterRef below),
                          weights under linear.*, mlp.*, qformer.*, configs as <mode>.config metadata,
                          input "inputs.x" (2, 17, 48) and outputs "outputs.<mode>".
  hf/vocab.txt, hf/tokenizer_config.json, ..., hf/preprocessor_config.json
                          a 511-token BERT WordPiece vocabulary (specials, ASCII, letters and "##"
                          letters, a few hundred caption words, [unusedN] filler) plus BLIP-2's "[DEC]"
                          bos token = id 511, saved by the slow BertTokenizer's save_pretrained with
                          model_max_length 32 (the tiny Q-Former's positions), and BlipImageProcessor's
                          preprocessor_config.json (56 x 56, CLIP mean/std): hf/ is then a complete
                          model folder for `vislang embed|zero-shot|similarity|index build`.
  cli_reference.safetensors   what the CLI must print for real files (tests/test_blip2_cli.cpp):
                            CLI_IMAGES (tests/fixtures/image/inputs, committed) through HF's
                            BlipImageProcessorPil at 56 x 56 -> pixels (3, 3, 56, 56); CLI_TEXTS through
                            the slow BertTokenizer of hf/ (padding="longest") -> input_ids,
                            attention_mask (6, T); image_embeds (3, 8, 32), text_embeds (6, 32),
                            itc_scores (3, 6) (cosines, max over the queries, as HF returns them) and
                            itm_probabilities (3, 6) from Blip2ForImageTextRetrieval.forward.
                          Metadata: texts, images (JSON lists).
  preprocess.safetensors  BLIP-2 image preprocessing on the shared photos (../shared/data/images, not
                          committed; the C++ test skips without them): for each photo and size (224 for
                          all, 364 for two: blip2-itm-vit-g-coco), HF BlipImageProcessorPil's float32
                          output sampled every PREP_STRIDE-th element ("<stem>_<size>.samples"), and as
                          metadata ("<stem>_<size>") the crc32 of PIL's uint8 resize, sum, sum of
                          squares, min, max of the whole tensor, and how many uint8 levels the default
                          (torchvision backend) BlipImageProcessor differs from PIL at most.

--full [DIR] (default /tmp/vislang_blip2_full; nothing committed) builds blip2-itm-vit-g at its real
shape (ViT-g/14: width 1408, 39 layers, 16 heads, mlp 6144, image 224; Q-Former: width 768, 12 layers,
12 heads, cross-attention every 2nd layer, 32 queries, vocab 30523; embedding 256) with random
weights, saves it as an HF folder in float32 (about 4.6 GB: check `df -h` first) and writes
DIR/reference.safetensors in the layout above. Then:
    VISLANG_BLIP2_FULL_DIR=DIR build/bin/vislang_tests --test-suite=blip2

Bump FORMAT_VERSION when the layout (not the values) changes, together with kBlip2FixtureVersion in
tests/test_blip2.cpp. Re-run after editing (deterministic; takes a few seconds):

    python3 tools/reference/make_blip2_fixtures.py
"""
import argparse
import copy
import json
import math
import os
import shutil
import sys
import tempfile

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# ROOT, IMAGES (astronaut.png, chelsea.png), IMAGES_DIR, run_convert (tools/convert.py with its log),
# vl_convert (tools/convert.py as a module: read/write_safetensors, OPENAI_MEAN/STD): shared with CLIP's.
from make_clip_fixtures import IMAGES, IMAGES_DIR, ROOT, run_convert, vl_convert  # noqa: E402

FORMAT_VERSION = "1"
OUT = os.path.join(ROOT, "tests", "fixtures", "blip2")
SEED = 20240923
# The CLI fixture: committed inputs of the image fixtures (a tall one tests the squashing resize), and
# prompts such as `vislang zero-shot --templates "a photo of a {}."` builds them.
CLI_IMAGES = ["odd_223x225_rgb.png", "odd_230x700_rgb.png", "bmp_rgb.bmp"]
CLI_IMAGES_DIR = os.path.join(ROOT, "tests", "fixtures", "image", "inputs")
CLI_LABELS = ["cat", "dog", "rocket", "red square", "zebra"]
CLI_TEMPLATE = "a photo of a {}."
CLI_TEXTS = [CLI_TEMPLATE.format(l) for l in CLI_LABELS] + ["an astronaut in a white suit standing on the grass"]
PREP_IMAGES = ["astronaut.png", "camera.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "rocket.jpg"]
PREP_SIZES = {"astronaut.png": [224, 364], "rocket.jpg": [224, 364]}  # others: 224
PREP_STRIDE = 31

TINY = dict(
    vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                       image_size=56, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-6),
    qformer_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4,
                        vocab_size=512, max_position_embeddings=32, cross_attention_frequency=2,
                        use_qformer_text_input=True, hidden_act="gelu", layer_norm_eps=1e-12),
    num_query_tokens=8, image_text_hidden_size=32)

FULL = dict(  # Salesforce/blip2-itm-vit-g
    vision_config=dict(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39, num_attention_heads=16,
                       image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-6),
    qformer_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                        vocab_size=30523, max_position_embeddings=512, cross_attention_frequency=2,
                        use_qformer_text_input=True, hidden_act="gelu", layer_norm_eps=1e-12),
    num_query_tokens=32, image_text_hidden_size=256)


# ---- inputs -----------------------------------------------------------------------------------------
def load_pixels(size):
    from PIL import Image
    from transformers import BlipImageProcessor
    proc = BlipImageProcessor(size={"height": size, "width": size}, image_mean=vl_convert.OPENAI_MEAN,
                              image_std=vl_convert.OPENAI_STD)
    imgs = [Image.open(os.path.join(IMAGES_DIR, "data", "images", n)).convert("RGB") for n in IMAGES]
    return proc(images=imgs, return_tensors="pt").pixel_values.to(torch.float32).contiguous()


def make_text(gen, vocab, lengths, total):
    """BERT-style rows: [CLS]=101, random ids in [103, vocab), [SEP]=102, zero padding."""
    ids = torch.zeros(len(lengths), total, dtype=torch.int64)
    mask = torch.zeros(len(lengths), total, dtype=torch.int64)
    for r, n in enumerate(lengths):
        ids[r, 0], ids[r, n - 1] = 101, 102
        ids[r, 1:n - 1] = torch.randint(103, vocab, (n - 2,), generator=gen)
        mask[r, :n] = 1
    return ids, mask


# ---- random weights ------------------------------------------------------------------------------------
def random_value(name, t, gen):
    """A well-scaled random value for the float tensor `name` (HF's init leaves norms at 1/0, the
    query tokens at 0 and the vision weights at std 1e-10)."""
    short = name.rsplit(".", 1)[-1]
    noise = torch.randn(t.shape, generator=gen)
    if t.dim() == 1:  # LayerNorm scales around 1, biases around 0
        return 1.0 + 0.1 * noise if short == "weight" else 0.05 * noise
    is_table = short in ("query_tokens", "class_embedding", "position_embedding") or \
        name.endswith(("word_embeddings.weight", "position_embeddings.weight"))
    return 0.5 * noise if is_table else noise / math.sqrt(t[0].numel())  # Linear / conv: N(0, 1/fan_in)


def randomize_(model, gen, round_f16=True):
    """random_value for every float tensor, rounded to f16 (so f16 storage is exact) unless told not to.
    The key third of each vision qkv bias stays 0: checkpoints have none (EVA/LAVIS store q_bias and
    v_bias only)."""
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                v = random_value(name, t, gen)
                if name.endswith("self_attn.qkv.bias"):
                    v[t.numel() // 3: 2 * t.numel() // 3] = 0
                t.copy_(v.half().float() if round_f16 else v)
    return model.eval()


def build_hf(shape, gen, round_f16=True, name="fixture-blip2-tiny"):
    from transformers import Blip2Config, Blip2ForImageTextRetrieval
    cfg = Blip2Config(**copy.deepcopy(shape))
    cfg._name_or_path = name
    return randomize_(Blip2ForImageTextRetrieval(cfg), gen, round_f16)


# ---- the reference outputs ----------------------------------------------------------------------------
@torch.no_grad()
def reference(model, pixels, ids, mask):
    """Every stage the C++ test compares, through HF's own modules and forward()."""
    Bi, Bt = pixels.shape[0], ids.shape[0]
    vis = model.vision_model(pixel_values=pixels).last_hidden_state                       # (Bi, 1+N, Cv)
    q = model.query_tokens.expand(Bi, -1, -1)
    ones = torch.ones(vis.shape[:-1], dtype=torch.long)
    query_out = model.qformer(query_embeds=q, encoder_hidden_states=vis,
                              encoder_attention_mask=ones).last_hidden_state              # (Bi, Q, C)
    text_h = model.qformer(query_embeds=model.embeddings(input_ids=ids), query_length=0,
                           attention_mask=mask).last_hidden_state                          # (Bt, T, C)
    itc = model(pixel_values=pixels, input_ids=ids, attention_mask=mask, use_image_text_matching_head=False)
    # ITM for every (image i, text j) pair at row i * Bt + j.
    itm = model(pixel_values=pixels.repeat_interleave(Bt, 0), input_ids=ids.repeat(Bi, 1),
                attention_mask=mask.repeat(Bi, 1), use_image_text_matching_head=True).logits_per_image
    # The same through the stages, as vislang composes them: a check that the stages are the ones
    # HF's forward() uses.
    img_e = F.normalize(model.vision_projection(query_out), dim=-1)
    txt_e = F.normalize(model.text_projection(text_h[:, 0, :]), dim=-1)
    assert torch.allclose(img_e, itc.image_embeds, atol=1e-6), "image_embeds: stages disagree with forward()"
    assert torch.allclose(txt_e, itc.text_embeds, atol=1e-6), "text_embeds: stages disagree with forward()"
    itc_manual = (img_e @ txt_e.t()).max(dim=1).values
    assert torch.allclose(itc_manual, itc.logits_per_image, atol=1e-6), "itc: max over queries"
    return {
        "vision_last_hidden_state": vis, "query_output": query_out, "image_embeds": itc.image_embeds,
        "text_last_hidden_state": text_h, "text_embeds": itc.text_embeds, "itc_scores": itc.logits_per_image,
        "itm_logits": itm, "itm_probabilities": F.softmax(itm, dim=-1)[:, 1].reshape(Bi, Bt),
    }


def f64_floor(model, out32, pixels, ids, mask):
    """How far float32 torch is from float64 torch (max |diff| / max |ref| over all outputs)."""
    out64 = reference(copy.deepcopy(model).double(), pixels.double(), ids, mask)
    return max(((out32[k].double() - out64[k]).abs().max() / out64[k].abs().max()).item() for k in out32)


# ---- LAVIS layout ------------------------------------------------------------------------------------------
def to_lavis(sd, n_vision_layers):
    """HF Blip2ForImageTextRetrieval names -> LAVIS Blip2Qformer names (the inverse of the renames in
    transformers' convert_blip_2_original_to_pytorch.py). Returns (checkpoint state dict without the
    vision encoder, eva_vit_g-style vision state dict)."""
    ckpt, eva = {}, {}
    for k, v in sd.items():
        if k.startswith("vision_model."):
            r = k[len("vision_model."):]
            r = (r.replace("embeddings.class_embedding", "cls_token")
                  .replace("embeddings.position_embedding", "pos_embed")
                  .replace("embeddings.patch_embedding", "patch_embed.proj")
                  .replace("encoder.layers.", "blocks.").replace("layer_norm1", "norm1")
                  .replace("layer_norm2", "norm2").replace("self_attn.projection", "attn.proj")
                  .replace("self_attn.qkv", "attn.qkv"))
            if r.startswith("post_layernorm."):
                ckpt["ln_vision." + r.split(".")[-1]] = v
            elif r.endswith("attn.qkv.bias"):
                c = v.numel() // 3
                assert torch.all(v[c:2 * c] == 0)
                eva[r.replace("attn.qkv.bias", "attn.q_bias")] = v[:c].clone()
                eva[r.replace("attn.qkv.bias", "attn.v_bias")] = v[2 * c:].clone()
            else:
                eva[r] = v
        elif k.startswith("qformer."):
            r = "Qformer.bert." + k[len("qformer."):]
            r = r.replace("Qformer.bert.layernorm", "Qformer.bert.embeddings.LayerNorm")
            r = r.replace("attention.attention.", "attention.self.")
            ckpt[r] = v
        elif k.startswith("embeddings."):
            ckpt["Qformer.bert." + k] = v
        else:
            ckpt[{"vision_projection.weight": "vision_proj.weight", "vision_projection.bias": "vision_proj.bias",
                  "text_projection.weight": "text_proj.weight", "text_projection.bias": "text_proj.bias"}.get(k, k)] = v
    # What LAVIS checkpoints carry besides: the ITC temperature, BERT's position_ids buffer and the
    # language-model head of BertLMHeadModel (used by the captioning loss only).
    C = sd["qformer.layernorm.weight"].numel()
    V = sd["embeddings.word_embeddings.weight"].shape[0]
    P = sd["embeddings.position_embeddings.weight"].shape[0]
    ckpt["temp"] = torch.tensor(0.07)
    ckpt["Qformer.bert.embeddings.position_ids"] = torch.arange(P).unsqueeze(0)
    ckpt["Qformer.cls.predictions.bias"] = torch.zeros(V)
    ckpt["Qformer.cls.predictions.transform.dense.weight"] = torch.zeros(C, C)
    ckpt["Qformer.cls.predictions.transform.dense.bias"] = torch.zeros(C)
    ckpt["Qformer.cls.predictions.transform.LayerNorm.weight"] = torch.ones(C)
    ckpt["Qformer.cls.predictions.transform.LayerNorm.bias"] = torch.zeros(C)
    ckpt["Qformer.cls.predictions.decoder.weight"] = sd["embeddings.word_embeddings.weight"].clone()
    ckpt["Qformer.cls.predictions.decoder.bias"] = torch.zeros(V)
    # eva_vit_g.pth has 40 blocks; LAVIS builds 39 and load_state_dict(strict=False) drops the last.
    last = n_vision_layers - 1
    for k in [k for k in eva if k.startswith(f"blocks.{last}.")]:
        eva[k.replace(f"blocks.{last}.", f"blocks.{last + 1}.")] = eva[k].clone()
    return ckpt, eva


# ---- VisualAdapter reference (nn/visual_adapter.h) -------------------------------------------------------
class PostNormAttentionRef(nn.Module):
    """BERT attention + output: LayerNorm(x + dense(softmax(q kᵀ / √d) v)), written out by hand."""

    def __init__(self, dim, kv_dim, heads, eps):
        super().__init__()
        self.heads = heads
        self.attention = nn.Module()
        self.attention.query = nn.Linear(dim, dim)
        self.attention.key = nn.Linear(kv_dim, dim)
        self.attention.value = nn.Linear(kv_dim, dim)
        self.output = nn.Module()
        self.output.dense = nn.Linear(dim, dim)
        self.output.LayerNorm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x, kv):
        B, Tq, C = x.shape
        H, D = self.heads, C // self.heads

        def split(t):  # (B, T, C) -> (B, H, T, D)
            return t.view(B, t.shape[1], H, D).transpose(1, 2)

        q, k, v = split(self.attention.query(x)), split(self.attention.key(kv)), split(self.attention.value(kv))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D), dim=-1) @ v  # (B, H, Tq, D)
        a = a.transpose(1, 2).reshape(B, Tq, C)
        return self.output.LayerNorm(x + self.output.dense(a))


class VisualAdapterRef(nn.Module):
    """linear: proj; mlp: fc2(gelu(fc1(x))); qformer: Q learned queries (layernorm'd) cross-attend to the
    tokens, then a post-LN feed-forward. (B, N, Dv) -> (B, N or Q, Dt)."""

    def __init__(self, mode, in_dim, out_dim, hidden_dim=0, num_queries=0, heads=1, eps=1e-12):
        super().__init__()
        self.mode = mode
        self.config = dict(mode=mode, in_dim=in_dim, out_dim=out_dim, hidden_dim=hidden_dim,
                           num_queries=num_queries, heads=heads, act="gelu", eps=eps)
        if mode == "linear":
            self.proj = nn.Linear(in_dim, out_dim)
        elif mode == "mlp":
            self.fc1 = nn.Linear(in_dim, hidden_dim)
            self.fc2 = nn.Linear(hidden_dim, out_dim)
        else:
            self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, out_dim))
            self.layernorm = nn.LayerNorm(out_dim, eps=eps)
            self.crossattention = PostNormAttentionRef(out_dim, in_dim, heads, eps)
            self.intermediate = nn.Module()
            self.intermediate.dense = nn.Linear(out_dim, hidden_dim)
            self.output = nn.Module()
            self.output.dense = nn.Linear(hidden_dim, out_dim)
            self.output.LayerNorm = nn.LayerNorm(out_dim, eps=eps)

    def forward(self, x):
        if self.mode == "linear":
            return self.proj(x)
        if self.mode == "mlp":
            return self.fc2(F.gelu(self.fc1(x)))
        q = self.layernorm(self.query_tokens).expand(x.shape[0], -1, -1)
        h = self.crossattention(q, x)
        return self.output.LayerNorm(h + self.output.dense(F.gelu(self.intermediate.dense(h))))


@torch.no_grad()
def make_adapter_fixture(gen, x, path):
    tensors, meta = {"inputs.x": x.contiguous()}, {"format_version": FORMAT_VERSION}
    dv = x.shape[-1]
    for mode, kw in (("linear", {}), ("mlp", dict(hidden_dim=80)),
                     ("qformer", dict(hidden_dim=64, num_queries=6, heads=4))):
        m = randomize_(VisualAdapterRef(mode, dv, 32, **kw), gen)
        tensors[f"outputs.{mode}"] = m(x).contiguous()
        tensors.update({f"{mode}.{k}": v.half() for k, v in m.state_dict().items()})
        meta[f"{mode}.config"] = json.dumps(m.config)
    vl_convert.write_safetensors(path, tensors, dict(sorted(meta.items())))
    return {k: tuple(v.shape) for k, v in tensors.items() if k.startswith("outputs.")}


# ---- tokenizer, CLI and preprocessing fixtures ---------------------------------------------------------
WORDS = """a an the of on in with and at to from by for is are this that there photo picture image drawing
painting sketch cat cats dog dogs bird car truck bus boat plane rocket astronaut space man woman person
people child coffee cup mug camera galaxy galaxies star stars sky tree flower house street city red green
blue yellow black white orange purple brown gray grey circle square triangle big small one two three
sitting lying standing flying table grass water snow night day close up view face tabby kitten launch
suit helmet field deep hubble telescope gradient pattern stripes noise colorful bright dark light""".split()
PIECES = ["##s", "##es", "##ed", "##ing", "##er", "##ly", "##y"]


def slow_bert_tokenizer():
    try:  # transformers 5: BertTokenizer is the fast one; the pure-Python one is BertTokenizerLegacy
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as Slow
    except ImportError:  # transformers 4
        from transformers import BertTokenizer as Slow
    return Slow


def save_tokenizer(folder, vocab_size, max_positions):
    """A vocab_size - 1 token vocab.txt + "[DEC]" (id vocab_size - 1), as BLIP-2's tokenizer adds it."""
    import string
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(string.punctuation) + list(string.digits)
    tokens += list(string.ascii_lowercase) + ["##" + c for c in string.ascii_lowercase + string.digits]
    tokens = list(dict.fromkeys(tokens + WORDS + PIECES))  # in order, each once
    assert len(tokens) < vocab_size, len(tokens)
    tokens += [f"[unused{i}]" for i in range(vocab_size - 1 - len(tokens))]
    tmp = tempfile.mkdtemp()
    try:
        with open(os.path.join(tmp, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(t + "\n" for t in tokens))
        tok = slow_bert_tokenizer()(os.path.join(tmp, "vocab.txt"), do_lower_case=True,
                                    model_max_length=max_positions)
        tok.add_special_tokens({"bos_token": "[DEC]"})
        assert tok.convert_tokens_to_ids("[DEC]") == vocab_size - 1
        tok.save_pretrained(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return slow_bert_tokenizer().from_pretrained(folder)


def pil_blip_pixels(paths, size):
    """HF BlipImageProcessorPil (the PIL backend: PIL bicubic resize to size x size, no crop, float64
    rescale then float32 normalize) -- and a check that it is exactly PIL's uint8 resize normalized the
    way the C++ does it: (x / 255 - mean) / std in float32."""
    import numpy as np
    from PIL import Image
    from transformers import BlipImageProcessorPil
    proc = BlipImageProcessorPil(size={"height": size, "width": size}, image_mean=vl_convert.OPENAI_MEAN,
                                 image_std=vl_convert.OPENAI_STD)
    imgs = [Image.open(p).convert("RGB") for p in paths]
    px = proc(images=imgs, return_tensors="pt").pixel_values.to(torch.float32).contiguous()
    mean = np.array(vl_convert.OPENAI_MEAN, np.float32)[:, None, None]
    std = np.array(vl_convert.OPENAI_STD, np.float32)[:, None, None]
    u8 = [np.asarray(im.resize((size, size), Image.BICUBIC)) for im in imgs]  # (S, S, 3) uint8
    for p, u, x in zip(paths, u8, px):
        mine = (u.transpose(2, 0, 1).astype(np.float32) / np.float32(255) - mean) / std
        assert np.array_equal(mine, x.numpy()), f"{p}: BlipImageProcessorPil is not PIL resize + normalize"
    return px, u8


@torch.no_grad()
def make_cli_reference(model, path):
    """CLI_IMAGES and CLI_TEXTS through HF's processor, tokenizer and Blip2ForImageTextRetrieval."""
    tok = slow_bert_tokenizer().from_pretrained(os.path.join(OUT, "hf"))
    enc = tok(CLI_TEXTS, padding="longest", return_tensors="pt")
    ids, mask = enc.input_ids, enc.attention_mask
    pixels, _ = pil_blip_pixels([os.path.join(CLI_IMAGES_DIR, n) for n in CLI_IMAGES],
                                TINY["vision_config"]["image_size"])
    Bi, Bt = pixels.shape[0], ids.shape[0]
    itc = model(pixel_values=pixels, input_ids=ids, attention_mask=mask, use_image_text_matching_head=False)
    itm = model(pixel_values=pixels.repeat_interleave(Bt, 0), input_ids=ids.repeat(Bi, 1),
                attention_mask=mask.repeat(Bi, 1), use_image_text_matching_head=True).logits_per_image
    tensors = {"pixels": pixels, "input_ids": ids, "attention_mask": mask, "image_embeds": itc.image_embeds,
               "text_embeds": itc.text_embeds, "itc_scores": itc.logits_per_image,
               "itm_probabilities": F.softmax(itm, dim=-1)[:, 1].reshape(Bi, Bt)}
    meta = {"format_version": FORMAT_VERSION, "generator": "tools/reference/make_blip2_fixtures.py",
            "texts": json.dumps(CLI_TEXTS), "labels": json.dumps(CLI_LABELS), "template": CLI_TEMPLATE,
            "images": json.dumps(CLI_IMAGES), "torch": torch.__version__}
    vl_convert.write_safetensors(path, {k: v.float().contiguous() if v.is_floating_point() else v.contiguous()
                                        for k, v in tensors.items()}, dict(sorted(meta.items())))
    print(f"  itc {tuple(tensors['itc_scores'].shape)} in [{itc.logits_per_image.min():.3f}, "
          f"{itc.logits_per_image.max():.3f}], itm P(match) in [{tensors['itm_probabilities'].min():.3f}, "
          f"{tensors['itm_probabilities'].max():.3f}]")


def make_preprocess_fixture(path):
    """PREP_IMAGES through BlipImageProcessorPil (and the torchvision-backend BlipImageProcessor, for
    the record); see the module docstring."""
    import zlib
    from PIL import Image
    from transformers import BlipImageProcessor
    src = os.path.join(IMAGES_DIR, "data", "images")
    if not os.path.isdir(src):
        print(f"preprocess: {src} not found; preprocess.safetensors not written")
        return
    tensors, meta = {}, {"format_version": FORMAT_VERSION, "stride": str(PREP_STRIDE),
                         "generator": "tools/reference/make_blip2_fixtures.py", "images": json.dumps(PREP_IMAGES)}
    for name in PREP_IMAGES:
        for size in PREP_SIZES.get(name, [224]):
            p = os.path.join(src, name)
            px, u8 = pil_blip_pixels([p], size)
            x = px[0]
            tv = BlipImageProcessor(size={"height": size, "width": size}, image_mean=vl_convert.OPENAI_MEAN,
                                    image_std=vl_convert.OPENAI_STD)
            y = tv(images=[Image.open(p).convert("RGB")], return_tensors="pt").pixel_values[0].float()
            std = torch.tensor(vl_convert.OPENAI_STD)[:, None, None]
            tv_levels = ((y - x).abs() * std * 255).max().item()
            key = f"{os.path.splitext(name)[0]}_{size}"
            tensors[key + ".samples"] = x.flatten()[::PREP_STRIDE].contiguous()
            d = x.double()
            meta[key] = json.dumps({"input": name, "size": size, "crc32": zlib.crc32(u8[0].tobytes()) & 0xFFFFFFFF,
                                    "sum": d.sum().item(), "sumsq": (d * d).sum().item(), "min": d.min().item(),
                                    "max": d.max().item(), "torchvision_backend_max_levels": round(tv_levels, 3)})
            print(f"  {key}: torchvision-backend BlipImageProcessor differs from PIL by up to {tv_levels:.2f} levels")
    vl_convert.write_safetensors(path, tensors, dict(sorted(meta.items())))


# ---- conversion ------------------------------------------------------------------------------------------
def save_hf_folder(model, folder, dtype):
    shutil.rmtree(folder, ignore_errors=True)
    m = copy.deepcopy(model).to(dtype)
    m.save_pretrained(folder, safe_serialization=True, max_shard_size="1000GB")
    for f in os.listdir(folder):
        if f not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(folder, f))
    st, _ = vl_convert.read_safetensors(os.path.join(folder, "model.safetensors"))
    assert sorted(st) == sorted(model.state_dict()), set(st) ^ set(model.state_dict())


def write_reference(path, pixels, ids, mask, out, meta):
    tensors = {"pixels": pixels, "input_ids": ids, "attention_mask": mask}
    tensors.update({k: v.float().contiguous() for k, v in out.items()})
    m = {"format_version": FORMAT_VERSION, "generator": "tools/reference/make_blip2_fixtures.py",
         "torch": torch.__version__, "images": json.dumps(IMAGES)}
    m.update(meta)
    vl_convert.write_safetensors(path, tensors, dict(sorted(m.items())))


def make_small():
    from transformers import Blip2ForImageTextRetrieval
    gen = torch.Generator().manual_seed(SEED)
    pixels = load_pixels(TINY["vision_config"]["image_size"])
    ids, mask = make_text(gen, TINY["qformer_config"]["vocab_size"], [10, 7, 4], 10)
    os.makedirs(OUT, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="vislang_blip2_fixtures_")
    try:
        print("hf: transformers Blip2ForImageTextRetrieval -> hf/ (config.json + model.safetensors, f16)")
        model = build_hf(TINY, gen)
        out = reference(model, pixels, ids, mask)
        floor = f64_floor(model, out, pixels, ids, mask)
        hf_dir = os.path.join(OUT, "hf")
        save_hf_folder(model, hf_dir, torch.float16)
        # The folder must be a valid HF checkpoint that reproduces the outputs.
        back = Blip2ForImageTextRetrieval.from_pretrained(hf_dir, dtype=torch.float32).eval()
        out_back = reference(back, pixels, ids, mask)
        assert all(torch.equal(out[k], out_back[k]) for k in out), "hf/ does not reload to the same outputs"
        print("hf: + BERT WordPiece tokenizer (vocab.txt, tokenizer_config.json); cli_reference.safetensors")
        save_tokenizer(hf_dir, TINY["qformer_config"]["vocab_size"],
                       TINY["qformer_config"]["max_position_embeddings"])
        from transformers import BlipImageProcessor
        size = TINY["vision_config"]["image_size"]
        BlipImageProcessor(size={"height": size, "width": size}, image_mean=vl_convert.OPENAI_MEAN,
                           image_std=vl_convert.OPENAI_STD).save_pretrained(hf_dir)
        make_cli_reference(back, os.path.join(OUT, "cli_reference.safetensors"))
        print("preprocess: BlipImageProcessorPil on the shared photos -> preprocess.safetensors")
        make_preprocess_fixture(os.path.join(OUT, "preprocess.safetensors"))

        hf_conv = os.path.join(tmp, "hf.safetensors")
        run_convert(hf_dir, hf_conv)
        conv, meta = vl_convert.read_safetensors(hf_conv)
        hf_config = meta["vislang.config"]

        print("lavis: the same weights as a LAVIS blip2_image_text_matching checkpoint + eva_vit_g-style "
              "vision weights -> lavis.safetensors")
        ckpt, eva = to_lavis({k: v.half() for k, v in model.state_dict().items()},
                             TINY["vision_config"]["num_hidden_layers"])
        ckpt_path, eva_path = os.path.join(tmp, "blip2_pretrained.pth"), os.path.join(tmp, "eva_vit_g.pth")
        torch.save({"model": ckpt, "epoch": 9}, ckpt_path)
        torch.save(eva, eva_path)
        dst = os.path.join(OUT, "lavis.safetensors")
        run_convert(ckpt_path, dst, "--vision-weights", eva_path, "--vision-layers", "2", "--vision-heads", "4",
                    "--text-heads", "4", "--name", "fixture-blip2-lavis")
        lav, lav_meta = vl_convert.read_safetensors(dst)
        assert sorted(lav) == sorted(set(conv) | {"temp"}), set(lav) ^ set(conv)
        assert all(torch.equal(lav[k], conv[k]) for k in conv), "LAVIS and HF conversions disagree"
        c_hf, c_lav = json.loads(hf_config), json.loads(lav_meta["vislang.config"])
        c_hf.pop("name"), c_lav.pop("name")
        assert c_hf == c_lav, (c_hf, c_lav)

        write_reference(os.path.join(OUT, "reference.safetensors"), pixels, ids, mask, out,
                        {"hf_vislang_config": hf_config, "f64_floor": f"{floor:.3e}"})
        print("adapter: VisualAdapterRef (linear, mlp, qformer) -> adapter.safetensors")
        make_adapter_fixture(gen, out["vision_last_hidden_state"], os.path.join(OUT, "adapter.safetensors"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"float32 torch vs float64 torch: max |diff| / max |ref| = {floor:.2e}")
    total = 0
    for root, _, files in os.walk(OUT):
        for f in sorted(files):
            p = os.path.join(root, f)
            total += os.path.getsize(p)
            print(f"  {os.path.relpath(p, ROOT)}: {os.path.getsize(p) / 1024:.0f} KiB")
            assert os.path.getsize(p) < 1 << 20, f"{p} is over 1 MiB"
    print(f"wrote {os.path.relpath(OUT, ROOT)} ({total / 1024:.0f} KiB in all)")


def make_full(out_dir):
    """blip2-itm-vit-g at its real shape, random float32 weights, as an HF folder + reference outputs."""
    gen = torch.Generator().manual_seed(SEED + 1)
    pixels = load_pixels(FULL["vision_config"]["image_size"])
    ids, mask = make_text(gen, FULL["qformer_config"]["vocab_size"], [12, 9, 5], 12)
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(out_dir)) or ".").free
    print(f"full: blip2-itm-vit-g shape, random weights (float32 ~4.6 GB; {free / 2**30:.0f} GiB free)")
    model = build_hf(FULL, gen, round_f16=False, name="random-blip2-itm-vit-g")
    n = sum(p.numel() for p in model.parameters())
    print(f"  {n / 1e6:.1f} M parameters; running the reference")
    out = reference(model, pixels, ids, mask)
    os.makedirs(out_dir, exist_ok=True)
    save_hf_folder(model, os.path.join(out_dir, "hf"), torch.float32)
    write_reference(os.path.join(out_dir, "reference.safetensors"), pixels, ids, mask, out, {})
    for k in ("itc_scores", "itm_probabilities"):
        print(f"  {k}: {out[k].flatten().tolist()}")
    print(f"wrote {out_dir}/hf and {out_dir}/reference.safetensors; now run:\n"
          f"  VISLANG_BLIP2_FULL_DIR={out_dir} build/bin/vislang_tests --test-suite=blip2")


def main():
    ap = argparse.ArgumentParser(description="BLIP-2 golden fixtures for tests/test_blip2.cpp")
    ap.add_argument("--full", nargs="?", const="/tmp/vislang_blip2_full", metavar="DIR",
                    help="also build blip2-itm-vit-g at its real shape into DIR (not committed)")
    ap.add_argument("--skip-small", action="store_true", help="with --full: do not rewrite tests/fixtures/blip2")
    a = ap.parse_args()
    torch.manual_seed(SEED)
    if not a.skip_small:
        make_small()
    if a.full:
        make_full(a.full)


if __name__ == "__main__":
    main()
