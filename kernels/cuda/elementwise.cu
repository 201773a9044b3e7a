// kernels/cuda/elementwise.cu — CUDA kernels of the elementwise and indexing ops: COPY, FILL, BINARY,
// SCALAR, UNARY, CLAMP, WHERE, EMBEDDING, INDEX_SELECT, GATHER.
//
// Design: one generic grid-stride kernel (ew_kernel) walks the output's elements and asks a
// StridedIter (cuda_common.cuh) for each operand's element offset, so views, transposes and
// zero-stride broadcasts need no copies; after coalescing a contiguous op takes the fast path
// (offset = index). The op itself is a small functor. Float dtypes compute in f32 and round once
// on store; integer dtypes compute in double like the reference (i64 add/sub/mul/max/min stay in
// int64 so all 64 bits are exact). The indexing ops move raw element bits, so they serve every dtype.
// Reference: kernels/backend.cpp (apply_unary_ref / apply_binary_ref), core/dtype.h (casts).
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace vislang::cuda {

namespace {

// ---- generic launcher ------------------------------------------------------------------------------
template <int K, typename F>
__global__ void ew_kernel(int64_t n, StridedIter<K> it, F f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[K];
    iter_offsets(it, i, off);
    f(off);
  }
}

template <int K>
bool try_iter(const Shape& shape, const Tensor* const (&ts)[K], StridedIter<K>& it) {
  const Shape* st[K];
  for (int k = 0; k < K; ++k) st[k] = &ts[k]->strides();
  return make_iter<K>(shape, st, it);
}

// Iterator over `out` (contiguous) and its inputs. Inputs that do not coalesce into kMaxDims dims
// together with out (rare: high-rank permuted views) are replaced by contiguous copies first.
template <int K>
StridedIter<K> iter_over(const char* op, const Tensor& out, Tensor* const (&ins)[K - 1]) {
  const Tensor* ts[K];
  ts[0] = &out;
  for (int k = 0; k + 1 < K; ++k) ts[k + 1] = ins[k];
  StridedIter<K> it;
  if (try_iter<K>(out.shape(), ts, it)) return it;
  for (Tensor* t : ins) *t = t->contiguous();
  VL_CHECK(try_iter<K>(out.shape(), ts, it), "cuda ", op, ": cannot iterate over ", shape_str(out.shape()));
  return it;
}

template <int K, typename F>
void launch_ew(const char* name, int64_t n, const StridedIter<K>& it, const F& f) {
  if (n <= 0) return;
  ew_kernel<K, F><<<grid_for(n), kThreads>>>(n, it, f);
  VL_CUDA_LAUNCH_CHECK(name);
}

// Input `t` as dtype `dt` (a converted contiguous copy when it differs; a no-op view otherwise).
Tensor as_dtype(const Tensor& t, DType dt) { return t.dtype() == dt ? t : t.to(dt); }
Tensor expanded(const Tensor& t, const Shape& s) { return t.shape() == s ? t : t.expand(s); }

// Raw element types by byte size, for ops that only move bits.
template <typename F>
void dispatch_raw(size_t esize, F&& f) {
  switch (esize) {
    case 1: f(uint8_t{}); break;
    case 2: f(uint16_t{}); break;
    case 4: f(uint32_t{}); break;
    case 8: f(uint64_t{}); break;
    default: VL_FAIL("cuda: unsupported element size ", esize);
  }
}

// ---- scalar math (the formulas of kernels/backend.cpp) ---------------------------------------------------
__device__ __forceinline__ float m_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double m_pow(double a, double b) { return pow(a, b); }

template <typename A>
__device__ __forceinline__ A apply_binary(int k, A a, A b) {
  switch (k) {
    case int(BinaryKind::ADD): return a + b;
    case int(BinaryKind::SUB): return a - b;
    case int(BinaryKind::MUL): return a * b;
    case int(BinaryKind::DIV): return a / b;
    case int(BinaryKind::MAX): return (a != a || a > b) ? a : b;  // NaN propagates like torch.maximum
    case int(BinaryKind::MIN): return (a != a || a < b) ? a : b;
    case int(BinaryKind::POW): return m_pow(a, b);
    default: return a;
  }
}
// int64 add/sub/mul/max/min exactly (wrapping, no UB); true for the kinds handled here.
__device__ __forceinline__ bool apply_binary_i64(int k, int64_t a, int64_t b, int64_t& r) {
  switch (k) {
    case int(BinaryKind::ADD): r = static_cast<int64_t>(uint64_t(a) + uint64_t(b)); return true;
    case int(BinaryKind::SUB): r = static_cast<int64_t>(uint64_t(a) - uint64_t(b)); return true;
    case int(BinaryKind::MUL): r = static_cast<int64_t>(uint64_t(a) * uint64_t(b)); return true;
    case int(BinaryKind::MAX): r = a > b ? a : b; return true;
    case int(BinaryKind::MIN): r = a < b ? a : b; return true;
    default: return false;
  }
}

// ---- functors -----------------------------------------------------------------------------------
template <typename D, typename S>
struct CopyF {
  D* out;
  const S* in;
  __device__ void operator()(const int64_t (&o)[2]) const { out[o[0]] = cast_to<D>(in[o[1]]); }
};
template <typename R>
struct FillF {
  R* out;
  R value;
  __device__ void operator()(const int64_t (&o)[1]) const { out[o[0]] = value; }
};
template <typename T>
struct BinaryF {
  T* out;
  const T* a;
  const T* b;
  int kind;
  __device__ void operator()(const int64_t (&o)[3]) const {
    if constexpr (std::is_same<T, int64_t>::value) {
      int64_t r;
      if (apply_binary_i64(kind, a[o[1]], b[o[2]], r)) { out[o[0]] = r; return; }
    }
    out[o[0]] = store_acc<T>(apply_binary(kind, load_acc(a[o[1]]), load_acc(b[o[2]])));
  }
};
template <typename T>
struct ScalarF {
  T* out;
  const T* a;
  acc_t<T> s;
  int kind;
  bool reverse;
  __device__ void operator()(const int64_t (&o)[2]) const {
    acc_t<T> x = load_acc(a[o[1]]);
    out[o[0]] = store_acc<T>(reverse ? apply_binary(kind, s, x) : apply_binary(kind, x, s));
  }
};
template <typename T>
struct UnaryF {
  T* out;
  const T* a;
  int kind;
  __device__ void operator()(const int64_t (&o)[2]) const {
    out[o[0]] = from_f32<T>(apply_unary(kind, to_f32(a[o[1]])));
  }
};
// Integer UNARY: the kinds the front-end allows on integers (neg, abs, relu, square), in the integer type.
template <typename T>
struct UnaryIntF {
  T* out;
  const T* a;
  int kind;
  __device__ void operator()(const int64_t (&o)[2]) const {
    const T x = a[o[1]];
    T r = x;
    switch (kind) {
      case int(UnaryKind::NEG): r = static_cast<T>(-x); break;
      case int(UnaryKind::ABS):
        if constexpr (std::is_signed<T>::value) r = x < T(0) ? static_cast<T>(-x) : x;
        break;
      case int(UnaryKind::RELU): r = x > T(0) ? x : T(0); break;
      case int(UnaryKind::SQUARE): r = static_cast<T>(x * x); break;
      default: break;
    }
    out[o[0]] = r;
  }
};
template <typename T>
struct ClampF {
  T* out;
  const T* a;
  acc_t<T> lo, hi;
  __device__ void operator()(const int64_t (&o)[2]) const {
    acc_t<T> x = load_acc(a[o[1]]);
    x = x < lo ? lo : x;  // NaN stays NaN (both comparisons false)
    x = x > hi ? hi : x;
    out[o[0]] = store_acc<T>(x);
  }
};
template <typename R>
struct WhereF {
  R* out;
  const uint8_t* cond;
  const R* a;
  const R* b;
  __device__ void operator()(const int64_t (&o)[4]) const { out[o[0]] = cond[o[1]] ? a[o[2]] : b[o[3]]; }
};

}  // namespace

// ---- entry points -------------------------------------------------------------------------------------
// COPY and FILL: the output may be strided too. More than kMaxDims dims that do not coalesce (rare:
// high-rank permuted views) are split along dim 0, recursively.
static void copy_tensor(const Tensor& out, const Tensor& in_) {
  Tensor in = expanded(in_, out.shape());
  const Tensor* ts[2] = {&out, &in};
  StridedIter<2> it;
  if (!try_iter<2>(out.shape(), ts, it)) {
    for (int64_t i = 0; i < out.size(0); ++i) copy_tensor(out.select(0, i), in.select(0, i));
    return;
  }
  const int64_t n = out.numel();
  if (in.dtype() == out.dtype()) {  // bit copy (keeps NaN payloads)
    dispatch_raw(out.element_size(), [&](auto tag) {
      using R = decltype(tag);
      launch_ew("copy", n, it, CopyF<R, R>{out.data<R>(), in.data<R>()});
    });
    return;
  }
  dispatch_all(out.dtype(), [&](auto dtag) {
    using D = decltype(dtag);
    dispatch_all(in.dtype(), [&](auto stag) {
      using S = decltype(stag);
      launch_ew("copy_cast", n, it, CopyF<D, S>{out.data<D>(), in.data<S>()});
    });
  });
}
void copy(OpCall& c) { copy_tensor(c.out[0], c.in[0]); }

static void fill_tensor(const Tensor& out, uint64_t bits) {
  const Tensor* ts[1] = {&out};
  StridedIter<1> it;
  if (!try_iter<1>(out.shape(), ts, it)) {
    for (int64_t i = 0; i < out.size(0); ++i) fill_tensor(out.select(0, i), bits);
    return;
  }
  dispatch_raw(out.element_size(), [&](auto tag) {
    using R = decltype(tag);
    R v;
    std::memcpy(&v, &bits, sizeof(R));
    launch_ew("fill", out.numel(), it, FillF<R>{out.data<R>(), v});
  });
}
void fill(OpCall& c) {
  uint64_t bits = 0;  // the value in out's dtype, converted on the host by core/dtype.h
  store_from_f64(&bits, c.out[0].dtype(), static_cast<double>(c.f[0]));
  fill_tensor(c.out[0], bits);
}

void binary(OpCall& c) {
  const Tensor& out = c.out[0];
  Tensor a = expanded(as_dtype(c.in[0], out.dtype()), out.shape());
  Tensor b = expanded(as_dtype(c.in[1], out.dtype()), out.shape());
  Tensor* ins[] = {&a, &b};
  auto it = iter_over<3>("binary", out, ins);
  dispatch_numeric(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch_ew("binary", out.numel(), it, BinaryF<T>{out.data<T>(), a.data<T>(), b.data<T>(), int(c.i[0])});
  });
}

void scalar(OpCall& c) {
  const Tensor& out = c.out[0];
  Tensor a = expanded(as_dtype(c.in[0], out.dtype()), out.shape());
  Tensor* ins[] = {&a};
  auto it = iter_over<2>("scalar", out, ins);
  dispatch_numeric(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch_ew("scalar", out.numel(), it,
              ScalarF<T>{out.data<T>(), a.data<T>(), static_cast<acc_t<T>>(c.f[0]), int(c.i[0]), c.i[1] != 0});
  });
}

void unary(OpCall& c) {
  const Tensor& out = c.out[0];
  Tensor a = expanded(as_dtype(c.in[0], out.dtype()), out.shape());
  Tensor* ins[] = {&a};
  auto it = iter_over<2>("unary", out, ins);
  dispatch_numeric(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (is_floatish<T>::value)
      launch_ew("unary", out.numel(), it, UnaryF<T>{out.data<T>(), a.data<T>(), int(c.i[0])});
    else
      launch_ew("unary_int", out.numel(), it, UnaryIntF<T>{out.data<T>(), a.data<T>(), int(c.i[0])});
  });
}

void clamp(OpCall& c) {
  const Tensor& out = c.out[0];
  Tensor a = expanded(as_dtype(c.in[0], out.dtype()), out.shape());
  Tensor* ins[] = {&a};
  auto it = iter_over<2>("clamp", out, ins);
  dispatch_numeric(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    launch_ew("clamp", out.numel(), it,
              ClampF<T>{out.data<T>(), a.data<T>(), static_cast<acc_t<T>>(c.f[0]), static_cast<acc_t<T>>(c.f[1])});
  });
}

void where(OpCall& c) {
  const Tensor& out = c.out[0];
  Tensor cond = expanded(as_dtype(c.in[0], DType::U8), out.shape());
  Tensor a = expanded(as_dtype(c.in[1], out.dtype()), out.shape());
  Tensor b = expanded(as_dtype(c.in[2], out.dtype()), out.shape());
  Tensor* ins[] = {&cond, &a, &b};
  auto it = iter_over<4>("where", out, ins);
  dispatch_raw(out.element_size(), [&](auto tag) {
    using R = decltype(tag);
    launch_ew("where", out.numel(), it, WhereF<R>{out.data<R>(), cond.data<uint8_t>(), a.data<R>(), b.data<R>()});
  });
}

// ---- indexing ---------------------------------------------------------------------------------------
namespace {

// out (n, D) contiguous = table[ids] with table (V, D) of strides (s0, s1). Out-of-range ids
// (a contract violation) write zero bits instead of faulting the context.
template <typename R>
__global__ void embedding_kernel(R* out, const R* table, const void* ids, bool ids_i32, int64_t n, int64_t D,
                                 int64_t V, int64_t s0, int64_t s1) {
  int64_t total = n * D;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t i = e / D, d = e - i * D;
    int64_t id = load_index(ids, ids_i32, i);
    out[e] = (id >= 0 && id < V) ? table[id * s0 + d * s1] : R{};
  }
}

// Output coordinates of a contiguous tensor of `shape`, mapped to the input's strides with the
// coordinate along `dim` replaced by an index: INDEX_SELECT (ids[coord]) and GATHER (idx[e]).
struct IndexDesc {
  int ndim, dim;
  int64_t shape[kMaxIndexDims];
  int64_t in_stride[kMaxIndexDims];
  int64_t in_size_dim;  // size of the input along dim (range check)
};
template <typename R>
__global__ void index_kernel(R* out, const R* in, const void* idx, bool idx_i32, bool gather, int64_t total,
                             IndexDesc d) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = e, off = 0, id = 0;
    bool ok = true;
#pragma unroll
    for (int k = kMaxIndexDims - 1; k >= 0; --k) {
      if (k < d.ndim) {
        int64_t q = r / d.shape[k], cidx = r - q * d.shape[k];
        r = q;
        if (k == d.dim) {
          id = gather ? load_index(idx, idx_i32, e) : load_index(idx, idx_i32, cidx);
          ok = id >= 0 && id < d.in_size_dim;
          off += id * d.in_stride[k];
        } else {
          off += cidx * d.in_stride[k];
        }
      }
    }
    out[e] = ok ? in[off] : R{};
  }
}

void launch_index(const char* name, const Tensor& out, const Tensor& in, const Tensor& idx, int64_t dim, bool gather) {
  int64_t total = out.numel();
  if (total == 0) return;
  VL_CHECK(out.dim() <= kMaxIndexDims, "cuda ", name, ": more than ", kMaxIndexDims, " dims");
  IndexDesc d{};
  d.ndim = static_cast<int>(out.dim());
  d.dim = static_cast<int>(dim);
  for (int k = 0; k < d.ndim; ++k) {
    d.shape[k] = out.shape()[k];
    d.in_stride[k] = in.strides()[k];
  }
  d.in_size_dim = in.shape()[dim];
  bool i32 = idx.dtype() == DType::I32;
  dispatch_raw(out.element_size(), [&](auto tag) {
    using R = decltype(tag);
    index_kernel<R><<<grid_for(total), kThreads>>>(out.data<R>(), in.data<R>(), idx.data_ptr(), i32, gather, total, d);
    VL_CUDA_LAUNCH_CHECK(name);
  });
}

}  // namespace

void embedding(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& table = c.in[0];  // (V, D)
  Tensor ids = c.in[1].contiguous();
  int64_t n = ids.numel(), V = table.size(0), D = table.size(1);
  if (n * D == 0) return;
  bool i32 = ids.dtype() == DType::I32;
  dispatch_raw(out.element_size(), [&](auto tag) {
    using R = decltype(tag);
    embedding_kernel<R><<<grid_for(n * D), kThreads>>>(out.data<R>(), table.data<R>(), ids.data_ptr(), i32, n, D, V,
                                                      table.stride(0), table.stride(1));
    VL_CUDA_LAUNCH_CHECK("embedding");
  });
}

void index_select(OpCall& c) {
  const Tensor& in = c.in[0];
  int64_t dim = c.i[0] < 0 ? c.i[0] + in.dim() : c.i[0];
  launch_index("index_select", c.out[0], in, c.in[1].contiguous(), dim, false);
}

void gather(OpCall& c) {
  const Tensor& in = c.in[0];
  int64_t dim = c.i[0] < 0 ? c.i[0] + in.dim() : c.i[0];
  launch_index("gather", c.out[0], in, c.in[1].contiguous(), dim, true);
}

}  // namespace vislang::cuda
