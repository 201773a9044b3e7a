// kernels/cuda/reduce.cu — CUDA kernels of the ops that reduce along one dim: REDUCE, ARGMAX, TOPK,
// SOFTMAX, L2_NORMALIZE, CROSS_ENTROPY, LAYER_NORM, RMS_NORM.
//
// Design. A contiguous input is viewed as (outer, R, inner) and each of the outer·inner "columns" is
// reduced over R. Column kernels use a 2-D block (TX columns × TY threads per column, TX·TY = 256):
//   inner == 1 (the reduced dim is the last one): TX = 1, TY = 256 — one block per row, reads
//     coalesced along the row;
//   inner  > 1: TX = 32, TY = 8 — 32 neighbouring columns per block, reads coalesced along inner.
// Each thread folds its strided share of R sequentially, then a shared-memory tree over TY combines
// the partials. Float dtypes accumulate in f32; integer sums in int64. Max/min propagate NaN;
// argmax returns the first index of the maximum (NaN counts as the maximum).
// The row ops (cross_entropy, layer_norm, rms_norm) always reduce the last dim: one block per row
// with warp-shuffle block reductions; layer_norm uses two passes (mean, then Σ(x-mean)²).
// TOPK: one block per row, k selection passes, each a block-wide argmax over the elements that come
// after the previous pick in the order (value, then lower index); O(k·n) per row, the row cached in
// shared memory when it fits.
#include <cfloat>
#include <climits>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace vislang::cuda {

namespace {

__device__ __forceinline__ void store_any_f32(void* p, int dt, int64_t i, float v) {
  switch (dt) {
    case int(DType::F32): static_cast<float*>(p)[i] = v; break;
    case int(DType::F16): static_cast<uint16_t*>(p)[i] = f32_to_f16_bits(v); break;
    case int(DType::BF16): static_cast<uint16_t*>(p)[i] = f32_to_bf16_bits(v); break;
    case int(DType::F64): static_cast<double*>(p)[i] = v; break;
    default: break;
  }
}

// Column-tree reduction over threadIdx.y (blockDim.y a power of two); every thread of column
// threadIdx.x gets the result. `sh` holds blockDim.x * blockDim.y values.
template <typename A, typename Op>
__device__ __forceinline__ A column_reduce(A v, A* sh, Op op) {
  const int tx = threadIdx.x, ty = threadIdx.y, TX = blockDim.x, TY = blockDim.y;
  __syncthreads();  // sh may still be read by a previous call
  sh[ty * TX + tx] = v;
  __syncthreads();
  for (int s = TY / 2; s > 0; s >>= 1) {
    if (ty < s) sh[ty * TX + tx] = op(sh[ty * TX + tx], sh[(ty + s) * TX + tx]);
    __syncthreads();
  }
  return sh[tx];
}

struct SumOp {
  template <typename A> __device__ A operator()(A a, A b) const { return a + b; }
};
struct MaxOp {  // NaN propagates
  template <typename A> __device__ A operator()(A a, A b) const { return (a != a || a > b) ? a : b; }
};
struct MinOp {
  template <typename A> __device__ A operator()(A a, A b) const { return (a != a || a < b) ? a : b; }
};

dim3 column_block(int64_t inner) { return inner == 1 ? dim3(1, kThreads) : dim3(32, kThreads / 32); }
unsigned column_grid(int64_t ncols, const dim3& block) {
  int64_t g = (ncols + block.x - 1) / block.x;
  VL_CHECK(g < (int64_t(1) << 31), "cuda: too many reduction columns (", ncols, ")");
  return static_cast<unsigned>(g < 1 ? 1 : g);
}

// ---- REDUCE ---------------------------------------------------------------------------------------------
template <typename T> struct red_acc { using type = float; };
template <> struct red_acc<int32_t> { using type = int64_t; };
template <> struct red_acc<int64_t> { using type = int64_t; };
template <> struct red_acc<uint8_t> { using type = int64_t; };

template <typename A> __device__ __forceinline__ A red_lowest();
template <> __device__ __forceinline__ float red_lowest<float>() { return -INFINITY; }
template <> __device__ __forceinline__ int64_t red_lowest<int64_t>() { return LLONG_MIN; }
template <typename A> __device__ __forceinline__ A red_highest();
template <> __device__ __forceinline__ float red_highest<float>() { return INFINITY; }
template <> __device__ __forceinline__ int64_t red_highest<int64_t>() { return LLONG_MAX; }

template <typename A, typename T> __device__ __forceinline__ A red_load(T v) {
  if constexpr (std::is_same<A, float>::value) return to_f32(v); else return static_cast<int64_t>(v);
}

template <typename T>
__global__ void reduce_kernel(T* out, const T* x, int64_t ncols, int64_t R, int64_t inner, int kind) {
  using A = typename red_acc<T>::type;
  __shared__ A sh[kThreads];
  const int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const bool valid = col < ncols;
  const int64_t o = valid ? col / inner : 0, in = valid ? col - o * inner : 0;
  const T* base = x + o * R * inner + in;
  A acc;
  if (kind == int(ReduceKind::MAX)) acc = red_lowest<A>();
  else if (kind == int(ReduceKind::MIN)) acc = red_highest<A>();
  else acc = A(0);
  if (valid) {
    for (int64_t r = threadIdx.y; r < R; r += blockDim.y) {
      A v = red_load<A>(base[r * inner]);
      if (kind == int(ReduceKind::MAX)) acc = MaxOp()(acc, v);
      else if (kind == int(ReduceKind::MIN)) acc = MinOp()(acc, v);
      else acc += v;
    }
  }
  if (kind == int(ReduceKind::MAX)) acc = column_reduce(acc, sh, MaxOp());
  else if (kind == int(ReduceKind::MIN)) acc = column_reduce(acc, sh, MinOp());
  else acc = column_reduce(acc, sh, SumOp());
  if (threadIdx.y != 0 || !valid) return;
  if (kind == int(ReduceKind::MEAN)) {
    if constexpr (std::is_same<A, float>::value) out[col] = from_f32<T>(acc / static_cast<float>(R));
    else out[col] = from_f64<T>(static_cast<double>(acc) / static_cast<double>(R));
  } else {
    if constexpr (std::is_same<A, float>::value) out[col] = from_f32<T>(acc);
    else out[col] = static_cast<T>(acc);
  }
}

// ---- ARGMAX --------------------------------------------------------------------------------------------
// true when candidate (b, ib) beats the current (a, ia): larger, NaN counts as largest, ties -> lower index.
template <typename A>
__device__ __forceinline__ bool argmax_better(A a, int64_t ia, A b, int64_t ib) {
  bool an = a != a, bn = b != b;
  if (an || bn) return bn && (!an || ib < ia);
  return b > a || (b == a && ib < ia);
}

template <typename T>
__global__ void argmax_kernel(int64_t* out, const T* x, int64_t ncols, int64_t R, int64_t inner) {
  using A = typename red_acc<T>::type;
  __shared__ A sv[kThreads];
  __shared__ int64_t si[kThreads];
  const int tx = threadIdx.x, ty = threadIdx.y, TX = blockDim.x, TY = blockDim.y;
  const int64_t col = blockIdx.x * int64_t(TX) + tx;
  const bool valid = col < ncols;
  const int64_t o = valid ? col / inner : 0, in = valid ? col - o * inner : 0;
  const T* base = x + o * R * inner + in;
  A best = red_lowest<A>();
  int64_t bi = LLONG_MAX;
  if (valid)
    for (int64_t r = ty; r < R; r += TY) {
      A v = red_load<A>(base[r * inner]);
      if (argmax_better(best, bi, v, r)) { best = v; bi = r; }
    }
  sv[ty * TX + tx] = best;
  si[ty * TX + tx] = bi;
  __syncthreads();
  for (int s = TY / 2; s > 0; s >>= 1) {
    if (ty < s) {
      int a = ty * TX + tx, b = (ty + s) * TX + tx;
      if (argmax_better(sv[a], si[a], sv[b], si[b])) { sv[a] = sv[b]; si[a] = si[b]; }
    }
    __syncthreads();
  }
  if (ty == 0 && valid) out[col] = si[tx] == LLONG_MAX ? 0 : si[tx];
}

// ---- SOFTMAX / L2_NORMALIZE -------------------------------------------------------------------------------
template <typename T>
__global__ void softmax_kernel(T* out, const T* x, int64_t ncols, int64_t R, int64_t inner, bool log) {
  __shared__ float sh[kThreads];
  const int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const bool valid = col < ncols;
  const int64_t o = valid ? col / inner : 0, in = valid ? col - o * inner : 0;
  const int64_t base = o * R * inner + in;
  float m = -INFINITY;
  if (valid)
    for (int64_t r = threadIdx.y; r < R; r += blockDim.y) m = MaxOp()(m, to_f32(x[base + r * inner]));
  m = column_reduce(m, sh, MaxOp());
  float s = 0.f;
  if (valid)
    for (int64_t r = threadIdx.y; r < R; r += blockDim.y) s += expf(to_f32(x[base + r * inner]) - m);
  s = column_reduce(s, sh, SumOp());
  if (!valid) return;
  if (log) {
    float ls = logf(s);
    for (int64_t r = threadIdx.y; r < R; r += blockDim.y)
      out[base + r * inner] = from_f32<T>(to_f32(x[base + r * inner]) - m - ls);
  } else {
    float inv = 1.0f / s;
    for (int64_t r = threadIdx.y; r < R; r += blockDim.y)
      out[base + r * inner] = from_f32<T>(expf(to_f32(x[base + r * inner]) - m) * inv);
  }
}

template <typename T>
__global__ void l2norm_kernel(T* out, const T* x, int64_t ncols, int64_t R, int64_t inner, float eps) {
  __shared__ float sh[kThreads];
  const int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const bool valid = col < ncols;
  const int64_t o = valid ? col / inner : 0, in = valid ? col - o * inner : 0;
  const int64_t base = o * R * inner + in;
  float ss = 0.f;
  if (valid)
    for (int64_t r = threadIdx.y; r < R; r += blockDim.y) {
      float v = to_f32(x[base + r * inner]);
      ss += v * v;
    }
  ss = column_reduce(ss, sh, SumOp());
  if (!valid) return;
  float nrm = sqrtf(ss);
  float den = nrm > eps ? nrm : eps;
  for (int64_t r = threadIdx.y; r < R; r += blockDim.y)
    out[base + r * inner] = from_f32<T>(to_f32(x[base + r * inner]) / den);
}

// ---- TOPK ------------------------------------------------------------------------------------------------
template <typename T> struct key_of { using type = float; };
template <> struct key_of<int32_t> { using type = int64_t; };
template <> struct key_of<int64_t> { using type = int64_t; };
template <> struct key_of<uint8_t> { using type = int64_t; };
template <typename K, typename T> __device__ __forceinline__ K key_load(T v) {
  if constexpr (std::is_same<K, float>::value) return to_f32(v); else return static_cast<int64_t>(v);
}

// True when (a, ia) comes before (b, ib) in the output order. largest: descending with NaN first;
// smallest: ascending with NaN last; equal values: lower index first.
template <typename K>
__device__ __forceinline__ bool topk_before(bool largest, K a, int64_t ia, K b, int64_t ib) {
  bool an = a != a, bn = b != b;
  if (an != bn) return largest ? an : bn;
  if (!an && a != b) return largest ? a > b : a < b;
  return ia < ib;
}

constexpr int kTopkThreads = 256;
constexpr size_t kTopkCacheBytes = 32 * 1024;

template <typename T>
__global__ void __launch_bounds__(kTopkThreads) topk_kernel(T* vals, int64_t* idxs, const T* x, int64_t n,
                                                            int64_t inner, int64_t k, bool largest, bool cached) {
  using K = typename key_of<T>::type;
  extern __shared__ __align__(16) unsigned char topk_smem[];
  __shared__ K sk[kTopkThreads];
  __shared__ int64_t si[kTopkThreads];
  __shared__ K prev_k;
  __shared__ int64_t prev_i;
  const int tid = threadIdx.x;
  const int64_t row = blockIdx.x, o = row / inner, in = row - o * inner;
  const T* src = x + o * n * inner + in;
  T* cache = reinterpret_cast<T*>(topk_smem);
  if (cached) {
    for (int64_t r = tid; r < n; r += kTopkThreads) cache[r] = src[r * inner];
    __syncthreads();
  }
  for (int64_t t = 0; t < k; ++t) {
    K bk = K(0);
    int64_t bi = -1;
    const bool first = t == 0;
    const K pk = first ? K(0) : prev_k;
    const int64_t pi = first ? -1 : prev_i;
    for (int64_t r = tid; r < n; r += kTopkThreads) {
      K v = key_load<K>(cached ? cache[r] : src[r * inner]);
      if (!first && !topk_before(largest, pk, pi, v, r)) continue;  // already picked
      if (bi < 0 || topk_before(largest, v, r, bk, bi)) { bk = v; bi = r; }
    }
    sk[tid] = bk;
    si[tid] = bi;
    __syncthreads();
    for (int s = kTopkThreads / 2; s > 0; s >>= 1) {
      if (tid < s) {
        K ck = sk[tid + s];
        int64_t ci = si[tid + s];
        if (ci >= 0 && (si[tid] < 0 || topk_before(largest, ck, ci, sk[tid], si[tid]))) {
          sk[tid] = ck;
          si[tid] = ci;
        }
      }
      __syncthreads();
    }
    if (tid == 0) {
      int64_t b = si[0];
      vals[(o * k + t) * inner + in] = cached ? cache[b] : src[b * inner];
      idxs[(o * k + t) * inner + in] = b;
      prev_k = sk[0];
      prev_i = b;
    }
    __syncthreads();
  }
}

// ---- row ops: CROSS_ENTROPY, LAYER_NORM, RMS_NORM ---------------------------------------------------------------
int row_threads(int64_t C) {
  int64_t t = (C + 31) / 32 * 32;
  return static_cast<int>(t < 32 ? 32 : (t > kThreads ? kThreads : t));
}

template <typename T>
__global__ void cross_entropy_kernel(void* out, int out_dt, const T* x, const void* targets, bool t_i32, int64_t C,
                                     int64_t ignore_index) {
  __shared__ float sh[32];
  const int64_t n = blockIdx.x;
  const T* row = x + n * C;
  const int64_t t = load_index(targets, t_i32, n);
  if (t == ignore_index) {  // uniform across the block
    if (threadIdx.x == 0) store_any_f32(out, out_dt, n, 0.f);
    return;
  }
  float m = -INFINITY;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    m = MaxOp()(m, to_f32(row[c]));
  }
  m = block_max(m, sh);
  float s = 0.f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += expf(to_f32(row[c]) - m);
  s = block_sum(s, sh);
  if (threadIdx.x == 0) {
    float xt = (t >= 0 && t < C) ? to_f32(row[t]) : NAN;
    store_any_f32(out, out_dt, n, m + logf(s) - xt);
  }
}

template <typename T>
__global__ void layer_norm_kernel(T* out, const T* x, const void* w, const void* b, int w_dt, int b_dt, int64_t C,
                                  float eps) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * C;
  T* yr = out + row * C;
  float s = 0.f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += to_f32(xr[c]);
  const float mean = block_sum(s, sh) / static_cast<float>(C);
  float v = 0.f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float d = to_f32(xr[c]) - mean;
    v += d * d;
  }
  const float var = block_sum(v, sh) / static_cast<float>(C);
  const float rstd = 1.0f / sqrtf(var + eps);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float y = (to_f32(xr[c]) - mean) * rstd;
    if (w) y *= load_any_f32(w, w_dt, c);
    if (b) y += load_any_f32(b, b_dt, c);
    yr[c] = from_f32<T>(y);
  }
}

template <typename T>
__global__ void rms_norm_kernel(T* out, const T* x, const void* w, int w_dt, int64_t C, float eps) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * C;
  T* yr = out + row * C;
  float s = 0.f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float v = to_f32(xr[c]);
    s += v * v;
  }
  const float r = 1.0f / sqrtf(block_sum(s, sh) / static_cast<float>(C) + eps);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    float y = to_f32(xr[c]) * r;
    if (w) y *= load_any_f32(w, w_dt, c);
    yr[c] = from_f32<T>(y);
  }
}

int64_t wrap(int64_t d, int64_t n) { return d < 0 ? d + n : d; }
unsigned rows_grid(int64_t rows) {
  VL_CHECK(rows < (int64_t(1) << 31), "cuda: too many rows (", rows, ")");
  return static_cast<unsigned>(rows);
}

}  // namespace

// ---- entry points --------------------------------------------------------------------------------------
void reduce(OpCall& c) {
  Tensor x = c.in[0].contiguous();
  const Tensor& out = c.out[0];
  RowLayout l = row_layout(x.shape(), wrap(c.i[1], x.dim()));
  int64_t ncols = l.outer * l.inner;
  if (ncols == 0) return;
  dim3 block = column_block(l.inner);
  dispatch_numeric(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    reduce_kernel<T><<<column_grid(ncols, block), block>>>(out.data<T>(), x.data<T>(), ncols, l.R, l.inner,
                                                           int(c.i[0]));
    VL_CUDA_LAUNCH_CHECK("reduce");
  });
}

void argmax(OpCall& c) {
  Tensor x = c.in[0].contiguous();
  const Tensor& out = c.out[0];
  RowLayout l = row_layout(x.shape(), wrap(c.i[1], x.dim()));
  int64_t ncols = l.outer * l.inner;
  if (ncols == 0) return;
  dim3 block = column_block(l.inner);
  dispatch_numeric(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    argmax_kernel<T><<<column_grid(ncols, block), block>>>(out.data<int64_t>(), x.data<T>(), ncols, l.R, l.inner);
    VL_CUDA_LAUNCH_CHECK("argmax");
  });
}

void topk(OpCall& c) {
  Tensor x = c.in[0].contiguous();
  const Tensor& vals = c.out[0];
  const Tensor& idxs = c.out[1];
  RowLayout l = row_layout(x.shape(), wrap(c.i[0], x.dim()));
  int64_t k = c.i[1], rows = l.outer * l.inner;
  if (rows == 0 || k == 0) return;
  dispatch_numeric(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    size_t bytes = static_cast<size_t>(l.R) * sizeof(T);
    bool cached = bytes <= kTopkCacheBytes;
    topk_kernel<T><<<rows_grid(rows), kTopkThreads, cached ? bytes : 0>>>(vals.data<T>(), idxs.data<int64_t>(),
                                                                          x.data<T>(), l.R, l.inner, k, c.i[2] != 0,
                                                                          cached);
    VL_CUDA_LAUNCH_CHECK("topk");
  });
}

void softmax(OpCall& c) {
  Tensor x = c.in[0].contiguous();
  const Tensor& out = c.out[0];
  RowLayout l = row_layout(x.shape(), wrap(c.i[0], x.dim()));
  int64_t ncols = l.outer * l.inner;
  if (ncols == 0 || l.R == 0) return;
  dim3 block = column_block(l.inner);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    softmax_kernel<T><<<column_grid(ncols, block), block>>>(out.data<T>(), x.data<T>(), ncols, l.R, l.inner,
                                                            c.i[1] != 0);
    VL_CUDA_LAUNCH_CHECK("softmax");
  });
}

void l2_normalize(OpCall& c) {
  Tensor x = c.in[0].contiguous();
  const Tensor& out = c.out[0];
  RowLayout l = row_layout(x.shape(), wrap(c.i[0], x.dim()));
  int64_t ncols = l.outer * l.inner;
  if (ncols == 0 || l.R == 0) return;
  dim3 block = column_block(l.inner);
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    l2norm_kernel<T><<<column_grid(ncols, block), block>>>(out.data<T>(), x.data<T>(), ncols, l.R, l.inner, c.f[0]);
    VL_CUDA_LAUNCH_CHECK("l2_normalize");
  });
}

void cross_entropy(OpCall& c) {
  Tensor x = c.in[0].contiguous();  // (N, C)
  Tensor tg = c.in[1].contiguous();  // (N)
  const Tensor& out = c.out[0];
  int64_t N = x.size(0), C = x.size(1);
  if (N == 0) return;
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cross_entropy_kernel<T><<<rows_grid(N), row_threads(C)>>>(out.data_ptr(), int(out.dtype()), x.data<T>(),
                                                             tg.data_ptr(), tg.dtype() == DType::I32, C, c.i[0]);
    VL_CUDA_LAUNCH_CHECK("cross_entropy");
  });
}

void layer_norm(OpCall& c) {
  Tensor x = c.in[0].contiguous();
  const Tensor& out = c.out[0];
  Tensor w = c.input(1).defined() ? c.input(1).contiguous() : Tensor();
  Tensor b = c.input(2).defined() ? c.input(2).contiguous() : Tensor();
  int64_t C = x.dim() ? x.size(-1) : 1, rows = C ? x.numel() / C : 0;
  if (rows == 0) return;
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    layer_norm_kernel<T><<<rows_grid(rows), row_threads(C)>>>(
        out.data<T>(), x.data<T>(), w.defined() ? w.data_ptr() : nullptr, b.defined() ? b.data_ptr() : nullptr,
        w.defined() ? int(w.dtype()) : 0, b.defined() ? int(b.dtype()) : 0, C, c.f[0]);
    VL_CUDA_LAUNCH_CHECK("layer_norm");
  });
}

void rms_norm(OpCall& c) {
  Tensor x = c.in[0].contiguous();
  const Tensor& out = c.out[0];
  Tensor w = c.input(1).defined() ? c.input(1).contiguous() : Tensor();
  int64_t C = x.dim() ? x.size(-1) : 1, rows = C ? x.numel() / C : 0;
  if (rows == 0) return;
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    rms_norm_kernel<T><<<rows_grid(rows), row_threads(C)>>>(out.data<T>(), x.data<T>(),
                                                           w.defined() ? w.data_ptr() : nullptr,
                                                           w.defined() ? int(w.dtype()) : 0, C, c.f[0]);
    VL_CUDA_LAUNCH_CHECK("rms_norm");
  });
}

}  // namespace vislang::cuda
