// kernels/cpu/cpu_index.cpp — Op::EMBEDDING, INDEX_SELECT, GATHER on the CPU.
//
// Pure data movement: output and source have the same dtype, so elements are copied bit for bit
// (no conversion), rows with memcpy where they are contiguous. Parallel over output rows.
#include <cstring>

#include "kernels/cpu/cpu_common.h"

namespace vislang::cpu_kernels {
namespace {

int64_t wrap_dim(int64_t d, int64_t rank) { return d < 0 ? d + rank : d; }

// dst[i] = src[offsets computed by at(i)] for i < n, elements of T
template <typename T, typename At>
void gather_elems(T* dst, const T* src, int64_t n, At at) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[at(i)];
}

// Calls body(T{}) with T the unsigned integer of the element size: 2 bytes (f16, bf16) or 4 (f32).
template <typename Body>
void with_element_type(int64_t bytes, Body&& body) {
  if (bytes == 2) body(uint16_t{});
  else body(uint32_t{});
}

}  // namespace

// out (.., D) = table (V, D) [ids (..)], ids i32 / i64 in range
void embedding_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& table = c.in[0];
  const Tensor& ids = c.in[1];
  const int64_t n = ids.numel(), D = table.size(1);
  const size_t row_bytes = static_cast<size_t>(D * esize(table));
  const char* pt = byte_ptr(table);
  char* po = byte_ptr(out);
  const void* pid = ids.data_ptr();
#pragma omp parallel for schedule(static) if (n > 1 && n * D >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t row = load_index(pid, ids.dtype(), i);
    std::memcpy(po + i * row_bytes, pt + row * row_bytes, row_bytes);
  }
}

// out (.., n, ..) = in0 (.., S, ..) [strided] indexed along dim i[0] by ids (n)
void index_select_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& ids = c.in[1];
  const int64_t dim = wrap_dim(c.i[0], x.dim());
  const int64_t n = ids.numel();
  if (out.numel() == 0) return;
  // One slice per id: the loop over every other dim, shifted by id * stride[dim] in x.
  Shape slice_shape = out.shape();
  slice_shape[dim] = 1;
  const NdLoop L = make_loop(slice_shape, {&out.strides(), &x.strides()});
  const int64_t slice = L.numel();
  const int64_t es = esize(x);
  const int64_t out_step = out.stride(dim), x_step = x.stride(dim);
  const int64_t so = L.inner_stride(0), sx = L.inner_stride(1);
  char* po = byte_ptr(out);
  const char* px = byte_ptr(x);
  const void* pid = ids.data_ptr();
  auto copy_slice = [&](int64_t j, bool parallel) {
    char* dst = po + j * out_step * es;
    const char* src = px + load_index(pid, ids.dtype(), j) * x_step * es;
    for_each_piece(
        L,
        [&](const int64_t* off, int64_t m) {
          with_element_type(es, [&](auto t) {
            using T = decltype(t);
            T* d = reinterpret_cast<T*>(dst) + off[0];
            const T* s = reinterpret_cast<const T*>(src) + off[1];
            if (so == 1 && sx == 1) std::memcpy(d, s, static_cast<size_t>(m) * sizeof(T));
            else
              for (int64_t i = 0; i < m; ++i) d[i * so] = s[i * sx];
          });
        },
        parallel);
  };
  if (slice >= kParallelMin || n == 1) {  // big slices: each copy is parallel
    for (int64_t j = 0; j < n; ++j) copy_slice(j, true);
  } else {
#pragma omp parallel for schedule(static) if (n * slice >= kParallelMin)
    for (int64_t j = 0; j < n; ++j) copy_slice(j, false);
  }
}

// out (...) [idx] = in0 [idx with idx[dim] = in1 (...) [idx]] along dim i[0]; in0 strided, in1 contig i64
void gather_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& index = c.in[1];
  const int64_t nd = out.dim();
  const int64_t dim = wrap_dim(c.i[0], nd);
  if (out.numel() == 0) return;
  const int64_t inner = out.size(nd - 1), rows = out.numel() / inner;
  const int64_t es = esize(x);
  const Shape& xs = x.strides();
  const int64_t last_step = dim == nd - 1 ? 0 : xs[nd - 1];  // x stride of the inner loop (not the gathered dim)
  const char* px = byte_ptr(x);
  char* po = byte_ptr(out);
  const void* pid = index.data_ptr();
#pragma omp parallel for schedule(static) if (rows > 1 && out.numel() >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    // x offset of this row over the outer dims, leaving out the gathered one
    int64_t rem = r, base = 0;
    for (int64_t d = nd - 2; d >= 0; --d) {
      const int64_t i = rem % out.size(d);
      rem /= out.size(d);
      if (d != dim) base += i * xs[d];
    }
    with_element_type(es, [&](auto t) {
      using T = decltype(t);
      const T* s = reinterpret_cast<const T*>(px);
      gather_elems(reinterpret_cast<T*>(po) + r * inner, s, inner, [&](int64_t j) {
        return base + load_index(pid, index.dtype(), r * inner + j) * xs[dim] + j * last_step;
      });
    });
  }
}

}  // namespace vislang::cpu_kernels
