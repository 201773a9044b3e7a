// kernels/ref/ref_kernels.cpp — the reference backend: one plain-loop kernel per Op, the definition
// of record that every optimized CPU and CUDA kernel is tested against.
//
// Where it sits: ops.h front-end -> dispatch() -> cpu backend, falling back to this one (and this one
// only under CpuMode::REFERENCE). Every element is read with load_as_f64 and written through
// store_from_f64; all arithmetic and every accumulation is in double; every tensor, outputs included,
// is addressed through its strides, so views, transposes and zero-stride broadcasts work everywhere.
// The scalar math (unary, binary, activations) comes from kernels/backend.cpp, shared by all backends.
// Deliberately left out: speed (no blocking, threads or SIMD) and input validation (the front-end
// guarantees each op's contract, written next to `enum class Op` in kernels/backend.h).
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <numeric>
#include <vector>

#include "kernels/backend.h"

namespace vislang {

// The backward ops' reference kernels (kernels/ref/ref_grad.cpp).
void unary_backward_ref(OpCall& c);
void softmax_backward_ref(OpCall& c);
void layer_norm_backward_ref(OpCall& c);
void conv2d_backward_ref(OpCall& c);
void scatter_add_ref(OpCall& c);

namespace {

using Index = std::vector<int64_t>;  // a multi-index, one entry per dim

// ---- element access ---------------------------------------------------------------------------------

// Address of element `idx` of t: element offset = sum idx[d] * stride[d], scaled by the element size.
char* element_address(const Tensor& t, const int64_t* idx, size_t n) {
  const Shape& st = t.strides();
  VL_CHECK(n == st.size(), "reference kernel: a ", n, "-d index into ", t.describe());
  int64_t off = 0;
  for (size_t d = 0; d < n; ++d) off += idx[d] * st[d];
  return static_cast<char*>(t.data_ptr()) + off * static_cast<int64_t>(t.element_size());
}

// Writes v into an element of dtype t. Integer targets truncate toward zero and wrap modulo 2^bits
// (what PyTorch's integer casts and integer overflow do on the CPU); NaN and ±inf become 0 (C++ leaves
// those conversions undefined). Floating targets round to nearest even via store_from_f64.
void store_value(void* p, DType t, double v) {
  if (is_integral(t)) {
    if (!std::isfinite(v)) v = 0;
    const int bits = static_cast<int>(8 * dtype_size(t));
    const double range = std::ldexp(1.0, bits);                      // 2^bits
    const double lo = t == DType::U8 ? 0.0 : -std::ldexp(1.0, bits - 1);  // representable: [lo, lo + range)
    v = std::trunc(v);
    if (v < lo || v >= lo + range) {  // only out-of-range values wrap (keeps small i64 values exact)
      v = std::fmod(v, range);        // (-range, range), exact
      if (v < lo) v += range;
      else if (v >= lo + range) v -= range;
    }
  }
  store_from_f64(p, t, v);
}

double load(const Tensor& t, const Index& idx) {
  return load_as_f64(element_address(t, idx.data(), idx.size()), t.dtype());
}
double load(const Tensor& t, std::initializer_list<int64_t> idx) {
  return load_as_f64(element_address(t, idx.begin(), idx.size()), t.dtype());
}
void store(const Tensor& t, const Index& idx, double v) {
  store_value(element_address(t, idx.data(), idx.size()), t.dtype(), v);
}
void store(const Tensor& t, std::initializer_list<int64_t> idx, double v) {
  store_value(element_address(t, idx.begin(), idx.size()), t.dtype(), v);
}

// ---- iteration --------------------------------------------------------------------------------------

// Calls fn(idx) for every multi-index of `shape` in row-major order: once for a 0-d shape, never when
// a dim has size 0.
template <typename Fn>
void for_each_index(const Shape& shape, Fn fn) {
  for (int64_t s : shape)
    if (s == 0) return;
  const int64_t rank = static_cast<int64_t>(shape.size());
  Index idx(shape.size(), 0);
  while (true) {
    fn(static_cast<const Index&>(idx));
    int64_t d = rank - 1;
    for (; d >= 0; --d) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
    if (d < 0) return;
  }
}

// Calls fn(idx) once per 1-d line of `shape` along `dim`, with idx[dim] = 0; fn walks idx[dim] itself.
// Runs even when shape[dim] == 0 (a reduction over nothing still writes its result).
template <typename Fn>
void for_each_line(const Shape& shape, int64_t dim, Fn fn) {
  Shape outer = shape;
  outer[dim] = 1;
  for_each_index(outer, [&](const Index& idx) {
    Index line = idx;
    fn(line);
  });
}

// The values of t along `dim` at the line through idx (idx[dim] is ignored).
std::vector<double> read_line(const Tensor& t, Index idx, int64_t dim) {
  std::vector<double> v(static_cast<size_t>(t.shape()[dim]));
  for (size_t r = 0; r < v.size(); ++r) {
    idx[dim] = static_cast<int64_t>(r);
    v[r] = load(t, idx);
  }
  return v;
}
void write_line(const Tensor& t, Index idx, int64_t dim, const std::vector<double>& v) {
  for (size_t r = 0; r < v.size(); ++r) {
    idx[dim] = static_cast<int64_t>(r);
    store(t, idx, v[r]);
  }
}

int64_t wrap(int64_t d, int64_t rank) { return d < 0 ? d + rank : d; }

// Maximum that propagates NaN (torch.max semantics), shared by REDUCE MAX, softmax and friends.
double nan_max(double a, double b) { return apply_binary_ref(BinaryKind::MAX, a, b); }

// Strict ordering with NaN above every number (torch.topk / torch.argmax treat NaN as the maximum).
bool nan_greater(double a, double b) {
  if (std::isnan(a)) return !std::isnan(b);
  if (std::isnan(b)) return false;
  return a > b;
}

// ---- copy, fill, elementwise ------------------------------------------------------------------------

void copy_ref(OpCall& c) {  // out (...) may be strided; in0 (...) strided, same shape
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  for_each_index(out.shape(), [&](const Index& idx) { store(out, idx, load(x, idx)); });
}

void fill_ref(OpCall& c) {  // out (...) may be strided
  const Tensor& out = c.out[0];
  const double value = c.f[0];
  for_each_index(out.shape(), [&](const Index& idx) { store(out, idx, value); });
}

void binary_ref(OpCall& c) {  // out (...) = in0 (...) ∘ in1 (...)
  const Tensor& out = c.out[0];
  const Tensor& a = c.in[0];
  const Tensor& b = c.in[1];
  const BinaryKind k = static_cast<BinaryKind>(c.i[0]);
  for_each_index(out.shape(), [&](const Index& idx) { store(out, idx, apply_binary_ref(k, load(a, idx), load(b, idx))); });
}

void scalar_ref(OpCall& c) {  // out (...) = in0 (...) ∘ s, or s ∘ in0 when i[1] = 1
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const BinaryKind k = static_cast<BinaryKind>(c.i[0]);
  const bool reverse = c.i[1] != 0;
  const double s = c.f[0];
  for_each_index(out.shape(), [&](const Index& idx) {
    const double v = load(x, idx);
    store(out, idx, reverse ? apply_binary_ref(k, s, v) : apply_binary_ref(k, v, s));
  });
}

void unary_ref(OpCall& c) {  // out (...) = g(in0 (...))
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const UnaryKind k = static_cast<UnaryKind>(c.i[0]);
  for_each_index(out.shape(), [&](const Index& idx) { store(out, idx, apply_unary_ref(k, load(x, idx))); });
}

void clamp_ref(OpCall& c) {  // out (...) = min(max(in0, lo), hi); NaN stays NaN
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const double lo = c.f[0], hi = c.f[1];
  for_each_index(out.shape(), [&](const Index& idx) {
    const double v = apply_binary_ref(BinaryKind::MAX, load(x, idx), lo);
    store(out, idx, apply_binary_ref(BinaryKind::MIN, v, hi));
  });
}

void where_ref(OpCall& c) {  // out (...) = cond (...) != 0 ? a (...) : b (...)
  const Tensor& out = c.out[0];
  const Tensor& cond = c.in[0];
  const Tensor& a = c.in[1];
  const Tensor& b = c.in[2];
  for_each_index(out.shape(), [&](const Index& idx) { store(out, idx, load(cond, idx) != 0 ? load(a, idx) : load(b, idx)); });
}

// ---- reductions along one dim -----------------------------------------------------------------------

void reduce_ref(OpCall& c) {  // out (.., 1, ..) = reduce of in0 (.., R, ..) along dim i[1]
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const ReduceKind k = static_cast<ReduceKind>(c.i[0]);
  const int64_t dim = wrap(c.i[1], x.dim());
  for_each_line(x.shape(), dim, [&](Index& idx) {
    const std::vector<double> v = read_line(x, idx, dim);
    double acc = 0;
    switch (k) {
      case ReduceKind::SUM:
      case ReduceKind::MEAN:
        for (double e : v) acc += e;
        if (k == ReduceKind::MEAN) acc /= static_cast<double>(v.size());  // 0/0 = NaN over an empty dim
        break;
      case ReduceKind::MAX:
        acc = -std::numeric_limits<double>::infinity();
        for (double e : v) acc = nan_max(acc, e);
        break;
      case ReduceKind::MIN:
        acc = std::numeric_limits<double>::infinity();
        for (double e : v) acc = apply_binary_ref(BinaryKind::MIN, acc, e);
        break;
      default: break;
    }
    idx[dim] = 0;
    store(out, idx, acc);
  });
}

void argmax_ref(OpCall& c) {  // out (.., 1, ..) i64 = first index of the max of in0 (.., R, ..) along i[1]
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const int64_t dim = wrap(c.i[1], x.dim());
  for_each_line(x.shape(), dim, [&](Index& idx) {
    const std::vector<double> v = read_line(x, idx, dim);
    size_t best = 0;
    for (size_t r = 1; r < v.size(); ++r)
      if (nan_greater(v[r], v[best])) best = r;  // strict: ties keep the first; the first NaN wins
    idx[dim] = 0;
    store(out, idx, static_cast<double>(best));
  });
}

void topk_ref(OpCall& c) {  // out0 values (.., k, ..), out1 i64 indices (.., k, ..) of in0 (.., R, ..)
  const Tensor& values = c.out[0];
  const Tensor& indices = c.out[1];
  const Tensor& x = c.in[0];
  const int64_t dim = wrap(c.i[0], x.dim());
  const int64_t k = c.i[1];
  const bool largest = c.i[2] != 0;
  for_each_line(x.shape(), dim, [&](Index& idx) {
    const std::vector<double> v = read_line(x, idx, dim);
    std::vector<int64_t> order(v.size());
    std::iota(order.begin(), order.end(), int64_t{0});
    // stable_sort keeps equal values in index order: ties -> lower index first. NaN sorts as the maximum.
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
      return largest ? nan_greater(v[a], v[b]) : nan_greater(v[b], v[a]);
    });
    for (int64_t j = 0; j < k; ++j) {
      idx[dim] = j;
      store(values, idx, v[order[j]]);
      store(indices, idx, static_cast<double>(order[j]));
    }
  });
}

void softmax_ref(OpCall& c) {  // out (...) = softmax / log_softmax (i[1] = 1) of in0 (...) along i[0]
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const int64_t dim = wrap(c.i[0], x.dim());
  const bool log = c.i[1] != 0;
  for_each_line(x.shape(), dim, [&](Index& idx) {
    std::vector<double> v = read_line(x, idx, dim);
    double m = -std::numeric_limits<double>::infinity();
    for (double e : v) m = nan_max(m, e);
    double sum = 0;
    for (double e : v) sum += std::exp(e - m);
    for (double& e : v) e = log ? (e - m) - std::log(sum) : std::exp(e - m) / sum;
    write_line(out, idx, dim, v);
  });
}

void l2_normalize_ref(OpCall& c) {  // out (...) = x / max(||x||_2 along i[0], eps = f[0])
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const int64_t dim = wrap(c.i[0], x.dim());
  const double eps = c.f[0];
  for_each_line(x.shape(), dim, [&](Index& idx) {
    std::vector<double> v = read_line(x, idx, dim);
    double sq = 0;
    for (double e : v) sq += e * e;
    const double denom = std::max(std::sqrt(sq), eps);
    for (double& e : v) e /= denom;
    write_line(out, idx, dim, v);
  });
}

void cross_entropy_ref(OpCall& c) {  // out (N) = logsumexp(logits (N, C)) - logits[n, target (N)]
  const Tensor& loss = c.out[0];
  const Tensor& logits = c.in[0];
  const Tensor& target = c.in[1];
  const int64_t ignore_index = c.i[0];
  const int64_t N = logits.size(0), C = logits.size(1);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = static_cast<int64_t>(load(target, {n}));
    if (t == ignore_index) {
      store(loss, {n}, 0.0);
      continue;
    }
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < C; ++j) m = nan_max(m, load(logits, {n, j}));
    double sum = 0;
    for (int64_t j = 0; j < C; ++j) sum += std::exp(load(logits, {n, j}) - m);
    const double lse = m + std::log(sum);
    // Targets are in range by contract; an out-of-range one gives NaN instead of reading past the row.
    const double picked = (t >= 0 && t < C) ? load(logits, {n, t}) : std::numeric_limits<double>::quiet_NaN();
    store(loss, {n}, lse - picked);
  }
}

// ---- normalization ----------------------------------------------------------------------------------

void layer_norm_ref(OpCall& c) {  // out (.., C) = (x - mean) / sqrt(var + eps) * w (C) + b (C)
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& w = c.input(1);
  const Tensor& b = c.input(2);
  const double eps = c.f[0];
  const int64_t dim = x.dim() - 1;
  for_each_line(x.shape(), dim, [&](Index& idx) {
    std::vector<double> v = read_line(x, idx, dim);
    const double n = static_cast<double>(v.size());
    double mean = 0;
    for (double e : v) mean += e;
    mean /= n;
    double var = 0;  // biased (divide by C), like torch
    for (double e : v) var += (e - mean) * (e - mean);
    var /= n;
    const double inv = 1.0 / std::sqrt(var + eps);
    for (size_t j = 0; j < v.size(); ++j) {
      const int64_t cj = static_cast<int64_t>(j);
      double y = (v[j] - mean) * inv;
      if (w.defined()) y *= load(w, {cj});
      if (b.defined()) y += load(b, {cj});
      v[j] = y;
    }
    write_line(out, idx, dim, v);
  });
}

void rms_norm_ref(OpCall& c) {  // out (.., C) = x / sqrt(mean(x²) + eps) * w (C)
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& w = c.input(1);
  const double eps = c.f[0];
  const int64_t dim = x.dim() - 1;
  for_each_line(x.shape(), dim, [&](Index& idx) {
    std::vector<double> v = read_line(x, idx, dim);
    double ms = 0;
    for (double e : v) ms += e * e;
    ms /= static_cast<double>(v.size());
    const double inv = 1.0 / std::sqrt(ms + eps);
    for (size_t j = 0; j < v.size(); ++j) {
      v[j] *= inv;
      if (w.defined()) v[j] *= load(w, {static_cast<int64_t>(j)});
    }
    write_line(out, idx, dim, v);
  });
}

void batch_norm_ref(OpCall& c) {  // out (N, C, ...) = (x - mean[c]) / sqrt(var[c] + eps) * w[c] + b[c]
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& mean = c.in[1];
  const Tensor& var = c.in[2];
  const Tensor& w = c.input(3);
  const Tensor& b = c.input(4);
  const double eps = c.f[0];
  for_each_index(x.shape(), [&](const Index& idx) {
    const int64_t ch = idx[1];
    double y = (load(x, idx) - load(mean, {ch})) / std::sqrt(load(var, {ch}) + eps);
    if (w.defined()) y *= load(w, {ch});
    if (b.defined()) y += load(b, {ch});
    store(out, idx, y);
  });
}

// ---- matrix products --------------------------------------------------------------------------------

void matmul_ref(OpCall& c) {  // out (B, M, N) = act(alpha * A (B, M, K) @ W (B, K, N) + bias (N))
  const Tensor& out = c.out[0];
  const Tensor& a = c.in[0];
  const Tensor& w = c.in[1];
  const Tensor& bias = c.input(2);
  const Activation act = static_cast<Activation>(c.i[0]);
  const double alpha = c.f[0];
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a.size(2);
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) acc += load(a, {bi, m, k}) * load(w, {bi, k, n});
        double y = alpha * acc;
        if (bias.defined()) y += load(bias, {n});
        store(out, {bi, m, n}, apply_activation_ref(act, y));
      }
}

// out (B, H, Tq, Dv) = softmax(scale · q (B, H, Tq, D) kᵀ (B, H, D, Tk) + mask) v (B, H, Tk, Dv)
void attention_ref(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& q = c.in[0];
  const Tensor& k = c.in[1];
  const Tensor& v = c.in[2];
  const Tensor& mask = c.input(3);         // additive (B, H, Tq, Tk) strided, or undefined
  const Tensor& key_padding = c.input(4);  // u8 (B, Tk), nonzero = ignore key, or undefined
  const bool causal = c.i[0] != 0;
  const double scale = c.f[0];
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3);
  const int64_t Tk = k.size(2), Dv = v.size(3);
  const double neg_inf = -std::numeric_limits<double>::infinity();
  std::vector<double> s(static_cast<size_t>(Tk));
  std::vector<bool> allowed(static_cast<size_t>(Tk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Tq; ++i) {
        // Scores of the keys this query may see; a key is masked by the causal rule, by the key
        // padding mask, or by an additive mask of -inf.
        double m = neg_inf;
        bool any = false;
        for (int64_t j = 0; j < Tk; ++j) {
          bool ok = !(causal && j > i + Tk - Tq);
          if (ok && key_padding.defined() && load(key_padding, {b, j}) != 0) ok = false;
          double score = 0;
          if (ok) {
            double dot = 0;
            for (int64_t d = 0; d < D; ++d) dot += load(q, {b, h, i, d}) * load(k, {b, h, j, d});
            score = scale * dot;
            if (mask.defined()) score += load(mask, {b, h, i, j});
            if (score == neg_inf) ok = false;
          }
          allowed[j] = ok;
          s[j] = score;
          if (ok) {
            m = any ? nan_max(m, score) : score;
            any = true;
          }
        }
        // Softmax over the allowed keys (max subtracted); a row with no allowed key outputs zeros.
        double sum = 0;
        for (int64_t j = 0; j < Tk; ++j) {
          s[j] = allowed[j] ? std::exp(s[j] - m) : 0.0;
          sum += s[j];
        }
        for (int64_t e = 0; e < Dv; ++e) {
          double acc = 0;
          if (any)
            for (int64_t j = 0; j < Tk; ++j)
              if (allowed[j]) acc += s[j] * load(v, {b, h, j, e});
          store(out, {b, h, i, e}, any ? acc / sum : 0.0);
        }
      }
}

// ---- convolution & pooling --------------------------------------------------------------------------

// out (N, O, OH, OW) = bias (O) + sum over c, r, s of x (N, C, H, W) [zero padded] * w (O, C, kh, kw)
void conv2d_ref(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& w = c.in[1];
  const Tensor& bias = c.input(2);
  const int64_t stride_h = c.i[0], stride_w = c.i[1], pad_h = c.i[2], pad_w = c.i[3];
  const int64_t dil_h = c.i[4], dil_w = c.i[5];
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t O = w.size(0), KH = w.size(2), KW = w.size(3);
  const int64_t OH = out.size(2), OW = out.size(3);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = bias.defined() ? load(bias, {o}) : 0.0;
          for (int64_t ch = 0; ch < C; ++ch)
            for (int64_t r = 0; r < KH; ++r)
              for (int64_t s = 0; s < KW; ++s) {
                const int64_t ih = oh * stride_h - pad_h + r * dil_h;
                const int64_t iw = ow * stride_w - pad_w + s * dil_w;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;  // zero padding
                acc += load(x, {n, ch, ih, iw}) * load(w, {o, ch, r, s});
              }
          store(out, {n, o, oh, ow}, acc);
        }
}

// out (N, C, OH, OW) = window averages of in0 (N, C, H, W), PyTorch's avg_pool2d. The output size
// (including ceil_mode's rule that drops a window starting in the right padding) comes from out.
void avg_pool2d_ref(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const int64_t kernel_h = c.i[0], kernel_w = c.i[1], stride_h = c.i[2], stride_w = c.i[3];
  const int64_t pad_h = c.i[4], pad_w = c.i[5];
  const bool count_include_pad = c.i[6] != 0;
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = out.size(2), OW = out.size(3);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t ch = 0; ch < C; ++ch)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          // The window, clipped to input + padding: its area is the count_include_pad divisor, so a
          // ceil_mode window hanging past the padding does not count the part beyond it.
          int64_t h0 = oh * stride_h - pad_h, w0 = ow * stride_w - pad_w;
          int64_t h1 = std::min(h0 + kernel_h, H + pad_h), w1 = std::min(w0 + kernel_w, W + pad_w);
          const int64_t padded_area = (h1 - h0) * (w1 - w0);
          // Then clipped to the input itself: the positions that are summed.
          h0 = std::max<int64_t>(h0, 0);
          w0 = std::max<int64_t>(w0, 0);
          h1 = std::min(h1, H);
          w1 = std::min(w1, W);
          if (h0 >= h1 || w0 >= w1) {  // no input position in the window
            store(out, {n, ch, oh, ow}, 0.0);
            continue;
          }
          double sum = 0;
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) sum += load(x, {n, ch, ih, iw});
          const int64_t divisor = count_include_pad ? padded_area : (h1 - h0) * (w1 - w0);
          store(out, {n, ch, oh, ow}, sum / static_cast<double>(divisor));
        }
}

// ---- indexing ---------------------------------------------------------------------------------------

void embedding_ref(OpCall& c) {  // out (.., D) = table (V, D) [ids (..)]
  const Tensor& out = c.out[0];
  const Tensor& table = c.in[0];
  const Tensor& ids = c.in[1];
  const int64_t D = table.size(1);
  for_each_index(ids.shape(), [&](const Index& idx) {
    const int64_t row = static_cast<int64_t>(load(ids, idx));
    Index o = idx;
    o.push_back(0);
    for (int64_t d = 0; d < D; ++d) {
      o.back() = d;
      store(out, o, load(table, {row, d}));
    }
  });
}

void index_select_ref(OpCall& c) {  // out (.., n, ..) = in0 (.., S, ..) [.., ids (n), ..] along i[0]
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& ids = c.in[1];
  const int64_t dim = wrap(c.i[0], x.dim());
  for_each_index(out.shape(), [&](const Index& idx) {
    Index src = idx;
    src[dim] = static_cast<int64_t>(load(ids, {idx[dim]}));
    store(out, idx, load(x, src));
  });
}

void gather_ref(OpCall& c) {  // out (...) [idx] = in0 [idx with idx[dim] = in1 (...) [idx]] along i[0]
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& index = c.in[1];
  const int64_t dim = wrap(c.i[0], x.dim());
  for_each_index(out.shape(), [&](const Index& idx) {
    Index src = idx;
    src[dim] = static_cast<int64_t>(load(index, idx));
    store(out, idx, load(x, src));
  });
}

// ---- support table ----------------------------------------------------------------------------------

bool is_float(const Tensor& t) { return t.defined() && is_floating(t.dtype()); }
bool is_index(const Tensor& t) { return t.defined() && (t.dtype() == DType::I32 || t.dtype() == DType::I64); }
bool is_any(const Tensor& t) { return t.defined() && dtype_size(t.dtype()) != 0; }  // float or integer
bool is_dtype(const Tensor& t, DType d) { return t.defined() && t.dtype() == d; }
bool float_or_absent(const Tensor& t) { return !t.defined() || is_floating(t.dtype()); }

// Every tensor of the call is in host memory (this backend dereferences plain pointers).
bool all_on_cpu(const OpCall& c) {
  return all_tensors(c, [](const Tensor& t) { return t.device().is_cpu(); });
}

static_assert(static_cast<int>(Op::COUNT) == 28, "ref_find: give the new op a reference kernel and a case below");

Kernel ref_find(const OpCall& c) {
  if (c.out.empty() || !c.out[0].defined() || !all_on_cpu(c)) return nullptr;
  const Tensor& out = c.out[0];
  const Tensor& in0 = c.input(0);
  const Tensor& in1 = c.input(1);
  const Tensor& in2 = c.input(2);
  switch (c.op) {
    case Op::COPY:
      return is_any(out) && is_any(in0) ? &copy_ref : nullptr;
    case Op::FILL:
      return is_any(out) ? &fill_ref : nullptr;
    case Op::BINARY:
      return kind_in_range<BinaryKind>(c.i[0]) && is_any(out) && is_any(in0) && is_any(in1) ? &binary_ref : nullptr;
    case Op::SCALAR:
      return kind_in_range<BinaryKind>(c.i[0]) && is_any(out) && is_any(in0) ? &scalar_ref : nullptr;
    case Op::UNARY: {
      if (!kind_in_range<UnaryKind>(c.i[0])) return nullptr;
      // Integer tensors: the kinds the front-end allows on them (exact in double, wrapped on store).
      if (is_float(out) && is_float(in0)) return &unary_ref;
      return unary_allows_integer(static_cast<UnaryKind>(c.i[0])) && is_any(out) && is_any(in0) ? &unary_ref
                                                                                              : nullptr;
    }
    case Op::CLAMP:
      return is_any(out) && is_any(in0) ? &clamp_ref : nullptr;
    case Op::WHERE:
      return is_any(out) && is_dtype(in0, DType::U8) && is_any(in1) && is_any(in2) ? &where_ref : nullptr;
    case Op::REDUCE: {
      if (!kind_in_range<ReduceKind>(c.i[0]) || !is_any(out) || !is_any(in0)) return nullptr;
      const bool float_only = static_cast<ReduceKind>(c.i[0]) == ReduceKind::MEAN;
      return !float_only || (is_float(out) && is_float(in0)) ? &reduce_ref : nullptr;
    }
    case Op::ARGMAX:
      return is_dtype(out, DType::I64) && is_any(in0) ? &argmax_ref : nullptr;
    case Op::TOPK:
      return c.out.size() >= 2 && is_any(out) && is_dtype(c.out[1], DType::I64) && is_any(in0) ? &topk_ref
                                                                                                 : nullptr;
    case Op::SOFTMAX:
      return is_float(out) && is_float(in0) ? &softmax_ref : nullptr;
    case Op::L2_NORMALIZE:
      return is_float(out) && is_float(in0) ? &l2_normalize_ref : nullptr;
    case Op::CROSS_ENTROPY:
      return is_float(out) && is_float(in0) && is_index(in1) ? &cross_entropy_ref : nullptr;
    case Op::LAYER_NORM:
      return is_float(out) && is_float(in0) && float_or_absent(in1) && float_or_absent(in2) ? &layer_norm_ref
                                                                                             : nullptr;
    case Op::RMS_NORM:
      return is_float(out) && is_float(in0) && float_or_absent(in1) ? &rms_norm_ref : nullptr;
    case Op::MATMUL:
      return kind_in_range<Activation>(c.i[0]) && is_float(out) && is_float(in0) && is_float(in1) && float_or_absent(in2)
                 ? &matmul_ref
                 : nullptr;
    case Op::ATTENTION: {
      const Tensor& key_padding = c.input(4);
      const bool pad_ok = !key_padding.defined() || key_padding.dtype() == DType::U8;
      return is_float(out) && is_float(in0) && is_float(in1) && is_float(in2) && float_or_absent(c.input(3)) &&
                     pad_ok
                 ? &attention_ref
                 : nullptr;
    }
    case Op::CONV2D:
      return is_float(out) && is_float(in0) && is_float(in1) && float_or_absent(in2) ? &conv2d_ref : nullptr;
    case Op::AVG_POOL2D:
      return is_float(out) && is_float(in0) ? &avg_pool2d_ref : nullptr;
    case Op::BATCH_NORM:
      return is_float(out) && is_float(in0) && is_float(in1) && is_float(in2) && float_or_absent(c.input(3)) &&
                     float_or_absent(c.input(4))
                 ? &batch_norm_ref
                 : nullptr;
    case Op::EMBEDDING:
      return is_any(out) && is_any(in0) && is_index(in1) ? &embedding_ref : nullptr;
    case Op::INDEX_SELECT:
      return is_any(out) && is_any(in0) && is_index(in1) ? &index_select_ref : nullptr;
    case Op::GATHER:
      return is_any(out) && is_any(in0) && is_index(in1) ? &gather_ref : nullptr;
    case Op::UNARY_BACKWARD:
      return (c.i[0] == -1 || kind_in_range<UnaryKind>(c.i[0])) && is_float(out) && is_float(in0) && is_float(in1)
                 ? &unary_backward_ref
                 : nullptr;
    case Op::SOFTMAX_BACKWARD:
      return is_float(out) && is_float(in0) && is_float(in1) ? &softmax_backward_ref : nullptr;
    case Op::LAYER_NORM_BACKWARD:
      return is_float(out) && is_float(in0) && float_or_absent(in1) && is_float(in2) &&
                     all_tensors(c, [](const Tensor& t) { return is_floating(t.dtype()); })
                 ? &layer_norm_backward_ref
                 : nullptr;
    case Op::CONV2D_BACKWARD:
      return is_float(out) && is_float(in0) && is_float(in1) && is_float(in2) ? &conv2d_backward_ref : nullptr;
    case Op::SCATTER_ADD:
      return is_float(out) && is_dtype(in0, DType::I64) && is_float(in1) ? &scatter_add_ref : nullptr;
    case Op::COUNT:
      return nullptr;
  }
  return nullptr;
}

}  // namespace

const Backend& ref_backend() {
  static const Backend b{"ref", &ref_find};
  return b;
}

}  // namespace vislang
