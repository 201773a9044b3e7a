#!/usr/bin/env bash
# scripts/test.sh — the README's test command: install dependencies, build (CUDA on when nvcc is
# present), run the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
CUDA_FLAG=AUTO
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then CUDA_FLAG=ON; fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DVISLANG_CUDA="$CUDA_FLAG" >/dev/null
cmake --build build -j"$(nproc)"
# What this machine offers: without a GPU the "cuda" suite is reported Skipped, and says why here.
build/bin/vislang version | grep -E "CUDA|CPU:" || true
if [ "$(build/bin/vislang_tests --test-suite=cuda --list-test-cases >/dev/null 2>&1; echo $?)" = 77 ]; then
  build/bin/vislang_tests --test-suite=cuda | grep SKIPPED || true
fi
ctest --test-dir build --output-on-failure "$@"
