#!/usr/bin/env bash
# scripts/download_model.sh — downloads a released CLIP checkpoint and converts it to vislang's
# single-file format with tools/convert.py (needs python3 with torch >= 1.13 and numpy, and curl).
#
#   scripts/download_model.sh NAME [OUT_DIR]
#   scripts/download_model.sh list
#
# NAME                 what is downloaded                                               -> OUT_DIR/<file>
#   ViT-B/32           OpenAI TorchScript release ViT-B-32.pt (338 MB)                     ViT-B-32.safetensors
#   ViT-B/16           OpenAI ViT-B-16.pt (335 MB)                                         ViT-B-16.safetensors
#   ViT-L/14           OpenAI ViT-L-14.pt (890 MB)                                         ViT-L-14.safetensors
#   ViT-L/14-336       OpenAI ViT-L-14-336px.pt (891 MB)                                   ViT-L-14-336.safetensors
#   RN50               OpenAI RN50.pt (244 MB)                                             RN50.safetensors
#   laion2b-ViT-B-32   OpenCLIP checkpoint open_clip_pytorch_model.bin (605 MB) of
#                      huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K (gelu)         laion2b-ViT-B-32.safetensors
#   laion2b-ViT-B-32-hf  the same model's Hugging Face files (config.json,
#                      preprocessor_config.json, model.safetensors or pytorch_model.bin)   laion2b-ViT-B-32-hf.safetensors
# ("ViT-B-32" etc. with dashes are accepted too.)
#
# OUT_DIR defaults to $VISLANG_MODELS_DIR, else ~/.cache/vislang. Downloads go to OUT_DIR/src/<NAME>/
# and are resumed (curl -C -) and reused when present. The OpenAI URLs are the ones of _MODELS in
# OpenAI's clip/clip.py; the path component before the file name is the file's SHA-256, which is
# checked (as clip.py does). Environment: DTYPE=f32|f16|bf16 passes --dtype to convert.py (default:
# keep the stored dtypes — mostly f16 for OpenAI, f32 for LAION); PYTHON (default python3).
# The result loads with vislang::clip::ClipModel::load("OUT_DIR/<file>").
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
OPENAI="https://openaipublic.azureedge.net/clip/models"
LAION_REPO="https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/main"

usage() {  # the header comment above; to stderr on a usage error
  local out=1
  [ "${1:-2}" -ne 0 ] && out=2
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&"$out"
  exit "${1:-2}"
}

[ $# -ge 1 ] || usage 2
NAME="$1"
case "$NAME" in -h|--help|help|list) usage 0 ;; esac
OUT_DIR="${2:-${VISLANG_MODELS_DIR:-$HOME/.cache/vislang}}"

# NAME -> url(s), output name. OpenAI URLs: clip/clip.py _MODELS.
KIND=openai
case "$NAME" in
  ViT-B/32|ViT-B-32) URL="$OPENAI/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt"; OUT=ViT-B-32 ;;
  ViT-B/16|ViT-B-16) URL="$OPENAI/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt"; OUT=ViT-B-16 ;;
  ViT-L/14|ViT-L-14) URL="$OPENAI/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt"; OUT=ViT-L-14 ;;
  ViT-L/14-336|ViT-L-14-336|ViT-L/14@336px|ViT-L-14-336px)
    URL="$OPENAI/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt"; OUT=ViT-L-14-336 ;;
  RN50) URL="$OPENAI/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt"; OUT=RN50 ;;
  laion2b-ViT-B-32|laion2b_s34b_b79k) KIND=openclip; OUT=laion2b-ViT-B-32 ;;
  laion2b-ViT-B-32-hf) KIND=hf; OUT=laion2b-ViT-B-32-hf ;;
  *) echo "download_model: unknown model '$NAME'" >&2; usage 2 ;;
esac

command -v curl >/dev/null || { echo "download_model: curl is required" >&2; exit 1; }
"$PYTHON" -c "import torch, numpy" 2>/dev/null ||
  { echo "download_model: $PYTHON needs torch and numpy for tools/convert.py (scripts/setup.sh --reference)" >&2; exit 1; }

SRC_DIR="$OUT_DIR/src/$OUT"
mkdir -p "$SRC_DIR"

# fetch URL FILE [optional]: resumable download to FILE (via FILE.part). With "optional", a missing
# file (HTTP 404) is not an error; returns 1 then.
fetch() {
  local url="$1" file="$2" optional="${3:-}"
  if [ -s "$file" ]; then echo "download_model: have $file"; return 0; fi
  echo "download_model: $url"
  if ! curl -fL --retry 3 --retry-delay 2 -C - --progress-bar -o "$file.part" "$url"; then
    rm -f "$file.part"
    if [ -n "$optional" ]; then echo "download_model: (not available: $url)"; return 1; fi
    echo "download_model: failed to download $url" >&2
    exit 1
  fi
  mv "$file.part" "$file"
}

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1; else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

CONVERT_ARGS=(--name "$OUT")
[ -n "${DTYPE:-}" ] && CONVERT_ARGS+=(--dtype "$DTYPE")

case "$KIND" in
  openai)
    file="$SRC_DIR/$(basename "$URL")"
    want="$(basename "$(dirname "$URL")")"
    fetch "$URL" "$file"
    got="$(sha256_of "$file")"
    if [ "$got" != "$want" ]; then
      echo "download_model: SHA-256 mismatch for $file: got $got, expected $want; delete it and retry" >&2
      exit 1
    fi
    echo "download_model: SHA-256 ok"
    SRC="$file"
    ;;
  openclip)
    # open_clip's pretrained.py: ViT-B-32 laion2b_s34b_b79k = hf_hub laion/CLIP-ViT-B-32-laion2B-s34B-b79K,
    # file open_clip_pytorch_model.bin. The ViT-B-32 model config has no quick_gelu, so the activation is
    # gelu; say so explicitly in case the repository carries no open_clip_config.json.
    fetch "$LAION_REPO/open_clip_pytorch_model.bin" "$SRC_DIR/open_clip_pytorch_model.bin"
    fetch "$LAION_REPO/open_clip_config.json" "$SRC_DIR/open_clip_config.json" optional || true
    CONVERT_ARGS+=(--act gelu)
    SRC="$SRC_DIR/open_clip_pytorch_model.bin"
    ;;
  hf)
    fetch "$LAION_REPO/config.json" "$SRC_DIR/config.json"
    fetch "$LAION_REPO/preprocessor_config.json" "$SRC_DIR/preprocessor_config.json" optional || true
    if ! fetch "$LAION_REPO/model.safetensors" "$SRC_DIR/model.safetensors" optional; then
      fetch "$LAION_REPO/pytorch_model.bin" "$SRC_DIR/pytorch_model.bin"
    fi
    SRC="$SRC_DIR"
    ;;
esac

DST="$OUT_DIR/$OUT.safetensors"
echo "download_model: converting -> $DST"
"$PYTHON" "$ROOT/tools/convert.py" "$SRC" "$DST" "${CONVERT_ARGS[@]}"
echo "download_model: done: $DST"
