// kernels/cpu/gemm.cpp — BLIS-style f32 GEMM: packing, register-tile micro-kernels, cache
// blocking, OpenMP, fused bias + activation. See gemm.h for the contract.
//
// The loop nest, per thread (each thread owns a block of C; see partition()):
//   for pc in K step KC                      KC <= 768: C is read-modified-written K/KC times
//     for ic in thread's rows step MC        A block (MC × KC, <= 8 MiB) packed here, stays in L3
//       for jb in thread's N range step NB   B block (KC × NB, 512 KiB) packed here, stays in L2
//         for i in ic step MR                A micro-panel (KC × MR) stays in L1
//           for j in jb step NR              B micro-panel (KC × NR) streams from L2
//             micro-kernel: C[i:i+MR, j:j+NR] (+)= alpha · Apanel · Bpanel; on the last pc also
//                           + bias, activation — so the epilogue runs once per tile on full sums.
// Packed panels are k-major: A panel [k][MR], B panel [k][NR], zero-padded past M/N edges, so the
// kernels never branch on edges except when storing. A B packed once ahead of time (sgemm_pack_b,
// a prepacked weight) is the same panels laid out for every K block; gemm_block then reads them in
// place of packing its B block.
//
// Micro-kernel choice on Zen4 (AVX-512 executed as 2×256-bit: one 512-bit FMA per cycle per core):
// 8 rows × 48 columns = 24 zmm accumulators + 3 B vectors + 1 broadcast; per k, 24 FMAs for 3 B
// loads and 8 broadcasts. Kernel-only (one thread, B block in L2) 8×48, 6×64, 4×64, 12×32, 14×32
// and 7×48 all ran at 105-114 GFLOP/s (the FMA-loop peak of one core is ~110-117), so the shape was
// picked for the rest: 8 | 1600 (ViT-B/32 tokens at batch 32), 48 | 768, 2304, 3072, and 8 rows
// pack with 8×8 register transposes. Whole sgemm, 2 threads, quiet machine: ~215 GFLOP/s at
// 1600×768×3072 and 1600×3072×768 (~95 % of the FMA-loop peak; torch 2.15/MKL: 180-205).
#include "kernels/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "core/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#define VL_GEMM_X86 1
#include <immintrin.h>
// GCC 12's AVX-512 headers build "undefined" vectors from themselves and trip -Wuninitialized /
// -Wmaybe-uninitialized in every caller (GCC bug 105593, fixed in GCC 13): silence them here only.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#else
#define VL_GEMM_X86 0
#endif

// Tuning knobs (defaults measured on Zen4, 1 MiB L2 / 32 KiB L1 per core).
#ifndef VL_GEMM_AVX512_MR
#define VL_GEMM_AVX512_MR 8
#endif
#ifndef VL_GEMM_AVX512_NV  // NR = 16 · NV
#define VL_GEMM_AVX512_NV 3
#endif
#ifndef VL_GEMM_AVX512_KC
#define VL_GEMM_AVX512_KC 768
#endif
#ifndef VL_GEMM_L2_BYTES  // bytes of L2 the packed B block may use
#define VL_GEMM_L2_BYTES (512 * 1024)
#endif
#ifndef VL_GEMM_L3_BYTES  // bytes of L3 one thread's packed A block may use
#define VL_GEMM_L3_BYTES (8 * 1024 * 1024)
#endif

namespace vislang::cpu {

namespace {

// ---- problem, epilogue, scratch -------------------------------------------------------------------

struct Problem {
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lar, lac;  // A strides: row (m), col (k)
  const float* B;
  int64_t lbr, lbc;  // B strides: row (k), col (n)
  float* C;          // (M, N), ldc = N
  const float* bias;  // (N) or null
  Activation act;
  const float* Bp = nullptr;  // B's prepacked panels (PackedB layout) or null: pack per call
  int64_t bp_npad = 0;        // PackedB::n_padded
};

// What the kernel does when it stores a tile: first K block overwrites C, later ones accumulate;
// the last one adds the bias (already offset to the tile's first column) and applies act.
struct Epilogue {
  float alpha;
  bool first, last;
  const float* bias;
  Activation act;
};

// One growable, 64-byte aligned buffer per thread (OpenMP threads persist between calls, so the
// packing buffers are allocated once, not per call).
class Scratch {
 public:
  ~Scratch() { std::free(p_); }
  float* get(size_t n) {
    if (n > cap_) {
      std::free(p_);
      cap_ = n + n / 4;
      p_ = static_cast<float*>(std::aligned_alloc(64, ((cap_ * sizeof(float) + 63) / 64) * 64));
      VL_CHECK(p_, "sgemm: cannot allocate ", cap_ * sizeof(float), " bytes of packing scratch");
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  size_t cap_ = 0;
};
thread_local Scratch tl_pack_a, tl_pack_b;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// ---- scalar math of record (double, kernels/backend.h) for the generic path and edges ----------
inline float act_scalar(Activation a, float x) { return float(apply_activation_ref(a, double(x))); }

// ---- generic C++ micro-kernel (any CPU) -----------------------------------------------------------

struct GenericIsa {
  static constexpr int MR = 4, NR = 16;
  static constexpr int64_t KC_MAX = 256;

  static void pack_a(float* dst, const float* src, int64_t rs, int64_t cs, int64_t kc, int mv) {
    for (int64_t k = 0; k < kc; ++k)
      for (int i = 0; i < MR; ++i) dst[k * MR + i] = i < mv ? src[i * rs + k * cs] : 0.f;
  }
  static void pack_b(float* dst, const float* src, int64_t rs, int64_t cs, int64_t kc, int nv) {
    for (int64_t k = 0; k < kc; ++k)
      for (int j = 0; j < NR; ++j) dst[k * NR + j] = j < nv ? src[k * rs + j * cs] : 0.f;
  }
  static void kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mv, int nv,
                     const Epilogue& ep) {
    float acc[MR][NR] = {};
    for (int64_t k = 0; k < kc; ++k, a += MR, b += NR)
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    for (int i = 0; i < mv; ++i)
      for (int j = 0; j < nv; ++j) {
        float v = ep.alpha * acc[i][j];
        if (!ep.first) v += c[i * ldc + j];
        if (ep.last) {
          if (ep.bias) v += ep.bias[j];
          v = act_scalar(ep.act, v);
        }
        c[i * ldc + j] = v;
      }
  }
  static void activation(float* x, int64_t n, Activation act) {
    for (int64_t i = 0; i < n; ++i) x[i] = act_scalar(act, x[i]);
  }
};

// ---- vector math shared by the SIMD epilogues ------------------------------------------------------
// exp: x = n·ln2 + r, |r| <= ln2/2, e^r by the Cephes expf minimax polynomial (~1 ulp), times 2^n.
// erf: x·P(x²)/Q(x²) on [-4, 4] (erf(±4) = ±1 in f32): the rational approximation used by XLA and
// Eigen. Measured against double: erf abs error <= 4e-7, exp relative error <= 1.2e-7; the fused
// gelu / gelu_tanh / quick_gelu stay within 1e-6 absolute for |x| <= 10 (gelu's relative error
// grows in the far negative tail, where 1 + erf cancels — as in any f32 gelu). gelu_tanh and
// quick_gelu use 0.5·(1 + tanh(u)) = 1 / (1 + e^(-2u)), so they need only exp and one division.
constexpr float kExpP[6] = {1.9875691500E-4f, 1.3981999507E-3f, 8.3334519073E-3f,
                            4.1665795894E-2f, 1.6666665459E-1f, 5.0000001201E-1f};
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f, kLog2e = 1.44269504088896341f;
constexpr float kErfAlpha[7] = {-2.72614225801306e-10f, 2.77068142495902e-08f, -2.10102402082508e-06f,
                                -5.69250639462346e-05f, -7.34990630326855e-04f, -2.95459980854025e-03f,
                                -1.60960333262415e-02f};
constexpr float kErfBeta[5] = {-1.45660718464996e-05f, -2.13374055278905e-04f, -1.68282697438203e-03f,
                               -7.37332916720468e-03f, -1.42647390514189e-02f};
constexpr float kSqrtHalf = 0.70710678118654752440f, kGeluTanhC = 0.79788456080286535588f,
                kGeluTanhA = 0.044715f, kQuickGeluC = 1.702f;

// -------------------------------------------------------------------------------------------------
#if VL_GEMM_X86
#if defined(__clang__)
#define VL_TARGET_PUSH(T) _Pragma(T)
#define VL_TARGET_POP _Pragma("clang attribute pop")
#define VL_AVX512_TARGET \
  "clang attribute push(__attribute__((target(\"avx512f,avx512vl,avx512dq,avx512bw,avx2,fma\"))), apply_to = function)"
#define VL_AVX2_TARGET "clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)"
#else
#define VL_TARGET_PUSH(T) _Pragma("GCC push_options") _Pragma(T)
#define VL_TARGET_POP _Pragma("GCC pop_options")
#define VL_AVX512_TARGET "GCC target(\"avx512f,avx512vl,avx512dq,avx512bw,avx2,fma\")"
#define VL_AVX2_TARGET "GCC target(\"avx2,fma\")"
#endif

// ================================ AVX-512 =========================================================
VL_TARGET_PUSH(VL_AVX512_TARGET)

inline __m512 exp512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-104.f)), _mm512_set1_ps(89.f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kExpP[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP[i]));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_scalef_ps(p, n);  // p · 2^n, exact under/overflow to 0 / inf
}
inline __m512 erf512(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-4.f)), _mm512_set1_ps(4.f));
  __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(kErfAlpha[0]);
  for (int i = 1; i < 7; ++i) p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(kErfAlpha[i]));
  __m512 q = _mm512_set1_ps(kErfBeta[0]);
  for (int i = 1; i < 5; ++i) q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(kErfBeta[i]));
  return _mm512_div_ps(_mm512_mul_ps(x, p), q);
}
inline __m512 act512(__m512 v, Activation act) {
  switch (act) {
    case Activation::RELU: return _mm512_max_ps(v, _mm512_setzero_ps());
    case Activation::GELU: {
      __m512 e = erf512(_mm512_mul_ps(v, _mm512_set1_ps(kSqrtHalf)));
      return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(e, _mm512_set1_ps(1.f)));
    }
    case Activation::GELU_TANH: {
      __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(v, v), v);
      __m512 u = _mm512_mul_ps(_mm512_fmadd_ps(v3, _mm512_set1_ps(kGeluTanhA), v), _mm512_set1_ps(-2.f * kGeluTanhC));
      return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.f), exp512(u)));
    }
    case Activation::QUICK_GELU: {
      __m512 e = exp512(_mm512_mul_ps(v, _mm512_set1_ps(-kQuickGeluC)));
      return _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.f), e));
    }
    default: return v;
  }
}

template <int MR_, int NV_>
struct Avx512Isa {
  static constexpr int MR = MR_, NV = NV_, NR = 16 * NV_;
  static constexpr int64_t KC_MAX = VL_GEMM_AVX512_KC;

  static __mmask16 tail_mask(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

  // dst [kc][MR] <- A[i*rs + k*cs], rows >= mv are zero.
  static void pack_a(float* dst, const float* src, int64_t rs, int64_t cs, int64_t kc, int mv) {
    if (rs == 1 && MR <= 16) {  // column-major A (a transposed view): MR contiguous floats per k
      const __mmask16 m = tail_mask(mv);
      for (int64_t k = 0; k < kc; ++k) {
        __m512 v = _mm512_maskz_loadu_ps(m, src + k * cs);
        _mm512_mask_storeu_ps(dst + k * MR, __mmask16((1u << MR) - 1u), v);
      }
      return;
    }
    if (cs == 1 && MR == 8) {  // row-major A, 8 rows: 8×8 register transposes
      const float* row[8];
      for (int i = 0; i < 8; ++i) row[i] = src + std::min(i, mv - 1) * rs;  // rows >= mv: zeroed below
      int64_t k = 0;
      for (; k + 8 <= kc; k += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = i < mv ? _mm256_loadu_ps(row[i] + k) : _mm256_setzero_ps();
        transpose8(r);
        for (int i = 0; i < 8; ++i) _mm256_store_ps(dst + (k + i) * 8, r[i]);
      }
      for (; k < kc; ++k)
        for (int i = 0; i < 8; ++i) dst[k * 8 + i] = i < mv ? row[i][k] : 0.f;
      return;
    }
    if (cs == 1) {  // row-major A, other MR: row by row through L1-sized chunks of 64 k
      for (int64_t k0 = 0; k0 < kc; k0 += 64) {
        const int64_t kn = std::min<int64_t>(64, kc - k0);
        for (int i = 0; i < MR; ++i) {
          float* d = dst + k0 * MR + i;
          if (i < mv) {
            const float* s = src + i * rs + k0;
            for (int64_t k = 0; k < kn; ++k) d[k * MR] = s[k];
          } else {
            for (int64_t k = 0; k < kn; ++k) d[k * MR] = 0.f;
          }
        }
      }
      return;
    }
    for (int64_t k = 0; k < kc; ++k)
      for (int i = 0; i < MR; ++i) dst[k * MR + i] = i < mv ? src[i * rs + k * cs] : 0.f;
  }

  // dst [kc][NR] <- B[k*rs + j*cs], columns >= nv are zero.
  static void pack_b(float* dst, const float* src, int64_t rs, int64_t cs, int64_t kc, int nv) {
    if (cs == 1) {  // row-major B: NR contiguous floats per k
      __mmask16 m[NV];
      for (int j = 0; j < NV; ++j) m[j] = tail_mask(std::max(0, nv - 16 * j));
      for (int64_t k = 0; k < kc; ++k)
        for (int j = 0; j < NV; ++j)
          _mm512_store_ps(dst + k * NR + 16 * j, _mm512_maskz_loadu_ps(m[j], src + k * rs + 16 * j));
      return;
    }
    if (rs == 1) {  // B = Wᵀ with W (N, K) row-major (nn.Linear): 16×16 register transposes
      const int64_t kfull = kc / 16 * 16;
      for (int j = 0; j < NV; ++j)  // 16 source rows at a time: 16 sequential read streams
        for (int64_t k0 = 0; k0 < kfull; k0 += 16)
          transpose16(dst + k0 * NR + 16 * j, NR, src + k0 + 16 * j * cs, cs, std::max(0, std::min(16, nv - 16 * j)));
      for (int64_t k = kfull; k < kc; ++k)
        for (int j = 0; j < NR; ++j) dst[k * NR + j] = j < nv ? src[k + j * cs] : 0.f;
      return;
    }
    for (int64_t k = 0; k < kc; ++k)
      for (int j = 0; j < NR; ++j) dst[k * NR + j] = j < nv ? src[k * rs + j * cs] : 0.f;
  }

  // In-register transpose of 8 rows of 8: r[i][j] <- r[j][i].
  static void transpose8(__m256 (&r)[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
      u[i + 0] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
      u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
      u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {
      r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
      r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
  }

  // dst[k*ldd + r] = src[r*lds + k] for k, r < 16; rows r >= rows are zero.
  static void transpose16(float* dst, int64_t ldd, const float* src, int64_t lds, int rows) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_loadu_ps(src + i * lds) : _mm512_setzero_ps();
    for (int i = 0; i < 16; i += 2) {  // interleave pairs of rows: 32-bit elements
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {  // 64-bit pairs
      r[i + 0] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
      r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
      r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {  // 128-bit lanes, stage 1
      t[i + 0] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
      t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
      t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
      t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; ++i) {  // 128-bit lanes, stage 2
      r[i + 0] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
      r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
      r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
      r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
    for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ldd, r[i]);
  }

  // C tile (mv × nv) from packed panels. A right-edge panel (nv <= NR - 16) runs a narrower
  // instantiation that skips the all-zero vectors: N = 49 (a 7×7 patch grid) costs 48 + 16
  // columns of FMAs instead of 2 × 48.
  // Likewise a bottom-edge panel (mv < MR rows) runs only ceil(mv/2)·2 rows of FMAs: M = 50 (ViT-B/32
  // tokens at batch 1) costs 6·8 + 2 rows instead of 7·8. Every C element gets the same FMA chain in
  // any instantiation, so the results do not depend on which one ran.
  static void kernel(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mv, int nv,
                     const Epilogue& ep) {
    if (mv >= MR || MR != 8) return kernel_nv<MR>(kc, a, b, c, ldc, mv, nv, ep);
    switch ((mv + 1) / 2) {
      case 1: return kernel_nv<std::min(2, MR)>(kc, a, b, c, ldc, mv, nv, ep);
      case 2: return kernel_nv<std::min(4, MR)>(kc, a, b, c, ldc, mv, nv, ep);
      case 3: return kernel_nv<std::min(6, MR)>(kc, a, b, c, ldc, mv, nv, ep);
      default: return kernel_nv<MR>(kc, a, b, c, ldc, mv, nv, ep);
    }
  }
  template <int MU>
  static void kernel_nv(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mv, int nv,
                        const Epilogue& ep) {
    switch ((nv + 15) / 16) {
      case 1: return kernel_n<1, MU>(kc, a, b, c, ldc, mv, nv, ep);
      case 2: return kernel_n<std::min(2, NV), MU>(kc, a, b, c, ldc, mv, nv, ep);
      case 3: return kernel_n<std::min(3, NV), MU>(kc, a, b, c, ldc, mv, nv, ep);
      default: return kernel_n<NV, MU>(kc, a, b, c, ldc, mv, nv, ep);
    }
  }

  // Uses the first NU of the panel's NV vectors (B rows are still NR floats apart) and the first MU
  // of the A panel's MR rows (A columns are still MR floats apart).
  template <int NU, int MU = MR>
  static void kernel_n(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc,
                       int mv, int nv, const Epilogue& ep) {
    __m512 acc[MU][NU];
#pragma GCC unroll 16
    for (int i = 0; i < MU; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NU; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int i = 0; i < mv; ++i)  // the tile's C lines arrive (for writing) while the FMAs run
      for (int j = 0; j < NU; ++j) __builtin_prefetch(c + i * ldc + 16 * j, 1, 3);
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k) {
      __m512 bv[NU];
#pragma GCC unroll 4
      for (int j = 0; j < NU; ++j) bv[j] = _mm512_load_ps(b + 16 * j);
#pragma GCC unroll 4
      for (int j = 0; j < NU; ++j) _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR + 16 * j), _MM_HINT_T0);
#pragma GCC unroll 16
      for (int i = 0; i < MU; ++i) {
        const __m512 av = _mm512_set1_ps(a[i]);
#pragma GCC unroll 4
        for (int j = 0; j < NU; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
      }
      a += MR;
      b += NR;
    }
    store<NU, MU>(acc, c, ldc, mv, nv, ep);
  }

  template <int NU, int MU>
  static void store(__m512 (&acc)[MU][NU], float* c, int64_t ldc, int mv, int nv, const Epilogue& ep) {
    const __m512 alpha = _mm512_set1_ps(ep.alpha);
    __mmask16 m[NU];
    for (int j = 0; j < NU; ++j) m[j] = tail_mask(std::max(0, nv - 16 * j));
    __m512 bias[NU];
    for (int j = 0; j < NU; ++j)
      bias[j] = (ep.last && ep.bias) ? _mm512_maskz_loadu_ps(m[j], ep.bias + 16 * j) : _mm512_setzero_ps();
    const bool full = nv == 16 * NU;
#pragma GCC unroll 16
    for (int i = 0; i < MU; ++i) {
      if (i >= mv) break;
      float* ci = c + i * ldc;
#pragma GCC unroll 4
      for (int j = 0; j < NU; ++j) {
        __m512 v = _mm512_mul_ps(acc[i][j], alpha);
        if (!ep.first) v = _mm512_add_ps(v, full ? _mm512_loadu_ps(ci + 16 * j) : _mm512_maskz_loadu_ps(m[j], ci + 16 * j));
        if (ep.last) v = act512(_mm512_add_ps(v, bias[j]), ep.act);
        if (full) _mm512_storeu_ps(ci + 16 * j, v);
        else _mm512_mask_storeu_ps(ci + 16 * j, m[j], v);
      }
    }
  }

  static void activation(float* x, int64_t n, Activation act) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, act512(_mm512_loadu_ps(x + i), act));
    if (i < n) {
      __mmask16 m = tail_mask(int(n - i));
      _mm512_mask_storeu_ps(x + i, m, act512(_mm512_maskz_loadu_ps(m, x + i), act));
    }
  }
};
using Avx512 = Avx512Isa<VL_GEMM_AVX512_MR, VL_GEMM_AVX512_NV>;

// y = softmax(x) (or log_softmax) over n floats: exp512, sums in double. Returns false, doing
// nothing, when the row holds a NaN or its maximum is ±inf.
bool softmax_row512(float* y, const float* x, int64_t n, bool log) {
  const __mmask16 tail = Avx512::tail_mask(int(n % 16));
  const int64_t nfull = n - n % 16;
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __mmask16 nan = 0;
  int64_t i = 0;
  for (; i < nfull; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    vmax = _mm512_max_ps(vmax, v);
  }
  if (i < n) {
    const __m512 v = _mm512_mask_loadu_ps(vmax, tail, x + i);  // masked-off lanes keep vmax
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    vmax = _mm512_max_ps(vmax, v);
  }
  const float m = _mm512_reduce_max_ps(vmax);
  if (nan || !std::isfinite(m)) return false;
  const __m512 vm = _mm512_set1_ps(m);
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (i = 0; i + 16 <= n; i += 16) {
    const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
    if (!log) _mm512_storeu_ps(y + i, e);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  }
  if (i < n) {
    const __m512 e = _mm512_maskz_mov_ps(tail, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + i), vm)));
    if (!log) _mm512_mask_storeu_ps(y + i, tail, e);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
  }
  const double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
  if (log) {
    const __m512 lse = _mm512_set1_ps(float(std::log(sum)));
    for (i = 0; i + 16 <= n; i += 16)
      _mm512_storeu_ps(y + i, _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), lse));
    if (i < n)
      _mm512_mask_storeu_ps(y + i, tail, _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + i), vm), lse));
  } else {
    const __m512 inv = _mm512_set1_ps(float(1.0 / sum));
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(y + i), inv));
    if (i < n) _mm512_mask_storeu_ps(y + i, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, y + i), inv));
  }
  return true;
}

VL_TARGET_POP

// ================================ AVX2 + FMA ======================================================
VL_TARGET_PUSH(VL_AVX2_TARGET)

inline __m256 exp256(__m256 x) {
  // Clamped so 2^n stays a normal float: results below e^-87 become ~1e-38 instead of 0, which no
  // activation here can tell apart (they divide by 1 + e^x).
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.f)), _mm256_set1_ps(88.f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kExpP[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP[i]));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
inline __m256 erf256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-4.f)), _mm256_set1_ps(4.f));
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(kErfAlpha[0]);
  for (int i = 1; i < 7; ++i) p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(kErfAlpha[i]));
  __m256 q = _mm256_set1_ps(kErfBeta[0]);
  for (int i = 1; i < 5; ++i) q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(kErfBeta[i]));
  return _mm256_div_ps(_mm256_mul_ps(x, p), q);
}
inline __m256 act256(__m256 v, Activation act) {
  switch (act) {
    case Activation::RELU: return _mm256_max_ps(v, _mm256_setzero_ps());
    case Activation::GELU: {
      __m256 e = erf256(_mm256_mul_ps(v, _mm256_set1_ps(kSqrtHalf)));
      return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(e, _mm256_set1_ps(1.f)));
    }
    case Activation::GELU_TANH: {
      __m256 v3 = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
      __m256 u = _mm256_mul_ps(_mm256_fmadd_ps(v3, _mm256_set1_ps(kGeluTanhA), v), _mm256_set1_ps(-2.f * kGeluTanhC));
      return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.f), exp256(u)));
    }
    case Activation::QUICK_GELU: {
      __m256 e = exp256(_mm256_mul_ps(v, _mm256_set1_ps(-kQuickGeluC)));
      return _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.f), e));
    }
    default: return v;
  }
}

struct Avx2Isa {
  static constexpr int MR = 6, NV = 2, NR = 16;  // 12 ymm accumulators + 2 B + 1 broadcast
  static constexpr int64_t KC_MAX = 384;

  static void pack_a(float* dst, const float* src, int64_t rs, int64_t cs, int64_t kc, int mv) {
    if (cs == 1) {
      for (int i = 0; i < MR; ++i)
        for (int64_t k = 0; k < kc; ++k) dst[k * MR + i] = i < mv ? src[i * rs + k] : 0.f;
      return;
    }
    for (int64_t k = 0; k < kc; ++k)
      for (int i = 0; i < MR; ++i) dst[k * MR + i] = i < mv ? src[i * rs + k * cs] : 0.f;
  }
  static void pack_b(float* dst, const float* src, int64_t rs, int64_t cs, int64_t kc, int nv) {
    if (cs == 1 && nv == NR) {
      for (int64_t k = 0; k < kc; ++k)
        for (int j = 0; j < NV; ++j) _mm256_store_ps(dst + k * NR + 8 * j, _mm256_loadu_ps(src + k * rs + 8 * j));
      return;
    }
    if (rs == 1) {
      for (int j = 0; j < NR; ++j)
        for (int64_t k = 0; k < kc; ++k) dst[k * NR + j] = j < nv ? src[j * cs + k] : 0.f;
      return;
    }
    for (int64_t k = 0; k < kc; ++k)
      for (int j = 0; j < NR; ++j) dst[k * NR + j] = j < nv ? src[k * rs + j * cs] : 0.f;
  }

  static void kernel(int64_t kc, const float* __restrict a, const float* __restrict b, float* c, int64_t ldc,
                     int mv, int nv, const Epilogue& ep) {
    __m256 acc[MR][NV];
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k) {
      __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
      _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR), _MM_HINT_T0);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m256 av = _mm256_broadcast_ss(a + i);
        acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
      }
      a += MR;
      b += NR;
    }
    if (nv == NR) {
      const __m256 alpha = _mm256_set1_ps(ep.alpha);
      __m256 bias[NV];
      for (int j = 0; j < NV; ++j)
        bias[j] = (ep.last && ep.bias) ? _mm256_loadu_ps(ep.bias + 8 * j) : _mm256_setzero_ps();
      for (int i = 0; i < mv; ++i)
        for (int j = 0; j < NV; ++j) {
          float* cij = c + i * ldc + 8 * j;
          __m256 v = _mm256_mul_ps(acc[i][j], alpha);
          if (!ep.first) v = _mm256_add_ps(v, _mm256_loadu_ps(cij));
          if (ep.last) v = act256(_mm256_add_ps(v, bias[j]), ep.act);
          _mm256_storeu_ps(cij, v);
        }
      return;
    }
    alignas(32) float tile[MR][NR];  // column edge: finish through a small buffer
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NV; ++j) _mm256_store_ps(&tile[i][8 * j], acc[i][j]);
    for (int i = 0; i < mv; ++i) {
      alignas(32) float row[NR];
      for (int j = 0; j < NR; ++j) {
        float v = ep.alpha * tile[i][j];
        if (j < nv) {
          if (!ep.first) v += c[i * ldc + j];
          if (ep.last && ep.bias) v += ep.bias[j];
        }
        row[j] = v;
      }
      if (ep.last)
        for (int j = 0; j < NV; ++j) _mm256_store_ps(row + 8 * j, act256(_mm256_load_ps(row + 8 * j), ep.act));
      for (int j = 0; j < nv; ++j) c[i * ldc + j] = row[j];
    }
  }

  static void activation(float* x, int64_t n, Activation act) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, act256(_mm256_loadu_ps(x + i), act));
    if (i < n) {
      alignas(32) float t[8] = {};
      std::memcpy(t, x + i, size_t(n - i) * sizeof(float));
      _mm256_store_ps(t, act256(_mm256_load_ps(t), act));
      std::memcpy(x + i, t, size_t(n - i) * sizeof(float));
    }
  }
};

VL_TARGET_POP
#endif  // VL_GEMM_X86

// ---- the blocked driver (ISA-independent loop control; the hot loops live in Isa::*) ----------

// The K block of a product with inner dim K: equal blocks of at most KC_MAX, no sliver at the end.
template <class Isa>
int64_t k_block(int64_t K) {
  const int64_t kblocks = ceil_div(K, Isa::KC_MAX);
  return round_up(ceil_div(K, kblocks), 8);
}

// Computes C[m0:m1, n0:n1] on the calling thread. m0 is a multiple of MR and n0 of NR.
template <class Isa>
void gemm_block(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  constexpr int MR = Isa::MR, NR = Isa::NR;
  const int64_t K = p.K;
  const int64_t KC = k_block<Isa>(K);
  const int64_t NB = std::max<int64_t>(NR, (VL_GEMM_L2_BYTES / int64_t(sizeof(float) * KC)) / NR * NR);
  const int64_t MC = std::max<int64_t>(MR, (VL_GEMM_L3_BYTES / int64_t(sizeof(float) * KC)) / MR * MR);
  float* apack = tl_pack_a.get(size_t(std::min(MC, round_up(m1 - m0, MR)) * KC));
  float* bpack = p.Bp ? nullptr : tl_pack_b.get(size_t(std::min(NB, round_up(n1 - n0, NR)) * KC));

  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = std::min(KC, K - pc);
    Epilogue ep{p.alpha, pc == 0, pc + kc == K, nullptr, p.act};
    for (int64_t ic = m0; ic < m1; ic += MC) {  // one block for M <= ~2700 rows per thread
      const int64_t ic1 = std::min(m1, ic + MC);
      for (int64_t i = ic; i < ic1; i += MR)
        Isa::pack_a(apack + (i - ic) * kc, p.A + i * p.lar + pc * p.lac, p.lar, p.lac, kc,
                    int(std::min<int64_t>(MR, ic1 - i)));
      for (int64_t jb = n0; jb < n1; jb += NB) {
        const int64_t nb = std::min(NB, n1 - jb);
        // The block's panels: packed here, or already laid out the same way in the PackedB.
        const float* bblock = p.Bp ? p.Bp + pc * p.bp_npad + jb * kc : bpack;
        if (!p.Bp)
          for (int64_t j = 0; j < nb; j += NR)
            Isa::pack_b(bpack + j * kc, p.B + pc * p.lbr + (jb + j) * p.lbc, p.lbr, p.lbc, kc,
                        int(std::min<int64_t>(NR, nb - j)));
        for (int64_t i = ic; i < ic1; i += MR) {
          const int mv = int(std::min<int64_t>(MR, ic1 - i));
          for (int64_t j = 0; j < nb; j += NR) {
            ep.bias = p.bias ? p.bias + jb + j : nullptr;
            Isa::kernel(kc, apack + (i - ic) * kc, bblock + j * kc, p.C + i * p.N + jb + j, p.N, mv,
                        int(std::min<int64_t>(NR, nb - j)), ep);
          }
        }
      }
    }
  }
}

// Splits C into tm × tn blocks (tm·tn = threads) to minimize the slowest thread's time: its FMAs
// (padding to whole tiles counted) plus its packing (~8 flop-equivalents per packed element; A is
// packed once per column block, B once per row block unless it is prepacked). The grid never changes
// the results: every C tile sums the same K blocks in the same order.
struct Grid { int tm, tn; int64_t rows, cols; };
Grid partition(int64_t M, int64_t N, int64_t K, int threads, int MR, int NR, bool b_prepacked) {
  Grid best{1, threads, 0, 0};
  double best_cost = -1;
  for (int tm = 1; tm <= threads; ++tm) {
    if (threads % tm) continue;
    int tn = threads / tm;
    int64_t rows = ceil_div(ceil_div(M, MR), tm) * MR, cols = ceil_div(ceil_div(N, NR), tn) * NR;
    double cost = double(rows) * double(cols) * double(K) + 8.0 * double(K) * double(rows + (b_prepacked ? 0 : cols));
    if (best_cost < 0 || cost < best_cost) best = {tm, tn, rows, cols}, best_cost = cost;
  }
  return best;
}

template <class Isa>
void gemm_run(const Problem& p, int threads) {
  constexpr int MR = Isa::MR, NR = Isa::NR;
  // Below ~1 MFLOP of work per thread the fork/join costs more than it saves.
  const double flops = 2.0 * double(p.M) * double(p.N) * double(p.K);
  threads = int(std::max<double>(1, std::min<double>(threads, flops / 1e6)));
  if (threads <= 1) {
    gemm_block<Isa>(p, 0, p.M, 0, p.N);
    return;
  }
  // Thread counts with few divisors (e.g. 7) still use every thread: the grid may leave some idle
  // only when the matrix has fewer tiles than threads.
  const Grid g = partition(p.M, p.N, p.K, threads, MR, NR, p.Bp != nullptr);
#pragma omp parallel num_threads(g.tm * g.tn)
  {
    const int t = omp_get_thread_num();
    const int64_t m0 = (t / g.tn) * g.rows, n0 = (t % g.tn) * g.cols;
    if (m0 < p.M && n0 < p.N) gemm_block<Isa>(p, m0, std::min(p.M, m0 + g.rows), n0, std::min(p.N, n0 + g.cols));
  }
}

enum class Isa { GENERIC, AVX2, AVX512 };

Isa choose_isa() {
  const CpuInfo& ci = cpu_info();
  Isa best = Isa::GENERIC;
#if VL_GEMM_X86
  if (ci.avx512f && ci.avx512vl && ci.avx512dq && ci.avx512bw) best = Isa::AVX512;
  else if (ci.avx2 && ci.fma) best = Isa::AVX2;
#endif
  if (const char* env = std::getenv("VISLANG_GEMM_ISA")) {
    const std::string want = env;
    if (want == "generic") best = Isa::GENERIC;
    else if (want == "avx2" && best == Isa::AVX512) best = Isa::AVX2;
  }
  (void)ci;
  return best;
}

Isa active_isa() {
  static const Isa isa = choose_isa();
  return isa;
}

void run(const Problem& p, int threads) {
  switch (active_isa()) {
#if VL_GEMM_X86
    case Isa::AVX512: gemm_run<Avx512>(p, threads); return;
    case Isa::AVX2: gemm_run<Avx2Isa>(p, threads); return;
#endif
    default: gemm_run<GenericIsa>(p, threads); return;
  }
}

// Lays out B (K, N) as the PackedB of micro-kernel Isa (see gemm.h): one task per (K block, panel).
template <class Isa>
std::shared_ptr<const PackedB> pack_b_for(int64_t K, int64_t N, const float* B, int64_t rs, int64_t cs, int isa_id) {
  constexpr int NR = Isa::NR;
  auto pb = std::make_shared<PackedB>();
  pb->K = K, pb->N = N, pb->kc = k_block<Isa>(K), pb->nr = NR, pb->n_padded = round_up(N, NR), pb->isa = isa_id;
  const size_t bytes = round_up(int64_t(pb->bytes()), 64);
  pb->panels.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
  VL_CHECK(pb->panels, "sgemm_pack_b: cannot allocate ", bytes, " bytes for a packed (", K, ", ", N, ") matrix");
  const int64_t KC = pb->kc, npad = pb->n_padded, panels = npad / NR, tasks = ceil_div(K, KC) * panels;
  float* dst = pb->panels.get();
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && tasks > 1 && K * N >= (1 << 16))
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t pc = (t / panels) * KC, j = (t % panels) * NR, kc = std::min(KC, K - pc);
    Isa::pack_b(dst + pc * npad + j * kc, B + pc * rs + j * cs, rs, cs, kc, int(std::min<int64_t>(NR, N - j)));
  }
  return pb;
}

// K == 0: the product is empty, C = act(bias) (or act(0)).
void fill_empty_product(int64_t M, int64_t N, float* C, const float* bias, Activation act) {
  for (int64_t j = 0; j < N; ++j) C[j] = act_scalar(act, bias ? bias[j] : 0.f);
  for (int64_t i = 1; i < M; ++i) std::memcpy(C + i * N, C, size_t(N) * sizeof(float));
}

int max_threads_here() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

}  // namespace

const char* sgemm_isa() {
  switch (active_isa()) {
    case Isa::AVX512: return "avx512";
    case Isa::AVX2: return "avx2";
    default: return "generic";
  }
}

void sgemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda_row, int64_t lda_col,
           const float* B, int64_t ldb_row, int64_t ldb_col, float* C, const float* bias, Activation act) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return fill_empty_product(M, N, C, bias, act);
  run(Problem{M, N, K, alpha, A, lda_row, lda_col, B, ldb_row, ldb_col, C, bias, act}, max_threads_here());
}

std::shared_ptr<const PackedB> sgemm_pack_b(int64_t K, int64_t N, const float* B, int64_t ldb_row,
                                            int64_t ldb_col) {
  VL_CHECK(K > 0 && N > 0, "sgemm_pack_b: empty matrix (", K, ", ", N, ")");
  const Isa isa = active_isa();
  switch (isa) {
#if VL_GEMM_X86
    case Isa::AVX512: return pack_b_for<Avx512>(K, N, B, ldb_row, ldb_col, int(isa));
    case Isa::AVX2: return pack_b_for<Avx2Isa>(K, N, B, ldb_row, ldb_col, int(isa));
#endif
    default: return pack_b_for<GenericIsa>(K, N, B, ldb_row, ldb_col, int(isa));
  }
}

void sgemm_prepacked(int64_t M, float alpha, const float* A, int64_t lda_row, int64_t lda_col, const PackedB& B,
                     float* C, const float* bias, Activation act) {
  VL_CHECK(B.isa == int(active_isa()) && B.data(), "sgemm_prepacked: B was packed for another micro-kernel");
  if (M <= 0) return;
  Problem p{M, B.N, B.K, alpha, A, lda_row, lda_col, nullptr, 0, 0, C, bias, act};
  p.Bp = B.data();
  p.bp_npad = B.n_padded;
  run(p, max_threads_here());
}

void sgemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                   int64_t a_batch_stride, int64_t lda_row, int64_t lda_col, const float* B,
                   int64_t b_batch_stride, int64_t ldb_row, int64_t ldb_col, float* C, const float* bias,
                   Activation act) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const int threads = max_threads_here();
  auto one = [&](int64_t b, int th) {
    float* Cb = C + b * M * N;
    if (K <= 0) return fill_empty_product(M, N, Cb, bias, act);
    run(Problem{M, N, K, alpha, A + b * a_batch_stride, lda_row, lda_col, B + b * b_batch_stride, ldb_row,
                ldb_col, Cb, bias, act},
        th);
  };
  // One matrix per thread when there are enough of them and each is small (a ViT attention head:
  // 50×64×50); otherwise each product is split across all threads.
  const double flops = 2.0 * double(M) * double(N) * double(K);
  if (threads > 1 && batch >= threads && flops < 64e6) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t b = 0; b < batch; ++b) one(b, 1);
  } else {
    for (int64_t b = 0; b < batch; ++b) one(b, threads);
  }
}

bool softmax_row_f32(float* y, const float* x, int64_t n, bool log) {
  if (n <= 0) return false;
#if VL_GEMM_X86
  if (active_isa() == Isa::AVX512) return softmax_row512(y, x, n, log);
#endif
  (void)y, (void)x, (void)log;
  return false;
}

void activation_inplace_f32(float* x, int64_t n, Activation act) {
  if (act == Activation::NONE || n <= 0) return;
  switch (active_isa()) {
#if VL_GEMM_X86
    case Isa::AVX512: Avx512::activation(x, n, act); return;
    case Isa::AVX2: Avx2Isa::activation(x, n, act); return;
#endif
    default: GenericIsa::activation(x, n, act); return;
  }
}

}  // namespace vislang::cpu
