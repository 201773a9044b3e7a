// kernels/cpu/cpu_common.cpp — row conversion f32 <-> f16 / bf16, the N-d loop set-up, row gathers
// and per-thread scratch for the optimized CPU kernels (see cpu_common.h).
//
// Conversions are bit-identical to core/dtype.h (round to nearest even, subnormals kept), NaN
// payloads aside. bf16 and the f16 -> f32 direction are plain integer loops the compiler vectorizes;
// f32 -> f16 uses the F16C instruction VCVTPS2PH (exact IEEE rounding) through AVX-512F when the CPU
// has it (checked at run time), else core/dtype.h's exact scalar routine.
// GCC 12 reports its own AVX-512 intrinsic headers as using uninitialized values (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstring>

#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/cpu_math.h"

namespace vislang::cpu_kernels {
namespace {

bool cpu_has_avx512f() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

// ---- f16 --------------------------------------------------------------------------------------------

// f16 bits -> f32 without branches: the exponent and mantissa shifted into f32 position and scaled
// by 2^112 is exact for normal and subnormal halves; inf / NaN get the all-ones exponent.
inline float f16_bits_to_f32(uint16_t h) {
  const uint32_t em = static_cast<uint32_t>(h & 0x7fffu);
  float f = bits_to_float(em << 13) * 5.192296858534828e+33f;  // 2^112
  uint32_t u = float_to_bits(f);
  u = em >= 0x7c00u ? ((em << 13) | 0x7f800000u) : u;
  return bits_to_float(u | (static_cast<uint32_t>(h & 0x8000u) << 16));
}

__attribute__((target("avx512f"))) void f16_to_f32_avx512(float* dst, const uint16_t* src, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  for (; i < n; ++i) dst[i] = f16_bits_to_f32(src[i]);
}

__attribute__((target("avx512f"))) void f32_to_f16_avx512(uint16_t* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

void f16_load(float* dst, const uint16_t* src, int64_t n, int64_t stride) {
  if (stride == 1 && cpu_has_avx512f()) return f16_to_f32_avx512(dst, src, n);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_bits_to_f32(src[i * stride]);
}

void f16_store(uint16_t* dst, const float* src, int64_t n, int64_t stride) {
  if (!cpu_has_avx512f()) {
    for (int64_t i = 0; i < n; ++i) dst[i * stride] = f32_to_f16(src[i]);
    return;
  }
  if (stride == 1) return f32_to_f16_avx512(dst, src, n);
  uint16_t tmp[kTile];  // convert contiguously, then scatter
  for (int64_t i0 = 0; i0 < n; i0 += kTile) {
    const int64_t m = std::min(kTile, n - i0);
    f32_to_f16_avx512(tmp, src + i0, m);
    for (int64_t i = 0; i < m; ++i) dst[(i0 + i) * stride] = tmp[i];
  }
}

// ---- bf16 -------------------------------------------------------------------------------------------

inline uint16_t bf16_round(float f) {  // core/dtype.h's f32_to_bf16 without the branch
  const uint32_t u = float_to_bits(f);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (u >> 16) | 0x40u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

void bf16_load(float* dst, const uint16_t* src, int64_t n, int64_t stride) {
  if (stride == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = bits_to_float(static_cast<uint32_t>(src[i]) << 16);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = bits_to_float(static_cast<uint32_t>(src[i * stride]) << 16);
  }
}

void bf16_store(uint16_t* dst, const float* src, int64_t n, int64_t stride) {
  if (stride == 1) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_round(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i * stride] = bf16_round(src[i]);
  }
}

}  // namespace

void load_f32(float* dst, const void* src, DType t, int64_t n, int64_t stride) {
  if (n <= 0) return;
  if (stride == 0 && n > 1) {  // one value, repeated
    const float v = load_one(src, t);
    std::fill(dst, dst + n, v);
    return;
  }
  switch (t) {
    case DType::F32: {
      const float* s = static_cast<const float*>(src);
      if (stride == 1) std::memcpy(dst, s, static_cast<size_t>(n) * sizeof(float));
      else
        for (int64_t i = 0; i < n; ++i) dst[i] = s[i * stride];
      return;
    }
    case DType::F16: return f16_load(dst, static_cast<const uint16_t*>(src), n, stride);
    case DType::BF16: return bf16_load(dst, static_cast<const uint16_t*>(src), n, stride);
    default:
      for (int64_t i = 0; i < n; ++i)  // not reached: find() only admits f32 / f16 / bf16
        dst[i] = static_cast<float>(load_as_f64(static_cast<const char*>(src) + i * stride * dtype_size(t), t));
  }
}

void store_f32(void* dst, DType t, const float* src, int64_t n, int64_t stride) {
  if (n <= 0) return;
  switch (t) {
    case DType::F32: {
      float* d = static_cast<float*>(dst);
      if (stride == 1) std::memcpy(d, src, static_cast<size_t>(n) * sizeof(float));
      else
        for (int64_t i = 0; i < n; ++i) d[i * stride] = src[i];
      return;
    }
    case DType::F16: return f16_store(static_cast<uint16_t*>(dst), src, n, stride);
    case DType::BF16: return bf16_store(static_cast<uint16_t*>(dst), src, n, stride);
    default:
      for (int64_t i = 0; i < n; ++i)
        store_from_f64(static_cast<char*>(dst) + i * stride * dtype_size(t), t, src[i]);
  }
}

std::vector<float> to_f32_vector(const Tensor& t) {
  const int64_t n = t.numel();
  std::vector<float> v(static_cast<size_t>(n));
  const int64_t chunk = 1 << 14;
  const char* base = byte_ptr(t);
  const int64_t es = esize(t);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; i += chunk) load_f32(v.data() + i, base + i * es, t.dtype(), std::min(chunk, n - i));
  return v;
}

NdLoop make_loop(const Shape& shape, const std::vector<const Shape*>& strides) {
  NdLoop L;
  L.nargs = static_cast<int>(strides.size());
  const int nd = static_cast<int>(shape.size());
  // Dims of size 1 never move the offset: drop them.
  std::vector<int> keep;
  for (int d = 0; d < nd; ++d)
    if (shape[d] != 1) keep.push_back(d);
  if (keep.empty()) {
    L.shape = {1};
    for (int a = 0; a < L.nargs; ++a) L.strides[a] = {0};
    return L;
  }
  // Walk from the innermost dim outwards, merging dim d into the block inside it when every tensor
  // steps over that block exactly (stride[d] == stride[inner] * size[inner]).
  std::vector<int64_t> sh;
  std::vector<int64_t> st[kMaxArgs];
  for (int q = static_cast<int>(keep.size()) - 1; q >= 0; --q) {
    const int d = keep[q];
    bool merge = !sh.empty();
    for (int a = 0; a < L.nargs && merge; ++a) merge = (*strides[a])[d] == st[a].back() * sh.back();
    if (merge) {
      sh.back() *= shape[d];
    } else {
      sh.push_back(shape[d]);
      for (int a = 0; a < L.nargs; ++a) st[a].push_back((*strides[a])[d]);
    }
  }
  // Collected innermost first: reverse to the usual outermost-first order.
  L.shape.assign(sh.rbegin(), sh.rend());
  for (int a = 0; a < L.nargs; ++a) L.strides[a].assign(st[a].rbegin(), st[a].rend());
  return L;
}

void gather_rows(float* dst, const Tensor& t, const DimView& v, int64_t o, int64_t j0, int64_t nb) {
  const char* base = byte_ptr(t);
  const int64_t es = esize(t);
  for (int64_t b = 0; b < nb; ++b)
    load_f32(dst + b * v.R, base + ((o * v.R) * v.inner + j0 + b) * es, t.dtype(), v.R, v.inner);
}

void scatter_rows(const Tensor& t, const DimView& v, int64_t o, int64_t j0, int64_t nb, const float* src) {
  char* base = byte_ptr(t);
  const int64_t es = esize(t);
  for (int64_t b = 0; b < nb; ++b)
    store_f32(base + ((o * v.R) * v.inner + j0 + b) * es, t.dtype(), src + b * v.R, v.R, v.inner);
}

float* scratch(int slot, size_t n) {
  constexpr int kSlots = 8;
  thread_local std::vector<float> buffers[kSlots];
  std::vector<float>& b = buffers[slot % kSlots];
  if (b.size() < n) b.resize(n);
  return b.data();
}

}  // namespace vislang::cpu_kernels
