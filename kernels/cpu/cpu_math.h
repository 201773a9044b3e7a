// kernels/cpu/cpu_math.h — float math for the optimized CPU kernels, written so that a loop calling
// it under `#pragma omp simd` vectorizes (branch-free selects, no libm calls, no errno).
//
// Where it sits: the elementwise, softmax, norm and attention kernels in kernels/cpu/ call these on
// f32 values; the definitions of record are apply_unary_ref / apply_binary_ref in kernels/backend.cpp
// (double precision). Accuracy, measured against double over [-100, 100] and special values
// (tests/test_backend_ops.cpp checks it op by op):
//   exp_f 1 ulp, log_f 1 ulp, tanh_f 2 ulp, gelu_f ~4e-7 relative (erf form, incl. the x < 0 tail).
// Algorithms: Cephes (S. Moshier) expf / logf / tanhf polynomials; erfc from Numerical Recipes'
// erfcc (Chebyshev fit, fractional error < 1.2e-7). NaN in gives NaN out; overflow gives ±inf.
#pragma once
#include <cstdint>
#include <cstring>

namespace vislang::cpu_kernels {

inline float bits_to_float(uint32_t u) { float f; __builtin_memcpy(&f, &u, 4); return f; }
inline uint32_t float_to_bits(float f) { uint32_t u; __builtin_memcpy(&u, &f, 4); return u; }

constexpr float kInf = __builtin_inff();

// e^x. Range reduction x = n ln2 + r (|r| <= ln2/2, two-part ln2 so n·ln2_hi is exact), degree-6
// polynomial for e^r, then scaling by 2^n as two factors 2^(n/2) so subnormal results stay right.
inline float exp_f(float x) {
  float xc = x < -104.0f ? -104.0f : x;  // e^-104 underflows to 0, e^89 overflows to inf
  xc = xc > 89.0f ? 89.0f : xc;
  xc = x == x ? xc : 0.0f;  // keep NaN out of the float -> int conversion
  const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest (|.|< 2^22)
  float r = xc - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t ni = static_cast<int32_t>(n);  // [-150, 129]
  const int32_t n1 = ni >> 1, n2 = ni - n1;    // each in [-75, 65]: 2^n1, 2^n2 are normal floats
  const float y = p * bits_to_float(static_cast<uint32_t>(n1 + 127) << 23) *
                  bits_to_float(static_cast<uint32_t>(n2 + 127) << 23);
  return x == x ? y : x;
}

// Natural log. x = m·2^e with m in [sqrt(1/2), sqrt(2)), degree-8 polynomial in (m - 1).
inline float log_f(float x) {
  const bool sub = x < 1.17549435e-38f;                // subnormal (or <= 0): scale into the normal range
  const float xs = sub ? x * 8388608.0f : x;           // 2^23
  const uint32_t u = float_to_bits(xs);
  int32_t e = static_cast<int32_t>((u >> 23) & 0xffu) - 126;
  float m = bits_to_float((u & 0x007fffffu) | 0x3f000000u);  // [0.5, 1)
  const bool low = m < 0.707106781186547524f;
  e = low ? e - 1 : e;
  m = low ? m + m - 1.0f : m - 1.0f;
  e = sub ? e - 23 : e;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  // e as a float through the 2^23 magic constant (exact for |e| < 2^22). A plain int -> float
  // conversion may raise "inexact" under -ftrapping-math, and GCC then refuses to vectorize the
  // selects below.
  const float fe = bits_to_float(0x4b000000u + static_cast<uint32_t>(e + 256)) - 8388864.0f;  // 2^23 + 256
  y = y - 2.12194440e-4f * fe;
  y = y - 0.5f * z;
  float r = m + y;
  r = r + 0.693359375f * fe;
  r = x == 0.0f ? -kInf : r;
  r = x < 0.0f ? bits_to_float(0x7fc00000u) : r;
  r = x == kInf ? kInf : r;
  return x == x ? r : x;
}

// tanh: odd polynomial for |x| < 0.625, else 1 - 2 / (e^{2|x|} + 1) with the sign put back.
inline float tanh_f(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  float big = 1.0f - 2.0f / (exp_f(2.0f * ax) + 1.0f);
  big = x < 0.0f ? -big : big;
  return ax < 0.625f ? small : big;  // NaN takes `big`, which is NaN
}

// 1 / (1 + e^-x)
inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

// erfc(|x|/√2) with small *relative* error, from Numerical Recipes' erfcc: erfc(z) = t·e^(-z² + P(t)),
// t = 1/(1 + z/2). The tail of GELU for x < 0 needs it, where 1 + erf would cancel. -z² = -x²/2 is
// split as -xh²/2 (exact: xh is x with its low 12 mantissa bits cleared) plus a small remainder, so
// the rounding of x² (which e^(-x²/2) would magnify by x²) never happens.
inline float erfc_half_f(float x) {
  float ax = x < 0.0f ? -x : x;
  ax = ax > 20.0f ? 20.0f : ax;  // erfc(20/√2) = 0 in f32; keeps inf out of the split below
  const float z = ax * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  const float xh = bits_to_float(float_to_bits(ax) & 0xfffff000u);
  return t * exp_f(-0.5f * (xh * xh)) * exp_f(p - 0.5f * (ax - xh) * (ax + xh));
}

// GELU, erf form: 0.5 x (1 + erf(x/√2)) = x (1 - erfc(x/√2)/2) for x >= 0, 0.5 x erfc(-x/√2) for x < 0.
inline float gelu_f(float x) {
  const float c = erfc_half_f(x);
  return x >= 0.0f ? x * (1.0f - 0.5f * c) : 0.5f * x * c;  // NaN takes the second branch: NaN
}

// GELU, tanh approximation: 0.5 x (1 + tanh(u)) = x · sigmoid(2u), which does not cancel for x < 0.
inline float gelu_tanh_f(float x) {
  const float u = 0.79788456080286535588f * (x + 0.044715f * x * x * x);
  return x / (1.0f + exp_f(-2.0f * u));
}

// x · sigmoid(1.702 x) (OpenAI CLIP)
inline float quick_gelu_f(float x) { return x / (1.0f + exp_f(-1.702f * x)); }

// torch.maximum / minimum: NaN propagates (same expression as apply_binary_ref).
inline float max_nan(float a, float b) { return (a != a || a > b) ? a : b; }
inline float min_nan(float a, float b) { return (a != a || a < b) ? a : b; }

}  // namespace vislang::cpu_kernels
