// kernels/cpu/cpu_grad.cpp — the backward ops on the CPU: Op::UNARY_BACKWARD, SOFTMAX_BACKWARD,
// LAYER_NORM_BACKWARD, CONV2D_BACKWARD, SCATTER_ADD (contracts in kernels/backend.h, front-ends in
// kernels/grad_ops.cpp, definitions of record in kernels/ref/ref_grad.cpp).
//
// f16 / bf16 are read into f32, computed in f32 and rounded back once, like the forward kernels.
//  * unary_backward: the strided N-d loop of cpu_common.h over (out, x, grad); per piece the
//    derivative runs in `#pragma omp simd` loops on the vectorizable math of cpu_math.h.
//  * softmax_backward: one line per work item when the dim is the last one (rows read in place for
//    f32), else 16 lines gathered at a time; Σ g·y in double.
//  * layer_norm_backward: rows in parallel; dweight / dbias summed per fixed block of rows (in
//    double) and the blocks added in order, so the result does not depend on the thread count.
//  * conv2d_backward: one sgemm per chunk of images with G = grad regrouped as (O, K = images·positions):
//    dw (O, CKK) = G @ colsᵀ, with cols (C·kh·kw, K) from im2col, and dcols (CKK, K) = Wᵀ @ G, added
//    back into dx by col2im (parallel over (image, channel) planes: no two threads add into one
//    element). Fast path for patch embeddings (stride = kernel, no padding, no dilation: the ViT stem):
//    one product over the whole batch with the patches as rows (K, CKK), gathered and scattered back
//    one kernel row per memcpy, no accumulation (each input element is in at most one patch).
//  * scatter_add: deterministic without atomics: every output element is owned by one work item (the
//    line through it along dim), which adds its sources in index order.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/cpu_math.h"
#include "kernels/cpu/gemm.h"

namespace vislang::cpu_kernels {
namespace {

int64_t wrap_dim(int64_t d, int64_t rank) { return d < 0 ? d + rank : d; }

// n floats of t starting at element offset `off`, `stride` apart: in place when f32 and unit stride,
// else converted / gathered into buf.
const float* f32_span(const Tensor& t, int64_t off, int64_t n, int64_t stride, float* buf) {
  const char* p = byte_ptr(t) + off * esize(t);
  if (t.dtype() == DType::F32 && stride == 1) return reinterpret_cast<const float*>(p);
  load_f32(buf, p, t.dtype(), n, stride);
  return buf;
}

// Uninitialized f32 buffer (the products below overwrite every element they use).
std::unique_ptr<float[]> f32_buffer(int64_t n) { return std::unique_ptr<float[]>(new float[static_cast<size_t>(n)]); }

// ---- unary_backward ---------------------------------------------------------------------------------

template <typename F>
void each(F f, float* y, const float* x, const float* g, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i], g[i]);
}

constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
constexpr float kGeluTanhK = 0.79788456080286535588f;

// y = g · f'(x) for n contiguous elements; kind < 0: clamp to [lo, hi]. Formulas: ref_grad.cpp.
void unary_grad_f32(int64_t kind, float lo, float hi, float* y, const float* x, const float* g, int64_t n) {
  if (kind < 0) return each([lo, hi](float v, float d) { return v >= lo && v <= hi ? d : 0.0f; }, y, x, g, n);
  switch (static_cast<UnaryKind>(kind)) {
    case UnaryKind::NEG: return each([](float, float d) { return -d; }, y, x, g, n);
    case UnaryKind::EXP: return each([](float v, float d) { return d * exp_f(v); }, y, x, g, n);
    case UnaryKind::LOG: return each([](float v, float d) { return d / v; }, y, x, g, n);
    case UnaryKind::SQRT:
      for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * g[i] / std::sqrt(x[i]);
      return;
    case UnaryKind::RSQRT:
      for (int64_t i = 0; i < n; ++i) y[i] = -0.5f * g[i] / (x[i] * std::sqrt(x[i]));
      return;
    case UnaryKind::TANH:
      return each([](float v, float d) { const float t = tanh_f(v); return d * (1.0f - t * t); }, y, x, g, n);
    case UnaryKind::SIGMOID:
      return each([](float v, float d) { const float s = sigmoid_f(v); return d * s * (1.0f - s); }, y, x, g, n);
    case UnaryKind::RELU: return each([](float v, float d) { return v > 0.0f ? d : 0.0f; }, y, x, g, n);
    case UnaryKind::GELU:  // Φ(x) + x φ(x), Φ from erfc so the x < 0 tail keeps its relative accuracy
      return each(
          [](float v, float d) {
            const float c = erfc_half_f(v);
            const float cdf = v >= 0.0f ? 1.0f - 0.5f * c : 0.5f * c;
            return d * (cdf + v * kInvSqrt2Pi * exp_f(-0.5f * v * v));
          },
          y, x, g, n);
    case UnaryKind::GELU_TANH:
      return each(
          [](float v, float d) {
            const float t = tanh_f(kGeluTanhK * (v + 0.044715f * v * v * v));
            return d * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * kGeluTanhK * (1.0f + 0.134145f * v * v));
          },
          y, x, g, n);
    case UnaryKind::QUICK_GELU:
      return each(
          [](float v, float d) {
            const float s = sigmoid_f(1.702f * v);
            return d * (s + 1.702f * v * s * (1.0f - s));
          },
          y, x, g, n);
    case UnaryKind::ABS:
      return each([](float v, float d) { return d * (v > 0.0f ? 1.0f : (v < 0.0f ? -1.0f : 0.0f)); }, y, x, g, n);
    case UnaryKind::SQUARE: return each([](float v, float d) { return 2.0f * v * d; }, y, x, g, n);
    case UnaryKind::RECIPROCAL: return each([](float v, float d) { return -d / (v * v); }, y, x, g, n);
    default: return;
  }
}

// ---- conv2d_backward helpers ------------------------------------------------------------------------

struct Geometry {
  int64_t C, H, W, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw;
  int64_t P() const { return OH * OW; }
  int64_t CKK() const { return C * KH * KW; }
  int64_t image() const { return C * H * W; }
  // stride = kernel, no padding, no dilation: every input element is read by at most one tap
  bool patches() const { return sh == KH && sw == KW && ph == 0 && pw == 0 && dh == 1 && dw == 1; }
};

// The output columns [ox0, ox1) whose tap kx reads inside the image (input column ox·sw + shift).
void valid_columns(const Geometry& g, int64_t kx, int64_t& shift, int64_t& ox0, int64_t& ox1) {
  auto first_at_least = [](int64_t v, int64_t s) { return v <= 0 ? int64_t(0) : (v + s - 1) / s; };
  shift = kx * g.dw - g.pw;
  ox0 = std::min(g.OW, first_at_least(-shift, g.sw));
  ox1 = std::max(ox0, std::min(g.OW, first_at_least(g.W - shift, g.sw)));
}

// cols (C·KH·KW, ld), columns [n·P, (n+1)·P) for image n of x (nc contiguous f32 images): row
// (c, ky, kx), column (n, oy, ox) = x[n] at (oy·sh - ph + ky·dh, ox·sw - pw + kx·dw), 0 outside.
void im2col(float* cols, int64_t ld, const float* x, int64_t nc, const Geometry& g) {
  const int64_t CKK = g.CKK(), P = g.P();
#pragma omp parallel for schedule(static) if (CKK * nc > 1 && CKK * nc * P >= kParallelMin)
  for (int64_t item = 0; item < CKK * nc; ++item) {
    const int64_t q = item / nc, n = item % nc;
    const int64_t ch = q / (g.KH * g.KW), ky = (q / g.KW) % g.KH, kx = q % g.KW;
    int64_t shift, ox0, ox1;
    valid_columns(g, kx, shift, ox0, ox1);
    for (int64_t oy = 0; oy < g.OH; ++oy) {
      float* d = cols + q * ld + n * P + oy * g.OW;
      const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.H) {
        std::fill(d, d + g.OW, 0.0f);
        continue;
      }
      const float* src = x + ((n * g.C + ch) * g.H + iy) * g.W + shift;
      std::fill(d, d + ox0, 0.0f);
      if (g.sw == 1) std::copy(src + ox0, src + ox1, d + ox0);
      else
        for (int64_t ox = ox0; ox < ox1; ++ox) d[ox] = src[ox * g.sw];
      std::fill(d + ox1, d + g.OW, 0.0f);
    }
  }
}

// dx (nc, C, H, W) = every entry of cols (C·KH·KW, ld) added into the input element its tap read (the
// adjoint of im2col). One (image, channel) plane per work item: no two items write one element.
void col2im(float* dx, const float* cols, int64_t ld, int64_t nc, const Geometry& g) {
  const int64_t P = g.P();
#pragma omp parallel for schedule(static) if (nc * g.C > 1 && g.CKK() * nc * P >= kParallelMin)
  for (int64_t plane = 0; plane < nc * g.C; ++plane) {
    const int64_t n = plane / g.C, ch = plane % g.C;
    float* dst = dx + plane * g.H * g.W;
    std::fill(dst, dst + g.H * g.W, 0.0f);
    for (int64_t ky = 0; ky < g.KH; ++ky)
      for (int64_t kx = 0; kx < g.KW; ++kx) {
        const float* src = cols + ((ch * g.KH + ky) * g.KW + kx) * ld + n * P;
        int64_t shift, ox0, ox1;
        valid_columns(g, kx, shift, ox0, ox1);
        for (int64_t oy = 0; oy < g.OH; ++oy) {
          const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
          if (iy < 0 || iy >= g.H) continue;
          float* d = dst + iy * g.W + shift;
          const float* s = src + oy * g.OW;
          if (g.sw == 1) {
#pragma omp simd
            for (int64_t ox = ox0; ox < ox1; ++ox) d[ox] += s[ox];
          } else {
            for (int64_t ox = ox0; ox < ox1; ++ox) d[ox * g.sw] += s[ox];
          }
        }
      }
  }
}

// Patch embeddings: calls run(patch_at, image_at) for every kernel row of every patch, KW floats at
// element patch_at of patches (nc·P, C·KH·KW) — row (n, oy, ox), column (c, ky, kx) — and at element
// image_at of the images (nc, C, H, W). No two calls touch the same image element.
template <typename Run>
void for_each_patch_row(int64_t nc, const Geometry& g, Run run) {
  const int64_t CKK = g.CKK();
#pragma omp parallel for schedule(static) if (nc * g.OH > 1 && nc * g.P() * CKK >= kParallelMin)
  for (int64_t item = 0; item < nc * g.OH; ++item) {
    const int64_t n = item / g.OH, oy = item % g.OH;
    for (int64_t ox = 0; ox < g.OW; ++ox)
      for (int64_t ch = 0; ch < g.C; ++ch)
        for (int64_t ky = 0; ky < g.KH; ++ky)
          run(((item * g.OW + ox) * g.C + ch) * g.KH * g.KW + ky * g.KW,
              ((n * g.C + ch) * g.H + oy * g.KH + ky) * g.W + ox * g.KW);
  }
}

}  // namespace

// ---- kernels ----------------------------------------------------------------------------------------

// out (...) = grad (...) · g'(x (...)), x and grad strided; i[0] = UnaryKind or -1 (clamp to [f[0], f[1]])
void unary_backward_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& grad = c.in[1];
  const int64_t kind = c.i[0];
  const float lo = c.f[0], hi = c.f[1];
  const NdLoop L = make_loop(out.shape(), {&out.strides(), &x.strides(), &grad.strides()});
  const bool direct = out.dtype() == DType::F32 && L.inner_stride(0) == 1;
  for_each_piece(L, [&](const int64_t* off, int64_t n) {
    float xbuf[kTile], gbuf[kTile], ybuf[kTile];
    const float* xp = f32_span(x, off[1], n, L.inner_stride(1), xbuf);
    const float* gp = f32_span(grad, off[2], n, L.inner_stride(2), gbuf);
    float* y = direct ? out.data<float>() + off[0] : ybuf;
    unary_grad_f32(kind, lo, hi, y, xp, gp, n);
    if (!direct) store_f32(byte_ptr(out) + off[0] * esize(out), out.dtype(), ybuf, n, L.inner_stride(0));
  });
}

// out = y (g - Σ g y) (softmax) or g - exp(y) Σ g (i[1] = 1, log_softmax) along dim i[0]; all contiguous
void softmax_backward_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& y = c.in[0];
  const Tensor& grad = c.in[1];
  const bool log = c.i[1] != 0;
  const DimView v = dim_view(y.shape(), wrap_dim(c.i[0], y.dim()));
  const int64_t R = v.R;
  if (out.numel() == 0) return;
  // inner == 1: one contiguous row per item (f32 read and written in place); else 16 gathered lines.
  const bool rows = v.inner == 1;
  const int64_t lines = rows ? 1 : 16, groups = (v.inner + lines - 1) / lines;
  const bool direct = rows && out.dtype() == DType::F32;
#pragma omp parallel for schedule(static) if (v.outer * groups > 1 && out.numel() >= kParallelMin)
  for (int64_t item = 0; item < v.outer * groups; ++item) {
    const int64_t o = item / groups, j0 = (item % groups) * lines, nb = std::min(lines, v.inner - j0);
    const float *yb, *gb;
    if (rows) {
      yb = f32_span(y, o * R, R, 1, scratch(0, static_cast<size_t>(R)));
      gb = f32_span(grad, o * R, R, 1, scratch(1, static_cast<size_t>(R)));
    } else {
      float* yy = scratch(0, static_cast<size_t>(nb * R));
      float* gg = scratch(1, static_cast<size_t>(nb * R));
      gather_rows(yy, y, v, o, j0, nb);
      gather_rows(gg, grad, v, o, j0, nb);
      yb = yy, gb = gg;
    }
    float* ob = direct ? out.data<float>() + o * R : scratch(2, static_cast<size_t>(nb * R));
    for (int64_t b = 0; b < nb; ++b) {
      const float* yr = yb + b * R;
      const float* gr = gb + b * R;
      float* dst = ob + b * R;
      double s = 0;
      if (log) {
#pragma omp simd reduction(+ : s)
        for (int64_t r = 0; r < R; ++r) s += gr[r];
        const float sf = static_cast<float>(s);
#pragma omp simd
        for (int64_t r = 0; r < R; ++r) dst[r] = gr[r] - exp_f(yr[r]) * sf;
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t r = 0; r < R; ++r) s += static_cast<double>(gr[r]) * yr[r];
        const float sf = static_cast<float>(s);
#pragma omp simd
        for (int64_t r = 0; r < R; ++r) dst[r] = yr[r] * (gr[r] - sf);
      }
    }
    if (direct) continue;
    if (rows) store_f32(byte_ptr(out) + o * R * esize(out), out.dtype(), ob, R);
    else scatter_rows(out, v, o, j0, nb, ob);
  }
}

// out0 dx (.., C), out1 dweight (C) / out2 dbias (C) or undefined, from in0 x (.., C), in1 weight (C)
// or undefined, in2 grad (.., C); f[0] = eps. dx = rstd (gw - mean(gw) - x̂ mean(gw x̂)), gw = g w.
void layer_norm_backward_kernel(OpCall& c) {
  const Tensor& dx = c.out[0];
  const Tensor dweight = c.out.size() > 1 ? c.out[1] : Tensor();
  const Tensor dbias = c.out.size() > 2 ? c.out[2] : Tensor();
  const Tensor& x = c.in[0];
  const Tensor& grad = c.in[2];
  const int64_t C = x.size(-1), rows = C > 0 ? x.numel() / C : 0;
  if (rows == 0) return;
  const double eps = c.f[0];
  const std::vector<float> w = c.input(1).defined() ? to_f32_vector(c.input(1)) : std::vector<float>(C, 1.0f);
  const float* wp = w.data();
  const bool params = dweight.defined() || dbias.defined();
  // Parameter gradients: a partial sum per block of rows (block size from `rows` alone), added in order.
  const int64_t block = std::max<int64_t>(16, (rows + 255) / 256), nblocks = (rows + block - 1) / block;
  std::vector<double> partial(params ? static_cast<size_t>(nblocks * 2 * C) : 0, 0.0);
  const bool direct = dx.dtype() == DType::F32;
#pragma omp parallel for schedule(static) if (nblocks > 1 && x.numel() >= kParallelMin)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    double* pw = params ? partial.data() + blk * 2 * C : nullptr;  // Σ g x̂ (C), then Σ g (C)
    float* xhat = scratch(2, static_cast<size_t>(C));
    float* gw = scratch(3, static_cast<size_t>(C));
    for (int64_t r = blk * block; r < std::min(rows, (blk + 1) * block); ++r) {
      const float* xr = f32_span(x, r * C, C, 1, scratch(0, static_cast<size_t>(C)));
      const float* gr = f32_span(grad, r * C, C, 1, scratch(1, static_cast<size_t>(C)));
      double mean = 0, var = 0;
#pragma omp simd reduction(+ : mean)
      for (int64_t j = 0; j < C; ++j) mean += xr[j];
      mean /= static_cast<double>(C);
#pragma omp simd reduction(+ : var)
      for (int64_t j = 0; j < C; ++j) var += (xr[j] - mean) * (xr[j] - mean);
      const float rstd = static_cast<float>(1.0 / std::sqrt(var / static_cast<double>(C) + eps));
      // The mean as a float pair hi + lo (as in the forward kernel): x - hi is exact near the mean.
      const float mean_hi = static_cast<float>(mean), mean_lo = static_cast<float>(mean - mean_hi);
      double sum_gw = 0, sum_gwx = 0;
#pragma omp simd reduction(+ : sum_gw, sum_gwx)
      for (int64_t j = 0; j < C; ++j) {
        xhat[j] = ((xr[j] - mean_hi) - mean_lo) * rstd;
        gw[j] = gr[j] * wp[j];
        sum_gw += gw[j];
        sum_gwx += static_cast<double>(gw[j]) * xhat[j];
      }
      const float a = static_cast<float>(sum_gw / static_cast<double>(C));
      const float b = static_cast<float>(sum_gwx / static_cast<double>(C));
      float* out_row = direct ? dx.data<float>() + r * C : scratch(4, static_cast<size_t>(C));
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) out_row[j] = rstd * (gw[j] - a - xhat[j] * b);
      if (!direct) store_f32(byte_ptr(dx) + r * C * esize(dx), dx.dtype(), out_row, C);
      if (!params) continue;
#pragma omp simd
      for (int64_t j = 0; j < C; ++j) {
        pw[j] += static_cast<double>(gr[j]) * xhat[j];
        pw[C + j] += gr[j];
      }
    }
  }
  if (!params) return;
  std::vector<float> sums(static_cast<size_t>(2 * C));
  for (int64_t j = 0; j < 2 * C; ++j) {
    double s = 0;
    for (int64_t blk = 0; blk < nblocks; ++blk) s += partial[blk * 2 * C + j];
    sums[j] = static_cast<float>(s);
  }
  if (dweight.defined()) store_f32(byte_ptr(dweight), dweight.dtype(), sums.data(), C);
  if (dbias.defined()) store_f32(byte_ptr(dbias), dbias.dtype(), sums.data() + C, C);
}

// i[6] = 0: out0 dx (N, C, H, W); i[6] = 1: out0 dw (O, C, kh, kw); from in0 x, in1 w, in2 grad
// (N, O, OH, OW), all contiguous; i[0..5] = stride h, w, padding h, w, dilation h, w
void conv2d_backward_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& w = c.in[1];
  const Tensor& grad = c.in[2];
  const bool want_dw = c.i[6] != 0;
  Geometry g;
  const int64_t N = x.size(0), O = w.size(0);
  g.C = x.size(1), g.H = x.size(2), g.W = x.size(3), g.KH = w.size(2), g.KW = w.size(3);
  g.OH = grad.size(2), g.OW = grad.size(3);
  g.sh = c.i[0], g.sw = c.i[1], g.ph = c.i[2], g.pw = c.i[3], g.dh = c.i[4], g.dw = c.i[5];
  const int64_t P = g.P(), CKK = g.CKK(), image = g.image();
  if (out.numel() == 0) return;
  // Images per chunk: the column buffer stays under 64 MiB, except for patch embeddings, whose
  // patches are no larger than x itself: one product over the whole batch.
  const bool patches = g.patches();
  const int64_t kBudget = int64_t(1) << 24;
  const int64_t chunk = patches ? N : std::max<int64_t>(1, std::min(N, kBudget / std::max<int64_t>(1, P * CKK)));
  auto cols = f32_buffer(chunk * P * CKK);  // patches: (K, CKK) rows; otherwise (CKK, K) columns
  auto G = f32_buffer(O * chunk * P);
  std::vector<float> w_f32;
  const float* wp = nullptr;
  if (!want_dw) wp = w.dtype() == DType::F32 ? w.data<const float>() : (w_f32 = to_f32_vector(w), w_f32.data());
  // dw: the f32 sum over chunks (written in place when out is f32 and there is one chunk).
  const bool dw_direct = want_dw && out.dtype() == DType::F32 && chunk == N;
  std::unique_ptr<float[]> acc = want_dw && !dw_direct ? f32_buffer(O * CKK) : nullptr;
  std::unique_ptr<float[]> part = want_dw && chunk < N ? f32_buffer(O * CKK) : nullptr;
  const Tensor& img = want_dw ? x : out;  // the images this call reads (x) or writes (dx)
  std::unique_ptr<float[]> img_f32 = img.dtype() != DType::F32 ? f32_buffer(chunk * image) : nullptr;
  const size_t run = static_cast<size_t>(g.KW) * sizeof(float);
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t nc = std::min(chunk, N - n0), K = nc * P;
    // G (O, K): G[o, (n - n0)·P + p] = grad[n, o, p]
#pragma omp parallel for schedule(static) if (nc * O > 1 && K * O >= kParallelMin)
    for (int64_t item = 0; item < nc * O; ++item) {
      const int64_t n = item / O, o = item % O;
      load_f32(G.get() + o * K + n * P, byte_ptr(grad) + ((n0 + n) * O + o) * P * esize(grad), grad.dtype(), P);
    }
    float* im = img_f32 ? img_f32.get() : static_cast<float*>(img.data_ptr()) + n0 * image;
    if (want_dw) {
      if (img_f32) load_f32(im, byte_ptr(x) + n0 * image * esize(x), x.dtype(), nc * image);
      if (patches) for_each_patch_row(nc, g, [&](int64_t pa, int64_t ia) { std::memcpy(cols.get() + pa, im + ia, run); });
      else im2col(cols.get(), K, im, nc, g);
      // dw (O, CKK) = G (O, K) @ patches (K, CKK), or @ colsᵀ when cols is (CKK, K)
      float* dst = dw_direct ? out.data<float>() : (n0 == 0 ? acc.get() : part.get());
      cpu::sgemm(O, CKK, K, 1.0f, G.get(), K, 1, cols.get(), patches ? CKK : 1, patches ? 1 : K, dst, nullptr,
                 Activation::NONE);
      if (n0 > 0) {
        float* a = acc.get();
        const float* p = part.get();
#pragma omp parallel for simd schedule(static) if (O * CKK >= kParallelMin)
        for (int64_t e = 0; e < O * CKK; ++e) a[e] += p[e];
      }
    } else if (patches) {
      // dpatches (K, CKK) = Gᵀ (K, O) @ W (O, CKK), each copied back to the one element it came from
      cpu::sgemm(K, CKK, O, 1.0f, G.get(), 1, K, wp, CKK, 1, cols.get(), nullptr, Activation::NONE);
      std::fill(im, im + nc * image, 0.0f);
      for_each_patch_row(nc, g, [&](int64_t pa, int64_t ia) { std::memcpy(im + ia, cols.get() + pa, run); });
    } else {
      // dcols (CKK, K) = Wᵀ (CKK, O) @ G (O, K), then added into the images
      cpu::sgemm(CKK, K, O, 1.0f, wp, 1, CKK, G.get(), K, 1, cols.get(), nullptr, Activation::NONE);
      col2im(im, cols.get(), K, nc, g);
    }
    if (!want_dw && img_f32) store_f32(byte_ptr(out) + n0 * image * esize(out), out.dtype(), im, nc * image);
  }
  if (want_dw && !dw_direct) store_f32(byte_ptr(out), out.dtype(), acc.get(), O * CKK);
}

// out (...) = 0, then out[.. index[..i..] ..] += src[..i..] along dim i[0]; index i64, src contiguous
// with one shape (each dim <= out's but dim). Work item = (line prefix o, block of inner positions):
// it owns every output element it adds into and adds the sources in index order (deterministic).
void scatter_add_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& index = c.in[0];
  const Tensor& src = c.in[1];
  const int64_t dim = wrap_dim(c.i[0], out.dim());
  if (out.numel() == 0) return;
  const Shape& s = src.shape();
  const Shape os = contiguous_strides(out.shape());
  const DimView v = dim_view(s, dim);
  // Output offsets of src's outer positions (dims before dim) and inner positions (dims after it).
  std::vector<int64_t> outer_off(static_cast<size_t>(v.outer)), inner_off(static_cast<size_t>(v.inner));
  auto offsets = [&](std::vector<int64_t>& table, int64_t d0, int64_t d1) {
    for (size_t e = 0; e < table.size(); ++e) {
      int64_t rem = static_cast<int64_t>(e), off = 0;
      for (int64_t d = d1 - 1; d >= d0; --d) off += (rem % s[d]) * os[d], rem /= s[d];
      table[e] = off;
    }
  };
  offsets(outer_off, 0, dim);
  offsets(inner_off, dim + 1, static_cast<int64_t>(s.size()));
  const bool direct = out.dtype() == DType::F32;
  std::unique_ptr<float[]> buf = direct ? nullptr : f32_buffer(out.numel());
  float* acc = direct ? out.data<float>() : buf.get();
  std::fill(acc, acc + out.numel(), 0.0f);
  const int64_t threads = omp_get_max_threads();
  const int64_t jb = std::min(kTile, std::max<int64_t>(16, v.inner / (4 * threads)));
  const int64_t blocks = (v.inner + jb - 1) / jb, step = os[dim];
  const int64_t* idx = index.data<const int64_t>();
#pragma omp parallel for schedule(static) if (v.outer * blocks > 1 && src.numel() >= kParallelMin)
  for (int64_t item = 0; item < v.outer * blocks; ++item) {
    const int64_t o = item / blocks, j0 = (item % blocks) * jb, n = std::min(jb, v.inner - j0);
    float* base = acc + outer_off[o];
    const int64_t* joff = inner_off.data() + j0;
    float sbuf[kTile];
    for (int64_t r = 0; r < v.R; ++r) {
      const int64_t at = (o * v.R + r) * v.inner + j0;
      const float* sr = f32_span(src, at, n, 1, sbuf);
      const int64_t* ir = idx + at;
      for (int64_t j = 0; j < n; ++j) base[ir[j] * step + joff[j]] += sr[j];
    }
  }
  if (!direct) store_f32(byte_ptr(out), out.dtype(), acc, out.numel());
}

}  // namespace vislang::cpu_kernels
