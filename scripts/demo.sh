#!/usr/bin/env bash
# scripts/demo.sh — the README's main command: install dependencies, build, run the demo.
# (For now the engine demo: `vislang version` and `vislang bench ops`; the CLIP/training issues
# replace it with zero-shot classification on the embedded default model.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
build/bin/vislang version
build/bin/vislang bench ops "$@"
