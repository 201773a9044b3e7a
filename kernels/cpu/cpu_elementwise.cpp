// kernels/cpu/cpu_elementwise.cpp — Op::COPY, FILL, BINARY, SCALAR, UNARY, CLAMP, WHERE on the CPU.
//
// Every kernel runs on the merged N-d loop of cpu_common.h (a contiguous op is one long row, split
// into kTile pieces over the threads). Per piece, each input is either used in place (f32 with unit
// inner stride), read once as a scalar (inner stride 0: a broadcast), or converted / gathered into an
// f32 buffer; the math runs on contiguous f32 in `#pragma omp simd` loops (cpu_math.h); the result
// is written in place or rounded back to the output dtype. The math matches apply_unary_ref /
// apply_binary_ref of kernels/backend.cpp, NaN rules included.
// GCC 12 reports its own AVX-512 intrinsic headers as using uninitialized values (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/cpu_math.h"
#include "kernels/cpu/gemm.h"  // activation_inplace_f32: GELU & co. vectorized

namespace vislang::cpu_kernels {
namespace {

// One input of a piece: n contiguous floats at p, or the single value s when `scalar`.
struct Operand {
  const float* p = nullptr;
  float s = 0;
  bool scalar = false;
};

// Reads n elements of a tensor at `src` (inner stride `stride`) as an Operand, using buf when a
// conversion or gather is needed.
Operand operand(const char* src, DType t, int64_t n, int64_t stride, float* buf) {
  Operand o;
  if (stride == 0) {
    o.scalar = true;
    o.s = load_one(src, t);
  } else if (t == DType::F32 && stride == 1) {
    o.p = reinterpret_cast<const float*>(src);
  } else {
    load_f32(buf, src, t, n, stride);
    o.p = buf;
  }
  return o;
}

// Where the piece's result goes: straight into the output when it is f32 with unit stride.
float* result_buffer(char* dst, DType t, int64_t stride, float* buf) {
  return (t == DType::F32 && stride == 1) ? reinterpret_cast<float*>(dst) : buf;
}
void finish(char* dst, DType t, int64_t n, int64_t stride, const float* y, const float* buf) {
  if (y == buf) store_f32(dst, t, buf, n, stride);
}

// ---- binary -----------------------------------------------------------------------------------------

template <typename F>
void apply2(F f, float* y, const Operand& a, const Operand& b, int64_t n) {
  const float* ap = a.p;
  const float* bp = b.p;
  if (!a.scalar && !b.scalar) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = f(ap[i], bp[i]);
  } else if (a.scalar && !b.scalar) {
    const float s = a.s;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = f(s, bp[i]);
  } else if (!a.scalar) {
    const float s = b.s;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = f(ap[i], s);
  } else {
    std::fill(y, y + n, f(a.s, b.s));
  }
}

void binary_f32(BinaryKind k, float* y, const Operand& a, const Operand& b, int64_t n) {
  switch (k) {
    case BinaryKind::ADD: return apply2([](float u, float v) { return u + v; }, y, a, b, n);
    case BinaryKind::SUB: return apply2([](float u, float v) { return u - v; }, y, a, b, n);
    case BinaryKind::MUL: return apply2([](float u, float v) { return u * v; }, y, a, b, n);
    case BinaryKind::DIV: return apply2([](float u, float v) { return u / v; }, y, a, b, n);
    case BinaryKind::MAX: return apply2(max_nan, y, a, b, n);
    case BinaryKind::MIN: return apply2(min_nan, y, a, b, n);
    case BinaryKind::POW:
      // x^2 and x^1 are exact products; otherwise libm's powf (< 1 ulp, not vectorized).
      if (b.scalar && b.s == 2.0f) return apply2([](float u, float) { return u * u; }, y, a, b, n);
      if (b.scalar && b.s == 1.0f) return apply2([](float u, float) { return u; }, y, a, b, n);
      for (int64_t i = 0; i < n; ++i) y[i] = std::pow(a.scalar ? a.s : a.p[i], b.scalar ? b.s : b.p[i]);
      return;
    default: return;
  }
}

// ---- unary ------------------------------------------------------------------------------------------

bool cpu_has_avx512f() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}
__attribute__((target("avx512f"))) void sqrt_avx512(float* y, const float* x, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_sqrt_ps(_mm512_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] = std::sqrt(x[i]);
}
// sqrt of n floats. (A plain loop would not vectorize: libm's sqrtf may set errno.)
void sqrt_f32(float* y, const float* x, int64_t n) {
  if (cpu_has_avx512f()) return sqrt_avx512(y, x, n);
  for (int64_t i = 0; i < n; ++i) y[i] = std::sqrt(x[i]);
}

template <typename F>
void apply1(F f, float* y, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

// GELU / GELU_TANH / QUICK_GELU with the vectorized math of sgemm's epilogue (kernels/cpu/gemm.h:
// within 1e-6 absolute of the double reference). A piece holding ±inf or NaN runs the scalar math
// of record instead, which has the reference's rules for them. x and y do not overlap.
template <typename F>
void activation_f32(Activation a, F scalar, float* y, const float* x, int64_t n) {
  int finite = 1;
#pragma omp simd reduction(& : finite)
  for (int64_t i = 0; i < n; ++i) finite &= std::fabs(x[i]) <= 3.4028234e38f;  // false for NaN too
  if (!finite) return apply1(scalar, y, x, n);
  std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
  cpu::activation_inplace_f32(y, n, a);
}

void unary_f32(UnaryKind k, float* y, const float* x, int64_t n) {
  switch (k) {
    case UnaryKind::NEG: return apply1([](float v) { return -v; }, y, x, n);
    case UnaryKind::EXP: return apply1(exp_f, y, x, n);
    case UnaryKind::LOG: return apply1(log_f, y, x, n);
    case UnaryKind::SQRT: return sqrt_f32(y, x, n);
    case UnaryKind::RSQRT:
      sqrt_f32(y, x, n);
      return apply1([](float v) { return 1.0f / v; }, y, y, n);
    case UnaryKind::TANH: return apply1(tanh_f, y, x, n);
    case UnaryKind::SIGMOID: return apply1(sigmoid_f, y, x, n);
    case UnaryKind::RELU: return apply1([](float v) { return v > 0.0f ? v : 0.0f; }, y, x, n);
    case UnaryKind::GELU: return activation_f32(Activation::GELU, gelu_f, y, x, n);
    case UnaryKind::GELU_TANH: return activation_f32(Activation::GELU_TANH, gelu_tanh_f, y, x, n);
    case UnaryKind::QUICK_GELU: return activation_f32(Activation::QUICK_GELU, quick_gelu_f, y, x, n);
    case UnaryKind::ABS: return apply1([](float v) { return std::fabs(v); }, y, x, n);
    case UnaryKind::SQUARE: return apply1([](float v) { return v * v; }, y, x, n);
    case UnaryKind::RECIPROCAL: return apply1([](float v) { return 1.0f / v; }, y, x, n);
    default: return;
  }
}

// ---- copy helpers -----------------------------------------------------------------------------------

// Copies n elements of `bytes` bytes each between strided locations (no conversion).
template <typename T>
void copy_strided_t(char* dst, int64_t ds, const char* src, int64_t ss, int64_t n) {
  T* d = reinterpret_cast<T*>(dst);
  const T* s = reinterpret_cast<const T*>(src);
  if (ds == 1 && ss == 1) {
    std::memcpy(d, s, static_cast<size_t>(n) * sizeof(T));
  } else if (ss == 0) {
    const T v = *s;
    for (int64_t i = 0; i < n; ++i) d[i * ds] = v;
  } else {
    for (int64_t i = 0; i < n; ++i) d[i * ds] = s[i * ss];
  }
}
void copy_strided(char* dst, int64_t ds, const char* src, int64_t ss, int64_t n, size_t bytes) {
  switch (bytes) {
    case 1: return copy_strided_t<uint8_t>(dst, ds, src, ss, n);
    case 2: return copy_strided_t<uint16_t>(dst, ds, src, ss, n);
    case 4: return copy_strided_t<uint32_t>(dst, ds, src, ss, n);
    case 8: return copy_strided_t<uint64_t>(dst, ds, src, ss, n);
    default:
      for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * ds * bytes, src + i * ss * bytes, bytes);
  }
}

// A transposing copy: the output's unit-stride dim (the inner one, q) is not the input's (dim p).
// Element-by-element it would read one cache line per element; in kBlock × kBlock tiles both sides
// are read and written along cache lines. Returns false (nothing done) when the loop is not of that form.
template <typename T>
bool copy_transposed(const NdLoop& L, T* out, const T* in) {
  constexpr int64_t kBlock = 32;
  const int nd = static_cast<int>(L.shape.size()), q = nd - 1;
  if (nd < 2 || L.strides[0][q] != 1 || L.strides[1][q] == 0 || L.strides[1][q] == 1) return false;
  int p = -1;
  for (int d = 0; d < q; ++d)
    if (L.strides[1][d] == 1) p = d;
  if (p < 0 || L.shape[p] < 8 || L.shape[q] < 8) return false;
  const int64_t P = L.shape[p], Q = L.shape[q], out_p = L.strides[0][p], in_q = L.strides[1][q];
  std::vector<int64_t> sh, os, is;  // the remaining dims
  for (int d = 0; d < q; ++d)
    if (d != p) sh.push_back(L.shape[d]), os.push_back(L.strides[0][d]), is.push_back(L.strides[1][d]);
  int64_t outer = 1;
  for (int64_t v : sh) outer *= v;
  const int64_t tp = (P + kBlock - 1) / kBlock, tq = (Q + kBlock - 1) / kBlock, items = outer * tp * tq;
#pragma omp parallel for schedule(static) if (items > 1 && L.numel() >= kParallelMin)
  for (int64_t w = 0; w < items; ++w) {
    int64_t o = w / (tp * tq), oo = 0, io = 0;
    for (int d = static_cast<int>(sh.size()) - 1; d >= 0; --d) {
      const int64_t i = o % sh[d];
      o /= sh[d];
      oo += i * os[d];
      io += i * is[d];
    }
    const int64_t p0 = (w % (tp * tq)) / tq * kBlock, q0 = (w % tq) * kBlock;
    const int64_t p1 = std::min(P, p0 + kBlock), q1 = std::min(Q, q0 + kBlock);
    T* dst = out + oo;
    const T* src = in + io;
    // Through a small buffer: the input tile is read along its rows and the output tile written
    // along its rows. (Direct strided access would hit one L1 set per tile when the row stride is a
    // multiple of 4 KiB, e.g. a 1024 x 1024 f32 transpose.)
    T tile[kBlock][kBlock];
    for (int64_t j = q0; j < q1; ++j)
      for (int64_t i = p0; i < p1; ++i) tile[j - q0][i - p0] = src[i + j * in_q];
    for (int64_t i = p0; i < p1; ++i)
      for (int64_t j = q0; j < q1; ++j) dst[i * out_p + j] = tile[j - q0][i - p0];
  }
  return true;
}
bool copy_transposed(const NdLoop& L, char* out, const char* in, size_t bytes) {
  switch (bytes) {
    case 1: return copy_transposed(L, reinterpret_cast<uint8_t*>(out), reinterpret_cast<const uint8_t*>(in));
    case 2: return copy_transposed(L, reinterpret_cast<uint16_t*>(out), reinterpret_cast<const uint16_t*>(in));
    case 4: return copy_transposed(L, reinterpret_cast<uint32_t*>(out), reinterpret_cast<const uint32_t*>(in));
    case 8: return copy_transposed(L, reinterpret_cast<uint64_t*>(out), reinterpret_cast<const uint64_t*>(in));
    default: return false;
  }
}

}  // namespace

// ---- kernels ----------------------------------------------------------------------------------------

// out (...) [may be strided] = cast(in0 (...) [strided, broadcast by stride 0])
void copy_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  char* po = byte_ptr(out);
  const char* px = byte_ptr(x);
  const int64_t eo = esize(out), ex = esize(x);
  const bool same = out.dtype() == x.dtype();
  const int64_t n = out.numel();
  if (n == 0) return;
  if (out.is_contiguous() && x.is_contiguous()) {  // one flat range, split over the threads
    const int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static) if (n >= 4 * kParallelMin)
    for (int64_t i = 0; i < n; i += chunk) {
      const int64_t m = std::min(chunk, n - i);
      if (same) std::memcpy(po + i * eo, px + i * ex, static_cast<size_t>(m * eo));
      else if (x.dtype() == DType::F32) store_f32(po + i * eo, out.dtype(), reinterpret_cast<const float*>(px) + i, m);
      else if (out.dtype() == DType::F32) load_f32(reinterpret_cast<float*>(po) + i, px + i * ex, x.dtype(), m);
      else
        for (int64_t j = 0; j < m; j += kTile) {
          float buf[kTile];
          const int64_t mm = std::min(kTile, m - j);
          load_f32(buf, px + (i + j) * ex, x.dtype(), mm);
          store_f32(po + (i + j) * eo, out.dtype(), buf, mm);
        }
    }
    return;
  }
  const NdLoop L = make_loop(out.shape(), {&out.strides(), &x.strides()});
  if (same && copy_transposed(L, po, px, static_cast<size_t>(eo))) return;
  const int64_t so = L.inner_stride(0), sx = L.inner_stride(1);
  for_each_piece(L, [&](const int64_t* off, int64_t m) {
    if (same) return copy_strided(po + off[0] * eo, so, px + off[1] * ex, sx, m, static_cast<size_t>(eo));
    float buf[kTile];
    load_f32(buf, px + off[1] * ex, x.dtype(), m, sx);
    store_f32(po + off[0] * eo, out.dtype(), buf, m, so);
  });
}

// out (...) [may be strided] = f[0]
void fill_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const int64_t eo = esize(out);
  // The value in the output dtype, rounded once (like the reference), then replicated bit for bit.
  alignas(8) char value[8] = {};
  store_f32(value, out.dtype(), &c.f[0], 1);
  const NdLoop L = make_loop(out.shape(), {&out.strides()});
  char* po = byte_ptr(out);
  const int64_t so = L.inner_stride(0);
  for_each_piece(L, [&](const int64_t* off, int64_t m) {
    copy_strided(po + off[0] * eo, so, value, 0, m, static_cast<size_t>(eo));
  });
}

// out (...) = in0 (...) ∘ in1 (...), both strided and expanded to out's shape
void binary_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& a = c.in[0];
  const Tensor& b = c.in[1];
  const BinaryKind k = static_cast<BinaryKind>(c.i[0]);
  const NdLoop L = make_loop(out.shape(), {&out.strides(), &a.strides(), &b.strides()});
  char* po = byte_ptr(out);
  const char* pa = byte_ptr(a);
  const char* pb = byte_ptr(b);
  const int64_t eo = esize(out), ea = esize(a), eb = esize(b);
  for_each_piece(L, [&](const int64_t* off, int64_t n) {
    float abuf[kTile], bbuf[kTile], obuf[kTile];
    const Operand A = operand(pa + off[1] * ea, a.dtype(), n, L.inner_stride(1), abuf);
    const Operand B = operand(pb + off[2] * eb, b.dtype(), n, L.inner_stride(2), bbuf);
    float* y = result_buffer(po + off[0] * eo, out.dtype(), L.inner_stride(0), obuf);
    binary_f32(k, y, A, B, n);
    finish(po + off[0] * eo, out.dtype(), n, L.inner_stride(0), y, obuf);
  });
}

// out (...) = in0 (...) ∘ f[0]  (i[1] = 0)  or  f[0] ∘ in0 (...)  (i[1] = 1)
void scalar_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const BinaryKind k = static_cast<BinaryKind>(c.i[0]);
  const bool reverse = c.i[1] != 0;
  Operand s;
  s.scalar = true;
  s.s = c.f[0];
  const NdLoop L = make_loop(out.shape(), {&out.strides(), &x.strides()});
  char* po = byte_ptr(out);
  const char* px = byte_ptr(x);
  const int64_t eo = esize(out), ex = esize(x);
  for_each_piece(L, [&](const int64_t* off, int64_t n) {
    float xbuf[kTile], obuf[kTile];
    const Operand X = operand(px + off[1] * ex, x.dtype(), n, L.inner_stride(1), xbuf);
    float* y = result_buffer(po + off[0] * eo, out.dtype(), L.inner_stride(0), obuf);
    if (reverse) binary_f32(k, y, s, X, n);
    else binary_f32(k, y, X, s, n);
    finish(po + off[0] * eo, out.dtype(), n, L.inner_stride(0), y, obuf);
  });
}

// Runs body(y, xp, n) over the pieces of a one-input elementwise op: xp is n contiguous floats of x
// (read in place when f32 with unit stride, else gathered and converted; stride 0 repeats the value),
// y the piece's result, written back into out (converted / scattered when needed).
template <typename Body>
void map1_f32(const Tensor& out, const Tensor& x, Body body) {
  const NdLoop L = make_loop(out.shape(), {&out.strides(), &x.strides()});
  char* po = byte_ptr(out);
  const char* px = byte_ptr(x);
  const int64_t eo = esize(out), ex = esize(x);
  for_each_piece(L, [&](const int64_t* off, int64_t n) {
    float xbuf[kTile], obuf[kTile];
    const int64_t sx = L.inner_stride(1);
    const char* src = px + off[1] * ex;
    const float* xp;
    if (x.dtype() == DType::F32 && sx == 1) {
      xp = reinterpret_cast<const float*>(src);
    } else {
      load_f32(xbuf, src, x.dtype(), n, sx);
      xp = xbuf;
    }
    float* y = result_buffer(po + off[0] * eo, out.dtype(), L.inner_stride(0), obuf);
    body(y, xp, n);
    finish(po + off[0] * eo, out.dtype(), n, L.inner_stride(0), y, obuf);
  });
}

// out (...) = g(in0 (...))
void unary_kernel(OpCall& c) {
  const UnaryKind k = static_cast<UnaryKind>(c.i[0]);
  map1_f32(c.out[0], c.in[0], [k](float* y, const float* xp, int64_t n) { unary_f32(k, y, xp, n); });
}

// out (...) = min(max(in0, f[0]), f[1]) with torch.maximum / minimum's NaN rule (NaN stays NaN)
void clamp_kernel(OpCall& c) {
  const float lo = c.f[0], hi = c.f[1];
  map1_f32(c.out[0], c.in[0], [lo, hi](float* y, const float* xp, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = min_nan(max_nan(xp[i], lo), hi);
  });
}

// out (...) = in0 (...) [u8] != 0 ? in1 (...) : in2 (...), all strided and expanded to out's shape
void where_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& cond = c.in[0];
  const Tensor& a = c.in[1];
  const Tensor& b = c.in[2];
  const NdLoop L = make_loop(out.shape(), {&out.strides(), &cond.strides(), &a.strides(), &b.strides()});
  char* po = byte_ptr(out);
  const uint8_t* pc = static_cast<const uint8_t*>(cond.data_ptr());
  const char* pa = byte_ptr(a);
  const char* pb = byte_ptr(b);
  const int64_t eo = esize(out), ea = esize(a), eb = esize(b);
  for_each_piece(L, [&](const int64_t* off, int64_t n) {
    float abuf[kTile], bbuf[kTile], obuf[kTile];
    uint8_t cbuf[kTile];
    const int64_t sc = L.inner_stride(1);
    const uint8_t* cp = pc + off[1];
    if (sc != 1) {  // gather (or repeat) the condition bytes
      for (int64_t i = 0; i < n; ++i) cbuf[i] = cp[i * sc];
      cp = cbuf;
    }
    Operand A = operand(pa + off[2] * ea, a.dtype(), n, L.inner_stride(2), abuf);
    Operand B = operand(pb + off[3] * eb, b.dtype(), n, L.inner_stride(3), bbuf);
    if (A.scalar) { std::fill(abuf, abuf + n, A.s); A.p = abuf; }
    if (B.scalar) { std::fill(bbuf, bbuf + n, B.s); B.p = bbuf; }
    const float* ap = A.p;
    const float* bp = B.p;
    float* y = result_buffer(po + off[0] * eo, out.dtype(), L.inner_stride(0), obuf);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = cp[i] != 0 ? ap[i] : bp[i];
    finish(po + off[0] * eo, out.dtype(), n, L.inner_stride(0), y, obuf);
  });
}

}  // namespace vislang::cpu_kernels
