#!/usr/bin/env bash
# scripts/demo.sh — the README's main command: install dependencies, build, then
#   1. evaluate the embedded toy CLIP (weights/toy_clip/) on freshly generated images: zero-shot
#      classification over 80 colour x shape labels and text->image retrieval, with examples;
#   2. index 400 generated images with it and serve the search page (prints the URL; Ctrl-C stops).
# Extra arguments go to `vislang demo`, e.g. `scripts/demo.sh --no-serve` prints sample queries
# instead of serving, `--port 9000` changes the port.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target vislang_cli
build/bin/vislang toy-eval --model weights/toy_clip
build/bin/vislang demo --model weights/toy_clip "$@"
