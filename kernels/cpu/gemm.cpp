// kernels/cpu/gemm.cpp — BLIS-style GEMM: packing, register-tile micro-kernels, cache blocking,
// OpenMP, fused bias + activation; f32 (sgemm) and bf16 inputs with f32 sums (bgemm). See gemm.h for
// the contracts.
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
//
// bgemm runs the same driver and the same 8 × 48 tile on panels of bf16 pairs (Avx512Bf16Isa): one
// step of the micro-kernel covers two values of k, the K block holds up to VL_BGEMM_KC = 1536 values
// (the f32 block's bytes), and a bf16 output over several K blocks keeps its partial sums in a
// per-thread f32 scratch, rounding once in the last block's store. On this Zen 4 the vdpbf16ps
// kernel and the AVX-512F emulation gave identical bits on random inputs (the hardware adds the two
// products of a lane one after the other, as Intel's pseudocode says).
#include "kernels/cpu/gemm.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "core/cpu_features.h"
#include "core/dtype.h"

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
#ifndef VL_BGEMM_KC  // bgemm's K block, in values of k (half the bytes of the f32 block's)
#define VL_BGEMM_KC 1536
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
  const void* A;     // f32, or bf16 bits when a_bf16 (bgemm only)
  int64_t lar, lac;  // A strides: row (m), col (k)
  const void* B;     // f32, or bf16 bits when b_bf16 (bgemm only)
  int64_t lbr, lbc;  // B strides: row (k), col (n)
  float* C;          // (M, N), ldc = N; null when the output is Cb
  const float* bias;  // (N) or null
  Activation act;
  const void* Bp = nullptr;  // B's prepacked panels (PackedB layout, Isa::Panel words) or null: pack per call
  int64_t bp_npad = 0;       // PackedB::n_padded
  bool a_bf16 = false, b_bf16 = false;
  uint16_t* Cb = nullptr;    // (M, N) bf16 output, ldc = N (bgemm only; then C is null)
};

// What the kernel does when it stores a tile: first K block overwrites C, later ones accumulate;
// the last one adds the bias (already offset to the tile's first column) and applies act. With cb
// set (a bf16 output), the last block writes its result rounded to bf16 at cb (row stride ldcb)
// instead of at c, which then holds only the partial sums of the earlier K blocks.
struct Epilogue {
  float alpha;
  bool first, last;
  const float* bias;
  Activation act;
  uint16_t* cb = nullptr;
  int64_t ldcb = 0;
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
thread_local Scratch tl_pack_a, tl_pack_b, tl_acc;  // tl_acc: bgemm's f32 partial sums of a bf16 C

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// ---- scalar math of record (double, kernels/backend.h) for the generic path and edges ----------
inline float act_scalar(Activation a, float x) { return float(apply_activation_ref(a, double(x))); }

// Panels of f32 micro-kernels hold one float per k (the bf16 kernel: one pair of bf16 per word).
struct F32Panels {
  using Panel = float;
  static constexpr bool kBf16 = false;
  static int64_t kc_panel(int64_t kc) { return kc; }  // panel rows for kc values of k
};

// ---- generic C++ micro-kernel (any CPU) -----------------------------------------------------------

struct GenericIsa : F32Panels {
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

// 16 floats rounded to bf16 (nearest even, NaN stays a quiet NaN): bit-identical to core/dtype.h's
// f32_to_bf16, as 16 uint16 in a ymm.
inline __m256i bf16_round512(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

// The first n of 16 lanes (all for n >= 16).
inline __mmask16 tail_mask(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

// The AVX-512 micro-kernel, shared by the f32 (Avx512Isa) and bf16 (Avx512Bf16Isa) kernels: an
// MR × (16·NV) tile of f32 accumulators; per step (one k of f32 panels, one pair of k of bf16 panels)
// NV vectors of B (Derived::load), MR broadcasts of A (Derived::broadcast) and MR·NV
// Derived::madd. kernel() picks the instantiation kernel_n<NU, MU> for a tile of mv rows, nv columns.
// A right-edge panel (nv <= NR - 16) runs a narrower instantiation that skips the all-zero vectors:
// N = 49 (a 7×7 patch grid) costs 48 + 16 columns of FMAs instead of 2 × 48.
// Likewise a bottom-edge panel (mv < MR rows) runs only ceil(mv/2)·2 rows of FMAs: M = 50 (ViT-B/32
// tokens at batch 1) costs 6·8 + 2 rows instead of 7·8. Every C element gets the same FMA chain in
// any instantiation, so the results do not depend on which one ran.
template <class Derived, int MR, int NV>
struct Avx512Tiles {
  template <class P>
  static void kernel(int64_t kc, const P* a, const P* b, float* c, int64_t ldc, int mv, int nv, const Epilogue& ep) {
    if (mv >= MR || MR != 8) return kernel_nv<MR>(kc, a, b, c, ldc, mv, nv, ep);
    switch ((mv + 1) / 2) {
      case 1: return kernel_nv<std::min(2, MR)>(kc, a, b, c, ldc, mv, nv, ep);
      case 2: return kernel_nv<std::min(4, MR)>(kc, a, b, c, ldc, mv, nv, ep);
      case 3: return kernel_nv<std::min(6, MR)>(kc, a, b, c, ldc, mv, nv, ep);
      default: return kernel_nv<MR>(kc, a, b, c, ldc, mv, nv, ep);
    }
  }
  template <int MU, class P>
  static void kernel_nv(int64_t kc, const P* a, const P* b, float* c, int64_t ldc, int mv, int nv, const Epilogue& ep) {
    switch ((nv + 15) / 16) {
      case 1: return Derived::template kernel_n<1, MU>(kc, a, b, c, ldc, mv, nv, ep);
      case 2: return Derived::template kernel_n<std::min(2, NV), MU>(kc, a, b, c, ldc, mv, nv, ep);
      case 3: return Derived::template kernel_n<std::min(3, NV), MU>(kc, a, b, c, ldc, mv, nv, ep);
      default: return Derived::template kernel_n<NV, MU>(kc, a, b, c, ldc, mv, nv, ep);
    }
  }

  // C tile (mv × nv) from packed panels of kc values of k. Uses the first NU of the panel's NV vectors
  // (B rows are still NR words apart) and the first MU of the A panel's MR rows (A columns are still
  // MR words apart).
  template <int NU, int MU, class P>
  static void kernel_n(int64_t kc, const P* __restrict a, const P* __restrict b, float* c, int64_t ldc, int mv, int nv,
                       const Epilogue& ep) {
    constexpr int NR = 16 * NV;
    __m512 acc[MU][NU];
#pragma GCC unroll 16
    for (int i = 0; i < MU; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NU; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int i = 0; i < mv; ++i)  // the lines the store writes arrive while the FMAs run
      for (int j = 0; j < NU; ++j)
        __builtin_prefetch(ep.last && ep.cb ? static_cast<void*>(ep.cb + i * ep.ldcb + 16 * j)
                                            : static_cast<void*>(c + i * ldc + 16 * j), 1, 3);
    const int64_t steps = Derived::kc_panel(kc);
#pragma GCC unroll 4
    for (int64_t k = 0; k < steps; ++k) {
      typename Derived::Vec bv[NU];
#pragma GCC unroll 4
      for (int j = 0; j < NU; ++j) bv[j] = Derived::load(b + 16 * j);
#pragma GCC unroll 4
      for (int j = 0; j < NU; ++j) _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR + 16 * j), _MM_HINT_T0);
#pragma GCC unroll 16
      for (int i = 0; i < MU; ++i) {
        const typename Derived::Vec av = Derived::broadcast(a + i);
#pragma GCC unroll 4
        for (int j = 0; j < NU; ++j) acc[i][j] = Derived::madd(acc[i][j], av, bv[j]);
      }
      a += MR;
      b += NR;
    }
    store<NU, MU>(acc, c, ldc, mv, nv, ep);
  }

  // Writes a tile of sums (see Epilogue).
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
        if (ep.last && ep.cb) _mm256_mask_storeu_epi16(ep.cb + i * ep.ldcb + 16 * j, m[j], bf16_round512(v));
        else if (full) _mm512_storeu_ps(ci + 16 * j, v);
        else _mm512_mask_storeu_ps(ci + 16 * j, m[j], v);
      }
    }
  }
};

template <int MR_, int NV_>
struct Avx512Isa : F32Panels, Avx512Tiles<Avx512Isa<MR_, NV_>, MR_, NV_> {
  static constexpr int MR = MR_, NV = NV_, NR = 16 * NV_;
  static constexpr int64_t KC_MAX = VL_GEMM_AVX512_KC;

  // One step of the micro-kernel (Avx512Tiles::kernel_n): acc += a broadcast · a row of B.
  using Vec = __m512;
  static __m512 load(const float* b) { return _mm512_load_ps(b); }
  static __m512 broadcast(const float* a) { return _mm512_set1_ps(*a); }
  static __m512 madd(__m512 acc, __m512 a, __m512 b) { return _mm512_fmadd_ps(a, b, acc); }

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
    __m512 r[16];
    for (int i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_loadu_ps(src + i * lds) : _mm512_setzero_ps();
    transpose16(r);
    for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ldd, r[i]);
  }
  // In-register transpose of 16 rows of 16 32-bit lanes: r[i][j] <- r[j][i].
  static void transpose16(__m512 (&r)[16]) {
    __m512 t[16];
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

// ================================ bf16 pairs: AVX512_BF16, or emulated with AVX-512F =================
// bgemm's micro-kernel: the tile of Avx512 (same 8 × 48 accumulators, same edge instantiations, same
// store), fed with panels of bf16 pairs: A panel [kcp][MR] words, B panel [kcp][NR] words, word p =
// element k = 2p (low half) | element 2p + 1 (high half) << 16. Per pair, the native kernel issues
// one vdpbf16ps per accumulator (acc += a_hi·b_hi + a_lo·b_lo: two products per f32 lane, twice the
// rate of the f32 FMA); the emulation widens each half to f32 (bf16 is the top half of an f32: a
// shift or a mask) and issues two FMAs in that order, so it forms the same exact products and the
// same f32 additions (vdpbf16ps also flushes subnormal inputs and results to zero).
template <bool Native>
struct Avx512Bf16Isa : Avx512Tiles<Avx512Bf16Isa<Native>, Avx512::MR, Avx512::NV> {
  using Panel = uint32_t;
  static constexpr bool kBf16 = true;
  static constexpr int MR = Avx512::MR, NV = Avx512::NV, NR = Avx512::NR;
  static constexpr int64_t KC_MAX = VL_BGEMM_KC;  // values of k (not pairs) per K block
  static int64_t kc_panel(int64_t kc) { return (kc + 1) / 2; }

  // ---- reading bf16 values from a bf16 or f32 source ----
  static uint16_t bf16_at(const uint16_t* s, int64_t i) { return s[i]; }
  static uint16_t bf16_at(const float* s, int64_t i) { return f32_to_bf16(s[i]); }  // core/dtype.h
  // Elements k and k + 1 of a line (stride st) as a word; k + 1 >= kc reads as 0.
  template <class T>
  static uint32_t pair_at(const T* s, int64_t k, int64_t st, int64_t kc) {
    return uint32_t(bf16_at(s, k * st)) | uint32_t(k + 1 < kc ? bf16_at(s, (k + 1) * st) : 0) << 16;
  }
  // 16 contiguous elements as 8 words (ymm); 32 as 16 words (zmm).
  static __m256 pairs8(const uint16_t* s) { return _mm256_loadu_ps(reinterpret_cast<const float*>(s)); }
  static __m256 pairs8(const float* s) { return _mm256_castsi256_ps(bf16_round512(_mm512_loadu_ps(s))); }
  static __m512 pairs16(const uint16_t* s) { return _mm512_loadu_ps(reinterpret_cast<const float*>(s)); }
  static __m512 pairs16(const float* s) {
    const __m512i lo = _mm512_castsi256_si512(bf16_round512(_mm512_loadu_ps(s)));
    return _mm512_castsi512_ps(_mm512_inserti64x4(lo, bf16_round512(_mm512_loadu_ps(s + 16)), 1));
  }
  // The first lanes of m of 16 contiguous elements (the others 0), zero-extended to 32-bit lanes.
  static __m512i widen16(const uint16_t* s, __mmask16 m) { return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, s)); }
  static __m512i widen16(const float* s, __mmask16 m) { return _mm512_cvtepu16_epi32(bf16_round512(_mm512_maskz_loadu_ps(m, s))); }

  // dst [kcp][MR] <- pairs of A[i*rs + k*cs]; rows >= mv and the half past an odd kc are zero.
  template <class T>
  static void pack_a(uint32_t* dst, const T* src, int64_t rs, int64_t cs, int64_t kc, int mv) {
    int64_t p = 0;
    if (cs == 1 && MR == 8) {  // row-major A (activations): 8 rows × 8 pairs per 8×8 transpose of words
      const T* row[8];
      for (int i = 0; i < 8; ++i) row[i] = src + std::min(i, mv - 1) * rs;  // rows >= mv: zeroed below
      for (; p + 8 <= kc / 2; p += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = i < mv ? pairs8(row[i] + 2 * p) : _mm256_setzero_ps();
        Avx512::transpose8(r);
        for (int i = 0; i < 8; ++i) _mm256_store_ps(reinterpret_cast<float*>(dst + (p + i) * 8), r[i]);
      }
    }
    for (; p < kc_panel(kc); ++p)  // the remaining pairs (all of them for other layouts)
      for (int i = 0; i < MR; ++i) dst[p * MR + i] = i < mv ? pair_at(src + i * rs, 2 * p, cs, kc) : 0u;
  }

  // dst [kcp][NR] <- pairs of B[k*rs + j*cs]; columns >= nv and the half past an odd kc are zero.
  template <class T>
  static void pack_b(uint32_t* dst, const T* src, int64_t rs, int64_t cs, int64_t kc, int nv) {
    int64_t p = 0;
    if (rs == 1) {  // B = Wᵀ, W (N, K) row-major (nn.Linear): a column's pairs are its row's words
      for (; p + 16 <= kc / 2; p += 16)
        for (int j = 0; j < NV; ++j) {
          __m512 r[16];
          for (int i = 0; i < 16; ++i)
            r[i] = 16 * j + i < nv ? pairs16(src + (16 * j + i) * cs + 2 * p) : _mm512_setzero_ps();
          Avx512::transpose16(r);
          for (int i = 0; i < 16; ++i) _mm512_store_ps(reinterpret_cast<float*>(dst + (p + i) * NR + 16 * j), r[i]);
        }
    } else if (cs == 1) {  // row-major B (K, N): rows 2p and 2p + 1 interleaved
      __mmask16 m[NV];
      for (int j = 0; j < NV; ++j) m[j] = tail_mask(std::max(0, nv - 16 * j));
      for (; p < kc / 2; ++p)
        for (int j = 0; j < NV; ++j) {
          const __m512i lo = widen16(src + 2 * p * rs + 16 * j, m[j]);
          const __m512i hi = widen16(src + (2 * p + 1) * rs + 16 * j, m[j]);
          _mm512_store_si512(dst + p * NR + 16 * j, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
    for (; p < kc_panel(kc); ++p)
      for (int j = 0; j < NR; ++j) dst[p * NR + j] = j < nv ? pair_at(src + j * cs, 2 * p, rs, kc) : 0u;
  }

  // One step of the micro-kernel (Avx512Tiles::kernel_n): one pair of k. madd: acc + a_hi·b_hi +
  // a_lo·b_lo per f32 lane, a and b holding 16 pairs each. vdpbf16ps is written as inline assembly so
  // that this file needs no compiler flag for AVX512_BF16 (its intrinsic would need the whole
  // micro-kernel compiled for it); it runs only where cpu_info() reports the extension.
  using Vec = __m512i;
  static __m512i load(const uint32_t* b) { return _mm512_load_si512(b); }
  static __m512i broadcast(const uint32_t* a) { return _mm512_set1_epi32(int(*a)); }
  static __m512 madd(__m512 acc, __m512i a, __m512i b) {
    if constexpr (Native) {
      asm("vdpbf16ps {%2, %1, %0|%0, %1, %2}" : "+v"(acc) : "v"(a), "v"(b));
      return acc;
    } else {
      const __m512i hi = _mm512_set1_epi32(int(0xffff0000u));
      acc = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_and_si512(a, hi)), _mm512_castsi512_ps(_mm512_and_si512(b, hi)), acc);
      return _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(a, 16)), _mm512_castsi512_ps(_mm512_slli_epi32(b, 16)), acc);
    }
  }
};

// y = softmax(x) (or log_softmax) over n floats: exp512, sums in double. Returns false, doing
// nothing, when the row holds a NaN or its maximum is ±inf.
bool softmax_row512(float* y, const float* x, int64_t n, bool log) {
  const __mmask16 tail = tail_mask(int(n % 16));
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

struct Avx2Isa : F32Panels {
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

// Isa::pack_a (IsA) or Isa::pack_b of the operand at base + off elements of its own type: f32, or
// bf16 bits (the bf16 kernel only).
template <class Isa, bool IsA>
void pack_operand(typename Isa::Panel* dst, const void* base, bool bf16, int64_t off, int64_t rs, int64_t cs,
                  int64_t kc, int n) {
  auto from = [&](const auto* src) {
    if constexpr (IsA) Isa::pack_a(dst, src + off, rs, cs, kc, n);
    else Isa::pack_b(dst, src + off, rs, cs, kc, n);
  };
  if constexpr (Isa::kBf16)
    if (bf16) return from(static_cast<const uint16_t*>(base));
  from(static_cast<const float*>(base));
}

// Computes C[m0:m1, n0:n1] on the calling thread. m0 is a multiple of MR and n0 of NR.
template <class Isa>
void gemm_block(const Problem& p, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  using Panel = typename Isa::Panel;
  static_assert(sizeof(Panel) == sizeof(float), "the packing scratch holds 32-bit words");
  constexpr int MR = Isa::MR, NR = Isa::NR;
  const int64_t K = p.K;
  const int64_t KC = k_block<Isa>(K), KCP = Isa::kc_panel(KC);  // K block: values of k, panel rows
  const int64_t NB = std::max<int64_t>(NR, (VL_GEMM_L2_BYTES / int64_t(sizeof(Panel) * KCP)) / NR * NR);
  const int64_t MC = std::max<int64_t>(MR, (VL_GEMM_L3_BYTES / int64_t(sizeof(Panel) * KCP)) / MR * MR);
  Panel* apack = reinterpret_cast<Panel*>(tl_pack_a.get(size_t(std::min(MC, round_up(m1 - m0, MR)) * KCP)));
  Panel* bpack = p.Bp ? nullptr : reinterpret_cast<Panel*>(tl_pack_b.get(size_t(std::min(NB, round_up(n1 - n0, NR)) * KCP)));
  // Where the f32 sums of element (i, n) go: C itself, or for a bf16 output (Cb) computed over
  // several K blocks this thread's (m1 - m0, n1 - n0) scratch; with one K block, nowhere.
  float* acc = p.C;
  int64_t ld_acc = p.N, r0 = 0, c0 = 0;
  if (!acc) {
    ld_acc = 0;
    if (K > KC) acc = tl_acc.get(size_t((m1 - m0) * (n1 - n0))), ld_acc = n1 - n0, r0 = m0, c0 = n0;
  }

  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = std::min(KC, K - pc), kcp = Isa::kc_panel(kc);
    Epilogue ep{p.alpha, pc == 0, pc + kc == K, nullptr, p.act};
    for (int64_t ic = m0; ic < m1; ic += MC) {  // one block for M <= ~2700 rows per thread
      const int64_t ic1 = std::min(m1, ic + MC);
      for (int64_t i = ic; i < ic1; i += MR)
        pack_operand<Isa, true>(apack + (i - ic) * kcp, p.A, p.a_bf16, i * p.lar + pc * p.lac, p.lar, p.lac, kc,
                                int(std::min<int64_t>(MR, ic1 - i)));
      for (int64_t jb = n0; jb < n1; jb += NB) {
        const int64_t nb = std::min(NB, n1 - jb);
        // The block's panels: packed here, or already laid out the same way in the PackedB.
        const Panel* bblock =
            p.Bp ? static_cast<const Panel*>(p.Bp) + Isa::kc_panel(pc) * p.bp_npad + jb * kcp : bpack;
        if (!p.Bp)
          for (int64_t j = 0; j < nb; j += NR)
            pack_operand<Isa, false>(bpack + j * kcp, p.B, p.b_bf16, pc * p.lbr + (jb + j) * p.lbc, p.lbr, p.lbc, kc,
                                     int(std::min<int64_t>(NR, nb - j)));
        for (int64_t i = ic; i < ic1; i += MR) {
          const int mv = int(std::min<int64_t>(MR, ic1 - i));
          for (int64_t j = 0; j < nb; j += NR) {
            ep.bias = p.bias ? p.bias + jb + j : nullptr;
            if (p.Cb) ep.cb = p.Cb + i * p.N + jb + j, ep.ldcb = p.N;
            float* c = acc ? acc + (i - r0) * ld_acc + (jb + j - c0) : nullptr;
            Isa::kernel(kc, apack + (i - ic) * kcp, bblock + j * kcp, c, ld_acc, mv,
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

// bgemm's kernel: vdpbf16ps, its AVX-512F emulation, or none (no AVX-512 sgemm kernels here).
enum class Bf16Isa { NONE, EMULATED, NATIVE };
constexpr int kBf16PackId = 16;  // PackedB::isa of bf16 panels: one layout for both kernels

Bf16Isa best_bf16_isa() {
  if (active_isa() != Isa::AVX512) return Bf16Isa::NONE;
  return cpu_info().avx512_bf16 ? Bf16Isa::NATIVE : Bf16Isa::EMULATED;
}
// The default: the best this CPU runs, or lower when VISLANG_BF16_GEMM asks for it.
Bf16Isa default_bf16_isa() {
  static const Bf16Isa isa = [] {
    Bf16Isa best = best_bf16_isa();
    if (const char* env = std::getenv("VISLANG_BF16_GEMM")) {
      const std::string want = env;
      if (want == "off") best = Bf16Isa::NONE;
      else if (want == "emulated" && best == Bf16Isa::NATIVE) best = Bf16Isa::EMULATED;
    }
    return best;
  }();
  return isa;
}
std::atomic<int>& bf16_isa_slot() {  // the kernel in use: the default unless bgemm_set_isa changed it
  static std::atomic<int> slot{int(default_bf16_isa())};
  return slot;
}
Bf16Isa active_bf16_isa() { return Bf16Isa(bf16_isa_slot().load(std::memory_order_relaxed)); }

void run_bf16(const Problem& p, int threads) {
  switch (active_bf16_isa()) {
#if VL_GEMM_X86
    case Bf16Isa::NATIVE: gemm_run<Avx512Bf16Isa<true>>(p, threads); return;
    case Bf16Isa::EMULATED: gemm_run<Avx512Bf16Isa<false>>(p, threads); return;
#endif
    default: VL_FAIL("bgemm: this CPU has no AVX-512 kernels (callers check bgemm_supported())");
  }
}

// Lays out B (p.K, p.N) as the PackedB of micro-kernel Isa (see gemm.h): one task per (K block, panel).
template <class Isa>
std::shared_ptr<const PackedB> pack_b_for(const Problem& p, int isa_id) {
  using Panel = typename Isa::Panel;
  constexpr int NR = Isa::NR;
  const int64_t K = p.K, N = p.N;
  auto pb = std::make_shared<PackedB>();
  pb->K = K, pb->N = N, pb->kc = k_block<Isa>(K), pb->nr = NR, pb->n_padded = round_up(N, NR), pb->isa = isa_id;
  pb->bf16 = Isa::kBf16;
  const size_t bytes = round_up(int64_t(pb->bytes()), 64);
  pb->panels.reset(std::aligned_alloc(64, bytes));
  VL_CHECK(pb->panels, "gemm: cannot allocate ", bytes, " bytes for a packed (", K, ", ", N, ") matrix");
  const int64_t KC = pb->kc, npad = pb->n_padded, panels = npad / NR, tasks = ceil_div(K, KC) * panels;
  Panel* dst = static_cast<Panel*>(pb->panels.get());
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && tasks > 1 && K * N >= (1 << 16))
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t pc = (t / panels) * KC, j = (t % panels) * NR, kc = std::min(KC, K - pc);
    pack_operand<Isa, false>(dst + Isa::kc_panel(pc) * npad + j * Isa::kc_panel(kc), p.B, p.b_bf16,
                             pc * p.lbr + j * p.lbc, p.lbr, p.lbc, kc, int(std::min<int64_t>(NR, N - j)));
  }
  return pb;
}

// K == 0: the product is empty, C = act(bias) (or act(0)), rounded to bf16 for a bf16 output.
void fill_empty_product(int64_t M, int64_t N, const GemmOutput& C, const float* bias, Activation act) {
  const size_t row_bytes = size_t(N) * (C.bf16 ? 2 : 4);
  for (int64_t j = 0; j < N; ++j) {
    const float v = act_scalar(act, bias ? bias[j] : 0.f);
    if (C.bf16) static_cast<uint16_t*>(C.p)[j] = f32_to_bf16(v);
    else static_cast<float*>(C.p)[j] = v;
  }
  char* c = static_cast<char*>(C.p);
  for (int64_t i = 1; i < M; ++i) std::memcpy(c + i * row_bytes, c, row_bytes);
}

int max_threads_here() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

// Calls one(b, threads) for every matrix b of a batch: one matrix per thread when there are enough of
// them and each is small (a ViT attention head: 50×64×50); otherwise each on all threads in turn.
template <class F>
void for_each_matrix(int64_t batch, int64_t M, int64_t N, int64_t K, F&& one) {
  const int threads = max_threads_here();
  const double flops = 2.0 * double(M) * double(N) * double(K);
  if (threads > 1 && batch >= threads && flops < 64e6) {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t b = 0; b < batch; ++b) one(b, 1);
  } else {
    for (int64_t b = 0; b < batch; ++b) one(b, threads);
  }
}

// bgemm's Problem: the operands' element types and the output's.
Problem bf16_problem(int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A, const GemmOperand& B,
                     const GemmOutput& C, const float* bias, Activation act) {
  Problem p{M, N, K, alpha, A.p, A.row_stride, A.col_stride, B.p, B.row_stride, B.col_stride,
            C.bf16 ? nullptr : static_cast<float*>(C.p), bias, act};
  p.a_bf16 = A.bf16, p.b_bf16 = B.bf16;
  p.Cb = C.bf16 ? static_cast<uint16_t*>(C.p) : nullptr;
  return p;
}
// The operand / output moved on by n elements of its type.
GemmOperand advanced(GemmOperand x, int64_t n) {
  x.p = static_cast<const char*>(x.p) + n * (x.bf16 ? 2 : 4);
  return x;
}
GemmOutput advanced(GemmOutput x, int64_t n) {
  x.p = static_cast<char*>(x.p) + n * (x.bf16 ? 2 : 4);
  return x;
}

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
  if (K <= 0) return fill_empty_product(M, N, GemmOutput{C, false}, bias, act);
  run(Problem{M, N, K, alpha, A, lda_row, lda_col, B, ldb_row, ldb_col, C, bias, act}, max_threads_here());
}

std::shared_ptr<const PackedB> sgemm_pack_b(int64_t K, int64_t N, const float* B, int64_t ldb_row,
                                            int64_t ldb_col) {
  VL_CHECK(K > 0 && N > 0, "sgemm_pack_b: empty matrix (", K, ", ", N, ")");
  const Problem p{0, N, K, 1.f, nullptr, 0, 0, B, ldb_row, ldb_col, nullptr, nullptr, Activation::NONE};
  const Isa isa = active_isa();
  switch (isa) {
#if VL_GEMM_X86
    case Isa::AVX512: return pack_b_for<Avx512>(p, int(isa));
    case Isa::AVX2: return pack_b_for<Avx2Isa>(p, int(isa));
#endif
    default: return pack_b_for<GenericIsa>(p, int(isa));
  }
}

void sgemm_prepacked(int64_t M, float alpha, const float* A, int64_t lda_row, int64_t lda_col, const PackedB& B,
                     float* C, const float* bias, Activation act) {
  VL_CHECK(B.isa == int(active_isa()) && !B.bf16 && B.data(), "sgemm_prepacked: B was packed for another micro-kernel");
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
  for_each_matrix(batch, M, N, K, [&](int64_t b, int threads) {
    float* Cb = C + b * M * N;
    if (K <= 0) return fill_empty_product(M, N, GemmOutput{Cb, false}, bias, act);
    run(Problem{M, N, K, alpha, A + b * a_batch_stride, lda_row, lda_col, B + b * b_batch_stride, ldb_row,
                ldb_col, Cb, bias, act},
        threads);
  });
}

// ---- bgemm ------------------------------------------------------------------------------------------

bool bgemm_supported() { return active_bf16_isa() != Bf16Isa::NONE; }

const char* bgemm_isa() {
  switch (active_bf16_isa()) {
    case Bf16Isa::NATIVE: return "avx512_bf16";
    case Bf16Isa::EMULATED: return "avx512f-emulated";
    default: return "none";
  }
}

bool bgemm_set_isa(const std::string& name) {
  const Bf16Isa best = best_bf16_isa();
  Bf16Isa want = default_bf16_isa();
  if (name == "avx512_bf16") want = Bf16Isa::NATIVE;
  else if (name == "avx512f-emulated") want = Bf16Isa::EMULATED;
  else if (name != "auto") return false;
  if (int(want) > int(best)) return false;
  bf16_isa_slot().store(int(want), std::memory_order_relaxed);
  return true;
}

void bgemm(int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A, const GemmOperand& B,
           const GemmOutput& C, const float* bias, Activation act) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) return fill_empty_product(M, N, C, bias, act);
  run_bf16(bf16_problem(M, N, K, alpha, A, B, C, bias, act), max_threads_here());
}

void bgemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A,
                   int64_t a_batch_stride, const GemmOperand& B, int64_t b_batch_stride, const GemmOutput& C,
                   const float* bias, Activation act) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  for_each_matrix(batch, M, N, K, [&](int64_t b, int threads) {
    const GemmOutput Cb = advanced(C, b * M * N);
    if (K <= 0) return fill_empty_product(M, N, Cb, bias, act);
    run_bf16(bf16_problem(M, N, K, alpha, advanced(A, b * a_batch_stride), advanced(B, b * b_batch_stride), Cb, bias,
                          act),
             threads);
  });
}

std::shared_ptr<const PackedB> bgemm_pack_b(int64_t K, int64_t N, const GemmOperand& B) {
  VL_CHECK(K > 0 && N > 0, "bgemm_pack_b: empty matrix (", K, ", ", N, ")");
  VL_CHECK(bgemm_supported(), "bgemm_pack_b: this CPU has no AVX-512 kernels (callers check bgemm_supported())");
#if VL_GEMM_X86
  // Both bf16 kernels read this layout.
  return pack_b_for<Avx512Bf16Isa<true>>(bf16_problem(0, N, K, 1.f, GemmOperand{}, B, GemmOutput{}, nullptr,
                                                      Activation::NONE),
                                         kBf16PackId);
#else
  return nullptr;
#endif
}

void bgemm_prepacked(int64_t M, float alpha, const GemmOperand& A, const PackedB& B, const GemmOutput& C,
                     const float* bias, Activation act) {
  VL_CHECK(B.isa == kBf16PackId && B.bf16 && B.pairs(), "bgemm_prepacked: B was not packed by bgemm_pack_b");
  if (M <= 0) return;
  Problem p = bf16_problem(M, B.N, B.K, alpha, A, GemmOperand{}, C, bias, act);
  p.Bp = B.pairs();
  p.bp_npad = B.n_padded;
  run_bf16(p, max_threads_here());
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
