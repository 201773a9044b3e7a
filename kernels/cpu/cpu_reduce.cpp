// kernels/cpu/cpu_reduce.cpp — ops along one dim on the CPU: Op::REDUCE, ARGMAX, TOPK, SOFTMAX,
// L2_NORMALIZE, CROSS_ENTROPY, LAYER_NORM, RMS_NORM, BATCH_NORM.
//
// The input (contiguous) is seen as (outer, R, inner) around the dim (cpu_common.h). When inner is 1
// each line is a contiguous row: rows run in parallel, f32 rows are read in place, f16 / bf16 rows
// are converted into per-thread scratch. When inner > 1, REDUCE and ARGMAX sweep the R rows of
// length inner (vectorized across inner); the other ops gather 16 lines at a time into contiguous
// rows, run the row code and scatter the result back. Sums (sum, mean, softmax denominators, norms,
// variances) accumulate in double so a long row stays within 1e-6 relative of the reference.
#include <cmath>
#include <limits>
#include <numeric>

#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/cpu_math.h"
#include "kernels/cpu/gemm.h"  // softmax_row_f32: the vectorized row

namespace vislang::cpu_kernels {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr int64_t kLinesPerGather = 16;  // lines (o, :, j..j+16) gathered together when inner > 1

int64_t wrap_dim(int64_t d, int64_t rank) { return d < 0 ? d + rank : d; }

// ---- row primitives (contiguous f32) ------------------------------------------------------------------

double sum_row(const float* x, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}
double sum_sq_row(const float* x, int64_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}
// torch.max / min of a row: NaN if any element is NaN; -inf / +inf for an empty row. One pass: the
// plain max / min reduction vectorizes, NaN is tracked beside it.
float max_row(const float* x, int64_t n) {
  float m = -kInf;
  int nan = 0;
#pragma omp simd reduction(max : m) reduction(| : nan)
  for (int64_t i = 0; i < n; ++i) {
    m = x[i] > m ? x[i] : m;
    nan |= x[i] != x[i];
  }
  return nan ? kNaN : m;
}
float min_row(const float* x, int64_t n) {
  float m = kInf;
  int nan = 0;
#pragma omp simd reduction(min : m) reduction(| : nan)
  for (int64_t i = 0; i < n; ++i) {
    m = x[i] < m ? x[i] : m;
    nan |= x[i] != x[i];
  }
  return nan ? kNaN : m;
}

float reduce_row(ReduceKind k, const float* x, int64_t n) {
  switch (k) {
    case ReduceKind::SUM: return static_cast<float>(sum_row(x, n));
    case ReduceKind::MEAN: return static_cast<float>(sum_row(x, n) / static_cast<double>(n));  // 0/0 = NaN
    case ReduceKind::MAX: return max_row(x, n);
    case ReduceKind::MIN: return min_row(x, n);
    default: return 0;
  }
}

// First index of the maximum; NaN counts as the maximum (the first NaN wins).
int64_t argmax_row(const float* x, int64_t n) {
  const float m = max_row(x, n);  // then the first element equal to it (or the first NaN)
  if (m != m) {
    for (int64_t i = 0; i < n; ++i)
      if (x[i] != x[i]) return i;
  }
  for (int64_t i = 0; i < n; ++i)
    if (x[i] == m) return i;
  return 0;
}

// y = softmax(x) or log_softmax(x) over n elements.
void softmax_row(float* y, const float* x, int64_t n, bool log) {
  if (cpu::softmax_row_f32(y, x, n, log)) return;  // AVX-512, no NaN, finite max
  const float m = max_row(x, n);  // NaN or all -inf make every output NaN, as in the reference
  double sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    y[i] = exp_f(x[i] - m);
    sum += y[i];
  }
  if (log) {
    const float lse = static_cast<float>(std::log(sum));
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - m) - lse;
  } else {
    const float inv = static_cast<float>(1.0 / sum);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  }
}

// y = x / max(||x||_2, eps)
void l2_normalize_row(float* y, const float* x, int64_t n, double eps) {
  const double norm = std::max(std::sqrt(sum_sq_row(x, n)), eps);
  const float inv = static_cast<float>(1.0 / norm);
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * inv;
}

// Runs row_fn(y, x, R) on every line of x along dim (out has x's shape): in place for f32 rows, via
// scratch for f16 / bf16, via gather / scatter of 16 lines when the dim is not the last one.
template <typename RowFn>
void for_each_line(const Tensor& out, const Tensor& x, int64_t dim, RowFn row_fn) {
  const DimView v = dim_view(x.shape(), dim);
  if (x.numel() == 0) return;
  const int64_t R = v.R;
  if (v.inner == 1) {
    const bool x_direct = x.dtype() == DType::F32, y_direct = out.dtype() == DType::F32;
    const char* px = byte_ptr(x);
    char* py = byte_ptr(out);
    const int64_t ex = esize(x), ey = esize(out);
#pragma omp parallel for schedule(static) if (v.outer > 1 && v.outer * R >= kParallelMin)
    for (int64_t o = 0; o < v.outer; ++o) {
      const float* xr;
      if (x_direct) {
        xr = reinterpret_cast<const float*>(px) + o * R;
      } else {
        float* buf = scratch(0, static_cast<size_t>(R));
        load_f32(buf, px + o * R * ex, x.dtype(), R);
        xr = buf;
      }
      float* yr = y_direct ? reinterpret_cast<float*>(py) + o * R : scratch(1, static_cast<size_t>(R));
      row_fn(yr, xr, R);
      if (!y_direct) store_f32(py + o * R * ey, out.dtype(), yr, R);
    }
    return;
  }
  const int64_t groups = (v.inner + kLinesPerGather - 1) / kLinesPerGather;
#pragma omp parallel for schedule(static) if (v.outer * groups > 1 && x.numel() >= kParallelMin)
  for (int64_t w = 0; w < v.outer * groups; ++w) {
    const int64_t o = w / groups, j0 = (w % groups) * kLinesPerGather;
    const int64_t nb = std::min(kLinesPerGather, v.inner - j0);
    float* xb = scratch(0, static_cast<size_t>(nb * R));
    float* yb = scratch(1, static_cast<size_t>(nb * R));
    gather_rows(xb, x, v, o, j0, nb);
    for (int64_t b = 0; b < nb; ++b) row_fn(yb + b * R, xb + b * R, R);
    scatter_rows(out, v, o, j0, nb, yb);
  }
}

// A row of x (contiguous, row index o, length n) as f32: in place or converted into scratch slot.
const float* row_f32(const Tensor& x, int64_t o, int64_t n, int slot) {
  if (x.dtype() == DType::F32) return x.data<const float>() + o * n;
  float* buf = scratch(slot, static_cast<size_t>(n));
  load_f32(buf, byte_ptr(x) + o * n * esize(x), x.dtype(), n);
  return buf;
}

// A small parameter vector (C), any float dtype, as f32; `fill` when the tensor is undefined.
std::vector<float> param_f32(const Tensor& t, int64_t n, float fill) {
  if (!t.defined()) return std::vector<float>(static_cast<size_t>(n), fill);
  return to_f32_vector(t);
}

}  // namespace

// out (.., 1, ..) = sum / mean / max / min of in0 (.., R, ..) along dim i[1]
void reduce_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const ReduceKind k = static_cast<ReduceKind>(c.i[0]);
  const DimView v = dim_view(x.shape(), wrap_dim(c.i[1], x.dim()));
  const int64_t R = v.R;
  char* py = byte_ptr(out);
  const int64_t ey = esize(out);
  if (out.numel() == 0) return;
  if (v.inner == 1) {
#pragma omp parallel for schedule(static) if (v.outer > 1 && v.outer * R >= kParallelMin)
    for (int64_t o = 0; o < v.outer; ++o) {
      const float r = reduce_row(k, R > 0 ? row_f32(x, o, R, 0) : nullptr, R);
      store_f32(py + o * ey, out.dtype(), &r, 1);
    }
    return;
  }
  // (outer, R, inner): accumulate the R rows of each (o, piece of inner), vectorized across inner.
  const int64_t pieces = (v.inner + kTile - 1) / kTile;
  const char* px = byte_ptr(x);
  const int64_t ex = esize(x);
#pragma omp parallel for schedule(static) if (v.outer * pieces > 1 && x.numel() >= kParallelMin)
  for (int64_t w = 0; w < v.outer * pieces; ++w) {
    const int64_t o = w / pieces, j0 = (w % pieces) * kTile, n = std::min(kTile, v.inner - j0);
    float xbuf[kTile], res[kTile];
    auto row = [&](int64_t r) -> const float* {  // x[o, r, j0 : j0 + n] as f32
      const char* src = px + ((o * R + r) * v.inner + j0) * ex;
      if (x.dtype() == DType::F32) return reinterpret_cast<const float*>(src);
      load_f32(xbuf, src, x.dtype(), n);
      return xbuf;
    };
    if (k == ReduceKind::SUM || k == ReduceKind::MEAN) {
      double acc[kTile];
      std::fill(acc, acc + n, 0.0);
      for (int64_t r = 0; r < R; ++r) {
        const float* xr = row(r);
#pragma omp simd
        for (int64_t j = 0; j < n; ++j) acc[j] += xr[j];
      }
      const double scale = k == ReduceKind::MEAN ? 1.0 / static_cast<double>(R) : 1.0;
      for (int64_t j = 0; j < n; ++j) res[j] = static_cast<float>(k == ReduceKind::MEAN ? acc[j] * scale : acc[j]);
      if (k == ReduceKind::MEAN && R == 0) std::fill(res, res + n, kNaN);
    } else {
      const bool is_max = k == ReduceKind::MAX;
      std::fill(res, res + n, is_max ? -kInf : kInf);
      for (int64_t r = 0; r < R; ++r) {
        const float* xr = row(r);
        if (is_max) {  // max_nan / min_nan keep a NaN once it is in res
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) res[j] = max_nan(res[j], xr[j]);
        } else {
#pragma omp simd
          for (int64_t j = 0; j < n; ++j) res[j] = min_nan(res[j], xr[j]);
        }
      }
    }
    store_f32(py + (o * v.inner + j0) * ey, out.dtype(), res, n);
  }
}

// out (.., 1, ..) i64 = first index of the maximum of in0 (.., R, ..) along dim i[1]
void argmax_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const DimView v = dim_view(x.shape(), wrap_dim(c.i[1], x.dim()));
  const int64_t R = v.R;
  int64_t* py = out.data<int64_t>();
  if (out.numel() == 0) return;
  if (v.inner == 1) {
#pragma omp parallel for schedule(static) if (v.outer > 1 && v.outer * R >= kParallelMin)
    for (int64_t o = 0; o < v.outer; ++o) py[o] = R > 0 ? argmax_row(row_f32(x, o, R, 0), R) : 0;
    return;
  }
  const int64_t pieces = (v.inner + kTile - 1) / kTile;
  const char* px = byte_ptr(x);
  const int64_t ex = esize(x);
#pragma omp parallel for schedule(static) if (v.outer * pieces > 1 && x.numel() >= kParallelMin)
  for (int64_t w = 0; w < v.outer * pieces; ++w) {
    const int64_t o = w / pieces, j0 = (w % pieces) * kTile, n = std::min(kTile, v.inner - j0);
    float best[kTile], xr[kTile];
    int64_t* idx = py + o * v.inner + j0;
    std::fill(idx, idx + n, int64_t{0});
    for (int64_t r = 0; r < R; ++r) {
      load_f32(xr, px + ((o * R + r) * v.inner + j0) * ex, x.dtype(), n);
      if (r == 0) {
        std::copy(xr, xr + n, best);
        continue;
      }
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        // strictly greater, with NaN above every number (ties keep the earlier index)
        const bool better = xr[j] != xr[j] ? best[j] == best[j] : (best[j] == best[j] && xr[j] > best[j]);
        best[j] = better ? xr[j] : best[j];
        idx[j] = better ? r : idx[j];
      }
    }
  }
}

// out0 values (.., k, ..), out1 i64 indices (.., k, ..) of the k largest (i[2] = 1) or smallest of
// in0 (.., R, ..) along dim i[0]; sorted, ties -> lower index first, NaN above every number.
void topk_kernel(OpCall& c) {
  const Tensor& values = c.out[0];
  const Tensor& indices = c.out[1];
  const Tensor& x = c.in[0];
  const DimView v = dim_view(x.shape(), wrap_dim(c.i[0], x.dim()));
  const int64_t R = v.R, k = c.i[1];
  const bool largest = c.i[2] != 0;
  if (values.numel() == 0) return;
  char* pv = byte_ptr(values);
  int64_t* pi = indices.data<int64_t>();
  const int64_t ev = esize(values);
  const int64_t lines = v.outer * v.inner;
#pragma omp parallel for schedule(static) if (lines > 1 && x.numel() >= kParallelMin)
  for (int64_t line = 0; line < lines; ++line) {
    const int64_t o = line / v.inner, j = line % v.inner;
    float* row = scratch(0, static_cast<size_t>(R));
    gather_rows(row, x, v, o, j, 1);
    std::vector<int64_t> order(static_cast<size_t>(R));
    std::iota(order.begin(), order.end(), int64_t{0});
    auto greater = [](float a, float b) { return a != a ? b == b : (b == b && a > b); };  // NaN on top
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
      const float va = row[a], vb = row[b];
      const bool before = largest ? greater(va, vb) : greater(vb, va);
      const bool after = largest ? greater(vb, va) : greater(va, vb);
      return before || (!after && a < b);
    });
    float* top = scratch(1, static_cast<size_t>(k));
    for (int64_t t = 0; t < k; ++t) {
      top[t] = row[order[t]];
      pi[(o * k + t) * v.inner + j] = order[t];
    }
    store_f32(pv + (o * k * v.inner + j) * ev, values.dtype(), top, k, v.inner);  // outputs (outer, k, inner)
  }
}

// out (...) = softmax (i[1] = 0) or log_softmax (i[1] = 1) of in0 (...) along dim i[0]
void softmax_kernel(OpCall& c) {
  const bool log = c.i[1] != 0;
  for_each_line(c.out[0], c.in[0], wrap_dim(c.i[0], c.in[0].dim()),
                [log](float* y, const float* x, int64_t n) { softmax_row(y, x, n, log); });
}

// out (...) = x / max(||x||_2 along dim i[0], f[0])
void l2_normalize_kernel(OpCall& c) {
  const double eps = c.f[0];
  for_each_line(c.out[0], c.in[0], wrap_dim(c.i[0], c.in[0].dim()),
                [eps](float* y, const float* x, int64_t n) { l2_normalize_row(y, x, n, eps); });
}

// out (N) = logsumexp(logits (N, C)) - logits[n, target (N)], 0 where target == i[0]
void cross_entropy_kernel(OpCall& c) {
  const Tensor& loss = c.out[0];
  const Tensor& logits = c.in[0];
  const Tensor& target = c.in[1];
  const int64_t ignore_index = c.i[0];
  const int64_t N = logits.size(0), C = logits.size(1);
  char* pl = byte_ptr(loss);
  const int64_t el = esize(loss);
#pragma omp parallel for schedule(static) if (N > 1 && N * C >= kParallelMin)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = load_index(target.data_ptr(), target.dtype(), n);
    float result = 0;
    if (t != ignore_index) {
      const float* x = row_f32(logits, n, C, 0);
      const float m = max_row(x, C);
      double sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < C; ++j) sum += exp_f(x[j] - m);
      const double lse = static_cast<double>(m) + std::log(sum);
      result = (t >= 0 && t < C) ? static_cast<float>(lse - x[t]) : kNaN;
    }
    store_f32(pl + n * el, loss.dtype(), &result, 1);
  }
}

// out (.., C) = (x - mean) / sqrt(var + eps) * w (C) + b (C), over the last dim; w, b optional
void layer_norm_kernel(OpCall& c) {
  const Tensor& x = c.in[0];
  const int64_t C = x.size(-1);
  const std::vector<float> w = param_f32(c.input(1), C, 1.0f), b = param_f32(c.input(2), C, 0.0f);
  const double eps = c.f[0];
  const float* wp = w.data();
  const float* bp = b.data();
  for_each_line(c.out[0], x, x.dim() - 1, [=](float* y, const float* xr, int64_t n) {
    const double mean = sum_row(xr, n) / static_cast<double>(n);
    double var = 0;  // two passes: the row is in L1, and no cancellation
#pragma omp simd reduction(+ : var)
    for (int64_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(xr[i]) - mean;
      var += d * d;
    }
    const float rstd = static_cast<float>(1.0 / std::sqrt(var / static_cast<double>(n) + eps));
    // The mean as a float pair hi + lo: x - hi is exact for x near the mean, so rows with a large
    // offset (|mean| >> std) are centered as accurately as in double.
    const float mean_hi = static_cast<float>(mean), mean_lo = static_cast<float>(mean - mean_hi);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = ((xr[i] - mean_hi) - mean_lo) * rstd * wp[i] + bp[i];
  });
}

// out (.., C) = x / sqrt(mean(x²) + eps) * w (C); w optional
void rms_norm_kernel(OpCall& c) {
  const Tensor& x = c.in[0];
  const int64_t C = x.size(-1);
  const std::vector<float> w = param_f32(c.input(1), C, 1.0f);
  const double eps = c.f[0];
  const float* wp = w.data();
  for_each_line(c.out[0], x, x.dim() - 1, [=](float* y, const float* xr, int64_t n) {
    const float r = static_cast<float>(1.0 / std::sqrt(sum_sq_row(xr, n) / static_cast<double>(n) + eps));
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = xr[i] * r * wp[i];
  });
}

// out (N, C, ...) = (x - mean[c]) / sqrt(var[c] + eps) * w[c] + b[c]   (inference statistics)
void batch_norm_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const int64_t N = x.size(0), C = x.size(1);
  const int64_t S = N * C > 0 ? x.numel() / (N * C) : 0;  // elements per (n, c) plane
  if (out.numel() == 0) return;
  const std::vector<float> mean = param_f32(c.in[1], C, 0.0f), var = param_f32(c.in[2], C, 1.0f);
  const std::vector<float> w = param_f32(c.input(3), C, 1.0f), b = param_f32(c.input(4), C, 0.0f);
  std::vector<float> scale(static_cast<size_t>(C));
  for (int64_t ch = 0; ch < C; ++ch)
    scale[ch] = static_cast<float>(static_cast<double>(w[ch]) / std::sqrt(static_cast<double>(var[ch]) + c.f[0]));
  const char* px = byte_ptr(x);
  char* py = byte_ptr(out);
  const int64_t ex = esize(x), ey = esize(out);
  const int64_t pieces = (S + kTile - 1) / kTile;
#pragma omp parallel for schedule(static) if (N * C * pieces > 1 && x.numel() >= kParallelMin)
  for (int64_t w_ = 0; w_ < N * C * pieces; ++w_) {
    const int64_t plane = w_ / pieces, s0 = (w_ % pieces) * kTile, n = std::min(kTile, S - s0);
    const int64_t ch = plane % C;
    const int64_t off = plane * S + s0;
    float xbuf[kTile], ybuf[kTile];
    const float* xr = x.dtype() == DType::F32 ? reinterpret_cast<const float*>(px) + off : xbuf;
    if (xr == xbuf) load_f32(xbuf, px + off * ex, x.dtype(), n);
    float* yr = out.dtype() == DType::F32 ? reinterpret_cast<float*>(py) + off : ybuf;
    const float m = mean[ch], sc = scale[ch], sh = b[ch];
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - m) * sc + sh;
    if (yr == ybuf) store_f32(py + off * ey, out.dtype(), ybuf, n);
  }
}

}  // namespace vislang::cpu_kernels
