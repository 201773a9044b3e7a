#!/usr/bin/env python3
"""tools/reference/make_image_fixtures.py — golden files for tests/test_image.cpp (image decoding,
PIL-exact bicubic resize, center crop, CLIP preprocessing).

Writes tests/fixtures/image/ (kept under 1 MB):
  manifest.json         what every file is, with the library versions that produced it (format_version)
  inputs/*.png|gif|jpg  generated inputs: odd sizes (1x1, 3x1000, 1000x3, 224x224, 225x223, 223x225, a
                        tall 230x700) in modes RGB, RGBA, LA, L, P (+transparency), GIFs (transparency,
                        offset frame, interlace), JPEG variants (4:2:0/4:2:2/4:4:4, progressive, grey,
                        CMYK), 16-bit PNGs
  expected/*.png        PIL results (uint8 RGB): resize+center-crop per mode, plain resizes, decodes
  samples/*.u8          strided samples of 224 crops of the shared photos (full PNGs would be ~90 KB each)
  normalized/*.f32      strided samples of the float tensors of open_clip / HF (PIL backend) / HF
                        (torchvision backend, the transformers >= 5 default) for two shared images

The shared photos (../shared/data/images) are inputs, not copied. Needs Pillow, numpy, torch,
torchvision, transformers and open_clip (reference tooling only; the C++ tests never run Python).
Run from the repository root:  python3 tools/reference/make_image_fixtures.py
"""
import hashlib
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
import PIL
from PIL import Image, features

FORMAT_VERSION = 1
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fixtures", "image")
SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "data"))
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def crc(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a, dtype=np.uint8).tobytes()) & 0xFFFFFFFF


def rgb_of(path: str) -> np.ndarray:
    """PIL's Image.open(path).convert('RGB') as (H, W, 3) uint8 — what vislang::load_image must return."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ---- reference pipelines -------------------------------------------------------------------------

def resized_size(w: int, h: int, size: int):
    """(w, h) after 'shorter side -> size' from torchvision and from transformers; asserts they agree."""
    import torchvision.transforms.functional as TF
    from transformers.image_transforms import get_resize_output_image_size
    th, tw = TF._compute_resized_output_size((h, w), [size])
    hh, hw = get_resize_output_image_size(np.zeros((h, w, 3), np.uint8), size, default_to_square=False,
                                          input_data_format="channels_last")
    assert (tw, th) == (hw, hh), (w, h, size, (tw, th), (hw, hh))
    return tw, th


def openai_crop(rgb: np.ndarray, size: int, legacy_order=False) -> np.ndarray:
    """OpenAI CLIP / open_clip: torchvision Resize(size, BICUBIC) + CenterCrop(size) on a PIL image."""
    import torchvision.transforms as T
    im = Image.fromarray(rgb)
    if legacy_order:  # Pillow <= 12: horizontal pass first = two single-axis resizes, exactly
        w, h = resized_size(im.width, im.height, size)
        im = im.resize((w, im.height), Image.BICUBIC).resize((w, h), Image.BICUBIC)
    else:
        im = T.Resize(size, interpolation=T.InterpolationMode.BICUBIC)(im)
    return np.asarray(T.CenterCrop(size)(im))


def hf_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """transformers CLIPImageProcessor, PIL backend (CLIPImageProcessorPil), without rescale/normalize."""
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    proc = CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                 do_rescale=False, do_normalize=False)
    px = proc(images=Image.fromarray(rgb), return_tensors="np")["pixel_values"][0]  # (3, S, S)
    out = np.moveaxis(np.asarray(px), 0, -1)
    assert np.all(out == np.round(out)), "expected integral pixels"
    return out.astype(np.uint8)


# ---- file helpers --------------------------------------------------------------------------------

class Writer:
    def __init__(self):
        self.total = 0
        self.by_hash = {}

    def write(self, rel: str, data: bytes) -> str:
        """Writes data at rel (deduplicated by content); returns the relative path to use."""
        h = hashlib.sha1(data).hexdigest()
        if h in self.by_hash:
            return self.by_hash[h]
        path = os.path.join(OUT, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        self.total += len(data)
        self.by_hash[h] = rel
        return rel

    def png(self, rel: str, rgb: np.ndarray) -> str:
        b = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(b, "png", optimize=True)
        return self.write(rel, b.getvalue())


def png16(arr: np.ndarray, color_type: int) -> bytes:
    """A minimal 16-bit PNG (PIL cannot write 16-bit RGB): arr (H, W, C) uint16."""
    h, w = arr.shape[:2]
    be = arr.astype(">u2")
    raw = b"".join(b"\x00" + be[y].tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def gif_bytes(sw, sh, frames, gpal=None):
    """A GIF with literal-only LZW (valid; CLEAR emitted before the code size would grow), for layouts
    PIL cannot write: frames offset or sticking out of the screen, indices past the palette, ..."""
    def lzw(indices, bits):
        clear, cs = 1 << bits, bits + 1
        out, acc, nb = bytearray(), 0, 0

        def emit(c):
            nonlocal acc, nb
            acc |= c << nb
            nb += cs
            while nb >= 8:
                out.append(acc & 255)
                acc >>= 8
                nb -= 8
        emit(clear)
        count, limit = 0, (1 << cs) - clear - 3
        for v in indices:
            emit(v)
            count += 1
            if count >= limit:
                emit(clear)
                count = 0
        emit(clear + 1)
        if nb:
            out.append(acc & 255)
        return bytes(out)

    def blocks(b):
        return b"".join(bytes([len(b[i:i + 255])]) + b[i:i + 255] for i in range(0, len(b), 255)) + b"\x00"

    def table(p):
        n = len(p) // 3
        b = max(1, (n - 1).bit_length())
        return p + bytes(3 * (2 ** b) - len(p)), b
    flags, pal = 0, b""
    if gpal is not None:
        pal, b = table(gpal)
        flags = 0x80 | 0x70 | (b - 1)
    data = b"GIF89a" + struct.pack("<HHBBB", sw, sh, flags, 0, 0) + pal
    for f in frames:
        if f.get("trans") is not None:
            data += b"\x21\xf9\x04" + bytes([1, 0, 0, f["trans"], 0])
        lf, lp = 0, b""
        if f.get("lpal") is not None:
            lp, b = table(f["lpal"])
            lf = 0x80 | (b - 1)
        idx = list(f["idx"])
        if f.get("interlace"):
            lf |= 0x40
            rows = [idx[r * f["w"]:(r + 1) * f["w"]] for r in range(f["h"])]
            order = (list(range(0, f["h"], 8)) + list(range(4, f["h"], 8)) + list(range(2, f["h"], 4)) +
                     list(range(1, f["h"], 2)))
            idx = [v for r in order for v in rows[r]]
        data += b"," + struct.pack("<HHHHB", f["x"], f["y"], f["w"], f["h"], lf) + lp
        bits = f.get("bits") or max(2, max(idx).bit_length())
        data += bytes([bits]) + blocks(lzw(idx, bits))
    return data + b";"


def synthetic(w: int, h: int, seed: int) -> np.ndarray:
    """Smooth gradients and waves (varied fractional resampling values) plus hard black/white blocks
    (ringing, clipping at 0 and 255); no noise, so PNGs stay small."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    fx, fy = rng.uniform(6, 60, 3), rng.uniform(6, 60, 3)
    img = np.stack([127.5 + 120 * np.sin(x / fx[c] + y / fy[c] + c) for c in range(3)], -1)
    for _ in range(4):
        bw, bh = max(1, w // rng.integers(3, 8)), max(1, h // rng.integers(3, 8))
        x0, y0 = rng.integers(0, max(1, w - bw + 1)), rng.integers(0, max(1, h - bh + 1))
        img[y0:y0 + bh, x0:x0 + bw] = 255 if rng.random() < 0.5 else 0
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


# ---- the fixtures --------------------------------------------------------------------------------

def main():
    import open_clip
    import torch
    import torchvision
    import transformers
    from transformers import CLIPImageProcessor
    from transformers.image_transforms import center_crop as hf_center_crop
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    import torchvision.transforms.functional as TF

    if not os.path.isdir(os.path.join(SHARED, "images")):
        sys.exit(f"shared images not found at {SHARED}")
    os.makedirs(OUT, exist_ok=True)
    for sub in ("inputs", "expected", "samples", "normalized"):
        d = os.path.join(OUT, sub)
        if os.path.isdir(d):
            for f in os.listdir(d):
                os.remove(os.path.join(d, f))
    W = Writer()
    man = {
        "format_version": FORMAT_VERSION,
        "generator": "tools/reference/make_image_fixtures.py",
        "versions": {
            "pillow": PIL.__version__, "libjpeg_turbo": features.version("libjpeg_turbo"),
            "numpy": np.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "transformers": transformers.__version__, "open_clip": open_clip.__version__,
        },
        "notes": "paths: 'shared:' = ../shared/data/, else relative to tests/fixtures/image/. "
                 "crc32 = zlib crc32 of the (H, W, 3) uint8 RGB bytes.",
        "decode": [], "preprocess": [], "resize": [], "normalized": [],
        "crop_offsets": [], "resize_sizes": [],
    }

    # 1. Generated inputs ------------------------------------------------------------------------
    gen = []  # (relpath, kind)

    def save_input(name, im, fmt="png", **kw):
        b = io.BytesIO()
        im.save(b, fmt, **kw)
        return W.write(f"inputs/{name}.{fmt}", b.getvalue())

    odd = [  # name, (w, h), mode
        ("odd_1x1_rgb", (1, 1), "RGB"),
        ("odd_3x1000_rgba", (3, 1000), "RGBA"),
        ("odd_1000x3_la", (1000, 3), "LA"),
        ("odd_224x224_p", (224, 224), "P"),
        ("odd_225x223_l", (225, 223), "L"),
        ("odd_223x225_rgb", (223, 225), "RGB"),
        ("odd_230x700_rgb", (230, 700), "RGB"),   # tall, downscaled: Pillow >= 13 resizes vertically first
        ("odd_5x4_pt", (5, 4), "PT"),             # palette with a transparent index
    ]
    for i, (name, (w, h), mode) in enumerate(odd):
        rgb = synthetic(w, h, seed=i)
        if mode == "RGB":
            im = Image.fromarray(rgb)
        elif mode == "RGBA":  # alpha has 0 and 255 regions; colour under alpha 0 must survive
            a = synthetic(w, h, seed=100 + i)[..., 0]
            im = Image.fromarray(np.dstack([rgb, a]), "RGBA")
        elif mode == "LA":
            im = Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA")
        elif mode == "L":
            im = Image.fromarray(rgb[..., 1], "L")
        elif mode == "P":
            im = Image.fromarray(rgb).quantize(64)
        else:  # PT
            im = Image.fromarray(rgb).quantize(8)
            im.info["transparency"] = 2
        kw = {"transparency": 2} if mode == "PT" else {}
        gen.append((save_input(name, im, **kw), name))

    # GIFs (decoder edge cases: PIL convert('RGB') keeps transparent pixels' palette colour, fills the
    # area outside the first frame with index 0 or the transparent index, ignores later frames).
    rs = np.random.default_rng(7)
    pal = bytes(rs.integers(0, 256, 18, dtype=np.uint8))
    idx = [int(v) for v in rs.integers(0, 8, 13 * 9)]
    gifs = {
        "gif_offset_trans": gif_bytes(20, 15, [dict(x=3, y=2, w=13, h=9, idx=idx, trans=2)], gpal=pal),
        "gif_beyond_screen": gif_bytes(10, 6, [dict(x=3, y=2, w=13, h=9, idx=idx)], gpal=pal),
        "gif_interlaced": gif_bytes(13, 9, [dict(x=0, y=0, w=13, h=9, idx=idx, interlace=True)], gpal=pal),
        "gif_local_palette": gif_bytes(13, 9, [dict(x=0, y=0, w=13, h=9, idx=idx,
                                                    lpal=bytes(rs.integers(0, 256, 24, dtype=np.uint8)))], gpal=pal),
        "gif_no_palette": gif_bytes(13, 9, [dict(x=0, y=0, w=13, h=9, idx=[int(v) for v in rs.integers(0, 256, 117)], bits=8)]),
        "gif_two_frames": gif_bytes(13, 9, [dict(x=0, y=0, w=13, h=9, idx=idx),
                                            dict(x=1, y=1, w=3, h=3, idx=[1] * 9)], gpal=pal),
    }
    for name, data in gifs.items():
        gen.append((W.write(f"inputs/{name}.gif", data), name))
    b = io.BytesIO()
    Image.fromarray(synthetic(60, 40, 50)).quantize(200).save(b, "gif")  # real LZW from PIL's encoder
    gen.append((W.write("inputs/gif_pil.gif", b.getvalue()), "gif_pil"))

    # JPEG variants: decoding must be bit-exact with PIL's libjpeg-turbo (libjpeg builds).
    jrgb = synthetic(37, 23, 60)
    jpegs = {
        "jpeg_420": dict(subsampling=2, quality=90), "jpeg_422": dict(subsampling=1, quality=90),
        "jpeg_444": dict(subsampling=0, quality=90), "jpeg_progressive": dict(progressive=True, quality=85),
    }
    for name, kw in jpegs.items():
        gen.append((save_input(name, Image.fromarray(jrgb), "jpeg", **kw), name))
    gen.append((save_input("jpeg_gray", Image.fromarray(jrgb[..., 0], "L"), "jpeg"), "jpeg_gray"))
    gen.append((save_input("jpeg_cmyk", Image.fromarray(jrgb).convert("CMYK"), "jpeg"), "jpeg_cmyk"))

    # 16-bit PNGs: PIL keeps the high byte of RGB(A)/LA, but clips "I;16" greyscale at 255.
    r16 = np.random.default_rng(9)
    for name, ct, c in [("png16_gray", 0, 1), ("png16_rgb", 2, 3), ("png16_rgba", 6, 4), ("png16_la", 4, 2)]:
        a = r16.integers(0, 65536, (6, 9, c)).astype(np.uint16)
        a[0, :4, 0] = [0, 200, 255, 256]
        gen.append((W.write(f"inputs/{name}.png", png16(a, ct)), name))
    # BMP (stb path, truncation check)
    gen.append((save_input("bmp_rgb", Image.fromarray(synthetic(31, 17, 70)), "bmp"), "bmp_rgb"))

    for rel, name in gen:
        path = os.path.join(OUT, rel)
        with Image.open(path) as im:
            mode = im.mode
        rgb = rgb_of(path)
        e = {"input": rel, "pil_mode": mode, "width": rgb.shape[1], "height": rgb.shape[0], "crc32": crc(rgb),
             "jpeg": rel.endswith(".jpeg")}
        if rgb.size <= 4000 or e["jpeg"]:
            e["reference"] = W.png(f"expected/{name}_decoded.png", rgb)
        man["decode"].append(e)

    # 2. Shared photos ------------------------------------------------------------------------------
    shared = sorted(f for f in os.listdir(os.path.join(SHARED, "images"))
                    if f.lower().endswith((".png", ".jpg", ".jpeg")) and f != "truncated.jpg")
    full224 = {("rocket.jpg", "OPENAI"), ("camera.png", "OPENAI"), ("camera.png", "HF")}  # others: samples
    stride = 11
    for f in shared:
        path = os.path.join(SHARED, "images", f)
        rgb = rgb_of(path)
        with Image.open(path) as im:
            mode = im.mode
        man["decode"].append({"input": f"shared:images/{f}", "pil_mode": mode, "width": rgb.shape[1],
                              "height": rgb.shape[0], "crc32": crc(rgb), "jpeg": f.endswith(".jpg")})
        stem = os.path.splitext(f)[0]
        for size in (64, 224):
            for mode_name, fn in (("OPENAI", openai_crop), ("HF", hf_crop)):
                out = fn(rgb, size)
                e = {"input": f"shared:images/{f}", "size": size, "mode": mode_name, "pass_order": "PILLOW",
                     "crc32": crc(out)}
                if size == 64 or (f, mode_name) in full224:
                    e["expected"] = W.png(f"expected/{stem}_{mode_name.lower()}_{size}.png", out)
                else:
                    flat = out.reshape(-1, 3)[::stride]
                    e["samples"] = W.write(f"samples/{stem}_{mode_name.lower()}_{size}.u8", flat.tobytes())
                    e["sample_stride_pixels"] = stride
                man["preprocess"].append(e)

    # 3. Preprocess + plain resizes of the generated odd-size inputs ----------------------------------
    for rel, name in gen:
        if not name.startswith("odd_"):
            continue
        rgb = rgb_of(os.path.join(OUT, rel))
        for mode_name, fn in (("OPENAI", openai_crop), ("HF", hf_crop)):
            out = fn(rgb, 224)
            man["preprocess"].append({"input": rel, "size": 224, "mode": mode_name, "pass_order": "PILLOW",
                                      "crc32": crc(out),
                                      "expected": W.png(f"expected/{name}_{mode_name.lower()}_224.png", out)})
        if name == "odd_230x700_rgb":  # Pillow <= 12 order, reproduced by two single-axis resizes
            out = openai_crop(rgb, 224, legacy_order=True)
            man["preprocess"].append({"input": rel, "size": 224, "mode": "OPENAI", "pass_order": "HORIZONTAL_FIRST",
                                      "crc32": crc(out),
                                      "expected": W.png(f"expected/{name}_openai_224_legacy.png", out)})
    resizes = [("odd_225x223_l", (100, 37)), ("odd_1000x3_la", (13, 77)), ("odd_3x1000_rgba", (250, 9)),
               ("odd_230x700_rgb", (40, 90)), ("odd_230x700_rgb", (231, 20)), ("odd_223x225_rgb", (223, 40)),
               ("odd_223x225_rgb", (41, 225)), ("odd_224x224_p", (224, 224)), ("odd_1x1_rgb", (5, 3))]
    relof = {n: r for r, n in gen}
    for name, (ow, oh) in resizes:
        im = Image.fromarray(rgb_of(os.path.join(OUT, relof[name])))
        for order in ("PILLOW", "HORIZONTAL_FIRST"):
            if order == "PILLOW":
                out = np.asarray(im.resize((ow, oh), Image.BICUBIC))
            else:
                out = np.asarray(im.resize((ow, im.height), Image.BICUBIC).resize((ow, oh), Image.BICUBIC))
            man["resize"].append({"input": relof[name], "out": [ow, oh], "pass_order": order, "crc32": crc(out),
                                  "expected": W.png(f"expected/{name}_resize_{ow}x{oh}_{order.lower()}.png", out)})

    # 4. Normalized tensors of the reference pipelines ------------------------------------------------
    oc = open_clip.image_transform(224, is_train=False, mean=CLIP_MEAN, std=CLIP_STD)
    hf_pil = CLIPImageProcessorPil()
    hf_tv = CLIPImageProcessor()
    nstride = 31
    for f in ("rocket.jpg", "camera.png"):
        path = os.path.join(SHARED, "images", f)
        stem = os.path.splitext(f)[0]
        with Image.open(path) as im:
            im.load()
            tensors = {
                ("open_clip", "OPENAI"): oc(im).numpy(),
                ("hf_pil", "HF"): np.asarray(hf_pil(images=im, return_tensors="np")["pixel_values"][0]),
                ("hf_torchvision", "HF"): hf_tv(images=im, return_tensors="pt")["pixel_values"][0].numpy(),
            }
        rgb = rgb_of(path)
        for (pipe, mode_name), t in tensors.items():
            t = np.ascontiguousarray(t, dtype=np.float32)
            assert t.shape == (3, 224, 224), t.shape
            # What the C++ computes from PIL's uint8 crop, to record how far each pipeline is from it.
            crop = (openai_crop if mode_name == "OPENAI" else hf_crop)(rgb, 224)
            mine = ((np.moveaxis(crop, -1, 0).astype(np.float32) / np.float32(255)) -
                    np.array(CLIP_MEAN, np.float32)[:, None, None]) / np.array(CLIP_STD, np.float32)[:, None, None]
            flat = t.reshape(-1)
            e = {"input": f"shared:images/{f}", "pipeline": pipe, "mode": mode_name, "size": 224,
                 "shape": [3, 224, 224], "stride": nstride,
                 "samples": W.write(f"normalized/{stem}_{pipe}.f32", flat[::nstride].astype("<f4").tobytes()),
                 "sum": float(flat.astype(np.float64).sum()), "sumsq": float((flat.astype(np.float64) ** 2).sum()),
                 "min": float(flat.min()), "max": float(flat.max()),
                 "max_abs_vs_pil_pixels_formula": float(np.abs(t - mine).max())}
            man["normalized"].append(e)
            print(f"{f:12s} {pipe:15s} max |ref - f(PIL uint8 crop)| = {e['max_abs_vs_pil_pixels_formula']:.3g}")

    # 5. Crop offsets and resize sizes from the libraries themselves ----------------------------------
    for size in range(1, 12):
        for c in range(1, 12):
            src = np.arange(1, size * size + 1, dtype=np.int64).reshape(size, size)  # 1-based: 0 = padding

            def offset(out):  # source row of output row 0 (negative: that many padded rows first)
                nz = np.argwhere(out > 0)
                r, cidx = nz[0]
                v = out[r, cidx] - 1
                return int(v // size - r)
            tv = TF.center_crop(torch.from_numpy(src)[None], [c, c])[0].numpy()
            hf = hf_center_crop(src[None].astype(np.int64), (c, c), input_data_format="channels_first")[0]
            man["crop_offsets"].append({"size": size, "crop": c, "torchvision": offset(tv), "hf": offset(hf)})
    for (w, h) in [(640, 427), (427, 640), (451, 300), (1000, 872), (3, 1000), (1000, 3), (1, 1), (224, 224),
                   (225, 223), (223, 225), (150, 700), (333, 500), (7, 3), (4000, 3000), (299, 298)]:
        for size in (224, 64, 336, 1):
            rw, rh = resized_size(w, h, size)
            man["resize_sizes"].append({"w": w, "h": h, "size": size, "out": [rw, rh]})

    with open(os.path.join(OUT, "manifest.json"), "w") as fh:
        json.dump(man, fh, indent=1)
        fh.write("\n")
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT}: {total / 1024:.0f} KiB")
    assert total < 1_000_000, "fixtures must stay under 1 MB"


if __name__ == "__main__":
    main()
