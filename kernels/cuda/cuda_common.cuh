// kernels/cuda/cuda_common.cuh — what every CUDA kernel file of vislang shares: error checks, the
// device guard, element types and their exact conversions, strided-iteration descriptors and
// block reductions.
//
// Where it sits: kernels/backend.h dispatches an OpCall to cuda_backend() (backend.cu), whose find()
// returns one of the entry points declared in cuda_ops.h; those live in elementwise.cu, reduce.cu,
// matmul.cu, conv.cu and attention.cu and use the helpers below. Everything runs on the legacy
// default stream of the tensor's device, so kernels, cuBLAS calls and cudaMemcpy are ordered and the
// caching allocator (runtime.cu) can hand a freed block to the next op without extra events.
//
// Conventions: f16 / bf16 are stored as raw 16-bit patterns (like core/dtype.h) and wrapped in the
// tag types f16_t / bf16_t so templates can tell them apart; every float kernel computes in f32 and
// rounds to nearest even once, on store. Strides and offsets are in elements.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "core/error.h"
#include "core/tensor.h"
#include "kernels/backend.h"

// ---- error checks ----------------------------------------------------------------------------------
// VL_CUDA_CHECK(cudaMalloc(...)) throws vislang::Error naming the call and cudaGetErrorString.
#define VL_CUDA_CHECK(call)                                                                         \
  do {                                                                                              \
    cudaError_t vl_err_ = (call);                                                                   \
    if (vl_err_ != cudaSuccess)                                                                     \
      VL_FAIL("cuda: ", #call, " failed: ", cudaGetErrorString(vl_err_), " (", __FILE__, ":", __LINE__, ")"); \
  } while (0)

// After every <<<...>>> launch: reports a bad launch configuration at once; with VISLANG_CUDA_SYNC=1
// in the environment it also synchronizes, so an asynchronous fault is reported by the kernel that
// caused it (slow; for debugging and for scripts/gpu_check.sh).
#define VL_CUDA_LAUNCH_CHECK(name) ::vislang::cuda::check_launch(name, __FILE__, __LINE__)

namespace vislang::cuda {

bool sync_after_launch();  // VISLANG_CUDA_SYNC=1 (read once; runtime.cu)

inline void check_launch(const char* name, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    VL_FAIL("cuda: launch of kernel ", name, " failed: ", cudaGetErrorString(e), " (", file, ":", line, ")");
  if (sync_after_launch()) {
    e = cudaDeviceSynchronize();
    if (e != cudaSuccess)
      VL_FAIL("cuda: kernel ", name, " failed: ", cudaGetErrorString(e), " (", file, ":", line, ")");
  }
}

// Makes `index` the current device for the scope; restores the previous one (never throws on exit).
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    VL_CUDA_CHECK(cudaGetDevice(&prev_));
    if (prev_ != index) {
      VL_CUDA_CHECK(cudaSetDevice(index));
      switched_ = true;
    }
  }
  ~DeviceGuard() {
    if (switched_) cudaSetDevice(prev_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool switched_ = false;
};

// ---- launch geometry ---------------------------------------------------------------------------------
constexpr int kThreads = 256;
inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  const int64_t kMax = int64_t(1) << 20;  // grid-stride loops cover the rest
  if (b > kMax) b = kMax;
  if (b < 1) b = 1;
  return static_cast<unsigned>(b);
}

// ---- element types ---------------------------------------------------------------------------------
struct f16_t { uint16_t bits; };
struct bf16_t { uint16_t bits; };

template <typename T> struct is_floatish : std::false_type {};  // stored float: computes in f32
template <> struct is_floatish<float> : std::true_type {};
template <> struct is_floatish<f16_t> : std::true_type {};
template <> struct is_floatish<bf16_t> : std::true_type {};

__device__ __forceinline__ float f16_bits_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ uint16_t f32_to_f16_bits(float f) {
  if (f != f) return static_cast<uint16_t>(((__float_as_uint(f) >> 16) & 0x8000u) | 0x7e00u);  // as core/dtype.h
  return __half_as_ushort(__float2half_rn(f));  // IEEE round-to-nearest-even, subnormals, overflow -> inf
}
__device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }
__device__ __forceinline__ uint16_t f32_to_bf16_bits(float f) {  // bit-exact copy of core/dtype.h
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// to_f32 / from_f32: the compute path of float kernels (f32, f16, bf16 storage).
__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(f16_t v) { return f16_bits_to_f32(v.bits); }
__device__ __forceinline__ float to_f32(bf16_t v) { return bf16_bits_to_f32(v.bits); }
__device__ __forceinline__ float to_f32(double v) { return static_cast<float>(v); }
__device__ __forceinline__ float to_f32(int32_t v) { return static_cast<float>(static_cast<double>(v)); }
__device__ __forceinline__ float to_f32(int64_t v) { return static_cast<float>(static_cast<double>(v)); }
__device__ __forceinline__ float to_f32(uint8_t v) { return static_cast<float>(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ f16_t from_f32<f16_t>(float v) { return f16_t{f32_to_f16_bits(v)}; }
template <> __device__ __forceinline__ bf16_t from_f32<bf16_t>(float v) { return bf16_t{f32_to_bf16_bits(v)}; }
template <> __device__ __forceinline__ double from_f32<double>(float v) { return v; }
template <> __device__ __forceinline__ int32_t from_f32<int32_t>(float v) { return static_cast<int32_t>(v); }
template <> __device__ __forceinline__ int64_t from_f32<int64_t>(float v) { return static_cast<int64_t>(v); }
template <> __device__ __forceinline__ uint8_t from_f32<uint8_t>(float v) { return static_cast<uint8_t>(v); }

// to_f64 / from_f64: the compute path of integer kernels (exact like the reference's double math).
__device__ __forceinline__ double to_f64(float v) { return v; }
__device__ __forceinline__ double to_f64(f16_t v) { return f16_bits_to_f32(v.bits); }
__device__ __forceinline__ double to_f64(bf16_t v) { return bf16_bits_to_f32(v.bits); }
__device__ __forceinline__ double to_f64(double v) { return v; }
__device__ __forceinline__ double to_f64(int32_t v) { return v; }
__device__ __forceinline__ double to_f64(int64_t v) { return static_cast<double>(v); }
__device__ __forceinline__ double to_f64(uint8_t v) { return v; }

template <typename T> __device__ __forceinline__ T from_f64(double v);
template <> __device__ __forceinline__ float from_f64<float>(double v) { return static_cast<float>(v); }
template <> __device__ __forceinline__ f16_t from_f64<f16_t>(double v) { return from_f32<f16_t>(float(v)); }
template <> __device__ __forceinline__ bf16_t from_f64<bf16_t>(double v) { return from_f32<bf16_t>(float(v)); }
template <> __device__ __forceinline__ double from_f64<double>(double v) { return v; }
template <> __device__ __forceinline__ int32_t from_f64<int32_t>(double v) { return static_cast<int32_t>(v); }
template <> __device__ __forceinline__ int64_t from_f64<int64_t>(double v) { return static_cast<int64_t>(v); }
template <> __device__ __forceinline__ uint8_t from_f64<uint8_t>(double v) { return static_cast<uint8_t>(v); }

// cast<D>(s): COPY's conversion, the same rule as load_as_f64 + store_from_f64 of core/dtype.h
// (integer -> integer stays in integers so i64 keeps all 64 bits).
template <typename D, typename S>
__device__ __forceinline__ D cast_to(S s) {
  if constexpr (std::is_integral<S>::value && std::is_integral<D>::value) return static_cast<D>(s);
  else if constexpr (is_floatish<S>::value) return from_f32<D>(to_f32(s));
  else return from_f64<D>(to_f64(s));
}

// Accumulation / compute type of a storage type: f32 for floats, double for integers.
template <typename T> struct acc_of { using type = double; };
template <> struct acc_of<float> { using type = float; };
template <> struct acc_of<f16_t> { using type = float; };
template <> struct acc_of<bf16_t> { using type = float; };
template <typename T> using acc_t = typename acc_of<T>::type;

template <typename T> __device__ __forceinline__ acc_t<T> load_acc(T v) {
  if constexpr (is_floatish<T>::value) return to_f32(v); else return to_f64(v);
}
template <typename T> __device__ __forceinline__ T store_acc(acc_t<T> v) {
  if constexpr (is_floatish<T>::value) return from_f32<T>(v); else return from_f64<T>(v);
}

// A float of any float dtype behind a void pointer (weights, biases, masks whose dtype may differ
// from the main input). `dt` is static_cast<int>(DType); the branch is uniform across the grid.
__device__ __forceinline__ float load_any_f32(const void* p, int dt, int64_t i) {
  switch (dt) {
    case static_cast<int>(DType::F32): return static_cast<const float*>(p)[i];
    case static_cast<int>(DType::F16): return f16_bits_to_f32(static_cast<const uint16_t*>(p)[i]);
    case static_cast<int>(DType::BF16): return bf16_bits_to_f32(static_cast<const uint16_t*>(p)[i]);
    case static_cast<int>(DType::F64): return static_cast<float>(static_cast<const double*>(p)[i]);
    case static_cast<int>(DType::I32): return static_cast<float>(static_cast<const int32_t*>(p)[i]);
    case static_cast<int>(DType::I64): return static_cast<float>(static_cast<const int64_t*>(p)[i]);
    case static_cast<int>(DType::U8): return static_cast<float>(static_cast<const uint8_t*>(p)[i]);
    default: return 0.f;
  }
}
__device__ __forceinline__ int64_t load_index(const void* p, bool i32, int64_t i) {
  return i32 ? static_cast<int64_t>(static_cast<const int32_t*>(p)[i]) : static_cast<const int64_t*>(p)[i];
}

// Calls f.template operator()<T>() with T the storage type of `dt` (f32/f16/bf16 only).
template <typename F>
void dispatch_float(DType dt, F&& f) {
  switch (dt) {
    case DType::F32: f(float{}); break;
    case DType::F16: f(f16_t{}); break;
    case DType::BF16: f(bf16_t{}); break;
    default: VL_FAIL("cuda: unsupported float dtype ", dtype_name(dt));
  }
}
// Float plus the integer dtypes (i32, i64, u8).
template <typename F>
void dispatch_numeric(DType dt, F&& f) {
  switch (dt) {
    case DType::F32: f(float{}); break;
    case DType::F16: f(f16_t{}); break;
    case DType::BF16: f(bf16_t{}); break;
    case DType::I32: f(int32_t{}); break;
    case DType::I64: f(int64_t{}); break;
    case DType::U8: f(uint8_t{}); break;
    default: VL_FAIL("cuda: unsupported dtype ", dtype_name(dt));
  }
}
// Every dtype, including f64.
template <typename F>
void dispatch_all(DType dt, F&& f) {
  if (dt == DType::F64) f(double{});
  else dispatch_numeric(dt, f);
}

// ---- scalar math: the formulas of apply_unary_ref / apply_activation_ref (kernels/backend.cpp), in f32 ----
__device__ __forceinline__ float apply_unary(int k, float x) {
  switch (k) {
    case int(UnaryKind::NEG): return -x;
    case int(UnaryKind::EXP): return expf(x);
    case int(UnaryKind::LOG): return logf(x);
    case int(UnaryKind::SQRT): return sqrtf(x);
    case int(UnaryKind::RSQRT): return 1.0f / sqrtf(x);
    case int(UnaryKind::TANH): return tanhf(x);
    case int(UnaryKind::SIGMOID): return 1.0f / (1.0f + expf(-x));
    case int(UnaryKind::RELU): return x > 0.f ? x : 0.f;
    case int(UnaryKind::GELU): return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
    case int(UnaryKind::GELU_TANH):
      return 0.5f * x * (1.0f + tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
    case int(UnaryKind::QUICK_GELU): return x / (1.0f + expf(-1.702f * x));
    case int(UnaryKind::ABS): return fabsf(x);
    case int(UnaryKind::SQUARE): return x * x;
    case int(UnaryKind::RECIPROCAL): return 1.0f / x;
    default: return x;
  }
}
__device__ __forceinline__ float apply_activation(int a, float x) {
  switch (a) {
    case int(Activation::RELU): return apply_unary(int(UnaryKind::RELU), x);
    case int(Activation::GELU): return apply_unary(int(UnaryKind::GELU), x);
    case int(Activation::GELU_TANH): return apply_unary(int(UnaryKind::GELU_TANH), x);
    case int(Activation::QUICK_GELU): return apply_unary(int(UnaryKind::QUICK_GELU), x);
    default: return x;
  }
}

// ---- strided iteration -------------------------------------------------------------------------------
// K operands that share one logical shape (an output and its expanded inputs), each with its own
// strides. Host side coalesces the dims (drops size-1 dims, merges dims that are contiguous in every
// operand) so a typical elementwise op iterates 1-3 dims; at most kMaxDims remain.
constexpr int kMaxDims = 8;
template <int K>
struct StridedIter {
  int ndim;         // after coalescing; 0 = a single element
  bool contiguous;  // every operand is dense in the same order: offset = linear index
  bool small;       // numel < 2^31: 32-bit index arithmetic
  int64_t shape[kMaxDims];
  int64_t stride[K][kMaxDims];
};

// Returns false when more than kMaxDims dims remain after coalescing.
template <int K>
bool make_iter(const Shape& shape, const Shape* const (&strides)[K], StridedIter<K>& it) {
  int n = 0;
  int64_t sh[64];
  int64_t st[K][64];
  if (shape.size() > 64) return false;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = n > 0;
    for (int k = 0; k < K && merge; ++k) merge = st[k][n - 1] == (*strides[k])[d] * shape[d];
    if (merge) {
      sh[n - 1] *= shape[d];
      for (int k = 0; k < K; ++k) st[k][n - 1] = (*strides[k])[d];
    } else {
      sh[n] = shape[d];
      for (int k = 0; k < K; ++k) st[k][n] = (*strides[k])[d];
      ++n;
    }
  }
  if (n > kMaxDims) return false;
  it.ndim = n;
  int64_t numel = 1;
  for (int d = 0; d < kMaxDims; ++d) {
    it.shape[d] = d < n ? sh[d] : 1;
    for (int k = 0; k < K; ++k) it.stride[k][d] = d < n ? st[k][d] : 0;
    if (d < n) numel *= sh[d];
  }
  it.contiguous = n == 0;
  if (n == 1) {
    it.contiguous = true;
    for (int k = 0; k < K; ++k) it.contiguous = it.contiguous && st[k][0] == 1;
  }
  it.small = numel < (int64_t(1) << 31);
  return true;
}

template <int K>
__device__ __forceinline__ void iter_offsets(const StridedIter<K>& it, int64_t i, int64_t (&off)[K]) {
#pragma unroll
  for (int k = 0; k < K; ++k) off[k] = 0;
  if (it.contiguous) {
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = i;
    return;
  }
  if (it.small) {
    uint32_t r = static_cast<uint32_t>(i);
#pragma unroll
    for (int d = kMaxDims - 1; d >= 0; --d) {
      if (d < it.ndim) {
        uint32_t sz = static_cast<uint32_t>(it.shape[d]);
        uint32_t q = r / sz, c = r - q * sz;
        r = q;
#pragma unroll
        for (int k = 0; k < K; ++k) off[k] += static_cast<int64_t>(c) * it.stride[k][d];
      }
    }
  } else {
#pragma unroll
    for (int d = kMaxDims - 1; d >= 0; --d) {
      if (d < it.ndim) {
        int64_t sz = it.shape[d];
        int64_t q = i / sz, c = i - q * sz;
        i = q;
#pragma unroll
        for (int k = 0; k < K; ++k) off[k] += c * it.stride[k][d];
      }
    }
  }
}

// ---- reductions inside a warp / block ------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Sum over the whole block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
// `sh` needs 32 floats; the function may be called repeatedly with the same buffer.
__device__ __forceinline__ float block_sum(float v, float* sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // protects sh from a previous call
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : 0.f;
  return warp_sum(v);
}
// Max over the block; NaN propagates (a NaN input makes the result NaN).
__device__ __forceinline__ float block_max(float v, float* sh) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    float u = __shfl_xor_sync(0xffffffffu, v, o);
    v = (v != v || v > u) ? v : u;
  }
  __syncthreads();
  if (lane == 0) sh[w] = v;
  __syncthreads();
  v = lane < nw ? sh[lane] : -INFINITY;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    float u = __shfl_xor_sync(0xffffffffu, v, o);
    v = (v != v || v > u) ? v : u;
  }
  return v;
}

// (outer, R, inner) view of a contiguous tensor reduced along `dim`.
struct RowLayout {
  int64_t outer = 1, R = 1, inner = 1;
};
inline RowLayout row_layout(const Shape& s, int64_t dim) {
  RowLayout l;
  int64_t n = static_cast<int64_t>(s.size());
  if (n == 0) return l;
  if (dim < 0) dim += n;
  for (int64_t d = 0; d < n; ++d) {
    if (d < dim) l.outer *= s[d];
    else if (d == dim) l.R = s[d];
    else l.inner *= s[d];
  }
  return l;
}

}  // namespace vislang::cuda
