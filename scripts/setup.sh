#!/usr/bin/env bash
# scripts/setup.sh — installs every build and test dependency of vislang on a fresh Debian machine.
# Idempotent and quiet when everything is already installed. Needs root (or sudo) for apt-get.
#   scripts/setup.sh            build + test dependencies (what CI needs)
#   scripts/setup.sh --reference  also the Python reference tooling (torch, transformers, ...) via pip;
#                                 never needed by CI or the C++ tests.
set -euo pipefail

PKGS=(build-essential cmake libeigen3-dev libstb-dev doctest-dev nlohmann-json3-dev zlib1g-dev libjpeg62-turbo-dev libdeflate-dev python3
      # the image search engine (search/): vectors, metadata, HTTP; and its browser test (tests/browser/)
      libfaiss-dev libsqlite3-dev libcpp-httplib-dev pkg-config chromium chromium-driver python3-selenium)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# CUDA: the toolkit is not a Debian package here; CMake uses it when nvcc is found.
if ! command -v nvcc >/dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup: note: no CUDA toolkit found; building the CPU backend only (VISLANG_CUDA=AUTO)"
fi

if [ "${1:-}" = "--reference" ]; then
  python3 -c "import torch, transformers, open_clip, onnxruntime, safetensors" 2>/dev/null ||
    python3 -m pip install -q torch transformers open_clip_torch onnxruntime safetensors numpy
fi
exit 0
