// tests/test_gemm_bf16.cpp — bgemm (kernels/cpu/gemm.h: bf16 inputs, f32 accumulation) against its
// plain-loop definition matmul_bf16_ref (kernels/ref/ref_bf16.h), on every bf16 kernel this CPU can
// run (AVX512_BF16 and the AVX-512F emulation; none without AVX-512: the cases are then skipped and
// the bf16 MATMUL falls back to f32, which the backend-ops harness covers).
//
// Tolerance (f32 accumulation order only): |bgemm − ref| <= 1e-5 · (|alpha| Σ_k |a_k b_k| + |bias|)
// + 2e-6 · max(1, |ref|) for the activations' f32 math (gemm.cpp: within 1e-6 absolute) — a
// missing bf16 rounding of an input (relative error up to 2^-9 ≈ 2e-3 per product) fails it by far.
// A bf16 output is checked bit for bit against the bf16 rounding of the same call's f32 output; f32
// inputs are checked bit for bit against the same values given as bf16 (rounding while packing is
// the rounding of core/dtype.h); prepacked, batched and differently threaded runs bit for bit
// against the plain call (same tiles, same K-block order).
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/prepack.h"
#include "kernels/ops.h"
#include "kernels/ref/ref_bf16.h"
#include "models/blip2/blip2.h"
#include "models/clip/clip.h"
#include "tests/test_util.h"

using namespace vislang;

namespace {

// The bgemm kernels this CPU can run, by the names bgemm_set_isa takes.
std::vector<std::string> bf16_kernels() {
  std::vector<std::string> ks;
  for (const char* k : {"avx512_bf16", "avx512f-emulated"})
    if (cpu::bgemm_set_isa(k)) ks.push_back(k);
  cpu::bgemm_set_isa("auto");
  return ks;
}
struct KernelGuard {  // runs bgemm as `name` until the end of the scope
  explicit KernelGuard(const std::string& name) { REQUIRE(cpu::bgemm_set_isa(name)); }
  ~KernelGuard() { cpu::bgemm_set_isa("auto"); }
};

std::vector<float> uniform(int64_t n, uint64_t seed, double lo = -2.0, double hi = 2.0) {
  Generator g(seed);
  return Tensor::rand({n}, g, DType::F32, Device::cpu(), lo, hi).to_vector<float>();
}
std::vector<uint16_t> to_bf16(const std::vector<float>& x) {
  std::vector<uint16_t> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = f32_to_bf16(x[i]);
  return y;
}

// A product case: A (M, K) and B (K, N) laid out in buffers with the given strides.
struct Case {
  int64_t M, N, K;
  bool a_col_major = false;  // A stored (K, M): a transposed view
  int b_layout = 0;          // 0: B row-major (K, N); 1: B = Wᵀ, W (N, K) row-major; 2: every 2nd element of a (2K, 2N)
  Activation act = Activation::NONE;
  bool bias = false;
  float alpha = 1.0f;
  std::string name() const {
    return str("M ", M, " N ", N, " K ", K, a_col_major ? " Aᵀ" : "", b_layout == 1 ? " B=Wᵀ" : b_layout == 2 ? " B strided" : "",
               bias ? " +bias" : "", " ", activation_name(act), " alpha ", alpha);
  }
};

struct Inputs {
  std::vector<float> a, b, bias;
  int64_t a_rs, a_cs, b_rs, b_cs;
};
Inputs make_inputs(const Case& c, uint64_t seed) {
  Inputs in;
  in.a = uniform(c.M * c.K, seed);
  in.a_rs = c.a_col_major ? 1 : c.K, in.a_cs = c.a_col_major ? c.M : 1;
  const int64_t nb = c.b_layout == 2 ? 4 * c.K * c.N : c.K * c.N;
  in.b = uniform(nb, seed + 1, -0.5, 0.5);
  if (c.b_layout == 0) in.b_rs = c.N, in.b_cs = 1;
  else if (c.b_layout == 1) in.b_rs = 1, in.b_cs = c.K;
  else in.b_rs = 4 * c.N, in.b_cs = 2;
  if (c.bias) in.bias = uniform(c.N, seed + 2);
  return in;
}

cpu::GemmOperand op(const std::vector<float>& f, const std::vector<uint16_t>& h, bool bf16, int64_t rs, int64_t cs) {
  return cpu::GemmOperand{bf16 ? static_cast<const void*>(h.data()) : static_cast<const void*>(f.data()), bf16, rs, cs};
}

// bgemm of the case, inputs given as f32 or bf16, output f32 (or bf16 bits widened to f32).
std::vector<float> run_bgemm(const Case& c, const Inputs& in, bool a_bf16, bool b_bf16, bool out_bf16) {
  const std::vector<uint16_t> ah = to_bf16(in.a), bh = to_bf16(in.b);
  std::vector<float> out(static_cast<size_t>(c.M * c.N), -7.0f);
  std::vector<uint16_t> outh(out.size(), 0xffff);
  cpu::bgemm(c.M, c.N, c.K, c.alpha, op(in.a, ah, a_bf16, in.a_rs, in.a_cs), op(in.b, bh, b_bf16, in.b_rs, in.b_cs),
             cpu::GemmOutput{out_bf16 ? static_cast<void*>(outh.data()) : static_cast<void*>(out.data()), out_bf16},
             c.bias ? in.bias.data() : nullptr, c.act);
  if (out_bf16)
    for (size_t i = 0; i < out.size(); ++i) out[i] = bf16_to_f32(outh[i]);
  return out;
}

// got vs matmul_bf16_ref within the tolerance of the file header; returns the worst |diff| / bound.
double check_vs_ref(const Case& c, const Inputs& in, const std::vector<float>& got, const std::string& what) {
  const float* bias = c.bias ? in.bias.data() : nullptr;
  const std::vector<double> ref =
      matmul_bf16_ref(c.M, c.N, c.K, c.alpha, in.a.data(), in.a_rs, in.a_cs, in.b.data(), in.b_rs, in.b_cs, bias, c.act);
  const std::vector<double> abs =
      matmul_bf16_abs_ref(c.M, c.N, c.K, in.a.data(), in.a_rs, in.a_cs, in.b.data(), in.b_rs, in.b_cs);
  double worst = 0;
  size_t wi = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double b = std::fabs(double(c.alpha)) * abs[i] + (bias ? std::fabs(double(bias[i % c.N])) : 0.0);
    const double bound = 1e-5 * b + (c.act == Activation::NONE ? 1e-7 : 2e-6) * std::max(1.0, std::fabs(ref[i]));
    const double q = std::isfinite(got[i]) ? std::fabs(got[i] - ref[i]) / bound : 1e300;
    if (q > worst) worst = q, wi = i;
  }
  CHECK_MESSAGE(worst <= 1.0, what << ": worst element " << wi << " got " << got[wi] << " expected " << ref[wi]
                                   << " (|diff| / bound = " << worst << ")");
  return worst;
}

void check_same_bits(const std::vector<float>& x, const std::vector<float>& y, const std::string& what) {
  REQUIRE(x.size() == y.size());
  int64_t diff = 0;
  size_t first = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (f32_bits(x[i]) != f32_bits(y[i])) first = diff++ ? first : i;
  CHECK_MESSAGE(diff == 0, what << ": " << diff << " of " << x.size() << " elements differ, first at " << first << " ("
                                << x[first] << " vs " << y[first] << ")");
}

const Case kCases[] = {
    {1, 1, 1},
    {1, 48, 64, false, 1, Activation::NONE, true},       // M = 1 (a single token), prepacked-like B
    {7, 33, 1, false, 0, Activation::RELU, true},        // K = 1: one half-empty pair
    {9, 49, 33, false, 1, Activation::GELU, true},       // odd K, right-edge panel of 1 column
    {50, 100, 768, false, 1, Activation::QUICK_GELU, true, 1.0f},
    {17, 5, 16, true, 0, Activation::GELU_TANH, false, 0.125f},  // transposed A, narrow N
    {23, 40, 70, true, 2, Activation::NONE, true, -0.5f},        // strided B: the generic packing
    {64, 96, 3001, false, 1, Activation::GELU, true},    // two K blocks, the last one odd
    {130, 200, 1537, false, 0, Activation::NONE, false}, // just over one K block
};

}  // namespace

TEST_SUITE("ops") {
  TEST_CASE("bgemm matches matmul_bf16_ref on every bf16 kernel (odd K, M = 1, views, epilogues, K blocks)") {
    const std::vector<std::string> kernels = bf16_kernels();
    if (kernels.empty()) {
      MESSAGE("no AVX-512 on this CPU: bgemm does not run here (bf16 MATMUL uses the f32 kernels)");
      return;
    }
    uint64_t seed = 500;
    for (const std::string& k : kernels) {
      KernelGuard g(k);
      double worst = 0;
      for (const Case& c : kCases) {
        const Inputs in = make_inputs(c, seed += 10);
        const std::string what = k + " " + c.name();
        const std::vector<float> f32_out = run_bgemm(c, in, true, true, false);
        worst = std::max(worst, check_vs_ref(c, in, f32_out, what));
        // f32 inputs round to the same bf16 values while packing: the same bits.
        check_same_bits(run_bgemm(c, in, false, false, false), f32_out, what + ": f32 inputs vs bf16 inputs");
        check_same_bits(run_bgemm(c, in, false, true, false), f32_out, what + ": f32 A vs bf16 A");
        // A bf16 output is the f32 result rounded once.
        std::vector<float> rounded = f32_out;
        for (float& v : rounded) v = bf16_to_f32(f32_to_bf16(v));
        check_same_bits(run_bgemm(c, in, true, true, true), rounded, what + ": bf16 output vs rounded f32 output");
      }
      MESSAGE(k << ": worst |bgemm - ref| / tolerance over the cases = " << worst);
    }
  }

  TEST_CASE("bgemm: thread count, batches and prepacked B give the same bits as one plain call") {
    const std::vector<std::string> kernels = bf16_kernels();
    if (kernels.empty()) return;
    KernelGuard g(kernels.front());
    const Case c{70, 100, 1601, false, 1, Activation::GELU, true};  // two K blocks, bf16 output below
    const Inputs in = make_inputs(c, 42);
    const std::vector<uint16_t> ah = to_bf16(in.a), bh = to_bf16(in.b);
    const std::vector<float> base = run_bgemm(c, in, true, true, true);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const std::vector<float> one_thread = run_bgemm(c, in, true, true, true);
    omp_set_num_threads(threads);
    check_same_bits(one_thread, base, "1 thread vs " + std::to_string(threads));

    // Prepacked B (from bf16 and from f32 values): same panels, same bits.
    for (bool b_bf16 : {true, false}) {
      auto packed = cpu::bgemm_pack_b(c.K, c.N, op(in.b, bh, b_bf16, in.b_rs, in.b_cs));
      REQUIRE(packed->bf16);
      std::vector<uint16_t> outh(static_cast<size_t>(c.M * c.N));
      cpu::bgemm_prepacked(c.M, c.alpha, op(in.a, ah, true, in.a_rs, in.a_cs), *packed, cpu::GemmOutput{outh.data(), true},
                           in.bias.data(), c.act);
      std::vector<float> got(outh.size());
      for (size_t i = 0; i < got.size(); ++i) got[i] = bf16_to_f32(outh[i]);
      check_same_bits(got, base, b_bf16 ? "prepacked from bf16" : "prepacked from f32");
    }

    // A batch of 3 with B broadcast (stride 0): each matrix equals its own call.
    const int64_t batch = 3, MN = c.M * c.N;
    std::vector<float> a3(in.a);
    for (int64_t b = 1; b < batch; ++b) {
      std::vector<float> more = uniform(c.M * c.K, 900 + b);
      a3.insert(a3.end(), more.begin(), more.end());
    }
    const std::vector<uint16_t> a3h = to_bf16(a3);
    std::vector<uint16_t> outh(static_cast<size_t>(batch * MN));
    cpu::bgemm_batched(batch, c.M, c.N, c.K, c.alpha, op(a3, a3h, true, c.K, 1), c.M * c.K, op(in.b, bh, true, in.b_rs, in.b_cs),
                       0, cpu::GemmOutput{outh.data(), true}, in.bias.data(), c.act);
    for (int64_t b = 0; b < batch; ++b) {
      Inputs ib = in;
      ib.a.assign(a3.begin() + b * c.M * c.K, a3.begin() + (b + 1) * c.M * c.K);
      const std::vector<float> want = run_bgemm(c, ib, true, true, true);
      std::vector<float> got(static_cast<size_t>(MN));
      for (int64_t i = 0; i < MN; ++i) got[i] = bf16_to_f32(outh[b * MN + i]);
      check_same_bits(got, want, str("batched, matrix ", b));
    }

    // K = 0: act(bias), rounded.
    std::vector<uint16_t> empty(static_cast<size_t>(2 * c.N));
    cpu::bgemm(2, c.N, 0, 1.f, op(in.a, ah, true, c.K, 1), op(in.b, bh, true, in.b_rs, in.b_cs),
               cpu::GemmOutput{empty.data(), true}, in.bias.data(), Activation::RELU);
    for (int64_t i = 0; i < 2 * c.N; ++i)
      REQUIRE(empty[i] == f32_to_bf16(std::max(0.f, in.bias[i % c.N])));
  }

  TEST_CASE("the bf16 MATMUL runs bgemm: linear and batched matmul of bf16 tensors, prepacked or not") {
    if (!cpu::bgemm_supported()) return;  // no AVX-512, or VISLANG_BF16_GEMM=off: the f32 fallback
    CpuModeGuard g(CpuMode::OPTIMIZED);
    const int64_t M = 37, K = 301, N = 130;
    const Inputs in = make_inputs({M, N, K, false, 1}, 77);
    Tensor x = Tensor::from_vector(in.a, {M, K}).to(DType::BF16);
    Tensor w = Tensor::from_vector(in.b, {N, K}).to(DType::BF16);  // (out, in): the linear weight
    Tensor bias = Tensor::from_vector(uniform(N, 78), {N}).to(DType::BF16);
    // The same product straight through bgemm, bias as the f32 values of the bf16 bias.
    const std::vector<float> bias_f32 = bias.to(DType::F32).to_vector<float>();
    std::vector<uint16_t> want(static_cast<size_t>(M * N));
    cpu::bgemm(M, N, K, 1.f, cpu::GemmOperand{x.data_ptr(), true, K, 1}, cpu::GemmOperand{w.data_ptr(), true, 1, K},
               cpu::GemmOutput{want.data(), true}, bias_f32.data(), Activation::GELU);
    auto bits = [](const Tensor& t) {
      std::vector<uint16_t> v(static_cast<size_t>(t.numel()));
      std::memcpy(v.data(), t.contiguous().data_ptr(), v.size() * 2);
      return v;
    };
    CHECK(bits(ops::linear(x, w, bias, Activation::GELU)) == want);
    ops::prepack_linear_weight(w);
    const int64_t hits = cpu::prepack_stats().hits;
    CHECK(bits(ops::linear(x, w, bias, Activation::GELU)) == want);
    CHECK_MESSAGE(cpu::prepack_stats().hits == hits + 1, "the prepacked bf16 panels were not used");
    // Batched (B, M, K) @ (B, K, N)ᵀ-view, against the reference backend (double, one rounding).
    Tensor a3 = test::rnd({3, 20, 45}, DType::BF16, 79), b3 = test::rnd({3, 31, 45}, DType::BF16, 80);
    Tensor got = ops::matmul(a3, b3, false, true);
    Tensor ref;
    {
      CpuModeGuard r(CpuMode::REFERENCE);
      ref = ops::matmul(a3, b3, false, true);
    }
    auto cmp = test::compare(got, ref, {1e-5, 1.0 / 128});  // one bf16 ulp apart at most
    CHECK_MESSAGE(cmp.ok, "batched bf16 matmul vs reference: " << cmp.message);
  }

  TEST_CASE("bf16 models stay close to f32: the tiny BLIP-2 and CLIP fixtures") {
    // Measured here (the same with bgemm and with its f32 fallback): BLIP-2 image 0.99993 / text
    // 0.99985 min cosine, ITC max |diff| 5.2e-3; CLIP image 0.99991 / text 0.99986, logits max |diff|
    // 0.12 of max |logit| 8.8. The bounds leave room for other kernels' accumulation order, not for a
    // wrong rounding or a lost bias.
    auto min_cosine = [](const Tensor& a, const Tensor& b) {  // over the rows of the last dim
      const std::vector<float> x = a.to(DType::F32).to_vector<float>(), y = b.to(DType::F32).to_vector<float>();
      const size_t n = static_cast<size_t>(a.size(-1));
      double worst = 1;
      for (size_t r = 0; r < x.size(); r += n) {
        double xy = 0, xx = 0, yy = 0;
        for (size_t i = r; i < r + n; ++i) xy += double(x[i]) * y[i], xx += double(x[i]) * x[i], yy += double(y[i]) * y[i];
        worst = std::min(worst, xy / std::sqrt(xx * yy));
      }
      return worst;
    };
    auto max_abs = [](const Tensor& a, const Tensor& b = Tensor()) {  // max |a − b|, or max |a|
      const std::vector<float> x = a.to(DType::F32).to_vector<float>();
      const std::vector<float> y = b.defined() ? b.to(DType::F32).to_vector<float>() : std::vector<float>(x.size(), 0.f);
      double m = 0;
      for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(double(x[i]) - y[i]));
      return m;
    };
    const std::string fx = std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/";
    {
      SafeTensorsFile ref = SafeTensorsFile::open(fx + "blip2/reference.safetensors");
      Tensor pixels = ref.get("pixels"), ids = ref.get("input_ids"), mask = ref.get("attention_mask");
      Tensor img[2], txt[2], itc[2];
      for (int d = 0; d < 2; ++d) {
        const auto m = blip2::Blip2Retrieval::load(fx + "blip2/hf", Device::cpu(), d ? DType::BF16 : DType::F32);
        img[d] = m.encode_image(pixels), txt[d] = m.encode_text(ids, mask), itc[d] = m.itc_scores(img[d], txt[d]);
      }
      const double ci = min_cosine(img[0], img[1]), ct = min_cosine(txt[0], txt[1]), di = max_abs(itc[0], itc[1]);
      MESSAGE("BLIP-2 fixture, bf16 vs f32: image embeds min cosine " << ci << ", text embeds " << ct
                                                                     << ", ITC max |diff| " << di);
      CHECK(ci > 0.995);
      CHECK(ct > 0.995);
      CHECK(di < 0.02);
    }
    {
      SafeTensorsFile ref = SafeTensorsFile::open(fx + "clip/reference.safetensors");
      Tensor pixels = ref.get("pixels"), ids = ref.get("input_ids");
      Tensor img[2], txt[2], logits[2];
      for (int d = 0; d < 2; ++d) {
        const auto m = clip::ClipModel::load(fx + "clip/hf_vit", Device::cpu(), d ? DType::BF16 : DType::F32);
        img[d] = m.encode_image(pixels), txt[d] = m.encode_text(ids), logits[d] = m.logits_per_image(img[d], txt[d]);
      }
      const double ci = min_cosine(img[0], img[1]), ct = min_cosine(txt[0], txt[1]);
      const double dl = max_abs(logits[0], logits[1]), scale = max_abs(logits[0]);
      MESSAGE("CLIP fixture (hf_vit), bf16 vs f32: image embeds min cosine " << ci << ", text embeds " << ct
                                                                             << ", logits max |diff| " << dl << " (max |logit| "
                                                                             << scale << ")");
      CHECK(ci > 0.995);
      CHECK(ct > 0.995);
      CHECK(dl < 0.03 * scale);
    }
  }

  TEST_CASE("attention at head dims 88 and 96 (one 96-wide register tile in cpu_attention.cpp) matches the reference") {
    // (Also in this file: the tile is what the bf16 ViT-g runs; the backend-ops harness covers D <= 80.)
    CpuModeGuard g(CpuMode::OPTIMIZED);
    uint64_t seed = 300;
    for (DType t : {DType::F32, DType::BF16})
      for (int64_t d : {88, 96}) {
        Tensor q = test::rnd({2, 3, 70, d}, t, seed++), k = test::rnd({2, 3, 67, d}, t, seed++),
               v = test::rnd({2, 3, 67, d}, t, seed++);
        ops::AttentionOptions o;
        o.causal = d == 96;
        Tensor got = ops::scaled_dot_product_attention(q, k, v, o), ref;
        {
          CpuModeGuard r(CpuMode::REFERENCE);
          ref = ops::scaled_dot_product_attention(q, k, v, o);
        }
        auto cmp = test::compare(got, ref, test::for_dtype({2e-6, 2e-5}, t));
        CHECK_MESSAGE(cmp.ok, "attention " << dtype_name(t) << " D " << d << ": " << cmp.message);
      }
  }
}
