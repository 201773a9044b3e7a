#!/usr/bin/env bash
# scripts/gpu_check.sh — the CUDA backend's check on a GPU machine: configure + build with CUDA,
# show the GPU, run the 'cuda' test suite (every op case on CUDA against the reference kernels),
# then the op benchmark on the GPU. Ends with one line: "gpu_check: PASS" or "gpu_check: FAIL (...)".
#
#   scripts/gpu_check.sh                       # from anywhere; works in the repo root
#   CUDA_ARCH=80 scripts/gpu_check.sh          # A100 (default 90: H100/H200)
#   BUILD_DIR=build-gpu JOBS=16 scripts/gpu_check.sh
#
# Every step has a timeout so the whole script ends within about 8 minutes (budget below, seconds):
# configure 60 + build 240 + nvidia-smi 15 + tests 90 + bench 60 = 465. Kernel faults are reported
# by the kernel that caused them: the test step runs with VISLANG_CUDA_SYNC=1 (sync after launches).
set -euo pipefail
cd "$(dirname "$0")/.."

ARCH="${CUDA_ARCH:-90}"
BUILD="${BUILD_DIR:-build-gpu}"
JOBS="${JOBS:-$(nproc)}"
START=$(date +%s)
failed=""

step() {  # step NAME SECONDS CMD... — runs CMD under a timeout, records a failure, never exits
  local name="$1" secs="$2"
  shift 2
  echo "== gpu_check: ${name} (timeout ${secs}s)"
  local t0 rc=0
  t0=$(date +%s)
  timeout --kill-after=10 "${secs}" "$@" || rc=$?
  if [ "${rc}" -eq 124 ] || [ "${rc}" -eq 137 ]; then
    echo "== gpu_check: ${name}: TIMED OUT after ${secs}s"
    failed="${failed:+${failed}, }${name} (timeout)"
  elif [ "${rc}" -ne 0 ]; then
    echo "== gpu_check: ${name}: FAILED (exit ${rc})"
    failed="${failed:+${failed}, }${name}"
  else
    echo "== gpu_check: ${name}: ok ($(($(date +%s) - t0))s)"
  fi
  return 0
}
finish() {
  echo "== gpu_check: total $(($(date +%s) - START))s"
  if [ -z "${failed}" ]; then echo "gpu_check: PASS"; exit 0; fi
  echo "gpu_check: FAIL (${failed})"
  exit 1
}

# nvcc: CMake honours $CUDACXX; otherwise CMakeLists.txt looks in PATH and /usr/local/cuda/bin.
step "configure" 60 cmake -S . -B "${BUILD}" -DCMAKE_BUILD_TYPE=Release -DVISLANG_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${ARCH}"
[ -z "${failed}" ] || finish
step "build" 240 cmake --build "${BUILD}" -j"${JOBS}"
[ -z "${failed}" ] || finish
step "nvidia-smi" 15 nvidia-smi
# The cuda suite exits 77 (ctest: "Skipped") when it sees no GPU; on a GPU machine that is a failure.
CTEST_LOG="${BUILD}/gpu_check_ctest.log"
step "ctest cuda" 90 bash -c "set -o pipefail; VISLANG_CUDA_SYNC=1 ctest --test-dir '${BUILD}' -R cuda \
  --output-on-failure --no-tests=error 2>&1 | tee '${CTEST_LOG}'"
if grep -q "Skipped" "${CTEST_LOG}" 2>/dev/null; then
  echo "== gpu_check: the cuda suite was skipped (no GPU visible to the test binary)"
  failed="${failed:+${failed}, }cuda suite skipped"
fi
step "bench ops" 60 "${BUILD}/bin/vislang" bench ops --device cuda
finish
