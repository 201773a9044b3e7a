// tests/test_autograd.cpp — proves the reverse-mode autograd (core/autograd.h) correct: suite "autograd".
//
// Three independent references (STYLE.md practices 6 and 7, tinygrad's "every op forward and backward"):
//  1. Finite differences. Every differentiable op and view is a GradCase: a function of small random
//     inputs. Under CpuMode::REFERENCE in float64 its analytic gradient (out.backward(R) for a random
//     upstream R) is compared with central differences of L(x) = Σ out·R (h = 1e-6). The same case then
//     runs in f32 on the optimized CPU backend (and a subset in f16/bf16) and its gradients are compared
//     with the f64 ones. Errors are relative to the largest gradient element: max|got − want| / max|want|.
//  2. Graph semantics: accumulation, reuse, retain_graph, grad modes, detach, the in-place and dtype
//     rules, error messages, unused inputs, chains of 10,000 and 200,000 ops.
//  3. PyTorch fixtures (tools/reference/make_grad_fixtures.py → tests/fixtures/grad/): per-op torch
//     autograd gradients, one HF CLIPEncoderLayer (with and without the causal mask), and a tiny HF
//     CLIPModel trained one step on the CLIP InfoNCE loss: every parameter gradient, logit_scale included.
// A meta-test checks that the finite-difference checker does fail on a wrong gradient.
// The last test case prints the worst error per group (the figures quoted in docs/autograd.md).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/autograd.h"
#include "kernels/ops.h"
#include "models/clip/clip.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

using namespace vislang;
using autograd::NoGradGuard;
using test::contains;
using test::error_of;

namespace {

// ---- error figures --------------------------------------------------------------------------------------
// max |got − want| / max(max |want|, floor) (0 when both are zero; ∞ on a NaN/Inf or a shape mismatch).
// `floor` keeps a gradient that is zero in exact arithmetic (roundoff on both sides) from being compared
// with itself: the CLIP fixtures pass 1e-2 × the largest gradient of the model.
double rel_error(const Tensor& got, const Tensor& want, double floor = 0) {
  if (!got.defined() || !want.defined() || got.shape() != want.shape()) return INFINITY;
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i]) || !std::isfinite(w[i])) return INFINITY;
    diff = std::max(diff, std::fabs(g[i] - w[i]));
    scale = std::max(scale, std::fabs(w[i]));
  }
  return diff == 0 ? 0 : diff / std::max({scale, floor, 1e-300});
}
double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : t.to_vector<double>()) m = std::max(m, std::fabs(v));
  return m;
}
bool all_zero(const Tensor& t) {
  for (double v : t.to_vector<double>())
    if (v != 0) return false;
  return true;
}

// Worst error seen per group and check kind, printed by the summary test case at the end.
std::map<std::string, double>& worst() {
  static std::map<std::string, double> w;
  return w;
}
int g_checked = 0;  // finite-difference cases run (for the summary)
void note(const std::string& key, double err) {
  double& w = worst()[key];
  w = std::max(w, err);
}

// ---- random inputs --------------------------------------------------------------------------------------
// f64 tensors holding f32-representable values, so the f32 run sees exactly the same numbers.
uint64_t g_seed = 1;
Tensor rnd(const Shape& s, double lo = -2.0, double hi = 2.0) {
  Generator g(g_seed++);
  return Tensor::rand(s, g, DType::F32, Device::cpu(), lo, hi).to(DType::F64);
}
Tensor away(const Shape& s) {  // |x| in [0.5, 2), random sign
  Tensor m = rnd(s, 0.5, 2.0), sg = rnd(s, -1, 1);
  std::vector<double> v = m.to_vector<double>(), q = sg.to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) v[i] = q[i] < 0 ? -v[i] : v[i];
  return Tensor::from_vector(v, s);
}
Tensor i64(const std::vector<int64_t>& v, const Shape& s) { return Tensor::from_vector(v, s); }
Tensor u8(const std::vector<uint8_t>& v, const Shape& s) { return Tensor::from_vector(v, s); }

// ---- the finite-difference checker ------------------------------------------------------------------------
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
struct GradCase {
  std::string group, name;
  std::vector<Tensor> inputs;  // f64 (differentiated unless listed in `fixed`), integer or u8 (never)
  Fn fn;
  double f32_tol = 1e-5;       // optimized f32 gradients vs the f64 ones (relative to the max)
  std::vector<size_t> fixed;   // float inputs that do not require grad
  double h = 1e-6, fd_tol = 1e-6;
  GradCase(std::string g, std::string n, std::vector<Tensor> in, Fn f, double tol = 1e-5)
      : group(std::move(g)), name(std::move(n)), inputs(std::move(in)), fn(std::move(f)), f32_tol(tol) {}
};

bool differentiated(const GradCase& c, size_t i) {
  return is_floating(c.inputs[i].dtype()) && std::find(c.fixed.begin(), c.fixed.end(), i) == c.fixed.end();
}

struct Analytic {
  Tensor out;
  std::vector<Tensor> grads;  // undefined for inputs that are not differentiated
};
// Runs the case with float inputs cast to `dt`, backpropagates `gout` and returns the gradients.
Analytic analytic(const GradCase& c, DType dt, const Tensor& gout) {
  std::vector<Tensor> xs;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    Tensor x = is_floating(c.inputs[i].dtype()) ? c.inputs[i].to(dt).clone() : c.inputs[i];
    if (differentiated(c, i)) x.requires_grad_();
    xs.push_back(x);
  }
  Analytic a;
  a.out = c.fn(xs);
  REQUIRE_MESSAGE(a.out.requires_grad(), c.name, ": output does not require grad");
  a.out.backward(gout.to(a.out.dtype()));
  for (size_t i = 0; i < xs.size(); ++i) a.grads.push_back(differentiated(c, i) ? xs[i].grad() : Tensor());
  return a;
}

// L(x) = Σ out(x)·R in long double.
long double loss_at(const GradCase& c, const std::vector<Tensor>& xs, const std::vector<double>& r) {
  NoGradGuard no_grad;
  std::vector<double> o = c.fn(xs).to_vector<double>();
  long double s = 0;
  for (size_t i = 0; i < o.size(); ++i) s += static_cast<long double>(o[i]) * r[i];
  return s;
}
std::vector<Tensor> numeric(const GradCase& c, const Tensor& gout) {
  std::vector<double> r = gout.to_vector<double>();
  std::vector<Tensor> xs;
  for (const Tensor& t : c.inputs) xs.push_back(t.clone());
  std::vector<Tensor> grads;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!differentiated(c, i)) {
      grads.emplace_back();
      continue;
    }
    Tensor gi = Tensor::zeros(xs[i].shape(), DType::F64);
    double* p = xs[i].data<double>();
    double* gp = gi.data<double>();
    for (int64_t j = 0; j < xs[i].numel(); ++j) {
      double x0 = p[j];
      p[j] = x0 + c.h;
      long double up = loss_at(c, xs, r);
      p[j] = x0 - c.h;
      long double dn = loss_at(c, xs, r);
      p[j] = x0;
      gp[j] = static_cast<double>((up - dn) / (2.0L * c.h));
    }
    grads.push_back(gi);
  }
  return grads;
}

struct CaseResult {
  bool ok = true;
  std::string message;
  double fd_err = 0, f32_err = 0;
};
// tamper (meta-test only) may modify the f64 analytic gradients before they are compared.
CaseResult run_case(const GradCase& c, const std::function<void(std::vector<Tensor>&)>& tamper = {}) {
  CaseResult res;
  Tensor gout;
  Analytic a64;
  std::vector<Tensor> num;
  {
    CpuModeGuard ref(CpuMode::REFERENCE);
    Tensor probe;
    {
      NoGradGuard ng;
      probe = c.fn(c.inputs);
    }
    gout = rnd(probe.shape());
    a64 = analytic(c, DType::F64, gout);
    if (tamper) tamper(a64.grads);
    num = numeric(c, gout);
  }
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!differentiated(c, i)) continue;
    if (!a64.grads[i].defined()) {
      if (!all_zero(num[i])) res.ok = false, res.message += str(" input ", i, ": no gradient reached it;");
      continue;
    }
    double e = rel_error(a64.grads[i], num[i]);
    res.fd_err = std::max(res.fd_err, e);
    if (!(e <= c.fd_tol)) res.ok = false, res.message += str(" input ", i, ": f64 vs finite differences ", e, ";");
  }
  {
    CpuModeGuard opt(CpuMode::OPTIMIZED);
    Analytic a32 = analytic(c, DType::F32, gout);
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      if (!differentiated(c, i) || !a64.grads[i].defined()) continue;
      double e = rel_error(a32.grads[i], a64.grads[i]);
      if (a32.grads[i].defined() && a32.grads[i].dtype() != DType::F32) e = INFINITY;
      res.f32_err = std::max(res.f32_err, e);
      if (!(e <= c.f32_tol)) res.ok = false, res.message += str(" input ", i, ": f32 optimized vs f64 ", e, ";");
    }
  }
  return res;
}

void check_cases(const std::vector<GradCase>& cases) {
  for (const GradCase& c : cases) {
    CAPTURE(c.name);
    CaseResult r = run_case(c);
    ++g_checked;
    note(c.group + " | f64 vs finite differences", r.fd_err);
    note(c.group + " | f32 optimized vs f64", r.f32_err);
    CHECK_MESSAGE(r.ok, c.name, ":", r.message);
  }
}

// ---- the cases --------------------------------------------------------------------------------------------
// A group of cases sharing a name and an f32 tolerance; add() returns the case for adjustments (.fixed, .h).
struct Cases {
  std::string group;
  double f32_tol;
  std::vector<GradCase> list;
  Cases(std::string g, double tol) : group(std::move(g)), f32_tol(tol) {}
  GradCase& add(std::string name, std::vector<Tensor> in, Fn fn) {
    list.emplace_back(group, std::move(name), std::move(in), std::move(fn), f32_tol);
    return list.back();
  }
};
std::vector<GradCase> elementwise_cases() {
  Cases cs{"elementwise", 1e-5};
  for (int64_t k = 0; k < static_cast<int64_t>(BinaryKind::COUNT); ++k) {
    auto bk = static_cast<BinaryKind>(k);
    Fn f = [bk](const std::vector<Tensor>& x) { return ops::binary(bk, x[0], x[1]); };
    auto a_of = [&](const Shape& s) { return bk == BinaryKind::POW ? rnd(s, 0.25, 2.0) : rnd(s); };
    auto b_of = [&](const Shape& s) { return bk == BinaryKind::DIV ? away(s) : rnd(s, -1.5, 1.5); };
    cs.add(str(binary_name(bk), " (3,4,5) x (4,1)"), {a_of({3, 4, 5}), b_of({4, 1})}, f);
    cs.add(str(binary_name(bk), " (1,5) x (3,2,5)"), {a_of({1, 5}), b_of({3, 2, 5})}, f);
    cs.add(str(binary_name(bk), " (4,3)^T x (3,4)"), {a_of({4, 3}), b_of({3, 4})},
        [bk](const std::vector<Tensor>& x) { return ops::binary(bk, x[0].t(), x[1]); });
  }
  // scalar forms, forward and reverse (s ∘ x), with the named wrappers
  struct S { BinaryKind k; double s; };
  for (S sc : {S{BinaryKind::ADD, 0.75}, S{BinaryKind::SUB, 1.25}, S{BinaryKind::MUL, -1.5}, S{BinaryKind::DIV, 2.5},
               S{BinaryKind::MAX, 0.25}, S{BinaryKind::MIN, -0.25}, S{BinaryKind::POW, 2.5}, S{BinaryKind::POW, 3.0}}) {
    for (bool rev : {false, true}) {
      if (rev && sc.k == BinaryKind::POW && sc.s == 3.0) continue;
      bool positive = sc.k == BinaryKind::POW, nonzero = sc.k == BinaryKind::DIV && rev;
      double s = rev && sc.k == BinaryKind::POW ? 1.5 : sc.s;
      cs.add(str("scalar ", rev ? "reverse " : "", binary_name(sc.k), " ", s),
          {positive ? rnd({3, 5}, 0.25, 2.0) : nonzero ? away({3, 5}) : rnd({3, 5})},
          [sc, s, rev](const std::vector<Tensor>& x) { return ops::scalar(sc.k, x[0], s, rev); });
    }
  }
  cs.add("add/sub/mul/div(x, s), rsub, rdiv, pow", {away({2, 3})}, [](const std::vector<Tensor>& x) {
    Tensor y = ops::add(ops::mul(ops::sub(ops::div(x[0], 2.0), 0.5), 1.5), 0.25);
    return ops::add(ops::add(ops::rsub(1.0, y), ops::rdiv(2.0, x[0])), ops::pow(ops::mul(y, y), 1.5));
  });
  for (int64_t k = 0; k < static_cast<int64_t>(UnaryKind::COUNT); ++k) {
    auto uk = static_cast<UnaryKind>(k);
    bool positive = uk == UnaryKind::LOG || uk == UnaryKind::SQRT || uk == UnaryKind::RSQRT;
    Tensor x = positive ? rnd({3, 5}, 0.2, 4.0) : uk == UnaryKind::RECIPROCAL ? away({3, 5}) : rnd({3, 5}, -3, 3);
    cs.add(str("unary ", unary_name(uk)), {x}, [uk](const std::vector<Tensor>& in) { return ops::unary(uk, in[0]); });
  }
  cs.add("exp of a strided view (6,5)[::2, 1:]", {rnd({6, 5})},
      [](const std::vector<Tensor>& x) { return ops::exp(x[0].slice(0, 0, 6, 2).slice(1, 1, 5)); });
  for (int64_t a = 0; a < static_cast<int64_t>(Activation::COUNT); ++a) {
    auto act = static_cast<Activation>(a);
    cs.add(str("activation ", activation_name(act)), {rnd({4, 3}, -3, 3)},
        [act](const std::vector<Tensor>& x) { return ops::activation(act, ops::mul(x[0], 1.5)); });
  }
  cs.add("clamp both", {rnd({4, 5})}, [](const std::vector<Tensor>& x) { return ops::clamp(x[0], -0.5, 0.75); });
  cs.add("clamp lo", {rnd({4, 5})}, [](const std::vector<Tensor>& x) { return ops::clamp(x[0], 0.25, std::nullopt); });
  cs.add("clamp hi", {rnd({4, 5})}, [](const std::vector<Tensor>& x) { return ops::clamp(x[0], std::nullopt, -0.25); });
  cs.add("where cond (4,1), a (3,4,5), b (5)", {u8({1, 0, 0, 1}, {4, 1}), rnd({3, 4, 5}), rnd({5})},
      [](const std::vector<Tensor>& x) { return ops::where(x[0], x[1], x[2]); });
  cs.add("where, b does not require grad", {u8({1, 0, 1, 1, 0, 0}, {2, 3}), rnd({2, 3}), rnd({1})},
      [](const std::vector<Tensor>& x) { return ops::where(x[0], x[1], x[2]); });
  cs.list.back().fixed = {2};
  return cs.list;
}

std::vector<GradCase> reduction_cases() {
  Cases cs{"reductions & softmax", 1e-5};
  for (int64_t k = 0; k < static_cast<int64_t>(ReduceKind::COUNT); ++k) {
    auto rk = static_cast<ReduceKind>(k);
    for (auto [dim, keep] : {std::pair<int64_t, bool>{0, false}, {1, true}, {-1, false}, {-1, true}})
      cs.add(str(reduce_name(rk), " dim ", dim, keep ? " keepdim" : ""), {rnd({3, 4, 5})},
          [rk, dim = dim, keep = keep](const std::vector<Tensor>& x) { return ops::reduce(rk, x[0], dim, keep); });
    cs.add(str(reduce_name(rk), " of a transposed view"), {rnd({4, 6})},
        [rk](const std::vector<Tensor>& x) { return ops::reduce(rk, x[0].t(), 1); });
  }
  cs.add("sum_all", {rnd({3, 4})}, [](const std::vector<Tensor>& x) { return ops::sum_all(x[0]); });
  cs.add("sum_all of a permuted view", {rnd({2, 3, 4})},
      [](const std::vector<Tensor>& x) { return ops::sum_all(ops::mul(x[0].permute({2, 0, 1}), x[0].permute({2, 0, 1}))); });
  cs.add("topk values k3 dim -1", {rnd({4, 6})}, [](const std::vector<Tensor>& x) { return ops::topk(x[0], 3, -1).values; });
  cs.add("topk smallest k2 dim 0", {rnd({4, 6})},
      [](const std::vector<Tensor>& x) { return ops::topk(x[0], 2, 0, false).values; });
  for (bool log : {false, true})
    for (int64_t dim : {0, 1, -1})
      cs.add(str(log ? "log_softmax" : "softmax", " dim ", dim), {rnd({3, 4, 5}, -3, 3)},
          [log, dim](const std::vector<Tensor>& x) { return log ? ops::log_softmax(x[0], dim) : ops::softmax(x[0], dim); });
  for (int64_t dim : {0, -1})
    cs.add(str("l2_normalize dim ", dim), {rnd({3, 5})},
        [dim](const std::vector<Tensor>& x) { return ops::l2_normalize(x[0], dim); });
  Tensor t = i64({2, 0, -100, 4, 1, -100}, {6});
  for (auto r : {ops::Reduction::MEAN, ops::Reduction::SUM, ops::Reduction::NONE})
    cs.add(str("cross_entropy ", r == ops::Reduction::MEAN ? "mean" : r == ops::Reduction::SUM ? "sum" : "none",
            " with ignore_index -100"),
        {rnd({6, 5}, -3, 3), t}, [r](const std::vector<Tensor>& x) { return ops::cross_entropy(x[0], x[1], r); });
  cs.add("cross_entropy ignore_index 3, i32 targets, transposed logits", {rnd({4, 5}, -3, 3), i64({3, 0, 3, 1, 2}, {5})},
      [](const std::vector<Tensor>& x) {
        return ops::cross_entropy(x[0].t(), x[1].to(DType::I32), ops::Reduction::MEAN, 3);
      });
  return cs.list;
}

std::vector<GradCase> norm_cases() {
  Cases cs{"normalization", 1e-5};
  cs.add("layer_norm weight + bias", {rnd({2, 3, 6}), rnd({6}, 0.5, 1.5), rnd({6})},
      [](const std::vector<Tensor>& x) { return ops::layer_norm(x[0], x[1], x[2], 1e-5); });
  cs.add("layer_norm no affine", {rnd({4, 6})}, [](const std::vector<Tensor>& x) {
    return ops::layer_norm(x[0], Tensor(), Tensor(), 1e-5);
  });
  cs.add("layer_norm bias only", {rnd({4, 6}), rnd({6})},
      [](const std::vector<Tensor>& x) { return ops::layer_norm(x[0], Tensor(), x[1], 1e-5); });
  cs.add("layer_norm weight only, transposed input", {rnd({6, 4}), rnd({6}, 0.5, 1.5)},
      [](const std::vector<Tensor>& x) { return ops::layer_norm(x[0].t(), x[1], Tensor(), 1e-5); });
  cs.add("rms_norm weight", {rnd({4, 6}), rnd({6}, 0.5, 1.5)},
      [](const std::vector<Tensor>& x) { return ops::rms_norm(x[0], x[1], 1e-6); });
  cs.add("rms_norm no weight", {rnd({2, 2, 6})}, [](const std::vector<Tensor>& x) { return ops::rms_norm(x[0], Tensor()); });
  cs.add("batch_norm (inference) weight + bias", {rnd({2, 3, 2, 2}), rnd({3}, -0.5, 0.5), rnd({3}, 0.5, 1.5),
                                              rnd({3}, 0.5, 1.5), rnd({3})},
      [](const std::vector<Tensor>& x) { return ops::batch_norm(x[0], x[1], x[2], x[3], x[4], 1e-5); });
  cs.list.back().fixed = {1, 2};
  cs.add("batch_norm no affine, (N, C)", {rnd({4, 3}), rnd({3}, -0.5, 0.5), rnd({3}, 0.5, 1.5)},
      [](const std::vector<Tensor>& x) { return ops::batch_norm(x[0], x[1], x[2], Tensor(), Tensor()); });
  cs.list.back().fixed = {1, 2};
  return cs.list;
}

std::vector<GradCase> matmul_cases() {
  Cases cs{"matmul & linear", 2e-5};
  auto mm = [](bool ta, bool tb) {
    return [ta, tb](const std::vector<Tensor>& x) { return ops::matmul(x[0], x[1], ta, tb); };
  };
  cs.add("matmul (3,4)@(4,5)", {rnd({3, 4}), rnd({4, 5})}, mm(false, false));
  cs.add("matmul trans_a", {rnd({4, 3}), rnd({4, 5})}, mm(true, false));
  cs.add("matmul trans_b", {rnd({3, 4}), rnd({5, 4})}, mm(false, true));
  cs.add("matmul trans_a trans_b", {rnd({4, 3}), rnd({5, 4})}, mm(true, true));
  cs.add("matmul batch broadcast (2,1,3,4)@(3,4,5)", {rnd({2, 1, 3, 4}), rnd({3, 4, 5})}, mm(false, false));
  cs.add("matmul batch a only (2,3,4)@(4,5)", {rnd({2, 3, 4}), rnd({4, 5})}, mm(false, false));
  cs.add("matmul batch b only, trans_b (3,4)@(2,5,4)^T", {rnd({3, 4}), rnd({2, 5, 4})}, mm(false, true));
  cs.add("matmul 1-D a (4)@(2,4,5)", {rnd({4}), rnd({2, 4, 5})}, mm(false, false));
  cs.add("matmul 1-D b (2,3,4)@(4)", {rnd({2, 3, 4}), rnd({4})}, mm(false, false));
  cs.add("matmul 1-D both", {rnd({4}), rnd({4})}, mm(false, false));
  cs.add("matmul of permuted views", {rnd({4, 2, 3}), rnd({5, 4})},
      [](const std::vector<Tensor>& x) { return ops::matmul(x[0].permute({1, 2, 0}), x[1].t()); });
  for (int64_t a = 0; a < static_cast<int64_t>(Activation::COUNT); ++a) {
    auto act = static_cast<Activation>(a);
    cs.add(str("matmul + bias + ", activation_name(act), ", alpha 0.5"), {rnd({2, 3, 4}), rnd({4, 5}), rnd({5})},
        [act](const std::vector<Tensor>& x) { return ops::matmul(x[0], x[1], false, false, x[2], act, 0.5); });
  }
  cs.add("matmul alpha -1.5, bias does not require grad", {rnd({3, 4}), rnd({4, 2}), rnd({2})},
      [](const std::vector<Tensor>& x) { return ops::matmul(x[0], x[1], false, false, x[2], Activation::NONE, -1.5); });
  cs.list.back().fixed = {2};
  cs.add("matmul only b requires grad", {rnd({3, 4}), rnd({4, 2})}, mm(false, false));
  cs.list.back().fixed = {0};
  cs.add("linear (2,3,4) W (5,4) b (5)", {rnd({2, 3, 4}), rnd({5, 4}), rnd({5})},
      [](const std::vector<Tensor>& x) { return ops::linear(x[0], x[1], x[2]); });
  cs.add("linear no bias, 1-D x", {rnd({4}), rnd({5, 4})},
      [](const std::vector<Tensor>& x) { return ops::linear(x[0], x[1]); });
  cs.add("linear + fused quick_gelu", {rnd({3, 4}), rnd({5, 4}), rnd({5})},
      [](const std::vector<Tensor>& x) { return ops::linear(x[0], x[1], x[2], Activation::QUICK_GELU); });
  return cs.list;
}

std::vector<GradCase> attention_cases() {
  Cases cs{"attention", 2e-5};
  const int64_t B = 2, H = 2, D = 4;
  auto sdpa = [](ops::AttentionOptions o) {
    return [o](const std::vector<Tensor>& x) { return ops::scaled_dot_product_attention(x[0], x[1], x[2], o); };
  };
  cs.add("plain, Dv = 3", {rnd({B, H, 5, D}), rnd({B, H, 5, D}), rnd({B, H, 5, 3})}, sdpa({}));
  cs.add("additive mask (1,H,T,T) that requires grad", {rnd({B, H, 5, D}), rnd({B, H, 5, D}), rnd({B, H, 5, D}),
                                                       rnd({1, H, 5, 5})},
      [](const std::vector<Tensor>& x) {
        ops::AttentionOptions o;
        o.attn_mask = x[3];
        return ops::scaled_dot_product_attention(x[0], x[1], x[2], o);
      });
  cs.add("additive mask (Tq,Tk) broadcast, requires grad, causal, Tq 3 Tk 4",
      {rnd({B, H, 3, D}), rnd({B, H, 4, D}), rnd({B, H, 4, D}), rnd({3, 4})}, [](const std::vector<Tensor>& x) {
        ops::AttentionOptions o;
        o.attn_mask = x[3];
        o.causal = true;
        return ops::scaled_dot_product_attention(x[0], x[1], x[2], o);
      });
  ops::AttentionOptions causal;
  causal.causal = true;
  cs.add("causal Tq 3 < Tk 5", {rnd({B, H, 3, D}), rnd({B, H, 5, D}), rnd({B, H, 5, D})}, sdpa(causal));
  cs.add("causal Tq 5 > Tk 3 (rows 0, 1 see no key)", {rnd({B, H, 5, D}), rnd({B, H, 3, D}), rnd({B, H, 3, D})},
      sdpa(causal));
  cs.add("key_padding_mask, batch 1 fully padded", {rnd({B, H, 4, D}), rnd({B, H, 5, D}), rnd({B, H, 5, D}),
                                                 u8({0, 0, 1, 0, 1, 1, 1, 1, 1, 1}, {B, 5})},
      [](const std::vector<Tensor>& x) {
        ops::AttentionOptions o;
        o.key_padding_mask = x[3];
        return ops::scaled_dot_product_attention(x[0], x[1], x[2], o);
      });
  cs.add("scale 0.3 on transposed (B,T,H,D) views", {rnd({B, 5, H, D}), rnd({B, 5, H, D}), rnd({B, 5, H, D})},
      [](const std::vector<Tensor>& x) {
        ops::AttentionOptions o;
        o.scale = 0.3;
        return ops::scaled_dot_product_attention(x[0].transpose(1, 2), x[1].transpose(1, 2), x[2].transpose(1, 2), o);
      });
  return cs.list;
}

std::vector<GradCase> conv_cases() {
  Cases cs{"conv2d", 2e-5};
  auto conv = [](ops::Conv2dOptions o, bool bias) {
    return [o, bias](const std::vector<Tensor>& x) { return ops::conv2d(x[0], x[1], bias ? x[2] : Tensor(), o); };
  };
  cs.add("3x3 stride 1 pad 1 + bias", {rnd({2, 3, 5, 5}), rnd({4, 3, 3, 3}), rnd({4})}, conv({1, 1, 1, 1, 1, 1}, true));
  cs.add("3x3 stride 2 pad 1 + bias", {rnd({1, 2, 7, 6}), rnd({3, 2, 3, 3}), rnd({3})}, conv({2, 2, 1, 1, 1, 1}, true));
  cs.add("3x2 dilation 2, pad (1, 0), strides (1, 2)", {rnd({1, 2, 7, 7}), rnd({2, 2, 3, 2})},
      conv({1, 2, 1, 0, 2, 2}, false));
  cs.add("patch embedding 4x4 stride 4", {rnd({2, 3, 8, 8}), rnd({5, 3, 4, 4})}, conv({4, 4, 0, 0, 1, 1}, false));
  cs.add("only the weight requires grad", {rnd({1, 2, 5, 5}), rnd({2, 2, 3, 3})}, conv({1, 1, 0, 0, 1, 1}, false));
  cs.list.back().fixed = {0};
  return cs.list;
}

// Casts round: finite differences in f64 through an f32 cast see steps of 2^-24 |x|, so h and the
// tolerance are larger (the functions are linear, so only that rounding matters).
GradCase cast_case(std::string name, Fn fn) {
  GradCase c("casts (finite differences see f32 rounding: h 1e-3)", std::move(name), {rnd({3, 4})}, std::move(fn), 1e-6);
  c.h = 1e-3;
  c.fd_tol = 1e-4;
  return c;
}

std::vector<GradCase> index_cases() {
  Cases cs{"indexing & joining", 1e-6};
  cs.add("embedding, repeated ids", {rnd({5, 4}), i64({1, 3, 1, 0, 3, 3}, {2, 3})},
      [](const std::vector<Tensor>& x) { return ops::embedding(x[0], x[1]); });
  cs.add("index_select dim 1, repeated", {rnd({3, 4, 2}), i64({2, 0, 2, 1}, {4})},
      [](const std::vector<Tensor>& x) { return ops::index_select(x[0], 1, x[1]); });
  cs.add("index_select dim 0 of a transposed view, i32", {rnd({3, 4}), i64({1, 1, 2}, {3})},
      [](const std::vector<Tensor>& x) { return ops::index_select(x[0].t(), 0, x[1].to(DType::I32)); });
  cs.add("gather dim 1", {rnd({3, 4}), i64({0, 2, 2, 1, 1, 0, 3, 0, 0}, {3, 3})},
      [](const std::vector<Tensor>& x) { return ops::gather(x[0], 1, x[1]); });
  cs.add("gather dim 0, index smaller than x", {rnd({4, 3}), i64({3, 0, 3, 1}, {2, 2})},
      [](const std::vector<Tensor>& x) { return ops::gather(x[0], 0, x[1]); });
  cs.add("concat dim 1 of three (middle one fixed)", {rnd({2, 3, 4}), rnd({2, 1, 4}), rnd({2, 2, 4})},
      [](const std::vector<Tensor>& x) { return ops::concat({x[0], x[1], x[2]}, 1); });
  cs.list.back().fixed = {1};
  cs.add("concat dim -1, the same tensor twice", {rnd({3, 2})},
      [](const std::vector<Tensor>& x) { return ops::concat({x[0], ops::mul(x[0], x[0])}, -1); });
  cs.add("stack dim 2", {rnd({3, 4}), rnd({3, 4})}, [](const std::vector<Tensor>& x) { return ops::stack({x[0], x[1]}, 2); });
  cs.add("split 2 along dim 1, parts recombined", {rnd({3, 5})}, [](const std::vector<Tensor>& x) {
    std::vector<Tensor> p = ops::split(x[0], 2, 1);  // (3,2) (3,2) (3,1)
    return ops::add(ops::mul(p[0], p[1]), p[2]);
  });
  cs.add("chunk 3 along dim 0, one part unused", {rnd({6, 2})}, [](const std::vector<Tensor>& x) {
    std::vector<Tensor> p = ops::chunk(x[0], 3, 0);
    return ops::sub(ops::exp(p[0]), p[2]);
  });
  cs.list.push_back(cast_case("cast f64 -> f32 -> f64 (linear)", [](const std::vector<Tensor>& x) {
    return ops::cast(ops::mul(ops::cast(x[0], DType::F32), 1.5), DType::F64);
  }));
  return cs.list;
}

std::vector<GradCase> view_cases() {
  Cases cs{"views & copies", 1e-6};
  // Each view feeds a nonlinear op so that the gradient of the view is not a constant.
  auto sq = [](const Tensor& t) { return ops::mul(t, ops::tanh(t)); };
  cs.add("view", {rnd({2, 6})}, [sq](const std::vector<Tensor>& x) { return sq(x[0].view({3, 4})); });
  cs.add("view with -1", {rnd({2, 3, 2})}, [sq](const std::vector<Tensor>& x) { return sq(x[0].view({-1, 2})); });
  cs.add("reshape (view path)", {rnd({4, 3})}, [sq](const std::vector<Tensor>& x) { return sq(x[0].reshape({2, 6})); });
  cs.add("reshape (copying path: of a transpose)", {rnd({4, 3})},
      [sq](const std::vector<Tensor>& x) { return sq(x[0].t().reshape({12})); });
  cs.add("flatten(1)", {rnd({2, 3, 2})}, [sq](const std::vector<Tensor>& x) { return sq(x[0].flatten(1)); });
  cs.add("flatten of a 0-d tensor", {rnd({})}, [sq](const std::vector<Tensor>& x) { return sq(x[0].flatten()); });
  cs.add("transpose(0, 2)", {rnd({2, 3, 4})}, [sq](const std::vector<Tensor>& x) { return sq(x[0].transpose(0, 2)); });
  cs.add("permute(2, 0, 1)", {rnd({2, 3, 4})}, [sq](const std::vector<Tensor>& x) { return sq(x[0].permute({2, 0, 1})); });
  cs.add("narrow(1, 1, 2)", {rnd({3, 4})}, [sq](const std::vector<Tensor>& x) { return sq(x[0].narrow(1, 1, 2)); });
  cs.add("narrow with negative start", {rnd({5, 2})}, [sq](const std::vector<Tensor>& x) { return sq(x[0].narrow(0, -3, 2)); });
  cs.add("slice with step 2", {rnd({7, 3})}, [sq](const std::vector<Tensor>& x) { return sq(x[0].slice(0, 1, 7, 2)); });
  cs.add("slice step 3 of a transpose", {rnd({3, 8})},
      [sq](const std::vector<Tensor>& x) { return sq(x[0].t().slice(0, 0, 8, 3)); });
  cs.add("select(1, -1)", {rnd({3, 4})}, [sq](const std::vector<Tensor>& x) { return sq(x[0].select(1, -1)); });
  cs.add("select of a select", {rnd({2, 3, 4})},
      [sq](const std::vector<Tensor>& x) { return sq(x[0].select(2, 1).select(0, 1)); });
  cs.add("expand (3,1) -> (2,3,4)", {rnd({3, 1})},
      [sq, w = rnd({2, 3, 4})](const std::vector<Tensor>& x) { return sq(ops::mul(x[0].expand({2, 3, 4}), w.to(x[0].dtype()))); });
  cs.add("expand then exp", {rnd({1, 4})}, [](const std::vector<Tensor>& x) { return ops::exp(x[0].expand({3, -1})); });
  cs.add("squeeze / unsqueeze", {rnd({3, 1, 4})},
      [sq](const std::vector<Tensor>& x) { return sq(x[0].squeeze(1).unsqueeze(0).unsqueeze(-1)); });
  cs.add("squeeze of a non-1 dim (no-op)", {rnd({3, 4})}, [sq](const std::vector<Tensor>& x) { return sq(x[0].squeeze(0)); });
  cs.add("contiguous of a permute", {rnd({2, 3, 4})},
      [sq](const std::vector<Tensor>& x) { return sq(x[0].permute({1, 2, 0}).contiguous()); });
  cs.add("clone", {rnd({3, 4})}, [sq](const std::vector<Tensor>& x) { return ops::add(sq(x[0].clone()), x[0]); });
  cs.add("to(dtype) same dtype (no-op)", {rnd({3, 2})},
      [sq](const std::vector<Tensor>& x) { return sq(x[0].to(x[0].dtype())); });
  cs.add("a chain: permute, slice step, select, unsqueeze, expand, reshape", {rnd({4, 5, 3})},
      [sq](const std::vector<Tensor>& x) {
        Tensor v = x[0].permute({2, 0, 1}).slice(2, 0, 5, 2).select(0, 1).unsqueeze(0).expand({2, 4, 3});
        return sq(v.reshape({8, 3}));
      });
  cs.list.push_back(cast_case("to(f32) and back (linear)", [](const std::vector<Tensor>& x) {
    return ops::mul(x[0].to(DType::F32).to(DType::F64), 0.5);
  }));
  return cs.list;
}

// ---- fixtures -----------------------------------------------------------------------------------------------
// Must match FORMAT_VERSION in tools/reference/make_grad_fixtures.py.
const std::string kGradFixtureVersion = "1";
const std::string kRegenerate = "re-run `python3 tools/reference/make_grad_fixtures.py` (needs torch, transformers)";

SafeTensorsFile open_fixture(const std::string& file) {
  return test::open_versioned_fixture("grad/" + file, kGradFixtureVersion, kRegenerate);
}

template <typename E>
E kind_named(const char* (*namer)(E), const std::string& s) {
  for (int64_t k = 0; k < static_cast<int64_t>(E::COUNT); ++k)
    if (s == namer(static_cast<E>(k))) return static_cast<E>(k);
  VL_FAIL("unknown kind name '", s, "' in the grad fixtures: ", kRegenerate);
}

using Named = std::map<std::string, Tensor>;
using json = nlohmann::json;
Tensor opt_in(const Named& in, const std::string& role) {
  auto it = in.find(role);
  return it == in.end() ? Tensor() : it->second;
}
// Rebuilds one ops.safetensors case with vislang ops.
Tensor run_fixture_op(const std::string& op, const Named& in, const json& p) {
  auto at = [&](const std::string& r) {
    auto it = in.find(r);
    if (it == in.end()) VL_FAIL("grad fixture lacks input '", r, "': ", kRegenerate);
    return it->second;
  };
  if (op == "binary") return ops::binary(kind_named(binary_name, p["kind"]), at("a"), at("b"));
  if (op == "scalar")
    return ops::scalar(kind_named(binary_name, p["kind"]), at("x"), p["s"].get<double>(), p["reverse"].get<bool>());
  if (op == "unary") return ops::unary(kind_named(unary_name, p["kind"]), at("x"));
  if (op == "clamp") {
    std::optional<double> lo, hi;
    if (p.contains("lo")) lo = p["lo"].get<double>();
    if (p.contains("hi")) hi = p["hi"].get<double>();
    return ops::clamp(at("x"), lo, hi);
  }
  if (op == "where") return ops::where(at("cond"), at("a"), at("b"));
  if (op == "reduce")
    return ops::reduce(kind_named(reduce_name, p["kind"]), at("x"), p["dim"].get<int64_t>(), p["keepdim"].get<bool>());
  if (op == "sum_all") return ops::sum_all(at("x"));
  if (op == "topk") return ops::topk(at("x"), p["k"].get<int64_t>(), p["dim"].get<int64_t>(), p["largest"].get<bool>()).values;
  if (op == "softmax") return ops::softmax(at("x"), p["dim"].get<int64_t>());
  if (op == "log_softmax") return ops::log_softmax(at("x"), p["dim"].get<int64_t>());
  if (op == "l2_normalize") return ops::l2_normalize(at("x"), p["dim"].get<int64_t>());
  if (op == "cross_entropy") {
    std::string r = p["reduction"];
    auto red = r == "mean" ? ops::Reduction::MEAN : r == "sum" ? ops::Reduction::SUM : ops::Reduction::NONE;
    return ops::cross_entropy(at("logits"), at("targets"), red, p["ignore_index"].get<int64_t>());
  }
  if (op == "layer_norm") return ops::layer_norm(at("x"), opt_in(in, "weight"), opt_in(in, "bias"), p["eps"].get<double>());
  if (op == "rms_norm") return ops::rms_norm(at("x"), opt_in(in, "weight"), p["eps"].get<double>());
  if (op == "batch_norm")
    return ops::batch_norm(at("x"), at("running_mean"), at("running_var"), opt_in(in, "weight"), opt_in(in, "bias"),
                           p["eps"].get<double>());
  if (op == "matmul")
    return ops::matmul(at("a"), at("b"), p.value("trans_a", false), p.value("trans_b", false), opt_in(in, "bias"),
                       kind_named(activation_name, p.value("act", std::string("none"))), p.value("alpha", 1.0));
  if (op == "linear") return ops::linear(at("x"), at("weight"), opt_in(in, "bias"));
  if (op == "attention") {
    ops::AttentionOptions o;
    o.attn_mask = opt_in(in, "attn_mask");
    o.key_padding_mask = opt_in(in, "key_padding_mask");
    o.causal = p.value("causal", false);
    return ops::scaled_dot_product_attention(at("q"), at("k"), at("v"), o);
  }
  if (op == "conv2d") {
    int64_t s = p["stride"], d = p["dilation"];
    ops::Conv2dOptions o{s, s, p["pad_h"].get<int64_t>(), p["pad_w"].get<int64_t>(), d, d};
    return ops::conv2d(at("x"), at("weight"), opt_in(in, "bias"), o);
  }
  if (op == "embedding") return ops::embedding(at("table"), at("ids"));
  if (op == "index_select") return ops::index_select(at("x"), p["dim"].get<int64_t>(), at("index"));
  if (op == "gather") return ops::gather(at("x"), p["dim"].get<int64_t>(), at("index"));
  if (op == "concat") return ops::concat({at("a"), at("b"), at("c")}, p["dim"].get<int64_t>());
  if (op == "stack") return ops::stack({at("a"), at("b")}, p["dim"].get<int64_t>());
  VL_FAIL("no runner for grad fixture op '", op, "'");
}
// f32 optimized tolerance per fixture op (relative to the largest element of each gradient).
double fixture_f32_tol(const std::string& op) {
  if (op == "matmul" || op == "linear" || op == "attention" || op == "conv2d") return 2e-5;
  if (op == "layer_norm" || op == "rms_norm" || op == "batch_norm" || op == "cross_entropy" || op == "l2_normalize")
    return 1e-5;
  return 1e-5;
}

const std::set<std::string> kReserved = {"format_version", "generator", "torch"};

}  // namespace

TEST_SUITE("autograd") {

// ---- 1. finite differences --------------------------------------------------------------------------------------
TEST_CASE("gradcheck: elementwise (binary with broadcasting, scalar and reverse forms, unary, clamp, where)") {
  check_cases(elementwise_cases());
}
TEST_CASE("gradcheck: reductions, topk, softmax, l2_normalize, cross_entropy") { check_cases(reduction_cases()); }
TEST_CASE("gradcheck: layer_norm, rms_norm, batch_norm") { check_cases(norm_cases()); }
TEST_CASE("gradcheck: matmul (transposes, batch broadcast, 1-D, bias, fused activations, alpha) and linear") {
  check_cases(matmul_cases());
}
TEST_CASE("gradcheck: scaled_dot_product_attention (masks, causal Tq != Tk, key padding, dead rows)") {
  check_cases(attention_cases());
}
TEST_CASE("gradcheck: conv2d (stride, padding, dilation, bias, patch embedding)") { check_cases(conv_cases()); }
TEST_CASE("gradcheck: embedding, index_select, gather, concat, stack, split, chunk, cast") {
  check_cases(index_cases());
}
TEST_CASE("gradcheck: views and copies") { check_cases(view_cases()); }

TEST_CASE("gradcheck meta-test: the checker reports a wrong gradient") {
  GradCase c{"meta", "mul", {rnd({3, 4}), rnd({3, 4})},
             [](const std::vector<Tensor>& x) { return ops::mul(x[0], ops::tanh(x[1])); }};
  CHECK(run_case(c).ok);
  // One element of one analytic gradient off by 1e-4 relative: reported.
  CaseResult r = run_case(c, [](std::vector<Tensor>& g) {
    Tensor t = g[1].clone();
    double* p = t.data<double>();
    p[5] += 1e-4 * std::max(1.0, std::fabs(p[5]));
    g[1] = t;
  });
  CHECK_FALSE(r.ok);
  CHECK(contains(r.message, "input 1: f64 vs finite differences"));
  // A backward closure that is wrong by 0.1% (recorded with autograd::record, like every op): reported
  // by the f64 check, while the f32 check (which shares the closure) cannot see it.
  GradCase bad{"meta", "wrong closure", {rnd({5})}, [](const std::vector<Tensor>& x) {
                 Tensor y = ops::exp(x[0].detach());
                 return autograd::record(y, "bad_exp", {x[0]}, [y = y.detach()](const Tensor& g) {
                   return std::vector<Tensor>{ops::mul(ops::mul(g, y), 1.001)};
                 });
               }};
  r = run_case(bad);
  CHECK_FALSE(r.ok);
  CHECK(contains(r.message, "f64 vs finite differences"));
}

TEST_CASE("gradcheck: the f32 runs used the optimized CPU backward kernels, not the reference") {
  // Otherwise "f32 optimized vs f64" would compare the reference kernels with themselves.
  dispatch_counts() = DispatchCounts{};
  Tensor x = rnd({2, 3, 4, 4}).to(DType::F32), w = rnd({5, 3, 3, 3}).to(DType::F32), t = rnd({7, 4}).to(DType::F32);
  x.requires_grad_();
  w.requires_grad_();
  t.requires_grad_();
  Tensor h = ops::gelu(ops::conv2d(x, w, Tensor(), {1, 1, 1, 1, 1, 1}));                   // (2, 5, 4, 4)
  h = ops::clamp(ops::softmax(ops::layer_norm(h, Tensor(), Tensor()), -1), 0.01, std::nullopt);
  Tensor e = ops::embedding(t, i64({1, 6, 1}, {3}));                                       // (3, 4)
  ops::add(ops::sum_all(h), ops::sum_all(e)).backward();
  for (Op op : {Op::UNARY_BACKWARD, Op::SOFTMAX_BACKWARD, Op::LAYER_NORM_BACKWARD, Op::CONV2D_BACKWARD,
                Op::SCATTER_ADD}) {
    CAPTURE(op_name(op));
    CHECK(dispatch_counts().n[static_cast<int>(BackendId::CPU)][static_cast<int>(op)] > 0);
  }
}

TEST_CASE("gradcheck: f16 and bf16 gradients agree with f64 (incl. attention rows that see no key)") {
  // One rounding of the storage dtype per op: relative to the largest element, 1e-2 (f16) and 6e-2 (bf16).
  std::vector<GradCase> cs;
  for (const GradCase& c : attention_cases()) cs.push_back(c);
  auto pick = [&](const std::vector<GradCase>& from, const std::string& name) {
    for (const GradCase& c : from)
      if (c.name == name) return cs.push_back(c);
    FAIL("no case named ", name);
  };
  pick(norm_cases(), "layer_norm weight + bias");
  pick(reduction_cases(), "softmax dim -1");
  pick(reduction_cases(), "log_softmax dim 1");
  pick(conv_cases(), "3x3 stride 2 pad 1 + bias");
  pick(matmul_cases(), "matmul + bias + gelu, alpha 0.5");
  cs.push_back({"low precision", "a small MLP + cross_entropy", {rnd({4, 6}), rnd({5, 6}), rnd({5}), rnd({3, 5})},
                [](const std::vector<Tensor>& x) {
                  Tensor h = ops::linear(x[0], x[1], x[2], Activation::GELU);
                  return ops::cross_entropy(ops::linear(h, x[3]), i64({0, 2, 1, 2}, {4}));
                }});
  for (const GradCase& c : cs) {
    CAPTURE(c.name);
    Tensor gout;
    Analytic a64;
    {
      CpuModeGuard ref(CpuMode::REFERENCE);
      NoGradGuard ng;
      gout = rnd(c.fn(c.inputs).shape());
    }
    {
      CpuModeGuard ref(CpuMode::REFERENCE);
      a64 = analytic(c, DType::F64, gout);
    }
    for (DType dt : {DType::F16, DType::BF16}) {
      CAPTURE(dtype_name(dt));
      Analytic a = analytic(c, dt, gout);
      for (size_t i = 0; i < c.inputs.size(); ++i) {
        if (!differentiated(c, i)) continue;
        REQUIRE(a.grads[i].defined());
        CHECK(a.grads[i].dtype() == dt);
        double e = rel_error(a.grads[i], a64.grads[i]);
        note(str("low precision | ", dtype_name(dt), " vs f64"), e);
        CHECK_MESSAGE(e <= (dt == DType::F16 ? 1e-2 : 6e-2), "input ", i, ": ", e);
      }
    }
  }
}

// ---- 2. graph semantics -----------------------------------------------------------------------------------------
TEST_CASE("graph: gradients accumulate across backward() calls until cleared") {
  Tensor x = rnd({3});
  x.requires_grad_();
  ops::sum_all(ops::mul(x, 2.0)).backward();
  CHECK(rel_error(x.grad(), Tensor::full({3}, 2.0, DType::F64)) == 0);
  ops::sum_all(ops::mul(x, x)).backward();  // += 2x
  CHECK(rel_error(x.grad(), ops::add(ops::mul(x.detach(), 2.0), 2.0)) < 1e-15);
  x.set_grad(Tensor());
  CHECK_FALSE(x.grad().defined());
  ops::sum_all(x).backward();
  CHECK(rel_error(x.grad(), Tensor::ones({3}, DType::F64)) == 0);
}

TEST_CASE("graph: a tensor used twice, shared subexpressions and diamonds") {
  CpuModeGuard ref(CpuMode::REFERENCE);
  Tensor x = rnd({4});
  x.requires_grad_();
  ops::sum_all(ops::mul(x, x)).backward();  // both inputs of one op
  CHECK(rel_error(x.grad(), ops::mul(x.detach(), 2.0)) < 1e-15);
  x.set_grad(Tensor());
  ops::sum_all(ops::add(x, x)).backward();
  CHECK(rel_error(x.grad(), Tensor::full({4}, 2.0, DType::F64)) == 0);

  std::vector<GradCase> cs;
  cs.push_back({"graph", "shared subexpression s = exp(x): s*s + s", {rnd({3, 2})}, [](const std::vector<Tensor>& in) {
                  Tensor s = ops::exp(in[0]);
                  return ops::add(ops::mul(s, s), s);
                }});
  cs.push_back({"graph", "diamond: a = 2x; (tanh a)·(a²) + sigmoid(a)", {rnd({5})}, [](const std::vector<Tensor>& in) {
                  Tensor a = ops::mul(in[0], 2.0);
                  return ops::add(ops::mul(ops::tanh(a), ops::unary(UnaryKind::SQUARE, a)), ops::sigmoid(a));
                }});
  cs.push_back({"graph", "two views of one tensor, one consumer each, plus the tensor itself", {rnd({3, 3})},
                [](const std::vector<Tensor>& in) {
                  Tensor t = in[0].t(), row = in[0].select(0, 1).unsqueeze(0);
                  return ops::add(ops::mul(t, row), ops::mul(in[0], in[0]));
                }});
  cs.push_back({"graph", "x and y both reach the output along paths of different lengths", {rnd({4}), rnd({4})},
                [](const std::vector<Tensor>& in) {
                  Tensor a = ops::mul(in[0], in[1]);
                  Tensor b = ops::tanh(ops::add(a, in[0]));
                  return ops::sum_all(ops::mul(ops::add(b, in[1]), a));
                }});
  check_cases(cs);
}

TEST_CASE("graph: retain_graph allows a second backward; without it the error is clear") {
  Tensor x = rnd({3});
  x.requires_grad_();
  Tensor y = ops::sum_all(ops::exp(x));
  Tensor one = Tensor::ones({}, DType::F64);
  y.backward(one, true);
  y.backward(one, true);
  CHECK(rel_error(x.grad(), ops::mul(ops::exp(x.detach()), 2.0)) < 1e-15);
  y.backward(one, false);  // frees the graph
  CHECK(rel_error(x.grad(), ops::mul(ops::exp(x.detach()), 3.0)) < 1e-15);
  std::string e = error_of([&] { y.backward(); });
  CHECK(contains(e, "already freed"));
  CHECK(contains(e, "retain_graph"));
}

TEST_CASE("graph: NoGradGuard and InferenceMode record nothing; EnableGradGuard re-enables inside NoGradGuard") {
  Tensor x = rnd({3});
  x.requires_grad_();
  {
    NoGradGuard ng;
    CHECK_FALSE(autograd::grad_enabled());
    Tensor y = ops::mul(ops::exp(x), x.unsqueeze(1).t());
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    CHECK(contains(error_of([&] { ops::sum_all(y).backward(); }), "does not require grad"));
    {
      autograd::EnableGradGuard eg;
      CHECK(ops::exp(x).requires_grad());
    }
    CHECK_FALSE(ops::exp(x).requires_grad());
  }
  {
    InferenceMode im;
    CHECK_FALSE(ops::exp(x).requires_grad());
    CHECK_FALSE(x.view({3, 1}).requires_grad());
    autograd::EnableGradGuard eg;  // does not override inference mode
    CHECK_FALSE(ops::exp(x).requires_grad());
  }
  CHECK(autograd::grad_enabled());
  CHECK(ops::exp(x).requires_grad());
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("graph: detach stops gradients and shares storage") {
  Tensor x = rnd({4});
  x.requires_grad_();
  Tensor d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.data_ptr() == x.data_ptr());
  ops::sum_all(ops::mul(d, x)).backward();  // only the second factor is differentiated
  CHECK(rel_error(x.grad(), x.detach()) == 0);
  Tensor y = ops::exp(x);
  CHECK_FALSE(y.detach().requires_grad());
  CHECK(contains(error_of([&] { ops::sum_all(ops::exp(y.detach())).backward(); }), "does not require grad"));
}

TEST_CASE("graph: the rules are enforced with clear errors") {
  // integer tensors cannot require grad
  Tensor ids = i64({1, 2}, {2});
  CHECK(contains(error_of([&] { ids.requires_grad_(); }), "only floating tensors can require grad"));
  CHECK_NOTHROW(ids.requires_grad_(false));
  // in-place writes into a tensor that requires grad (or a view of it) while grad mode is on
  Tensor w = rnd({2, 3});
  w.requires_grad_();
  CHECK(contains(error_of([&] { w.fill_(0.0); }), "fill_: in-place write"));
  CHECK(contains(error_of([&] { w.copy_(rnd({2, 3})); }), "copy_: in-place write"));
  CHECK(contains(error_of([&] { w.narrow(1, 0, 2).fill_(1.0); }), "in-place write"));
  {
    NoGradGuard ng;  // how optimizers update parameters
    CHECK_NOTHROW(w.copy_(ops::sub(w, 0.5)));
    CHECK_NOTHROW(w.fill_(1.0));
  }
  // backward on a non-scalar needs a gradient of its shape
  Tensor y = ops::exp(w);
  CHECK(contains(error_of([&] { y.backward(); }), "grad must be given for a non-scalar output"));
  CHECK(contains(error_of([&] { y.backward(Tensor::ones({3, 2}, DType::F64)); }), "does not match output"));
  CHECK(contains(error_of([&] { y.backward(Tensor::ones({2, 3}, DType::F32)); }), "dtype and device must agree"));
  // requires_grad_(false) on a non-leaf
  CHECK(contains(error_of([&] { y.requires_grad_(false); }), "non-leaf"));
  // a custom node whose closure returns a wrongly shaped gradient / the wrong number of gradients
  Tensor z = autograd::record(ops::exp(w.detach()), "bad_shape", {w},
                              [](const Tensor& g) { return std::vector<Tensor>{ops::sum(g, 0)}; });
  CHECK(contains(error_of([&] { ops::sum_all(z).backward(); }), "'bad_shape' returned gradient"));
  Tensor z2 = autograd::record(ops::exp(w.detach()), "bad_count", {w},
                               [](const Tensor& g) { return std::vector<Tensor>{g, g}; });
  CHECK(contains(error_of([&] { ops::sum_all(z2).backward(); }), "'bad_count' returned 2 gradients for 1 inputs"));
}

TEST_CASE("graph: gradients of unused inputs stay undefined; integer outputs carry none") {
  Tensor x = rnd({3}), y = rnd({3}), z = rnd({3});
  x.requires_grad_();
  y.requires_grad_();
  z.requires_grad_();
  Tensor idx = ops::argmax(z, 0);  // z reaches the output only through an integer result
  CHECK_FALSE(idx.requires_grad());
  ops::TopK tk = ops::topk(z, 2);
  CHECK(tk.values.requires_grad());
  CHECK_FALSE(tk.indices.requires_grad());
  Tensor out = ops::add(ops::sum_all(ops::mul(x, 3.0)), ops::cast(idx, DType::F64));
  out.backward();
  CHECK(rel_error(x.grad(), Tensor::full({3}, 3.0, DType::F64)) == 0);
  CHECK_FALSE(y.grad().defined());
  CHECK_FALSE(z.grad().defined());
  // a split part that is never used gets no gradient, but the tensor it came from does (zeros there)
  Tensor p = rnd({4});
  p.requires_grad_();
  std::vector<Tensor> parts = ops::split(p, 2, 0);
  ops::sum_all(parts[0]).backward();
  // (element by element: GCC 12.2 with AVX-512 miscompiles `const std::vector<double> v{1, 1, 0, 0}` into a
  // broadcast {1, 1, 1, 1} in this function; see the report in docs/autograd.md)
  const std::vector<double> gp = p.grad().to_vector<double>();
  REQUIRE(gp.size() == 4);
  CHECK(gp[0] == 1.0);
  CHECK(gp[1] == 1.0);
  CHECK(gp[2] == 0.0);
  CHECK(gp[3] == 0.0);
}

TEST_CASE("graph: a closure that passes no gradient leaves the history unwalked") {
  // 'stop' returns an undefined gradient for its input: nothing reaches x (its .grad stays undefined),
  // and no closure upstream of 'stop' runs.
  Tensor x = rnd({3});
  x.requires_grad_();
  int upstream_calls = 0;
  Tensor a = autograd::record(ops::exp(x.detach()), "counted", {x}, [&upstream_calls](const Tensor& g) {
    ++upstream_calls;
    return std::vector<Tensor>{g};
  });
  Tensor b = autograd::record(ops::mul(a.detach(), 2.0), "stop", {a},
                              [](const Tensor&) { return std::vector<Tensor>{Tensor()}; });
  ops::sum_all(b).backward();
  CHECK(upstream_calls == 0);
  CHECK_FALSE(x.grad().defined());
  // with a second path that does carry a gradient, x gets exactly that one (and 'counted' still never runs)
  Tensor a2 = autograd::record(ops::exp(x.detach()), "counted", {x}, [&upstream_calls](const Tensor& g) {
    ++upstream_calls;
    return std::vector<Tensor>{g};
  });
  Tensor c = autograd::record(ops::mul(a2.detach(), 2.0), "stop", {a2},
                              [](const Tensor&) { return std::vector<Tensor>{Tensor()}; });
  ops::add(ops::sum_all(c), ops::sum_all(ops::mul(x, 5.0))).backward();
  CHECK(upstream_calls == 0);
  CHECK(rel_error(x.grad(), Tensor::full({3}, 5.0, DType::F64)) == 0);
  // the unexecuted closure was not freed: a backward from `a2` itself still runs it
  a2.backward(Tensor::ones({3}, DType::F64));
  CHECK(upstream_calls == 1);
}

TEST_CASE("graph: leaf gradients are private copies; retain_grad keeps a non-leaf's gradient") {
  Tensor x = rnd({2, 2});
  x.requires_grad_();
  Tensor g = rnd({2, 2});
  Tensor y = ops::mul(x, 1.0);
  y.retain_grad();
  y.backward(g);
  CHECK(x.grad().data_ptr() != g.data_ptr());
  CHECK(rel_error(y.grad(), g) == 0);
  CHECK(rel_error(x.grad(), g) == 0);
  {
    NoGradGuard ng;
    g.fill_(0.0);  // the caller's tensor changes; the stored gradients do not
  }
  CHECK_FALSE(all_zero(x.grad()));
  x.backward(Tensor::ones({2, 2}, DType::F64));  // a leaf as the root
  CHECK(rel_error(x.grad(), ops::add(y.grad(), 1.0)) == 0);
}

TEST_CASE("graph: a 10,000-op chain backpropagates and is freed without deep recursion") {
  for (int64_t n : {10000, 200000}) {
    CAPTURE(n);
    Tensor x = Tensor::full({2}, 0.5, DType::F32);
    x.requires_grad_();
    Tensor y = x;
    for (int64_t i = 0; i < n; ++i) y = ops::mul(ops::add(y, 1.0), 0.5);  // converges to 1; dy/dx = 2^-n·... → 0
    if (n == 10000) {
      Tensor z = x;
      for (int64_t i = 0; i < n; ++i) z = ops::add(z, 1e-3);
      ops::sum_all(ops::add(y, z)).backward();
      const std::vector<float> gx = x.grad().to_vector<float>();  // d/dx of the second chain
      CHECK(gx.size() == 2);
      CHECK(gx[0] == 1.f);
      CHECK(gx[1] == 1.f);
    } else {
      ops::sum_all(y).backward();
      CHECK(x.grad().defined());
    }
    y = Tensor();  // frees the chain (would recurse n deep in naive shared_ptr destruction)
  }
}

// ---- 3. PyTorch fixtures ---------------------------------------------------------------------------------------
TEST_CASE("fixtures: per-op gradients match torch.autograd (f64 reference; f32 optimized)") {
  SafeTensorsFile f = open_fixture("ops.safetensors");
  std::vector<std::string> names = f.names();
  int n_cases = 0;
  for (const auto& [name, params] : f.metadata()) {
    if (kReserved.count(name)) continue;
    CAPTURE(name);
    json p = json::parse(params);
    std::string op = p["op"];
    std::set<std::string> nograd;
    if (p.contains("nograd"))
      for (const auto& r : p["nograd"]) nograd.insert(r.get<std::string>());
    const std::string pre = name + ".in.";
    Named inputs;
    for (const std::string& t : names)
      if (t.compare(0, pre.size(), pre) == 0) inputs[t.substr(pre.size())] = f.get(t);
    REQUIRE(!inputs.empty());
    for (DType dt : {DType::F64, DType::F32}) {
      CAPTURE(dtype_name(dt));
      CpuModeGuard mode(dt == DType::F64 ? CpuMode::REFERENCE : CpuMode::OPTIMIZED);
      Named xs;
      for (const auto& [role, t] : inputs) {
        Tensor x = is_floating(t.dtype()) ? t.to(dt).clone() : t;
        if (is_floating(t.dtype()) && !nograd.count(role)) x.requires_grad_();
        xs[role] = x;
      }
      Tensor out = run_fixture_op(op, xs, p);
      double tol_out = dt == DType::F64 ? 1e-12 : fixture_f32_tol(op);
      double tol = dt == DType::F64 ? 1e-9 : fixture_f32_tol(op);
      double eo = rel_error(out, f.get(name + ".out"));
      CHECK_MESSAGE(eo <= tol_out, "output: relative error ", eo);
      out.backward(f.get(name + ".gout").to(dt));
      for (const auto& [role, x] : xs) {
        if (!x.requires_grad()) continue;
        CAPTURE(role);
        Tensor want = f.get(name + ".grad." + role);
        if (!x.grad().defined()) {
          CHECK_MESSAGE(all_zero(want), "no gradient reached '", role, "' but torch's is nonzero");
          continue;
        }
        double e = rel_error(x.grad(), want);
        note(str("torch per-op fixtures | ", dt == DType::F64 ? "f64 reference" : "f32 optimized"), e);
        CHECK_MESSAGE(e <= tol, "gradient of '", role, "': relative error ", e);
      }
    }
    ++n_cases;
  }
  CHECK(n_cases >= 100);
}

namespace {
// Builds an HF CLIPEncoderLayer (width 32, 4 heads, mlp 64) from the fixture's parameters in `dt`.
struct LayerRun {
  Tensor out;
  NamedTensors params;
  Tensor x;
};
LayerRun run_clip_layer(const SafeTensorsFile& f, const std::string& tag, DType dt) {
  LayerRun r;
  for (const std::string& n : f.names())
    if (n.compare(0, 6, "param.") == 0) {
      Tensor p = f.get(n).to(dt).clone();
      p.requires_grad_();  // before the scope hands the tensor to the module
      r.params.emplace_back(n.substr(6), p);
    }
  clip::EncoderLayer layer;
  WeightScope scope = WeightScope::from_params(r.params);
  layer.load(scope, 32, 4, 64, Activation::QUICK_GELU, 1e-5, dt);
  scope.check_all_used();
  r.x = f.get(tag + ".x").to(dt).clone();
  r.x.requires_grad_();
  ops::AttentionOptions opt;
  opt.causal = tag == "causal";
  r.out = layer.forward(r.x, opt);
  r.out.backward(f.get(tag + ".gout").to(dt));
  return r;
}
}  // namespace

TEST_CASE("fixtures: HF CLIPEncoderLayer forward and every gradient (plain and causal)") {
  SafeTensorsFile f = open_fixture("clip_layer.safetensors");
  for (const std::string tag : {"plain", "causal"}) {
    for (DType dt : {DType::F32, DType::F64}) {
      CAPTURE(tag);
      CAPTURE(dtype_name(dt));
      // f32: the optimized CPU kernels; f64: the reference kernels (the fixture is torch f64 rounded to f32,
      // so 1e-6 there is the f32 rounding of the expected values).
      CpuModeGuard mode(dt == DType::F64 ? CpuMode::REFERENCE : CpuMode::OPTIMIZED);
      const double tol = dt == DType::F64 ? 1e-6 : 1e-5;
      LayerRun r = run_clip_layer(f, tag, dt);
      double floor = 0;  // 1e-2 × the largest gradient (self_attn.k_proj.bias's is 0 in exact arithmetic)
      for (const std::string& n : f.names())
        if (n.compare(0, tag.size() + 6, tag + ".grad.") == 0) floor = std::max(floor, 1e-2 * max_abs(f.get(n)));
      std::string key = str("HF CLIPEncoderLayer | ", dtype_name(dt), dt == DType::F64 ? " reference" : " optimized");
      double e = rel_error(r.out, f.get(tag + ".out"));
      note(key + " (output)", e);
      CHECK_MESSAGE(e <= tol, "output: ", e);
      e = rel_error(r.x.grad(), f.get(tag + ".grad.x"), floor);
      note(key, e);
      CHECK_MESSAGE(e <= tol, "grad x: ", e);
      for (const auto& [name, p] : r.params) {
        CAPTURE(name);
        REQUIRE(p.grad().defined());
        e = rel_error(p.grad(), f.get(tag + ".grad." + name), floor);
        note(key, e);
        CHECK_MESSAGE(e <= tol, "grad ", name, ": ", e);
      }
    }
  }
}

TEST_CASE("fixtures: tiny HF CLIPModel, InfoNCE loss, every parameter gradient incl. logit_scale") {
  SafeTensorsFile f = open_fixture("clip_model.safetensors");
  clip::ClipConfig cfg = clip::ClipConfig::from_hf(json::parse(f.metadata().at("config")));
  NamedTensors params;
  Tensor logit_scale;
  for (const std::string& n : f.names())
    if (n.compare(0, 6, "param.") == 0) {
      Tensor p = f.get(n).clone();
      p.requires_grad_();  // before building the model: the modules share these handles
      params.emplace_back(n.substr(6), p);
      if (n == "param.logit_scale") logit_scale = p;
    }
  REQUIRE(logit_scale.defined());
  clip::ClipModel model = clip::ClipModel::from_scope(WeightScope::from_params(params), cfg, Device::cpu(), DType::F32);

  Tensor img = model.image_features(f.get("pixels"));  // (4, 16)
  Tensor txt = model.text_features(f.get("input_ids"));
  CHECK(rel_error(img, f.get("image_embeds")) <= 1e-5);
  CHECK(rel_error(txt, f.get("text_embeds")) <= 1e-5);
  // CLIP's InfoNCE: logits = exp(logit_scale)·Î·T̂ᵀ; (CE(logits, arange) + CE(logitsᵀ, arange)) / 2
  Tensor logits = ops::mul(ops::matmul(ops::l2_normalize(img, -1), ops::l2_normalize(txt, -1), false, true),
                           ops::exp(logit_scale));
  Tensor labels = Tensor::arange(0, static_cast<double>(img.size(0)));
  Tensor loss = ops::div(ops::add(ops::cross_entropy(logits, labels), ops::cross_entropy(logits.t(), labels)), 2.0);
  double want_loss = f.get("loss").item();
  double loss_err = std::fabs(loss.item() - want_loss) / std::fabs(want_loss);
  note("tiny CLIPModel InfoNCE | loss (relative)", loss_err);
  CHECK(loss_err <= 1e-6);
  loss.backward();
  double floor = 0;  // 1e-2 × the largest gradient (every k_proj.bias gradient is 0 in exact arithmetic)
  for (const auto& [name, p] : params) floor = std::max(floor, 1e-2 * max_abs(f.get("grad." + name)));
  int n = 0;
  for (const auto& [name, p] : params) {
    CAPTURE(name);
    REQUIRE_MESSAGE(p.grad().defined(), "no gradient reached ", name);
    Tensor want = f.get("grad." + name);
    double e = rel_error(p.grad(), want, floor);
    note("tiny CLIPModel InfoNCE | f32 optimized, per parameter (floor 1e-2 max|grad|)", e);
    CHECK_MESSAGE(e <= 2e-5, name, ": relative error ", e);
    // max |diff| relative to the largest gradient of the whole model (100·floor ≥ max|want| of any parameter)
    double eg = rel_error(p.grad(), want, 100 * floor);
    note("tiny CLIPModel InfoNCE | f32 optimized, max|diff| / max|grad| of the model", eg);
    CHECK_MESSAGE(eg <= 1e-5, name, ": max |diff| / max |grad| of the model ", eg);
    ++n;
  }
  CHECK(n == static_cast<int>(f.names().size() - 5) / 2);  // every parameter of the file
}

TEST_CASE("summary: worst relative error per group (max|got - want| / max|want|)") {
  std::cout << "\nautograd: " << g_checked << " finite-difference cases; worst relative error per group\n";
  for (const auto& [k, v] : worst()) std::cout << "  " << k << ": " << v << "\n";
}

}  // TEST_SUITE
