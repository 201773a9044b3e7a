#!/usr/bin/env python3
"""Converts a CLIP checkpoint to vislang's single-file format (one .safetensors with the config inside).
(BLIP-2 retrieval checkpoints too: Hugging Face folders and LAVIS files; see the BLIP-2 section below.)

Where it sits: released checkpoint (OpenAI .pt, OpenCLIP .bin/.safetensors, Hugging Face folder)
-> this script -> DST.safetensors -> vislang::clip::ClipModel::load (models/clip/clip.cpp).

    python3 tools/convert.py SRC DST.safetensors [--dtype f32|f16|bf16] [--act gelu|quick_gelu]
                             [--name NAME] [--text-heads N] [--vision-heads N] [--unsafe-pickle]

SRC may be
  (a) an OpenAI release (.pt): a TorchScript archive as clip.load downloads it (read with
      torch.jit.load(map_location="cpu").state_dict()), or a plain state_dict saved with torch.save;
  (b) an OpenCLIP checkpoint (open_clip_pytorch_model.bin, open_clip_model.safetensors, or a training
      checkpoint): OpenAI's tensor names, possibly inside {"state_dict": ...} and with "module."
      prefixes (also CustomTextCLIP's "text." prefix for a standard text tower); a folder holding
      open_clip_config.json + one of those files is accepted too;
  (c) a Hugging Face CLIP folder: config.json + model.safetensors (or pytorch_model.bin, or a
      sharded *.index.json), or a .safetensors file with HF names next to its config.json.

Output (the names models/clip/clip.cpp and models/clip/resnet.cpp load, nothing else):
  * ViT models: Hugging Face CLIPModel names — vision_model.*, text_model.*,
    visual_projection.weight, text_projection.weight, logit_scale.
  * ModifiedResNet models: the vision tower keeps OpenAI's names under visual.* (conv1, bn1, ...,
    layer1.0.downsample.0, attnpool.q_proj, ...; BatchNorm's num_batches_tracked counters are
    dropped), the text tower uses the Hugging Face names above.
  * __metadata__: "vislang.config" (JSON in the form of ClipConfig::to_json in
    models/clip/config.cpp — keep the two in sync), "format": "vislang-clip-1", "source" (the input
    file name) and "source_format".

OpenAI -> HF name mapping (per transformer block, `resblocks.i` -> `encoder.layers.i`):
  attn.in_proj_weight (3C, C) / in_proj_bias (3C) -> self_attn.{q,k,v}_proj.{weight,bias} (split in 3)
  attn.out_proj -> self_attn.out_proj; ln_1/ln_2 -> layer_norm1/2; mlp.c_fc/c_proj -> mlp.fc1/fc2
  token_embedding -> text_model.embeddings.token_embedding; positional_embedding ->
  text_model.embeddings.position_embedding.weight; ln_final -> text_model.final_layer_norm;
  text_projection (C, E) -> text_projection.weight = its transpose (E, C);
  visual.class_embedding -> vision_model.embeddings.class_embedding; visual.conv1 ->
  vision_model.embeddings.patch_embedding; visual.positional_embedding ->
  vision_model.embeddings.position_embedding.weight; ln_pre -> pre_layrnorm (HF's spelling);
  ln_post -> post_layernorm; visual.proj (C, E) -> visual_projection.weight = proj.T.

The config is inferred from tensor shapes exactly like OpenAI's clip/model.py build_model (vision
width/layers/patch/resolution or ResNet block counts, text context/vocab/width/layers, embed dim);
heads follow OpenAI's rule (width // 64; ResNet attention pool: 32 * width // 64) unless an
open_clip_config.json beside SRC says otherwise (text_cfg.heads, vision_cfg.head_width) or
--text-heads / --vision-heads are given. Activation: quick_gelu for OpenAI weights; for OpenCLIP
--act, else open_clip_config.json's "quick_gelu" flag (true -> quick_gelu, absent/false -> gelu),
else quick_gelu; the choice is printed. Hugging Face folders take everything from config.json.

--dtype casts every floating tensor (default: keep each tensor's stored dtype; OpenAI releases are
mostly f16). logit_scale always keeps its stored precision. Needs only torch (>= 1.13) and numpy:
safetensors files are read and written here, byte for byte in the format of
https://github.com/huggingface/safetensors (header padded to 8 bytes, tensors sorted by descending
alignment then name, like the python library). The output is written to DST.tmp and renamed.
"""
import argparse
import json
import math
import mmap
import os
import re
import struct
import sys
import zipfile

import numpy as np
import torch

FORMAT = "vislang-clip-1"
OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


class ConvertError(Exception):
    pass


def fail(*parts):
    raise ConvertError("".join(str(p) for p in parts))


def log(msg):
    print(f"convert: {msg}", file=sys.stderr, flush=True)


class Progress:
    """A stderr percentage by tensor count: '\\r' updates on a terminal, one line per 10% otherwise."""

    def __init__(self, what, total):
        self.what, self.total, self.last = what, max(total, 1), -1
        self.tty = sys.stderr.isatty()
        self.quiet = not self.tty and total < 100  # small files: no log spam

    def step(self, i):
        if self.quiet:
            return
        pct = (100 * i) // self.total
        if self.tty and pct != self.last:
            sys.stderr.write(f"\rconvert: {self.what} {pct:3d}% ({i}/{self.total})")
            sys.stderr.flush()
        elif not self.tty and (self.last < 0 or pct // 10 != self.last // 10):
            sys.stderr.write(f"convert: {self.what} {pct:3d}% ({i}/{self.total})\n")
        self.last = pct

    def done(self):
        self.step(self.total)
        if self.tty and not self.quiet:
            sys.stderr.write("\n")
        sys.stderr.flush()


# ---- safetensors, by hand ----------------------------------------------------------------------
ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
ST_NAMES = {v: k for k, v in ST_DTYPES.items()}


def read_safetensors(path):
    """Returns ({name: tensor}, metadata). Tensors view a private copy-on-write mapping of the file
    (pages are read on first use), so a multi-GB checkpoint is not held twice in memory."""
    size = os.path.getsize(path)
    if size < 8:
        fail(path, ": not a safetensors file (shorter than 8 bytes)")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if 8 + n > size:
            fail(path, ": not a safetensors file (header length ", n, " exceeds the file size ", size, ")")
        head = f.read(n)
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # writable (private), so frombuffer is happy
    try:
        header = json.loads(head.decode("utf-8"))
    except Exception as e:  # noqa: BLE001 - report any decoding problem the same way
        fail(path, ": safetensors header is not valid JSON: ", e)
    meta = header.pop("__metadata__", None) or {}
    base, data_len = 8 + n, size - 8 - n
    out = {}
    for name, info in header.items():
        dt = info.get("dtype")
        if dt not in ST_DTYPES:
            fail(path, ": tensor '", name, "' has dtype ", dt, ", which this converter does not read")
        shape = [int(x) for x in info["shape"]]
        b, e = (int(x) for x in info["data_offsets"])
        torch_dt = ST_DTYPES[dt]
        numel = int(np.prod(shape)) if shape else 1
        esize = torch.tensor([], dtype=torch_dt).element_size()
        if e - b != numel * esize or b > e or e > data_len:
            fail(path, ": tensor '", name, "' byte range [", b, ", ", e, ") does not match shape ", shape, " ", dt)
        if numel == 0:
            t = torch.empty(shape, dtype=torch_dt)
        elif (base + b) % esize == 0:
            t = torch.frombuffer(mm, dtype=torch_dt, count=numel, offset=base + b).reshape(shape)
        else:  # misaligned (a header not padded to 8 bytes): copy
            t = torch.frombuffer(bytearray(mm[base + b:base + e]), dtype=torch_dt, count=numel).reshape(shape)
        out[name] = t
    return out, meta


def _tensor_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.view(torch.int16).numpy().tobytes()
    if t.dtype == torch.bool:
        return t.to(torch.uint8).numpy().tobytes()
    return t.numpy().tobytes()


def write_safetensors(path, tensors, metadata):
    """tensors: {name: tensor}; metadata: {str: str}. Atomic (path.tmp, then rename)."""
    if sys.byteorder != "little":
        fail("writing safetensors on a big-endian machine is not supported")
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            fail("metadata must map strings to strings; got ", repr(k), ": ", type(v).__name__)
    for name, t in tensors.items():
        if t.dtype not in ST_NAMES:
            fail("tensor '", name, "' has dtype ", t.dtype, ", which safetensors cannot store")
    # Python library order: descending dtype alignment (element size), then name.
    names = sorted(tensors, key=lambda k: (-tensors[k].element_size(), k))
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = metadata
    for k in names:
        t = tensors[k]
        nbytes = t.numel() * t.element_size()
        header[k] = {"dtype": ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    tmp = path + ".tmp"
    prog = Progress("writing", len(names))
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(hb)))
            f.write(hb)
            for i, k in enumerate(names):
                f.write(_tensor_bytes(tensors[k]))
                prog.step(i + 1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    prog.done()


# ---- reading the source ------------------------------------------------------------------------
def _is_torchscript(path):
    """TorchScript archives are zip files with a code/ folder and constants.pkl; torch.save zips are not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any(n.endswith("/constants.pkl") for n in names) or any("/code/" in n for n in names)


def _torch_load(path, unsafe_pickle):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with advice below
        if not unsafe_pickle:
            fail(path, ": torch.load(weights_only=True) failed (", type(e).__name__, ": ", str(e).splitlines()[0],
                 "). If you trust this file, re-run with --unsafe-pickle to allow arbitrary pickled objects.")
    log("loading with weights_only=False (--unsafe-pickle)")
    return torch.load(path, map_location="cpu", weights_only=False)


def _unwrap(obj, path):
    """A checkpoint object -> flat {name: tensor} (state_dict wrappers and 'module.' prefixes removed)."""
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "module"):
            if key in obj and isinstance(obj[key], dict) and not torch.is_tensor(obj[key]):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        fail(path, ": expected a state_dict (a dict of tensors), got ", type(obj).__name__)
    sd = {}
    for k, v in obj.items():
        if not torch.is_tensor(v):
            continue  # epoch counters, names, ... of training checkpoints
        sd[k[len("module."):] if k.startswith("module.") else k] = v
    if not sd:
        fail(path, ": no tensors found in the checkpoint")
    # OpenAI's TorchScript archives keep three hyper-parameters as tensors.
    for k in ("input_resolution", "context_length", "vocab_size"):
        sd.pop(k, None)
    return sd


def _load_tensor_file(path, unsafe_pickle):
    """Returns (state_dict, source_format) of one file."""
    if path.endswith(".safetensors"):
        sd, _ = read_safetensors(path)
        return _unwrap(sd, path), "safetensors"
    if _is_torchscript(path):
        log(f"reading TorchScript archive {path}")
        m = torch.jit.load(path, map_location="cpu")
        return _unwrap(m.state_dict(), path), "torchscript"
    log(f"reading {path} with torch.load")
    return _unwrap(_torch_load(path, unsafe_pickle), path), "state_dict"


def _load_sharded(index_path, unsafe_pickle):
    with open(index_path) as f:
        idx = json.load(f)
    folder = os.path.dirname(index_path)
    sd = {}
    for shard in sorted(set(idx.get("weight_map", {}).values())):
        part, _ = _load_tensor_file(os.path.join(folder, shard), unsafe_pickle)
        sd.update(part)
    if not sd:
        fail(index_path, ": the index lists no shards")
    return sd


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        fail(path, ": not valid JSON: ", e)


class Source:
    """What was read: the tensors, where they came from, and the side files found next to them."""

    def __init__(self, path):
        self.path = path
        self.sd = None
        self.fmt = None               # torchscript | state_dict | safetensors | hf
        self.hf_config = None         # config.json (HF)
        self.hf_preprocessor = None   # preprocessor_config.json (HF)
        self.openclip_config = None   # open_clip_config.json (the model_cfg part) and its path
        self.openclip_config_path = None
        self.openclip_preprocess = None


def load_source(path, unsafe_pickle=False):
    src = Source(path)
    if not os.path.exists(path):
        fail(path, ": no such file or folder")
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    oc_path = os.path.join(folder, "open_clip_config.json")
    if os.path.isfile(oc_path):
        j = _read_json(oc_path)
        src.openclip_config = j.get("model_cfg", j)
        src.openclip_config_path = oc_path
        src.openclip_preprocess = j.get("preprocess_cfg")
    hf_cfg_path = os.path.join(folder, "config.json")
    hf_cfg = _read_json(hf_cfg_path) if os.path.isfile(hf_cfg_path) else None
    if hf_cfg is not None and hf_cfg.get("model_type") not in (None, "clip"):
        hf_cfg = None  # some other model's config.json beside the file; not ours
    pp = os.path.join(folder, "preprocessor_config.json")
    if os.path.isfile(pp):
        src.hf_preprocessor = _read_json(pp)

    if os.path.isdir(path):
        hf_files = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                    "pytorch_model.bin.index.json"]
        oc_files = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        found_hf = [f for f in hf_files if os.path.isfile(os.path.join(path, f))]
        found_oc = [f for f in oc_files if os.path.isfile(os.path.join(path, f))]
        if hf_cfg is not None and found_hf:
            f = os.path.join(path, found_hf[0])
            log(f"Hugging Face folder: {hf_cfg_path} + {found_hf[0]}")
            src.sd = _load_sharded(f, unsafe_pickle) if f.endswith(".index.json") else \
                _load_tensor_file(f, unsafe_pickle)[0]
            src.fmt, src.hf_config = "hf", hf_cfg
        elif found_oc:
            f = os.path.join(path, found_oc[0])
            log(f"OpenCLIP folder: {found_oc[0]}")
            src.sd, src.fmt = _load_tensor_file(f, unsafe_pickle)
            src.fmt = "openclip-" + src.fmt
        else:
            fail(path, ": folder holds neither a Hugging Face CLIP model (config.json with model_type 'clip' + ",
                 "model.safetensors / pytorch_model.bin) nor an OpenCLIP checkpoint (open_clip_pytorch_model.bin / ",
                 "open_clip_model.safetensors)")
        return src

    if path.endswith(".index.json"):
        src.sd, src.fmt = _load_sharded(path, unsafe_pickle), "sharded"
    else:
        src.sd, src.fmt = _load_tensor_file(path, unsafe_pickle)
    if "vision_model.embeddings.patch_embedding.weight" in src.sd:
        if hf_cfg is None:
            fail(path, ": has Hugging Face CLIP tensor names but no config.json (model_type 'clip') beside it; ",
                 "convert the folder instead")
        src.hf_config, src.fmt = hf_cfg, "hf"
    elif os.path.basename(path).startswith("open_clip") or src.openclip_config is not None:
        src.fmt = "openclip-" + src.fmt
    return src


# ---- the config, in ClipConfig::to_json form (models/clip/config.cpp) -----------------------------
def make_config(name, projection_dim, vision, text, preprocess):
    """vision/text: dicts with the fields below; fields that do not apply to a ResNet tower carry the C++
    defaults (struct VisionConfig in models/clip/config.h), as ClipConfig::to_json writes them."""
    v = {"type": vision["type"], "image_size": vision["image_size"], "patch_size": vision.get("patch_size", 32),
         "width": vision["width"], "layers": vision.get("layers", 12),
         "resnet_layers": vision.get("resnet_layers", []), "heads": vision["heads"],
         "mlp_dim": vision.get("mlp_dim", 3072), "act": vision.get("act", "quick_gelu"),
         "eps": vision.get("eps", 1e-5)}
    t = {"vocab_size": text["vocab_size"], "context_length": text["context_length"], "width": text["width"],
         "layers": text["layers"], "heads": text["heads"], "mlp_dim": text["mlp_dim"],
         "act": text.get("act", "quick_gelu"), "eps": text.get("eps", 1e-5),
         "pool_argmax": text.get("pool_argmax", True), "eos_token_id": text.get("eos_token_id", 49407)}
    for what, width, heads in (("vision", v["width"] * (32 if v["type"] == "resnet" else 1), v["heads"]),
                               ("text", t["width"], t["heads"])):
        if heads < 1 or width % heads:
            fail(f"{what} width {width} is not divisible by {heads} heads (check --{what}-heads / the config)")
    if v["type"] == "vit" and v["image_size"] % v["patch_size"]:
        fail(f"vision image_size {v['image_size']} is not a multiple of patch_size {v['patch_size']}")
    return {"model_type": "clip", "name": name, "projection_dim": projection_dim, "vision": v, "text": t,
            "preprocess": preprocess}


def expected_shapes(cfg):
    """Every tensor ClipModel::from_weights loads for `cfg`, with its shape (the C++ side's contract)."""
    out = {}
    v, t, E = cfg["vision"], cfg["text"], cfg["projection_dim"]

    def ln(prefix, c):
        out[prefix + ".weight"] = [c]
        out[prefix + ".bias"] = [c]

    def linear(prefix, i, o, bias=True):
        out[prefix + ".weight"] = [o, i]
        if bias:
            out[prefix + ".bias"] = [o]

    def encoder(prefix, n, c, mlp):
        for i in range(n):
            p = f"{prefix}.encoder.layers.{i}"
            ln(p + ".layer_norm1", c)
            ln(p + ".layer_norm2", c)
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                linear(f"{p}.self_attn.{proj}", c, c)
            linear(p + ".mlp.fc1", c, mlp)
            linear(p + ".mlp.fc2", mlp, c)

    if v["type"] == "vit":
        C, P, S = v["width"], v["patch_size"], v["image_size"]
        N = (S // P) ** 2
        out["vision_model.embeddings.class_embedding"] = [C]
        out["vision_model.embeddings.patch_embedding.weight"] = [C, 3, P, P]
        out["vision_model.embeddings.position_embedding.weight"] = [N + 1, C]
        ln("vision_model.pre_layrnorm", C)
        encoder("vision_model", v["layers"], C, v["mlp_dim"])
        ln("vision_model.post_layernorm", C)
        linear("visual_projection", C, E, bias=False)
    else:
        w = v["width"]

        def bn(prefix, c):
            for k in ("weight", "bias", "running_mean", "running_var"):
                out[f"{prefix}.{k}"] = [c]

        out["visual.conv1.weight"] = [w // 2, 3, 3, 3]
        bn("visual.bn1", w // 2)
        out["visual.conv2.weight"] = [w // 2, w // 2, 3, 3]
        bn("visual.bn2", w // 2)
        out["visual.conv3.weight"] = [w, w // 2, 3, 3]
        bn("visual.bn3", w)
        inplanes = w
        for li, n in enumerate(v["resnet_layers"]):
            planes = w << li
            for j in range(n):
                p = f"visual.layer{li + 1}.{j}"
                stride = 2 if (li > 0 and j == 0) else 1
                out[p + ".conv1.weight"] = [planes, inplanes, 1, 1]
                bn(p + ".bn1", planes)
                out[p + ".conv2.weight"] = [planes, planes, 3, 3]
                bn(p + ".bn2", planes)
                out[p + ".conv3.weight"] = [planes * 4, planes, 1, 1]
                bn(p + ".bn3", planes * 4)
                if stride > 1 or inplanes != planes * 4:
                    out[p + ".downsample.0.weight"] = [planes * 4, inplanes, 1, 1]
                    bn(p + ".downsample.1", planes * 4)
                inplanes = planes * 4
        D, g = w * 32, v["image_size"] // 32
        out["visual.attnpool.positional_embedding"] = [g * g + 1, D]
        for proj in ("q_proj", "k_proj", "v_proj"):
            linear("visual.attnpool." + proj, D, D)
        linear("visual.attnpool.c_proj", D, E)
    C = t["width"]
    out["text_model.embeddings.token_embedding.weight"] = [t["vocab_size"], C]
    out["text_model.embeddings.position_embedding.weight"] = [t["context_length"], C]
    encoder("text_model", t["layers"], C, t["mlp_dim"])
    ln("text_model.final_layer_norm", C)
    linear("text_projection", C, E, bias=False)
    out["logit_scale"] = []
    return out


# ---- OpenAI / OpenCLIP layout -------------------------------------------------------------------
def _need(sd, key, path):
    if key not in sd:
        fail(path, ": tensor '", key, "' is missing (needed to infer the model shape)")
    return sd[key]


def _count_blocks(sd, prefix):
    """Number of distinct block indices under prefix (e.g. 'transformer.resblocks.')."""
    idx = {int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r"(\d+)\.", k)] if m}
    if idx and idx != set(range(len(idx))):
        fail("blocks under '", prefix, "' are not numbered 0..n-1: ", sorted(idx))
    return len(idx)


def _heads(width, head_width, what, flag):
    h = width // head_width
    if h < 1 or width % h:
        fail(f"cannot infer {what} heads from width {width} (OpenAI's rule width // {head_width} gives {h}); "
             f"pass {flag} N or put an open_clip_config.json beside the checkpoint")
    return h


def openai_layout_config(src, args):
    sd, path = src.sd, src.path
    occ = src.openclip_config or {}
    ovc, otc = occ.get("vision_cfg", {}) or {}, occ.get("text_cfg", {}) or {}
    for what, c, bad in (("vision_cfg", ovc, ("timm_model_name", "ls_init_value", "attentional_pool",
                                              "no_ln_pre", "final_ln_after_pool", "input_patchnorm")),
                         ("text_cfg", otc, ("hf_model_name", "ls_init_value", "embed_cls", "no_causal_mask",
                                            "proj_bias", "attn_pooler_heads"))):
        for k in bad:
            if c.get(k):
                fail(src.openclip_config_path, ": ", what, ".", k, " = ", c[k], " is an OpenCLIP variant vislang's ",
                     "CLIP does not implement")
    if otc.get("pool_type") not in (None, "argmax") or ovc.get("pool_type") not in (None, "tok"):
        fail(src.openclip_config_path, ": pool_type text ", otc.get("pool_type"), " / vision ", ovc.get("pool_type"),
             " is not supported (argmax / tok only)")

    # Activation.
    is_openclip = src.fmt.startswith("openclip")
    if args.act:
        act, why = args.act, "--act"
    elif src.openclip_config is not None:
        act = "quick_gelu" if occ.get("quick_gelu", False) else "gelu"
        why = f"{src.openclip_config_path} (quick_gelu: {occ.get('quick_gelu', False)})"
    else:
        act = "quick_gelu"
        why = "OpenCLIP checkpoint without open_clip_config.json: default" if is_openclip else "OpenAI weights"
    log(f"activation: {act} (from {why})")

    # Text tower (build_model: context, vocab, width, heads = width // 64, layers).
    context = _need(sd, "positional_embedding", path).shape[0]
    vocab, tw = _need(sd, "token_embedding.weight", path).shape
    if _need(sd, "ln_final.weight", path).shape[0] != tw:
        fail(path, ": ln_final.weight ", list(sd["ln_final.weight"].shape), " does not match text width ", tw)
    tl = _count_blocks(sd, "transformer.resblocks.")
    if tl == 0:
        fail(path, ": no text transformer blocks (transformer.resblocks.N.*) found")
    tmlp = _need(sd, "transformer.resblocks.0.mlp.c_fc.weight", path).shape[0]
    if args.text_heads:
        th = args.text_heads
    elif "heads" in otc:
        th = int(otc["heads"])
    else:
        th = _heads(tw, 64, "text", "--text-heads")
    tp = _need(sd, "text_projection", path)
    if tp.dim() != 2 or tp.shape[0] != tw:
        fail(path, ": text_projection has shape ", list(tp.shape), ", expected (", tw, ", embed_dim)")
    E = tp.shape[1]
    text = dict(vocab_size=vocab, context_length=context, width=tw, layers=tl, heads=th, mlp_dim=tmlp, act=act,
                pool_argmax=True, eos_token_id=49407)

    # Vision tower.
    head_width = int(ovc.get("head_width", 64))
    if "visual.proj" in sd:
        cw = _need(sd, "visual.conv1.weight", path)
        vw, P = cw.shape[0], cw.shape[-1]
        vl = _count_blocks(sd, "visual.transformer.resblocks.")
        grid = round((_need(sd, "visual.positional_embedding", path).shape[0] - 1) ** 0.5)
        if grid * grid + 1 != sd["visual.positional_embedding"].shape[0]:
            fail(path, ": visual.positional_embedding ", list(sd["visual.positional_embedding"].shape),
                 " is not (grid² + 1, width)")
        vmlp = _need(sd, "visual.transformer.resblocks.0.mlp.c_fc.weight", path).shape[0]
        vh = args.vision_heads or _heads(vw, head_width, "vision", "--vision-heads")
        vision = dict(type="vit", image_size=P * grid, patch_size=P, width=vw, layers=vl, heads=vh, mlp_dim=vmlp,
                      act=act)
    elif "visual.attnpool.positional_embedding" in sd:
        counts = [len({k.split(".")[2] for k in sd if k.startswith(f"visual.layer{b}.")}) for b in (1, 2, 3, 4)]
        if min(counts) == 0:
            fail(path, ": ResNet stage block counts ", counts, " (a stage visual.layerN.* is missing)")
        vw = _need(sd, "visual.layer1.0.conv1.weight", path).shape[0]
        pe = sd["visual.attnpool.positional_embedding"]
        grid = round((pe.shape[0] - 1) ** 0.5)
        if grid * grid + 1 != pe.shape[0]:
            fail(path, ": visual.attnpool.positional_embedding ", list(pe.shape), " is not (grid² + 1, 32 width)")
        vh = args.vision_heads or _heads(vw * 32, head_width, "vision (attention pool)", "--vision-heads")
        vision = dict(type="resnet", image_size=grid * 32, width=vw, resnet_layers=counts, heads=vh, act=act,
                      layers=12, patch_size=32, mlp_dim=3072)
    else:
        fail(path, ": has OpenAI-style text tensors but neither visual.proj (ViT) nor ",
             "visual.attnpool.positional_embedding (ModifiedResNet); first tensors: ", sorted(sd)[:8])

    mean, std = OPENAI_MEAN, OPENAI_STD
    if src.openclip_preprocess:
        mean = list(src.openclip_preprocess.get("mean", mean))
        std = list(src.openclip_preprocess.get("std", std))
    elif ovc.get("image_mean"):
        mean, std = list(ovc["image_mean"]), list(ovc.get("image_std", std))
    pre = {"size": vision["image_size"], "mean": mean, "std": std}
    return make_config(args.name or _default_name(path), E, vision, text, pre)


def openai_layout_tensors(sd, cfg):
    """Maps OpenAI names to vislang names. Returns ({dst: tensor}, {dst: src name}, set of used src names)."""
    out, origin, used = {}, {}, set()

    def put(dst, src_name, t=None):
        out[dst] = sd[src_name] if t is None else t
        origin[dst] = src_name
        used.add(src_name)

    def blocks(src_prefix, dst_prefix, n):
        for i in range(n):
            s, d = f"{src_prefix}.{i}", f"{dst_prefix}.encoder.layers.{i}"
            for a, b in (("ln_1", "layer_norm1"), ("ln_2", "layer_norm2"), ("mlp.c_fc", "mlp.fc1"),
                         ("mlp.c_proj", "mlp.fc2"), ("attn.out_proj", "self_attn.out_proj")):
                for p in ("weight", "bias"):
                    if f"{s}.{a}.{p}" in sd:
                        put(f"{d}.{b}.{p}", f"{s}.{a}.{p}")
            for p, src_name in (("weight", f"{s}.attn.in_proj_weight"), ("bias", f"{s}.attn.in_proj_bias")):
                if src_name in sd:
                    w = sd[src_name]
                    if w.shape[0] % 3:
                        fail("tensor '", src_name, "' has shape ", list(w.shape), ", not (3 C, ...)")
                    q, k, v = w.chunk(3, dim=0)
                    for nm, part in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
                        put(f"{d}.self_attn.{nm}.{p}", src_name, part.contiguous())

    v, t = cfg["vision"], cfg["text"]
    if v["type"] == "vit":
        e = "vision_model.embeddings"
        put(e + ".class_embedding", "visual.class_embedding")
        put(e + ".patch_embedding.weight", "visual.conv1.weight")
        put(e + ".position_embedding.weight", "visual.positional_embedding")
        for p in ("weight", "bias"):
            if f"visual.ln_pre.{p}" in sd:
                put(f"vision_model.pre_layrnorm.{p}", f"visual.ln_pre.{p}")
            if f"visual.ln_post.{p}" in sd:
                put(f"vision_model.post_layernorm.{p}", f"visual.ln_post.{p}")
        blocks("visual.transformer.resblocks", "vision_model", v["layers"])
        put("visual_projection.weight", "visual.proj", sd["visual.proj"].t().contiguous())
    else:
        for k in sd:
            if k.startswith("visual."):
                if k.endswith(".num_batches_tracked"):
                    used.add(k)  # a training counter; the C++ BatchNorm does not need it
                else:
                    put(k, k)
    e = "text_model.embeddings"
    if "token_embedding.weight" in sd:
        put(e + ".token_embedding.weight", "token_embedding.weight")
    if "positional_embedding" in sd:
        put(e + ".position_embedding.weight", "positional_embedding")
    blocks("transformer.resblocks", "text_model", t["layers"])
    for p in ("weight", "bias"):
        if f"ln_final.{p}" in sd:
            put(f"text_model.final_layer_norm.{p}", f"ln_final.{p}")
    put("text_projection.weight", "text_projection", sd["text_projection"].t().contiguous())
    if "logit_scale" in sd:
        put("logit_scale", "logit_scale", sd["logit_scale"].reshape([]))
    # Non-persistent buffers some exports still carry.
    for k in sd:
        if k == "attn_mask" or k.endswith(".attn_mask"):
            used.add(k)
    return out, origin, used


# ---- Hugging Face layout ------------------------------------------------------------------------
def hf_layout_config(src, args):
    """Mirrors ClipConfig::from_hf (models/clip/config.cpp), with HF's defaults for absent fields."""
    j = src.hf_config
    if args.act:
        log("note: --act is ignored for Hugging Face models (config.json hidden_act is used)")
    v, t = j.get("vision_config") or {}, j.get("text_config") or {}
    vision = dict(type="vit", width=v.get("hidden_size", 768), mlp_dim=v.get("intermediate_size", 3072),
                  layers=v.get("num_hidden_layers", 12), heads=v.get("num_attention_heads", 12),
                  image_size=v.get("image_size", 224), patch_size=v.get("patch_size", 32),
                  act=v.get("hidden_act", "quick_gelu"), eps=v.get("layer_norm_eps", 1e-5))
    eos = t.get("eos_token_id", 49407)
    text = dict(vocab_size=t.get("vocab_size", 49408), width=t.get("hidden_size", 512),
                mlp_dim=t.get("intermediate_size", 2048), layers=t.get("num_hidden_layers", 12),
                heads=t.get("num_attention_heads", 8), context_length=t.get("max_position_embeddings", 77),
                act=t.get("hidden_act", "quick_gelu"), eps=t.get("layer_norm_eps", 1e-5), eos_token_id=eos,
                pool_argmax=(eos == 2))  # HF's legacy rule (modeling_clip.py)
    for k in ("image_size", "patch_size"):
        if isinstance(vision[k], (list, tuple)):
            if len(set(vision[k])) != 1:
                fail(src.path, ": non-square vision_config.", k, " = ", vision[k], " is not supported")
            vision[k] = vision[k][0]
    if args.text_heads:
        text["heads"] = args.text_heads
    if args.vision_heads:
        vision["heads"] = args.vision_heads
    log(f"activation: vision {vision['act']}, text {text['act']} (from config.json)")
    mean, std = OPENAI_MEAN, OPENAI_STD
    if src.hf_preprocessor:
        mean = list(src.hf_preprocessor.get("image_mean", mean))
        std = list(src.hf_preprocessor.get("image_std", std))
    pre = {"size": vision["image_size"], "mean": mean, "std": std}
    name = args.name or j.get("_name_or_path") or "clip"
    return make_config(name, j.get("projection_dim", 512), vision, text, pre)


def hf_layout_tensors(sd, cfg):
    out, origin, used = {}, {}, set()
    for k, t in sd.items():
        if k.endswith("position_ids"):
            used.add(k)  # a buffer of old checkpoints (arange), not a weight
            continue
        out[k], origin[k] = t, k
        used.add(k)
    return out, origin, used


# ---- BLIP-2 (image-text retrieval: Q-Former + ViT-g) ------------------------------------------------
# Output: the names of transformers' Blip2ForImageTextRetrieval (models/blip2/blip2.cpp loads them),
# "vislang.config" in the form of Blip2Config::to_json (models/blip2/config.cpp — keep in sync),
# "format": "vislang-blip2-1". Sources:
#   (a) a Hugging Face folder whose config.json has model_type "blip-2" (Salesforce/blip2-itm-vit-g):
#       tensors copied; legacy self_attn.q_bias / v_bias become qkv.bias = [q_bias; 0; v_bias].
#   (b) a LAVIS checkpoint of blip2_feature_extractor / blip2_image_text_matching (Blip2Qformer), a
#       torch.save({"model": state_dict}). The renames are those of transformers'
#       convert_blip_2_original_to_pytorch.py:
#         visual_encoder.cls_token / pos_embed / patch_embed.proj -> vision_model.embeddings.class_embedding /
#           position_embedding / patch_embedding;  visual_encoder.blocks.i.{norm1,norm2,attn.qkv,attn.proj,mlp.fc1,
#           mlp.fc2} -> vision_model.encoder.layers.i.{layer_norm1,layer_norm2,self_attn.qkv,self_attn.projection,
#           mlp.fc1,mlp.fc2};  attn.q_bias + attn.v_bias -> self_attn.qkv.bias = [q_bias; 0; v_bias];
#         ln_vision -> vision_model.post_layernorm;  Qformer.bert.embeddings.LayerNorm -> qformer.layernorm;
#         Qformer.bert.embeddings.{word,position}_embeddings -> embeddings.*;
#         Qformer.bert.encoder.layer.i.{attention,crossattention}.self.* -> qformer.encoder.layer.i.*.attention.*;
#         other Qformer.bert.encoder.* -> qformer.encoder.*;  vision_proj / text_proj -> vision_projection /
#         text_projection;  query_tokens, itm_head, temp (the ITC temperature) kept.
#       Dropped, as transformers drops them: Qformer.cls.* (the BERT LM head, used only by the captioning
#       loss) and Qformer.bert.embeddings.position_ids (a buffer).
#       LAVIS's training runner saves only trainable tensors, so a stage-1 checkpoint may lack the frozen
#       ViT-g: pass its weights with --vision-weights eva_vit_g.pth (LAVIS's download; names without the
#       visual_encoder. prefix). As LAVIS's create_eva_vit_g does, only the first --vision-layers blocks
#       (default 39 of the file's 40) are used and everything else in that file is ignored; the position
#       embedding is used as stored (no interpolation: the image size follows from it).
#       Inferred from shapes: widths, layer counts, patch and image size, queries, vocabulary, the
#       cross-attention frequency; heads: ViT-g (width 1408) has 16 (head dim 88), the Q-Former width // 64,
#       otherwise --vision-heads / --text-heads (the Q-Former's). LayerNorm eps: 1e-6 (vision) and
#       1e-12 (Q-Former) as in HF's config; LAVIS's ln_vision uses 1e-5, a difference of ~1e-6 relative.
#       Not verified against the released LAVIS files themselves (not downloadable here): the names come
#       from transformers' converter and LAVIS's source.
BLIP2_FORMAT = "vislang-blip2-1"
_EVA_BLOCK = {"norm1": "layer_norm1", "norm2": "layer_norm2", "attn.qkv": "self_attn.qkv",
              "attn.proj": "self_attn.projection", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
_EVA_TOP = {"cls_token": "embeddings.class_embedding", "pos_embed": "embeddings.position_embedding",
            "patch_embed.proj.weight": "embeddings.patch_embedding.weight",
            "patch_embed.proj.bias": "embeddings.patch_embedding.bias"}


def blip2_hf_config_json(path):
    """config.json of the Hugging Face BLIP-2 folder `path` is (or lies in), else None."""
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    p = os.path.join(folder, "config.json")
    if os.path.isfile(p):
        j = _read_json(p)
        if j.get("model_type") == "blip-2":
            return j
    return None


def is_lavis_blip2(sd):
    return "query_tokens" in sd and any(k.startswith("Qformer.bert.") for k in sd)


def make_blip2_config(name, vision, qformer, num_query_tokens, image_text_hidden_size):
    v = {k: vision[k] for k in ("image_size", "patch_size", "width", "layers", "heads", "mlp_dim")}
    v.update(act=vision.get("act", "gelu"), eps=vision.get("eps", 1e-6))
    q = {k: qformer[k] for k in ("vocab_size", "max_position_embeddings", "width", "layers", "heads", "mlp_dim",
                                 "cross_attention_frequency")}
    q.update(act=qformer.get("act", "gelu"), eps=qformer.get("eps", 1e-12), encoder_width=v["width"],
             use_text_input=bool(qformer.get("use_text_input", True)), pad_token_id=qformer.get("pad_token_id", 0))
    for what, c in (("vision", v), ("qformer", q)):
        if c["heads"] < 1 or c["width"] % c["heads"]:
            flag = "--vision-heads" if what == "vision" else "--text-heads"
            fail(f"{what} width {c['width']} is not divisible by {c['heads']} heads (check {flag} / the config)")
    if v["image_size"] % v["patch_size"]:
        fail(f"vision image_size {v['image_size']} is not a multiple of patch_size {v['patch_size']}")
    return {"model_type": "blip2", "name": name, "num_query_tokens": num_query_tokens,
            "image_text_hidden_size": image_text_hidden_size, "vision": v, "qformer": q,
            "preprocess": {"size": v["image_size"], "mean": OPENAI_MEAN, "std": OPENAI_STD}}


def blip2_expected_shapes(cfg):
    v, q = cfg["vision"], cfg["qformer"]
    Cv, C, P = v["width"], q["width"], v["patch_size"]
    n = (v["image_size"] // P) ** 2
    out = {"vision_model.embeddings.class_embedding": [1, 1, Cv],
           "vision_model.embeddings.position_embedding": [1, n + 1, Cv],
           "vision_model.embeddings.patch_embedding.weight": [Cv, 3, P, P],
           "vision_model.embeddings.patch_embedding.bias": [Cv],
           "query_tokens": [1, cfg["num_query_tokens"], C],
           "embeddings.word_embeddings.weight": [q["vocab_size"], C],
           "embeddings.position_embeddings.weight": [q["max_position_embeddings"], C]}

    def linear(p, i, o):
        out[p + ".weight"], out[p + ".bias"] = [o, i], [o]

    def ln(p, c):
        out[p + ".weight"], out[p + ".bias"] = [c], [c]

    for i in range(v["layers"]):
        l = f"vision_model.encoder.layers.{i}."
        ln(l + "layer_norm1", Cv), ln(l + "layer_norm2", Cv)
        linear(l + "self_attn.qkv", Cv, 3 * Cv), linear(l + "self_attn.projection", Cv, Cv)
        linear(l + "mlp.fc1", Cv, v["mlp_dim"]), linear(l + "mlp.fc2", v["mlp_dim"], Cv)
    ln("vision_model.post_layernorm", Cv)
    ln("qformer.layernorm", C)
    for i in range(q["layers"]):
        l = f"qformer.encoder.layer.{i}."
        blocks = ["attention"] + (["crossattention"] if i % q["cross_attention_frequency"] == 0 else [])
        for b in blocks:
            kv = Cv if b == "crossattention" else C
            linear(l + b + ".attention.query", C, C)
            linear(l + b + ".attention.key", kv, C), linear(l + b + ".attention.value", kv, C)
            linear(l + b + ".output.dense", C, C), ln(l + b + ".output.LayerNorm", C)
        for inter, o in [("intermediate_query", "output_query")] + ([("intermediate", "output")] if q["use_text_input"] else []):
            linear(l + inter + ".dense", C, q["mlp_dim"])
            linear(l + o + ".dense", q["mlp_dim"], C), ln(l + o + ".LayerNorm", C)
    E = cfg["image_text_hidden_size"]
    linear("vision_projection", C, E), linear("text_projection", C, E), linear("itm_head", C, 2)
    out["temp"] = []  # optional (LAVIS only)
    return out


def _fuse_qv_bias(sd, out, origin, used, src_prefix, dst_prefix, q_name, v_name):
    """q_bias + v_bias (C each) -> the fused qkv bias [q_bias; 0; v_bias] (3C) of every layer that has them."""
    for k in sorted(sd):
        m = re.match(re.escape(src_prefix) + r"(\d+)\." + re.escape(q_name) + "$", k)
        if not m:
            continue
        vk = k[: -len(q_name)] + v_name
        if vk not in sd:
            fail("tensor '", k, "' has no matching '", vk, "'")
        qb, vb = sd[k], sd[vk]
        dst = f"{dst_prefix}{m.group(1)}.self_attn.qkv.bias"
        out[dst] = torch.cat([qb, torch.zeros_like(qb), vb])
        origin[dst] = f"{k} + {vk}"
        used.update((k, vk))


def blip2_hf_config(j, args, path):
    v, q = j.get("vision_config") or {}, j.get("qformer_config") or {}
    if j.get("image_token_index") is not None:
        fail(path, ": image_token_index is set: not a BLIP-2 retrieval model (vislang reads Blip2ForImageTextRetrieval)")
    square = lambda x: x[0] if isinstance(x, (list, tuple)) else x  # noqa: E731
    vision = dict(width=v.get("hidden_size", 1408), mlp_dim=v.get("intermediate_size", 6144),
                  layers=v.get("num_hidden_layers", 39), heads=args.vision_heads or v.get("num_attention_heads", 16),
                  image_size=square(v.get("image_size", 224)), patch_size=square(v.get("patch_size", 14)),
                  act=v.get("hidden_act", "gelu"), eps=v.get("layer_norm_eps", 1e-6))
    qformer = dict(vocab_size=q.get("vocab_size", 30522), max_position_embeddings=q.get("max_position_embeddings", 512),
                   width=q.get("hidden_size", 768), layers=q.get("num_hidden_layers", 12),
                   heads=args.text_heads or q.get("num_attention_heads", 12), mlp_dim=q.get("intermediate_size", 3072),
                   cross_attention_frequency=q.get("cross_attention_frequency", 2), act=q.get("hidden_act", "gelu"),
                   eps=q.get("layer_norm_eps", 1e-12), use_text_input=q.get("use_qformer_text_input", False),
                   pad_token_id=q.get("pad_token_id", 0))
    name = args.name or j.get("_name_or_path") or "blip2"
    return make_blip2_config(name, vision, qformer, j.get("num_query_tokens", 32), j.get("image_text_hidden_size", 256))


def blip2_hf_tensors(sd):
    out, origin, used = {}, {}, set()
    _fuse_qv_bias(sd, out, origin, used, "vision_model.encoder.layers.", "vision_model.encoder.layers.",
                  "self_attn.q_bias", "self_attn.v_bias")
    for k, t in sd.items():
        if k in used:
            continue
        used.add(k)
        if not k.endswith("position_ids"):  # a buffer (arange) of some exports, not a weight
            out[k], origin[k] = t, k
    return out, origin, used


def _merge_eva(sd, eva_path, n_layers, unsafe_pickle):
    """LAVIS's frozen ViT-g from its own file (eva_vit_g.pth) under visual_encoder.*, as create_eva_vit_g
    loads it: the first n_layers blocks, the rest of the file ignored."""
    if any(k.startswith("visual_encoder.") for k in sd):
        fail("the checkpoint already holds visual_encoder.* tensors; --vision-weights would replace them")
    eva, _ = _load_tensor_file(eva_path, unsafe_pickle)
    have = _count_blocks(eva, "blocks.")
    if have < n_layers:
        fail(eva_path, ": has ", have, " blocks but --vision-layers is ", n_layers)
    taken, ignored = 0, []
    for k, t in eva.items():
        m = re.match(r"blocks\.(\d+)\.", k)
        if k in _EVA_TOP or (m and int(m.group(1)) < n_layers):
            sd["visual_encoder." + k] = t
            taken += 1
        else:
            ignored.append(k)
    log(f"vision weights from {eva_path}: {taken} tensors ({n_layers} blocks); ignored {len(ignored)} "
        f"(as LAVIS's load_state_dict(strict=False) does){': ' + ', '.join(sorted(ignored)[:4]) if ignored else ''}"
        f"{' ...' if len(ignored) > 4 else ''}")
    return sd


def blip2_lavis_config(sd, args, path):
    need = lambda k: _need(sd, k, path)  # noqa: E731
    Cv = need("visual_encoder.cls_token").shape[-1]
    P = need("visual_encoder.patch_embed.proj.weight").shape[-1]
    grid = math.isqrt(need("visual_encoder.pos_embed").shape[1] - 1)
    if Cv == 1408:
        vheads = args.vision_heads or 16  # EVA ViT-g: head dim 88 (LAVIS create_eva_vit_g)
    elif args.vision_heads:
        vheads = args.vision_heads
    else:
        fail(path, ": vision width ", Cv, " is not ViT-g's 1408; pass --vision-heads N")
    vision = dict(width=Cv, patch_size=P, image_size=grid * P, layers=_count_blocks(sd, "visual_encoder.blocks."),
                  heads=vheads, mlp_dim=need("visual_encoder.blocks.0.mlp.fc1.weight").shape[0])
    C = need("query_tokens").shape[-1]
    layers = _count_blocks(sd, "Qformer.bert.encoder.layer.")
    cross = [i for i in range(layers) if f"Qformer.bert.encoder.layer.{i}.crossattention.self.query.weight" in sd]
    freq = (cross[1] - cross[0]) if len(cross) > 1 else layers
    if not cross or cross != list(range(0, layers, freq)):
        fail(path, ": cross-attention in Q-Former layers ", cross, " does not follow one frequency (i % f == 0)")
    qformer = dict(width=C, layers=layers, heads=args.text_heads or C // 64, cross_attention_frequency=freq,
                   mlp_dim=need("Qformer.bert.encoder.layer.0.intermediate_query.dense.weight").shape[0],
                   vocab_size=need("Qformer.bert.embeddings.word_embeddings.weight").shape[0],
                   max_position_embeddings=need("Qformer.bert.embeddings.position_embeddings.weight").shape[0],
                   use_text_input="Qformer.bert.encoder.layer.0.intermediate.dense.weight" in sd)
    name = args.name or _default_name(path)
    return make_blip2_config(name, vision, qformer, need("query_tokens").shape[1], need("vision_proj.weight").shape[0])


def blip2_lavis_tensors(sd):
    out, origin, used = {}, {}, set()
    _fuse_qv_bias(sd, out, origin, used, "visual_encoder.blocks.", "vision_model.encoder.layers.",
                  "attn.q_bias", "attn.v_bias")
    top = {"ln_vision.weight": "vision_model.post_layernorm.weight", "ln_vision.bias": "vision_model.post_layernorm.bias",
           "Qformer.bert.embeddings.LayerNorm.weight": "qformer.layernorm.weight",
           "Qformer.bert.embeddings.LayerNorm.bias": "qformer.layernorm.bias",
           "Qformer.bert.embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
           "Qformer.bert.embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
           "vision_proj.weight": "vision_projection.weight", "vision_proj.bias": "vision_projection.bias",
           "text_proj.weight": "text_projection.weight", "text_proj.bias": "text_projection.bias",
           "itm_head.weight": "itm_head.weight", "itm_head.bias": "itm_head.bias",
           "query_tokens": "query_tokens", "temp": "temp"}
    top.update({"visual_encoder." + k: "vision_model." + v for k, v in _EVA_TOP.items()})
    dropped = []
    for k, t in sd.items():
        if k in used:
            continue
        dst = top.get(k)
        m = re.match(r"visual_encoder\.blocks\.(\d+)\.(\w+\.\w+|\w+)\.(weight|bias)$", k)
        if dst is None and m and m.group(2) in _EVA_BLOCK:
            dst = f"vision_model.encoder.layers.{m.group(1)}.{_EVA_BLOCK[m.group(2)]}.{m.group(3)}"
        if dst is None and k.startswith("Qformer.bert.encoder.layer."):
            dst = re.sub(r"^Qformer\.bert\.encoder\.layer\.(\d+)\.(attention|crossattention)\.self\.",
                         r"qformer.encoder.layer.\1.\2.attention.", k).replace("Qformer.bert.", "qformer.")
        if dst is None and (k.startswith("Qformer.cls.") or k == "Qformer.bert.embeddings.position_ids"):
            dropped.append(k)
            used.add(k)
            continue
        if dst is not None:
            out[dst], origin[dst] = t, k
            used.add(k)
    if dropped:
        log(f"dropped {len(dropped)} tensors retrieval does not use (Qformer.cls.* LM head, position_ids)")
    return out, origin, used


def _blip2_summary(cfg):
    v, q = cfg["vision"], cfg["qformer"]
    return (f"[ViT width {v['width']} layers {v['layers']} heads {v['heads']} patch {v['patch_size']} image "
            f"{v['image_size']}; Q-Former width {q['width']} layers {q['layers']} heads {q['heads']} cross every "
            f"{q['cross_attention_frequency']}; {cfg['num_query_tokens']} queries; embed {cfg['image_text_hidden_size']}]")


def convert_blip2(src_path, dst_path, args, hf_config=None, sd=None):
    """BLIP-2 retrieval checkpoint (HF folder or LAVIS) -> DST. Returns the config written."""
    if hf_config is not None:
        if os.path.isdir(src_path):
            names = ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]
            found = [f for f in names if os.path.isfile(os.path.join(src_path, f))]
            if not found:
                fail(src_path, ": a BLIP-2 folder (config.json) without model.safetensors / pytorch_model.bin")
            f = os.path.join(src_path, found[0])
        else:
            f = src_path
        log(f"Hugging Face BLIP-2: {f}")
        sd = _load_sharded(f, args.unsafe_pickle) if f.endswith(".index.json") else \
            _load_tensor_file(f, args.unsafe_pickle)[0]
        cfg, fmt = blip2_hf_config(hf_config, args, src_path), "hf"
        out, origin, used = blip2_hf_tensors(sd)
    else:
        if sd is None:
            sd = load_source(src_path, args.unsafe_pickle).sd
        if args.vision_weights:
            sd = _merge_eva(dict(sd), args.vision_weights, args.vision_layers or 39, args.unsafe_pickle)
        elif not any(k.startswith("visual_encoder.") for k in sd):
            fail(src_path, ": a LAVIS BLIP-2 checkpoint without the (frozen) vision encoder; pass its weights with "
                 "--vision-weights eva_vit_g.pth")
        cfg, fmt = blip2_lavis_config(sd, args, src_path), "lavis"
        log("LAVIS Blip2Qformer checkpoint (blip2_feature_extractor / blip2_image_text_matching)")
        out, origin, used = blip2_lavis_tensors(sd)
    unused = sorted(set(sd) - used)
    if unused:
        more = f" ... ({len(unused) - 12} more)" if len(unused) > 12 else ""
        fail(src_path, ": ", len(unused), " tensor(s) this converter does not understand: ", ", ".join(unused[:12]), more)
    exp = blip2_expected_shapes(cfg)
    for k in sorted(exp):
        if k not in out and k != "temp":
            fail(src_path, ": tensor '", k, "' with shape ", tuple(exp[k]), " is missing")
    for k in sorted(out):
        if k not in exp:
            fail(src_path, ": tensor '", origin[k], "' (-> '", k, "') is not part of the model the config describes")
        if list(out[k].shape) != exp[k]:
            fail(src_path, ": tensor '", origin[k], "' (-> '", k, "') has shape ", tuple(out[k].shape),
                 " but the config ", _blip2_summary(cfg), " needs ", tuple(exp[k]))
    bad = [origin[k] for k in out if not out[k].is_floating_point()]
    if bad:
        fail(src_path, ": BLIP-2 weights must be floating point, not ", bad[:4])
    want = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}.get(args.dtype)
    final = {}
    for k in sorted(out):  # --dtype casts every weight; temp, like CLIP's logit_scale, keeps its precision
        t = out[k].detach()
        dt = want if want is not None and k != "temp" else (torch.float32 if t.dtype == torch.float64 else t.dtype)
        final[k] = t.to(dt).contiguous()
    meta = {"vislang.config": json.dumps(cfg), "format": BLIP2_FORMAT,
            "source": os.path.basename(os.path.normpath(src_path)), "source_format": fmt}
    write_safetensors(dst_path, final, meta)
    return cfg


# ---- driver -------------------------------------------------------------------------------------
def _default_name(path):
    base = os.path.basename(os.path.normpath(path))
    for ext in (".safetensors", ".pt", ".pth", ".bin"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base or "clip"


def convert(src_path, dst_path, dtype=None, act=None, name=None, text_heads=None, vision_heads=None,
            unsafe_pickle=False, vision_weights=None, vision_layers=None):
    """Library entry point (tools/reference/make_clip_fixtures.py uses the command line instead).
    Returns the config dict written into the file."""
    args = argparse.Namespace(dtype=dtype, act=act, name=name, text_heads=text_heads, vision_heads=vision_heads,
                              unsafe_pickle=unsafe_pickle, vision_weights=vision_weights, vision_layers=vision_layers)
    blip2_hf = blip2_hf_config_json(src_path)
    if blip2_hf is not None or vision_weights:
        return convert_blip2(src_path, dst_path, args, hf_config=blip2_hf)
    src = load_source(src_path, unsafe_pickle)
    sd = src.sd
    if is_lavis_blip2(sd):
        return convert_blip2(src_path, dst_path, args, sd=sd)
    # CustomTextCLIP with a standard text transformer: text.* -> the CLIP names.
    if src.fmt != "hf" and "text.transformer.resblocks.0.attn.in_proj_weight" in sd and "transformer.resblocks.0.attn.in_proj_weight" not in sd:
        sd = {(k[5:] if k.startswith("text.") else k): v for k, v in sd.items()}
    src.sd = sd

    is_hf = src.fmt == "hf"
    if is_hf or "transformer.resblocks.0.attn.in_proj_weight" in sd or "text_projection" in sd:
        try:
            cfg = hf_layout_config(src, args) if is_hf else openai_layout_config(src, args)
        except ConvertError as e:
            raise e if str(e).startswith(src_path) else ConvertError(f"{src_path}: {e}")
        out, origin, used = (hf_layout_tensors if is_hf else openai_layout_tensors)(sd, cfg)
    else:
        hints = []
        if any(k.startswith("visual.trunk.") for k in sd):
            hints.append("visual.trunk.* is a timm vision tower")
        if any(k.startswith("text.transformer.") and "embeddings" in k for k in sd):
            hints.append("text.transformer.* is a Hugging Face text tower")
        fail(src_path, ": unknown tensor layout (not OpenAI/OpenCLIP CLIP, not Hugging Face CLIP)",
             f" [{'; '.join(hints)}]" if hints else "", "; first tensors: ", sorted(sd)[:10])

    # Anything in the source that no rule consumed is an error: a silent partial load is the worst bug.
    unused = sorted(set(sd) - used)
    if unused:
        more = f" ... ({len(unused) - 12} more)" if len(unused) > 12 else ""
        fail(src_path, ": ", len(unused), " tensor(s) this converter does not understand (a CLIP variant vislang ",
             "does not implement?): ", ", ".join(unused[:12]), more)
    exp = expected_shapes(cfg)
    for k in sorted(exp):
        if k not in out:
            fail(src_path, ": tensor '", k, "'", _missing_hint(k, src.fmt), " with shape ", tuple(exp[k]), " is missing")
    for k in sorted(out):
        if k not in exp:
            fail(src_path, ": tensor '", origin[k], "' (-> '", k, "') is not part of the model the config describes")
        if list(out[k].shape) != exp[k]:
            fail(src_path, ": tensor '", origin[k], "' (-> '", k, "') has shape ", tuple(out[k].shape),
                 " but the config ", _shape_summary(cfg), " needs ", tuple(exp[k]))

    want = {None: None, "f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    final = {}
    prog = Progress("converting", len(out))
    for i, k in enumerate(sorted(out)):
        t = out[k].detach()
        if not t.is_floating_point():
            fail(src_path, ": tensor '", origin[k], "' has dtype ", t.dtype, "; CLIP weights must be floating point")
        if want is not None and k != "logit_scale":
            t = t.to(want)
        elif t.dtype == torch.float64:
            t = t.to(torch.float32)
        final[k] = t.contiguous()
        prog.step(i + 1)
    prog.done()
    meta = {"vislang.config": json.dumps(cfg), "format": FORMAT, "source": os.path.basename(os.path.normpath(src_path)),
            "source_format": src.fmt}
    write_safetensors(dst_path, final, meta)
    return cfg


_REVERSE = [  # vislang name pattern -> OpenAI name, for error messages about missing tensors
    (r"^text_model\.encoder\.layers\.(\d+)\.", r"transformer.resblocks.\1."),
    (r"^vision_model\.encoder\.layers\.(\d+)\.", r"visual.transformer.resblocks.\1."),
    (r"layer_norm1", "ln_1"), (r"layer_norm2", "ln_2"), (r"mlp\.fc1", "mlp.c_fc"), (r"mlp\.fc2", "mlp.c_proj"),
    (r"self_attn\.out_proj", "attn.out_proj"), (r"self_attn\.[qkv]_proj\.weight", "attn.in_proj_weight"),
    (r"self_attn\.[qkv]_proj\.bias", "attn.in_proj_bias"),
    (r"^text_model\.embeddings\.token_embedding\.weight$", "token_embedding.weight"),
    (r"^text_model\.embeddings\.position_embedding\.weight$", "positional_embedding"),
    (r"^text_model\.final_layer_norm", "ln_final"), (r"^text_projection\.weight$", "text_projection"),
    (r"^vision_model\.embeddings\.class_embedding$", "visual.class_embedding"),
    (r"^vision_model\.embeddings\.patch_embedding\.weight$", "visual.conv1.weight"),
    (r"^vision_model\.embeddings\.position_embedding\.weight$", "visual.positional_embedding"),
    (r"^vision_model\.pre_layrnorm", "visual.ln_pre"), (r"^vision_model\.post_layernorm", "visual.ln_post"),
    (r"^visual_projection\.weight$", "visual.proj"),
]


def _missing_hint(k, fmt):
    if fmt == "hf" or k.startswith("visual."):
        return ""
    src = k
    for pat, rep in _REVERSE:
        src = re.sub(pat, rep, src)
    return f" (source tensor '{src}')" if src != k else ""


def _shape_summary(cfg):
    v, t = cfg["vision"], cfg["text"]
    vs = (f"ViT width {v['width']} layers {v['layers']} patch {v['patch_size']} image {v['image_size']}"
          if v["type"] == "vit" else f"ResNet {v['resnet_layers']} width {v['width']} image {v['image_size']}")
    return f"[{vs}; text width {t['width']} layers {t['layers']} vocab {t['vocab_size']}; embed {cfg['projection_dim']}]"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See the header of tools/convert.py for the formats and the name mapping.")
    ap.add_argument("src", help="OpenAI .pt, OpenCLIP .bin/.safetensors, or a Hugging Face CLIP folder")
    ap.add_argument("dst", help="output .safetensors")
    ap.add_argument("--dtype", choices=["f32", "f16", "bf16"], help="cast floating tensors (default: keep)")
    ap.add_argument("--act", choices=["gelu", "quick_gelu"], help="activation of OpenCLIP models (see header)")
    ap.add_argument("--name", help="model name stored in the config (default: from SRC)")
    ap.add_argument("--text-heads", type=int, help="override the inferred text attention heads")
    ap.add_argument("--vision-heads", type=int, help="override the inferred vision attention heads")
    ap.add_argument("--vision-weights", metavar="PATH",
                    help="BLIP-2 (LAVIS): the frozen ViT-g's own file (eva_vit_g.pth) when the checkpoint lacks it")
    ap.add_argument("--vision-layers", type=int, metavar="N",
                    help="BLIP-2 (LAVIS): blocks of --vision-weights to use (default 39, as LAVIS builds ViT-g)")
    ap.add_argument("--unsafe-pickle", action="store_true",
                    help="allow torch.load(weights_only=False) for trusted checkpoints holding non-tensor objects")
    a = ap.parse_args(argv)
    if not a.dst.endswith(".safetensors"):
        ap.error(f"DST must end in .safetensors, got {a.dst}")
    try:
        cfg = convert(a.src, a.dst, a.dtype, a.act, a.name, a.text_heads, a.vision_heads, a.unsafe_pickle,
                      a.vision_weights, a.vision_layers)
    except ConvertError as e:
        print(f"convert: error: {e}", file=sys.stderr)
        return 1
    if cfg["model_type"] == "blip2":
        log(f"wrote {a.dst} ({os.path.getsize(a.dst) / 2**20:.1f} MiB): {cfg['name']}, {_blip2_summary(cfg)}")
        return 0
    v = cfg["vision"]
    log(f"wrote {a.dst} ({os.path.getsize(a.dst) / 2**20:.1f} MiB): {cfg['name']}, {_shape_summary(cfg)}, "
        f"heads vision {v['heads']} text {cfg['text']['heads']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
