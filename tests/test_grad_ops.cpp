// tests/test_grad_ops.cpp — the backward kernels of kernels/grad_ops.h (unary/clamp, softmax,
// layer_norm, conv2d backward and scatter_add), suite "grad_ops" (and "cuda" on a GPU machine).
//
//  (a) Every optimized CPU kernel against the reference kernel (CpuModeGuard), f32 / f16 / bf16, odd
//      sizes (1, 7, 33, 1000) and strided / transposed / broadcast inputs where the contract allows;
//      the dispatch counters prove the optimized kernels ran. The same cases run on CUDA in the
//      "cuda" suite. The worst error per op and dtype is printed.
//  (b) The reference kernels against central finite differences of the forward reference ops in f64
//      (h = 1e-6): every element of x (and of the weight) perturbed, L = Σ g · forward(x).
//  (c) scatter_add: duplicate indices accumulate, deterministically on the CPU.
//  (d) Error messages for bad shapes, dtypes, ranks and out-of-range indices.
//
// Tolerances, |got − ref| ≤ atol · max(1, max|ref|) + rtol · |ref| (tests/test_util.h), per op for
// f32; f16 and bf16 add one rounding of the storage type (2e-3, 1.6e-2), as tests/test_backend_ops.cpp:
//   unary / clamp backward, softmax backward, scatter_add   atol 1e-6, rtol 1e-5 (1000 sources into one
//                                                           element: atol 1e-5, rtol 1e-4, f32 sums)
//   layer_norm backward                                     atol 1e-5, rtol 1e-5 (dx; the parameter sums
//                                                           scale with sqrt(rows))
//   conv2d backward                                         atol 2e-7 · sqrt(reduction length) + 1e-6
// The optimized kernels compute in f32 with vectorized exp/tanh/erfc (cpu_math.h, ≤ 4 ulp), the
// reference in double, both round once into the output dtype.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <map>

#include <omp.h>

#include "kernels/grad_ops.h"
#include "tests/test_util.h"

using namespace vislang;
using test::Tol;

namespace {

using test::for_dtype;
using test::ids;
using test::kFloatTypes;
using test::rnd;



std::string dn(DType t) { return dtype_name(t); }

// ---- (a) the cases ----------------------------------------------------------------------------------------

using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
struct GradCase {
  std::string name;
  Op op;  // the backward op the case exercises (for the dispatch counters and the error table)
  DType dtype;
  std::vector<Tensor> inputs;  // contiguous, CPU
  Fn run;                      // applies its views, calls grad_ops
  Tol tol;
};

std::vector<GradCase> grad_cases() {
  std::vector<GradCase> cs;
  uint64_t seed = 7001;
  for (DType t : kFloatTypes) {
    auto add = [&](std::string name, Op op, std::vector<Tensor> in, Fn fn, Tol tol) {
      cs.push_back({name + " " + dn(t), op, t, std::move(in), std::move(fn), for_dtype(tol, t)});
    };
    const Tol ew{1e-6, 1e-5};
    // ---- unary / clamp ---------------------------------------------------------------------------
    for (int64_t k = 0; k < static_cast<int64_t>(UnaryKind::COUNT); ++k) {
      const auto uk = static_cast<UnaryKind>(k);
      const bool positive = uk == UnaryKind::LOG || uk == UnaryKind::SQRT || uk == UnaryKind::RSQRT ||
                            uk == UnaryKind::RECIPROCAL;
      const double lo = positive ? 0.2 : -6.0, hi = positive ? 8.0 : 6.0;
      const std::string nm = str("unary_backward ", unary_name(uk));
      for (const Shape& s : std::vector<Shape>{{1}, {7}, {33}, {1000}, {7, 33}})
        add(str(nm, " ", shape_str(s)), Op::UNARY_BACKWARD, {rnd(s, t, seed++, lo, hi), rnd(s, t, seed++)},
            [uk](auto& in) { return std::vector<Tensor>{ops::unary_backward(uk, in[0], in[1])}; }, ew);
      add(nm + " x strided (40,66)[::2, 1::3], grad transposed", Op::UNARY_BACKWARD,
          {rnd({40, 66}, t, seed++, lo, hi), rnd({22, 20}, t, seed++)}, [uk](auto& in) {
            return std::vector<Tensor>{ops::unary_backward(uk, in[0].slice(0, 0, 40, 2).slice(1, 1, 66, 3), in[1].t())};
          },
          ew);
      add(nm + " grad broadcast (1,33)->(7,33)", Op::UNARY_BACKWARD, {rnd({7, 33}, t, seed++, lo, hi), rnd({1, 33}, t, seed++)},
          [uk](auto& in) { return std::vector<Tensor>{ops::unary_backward(uk, in[0], in[1].expand({7, 33}))}; }, ew);
    }
    {
      // x includes the bounds themselves (the gradient passes at x == lo and x == hi)
      Tensor x = rnd({1000}, t, seed++);
      x.narrow(0, 0, 10).fill_(-0.5);
      x.narrow(0, 10, 10).fill_(0.75);
      add("clamp_backward [-0.5, 0.75] (1000,)", Op::UNARY_BACKWARD, {x, rnd({1000}, t, seed++)},
          [](auto& in) { return std::vector<Tensor>{ops::clamp_backward(in[0], in[1], -0.5, 0.75)}; }, ew);
      add("clamp_backward lo only, transposed (33,7)^T", Op::UNARY_BACKWARD, {rnd({33, 7}, t, seed++), rnd({7, 33}, t, seed++)},
          [](auto& in) { return std::vector<Tensor>{ops::clamp_backward(in[0].t(), in[1], 0.1, std::nullopt)}; }, ew);
      add("clamp_backward hi only (7,)", Op::UNARY_BACKWARD, {rnd({7}, t, seed++), rnd({7}, t, seed++)},
          [](auto& in) { return std::vector<Tensor>{ops::clamp_backward(in[0], in[1], std::nullopt, 0.3)}; }, ew);
    }
    // ---- softmax / log_softmax: y is the forward output (reference, f32), then cast --------------------
    for (bool lg : {false, true}) {
      struct SC { Shape s; int64_t dim; bool transposed; };
      for (const SC& sc : std::vector<SC>{{{7, 1000}, 1, false}, {{5, 33, 7}, 1, false}, {{1}, 0, false},
                                          {{33, 7}, 0, false}, {{7, 33}, -1, false}, {{33, 7}, -1, true},
                                          {{3, 1000, 2}, 1, false}}) {
        Tensor x = rnd(sc.s, DType::F32, seed++, -4, 4);
        Tensor y;
        {
          CpuModeGuard g(CpuMode::REFERENCE);
          const Tensor xv = sc.transposed ? x.t() : x;
          y = (lg ? ops::log_softmax(xv, sc.dim) : ops::softmax(xv, sc.dim)).contiguous();
        }
        if (sc.transposed) y = y.t().contiguous();  // stored transposed, passed as a view
        const int64_t dim = sc.dim;
        const bool tr = sc.transposed;
        add(str(lg ? "log_softmax_backward " : "softmax_backward ", shape_str(sc.s), " dim ", dim, tr ? " (y, g transposed)" : ""),
            Op::SOFTMAX_BACKWARD, {y.to(t), rnd(sc.s, t, seed++)}, [dim, lg, tr](auto& in) {
              const Tensor yv = tr ? in[0].t() : in[0], gv = tr ? in[1].t() : in[1];
              return std::vector<Tensor>{ops::softmax_backward(yv, gv, dim, lg)};
            },
            ew);
      }
    }
    // ---- layer_norm ---------------------------------------------------------------------------------
    for (int64_t C : {1, 7, 33, 768})
      for (int64_t rows : {9, 1000}) {
        const Tol tol{1e-5 * std::sqrt(double(rows) / 9.0), 1e-5};
        add(str("layer_norm_backward (", rows, ",", C, ") affine"), Op::LAYER_NORM_BACKWARD,
            {rnd({rows, C}, t, seed++, -3, 5), rnd({C}, t, seed++), rnd({rows, C}, t, seed++)}, [](auto& in) {
              auto r = ops::layer_norm_backward(in[0], in[1], in[2], 1e-5);
              return std::vector<Tensor>{r.dx, r.dweight, r.dbias};
            },
            tol);
      }
    add("layer_norm_backward (2,3,33) no affine", Op::LAYER_NORM_BACKWARD,
        {rnd({2, 3, 33}, t, seed++, -3, 5), rnd({2, 3, 33}, t, seed++)},
        [](auto& in) { return std::vector<Tensor>{ops::layer_norm_backward(in[0], Tensor(), in[1], 1e-5).dx}; },
        {1e-5, 1e-5});
    add("layer_norm_backward x transposed (33,7)^T", Op::LAYER_NORM_BACKWARD,
        {rnd({33, 7}, t, seed++), rnd({33}, t, seed++), rnd({7, 33}, t, seed++)}, [](auto& in) {
          auto r = ops::layer_norm_backward(in[0].t(), in[1], in[2], 1e-5);
          return std::vector<Tensor>{r.dx, r.dweight, r.dbias};
        },
        {1e-5, 1e-5});
    // ---- conv2d -----------------------------------------------------------------------------------
    struct CV { Shape x, w; ops::Conv2dOptions o; };
    const CV cvs[] = {{{1, 3, 8, 8}, {4, 3, 3, 3}, {}},
                      {{2, 3, 32, 32}, {8, 3, 16, 16}, {16, 16, 0, 0, 1, 1}},  // patch embedding
                      {{2, 3, 10, 10}, {6, 3, 3, 2}, {3, 2, 0, 0, 1, 1}},      // patches, uncovered border
                      {{2, 5, 13, 11}, {7, 5, 3, 3}, {2, 1, 1, 2, 1, 1}},
                      {{1, 4, 15, 15}, {3, 4, 3, 3}, {1, 1, 2, 2, 2, 2}},
                      {{3, 6, 7, 9}, {5, 6, 1, 1}, {}},                          // pointwise
                      {{1, 1, 1, 1}, {1, 1, 1, 1}, {}}};
    for (const CV& c : cvs) {
      const auto o = c.o;
      const int64_t Ho = (c.x[2] + 2 * o.pad_h - o.dil_h * (c.w[2] - 1) - 1) / o.stride_h + 1;
      const int64_t Wo = (c.x[3] + 2 * o.pad_w - o.dil_w * (c.w[3] - 1) - 1) / o.stride_w + 1;
      const double k_dw = double(c.x[0] * Ho * Wo), k_dx = double(c.w[0] * c.w[2] * c.w[3]);
      const Tol tol{std::sqrt(std::max(k_dw, k_dx)) * 2e-7 + 1e-6, 1e-5};
      add(str("conv2d_backward x", shape_str(c.x), " w", shape_str(c.w), " s", o.stride_h, ",", o.stride_w, " p",
              o.pad_h, ",", o.pad_w, " d", o.dil_h, ",", o.dil_w),
          Op::CONV2D_BACKWARD,
          {rnd(c.x, t, seed++), rnd(c.w, t, seed++, -0.5, 0.5), rnd({c.x[0], c.w[0], Ho, Wo}, t, seed++)},
          [o](auto& in) {
            auto r = ops::conv2d_backward(in[0], in[1], in[2], o);
            return std::vector<Tensor>{r.dx, r.dw};
          },
          tol);
    }
    add("conv2d_backward dw only, x transposed view", Op::CONV2D_BACKWARD,
        {rnd({2, 3, 9, 8}, t, seed++), rnd({4, 3, 3, 3}, t, seed++), rnd({2, 4, 6, 7}, t, seed++)}, [](auto& in) {
          auto r = ops::conv2d_backward(in[0].transpose(2, 3), in[1], in[2], {}, false, true);
          return std::vector<Tensor>{r.dw};
        },
        {std::sqrt(84.0) * 2e-7 + 1e-6, 1e-5});
    // ---- scatter_add --------------------------------------------------------------------------------
    add("scatter_add dim0 (10,33) <- (7,33), embedding-like", Op::SCATTER_ADD,
        {ids({7, 33}, 10, seed++), rnd({7, 33}, t, seed++)},
        [](auto& in) { return std::vector<Tensor>{ops::scatter_add({10, 33}, 0, in[0], in[1])}; }, ew);
    add("scatter_add dim-1 (7,33) <- (7,5) i32", Op::SCATTER_ADD, {ids({7, 5}, 33, seed++, DType::I32), rnd({7, 5}, t, seed++)},
        [](auto& in) { return std::vector<Tensor>{ops::scatter_add({7, 33}, -1, in[0], in[1])}; }, ew);
    add("scatter_add dim1 (4,9,6) <- (3,12,5)", Op::SCATTER_ADD, {ids({3, 12, 5}, 9, seed++), rnd({3, 12, 5}, t, seed++)},
        [](auto& in) { return std::vector<Tensor>{ops::scatter_add({4, 9, 6}, 1, in[0], in[1])}; }, ew);
    add("scatter_add (1,) <- (1000,)", Op::SCATTER_ADD, {ids({1000}, 1, seed++), rnd({1000}, t, seed++)},
        [](auto& in) { return std::vector<Tensor>{ops::scatter_add({1}, 0, in[0], in[1])}; }, {1e-5, 1e-4});
    add("scatter_add dim0 (33,1000) <- (1000,1000) src transposed", Op::SCATTER_ADD,
        {ids({1000, 1000}, 33, seed++), rnd({1000, 1000}, t, seed++)},
        [](auto& in) { return std::vector<Tensor>{ops::scatter_add({33, 1000}, 0, in[0], in[1].t())}; }, {1e-6, 1e-5});
  }
  return cs;
}

// Worst error per (op, dtype): the largest |got - ref| and the largest ratio to the bound.
struct Worst { double abs = 0, ratio = 0; };

void run_cases(Device dev) {
  std::map<std::string, Worst> worst;
  int failed = 0, ran = 0;
  dispatch_counts() = DispatchCounts{};
  for (const GradCase& c : grad_cases()) {
    std::vector<Tensor> ref, got;
    std::string why;
    try {
      {
        CpuModeGuard g(CpuMode::REFERENCE);
        ref = c.run(c.inputs);
      }
      if (dev.is_cpu()) {
        CpuModeGuard g(CpuMode::OPTIMIZED);
        got = c.run(c.inputs);
      } else {
        std::vector<Tensor> din;
        for (const Tensor& t : c.inputs) din.push_back(t.to(dev));
        got = c.run(din);
        for (Tensor& t : got) t = t.to(Device::cpu());
      }
      REQUIRE(got.size() == ref.size());
      for (size_t k = 0; k < got.size(); ++k) {
        if (got[k].dtype() != ref[k].dtype() || got[k].dtype() != c.dtype) {
          why = str("output ", k, " has dtype ", dn(got[k].dtype()));
          break;
        }
        auto r = test::compare(got[k], ref[k], c.tol);
        Worst& w = worst[str(op_name(c.op), " ", dn(c.dtype))];
        std::vector<double> a = got[k].to_vector<double>(), b = ref[k].to_vector<double>();
        for (size_t i = 0; i < a.size(); ++i)
          if (std::isfinite(a[i]) && std::isfinite(b[i])) w.abs = std::max(w.abs, std::fabs(a[i] - b[i]));
        w.ratio = std::max(w.ratio, r.worst);
        if (!r.ok) {
          why = str("output ", k, ": ", r.message);
          break;
        }
      }
    } catch (const std::exception& e) {
      why = std::string("threw: ") + e.what();
    }
    ++ran;
    if (!why.empty()) {
      ++failed;
      FAIL_CHECK(c.name << " on " << dev.name() << ": " << why);
    }
  }
  std::string table;
  for (const auto& [k, w] : worst) table += str("\n  ", k, ": max |diff| ", w.abs, ", worst diff/bound ", w.ratio);
  MESSAGE(ran << " grad cases on " << dev.name() << ", " << failed << " failed; worst errors vs the reference:" << table);
  const int backend = static_cast<int>(dev.is_cpu() ? BackendId::CPU : BackendId::CUDA);
  for (Op op : {Op::UNARY_BACKWARD, Op::SOFTMAX_BACKWARD, Op::LAYER_NORM_BACKWARD, Op::CONV2D_BACKWARD, Op::SCATTER_ADD})
    CHECK_MESSAGE(dispatch_counts().n[backend][static_cast<int>(op)] > 0,
                  op_name(op) << " never ran on the backend under test");
}

// ---- (b) finite differences ----------------------------------------------------------------------------------

constexpr double kH = 1e-6;

// Σ g · y over all elements (host, double)
double dot(const Tensor& g, const Tensor& y) {
  std::vector<double> a = g.to_vector<double>(), b = y.to_vector<double>();
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// x + d for every element, built on the host (FILL / SCALAR carry their value as a float, which
// would round the step h).
Tensor shifted(const Tensor& x, double d) {
  std::vector<double> v = x.to_vector<double>();
  for (double& e : v) e += d;
  return Tensor::from_vector(v, x.shape());
}

// g · (f(x + h) - f(x - h)) / 2h for an elementwise f, every element at once.
Tensor central_difference(const Tensor& x, const Tensor& g, const std::function<Tensor(const Tensor&)>& f) {
  std::vector<double> up = f(shifted(x, kH)).to_vector<double>(), down = f(shifted(x, -kH)).to_vector<double>();
  std::vector<double> gv = g.to_vector<double>(), out(up.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = gv[i] * (up[i] - down[i]) / (2 * kH);
  return Tensor::from_vector(out, x.shape());
}

// The gradient of L(p) = Σ g · f(p) with respect to every element of p, by central differences.
Tensor numeric_grad(const Tensor& p, const Tensor& g, const std::function<Tensor(const Tensor&)>& f) {
  std::vector<double> v = p.to_vector<double>(), out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const double keep = v[i];
    v[i] = keep + kH;
    const double up = dot(g, f(Tensor::from_vector(v, p.shape())));
    v[i] = keep - kH;
    const double down = dot(g, f(Tensor::from_vector(v, p.shape())));
    v[i] = keep;
    out[i] = (up - down) / (2 * kH);
  }
  return Tensor::from_vector(out, p.shape());
}

void check_close(const Tensor& analytic, const Tensor& numeric, Tol tol, const std::string& what) {
  auto r = test::compare(analytic, numeric, tol);
  CHECK_MESSAGE(r.ok, what << ": " << r.message);
}

// ---- (d) helpers -------------------------------------------------------------------------------------------
void check_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  const std::string msg = test::error_of(fn);
  for (const std::string& p : parts) CHECK_MESSAGE(test::contains(msg, p), "'" << msg << "' lacks '" << p << "'");
}

}  // namespace

TEST_SUITE("grad_ops") {
  TEST_CASE("optimized CPU backward kernels match the reference kernels") { run_cases(Device::cpu()); }

  TEST_CASE("unary and clamp backward match finite differences of the forward ops (f64)") {
    CpuModeGuard ref(CpuMode::REFERENCE);
    uint64_t seed = 11;
    for (int64_t k = 0; k < static_cast<int64_t>(UnaryKind::COUNT); ++k) {
      const auto uk = static_cast<UnaryKind>(k);
      const bool positive = uk == UnaryKind::LOG || uk == UnaryKind::SQRT || uk == UnaryKind::RSQRT ||
                            uk == UnaryKind::RECIPROCAL;
      // Away from the kinks of relu / abs (|x| >= 0.05): the central difference straddles nothing.
      std::vector<double> xv = rnd({200}, DType::F64, seed++, positive ? 0.2 : 0.05, positive ? 6.0 : 5.0).to_vector<double>();
      if (!positive)
        for (size_t i = 0; i < xv.size(); i += 2) xv[i] = -xv[i];  // both signs
      Tensor x = Tensor::from_vector(xv, {200});
      Tensor g = rnd({200}, DType::F64, seed++);
      Tensor analytic = ops::unary_backward(uk, x, g);
      Tensor numeric = central_difference(x, g, [uk](const Tensor& p) { return ops::unary(uk, p); });
      check_close(analytic, numeric, {1e-6, 1e-6}, str("unary_backward ", unary_name(uk)));
    }
    Tensor x = rnd({300}, DType::F64, seed++, -2, 2), g = rnd({300}, DType::F64, seed++);
    std::vector<double> xv = x.to_vector<double>();
    for (double& v : xv)
      if (std::fabs(v + 0.5) < 1e-3 || std::fabs(v - 0.75) < 1e-3) v += 0.01;  // not within h of a bound
    x = Tensor::from_vector(xv, {300});
    Tensor numeric = central_difference(x, g, [](const Tensor& p) { return ops::clamp(p, -0.5, 0.75); });
    check_close(ops::clamp_backward(x, g, -0.5, 0.75), numeric, {1e-6, 1e-6}, "clamp_backward");
  }

  TEST_CASE("softmax and log_softmax backward match finite differences (f64, dim 0 and last)") {
    CpuModeGuard ref(CpuMode::REFERENCE);
    uint64_t seed = 21;
    for (bool lg : {false, true})
      for (auto [shape, dim] : std::vector<std::pair<Shape, int64_t>>{{{4, 5}, 0}, {{4, 5}, -1}, {{2, 3, 4}, 1}, {{6}, 0}}) {
        Tensor x = rnd(shape, DType::F64, seed++, -3, 3), g = rnd(shape, DType::F64, seed++);
        const int64_t d = dim;
        auto f = [lg, d](const Tensor& p) { return lg ? ops::log_softmax(p, d) : ops::softmax(p, d); };
        Tensor analytic = ops::softmax_backward(f(x), g, dim, lg);
        check_close(analytic, numeric_grad(x, g, f), {1e-6, 1e-6},
                    str(lg ? "log_softmax" : "softmax", " ", shape_str(shape), " dim ", dim));
      }
  }

  TEST_CASE("layer_norm backward matches finite differences for x, weight and bias (f64)") {
    CpuModeGuard ref(CpuMode::REFERENCE);
    uint64_t seed = 31;
    for (const Shape& s : std::vector<Shape>{{3, 7}, {2, 3, 5}, {4, 1}}) {
      const int64_t C = s.back();
      Tensor x = rnd(s, DType::F64, seed++, -2, 3), w = rnd({C}, DType::F64, seed++), b = rnd({C}, DType::F64, seed++);
      Tensor g = rnd(s, DType::F64, seed++);
      const double eps = 1e-5;
      auto r = ops::layer_norm_backward(x, w, g, eps);
      const std::string what = str("layer_norm ", shape_str(s));
      check_close(r.dx, numeric_grad(x, g, [&](const Tensor& p) { return ops::layer_norm(p, w, b, eps); }), {1e-6, 1e-6},
                  what + " dx");
      check_close(r.dweight, numeric_grad(w, g, [&](const Tensor& p) { return ops::layer_norm(x, p, b, eps); }),
                  {1e-6, 1e-6}, what + " dweight");
      check_close(r.dbias, numeric_grad(b, g, [&](const Tensor& p) { return ops::layer_norm(x, w, p, eps); }),
                  {1e-6, 1e-6}, what + " dbias");
      Tensor dx_plain = ops::layer_norm_backward(x, Tensor(), g, eps).dx;
      check_close(dx_plain,
                  numeric_grad(x, g, [&](const Tensor& p) { return ops::layer_norm(p, Tensor(), Tensor(), eps); }),
                  {1e-6, 1e-6}, what + " dx without affine");
    }
  }

  TEST_CASE("conv2d backward matches finite differences for x and weight (f64, stride/padding/dilation)") {
    CpuModeGuard ref(CpuMode::REFERENCE);
    uint64_t seed = 41;
    struct CV { Shape x, w; ops::Conv2dOptions o; };
    for (const CV& c : std::vector<CV>{{{2, 2, 5, 6}, {3, 2, 3, 2}, {}},
                                       {{1, 2, 7, 6}, {2, 2, 3, 3}, {2, 1, 1, 0, 1, 1}},
                                       {{1, 3, 7, 8}, {2, 3, 2, 3}, {1, 2, 1, 2, 2, 1}},
                                       {{2, 2, 6, 6}, {3, 2, 2, 2}, {2, 2, 0, 0, 1, 1}},
                                       {{1, 2, 9, 9}, {2, 2, 3, 3}, {3, 2, 2, 1, 2, 3}}}) {
      Tensor x = rnd(c.x, DType::F64, seed++), w = rnd(c.w, DType::F64, seed++);
      Tensor y = ops::conv2d(x, w, Tensor(), c.o);
      Tensor g = rnd(y.shape(), DType::F64, seed++);
      auto r = ops::conv2d_backward(x, w, g, c.o);
      const auto o = c.o;
      const std::string what = str("conv2d x", shape_str(c.x), " w", shape_str(c.w), " s", o.stride_h, ",", o.stride_w,
                                   " p", o.pad_h, ",", o.pad_w, " d", o.dil_h, ",", o.dil_w);
      check_close(r.dx, numeric_grad(x, g, [&](const Tensor& p) { return ops::conv2d(p, w, Tensor(), o); }),
                  {1e-6, 1e-6}, what + " dx");
      check_close(r.dw, numeric_grad(w, g, [&](const Tensor& p) { return ops::conv2d(x, p, Tensor(), o); }),
                  {1e-6, 1e-6}, what + " dw");
    }
  }

  TEST_CASE("scatter_add accumulates duplicate indices, deterministically on the CPU") {
    Tensor idx = Tensor::from_vector(std::vector<int64_t>{0, 2, 0, 0, 1}, {5});
    Tensor src = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5}, {5});
    for (CpuMode m : {CpuMode::REFERENCE, CpuMode::OPTIMIZED})
      for (DType t : kFloatTypes) {
        CpuModeGuard g(m);
        CHECK(ops::scatter_add({3}, 0, idx, src.to(t)).to_vector<double>() == std::vector<double>{8, 5, 2});
      }
    // 2-D along dim 1, duplicates within a row; out has more rows than src.
    Tensor idx2 = Tensor::from_vector(std::vector<int64_t>{1, 1, 3, 0, 0, 0}, {2, 3});
    Tensor src2 = Tensor::from_vector(std::vector<float>{1, 2, 4, 8, 16, 32}, {2, 3});
    const std::vector<double> want{0, 3, 0, 4, 56, 0, 0, 0, 0, 0, 0, 0};
    for (CpuMode m : {CpuMode::REFERENCE, CpuMode::OPTIMIZED}) {
      CpuModeGuard g(m);
      CHECK(ops::scatter_add({3, 4}, 1, idx2, src2).to_vector<double>() == want);
    }
    // Many duplicates: bit-identical over repeated runs (and thread counts), close to the reference.
    Tensor many_idx = ids({200000, 3}, 5, 99), many_src = rnd({200000, 3}, DType::F32, 98);
    Tensor a, b, c, ref;
    {
      CpuModeGuard g(CpuMode::OPTIMIZED);
      a = ops::scatter_add({5, 3}, 0, many_idx, many_src);
      b = ops::scatter_add({5, 3}, 0, many_idx, many_src);
      const int threads = omp_get_max_threads();
      omp_set_num_threads(1);
      c = ops::scatter_add({5, 3}, 0, many_idx, many_src);
      omp_set_num_threads(threads);
    }
    {
      CpuModeGuard g(CpuMode::REFERENCE);
      ref = ops::scatter_add({5, 3}, 0, many_idx, many_src);
    }
    CHECK(a.to_vector<float>() == b.to_vector<float>());
    CHECK(a.to_vector<float>() == c.to_vector<float>());
    auto r = test::compare(a, ref, {1e-6, 1e-4});  // 40,000 f32 additions per element
    CHECK_MESSAGE(r.ok, r.message);
  }

  TEST_CASE("empty inputs give empty or zero gradients") {
    Tensor x = Tensor::zeros({0, 3, 4, 4}), w = rnd({2, 3, 3, 3}, DType::F32, 5), g = Tensor::zeros({0, 2, 2, 2});
    auto r = ops::conv2d_backward(x, w, g, {});
    CHECK(r.dx.shape() == Shape{0, 3, 4, 4});
    CHECK(r.dw.to_vector<float>() == std::vector<float>(54, 0.0f));
    auto ln = ops::layer_norm_backward(Tensor::zeros({0, 5}), Tensor::ones({5}), Tensor::zeros({0, 5}), 1e-5);
    CHECK(ln.dweight.to_vector<float>() == std::vector<float>(5, 0.0f));
    CHECK(ops::scatter_add({4}, 0, Tensor::zeros({0}, DType::I64), Tensor::zeros({0})).to_vector<float>() ==
          std::vector<float>(4, 0.0f));
  }

  TEST_CASE("backward ops reject bad shapes, dtypes and indices with messages that show the tensors") {
    Tensor x = rnd({2, 3}, DType::F32, 1), g = rnd({2, 3}, DType::F32, 2);
    check_error([&] { ops::unary_backward(UnaryKind::EXP, x, rnd({3, 2}, DType::F32, 3)); },
                {"unary_backward (exp)", "grad f32 (3, 2)", "shape of x f32 (2, 3)"});
    check_error([&] { ops::unary_backward(UnaryKind::TANH, x, g.to(DType::F16)); }, {"unary_backward (tanh)", "dtypes differ"});
    check_error([&] { ops::unary_backward(UnaryKind::RELU, Tensor::zeros({2, 3}, DType::I64), g); },
                {"x must be a floating tensor", "i64 (2, 3)"});
    check_error([&] { ops::clamp_backward(x, g, 1.0, 0.0); }, {"clamp_backward: min 1 > max 0"});
    check_error([&] { ops::softmax_backward(x, rnd({2, 4}, DType::F32, 4), 1); },
                {"softmax_backward", "grad f32 (2, 4)", "y f32 (2, 3)"});
    check_error([&] { ops::softmax_backward(x, g, 2, true); }, {"log_softmax_backward", "dim 2 out of range"});
    check_error([&] { ops::layer_norm_backward(x, rnd({4}, DType::F32, 5), g, 1e-5); },
                {"layer_norm_backward: weight must have shape (3,)", "f32 (4,)"});
    Tensor cx = rnd({1, 2, 5, 5}, DType::F32, 6), cw = rnd({3, 2, 3, 3}, DType::F32, 7);
    check_error([&] { ops::conv2d_backward(cx, cw, rnd({1, 3, 4, 3}, DType::F32, 8), {}); },
                {"conv2d_backward: grad f32 (1, 3, 4, 3)", "output shape (1, 3, 3, 3)"});
    check_error([&] { ops::conv2d_backward(cx, rnd({3, 4, 3, 3}, DType::F32, 9), rnd({1, 3, 3, 3}, DType::F32, 10), {}); },
                {"expects 4 input channels"});
    Tensor src = rnd({2, 3}, DType::F32, 11);
    check_error([&] { ops::scatter_add({4, 3}, 0, Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 0}, {2, 3}), src); },
                {"scatter_add: index value 4 at flat position 4 is out of range [0, 4)"});
    check_error([&] { ops::scatter_add({4, 3}, 0, Tensor::from_vector(std::vector<int64_t>{0, -1, 2, 3, 1, 0}, {2, 3}), src); },
                {"index value -1"});
    check_error([&] { ops::scatter_add({4, 3}, 0, src, src); }, {"scatter_add: index must be i32 or i64", "f32 (2, 3)"});
    check_error([&] { ops::scatter_add({4, 3}, 0, ids({3, 2}, 4, 12), src); },
                {"src f32 (2, 3)", "shape of index i64 (3, 2)"});
    check_error([&] { ops::scatter_add({4, 2}, 0, ids({2, 3}, 4, 13), src); },
                {"larger than the output (4, 2) at dim 1"});
    check_error([&] { ops::scatter_add({4}, 0, ids({2, 3}, 4, 14), src); }, {"must have the rank of the output (4,)"});
    check_error([&] { ops::scatter_add({4, 3}, 2, ids({2, 3}, 4, 15), src); }, {"dim 2 out of range"});
  }
}

TEST_SUITE("cuda") {
  TEST_CASE("CUDA backward kernels match the reference kernels") {
    REQUIRE(cuda_device_count() > 0);
    run_cases(Device::cuda(0));
  }
}
