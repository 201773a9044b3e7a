// kernels/ref/ref_grad.cpp — reference kernels of the backward ops (Op::UNARY_BACKWARD, SOFTMAX_BACKWARD,
// LAYER_NORM_BACKWARD, CONV2D_BACKWARD, SCATTER_ADD): plain loops, the definitions of record that the
// optimized CPU (kernels/cpu/cpu_grad.cpp) and CUDA (kernels/cuda/grad.cu) kernels are tested against.
//
// Like ref_kernels.cpp: every element is read as double (load_as_f64), every product and sum is in
// double, and each output element is rounded once into its dtype (store_from_f64). The derivatives
// are written out from the forward formulas of apply_unary_ref (kernels/backend.cpp); the tests check
// them against central finite differences of the forward reference ops in f64
// (tests/test_grad_ops.cpp). Deliberately left out: speed and input validation (kernels/grad_ops.cpp).
#include <cmath>
#include <vector>

#include "kernels/backend.h"

namespace vislang {
namespace {

// Element `off` (in elements, from element 0 of the view) of t, as double; and the store back.
double load_at(const Tensor& t, int64_t off) {
  return load_as_f64(static_cast<const char*>(t.data_ptr()) + off * static_cast<int64_t>(t.element_size()),
                     t.dtype());
}
void store_at(const Tensor& t, int64_t off, double v) {
  store_from_f64(static_cast<char*>(t.data_ptr()) + off * static_cast<int64_t>(t.element_size()), t.dtype(), v);
}

// Element offset in t (any strides) of the element whose row-major flat index over `shape` is `flat`.
int64_t strided_offset(const Tensor& t, const Shape& shape, int64_t flat) {
  int64_t off = 0;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    off += (flat % shape[d]) * t.strides()[d];
    flat /= shape[d];
  }
  return off;
}

constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1 / sqrt(2 pi)
constexpr double kGeluTanhK = 0.79788456080286535588;   // sqrt(2 / pi)

// d/dx of apply_unary_ref(k, x). relu'(0) = abs'(0) = 0, as torch.
double unary_grad_ref(UnaryKind k, double x) {
  switch (k) {
    case UnaryKind::NEG: return -1.0;
    case UnaryKind::EXP: return std::exp(x);
    case UnaryKind::LOG: return 1.0 / x;
    case UnaryKind::SQRT: return 0.5 / std::sqrt(x);
    case UnaryKind::RSQRT: return -0.5 / (x * std::sqrt(x));
    case UnaryKind::TANH: {
      const double t = std::tanh(x);
      return 1.0 - t * t;
    }
    case UnaryKind::SIGMOID: {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return s * (1.0 - s);
    }
    case UnaryKind::RELU: return x > 0 ? 1.0 : 0.0;
    case UnaryKind::GELU:  // Φ(x) + x φ(x)
      return 0.5 * (1.0 + std::erf(x * kInvSqrt2)) + x * kInvSqrt2Pi * std::exp(-0.5 * x * x);
    case UnaryKind::GELU_TANH: {  // 0.5 (1 + t) + 0.5 x (1 - t²) u',  u = k (x + 0.044715 x³)
      const double t = std::tanh(kGeluTanhK * (x + 0.044715 * x * x * x));
      return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kGeluTanhK * (1.0 + 3 * 0.044715 * x * x);
    }
    case UnaryKind::QUICK_GELU: {  // s + 1.702 x s (1 - s),  s = sigmoid(1.702 x)
      const double s = 1.0 / (1.0 + std::exp(-1.702 * x));
      return s + 1.702 * x * s * (1.0 - s);
    }
    case UnaryKind::ABS: return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0);
    case UnaryKind::SQUARE: return 2.0 * x;
    case UnaryKind::RECIPROCAL: return -1.0 / (x * x);
    default: return 0.0;
  }
}

}  // namespace

// out (...) = grad (...) · g'(x (...)); x and grad strided. i[0] = UnaryKind, or -1: clamp to [f[0], f[1]].
void unary_backward_ref(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& grad = c.in[1];
  const int64_t kind = c.i[0];
  const double lo = c.f[0], hi = c.f[1];
  const Shape& s = out.shape();
  for (int64_t e = 0; e < out.numel(); ++e) {
    const double xv = load_at(x, strided_offset(x, s, e)), g = load_at(grad, strided_offset(grad, s, e));
    // clamp and relu pass the gradient through or block it (a NaN / inf gradient included), as torch
    double v;
    if (kind < 0) v = xv >= lo && xv <= hi ? g : 0.0;
    else if (static_cast<UnaryKind>(kind) == UnaryKind::RELU) v = xv > 0 ? g : 0.0;
    else v = g * unary_grad_ref(static_cast<UnaryKind>(kind), xv);
    store_at(out, strided_offset(out, s, e), v);
  }
}

// out (outer, R, inner) from y, grad (outer, R, inner) along dim i[0] (contiguous):
//   softmax: out = y (g - Σ_r g y);  log_softmax (i[1] = 1): out = g - exp(y) Σ_r g
void softmax_backward_ref(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& y = c.in[0];
  const Tensor& grad = c.in[1];
  const int64_t dim = c.i[0] < 0 ? c.i[0] + y.dim() : c.i[0];
  const bool log = c.i[1] != 0;
  int64_t outer = 1, R = y.size(dim), inner = 1;
  for (int64_t d = 0; d < y.dim(); ++d) {
    if (d < dim) outer *= y.size(d);
    if (d > dim) inner *= y.size(d);
  }
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      const int64_t base = o * R * inner + j;
      double s = 0;
      for (int64_t r = 0; r < R; ++r) {
        const int64_t at = base + r * inner;
        s += log ? load_at(grad, at) : load_at(grad, at) * load_at(y, at);
      }
      for (int64_t r = 0; r < R; ++r) {
        const int64_t at = base + r * inner;
        const double yv = load_at(y, at), g = load_at(grad, at);
        store_at(out, at, log ? g - std::exp(yv) * s : yv * (g - s));
      }
    }
}

// out0 dx (rows, C), out1 dweight (C) / out2 dbias (C) or undefined, from x (rows, C), weight (C) or
// undefined, grad (rows, C); f[0] = eps. With x̂ = (x - mean) rstd and gw = g w:
//   dx = rstd (gw - mean(gw) - x̂ mean(gw x̂)),  dweight = Σ_rows g x̂,  dbias = Σ_rows g.
void layer_norm_backward_ref(OpCall& c) {
  const Tensor& dx = c.out[0];
  const Tensor& dweight = c.out.size() > 1 ? c.out[1] : Tensor();
  const Tensor& dbias = c.out.size() > 2 ? c.out[2] : Tensor();
  const Tensor& x = c.in[0];
  const Tensor& w = c.input(1);
  const Tensor& grad = c.in[2];
  const double eps = c.f[0];
  const int64_t C = x.size(-1), rows = x.numel() / C;
  std::vector<double> dw(static_cast<size_t>(C), 0.0), db(static_cast<size_t>(C), 0.0), xhat(C), gw(C);
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < C; ++j) mean += load_at(x, r * C + j);
    mean /= static_cast<double>(C);
    for (int64_t j = 0; j < C; ++j) var += (load_at(x, r * C + j) - mean) * (load_at(x, r * C + j) - mean);
    const double rstd = 1.0 / std::sqrt(var / static_cast<double>(C) + eps);
    double mean_gw = 0, mean_gwx = 0;
    for (int64_t j = 0; j < C; ++j) {
      const double g = load_at(grad, r * C + j);
      xhat[j] = (load_at(x, r * C + j) - mean) * rstd;
      gw[j] = w.defined() ? g * load_at(w, j) : g;
      mean_gw += gw[j];
      mean_gwx += gw[j] * xhat[j];
      dw[j] += g * xhat[j];
      db[j] += g;
    }
    mean_gw /= static_cast<double>(C);
    mean_gwx /= static_cast<double>(C);
    for (int64_t j = 0; j < C; ++j) store_at(dx, r * C + j, rstd * (gw[j] - mean_gw - xhat[j] * mean_gwx));
  }
  for (int64_t j = 0; j < C; ++j) {
    if (dweight.defined()) store_at(dweight, j, dw[j]);
    if (dbias.defined()) store_at(dbias, j, db[j]);
  }
}

// i[6] = 0: out0 dx (N, C, H, W) = Σ grad (N, O, OH, OW) · w (O, C, kh, kw) over the taps that read x;
// i[6] = 1: out0 dw (O, C, kh, kw) = Σ grad · x over images and output positions. i[0..5] as CONV2D.
void conv2d_backward_ref(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& w = c.in[1];
  const Tensor& grad = c.in[2];
  const int64_t sh = c.i[0], sw = c.i[1], ph = c.i[2], pw = c.i[3], dh = c.i[4], dw = c.i[5];
  const bool want_dw = c.i[6] != 0;
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = w.size(0), KH = w.size(2), KW = w.size(3), OH = grad.size(2), OW = grad.size(3);
  std::vector<double> acc(static_cast<size_t>(out.numel()), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const double g = load_at(grad, ((n * O + o) * OH + oh) * OW + ow);
          for (int64_t ch = 0; ch < C; ++ch)
            for (int64_t r = 0; r < KH; ++r)
              for (int64_t s = 0; s < KW; ++s) {
                const int64_t ih = oh * sh - ph + r * dh, iw = ow * sw - pw + s * dw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;  // a zero-padding tap
                const int64_t xi = ((n * C + ch) * H + ih) * W + iw, wi = ((o * C + ch) * KH + r) * KW + s;
                if (want_dw) acc[wi] += g * load_at(x, xi);
                else acc[xi] += g * load_at(w, wi);
              }
        }
  for (int64_t e = 0; e < out.numel(); ++e) store_at(out, e, acc[e]);
}

// out (...) = 0, then out[.. index[..i..] ..] += src[..i..] along dim i[0]; index i64 and src
// contiguous with one shape, each dim <= out's except dim.
void scatter_add_ref(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& index = c.in[0];
  const Tensor& src = c.in[1];
  const int64_t dim = c.i[0];
  const Shape& s = src.shape();
  const Shape ostride = contiguous_strides(out.shape());
  std::vector<double> acc(static_cast<size_t>(out.numel()), 0.0);
  const int64_t* idx = index.data<const int64_t>();
  for (int64_t e = 0; e < src.numel(); ++e) {
    int64_t rem = e, off = 0;
    for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
      off += (d == dim ? idx[e] : rem % s[d]) * ostride[d];
      rem /= s[d];
    }
    acc[off] += load_at(src, e);
  }
  for (int64_t e = 0; e < out.numel(); ++e) store_at(out, e, acc[e]);
}

}  // namespace vislang
