// kernels/ops.cpp — front-ends of the public ops: validate, compute output shapes, allocate, dispatch.
//
// Every check here names the op and prints the offending tensors via Tensor::describe(), e.g.
//   "matmul: inner dims differ: a f32 (2, 3) cpu vs b f32 (4, 5) cpu (K 3 vs 4)".
// Kernels (ref/, cpu/, cuda/) assume these checks passed.
#include "kernels/ops.h"

#include <cmath>
#include <limits>

#include "core/autograd.h"
#include "kernels/cpu/prepack.h"  // prepack_linear_weight: the CPU backend's weight registry
#include "kernels/op_checks.h"    // check_float, check_param, run1, ...: shared with grad_ops.cpp
#include "kernels/grad_ops.h"

namespace vislang::ops {

// Backward closures (core/autograd.h) follow each forward op: autograd::record attaches them when an
// input requires grad. They receive g = dL/d(out) and return dL/d(input) per input; `Grads` is that list.
using Grads = std::vector<Tensor>;
using autograd::sum_to;

namespace {
// 1 where x > 0 else 0, times g: the step function through relu's backward (there is no compare op).
Tensor step_times(const Tensor& x, const Tensor& g) { return unary_backward(UnaryKind::RELU, x, g); }
}  // namespace

// ---- elementwise ----------------------------------------------------------------------------------
Tensor binary(BinaryKind k, const Tensor& a, const Tensor& b) {
  const char* op = binary_name(k);
  check_defined(a, op, "a");
  check_defined(b, op, "b");
  check_same_device(a, b, op);
  check_same_dtype(a, b, op);
  if (k == BinaryKind::POW) check_float(a, op, "a");
  Shape s = broadcast_shapes(a.shape(), b.shape(), op);
  OpCall c;
  c.op = Op::BINARY;
  c.i[0] = static_cast<int64_t>(k);
  c.in = {a.expand(s), b.expand(s)};
  c.out = {Tensor::empty(s, a.dtype(), a.device())};
  Tensor out = run1(c);
  if (!autograd::needs_grad(a, b)) return out;
  return autograd::record(out, op, {a, b}, [k, a = a.detach(), b = b.detach(), out = out.detach()](const Tensor& g) {
    const Shape &sa = a.shape(), &sb = b.shape();
    switch (k) {
      case BinaryKind::ADD: return Grads{sum_to(g, sa), sum_to(g, sb)};
      case BinaryKind::SUB: return Grads{sum_to(g, sa), sum_to(neg(g), sb)};
      case BinaryKind::MUL: return Grads{sum_to(mul(g, b), sa), sum_to(mul(g, a), sb)};
      case BinaryKind::DIV: {  // out = a / b: d/da = 1/b, d/db = -out/b
        Tensor ga = div(g, b);
        return Grads{sum_to(ga, sa), sum_to(neg(mul(ga, out)), sb)};
      }
      case BinaryKind::MAX: case BinaryKind::MIN: {  // the larger (smaller) input takes g; ties go to b
        Tensor ga = k == BinaryKind::MAX ? step_times(sub(a, b), g) : step_times(sub(b, a), g);
        return Grads{sum_to(ga, sa), sum_to(sub(g, ga), sb)};
      }
      case BinaryKind::POW: {  // out = a^b: d/da = b a^(b-1), d/db = out ln a
        Tensor ga = mul(g, mul(b, binary(BinaryKind::POW, a, sub(b, 1.0))));
        return Grads{sum_to(ga, sa), sum_to(mul(g, mul(out, log(a))), sb)};
      }
      default: VL_FAIL(binary_name(k), ": no backward");
    }
  });
}
Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryKind::ADD, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryKind::SUB, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryKind::MUL, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryKind::DIV, a, b); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(BinaryKind::MAX, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(BinaryKind::MIN, a, b); }

Tensor scalar(BinaryKind k, const Tensor& a, double s, bool reverse) {
  const char* op = binary_name(k);
  check_defined(a, op, "a");
  if (k == BinaryKind::POW || k == BinaryKind::DIV) check_float(a, op, "a");
  OpCall c;
  c.op = Op::SCALAR;
  c.i[0] = static_cast<int64_t>(k);
  c.i[1] = reverse ? 1 : 0;
  c.f[0] = static_cast<float>(s);
  c.in = {a};
  c.out = {Tensor::empty(a.shape(), a.dtype(), a.device())};
  Tensor out = run1(c);
  if (!autograd::needs_grad(a)) return out;
  return autograd::record(out, op, {a}, [k, s, reverse, a = a.detach(), out = out.detach()](const Tensor& g) {
    switch (k) {
      case BinaryKind::ADD: return Grads{g};
      case BinaryKind::SUB: return Grads{reverse ? neg(g) : g};
      case BinaryKind::MUL: return Grads{mul(g, s)};
      case BinaryKind::DIV: return Grads{reverse ? neg(mul(g, div(out, a))) : div(g, s)};  // s/a: -out/a
      case BinaryKind::MAX: return Grads{step_times(sub(a, s), g)};
      case BinaryKind::MIN: return Grads{step_times(rsub(s, a), g)};
      case BinaryKind::POW: {  // a^s: s a^(s-1); s^a: out ln s
        if (!reverse) return Grads{mul(g, mul(scalar(BinaryKind::POW, a, s - 1.0), s))};
        // ln of the f32 s the forward used, as a tensor: a scalar op would round ln s itself to f32 (3e-8 in f64)
        double ln_s = std::log(static_cast<double>(static_cast<float>(s)));
        return Grads{mul(g, mul(out, Tensor::from_vector(std::vector<double>{ln_s}, {}, out.dtype()).to(out.device())))};
      }
      default: VL_FAIL(binary_name(k), ": no backward");
    }
  });
}
Tensor add(const Tensor& a, double s) { return scalar(BinaryKind::ADD, a, s); }
Tensor sub(const Tensor& a, double s) { return scalar(BinaryKind::SUB, a, s); }
Tensor mul(const Tensor& a, double s) { return scalar(BinaryKind::MUL, a, s); }
Tensor div(const Tensor& a, double s) { return scalar(BinaryKind::DIV, a, s); }
Tensor pow(const Tensor& a, double s) { return scalar(BinaryKind::POW, a, s); }
Tensor rsub(double s, const Tensor& a) { return scalar(BinaryKind::SUB, a, s, true); }
Tensor rdiv(double s, const Tensor& a) { return scalar(BinaryKind::DIV, a, s, true); }

Tensor unary(UnaryKind k, const Tensor& x) {
  const char* op = unary_name(k);
  if (unary_allows_integer(k))
    check_defined(x, op, "x");
  else
    check_float(x, op, "x");
  OpCall c;
  c.op = Op::UNARY;
  c.i[0] = static_cast<int64_t>(k);
  c.in = {x};
  c.out = {Tensor::empty(x.shape(), x.dtype(), x.device())};
  return autograd::record(run1(c), op, {x},
                          [k, x = x.detach()](const Tensor& g) { return Grads{unary_backward(k, x, g)}; });
}
Tensor neg(const Tensor& x) { return unary(UnaryKind::NEG, x); }
Tensor exp(const Tensor& x) { return unary(UnaryKind::EXP, x); }
Tensor log(const Tensor& x) { return unary(UnaryKind::LOG, x); }
Tensor sqrt(const Tensor& x) { return unary(UnaryKind::SQRT, x); }
Tensor rsqrt(const Tensor& x) { return unary(UnaryKind::RSQRT, x); }
Tensor tanh(const Tensor& x) { return unary(UnaryKind::TANH, x); }
Tensor sigmoid(const Tensor& x) { return unary(UnaryKind::SIGMOID, x); }
Tensor relu(const Tensor& x) { return unary(UnaryKind::RELU, x); }
Tensor gelu(const Tensor& x) { return unary(UnaryKind::GELU, x); }
Tensor gelu_tanh(const Tensor& x) { return unary(UnaryKind::GELU_TANH, x); }
Tensor quick_gelu(const Tensor& x) { return unary(UnaryKind::QUICK_GELU, x); }
Tensor activation(Activation a, const Tensor& x) {
  switch (a) {
    case Activation::NONE: return x;
    case Activation::RELU: return relu(x);
    case Activation::GELU: return gelu(x);
    case Activation::GELU_TANH: return gelu_tanh(x);
    case Activation::QUICK_GELU: return quick_gelu(x);
    default: VL_FAIL("activation: unknown activation ", static_cast<int>(a));
  }
}

Tensor clamp(const Tensor& x, std::optional<double> lo, std::optional<double> hi) {
  check_defined(x, "clamp", "x");
  if (lo && hi) VL_CHECK(*lo <= *hi, "clamp: min ", *lo, " > max ", *hi);
  const double inf = std::numeric_limits<double>::infinity();
  OpCall c;
  c.op = Op::CLAMP;
  c.f[0] = static_cast<float>(lo.value_or(-inf));
  c.f[1] = static_cast<float>(hi.value_or(inf));
  c.in = {x};
  c.out = {Tensor::empty(x.shape(), x.dtype(), x.device())};
  return autograd::record(run1(c), "clamp", {x},
                          [lo, hi, x = x.detach()](const Tensor& g) { return Grads{clamp_backward(x, g, lo, hi)}; });
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined(cond, "where", "cond");
  VL_CHECK(cond.dtype() == DType::U8, "where: cond must be u8 (nonzero = true), got ", cond.describe());
  check_defined(a, "where", "a");
  check_defined(b, "where", "b");
  check_same_device(cond, a, "where");
  check_same_device(a, b, "where");
  check_same_dtype(a, b, "where");
  Shape s = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  OpCall c;
  c.op = Op::WHERE;
  c.in = {cond.expand(s), a.expand(s), b.expand(s)};
  c.out = {Tensor::empty(s, a.dtype(), a.device())};
  return autograd::record(run1(c), "where", {cond, a, b}, [cond = cond.detach(), sa = a.shape(), sb = b.shape()](
                                                              const Tensor& g) {
    Tensor zero = Tensor::zeros({}, g.dtype(), g.device());
    return Grads{Tensor(), sum_to(where(cond, g, zero), sa), sum_to(where(cond, zero, g), sb)};
  });
}

// ---- reductions -----------------------------------------------------------------------------------
namespace {
// Output shape with `dim` set to `n` (kept), and the final shape after optional squeeze.
Tensor finish_keepdim(const Tensor& out, int64_t dim, bool keepdim) { return keepdim ? out : out.squeeze(dim); }
}  // namespace

Tensor reduce(ReduceKind k, const Tensor& x, int64_t dim, bool keepdim) {
  const char* op = reduce_name(k);
  check_defined(x, op, "x");
  if (k == ReduceKind::MEAN) check_float(x, op, "x");
  VL_CHECK(x.dim() > 0, op, ": cannot reduce a 0-d tensor along a dim");
  dim = x.wrap_dim(dim, op);
  VL_CHECK(x.size(dim) > 0 || k == ReduceKind::SUM, op, ": empty dim ", dim, " in ", x.describe());
  Shape s = x.shape();
  s[dim] = 1;
  OpCall c;
  c.op = Op::REDUCE;
  c.i[0] = static_cast<int64_t>(k);
  c.i[1] = dim;
  c.in = {x.contiguous()};
  c.out = {Tensor::empty(s, x.dtype(), x.device())};
  if (x.numel() == 0) c.out[0].fill_(0.0);
  else run1(c);
  Tensor out = finish_keepdim(c.out[0], dim, keepdim);
  if (!autograd::needs_grad(x)) return out;
  return autograd::record(out, op, {x}, [k, dim, keepdim, x = x.detach()](const Tensor& g_in) {
    Tensor g = keepdim ? g_in : g_in.unsqueeze(dim);  // (.., 1, ..)
    if (k == ReduceKind::SUM) return Grads{g.expand(x.shape()).contiguous()};
    if (k == ReduceKind::MEAN) return Grads{div(g.expand(x.shape()), static_cast<double>(x.size(dim)))};
    // max / min: the gradient goes to the first extreme element (the index argmax reports), as torch.
    Tensor idx = argmax(k == ReduceKind::MAX ? x : neg(x), dim, true);
    return Grads{scatter_add(x.shape(), dim, idx, g)};
  });
}
Tensor sum(const Tensor& x, int64_t dim, bool keepdim) { return reduce(ReduceKind::SUM, x, dim, keepdim); }
Tensor mean(const Tensor& x, int64_t dim, bool keepdim) { return reduce(ReduceKind::MEAN, x, dim, keepdim); }
Tensor max(const Tensor& x, int64_t dim, bool keepdim) { return reduce(ReduceKind::MAX, x, dim, keepdim); }
Tensor min(const Tensor& x, int64_t dim, bool keepdim) { return reduce(ReduceKind::MIN, x, dim, keepdim); }
Tensor sum_all(const Tensor& x) {
  check_defined(x, "sum_all", "x");
  return sum(x.reshape({-1}), 0, false);
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  check_defined(x, "argmax", "x");
  VL_CHECK(x.dim() > 0, "argmax: cannot reduce a 0-d tensor along a dim");
  dim = x.wrap_dim(dim, "argmax");
  VL_CHECK(x.size(dim) > 0, "argmax: empty dim ", dim, " in ", x.describe());
  Shape s = x.shape();
  s[dim] = 1;
  OpCall c;
  c.op = Op::ARGMAX;
  c.i[1] = dim;
  c.in = {x.contiguous()};
  c.out = {Tensor::empty(s, DType::I64, x.device())};
  return finish_keepdim(run1(c), dim, keepdim);
}

TopK topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  check_defined(x, "topk", "x");
  VL_CHECK(x.dim() > 0, "topk: needs at least one dim, got ", x.describe());
  dim = x.wrap_dim(dim, "topk");
  VL_CHECK(k >= 0 && k <= x.size(dim), "topk: k = ", k, " out of range for dim ", dim, " of ", x.describe());
  Shape s = x.shape();
  s[dim] = k;
  OpCall c;
  c.op = Op::TOPK;
  c.i[0] = dim;
  c.i[1] = k;
  c.i[2] = largest ? 1 : 0;
  c.in = {x.contiguous()};
  c.out = {Tensor::empty(s, x.dtype(), x.device()), Tensor::empty(s, DType::I64, x.device())};
  run1(c);
  Tensor values = autograd::record(c.out[0], "topk", {x}, [dim, shape = x.shape(), idx = c.out[1]](const Tensor& g) {
    return Grads{scatter_add(shape, dim, idx, g)};
  });
  return {values, c.out[1]};
}

static Tensor softmax_impl(const Tensor& x, int64_t dim, bool log, const char* op) {
  check_float(x, op, "x");
  VL_CHECK(x.dim() > 0, op, ": needs at least one dim, got ", x.describe());
  dim = x.wrap_dim(dim, op);
  OpCall c;
  c.op = Op::SOFTMAX;
  c.i[0] = dim;
  c.i[1] = log ? 1 : 0;
  c.in = {x.contiguous()};
  c.out = {Tensor::empty(x.shape(), x.dtype(), x.device())};
  Tensor out = run1(c);
  if (!autograd::needs_grad(x)) return out;
  return autograd::record(out, op, {x}, [dim, log, y = out.detach()](const Tensor& g) {
    return Grads{softmax_backward(y, g.contiguous(), dim, log)};
  });
}
Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false, "softmax"); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true, "log_softmax"); }

Tensor l2_normalize(const Tensor& x, int64_t dim, double eps) {
  check_float(x, "l2_normalize", "x");
  VL_CHECK(x.dim() > 0, "l2_normalize: needs at least one dim, got ", x.describe());
  dim = x.wrap_dim(dim, "l2_normalize");
  OpCall c;
  c.op = Op::L2_NORMALIZE;
  c.i[0] = dim;
  c.f[0] = static_cast<float>(eps);
  c.in = {x.contiguous()};
  c.out = {Tensor::empty(x.shape(), x.dtype(), x.device())};
  Tensor out = run1(c);
  if (!autograd::needs_grad(x)) return out;
  // y = x / max(n, eps), n = ||x||: dx = (g − y·Σ(g·y)·[n > eps]) / max(n, eps)
  return autograd::record(out, "l2_normalize", {x}, [dim, eps, x = x.detach(), y = out.detach()](const Tensor& g) {
    Tensor n = sqrt(sum(mul(x, x), dim, true));
    Tensor above = step_times(sub(n, eps), Tensor::ones(n.shape(), n.dtype(), n.device()));
    Tensor proj = mul(y, mul(sum(mul(g, y), dim, true), above));
    return Grads{div(sub(g, proj), clamp(n, eps, std::nullopt))};
  });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, Reduction r, int64_t ignore_index) {
  check_float(logits, "cross_entropy", "logits");
  check_index(targets, "cross_entropy", "targets");
  check_same_device(logits, targets, "cross_entropy");
  VL_CHECK(logits.dim() == 2, "cross_entropy: logits must be (N, C), got ", logits.describe());
  VL_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0), "cross_entropy: targets must be (",
           logits.size(0), ",) for logits ", logits.describe(), ", got ", targets.describe());
  Tensor t64 = targets.to(DType::I64).contiguous();
  int64_t n_counted = 0;  // targets that are not ignore_index: the MEAN divisor
  {
    std::vector<int64_t> v = t64.to_vector<int64_t>();
    for (size_t i = 0; i < v.size(); ++i) {
      VL_CHECK(v[i] == ignore_index || (v[i] >= 0 && v[i] < logits.size(1)), "cross_entropy: target ", v[i],
               " at position ", i, " is out of range [0, ", logits.size(1), ")");
      n_counted += v[i] != ignore_index;
    }
  }
  OpCall c;
  c.op = Op::CROSS_ENTROPY;
  c.i[0] = ignore_index;
  c.in = {logits.contiguous(), t64};
  c.out = {Tensor::empty({logits.size(0)}, logits.dtype(), logits.device())};
  Tensor per = run1(c);
  if (autograd::needs_grad(logits)) {
    // d per_i / d logits_i = softmax(logits_i) − onehot(t_i), zero for ignored rows.
    per = autograd::record(per, "cross_entropy", {logits}, [ignore_index, logits = logits.detach(), t64](
                                                              const Tensor& g) {
      int64_t N = logits.size(0), C = logits.size(1);
      std::vector<int64_t> t = t64.to_vector<int64_t>();
      std::vector<float> keep(t.size());
      for (size_t i = 0; i < t.size(); ++i) {
        keep[i] = t[i] == ignore_index ? 0.f : 1.f;
        if (t[i] == ignore_index) t[i] = 0;
      }
      Device dev = logits.device();
      Tensor idx = Tensor::from_vector(t, {N, 1}).to(dev);
      Tensor w = Tensor::from_vector(keep, {N, 1}, logits.dtype()).to(dev);
      Tensor onehot = scatter_add({N, C}, 1, idx, Tensor::ones({N, 1}, logits.dtype(), dev));
      return Grads{mul(sub(softmax(logits, 1), onehot), mul(g.view({N, 1}), w))};
    });
  }
  if (r == Reduction::NONE) return per;
  Tensor total = sum_all(per);
  if (r == Reduction::SUM) return total;
  return div(total, static_cast<double>(n_counted));  // 0 counted -> NaN, as torch
}

// ---- normalization --------------------------------------------------------------------------------
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  check_float(x, "layer_norm", "x");
  VL_CHECK(x.dim() >= 1, "layer_norm: needs at least one dim, got ", x.describe());
  int64_t C = x.size(-1);
  check_param(weight, C, x, "layer_norm", "weight");
  check_param(bias, C, x, "layer_norm", "bias");
  OpCall c;
  c.op = Op::LAYER_NORM;
  c.f[0] = static_cast<float>(eps);
  c.in = {x.contiguous(), maybe_contig(weight), maybe_contig(bias)};
  c.out = {Tensor::empty(x.shape(), x.dtype(), x.device())};
  Tensor out = run1(c);
  if (!autograd::needs_grad(x, weight, bias)) return out;
  return autograd::record(out, "layer_norm", {x, weight, bias}, [eps, x = x.detach(), w = weight.detach(),
                                                                  has_bias = bias.defined()](const Tensor& g) {
    LayerNormGrads r = layer_norm_backward(x, w, g.contiguous(), eps);
    Tensor db = r.dbias;
    if (has_bias && !db.defined()) db = sum(g.reshape({-1, x.size(-1)}), 0);
    return Grads{r.dx, r.dweight, has_bias ? db : Tensor()};
  });
}
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps) {
  check_float(x, "rms_norm", "x");
  VL_CHECK(x.dim() >= 1, "rms_norm: needs at least one dim, got ", x.describe());
  check_param(weight, x.size(-1), x, "rms_norm", "weight");
  OpCall c;
  c.op = Op::RMS_NORM;
  c.f[0] = static_cast<float>(eps);
  c.in = {x.contiguous(), maybe_contig(weight)};
  c.out = {Tensor::empty(x.shape(), x.dtype(), x.device())};
  Tensor out = run1(c);
  if (!autograd::needs_grad(x, weight)) return out;
  // r = rsqrt(mean(x²) + eps), x̂ = x·r, y = x̂·w:  dx = r·(g·w − x̂·mean(g·w·x̂)),  dw = Σ_rows g·x̂
  return autograd::record(out, "rms_norm", {x, weight}, [eps, x = x.detach(), w = weight.detach()](const Tensor& g) {
    Tensor r = rsqrt(add(mean(mul(x, x), -1, true), eps));
    Tensor xh = mul(x, r);
    Tensor gw = w.defined() ? mul(g, w) : g;
    Tensor dx = mul(r, sub(gw, mul(xh, mean(mul(gw, xh), -1, true))));
    Tensor dw = w.defined() ? sum(mul(g, xh).reshape({-1, x.size(-1)}), 0) : Tensor();
    return Grads{dx, dw};
  });
}
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, double eps) {
  check_float(x, "batch_norm", "x");
  VL_CHECK(x.dim() >= 2, "batch_norm: x must be (N, C, ...), got ", x.describe());
  int64_t C = x.size(1);
  check_defined(running_mean, "batch_norm", "running_mean");
  check_defined(running_var, "batch_norm", "running_var");
  check_param(running_mean, C, x, "batch_norm", "running_mean");
  check_param(running_var, C, x, "batch_norm", "running_var");
  check_param(weight, C, x, "batch_norm", "weight");
  check_param(bias, C, x, "batch_norm", "bias");
  OpCall c;
  c.op = Op::BATCH_NORM;
  c.f[0] = static_cast<float>(eps);
  c.in = {x.contiguous(), running_mean.contiguous(), running_var.contiguous(), maybe_contig(weight),
          maybe_contig(bias)};
  c.out = {Tensor::empty(x.shape(), x.dtype(), x.device())};
  Tensor out = run1(c);
  if (!autograd::needs_grad(x, weight, bias)) return out;
  // Inference batch norm is affine per channel: y = (x − μ)·s·w + b with s = rsqrt(var + eps) fixed.
  return autograd::record(out, "batch_norm", {x, weight, bias}, [eps, x = x.detach(), mu = running_mean.detach(),
                                                                  var = running_var.detach(), w = weight.detach(),
                                                                  has_bias = bias.defined()](const Tensor& g) {
    Shape cshape(static_cast<size_t>(x.dim()), 1);
    cshape[1] = x.size(1);
    Tensor s = rsqrt(add(var, eps)).reshape(cshape);
    Tensor xh = mul(sub(x, mu.reshape(cshape)), s);
    Tensor dx = mul(g, w.defined() ? mul(s, w.reshape(cshape)) : s);
    Tensor dw = w.defined() ? sum_to(mul(g, xh), cshape).reshape({-1}) : Tensor();
    Tensor db = has_bias ? sum_to(g, cshape).reshape({-1}) : Tensor();
    return Grads{dx, dw, db};
  });
}

// ---- matmul ---------------------------------------------------------------------------------------
Tensor matmul(const Tensor& a_in, const Tensor& b_in, bool trans_a, bool trans_b, const Tensor& bias,
              Activation act, double alpha) {
  check_float(a_in, "matmul", "a");
  check_float(b_in, "matmul", "b");
  check_same_device(a_in, b_in, "matmul");
  check_same_dtype(a_in, b_in, "matmul");
  VL_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul: 0-d operands: ", a_in.describe(), " @ ", b_in.describe());
  // Training: the fused activation needs its input for backward, so it runs as its own op.
  if (act != Activation::NONE && autograd::needs_grad(a_in, b_in, bias))
    return activation(act, matmul(a_in, b_in, trans_a, trans_b, bias, Activation::NONE, alpha));
  // 1-D operands follow torch.matmul: a vector is a (1, K) row or a (K, 1) column.
  Tensor a = a_in.dim() == 1 ? a_in.unsqueeze(0) : a_in;
  Tensor b = b_in.dim() == 1 ? b_in.unsqueeze(1) : b_in;
  if (trans_a) a = a.transpose(-2, -1);
  if (trans_b) b = b.transpose(-2, -1);
  int64_t M = a.size(-2), K = a.size(-1), K2 = b.size(-2), N = b.size(-1);
  VL_CHECK(K == K2, "matmul: inner dims differ: a ", a_in.describe(), (trans_a ? " (transposed)" : ""), " vs b ",
           b_in.describe(), (trans_b ? " (transposed)" : ""), " (K ", K, " vs ", K2, ")");
  check_param(bias, N, a, "matmul", "bias");
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb, "matmul (batch dims)");
  int64_t B = shape_numel(batch);
  auto as3 = [&](const Tensor& t, int64_t r, int64_t col) {
    Shape full = batch;
    full.push_back(r);
    full.push_back(col);
    Tensor e = t.expand(full);
    if (batch.empty()) return e.unsqueeze(0);
    // Merge the batch dims into one if their strides allow it; otherwise copy.
    Shape st(e.strides().begin(), e.strides().end() - 2);
    // Size-1 dims are skipped: each non-1 dim must step exactly over the next non-1 dim after it.
    bool mergeable = true;
    int64_t inner = -1;  // index of the next non-1 batch dim to the right
    for (int64_t i = static_cast<int64_t>(batch.size()) - 1; i >= 0; --i) {
      if (batch[i] == 1) continue;
      if (inner >= 0 && st[i] != st[inner] * batch[inner]) mergeable = false;
      inner = i;
    }
    if (!mergeable) e = e.contiguous(), st.assign(e.strides().begin(), e.strides().end() - 2);
    int64_t bstride = 0;
    for (size_t i = batch.size(); i-- > 0;)
      if (batch[i] != 1) { bstride = st[i]; break; }
    return e.as_strided({B, r, col}, {bstride, e.stride(-2), e.stride(-1)}, e.offset());
  };
  OpCall c;
  c.op = Op::MATMUL;
  c.i[0] = static_cast<int64_t>(act);
  c.f[0] = static_cast<float>(alpha);
  c.in = {as3(a, M, K), as3(b, K, N), maybe_contig(bias)};
  c.out = {Tensor::empty({B, M, N}, a.dtype(), a.device())};
  if (K == 0) {
    // Empty inner dim: the product is zero, then bias and activation apply.
    Tensor z = Tensor::zeros({B, M, N}, a.dtype(), a.device());
    if (bias.defined()) z = add(z, bias);
    c.out[0] = activation(act, z);
  } else {
    run1(c);
  }
  if (autograd::needs_grad(a, b, bias)) {
    // out = alpha·a b + bias over the broadcast batch:  da = alpha·g bᵀ,  db = alpha·aᵀ g,  dbias = Σ g.
    Shape full = batch;
    full.push_back(M);
    full.push_back(N);
    c.out[0] = autograd::record(c.out[0], "matmul", {a, b, bias}, [alpha, full, a = a.detach(), b = b.detach(),
                                                                   has_bias = bias.defined()](const Tensor& g3) {
      Tensor g = g3.view(full);
      Tensor da = sum_to(matmul(g, b, false, true, Tensor(), Activation::NONE, alpha), a.shape());
      Tensor db = sum_to(matmul(a, g, true, false, Tensor(), Activation::NONE, alpha), b.shape());
      Tensor dbias = has_bias ? sum(g.reshape({-1, g.size(-1)}), 0) : Tensor();
      return Grads{da, db, dbias};
    });
  }
  Shape out_shape = batch;
  if (a_in.dim() > 1) out_shape.push_back(M);
  if (b_in.dim() > 1) out_shape.push_back(N);
  return c.out[0].view(out_shape);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, Activation act) {
  check_float(x, "linear", "x");
  check_float(weight, "linear", "weight");
  VL_CHECK(weight.dim() == 2, "linear: weight must be (out, in), got ", weight.describe());
  VL_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input ", x.describe(), " last dim must be ",
           weight.size(1), " to match weight ", weight.describe());
  check_param(bias, weight.size(0), x, "linear", "bias");
  Shape out_shape = x.shape();
  out_shape.back() = weight.size(0);
  Tensor x2 = x.reshape({shape_numel(Shape(x.shape().begin(), x.shape().end() - 1)), x.size(-1)});  // not -1: K may be 0
  return matmul(x2, weight, false, true, bias, act).view(out_shape);
}

void prepack_linear_weight(const Tensor& weight) {
  VL_CHECK(weight.defined(), "prepack_linear_weight: undefined weight");
  if (weight.dim() != 2 || !weight.device().is_cpu()) return;  // only the CPU backend packs
  cpu::register_prepacked_weight(weight);
}

// ---- attention ------------------------------------------------------------------------------------
namespace {
// Backward of softmax(scale·q kᵀ + masks) v, recomputing the probabilities P (B, H, Tq, Tk):
//   dV = Pᵀ g,  dP = g Vᵀ,  dS = softmax_backward(P, dP),  dQ = scale·dS K,  dK = scale·dSᵀ Q.
// Masked scores are clamped to −1e30 rather than −inf so that a fully masked query row (whose
// forward output is defined as 0) gives a finite P; its gradient is then zeroed.
Grads attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& kpm,
                         bool causal, double scale, const Tensor& g_in, const Shape& mshape, DType mdtype) {
  int64_t B = q.size(0), Tq = q.size(2), Tk = k.size(2);
  Device dev = q.device();
  Tensor s = matmul(q, k, false, true, Tensor(), Activation::NONE, scale);  // (B, H, Tq, Tk)
  if (mask.defined()) s = add(s, mask);
  Tensor neg_inf = Tensor::full({}, -std::numeric_limits<double>::infinity(), s.dtype(), dev);
  if (causal) {
    std::vector<uint8_t> m(static_cast<size_t>(Tq * Tk));
    for (int64_t i = 0; i < Tq; ++i)
      for (int64_t j = 0; j < Tk; ++j) m[i * Tk + j] = j > i + Tk - Tq;
    s = where(Tensor::from_vector(m, {Tq, Tk}).to(dev), neg_inf, s);
  }
  if (kpm.defined()) s = where(kpm.view({B, 1, 1, Tk}), neg_inf, s);
  s = clamp(s, -1e30, std::nullopt);
  Tensor row_ok = step_times(add(max(s, -1, true), 1e29), Tensor::ones({B, q.size(1), Tq, 1}, s.dtype(), dev));
  Tensor g = mul(g_in, row_ok);
  Tensor p = softmax(s, -1);
  Tensor dv = matmul(p, g, true, false);
  Tensor ds = softmax_backward(p, matmul(g, v, false, true), -1);
  Tensor dq = matmul(ds, k, false, false, Tensor(), Activation::NONE, scale);
  Tensor dk = matmul(ds, q, true, false, Tensor(), Activation::NONE, scale);
  Tensor dmask = mask.defined() ? sum_to(ds, mshape).to(mdtype) : Tensor();
  return {dq, dk, dv, dmask};
}
}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& o) {
  const char* op = "scaled_dot_product_attention";
  check_float(q, op, "q");
  check_float(k, op, "k");
  check_float(v, op, "v");
  check_same_device(q, k, op);
  check_same_device(q, v, op);
  check_same_dtype(q, k, op);
  check_same_dtype(q, v, op);
  VL_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op, ": q, k, v must be (B, H, T, D); got q ",
           q.describe(), ", k ", k.describe(), ", v ", v.describe());
  int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3), Tk = k.size(2), Dv = v.size(3);
  VL_CHECK(k.size(0) == B && k.size(1) == H && k.size(3) == D, op, ": k ", k.describe(),
           " must be (B, H, Tk, D) matching q ", q.describe());
  VL_CHECK(v.size(0) == B && v.size(1) == H && v.size(2) == Tk, op, ": v ", v.describe(),
           " must be (B, H, Tk, Dv) matching k ", k.describe());
  OpCall c;
  c.op = Op::ATTENTION;
  c.i[0] = o.causal ? 1 : 0;
  c.f[0] = static_cast<float>(o.scale.value_or(1.0 / std::sqrt(static_cast<double>(D))));
  Tensor mask, kpm;
  if (o.attn_mask.defined()) {
    check_float(o.attn_mask, op, "attn_mask");
    check_same_device(q, o.attn_mask, op);
    Tensor m = o.attn_mask.dtype() == q.dtype() ? o.attn_mask : o.attn_mask.to(q.dtype());
    Shape full{B, H, Tq, Tk};
    VL_CHECK(m.dim() <= 4 && broadcast_shapes(m.shape(), full, op) == full, op, ": attn_mask ",
             o.attn_mask.describe(), " must broadcast to (B, H, Tq, Tk) = ", shape_str(full));
    mask = m.expand(full);
  }
  if (o.key_padding_mask.defined()) {
    check_same_device(q, o.key_padding_mask, op);
    VL_CHECK(o.key_padding_mask.dtype() == DType::U8, op, ": key_padding_mask must be u8 (nonzero = ignore), got ",
             o.key_padding_mask.describe());
    VL_CHECK(o.key_padding_mask.dim() == 2 && o.key_padding_mask.size(0) == B && o.key_padding_mask.size(1) == Tk,
             op, ": key_padding_mask must be (B, Tk) = (", B, ", ", Tk, "), got ", o.key_padding_mask.describe());
    kpm = o.key_padding_mask.contiguous();
  }
  c.in = {q, k, v, mask, kpm};
  c.out = {Tensor::empty({B, H, Tq, Dv}, q.dtype(), q.device())};
  if (Tk == 0) {
    c.out[0].fill_(0.0);
    return c.out[0];
  }
  Tensor out = run1(c);
  if (!autograd::needs_grad({q, k, v, o.attn_mask})) return out;
  return autograd::record(out, "attention", {q, k, v, o.attn_mask},
                          [q = q.detach(), k = k.detach(), v = v.detach(), mask = mask.detach(), kpm, causal = o.causal,
                           scale = static_cast<double>(c.f[0]), mshape = o.attn_mask.shape(),
                           mdtype = o.attn_mask.dtype()](const Tensor& g) {
    if (q.dtype() != DType::F16) return attention_backward(q, k, v, mask, kpm, causal, scale, g, mshape, mdtype);
    // f16 cannot hold the ±1e30 sentinels attention_backward masks with (they overflow to ∓inf and a fully
    // masked row turns every gradient into NaN): recompute in f32, as the forward kernels do, round once.
    const DType f = DType::F32;
    Grads r = attention_backward(q.to(f), k.to(f), v.to(f), mask.defined() ? mask.to(f) : mask, kpm, causal, scale,
                                 g.to(f), mshape, mdtype);
    for (size_t i = 0; i < 3; ++i) r[i] = r[i].to(DType::F16);
    return r;
  });
}

// ---- convolution & pooling ------------------------------------------------------------------------
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& o) {
  check_float(x, "conv2d", "x");
  check_float(w, "conv2d", "weight");
  check_same_device(x, w, "conv2d");
  check_same_dtype(x, w, "conv2d");
  VL_CHECK(x.dim() == 4, "conv2d: input must be (N, C, H, W), got ", x.describe());
  VL_CHECK(w.dim() == 4, "conv2d: weight must be (O, C, kh, kw), got ", w.describe());
  VL_CHECK(w.size(1) == x.size(1), "conv2d: weight ", w.describe(), " expects ", w.size(1),
           " input channels but input ", x.describe(), " has ", x.size(1), " (groups=1 only)");
  VL_CHECK(o.stride_h > 0 && o.stride_w > 0 && o.dil_h > 0 && o.dil_w > 0 && o.pad_h >= 0 && o.pad_w >= 0,
           "conv2d: stride/dilation must be > 0 and padding >= 0");
  check_param(bias, w.size(0), x, "conv2d", "bias");
  int64_t Ho = (x.size(2) + 2 * o.pad_h - o.dil_h * (w.size(2) - 1) - 1) / o.stride_h + 1;
  int64_t Wo = (x.size(3) + 2 * o.pad_w - o.dil_w * (w.size(3) - 1) - 1) / o.stride_w + 1;
  VL_CHECK(Ho > 0 && Wo > 0, "conv2d: input ", x.describe(), " is smaller than the (dilated) kernel ", w.describe());
  OpCall c;
  c.op = Op::CONV2D;
  int64_t p[6] = {o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dil_h, o.dil_w};
  for (int j = 0; j < 6; ++j) c.i[j] = p[j];
  c.in = {x.contiguous(), w.contiguous(), maybe_contig(bias)};
  c.out = {Tensor::empty({x.size(0), w.size(0), Ho, Wo}, x.dtype(), x.device())};
  Tensor out = run1(c);
  if (!autograd::needs_grad(x, w, bias)) return out;
  return autograd::record(out, "conv2d", {x, w, bias}, [o, x = x.detach(), w = w.detach(), need_dx = x.requires_grad(),
                                                        need_dw = w.requires_grad(), has_bias = bias.defined()](
                                                           const Tensor& g) {
    Conv2dGrads r = conv2d_backward(x, w, g.contiguous(), o, need_dx, need_dw);
    Tensor db = has_bias ? sum(sum(sum(g, 3), 2), 0) : Tensor();
    return Grads{r.dx, r.dw, db};
  });
}

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& o_in) {
  check_float(x, "avg_pool2d", "x");
  VL_CHECK(x.dim() == 4, "avg_pool2d: input must be (N, C, H, W), got ", x.describe());
  Pool2dOptions o = o_in;
  if (o.stride_h == 0) o.stride_h = o.kernel_h;
  if (o.stride_w == 0) o.stride_w = o.kernel_w;
  VL_CHECK(o.kernel_h > 0 && o.kernel_w > 0 && o.stride_h > 0 && o.stride_w > 0, "avg_pool2d: kernel and stride must be > 0");
  VL_CHECK(o.pad_h >= 0 && o.pad_w >= 0 && o.pad_h * 2 <= o.kernel_h && o.pad_w * 2 <= o.kernel_w,
           "avg_pool2d: padding must be at most half the kernel size (torch rule)");
  auto out_size = [&](int64_t in, int64_t k, int64_t s, int64_t p) {
    int64_t num = in + 2 * p - k + (o.ceil_mode ? s - 1 : 0);
    int64_t n = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;  // floor division, as torch's div_rtn
    if (o.ceil_mode && (n - 1) * s >= in + p) --n;  // last window must start inside input or left padding
    return n;
  };
  int64_t Ho = out_size(x.size(2), o.kernel_h, o.stride_h, o.pad_h);
  int64_t Wo = out_size(x.size(3), o.kernel_w, o.stride_w, o.pad_w);
  VL_CHECK(Ho > 0 && Wo > 0, "avg_pool2d: input ", x.describe(), " smaller than the kernel");
  VL_CHECK(!autograd::needs_grad(x), "avg_pool2d: backward is not implemented (inference only); run it under "
           "autograd::NoGradGuard or on a tensor that does not require grad");
  OpCall c;
  c.op = Op::AVG_POOL2D;
  int64_t p[8] = {o.kernel_h, o.kernel_w, o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.count_include_pad, o.ceil_mode};
  for (int j = 0; j < 8; ++j) c.i[j] = p[j];
  c.in = {x.contiguous()};
  c.out = {Tensor::empty({x.size(0), x.size(1), Ho, Wo}, x.dtype(), x.device())};
  return run1(c);
}

// ---- indexing, joining, casting -------------------------------------------------------------------
Tensor embedding(const Tensor& table, const Tensor& ids) {
  check_defined(table, "embedding", "table");
  check_index(ids, "embedding", "ids");
  check_same_device(table, ids, "embedding");
  VL_CHECK(table.dim() == 2, "embedding: table must be (V, D), got ", table.describe());
  check_index_range(ids, table.size(0), "embedding", "token id");
  Shape s = ids.shape();
  s.push_back(table.size(1));
  OpCall c;
  c.op = Op::EMBEDDING;
  c.in = {table.contiguous(), ids.contiguous()};
  c.out = {Tensor::empty(s, table.dtype(), table.device())};
  return autograd::record(run1(c), "embedding", {table}, [shape = table.shape(), ids = ids.detach()](const Tensor& g) {
    int64_t n = ids.numel(), D = shape[1];
    Tensor idx = ids.to(DType::I64).reshape({n, 1}).expand({n, D}).contiguous();
    return Grads{scatter_add(shape, 0, idx, g.reshape({n, D}).contiguous())};
  });
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "index_select", "x");
  check_index(index, "index_select", "index");
  check_same_device(x, index, "index_select");
  VL_CHECK(index.dim() <= 1, "index_select: index must be 1-D, got ", index.describe());
  VL_CHECK(x.dim() > 0, "index_select: x must have at least one dim");
  dim = x.wrap_dim(dim, "index_select");
  check_index_range(index, x.size(dim), "index_select", "index");
  Shape s = x.shape();
  s[dim] = index.numel();
  OpCall c;
  c.op = Op::INDEX_SELECT;
  c.i[0] = dim;
  c.in = {x, index.reshape({-1}).contiguous()};
  c.out = {Tensor::empty(s, x.dtype(), x.device())};
  return autograd::record(run1(c), "index_select", {x}, [dim, shape = x.shape(), index = c.in[1]](const Tensor& g) {
    Shape is(g.shape().size(), 1);
    is[static_cast<size_t>(dim)] = index.numel();
    Tensor idx = index.to(DType::I64).view(is).expand(g.shape()).contiguous();
    return Grads{scatter_add(shape, dim, idx, g.contiguous())};
  });
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  check_defined(x, "gather", "x");
  check_index(index, "gather", "index");
  check_same_device(x, index, "gather");
  VL_CHECK(index.dim() == x.dim(), "gather: index ", index.describe(), " must have the rank of x ", x.describe());
  dim = x.wrap_dim(dim, "gather");
  for (int64_t d = 0; d < x.dim(); ++d)
    VL_CHECK(d == dim || index.size(d) <= x.size(d), "gather: index ", index.describe(), " larger than x ",
             x.describe(), " at dim ", d);
  check_index_range(index, x.size(dim), "gather", "index");
  OpCall c;
  c.op = Op::GATHER;
  c.i[0] = dim;
  c.in = {x, index.to(DType::I64).contiguous()};
  c.out = {Tensor::empty(index.shape(), x.dtype(), x.device())};
  return autograd::record(run1(c), "gather", {x}, [dim, shape = x.shape(), idx = c.in[1]](const Tensor& g) {
    return Grads{scatter_add(shape, dim, idx, g.contiguous())};
  });
}

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  VL_CHECK(!xs.empty(), "concat: no tensors given");
  const Tensor& first = xs[0];
  check_defined(first, "concat", "tensor 0");
  VL_CHECK(first.dim() > 0, "concat: 0-d tensors cannot be concatenated");
  dim = first.wrap_dim(dim, "concat");
  Shape s = first.shape();
  int64_t total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = xs[i];
    check_defined(t, "concat", "an input");
    check_same_device(first, t, "concat");
    check_same_dtype(first, t, "concat");
    VL_CHECK(t.dim() == first.dim(), "concat: tensor ", i, " ", t.describe(), " has a different rank than ",
             first.describe());
    for (int64_t d = 0; d < t.dim(); ++d)
      VL_CHECK(d == dim || t.size(d) == s[d], "concat: tensor ", i, " ", t.describe(), " differs from ",
               first.describe(), " at dim ", d, " (only dim ", dim, " may differ)");
    total += t.size(dim);
  }
  s[dim] = total;
  // Concatenation is a sequence of COPYs into narrow views of the output: each backend's COPY
  // kernel (strided) does the work.
  Tensor out = Tensor::empty(s, first.dtype(), first.device());
  int64_t at = 0;
  for (const Tensor& t : xs) {
    if (t.size(dim) > 0 && t.numel() > 0) out.narrow(dim, at, t.size(dim)).copy_(t);
    at += t.size(dim);
  }
  if (!autograd::needs_grad(xs)) return out;
  std::vector<int64_t> sizes;
  for (const Tensor& t : xs) sizes.push_back(t.size(dim));
  return autograd::record(out, "concat", xs, [dim, sizes](const Tensor& g) {
    Grads r;
    int64_t at = 0;
    for (int64_t n : sizes) {
      r.push_back(g.narrow(dim, at, n));
      at += n;
    }
    return r;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  VL_CHECK(!xs.empty(), "stack: no tensors given");
  int64_t n = xs[0].dim() + 1;
  VL_CHECK(dim >= -n && dim < n, "stack: dim ", dim, " out of range for ", n, "-d result");
  std::vector<Tensor> us;
  for (size_t i = 0; i < xs.size(); ++i) {
    check_defined(xs[i], "stack", "an input");
    VL_CHECK(xs[i].shape() == xs[0].shape(), "stack: tensor ", i, " ", xs[i].describe(), " differs from ",
             xs[0].describe());
    us.push_back(xs[i].unsqueeze(dim));
  }
  return concat(us, dim);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  check_defined(x, "split", "x");
  VL_CHECK(split_size > 0, "split: split_size must be > 0, got ", split_size);
  dim = x.wrap_dim(dim, "split");
  std::vector<Tensor> parts;
  for (int64_t at = 0; at < x.size(dim); at += split_size)
    parts.push_back(x.narrow(dim, at, std::min(split_size, x.size(dim) - at)));
  return parts;
}
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  check_defined(x, "chunk", "x");
  VL_CHECK(chunks > 0, "chunk: chunks must be > 0, got ", chunks);
  int64_t n = x.size(dim);
  return split(x, std::max<int64_t>(1, (n + chunks - 1) / chunks), dim);
}

Tensor cast(const Tensor& x, DType dtype) {
  check_defined(x, "cast", "x");
  return x.to(dtype);
}

}  // namespace vislang::ops
