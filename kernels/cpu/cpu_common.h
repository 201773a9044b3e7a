// kernels/cpu/cpu_common.h — shared machinery of the optimized CPU backend (kernels/cpu/cpu_*.cpp):
// dtype conversion of whole rows, the strided N-d loop that elementwise kernels run on, the
// (outer, R, inner) view that "along one dim" kernels use, and the list of kernels.
//
// Where it sits: dispatch() -> cpu_backend().find() (cpu_kernels.cpp) picks one of the kernels
// declared at the bottom; each kernel reads f32 / f16 / bf16 through the converters here, computes in
// f32 (accumulating in double where a long sum needs it) and rounds back to nearest even on store.
// Internal to kernels/cpu/; nothing outside includes it.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/backend.h"

namespace vislang::cpu_kernels {

// Below this many elements of work an op runs on the calling thread (thread start-up costs ~µs).
constexpr int64_t kParallelMin = 1 << 15;
// Elements per piece of work in the elementwise loop: 4 f32 buffers of this size stay in L1.
constexpr int64_t kTile = 1024;

inline bool is_f3(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
inline bool is_f3(const Tensor& t) { return t.defined() && is_f3(t.dtype()); }
inline bool f3_or_absent(const Tensor& t) { return !t.defined() || is_f3(t.dtype()); }
inline bool is_index(const Tensor& t) { return t.defined() && (t.dtype() == DType::I32 || t.dtype() == DType::I64); }

// ---- conversion (cpu_convert.cpp) ---------------------------------------------------------------
// n elements of dtype t (f32/f16/bf16) at src, `stride` elements apart (1 = contiguous, 0 = one value
// repeated), to contiguous f32 — and back, rounding to nearest even. Contiguous f16 uses F16C
// (AVX-512F) when the CPU has it; every path gives bit-identical results to core/dtype.h.
void load_f32(float* dst, const void* src, DType t, int64_t n, int64_t stride = 1);
void store_f32(void* dst, DType t, const float* src, int64_t n, int64_t stride = 1);
// Whole contiguous tensor to / from a new f32 buffer.
std::vector<float> to_f32_vector(const Tensor& t);  // t contiguous
inline float load_one(const void* p, DType t) {
  float v;
  load_f32(&v, p, t, 1);
  return v;
}

// Element address helpers (strides and offsets are in elements).
inline char* byte_ptr(const Tensor& t) { return static_cast<char*>(t.data_ptr()); }
inline int64_t esize(const Tensor& t) { return static_cast<int64_t>(t.element_size()); }

// Reads an index tensor (i32 or i64) element.
inline int64_t load_index(const void* base, DType t, int64_t i) {
  return t == DType::I32 ? static_cast<const int32_t*>(base)[i] : static_cast<const int64_t*>(base)[i];
}

// ---- the strided N-d loop -------------------------------------------------------------------------
// Iteration space of an elementwise op over up to 4 tensors (out first) of one shape, after dims of
// size 1 are dropped and dims that are contiguous in *every* tensor are merged: a contiguous op
// becomes 1-d, a transposed one 2-d. The last dim is the inner loop.
constexpr int kMaxArgs = 4;
constexpr int kMaxDims = 16;  // find() sends tensors of higher rank to the reference backend
struct NdLoop {
  int nargs = 0;
  std::vector<int64_t> shape;                   // merged, innermost last; never empty
  std::vector<int64_t> strides[kMaxArgs];       // per tensor, in elements
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
  int64_t inner() const { return shape.back(); }
  int64_t inner_stride(int a) const { return strides[a].back(); }
};
NdLoop make_loop(const Shape& shape, const std::vector<const Shape*>& strides);

// Calls fn(offsets, n) for pieces of the iteration space, in parallel when it is large: offsets[a] is
// the element offset of the piece's first element in tensor a, n <= kTile elements follow along the
// inner dim (element k of the piece at offsets[a] + k * inner_stride(a)). With allow_parallel false
// (a caller that is itself parallel) it runs on the calling thread.
template <typename Fn>
void for_each_piece(const NdLoop& L, Fn&& fn, bool allow_parallel = true) {
  const int nd = static_cast<int>(L.shape.size());
  const int64_t inner = L.inner(), total = L.numel();
  if (total == 0) return;
  const int64_t rows = total / inner;
  // Long rows are cut into kTile pieces; short rows are grouped, several per work item.
  const int64_t pieces_per_row = (inner + kTile - 1) / kTile;
  const int64_t rows_per_item = pieces_per_row > 1 ? 1 : std::max<int64_t>(1, kTile / inner);
  const int64_t items = pieces_per_row > 1 ? rows * pieces_per_row : (rows + rows_per_item - 1) / rows_per_item;
  // Element offsets of the start of `row` (a flat index over the outer dims) in every tensor.
  auto row_offsets = [&](int64_t row, int64_t* idx, int64_t* off) {
    for (int a = 0; a < L.nargs; ++a) off[a] = 0;
    for (int d = nd - 2; d >= 0; --d) {
      idx[d] = row % L.shape[d];
      row /= L.shape[d];
      for (int a = 0; a < L.nargs; ++a) off[a] += idx[d] * L.strides[a][d];
    }
  };
#pragma omp parallel for schedule(static) if (allow_parallel && total >= kParallelMin && items > 1)
  for (int64_t w = 0; w < items; ++w) {
    int64_t idx[kMaxDims], off[kMaxArgs];
    if (pieces_per_row > 1) {
      const int64_t row = w / pieces_per_row, begin = (w % pieces_per_row) * kTile;
      row_offsets(row, idx, off);
      for (int a = 0; a < L.nargs; ++a) off[a] += begin * L.strides[a][nd - 1];
      fn(static_cast<const int64_t*>(off), std::min(kTile, inner - begin));
    } else {
      const int64_t r0 = w * rows_per_item, r1 = std::min(rows, r0 + rows_per_item);
      row_offsets(r0, idx, off);
      for (int64_t r = r0; r < r1; ++r) {
        fn(static_cast<const int64_t*>(off), inner);
        // next row: odometer increment of idx over the outer dims, updating the offsets
        for (int d = nd - 2; d >= 0; --d) {
          for (int a = 0; a < L.nargs; ++a) off[a] += L.strides[a][d];
          if (++idx[d] < L.shape[d]) break;
          for (int a = 0; a < L.nargs; ++a) off[a] -= idx[d] * L.strides[a][d];
          idx[d] = 0;
        }
      }
    }
  }
}

// ---- "along one dim" view --------------------------------------------------------------------------
// A contiguous tensor seen as (outer, R, inner) around dim `dim`: element (o, r, j) at
// (o * R + r) * inner + j.
struct DimView {
  int64_t outer = 1, R = 1, inner = 1;
};
inline DimView dim_view(const Shape& shape, int64_t dim) {
  DimView v;
  const int64_t nd = static_cast<int64_t>(shape.size());
  if (dim < 0) dim += nd;
  for (int64_t d = 0; d < nd; ++d) {
    if (d < dim) v.outer *= shape[d];
    else if (d == dim) v.R = shape[d];
    else v.inner *= shape[d];
  }
  return v;
}

// Loads rows (o, :, j0 .. j0+nb) of a contiguous (outer, R, inner) tensor as nb contiguous f32 rows of
// length R (dst is [nb][R]); stores them back the same way.
void gather_rows(float* dst, const Tensor& t, const DimView& v, int64_t o, int64_t j0, int64_t nb);
void scatter_rows(const Tensor& t, const DimView& v, int64_t o, int64_t j0, int64_t nb, const float* src);

// Per-thread scratch that grows and is reused across calls (no allocation in the steady state).
float* scratch(int slot, size_t n);

// ---- kernels ----------------------------------------------------------------------------------------
// cpu_elementwise.cpp
void copy_kernel(OpCall& c);
void fill_kernel(OpCall& c);
void binary_kernel(OpCall& c);
void scalar_kernel(OpCall& c);
void unary_kernel(OpCall& c);
void clamp_kernel(OpCall& c);
void where_kernel(OpCall& c);
// cpu_reduce.cpp
void reduce_kernel(OpCall& c);
void argmax_kernel(OpCall& c);
void topk_kernel(OpCall& c);
void softmax_kernel(OpCall& c);
void l2_normalize_kernel(OpCall& c);
void cross_entropy_kernel(OpCall& c);
void layer_norm_kernel(OpCall& c);
void rms_norm_kernel(OpCall& c);
void batch_norm_kernel(OpCall& c);
// cpu_index.cpp
void embedding_kernel(OpCall& c);
void index_select_kernel(OpCall& c);
void gather_kernel(OpCall& c);
// cpu_matmul.cpp
void matmul_kernel(OpCall& c);
// cpu_conv.cpp
void conv2d_kernel(OpCall& c);
void avg_pool2d_kernel(OpCall& c);
// cpu_attention.cpp
void attention_kernel(OpCall& c);

}  // namespace vislang::cpu_kernels
