// kernels/cpu/prepack.h — the CPU backend's registry of prepacked linear weights.
//
// Where it sits: ops::prepack_linear_weight (kernels/ops.h; nn::Linear::load and nn::Conv2d::load
// call it) registers a weight W (out, in) here; the CPU MATMUL kernel (cpu_matmul.cpp) and the
// patch-embedding conv2d path (cpu_conv.cpp) ask find_prepacked() whether their B operand is exactly
// Wᵀ of a registered weight, and if so multiply with sgemm_prepacked (kernels/cpu/gemm.h) instead of
// repacking W on every call. Registering is cheap: the panels are packed on the first product that
// uses them (f16 / bf16 weights are packed as their f32 values, as the unpacked path converts them).
// A bf16 matmul (bgemm) asks find_prepacked_bf16() instead, for panels of bf16 pairs: half the
// memory. An entry makes each kind of panels only when a product asks for it.
//
// Safety: an entry is keyed by (storage object, offset, shape, strides, dtype) and holds a weak_ptr
// to the Storage. It is used only while that Storage is alive and is the very one the operand views
// (same owner), so memory freed and handed to another tensor at the same address never sees stale
// panels; entries whose storage expired are dropped. What the registry cannot see is an in-place
// write to a registered weight: registering is the caller's promise that there will be none.
// Thread-safe (a shared_mutex: lookups share it, registration and packing results take it alone).
#pragma once
#include <cstdint>
#include <memory>

#include "kernels/cpu/gemm.h"

namespace vislang::cpu {

// Registers weight (out, in): f32 / f16 / bf16 on the CPU, any strides; a no-op otherwise.
// Idempotent. Also drops the entries whose storage has expired.
void register_prepacked_weight(const Tensor& weight);

// The packed panels of B = Wᵀ when `b` (K, N) — a 2-D tensor, or 3-D (batch, K, N) whose matrices
// are all the same one (batch 1 or batch stride 0) — is exactly the transposed view of a live
// registered weight W (N, K); otherwise nullptr. Packs on the first call for an entry.
std::shared_ptr<const PackedB> find_prepacked(const Tensor& b);
// The same for bgemm: bf16 panels (bgemm_pack_b) of a bf16 or f32 weight; nullptr for other dtypes.
std::shared_ptr<const PackedB> find_prepacked_bf16(const Tensor& b);

// Counters for tests and diagnostics.
struct PrepackStats {
  int64_t entries = 0;  // registered, storage still alive or not yet swept
  int64_t packed = 0;   // entries whose panels exist
  int64_t bytes = 0;    // memory held by packed panels
  int64_t hits = 0;     // products served from packed panels (this process)
};
PrepackStats prepack_stats();

}  // namespace vislang::cpu
