// tests/test_backend_ops.cpp — the backend-ops harness (after ggml's test-backend-ops).
//
// Every op × dtype × several shapes (sizes 1, 7, 33, 1000 and non-contiguous views) is a small case:
// a function of contiguous base inputs that applies its own views and calls the public op. The
// harness runs the case with the reference kernels (CpuMode::REFERENCE, double-precision plain loops)
// and compares, element by element after a NaN/Inf check:
//   suite "ops":  the optimized CPU kernels  vs the reference, on every run;
//   suite "cuda": the CUDA kernels           vs the reference, when a GPU is present (else skipped).
// Tolerances are per op family and per dtype (kTol below): the reference rounds once from double,
// the optimized kernels accumulate in f32, so the bounds allow f32 accumulation error (scaled by
// sqrt of the reduction length for products) plus one rounding step of the storage dtype.
#include <doctest/doctest.h>

#include <functional>
#include <iostream>

#include "kernels/grad_ops.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

using namespace vislang;
using test::Tol;

namespace {

using test::for_dtype;
using test::ids;
using test::kFloatTypes;
using test::rnd;

struct OpCase {
  std::string name;
  std::vector<Tensor> inputs;                                       // contiguous, CPU
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> run;  // applies views, calls ops
  Tol tol;
};


std::string dn(DType t) { return dtype_name(t); }

using Fn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
Fn one(std::function<Tensor(const std::vector<Tensor>&)> f) {
  return [f](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in)}; };
}

std::vector<OpCase> all_cases() {
  std::vector<OpCase> cs;
  uint64_t seed = 1;
  auto add = [&](std::string name, std::vector<Tensor> in, Fn fn, Tol tol) {
    cs.push_back({std::move(name), std::move(in), std::move(fn), tol});
  };
  const Shape vec_shapes[] = {{1}, {7}, {33}, {1000}, {7, 33}, {3, 1, 5}};

  for (DType t : kFloatTypes) {
    // ---- copy / cast -----------------------------------------------------------------------
    for (DType to : {DType::F32, DType::F16, DType::BF16, DType::I32})
      add("cast " + dn(t) + "->" + dn(to) + " (33,7)^T", {rnd({33, 7}, t, seed++, -50, 50)},
          one([to](auto& in) { return in[0].t().to(to); }), {0, 0});
    add("contiguous " + dn(t) + " permute(2,0,1) slice step 2", {rnd({5, 8, 9}, t, seed++)},
        one([](auto& in) { return in[0].permute({2, 0, 1}).slice(1, 1, 5, 2).contiguous(); }), {0, 0});
    add("fill " + dn(t) + " strided view (9,33)[1::2, ::3]", {rnd({9, 33}, t, seed++)},
        one([](auto& in) {
          Tensor x = in[0].clone();
          x.slice(0, 1, 9, 2).slice(1, 0, 33, 3).fill_(-1.5);
          return x;
        }),
        {0, 0});
    add("concat " + dn(t) + " dim1", {rnd({3, 4, 5}, t, seed++), rnd({3, 2, 5}, t, seed++)},
        one([](auto& in) { return ops::concat({in[0], in[1]}, 1); }), {0, 0});
    add("stack " + dn(t) + " dim0 of transposed", {rnd({4, 6}, t, seed++), rnd({4, 6}, t, seed++)},
        one([](auto& in) { return ops::stack({in[0].t(), in[1].t()}, 0); }), {0, 0});

    // ---- binary with broadcasting and views --------------------------------------------------
    for (int64_t k = 0; k < static_cast<int64_t>(BinaryKind::COUNT); ++k) {
      auto bk = static_cast<BinaryKind>(k);
      double lo = bk == BinaryKind::POW ? 0.1 : -2.0;
      Tol tol = for_dtype({1e-6, 1e-6}, t);
      for (const Shape& s : vec_shapes)
        add(str(binary_name(bk), " ", dn(t), " ", shape_str(s)), {rnd(s, t, seed++, lo), rnd(s, t, seed++, 0.5, 2)},
            one([bk](auto& in) { return ops::binary(bk, in[0], in[1]); }), tol);
      add(str(binary_name(bk), " ", dn(t), " broadcast (7,1,33)x(5,1)"),
          {rnd({7, 1, 33}, t, seed++, lo), rnd({5, 1}, t, seed++, 0.5, 2)},
          one([bk](auto& in) { return ops::binary(bk, in[0], in[1]); }), tol);
      add(str(binary_name(bk), " ", dn(t), " transposed (33,7)^T x (7,33)"),
          {rnd({33, 7}, t, seed++, lo), rnd({7, 33}, t, seed++, 0.5, 2)},
          one([bk](auto& in) { return ops::binary(bk, in[0].t(), in[1]); }), tol);
      add(str(binary_name(bk), " scalar ", dn(t), " (7,33)"), {rnd({7, 33}, t, seed++, lo)},
          one([bk](auto& in) { return ops::scalar(bk, in[0], 1.75); }), tol);
      add(str(binary_name(bk), " rscalar ", dn(t), " (1000,)"), {rnd({1000}, t, seed++, 0.5, 2)},
          one([bk](auto& in) { return ops::scalar(bk, in[0], 1.25, true); }), tol);
    }
    // ---- unary ------------------------------------------------------------------------------
    for (int64_t k = 0; k < static_cast<int64_t>(UnaryKind::COUNT); ++k) {
      auto uk = static_cast<UnaryKind>(k);
      bool positive = uk == UnaryKind::LOG || uk == UnaryKind::SQRT || uk == UnaryKind::RSQRT ||
                      uk == UnaryKind::RECIPROCAL;
      double lo = positive ? 0.05 : -6.0, hi = positive ? 8.0 : 6.0;
      Tol tol = for_dtype({1e-6, 4e-6}, t);
      for (const Shape& s : vec_shapes)
        add(str(unary_name(uk), " ", dn(t), " ", shape_str(s)), {rnd(s, t, seed++, lo, hi)},
            one([uk](auto& in) { return ops::unary(uk, in[0]); }), tol);
      add(str(unary_name(uk), " ", dn(t), " strided (40,66)[::2, 1::3]"), {rnd({40, 66}, t, seed++, lo, hi)},
          one([uk](auto& in) { return ops::unary(uk, in[0].slice(0, 0, 40, 2).slice(1, 1, 66, 3)); }), tol);
    }
    add("clamp " + dn(t) + " (33,7)", {rnd({33, 7}, t, seed++)},
        one([](auto& in) { return ops::clamp(in[0], -0.5, 0.75); }), {0, 0});
    add("clamp lo only " + dn(t) + " (1000,)", {rnd({1000}, t, seed++)},
        one([](auto& in) { return ops::clamp(in[0], 0.1, std::nullopt); }), {0, 0});
    add("where " + dn(t) + " broadcast", {ids({7, 1}, 2, seed++, DType::U8), rnd({7, 33}, t, seed++), rnd({33}, t, seed++)},
        one([](auto& in) { return ops::where(in[0], in[1], in[2]); }),
        {0, 0});

    // ---- reductions -------------------------------------------------------------------------
    for (int64_t k = 0; k < static_cast<int64_t>(ReduceKind::COUNT); ++k) {
      auto rk = static_cast<ReduceKind>(k);
      Tol tol = for_dtype({1e-6, 1e-5}, t);
      add(str(reduce_name(rk), " ", dn(t), " (1000,) dim0"), {rnd({1000}, t, seed++)},
          one([rk](auto& in) { return ops::reduce(rk, in[0], 0); }), tol);
      add(str(reduce_name(rk), " ", dn(t), " (7,33,5) dim1 keepdim"), {rnd({7, 33, 5}, t, seed++)},
          one([rk](auto& in) { return ops::reduce(rk, in[0], 1, true); }), tol);
      add(str(reduce_name(rk), " ", dn(t), " (33,7)^T dim-1"), {rnd({33, 7}, t, seed++)},
          one([rk](auto& in) { return ops::reduce(rk, in[0].t(), -1); }), tol);
      add(str(reduce_name(rk), " ", dn(t), " (1,1) dim0"), {rnd({1, 1}, t, seed++)},
          one([rk](auto& in) { return ops::reduce(rk, in[0], 0); }), tol);
    }
    add("argmax " + dn(t) + " (7,1000) dim1", {rnd({7, 1000}, t, seed++)},
        one([](auto& in) { return ops::argmax(in[0], 1); }), {0, 0});
    add("argmax " + dn(t) + " (33,7,5) dim0", {rnd({33, 7, 5}, t, seed++)},
        one([](auto& in) { return ops::argmax(in[0], 0); }), {0, 0});
    add("topk " + dn(t) + " (7,1000) k5 dim1", {rnd({7, 1000}, t, seed++)},
        [](auto& in) { auto r = ops::topk(in[0], 5, 1); return std::vector<Tensor>{r.values, r.indices}; }, {0, 0});
    add("topk smallest " + dn(t) + " (33,7) k3 dim0", {rnd({33, 7}, t, seed++)},
        [](auto& in) { auto r = ops::topk(in[0], 3, 0, false); return std::vector<Tensor>{r.values, r.indices}; }, {0, 0});
    for (bool lg : {false, true}) {
      std::string nm = lg ? "log_softmax " : "softmax ";
      Tol tol = for_dtype({1e-6, 1e-5}, t);
      auto f = [lg](const Tensor& x, int64_t d) { return lg ? ops::log_softmax(x, d) : ops::softmax(x, d); };
      add(nm + dn(t) + " (7,1000) dim1", {rnd({7, 1000}, t, seed++, -8, 8)},
          one([f](auto& in) { return f(in[0], 1); }), tol);
      add(nm + dn(t) + " (5,33,7) dim1", {rnd({5, 33, 7}, t, seed++, -8, 8)},
          one([f](auto& in) { return f(in[0], 1); }), tol);
      add(nm + dn(t) + " (1,) dim0", {rnd({1}, t, seed++)}, one([f](auto& in) { return f(in[0], 0); }), tol);
      add(nm + dn(t) + " (33,7)^T dim-1", {rnd({33, 7}, t, seed++, -30, 30)},
          one([f](auto& in) { return f(in[0].t(), -1); }), tol);
    }
    add("l2_normalize " + dn(t) + " (7,512)", {rnd({7, 512}, t, seed++)},
        one([](auto& in) { return ops::l2_normalize(in[0], -1); }), for_dtype({1e-6, 1e-5}, t));
    add("l2_normalize " + dn(t) + " (33,7) dim0", {rnd({33, 7}, t, seed++)},
        one([](auto& in) { return ops::l2_normalize(in[0], 0); }), for_dtype({1e-6, 1e-5}, t));
    add("cross_entropy " + dn(t) + " (33,1000) none", {rnd({33, 1000}, t, seed++, -5, 5), ids({33}, 1000, seed++)},
        one([](auto& in) { return ops::cross_entropy(in[0], in[1], ops::Reduction::NONE); }), for_dtype({1e-5, 1e-5}, t));
    add("cross_entropy " + dn(t) + " (7,5) mean ignore", {rnd({7, 5}, t, seed++, -5, 5),
        Tensor::from_vector(std::vector<int64_t>{0, 4, -100, 2, 1, -100, 3}, {7})},
        one([](auto& in) { return ops::cross_entropy(in[0], in[1]); }), for_dtype({1e-5, 1e-5}, t));

    // ---- normalization ----------------------------------------------------------------------
    for (int64_t C : {1, 7, 33, 768}) {
      Tol tol = for_dtype({1e-5, 1e-5}, t);
      add(str("layer_norm ", dn(t), " (9,", C, ") affine"), {rnd({9, C}, t, seed++, -3, 5), rnd({C}, t, seed++), rnd({C}, t, seed++)},
          one([](auto& in) { return ops::layer_norm(in[0], in[1], in[2], 1e-5); }), tol);
      add(str("layer_norm ", dn(t), " (2,3,", C, ") no affine"), {rnd({2, 3, C}, t, seed++, -3, 5)},
          one([](auto& in) { return ops::layer_norm(in[0], Tensor(), Tensor(), 1e-5); }), tol);
      add(str("rms_norm ", dn(t), " (9,", C, ")"), {rnd({9, C}, t, seed++, -3, 5), rnd({C}, t, seed++)},
          one([](auto& in) { return ops::rms_norm(in[0], in[1], 1e-6); }), tol);
    }
    add("layer_norm " + dn(t) + " transposed input (33,7)^T", {rnd({33, 7}, t, seed++)},
        one([](auto& in) { return ops::layer_norm(in[0].t(), Tensor(), Tensor(), 1e-5); }), for_dtype({1e-5, 1e-5}, t));
    add("batch_norm " + dn(t) + " (2,7,5,3)", {rnd({2, 7, 5, 3}, t, seed++), rnd({7}, t, seed++), rnd({7}, t, seed++, 0.2, 2),
        rnd({7}, t, seed++), rnd({7}, t, seed++)},
        one([](auto& in) { return ops::batch_norm(in[0], in[1], in[2], in[3], in[4], 1e-5); }), for_dtype({1e-5, 1e-5}, t));

    // ---- matmul -----------------------------------------------------------------------------
    struct MM { int64_t b, m, k, n; bool ta, tb; };
    const MM mms[] = {{1, 1, 1, 1, false, false}, {1, 7, 33, 5, false, false}, {1, 33, 7, 1000, false, true},
                      {3, 7, 33, 33, true, false}, {2, 65, 130, 47, true, true}, {1, 200, 1000, 33, false, false},
                      {4, 1, 64, 50, false, true}};
    for (const MM& m : mms) {
      Tol tol = for_dtype({std::sqrt(double(m.k)) * 2e-7 + 1e-6, 1e-5}, t);
      Shape as = m.ta ? Shape{m.b, m.k, m.m} : Shape{m.b, m.m, m.k};
      Shape bs = m.tb ? Shape{m.b, m.n, m.k} : Shape{m.b, m.k, m.n};
      bool ta = m.ta, tb = m.tb;
      add(str("matmul ", dn(t), " B", m.b, " M", m.m, " K", m.k, " N", m.n, ta ? " Aᵀ" : "", tb ? " Bᵀ" : ""),
          {rnd(as, t, seed++), rnd(bs, t, seed++)},
          one([ta, tb](auto& in) { return ops::matmul(in[0], in[1], ta, tb); }), tol);
    }
    for (int64_t a = 0; a < static_cast<int64_t>(Activation::COUNT); ++a) {
      auto act = static_cast<Activation>(a);
      add(str("linear+bias+", activation_name(act), " ", dn(t), " (2,17,96)x(80,96)"),
          {rnd({2, 17, 96}, t, seed++), rnd({80, 96}, t, seed++, -0.3, 0.3), rnd({80}, t, seed++)},
          one([act](auto& in) { return ops::linear(in[0], in[1], in[2], act); }), for_dtype({1e-5, 1e-5}, t));
    }
    // A prepacked weight (ops::prepack_linear_weight): the optimized run multiplies with its panels.
    add(str("linear prepacked+bias+quick_gelu ", dn(t), " (50,768)x(100,768)"),
        {rnd({50, 768}, t, seed++), rnd({100, 768}, t, seed++, -0.3, 0.3), rnd({100}, t, seed++)},
        one([](auto& in) {
          ops::prepack_linear_weight(in[1]);
          return ops::linear(in[0], in[1], in[2], Activation::QUICK_GELU);
        }),
        for_dtype({std::sqrt(768.0) * 2e-7 + 1e-5, 1e-5}, t));
    add("matmul broadcast batch (2,1,7,9)x(3,9,5) alpha 0.5 " + dn(t), {rnd({2, 1, 7, 9}, t, seed++), rnd({3, 9, 5}, t, seed++)},
        one([](auto& in) { return ops::matmul(in[0], in[1], false, false, Tensor(), Activation::NONE, 0.5); }),
        for_dtype({1e-6, 1e-5}, t));
    add("matmul vector (33,)x(33,7) " + dn(t), {rnd({33}, t, seed++), rnd({33, 7}, t, seed++)},
        one([](auto& in) { return ops::matmul(in[0], in[1]); }), for_dtype({1e-6, 1e-5}, t));

    // ---- attention --------------------------------------------------------------------------
    struct AT { int64_t b, h, tq, tk, d; bool causal, mask, kpm; };
    const AT ats[] = {{1, 1, 1, 1, 8, false, false, false},  {2, 3, 7, 7, 16, false, false, false},
                      {2, 2, 50, 50, 64, false, false, false}, {1, 2, 33, 33, 32, true, false, false},
                      {2, 2, 5, 77, 64, false, true, false},   {2, 1, 9, 13, 80, false, false, true},
                      {1, 2, 7, 20, 32, true, true, true},     {1, 1, 200, 200, 64, true, false, false}};
    for (const AT& a : ats) {
      bool causal = a.causal, has_mask = a.mask, has_kpm = a.kpm;
      Tol tol = for_dtype({2e-6, 2e-5}, t);
      std::vector<Tensor> in = {rnd({a.b, a.tq, a.h, a.d}, t, seed++), rnd({a.b, a.h, a.tk, a.d}, t, seed++),
                                rnd({a.b, a.h, a.tk, a.d}, t, seed++), rnd({a.tq, a.tk}, t, seed++, -3, 0)};
      Tensor kpm = Tensor::zeros({a.b, a.tk}, DType::U8);
      for (int64_t bb = 0; bb < a.b; ++bb)  // pad the last keys of each batch, a different count each
        for (int64_t j = a.tk - 1 - bb; j < a.tk; ++j) kpm.narrow(0, bb, 1).narrow(1, j, 1).fill_(1);
      in.push_back(kpm);
      add(str("attention ", dn(t), " B", a.b, " H", a.h, " Tq", a.tq, " Tk", a.tk, " D", a.d, causal ? " causal" : "",
              has_mask ? " mask" : "", has_kpm ? " kpm" : "", " (q strided)"),
          in, one([=](auto& in) {
            ops::AttentionOptions o;
            o.causal = causal;
            if (has_mask) o.attn_mask = in[3];
            if (has_kpm) o.key_padding_mask = in[4];
            return ops::scaled_dot_product_attention(in[0].transpose(1, 2), in[1], in[2], o);
          }),
          tol);
    }
    // ---- conv / pool ------------------------------------------------------------------------
    struct CV { Shape x, w; ops::Conv2dOptions o; bool bias; };
    const CV cvs[] = {{{1, 3, 8, 8}, {4, 3, 3, 3}, {}, true},
                      {{2, 3, 32, 32}, {8, 3, 16, 16}, {16, 16, 0, 0, 1, 1}, false},
                      {{2, 5, 13, 11}, {7, 5, 3, 3}, {2, 1, 1, 2, 1, 1}, true},
                      {{1, 4, 15, 15}, {3, 4, 3, 3}, {1, 1, 2, 2, 2, 2}, true},
                      {{1, 1, 1, 1}, {1, 1, 1, 1}, {}, false}};
    for (const CV& c : cvs) {
      auto o = c.o;
      bool bias = c.bias;
      int64_t kk = c.w[1] * c.w[2] * c.w[3];
      add(str("conv2d ", dn(t), " x", shape_str(c.x), " w", shape_str(c.w), " s", o.stride_h, ",", o.stride_w, " p",
              o.pad_h, ",", o.pad_w, " d", o.dil_h, ",", o.dil_w),
          {rnd(c.x, t, seed++), rnd(c.w, t, seed++, -0.5, 0.5), rnd({c.w[0]}, t, seed++)},
          one([o, bias](auto& in) { return ops::conv2d(in[0], in[1], bias ? in[2] : Tensor(), o); }),
          for_dtype({std::sqrt(double(kk)) * 2e-7 + 1e-6, 1e-5}, t));
    }
    struct PL { Shape x; ops::Pool2dOptions o; };
    const PL pls[] = {{{2, 3, 8, 8}, {2, 2, 2, 2, 0, 0, true, false}},
                      {{1, 4, 7, 9}, {3, 3, 2, 2, 1, 1, true, false}},
                      {{1, 4, 7, 9}, {3, 3, 2, 2, 1, 1, false, false}},
                      {{1, 2, 7, 7}, {2, 2, 2, 2, 0, 0, true, true}},
                      {{1, 2, 8, 10}, {3, 2, 2, 3, 1, 1, false, true}}};
    for (const PL& p : pls) {
      auto o = p.o;
      add(str("avg_pool2d ", dn(t), " x", shape_str(p.x), " k", o.kernel_h, ",", o.kernel_w, " s", o.stride_h, ",",
              o.stride_w, " p", o.pad_h, ",", o.pad_w, o.count_include_pad ? " incl" : " excl", o.ceil_mode ? " ceil" : ""),
          {rnd(p.x, t, seed++)}, one([o](auto& in) { return ops::avg_pool2d(in[0], o); }), for_dtype({1e-6, 1e-5}, t));
    }
    // ---- indexing ---------------------------------------------------------------------------
    add("embedding " + dn(t) + " (100,33)[(3,7)]", {rnd({100, 33}, t, seed++), ids({3, 7}, 100, seed++)},
        one([](auto& in) { return ops::embedding(in[0], in[1]); }), {0, 0});
    add("embedding " + dn(t) + " i32 ids", {rnd({10, 8}, t, seed++), ids({5}, 10, seed++, DType::I32)},
        one([](auto& in) { return ops::embedding(in[0], in[1]); }), {0, 0});
    add("index_select " + dn(t) + " dim1 of transposed", {rnd({9, 33}, t, seed++), ids({12}, 9, seed++)},
        one([](auto& in) { return ops::index_select(in[0].t(), 1, in[1]); }), {0, 0});
    add("gather " + dn(t) + " dim1", {rnd({7, 33}, t, seed++), ids({7, 5}, 33, seed++)},
        one([](auto& in) { return ops::gather(in[0], 1, in[1]); }), {0, 0});
    add("gather " + dn(t) + " dim0 strided", {rnd({33, 7}, t, seed++), ids({4, 33}, 7, seed++)},
        one([](auto& in) { return ops::gather(in[0].t(), 0, in[1]); }), {0, 0});
    // ---- backward kernels: one case each (tests/test_grad_ops.cpp holds the full set) ---------------
    add("unary_backward gelu " + dn(t) + " x transposed (33,7)^T", {rnd({33, 7}, t, seed++), rnd({7, 33}, t, seed++)},
        one([](auto& in) { return ops::unary_backward(UnaryKind::GELU, in[0].t(), in[1]); }), for_dtype({1e-6, 1e-5}, t));
    add("softmax_backward " + dn(t) + " (5,33,7) dim1", {rnd({5, 33, 7}, t, seed++, 0, 0.2), rnd({5, 33, 7}, t, seed++)},
        one([](auto& in) { return ops::softmax_backward(in[0], in[1], 1); }), for_dtype({1e-6, 1e-5}, t));
    add("layer_norm_backward " + dn(t) + " (9,33) affine",
        {rnd({9, 33}, t, seed++, -3, 5), rnd({33}, t, seed++), rnd({9, 33}, t, seed++)},
        [](auto& in) {
          auto r = ops::layer_norm_backward(in[0], in[1], in[2], 1e-5);
          return std::vector<Tensor>{r.dx, r.dweight, r.dbias};
        },
        for_dtype({1e-5, 1e-5}, t));
    add("conv2d_backward " + dn(t) + " x(2,5,13,11) w(7,5,3,3) s2,1 p1,2",
        {rnd({2, 5, 13, 11}, t, seed++), rnd({7, 5, 3, 3}, t, seed++, -0.5, 0.5), rnd({2, 7, 7, 13}, t, seed++)},
        [](auto& in) {
          auto r = ops::conv2d_backward(in[0], in[1], in[2], {2, 1, 1, 2, 1, 1});
          return std::vector<Tensor>{r.dx, r.dw};
        },
        for_dtype({std::sqrt(182.0) * 2e-7 + 1e-6, 1e-5}, t));
    add("scatter_add " + dn(t) + " dim0 (10,33) <- (7,33)", {ids({7, 33}, 10, seed++), rnd({7, 33}, t, seed++)},
        one([](auto& in) { return ops::scatter_add({10, 33}, 0, in[0], in[1]); }), for_dtype({1e-6, 1e-5}, t));
  }
  // ---- integer dtypes where meaningful ------------------------------------------------------
  for (DType t : {DType::I32, DType::I64}) {
    add("add " + dn(t) + " broadcast", {ids({7, 33}, 100, seed++, t), ids({33}, 100, seed++, t)},
        one([](auto& in) { return ops::add(in[0], in[1]); }), {0, 0});
    add("sum " + dn(t) + " dim1", {ids({7, 33}, 100, seed++, t)}, one([](auto& in) { return ops::sum(in[0], 1); }), {0, 0});
    add("cast " + dn(t) + "->f32", {ids({7, 33}, 1000, seed++, t)}, one([](auto& in) { return in[0].to(DType::F32); }), {0, 0});
    for (UnaryKind uk : {UnaryKind::NEG, UnaryKind::ABS, UnaryKind::RELU, UnaryKind::SQUARE})
      add(str(unary_name(uk), " ", dn(t), " (7,33) of x - 50"), {ids({7, 33}, 100, seed++, t)},
          one([uk](auto& in) { return ops::unary(uk, ops::sub(in[0], 50.0)); }), {0, 0});
  }
  return cs;
}

bool run_case(const OpCase& c, Device dev, std::string& why) {
  std::vector<Tensor> ref;
  {
    CpuModeGuard g(CpuMode::REFERENCE);
    ref = c.run(c.inputs);
  }
  std::vector<Tensor> got;
  if (dev.is_cpu()) {
    CpuModeGuard g(CpuMode::OPTIMIZED);
    got = c.run(c.inputs);
  } else {
    std::vector<Tensor> din;
    for (const Tensor& t : c.inputs) din.push_back(t.to(dev));
    got = c.run(din);
    for (Tensor& t : got) t = t.to(Device::cpu());
  }
  if (got.size() != ref.size()) { why = "different number of outputs"; return false; }
  for (size_t k = 0; k < got.size(); ++k) {
    if (got[k].dtype() != ref[k].dtype()) { why = str("output ", k, " dtype ", dtype_name(got[k].dtype())); return false; }
    auto r = test::compare(got[k], ref[k], c.tol);
    if (!r.ok) { why = str("output ", k, ": ", r.message); return false; }
  }
  return true;
}

void run_all(Device dev) {
  auto cases = all_cases();
  int failed = 0;
  dispatch_counts() = DispatchCounts{};
  for (const OpCase& c : cases) {
    std::string why;
    bool ok = false;
    try {
      ok = run_case(c, dev, why);
    } catch (const std::exception& e) {
      why = std::string("threw: ") + e.what();
    }
    if (!ok) {
      ++failed;
      FAIL_CHECK(c.name << " on " << dev.name() << ": " << why);
    }
  }
  MESSAGE(cases.size() << " op cases on " << dev.name() << ", " << failed << " failed");
  CHECK(cases.size() > 300);
  // Every op must have been run by the backend under test, not only by the reference fallback.
  int backend = static_cast<int>(dev.is_cpu() ? BackendId::CPU : BackendId::CUDA);
  for (int op = 0; op < static_cast<int>(Op::COUNT); ++op) {
    std::string what = std::string("op ") + op_name(static_cast<Op>(op)) + " never ran on the backend under test";
    CHECK_MESSAGE(dispatch_counts().n[backend][op] > 0, what);
  }
}

}  // namespace

TEST_SUITE("ops") {
  TEST_CASE("optimized CPU kernels match the reference on every op case") { run_all(Device::cpu()); }
}

TEST_SUITE("cuda") {
  TEST_CASE("CUDA kernels match the reference on every op case") {
    REQUIRE(cuda_device_count() > 0);
    run_all(Device::cuda(0));
  }
}

// ---- prepacked weights (ops::prepack_linear_weight) --------------------------------------------------
// The harness cases above compare with the reference; these check the two promises of the registry:
// the packed path is bit-identical to the unpacked one, and a dead weight's panels are never used.
#include "kernels/cpu/prepack.h"

namespace {

// Exact equality, element by element (the outputs are finite).
void check_bit_identical(const Tensor& a, const Tensor& b, const std::string& what) {
  REQUIRE(a.shape() == b.shape());
  std::vector<float> x = a.to(DType::F32).to_vector<float>(), y = b.to(DType::F32).to_vector<float>();
  int64_t diff = 0;
  for (size_t i = 0; i < x.size(); ++i) diff += x[i] != y[i];
  CHECK_MESSAGE(diff == 0, what << ": " << diff << " of " << x.size() << " elements differ");
}

}  // namespace

TEST_SUITE("ops") {
  TEST_CASE("prepacked linear and patch-conv weights match the reference and the unpacked path bit for bit") {
    CpuModeGuard g(CpuMode::OPTIMIZED);
    uint64_t seed = 9001;
    struct LC { Shape x; int64_t out; bool transposed_w; Activation act; };
    // K = 1000 spans two K blocks of the AVX-512 kernel; N = 49 and 100 leave partial panels; the
    // transposed weight ((in, out) stored, used as its (out, in) view) packs through another path.
    const LC lcs[] = {{{1, 50, 768}, 100, false, Activation::QUICK_GELU}, {{3, 7, 1000}, 49, false, Activation::NONE},
                      {{1, 96}, 80, true, Activation::GELU}, {{5, 33, 64}, 16, false, Activation::RELU}};
    for (DType t : kFloatTypes)
      for (const LC& c : lcs) {
        const int64_t in = c.x.back();
        Tensor x = rnd(c.x, t, seed++);
        Tensor w = c.transposed_w ? rnd({in, c.out}, t, seed++, -0.3, 0.3).t() : rnd({c.out, in}, t, seed++, -0.3, 0.3);
        Tensor b = rnd({c.out}, t, seed++);
        const std::string what = str("linear ", dn(t), " x", shape_str(c.x), " out ", c.out, c.transposed_w ? " Wᵀ" : "");
        Tensor unpacked = ops::linear(x, w.clone(), b, c.act);  // a copy: never registered
        ops::prepack_linear_weight(w);
        const int64_t hits0 = cpu::prepack_stats().hits;
        Tensor packed = ops::linear(x, w, b, c.act);   // packs on first use
        Tensor again = ops::linear(x, w, b, c.act);    // reuses the panels
        CHECK_MESSAGE(cpu::prepack_stats().hits == hits0 + 2, what << ": the prepacked path did not run");
        check_bit_identical(packed, unpacked, what + " (first use)");
        check_bit_identical(again, unpacked, what + " (reuse)");
        Tensor ref;
        {
          CpuModeGuard r(CpuMode::REFERENCE);
          ref = ops::linear(x, w, b, c.act);
        }
        auto cmp = test::compare(packed, ref, for_dtype({std::sqrt(double(in)) * 2e-7 + 1e-5, 1e-5}, t));
        CHECK_MESSAGE(cmp.ok, what << " vs reference: " << cmp.message);
      }
    // Patch embedding (stride = kernel, no padding), rectangular kernel, unused last input row.
    for (DType t : kFloatTypes) {
      Tensor x = rnd({2, 3, 10, 10}, t, seed++), w = rnd({40, 3, 3, 2}, t, seed++, -0.5, 0.5), b = rnd({40}, t, seed++);
      const ops::Conv2dOptions o{3, 2, 0, 0, 1, 1};
      Tensor unpacked = ops::conv2d(x, w.clone(), b, o);
      ops::prepack_linear_weight(w.view({40, 18}));
      const int64_t hits0 = cpu::prepack_stats().hits;
      Tensor packed = ops::conv2d(x, w, b, o);
      CHECK(cpu::prepack_stats().hits == hits0 + 1);
      check_bit_identical(packed, unpacked, "patch conv2d " + dn(t));
      Tensor ref;
      {
        CpuModeGuard r(CpuMode::REFERENCE);
        ref = ops::conv2d(x, w, b, o);
      }
      auto cmp = test::compare(packed, ref, for_dtype({std::sqrt(18.0) * 2e-7 + 1e-6, 1e-5}, t));
      CHECK_MESSAGE(cmp.ok, "patch conv2d " << dn(t) << " vs reference: " << cmp.message);
    }
  }

  TEST_CASE("a prepacked weight whose storage died never lends its panels to a tensor at the same address") {
    CpuModeGuard g(CpuMode::OPTIMIZED);
    Tensor x = rnd({50, 256}, DType::F32, 77);
    Tensor w = rnd({96, 256}, DType::F32, 78);
    ops::prepack_linear_weight(w);
    Tensor y_old = ops::linear(x, w);  // packs w's panels
    const int64_t entries = cpu::prepack_stats().entries;
    const void* old_ptr = w.data_ptr();
    w = Tensor();  // the storage dies; its block goes back to the caching allocator
    // A new weight of the same size: the caching allocator hands back the same block.
    Tensor w2 = Tensor::empty({96, 256});
    w2.copy_(rnd({96, 256}, DType::F32, 79));
    CHECK_MESSAGE(w2.data_ptr() == old_ptr, "the allocator did not reuse the block; the check below is weaker");
    const int64_t hits0 = cpu::prepack_stats().hits;
    Tensor y_new = ops::linear(x, w2);
    CHECK(cpu::prepack_stats().hits == hits0);  // not served from the dead entry
    Tensor ref;
    {
      CpuModeGuard r(CpuMode::REFERENCE);
      ref = ops::linear(x, w2);
    }
    auto cmp = test::compare(y_new, ref, {std::sqrt(256.0) * 2e-7 + 1e-5, 1e-5});
    CHECK_MESSAGE(cmp.ok, "linear with the new weight vs reference: " << cmp.message);
    // Registering the new tensor packs its own values; the dead entry is swept.
    ops::prepack_linear_weight(w2);
    CHECK(cpu::prepack_stats().entries <= entries);
    check_bit_identical(ops::linear(x, w2), y_new, "re-registered weight");
    CHECK(cpu::prepack_stats().hits == hits0 + 1);
  }
}

TEST_SUITE("ops") {
  TEST_CASE("sgemm's edge-tile kernels give the same bits as full tiles") {
    // M = 50 ends in a 2-row tile that runs a narrower micro-kernel; rows computed inside full tiles
    // (M = 64) must be bit-identical, for every number of leftover rows.
    CpuModeGuard g(CpuMode::OPTIMIZED);
    Tensor x = rnd({64, 300}, DType::F32, 4242), w = rnd({70, 300}, DType::F32, 4243, -0.3, 0.3), b = rnd({70}, DType::F32, 4244);
    Tensor full = ops::linear(x, w, b, Activation::GELU);
    for (int64_t m = 1; m <= 9; ++m) {
      Tensor part = ops::linear(x.narrow(0, 0, 48 + m), w, b, Activation::GELU);
      check_bit_identical(part, full.narrow(0, 0, 48 + m), str("M = ", 48 + m));
    }
  }
}
