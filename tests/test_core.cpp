// tests/test_core.cpp — the tensor core: dtype conversions, views without copies, constructors,
// the caching allocator, the generator, and the error messages user mistakes produce.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <sys/stat.h>

#include "core/cpu_features.h"
#include "kernels/ops.h"
#include "tests/test_util.h"

using namespace vislang;

namespace vislang::test {
std::string shared_dir() {
  const char* env = std::getenv("VISLANG_SHARED_DIR");
  std::string d = env ? env : std::string(VISLANG_SOURCE_DIR) + "/../shared";
  struct stat st;
  return (stat((d + "/data").c_str(), &st) == 0) ? d : std::string();
}
}  // namespace vislang::test

TEST_SUITE("core") {

// The register-only loops behind `vislang bench ops` / `bench blip2`'s "% of peak" (their speed is
// printed by the benchmarks, not tested): they run on the threads asked for and return a positive,
// finite rate; the bf16 loop exists exactly where the CPU has AVX512_BF16.
TEST_CASE("cpu features: the peak loops run where the CPU has their instructions") {
  const CpuInfo& ci = cpu_info();
  for (int threads : {1, 2}) {
    const double f32 = cpu_measure_peak_gflops_f32(threads, 0.002), bf16 = cpu_measure_peak_gflops_bf16(threads, 0.002);
    CHECK(std::isfinite(f32));
    CHECK(f32 > 0);
    CHECK(std::isfinite(bf16));
    CHECK((bf16 > 0) == (ci.avx512f && ci.avx512_bf16));
  }
}
  TEST_CASE("f16 conversion rounds to nearest even and round-trips every f16") {
    // Every finite f16 bit pattern survives f16 -> f32 -> f16.
    for (uint32_t h = 0; h < 0x10000; ++h) {
      float f = f16_to_f32(static_cast<uint16_t>(h));
      if (std::isnan(f)) { CHECK(std::isnan(f16_to_f32(f32_to_f16(f)))); continue; }
      REQUIRE(f32_to_f16(f) == h);
    }
    // Ties between two f16 values go to the even mantissa.
    CHECK(f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00);            // halfway 1 and 1+2^-10 -> 1
    CHECK(f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02);            // halfway -> even (2)
    CHECK(f32_to_f16(65504.0f) == 0x7bff);
    CHECK(f32_to_f16(65520.0f) == 0x7c00);                      // rounds to inf
    CHECK(f32_to_f16(5.9604644775390625e-8f) == 0x0001);        // smallest subnormal
    CHECK(f32_to_f16(2.98023223876953125e-8f) == 0x0000);       // half of it: tie -> even (0)
    CHECK(f32_to_f16(-0.0f) == 0x8000);
  }

  TEST_CASE("bf16 conversion rounds to nearest even") {
    CHECK(f32_to_bf16(1.0f) == 0x3f80);
    CHECK(f32_to_bf16(bits_f32(0x3f808000u)) == 0x3f80);  // tie -> even
    CHECK(f32_to_bf16(bits_f32(0x3f818000u)) == 0x3f82);  // tie -> even (up)
    CHECK(f32_to_bf16(bits_f32(0x3f808001u)) == 0x3f81);  // above tie -> up
    CHECK(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    for (uint32_t h = 0; h < 0x10000; ++h) {
      float f = bf16_to_f32(static_cast<uint16_t>(h));
      if (!std::isnan(f)) REQUIRE(f32_to_bf16(f) == h);
    }
  }

  TEST_CASE("views share storage and copy nothing") {
    Tensor x = Tensor::arange(0, 24, 1, DType::F32).view({2, 3, 4});
    Tensor t = x.transpose(0, 2);
    CHECK(t.shape() == Shape{4, 3, 2});
    CHECK(t.storage() == x.storage());
    CHECK_FALSE(t.is_contiguous());
    CHECK(t.contiguous().to_vector<float>()[1] == 12.0f);  // t[0,0,1] = x[1,0,0]
    Tensor n = x.narrow(2, 1, 2);
    CHECK(n.storage() == x.storage());
    CHECK(n.to_vector<float>() == std::vector<float>{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22});
    Tensor s = x.slice(2, 0, 4, 3);
    CHECK(s.to_vector<float>() == std::vector<float>{0, 3, 4, 7, 8, 11, 12, 15, 16, 19, 20, 23});
    CHECK(x.select(1, 2).to_vector<float>() == std::vector<float>{8, 9, 10, 11, 20, 21, 22, 23});
    Tensor p = x.permute({1, 2, 0});
    CHECK(p.shape() == Shape{3, 4, 2});
    CHECK(p.contiguous().to_vector<float>()[1] == 12.0f);
    Tensor e = Tensor::arange(0, 3, 1, DType::F32).view({3, 1}).expand({3, 4});
    CHECK(e.strides() == Shape{1, 0});
    CHECK(e.contiguous().to_vector<float>()[5] == 1.0f);
    CHECK(x.unsqueeze(1).shape() == Shape{2, 1, 3, 4});
    CHECK(x.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});
    CHECK(x.unsqueeze(1).squeeze(1).shape() == x.shape());
    // reshape: a view when the strides allow, a copy otherwise.
    CHECK(x.reshape({6, 4}).storage() == x.storage());
    CHECK(x.reshape({-1}).numel() == 24);
    CHECK(t.reshape({-1}).storage() != x.storage());
    CHECK_THROWS_WITH_AS(t.view({24}), doctest::Contains("without a copy"), Error);
    // writing through a view writes the base
    x.select(0, 1).select(0, 0).fill_(-1);
    CHECK(x.to_vector<float>()[12] == -1.0f);
    CHECK(x.to_vector<float>()[11] == 11.0f);
  }

  TEST_CASE("constructors and dtype casts") {
    CHECK(Tensor::zeros({2, 3}).to_vector<float>() == std::vector<float>(6, 0.0f));
    CHECK(Tensor::ones({4}, DType::I64).to_vector<int64_t>() == std::vector<int64_t>(4, 1));
    CHECK(Tensor::full({2}, 2.5, DType::BF16).to_vector<float>() == std::vector<float>{2.5f, 2.5f});
    CHECK(Tensor::arange(1, 2, 0.25, DType::F64).to_vector<double>() == std::vector<double>{1, 1.25, 1.5, 1.75});
    Tensor h = Tensor::from_vector(std::vector<float>{1.0f + 1.0f / 2048, 3.3f}, {2}).to(DType::F16);
    CHECK(h.dtype() == DType::F16);
    CHECK(h.to_vector<float>()[0] == 1.0f);
    CHECK(Tensor::from_vector(std::vector<float>{1.7f, -1.7f}, {2}).to(DType::I32).to_vector<int32_t>() ==
          std::vector<int32_t>{1, -1});
    CHECK(Tensor::zeros({0, 3}).numel() == 0);
    float buf[4] = {1, 2, 3, 4};
    Tensor b = Tensor::from_blob(buf, {2, 2}, DType::F32);
    buf[3] = 9;
    CHECK(b.to_vector<float>()[3] == 9.0f);
    CHECK_THROWS_WITH_AS(Tensor::from_vector(std::vector<float>{1, 2, 3}, {2, 2}), doctest::Contains("do not fill"), Error);
  }

  TEST_CASE("generator is deterministic and seedable") {
    Generator a(42), b(42), c(43);
    Tensor x = Tensor::randn({100}, a), y = Tensor::randn({100}, b), z = Tensor::randn({100}, c);
    CHECK(x.to_vector<float>() == y.to_vector<float>());
    CHECK(x.to_vector<float>() != z.to_vector<float>());
    auto st = a.state();
    Tensor r1 = Tensor::rand({10}, a);
    a.set_state(st);
    CHECK(Tensor::rand({10}, a).to_vector<float>() == r1.to_vector<float>());
    // moments of 100k normals
    Generator g(7);
    Tensor n = Tensor::randn({100000}, g, DType::F32);
    double m = ops::mean(n, 0).item();
    double v = ops::mean(ops::mul(n, n), 0).item();
    CHECK(std::fabs(m) < 0.01);
    CHECK(std::fabs(v - 1.0) < 0.02);
  }

  TEST_CASE("caching allocator: 64-byte alignment and reuse") {
    Allocator& a = allocator_for(Device::cpu());
    for (size_t n : {1, 7, 63, 64, 65, 1000, 1 << 20, (1 << 20) + 1}) {
      void* p = a.allocate(n);
      CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
      a.deallocate(p, n);
      auto before = a.stats().n_cache_hits;
      void* q = a.allocate(n);
      CHECK(q == p);  // same bucket comes back from the free list
      CHECK(a.stats().n_cache_hits == before + 1);
      a.deallocate(q, n);
    }
    CHECK(allocator_bucket_size(1) == 64);
    CHECK(allocator_bucket_size((1 << 20) + 1) == 2u << 20);
  }

  TEST_CASE("inference mode is scoped") {
    CHECK_FALSE(InferenceMode::enabled());
    {
      InferenceMode g;
      CHECK(InferenceMode::enabled());
    }
    CHECK_FALSE(InferenceMode::enabled());
  }

  TEST_CASE("bad input raises errors that name the op and the tensors") {
    Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
    CHECK_THROWS_WITH_AS(ops::matmul(a, b), doctest::Contains("matmul: inner dims differ"), Error);
    CHECK_THROWS_WITH_AS(ops::matmul(a, b), doctest::Contains("f32 (2, 3) cpu"), Error);
    CHECK_THROWS_WITH_AS(ops::add(a, b), doctest::Contains("add: shapes (2, 3) and (4, 5) cannot be broadcast"), Error);
    CHECK_THROWS_WITH_AS(ops::add(a, a.to(DType::F16)), doctest::Contains("dtypes differ"), Error);
    CHECK_THROWS_WITH_AS(ops::softmax(a, 2), doctest::Contains("softmax: dim 2 out of range"), Error);
    CHECK_THROWS_WITH_AS(ops::exp(Tensor::zeros({2}, DType::I32)), doctest::Contains("must be a floating tensor"), Error);
    CHECK_THROWS_WITH_AS(ops::embedding(a, Tensor::from_vector(std::vector<int64_t>{0, 2}, {2})),
                         doctest::Contains("token id value 2 at flat position 1 is out of range [0, 2)"), Error);
    CHECK_THROWS_WITH_AS(ops::layer_norm(a, Tensor::ones({4}), Tensor()), doctest::Contains("weight must have shape (3,)"),
                         Error);
    CHECK_THROWS_WITH_AS(ops::conv2d(Tensor::zeros({1, 3, 4, 4}), Tensor::zeros({2, 4, 3, 3})),
                         doctest::Contains("expects 4 input channels"), Error);
    CHECK_THROWS_WITH_AS(ops::scaled_dot_product_attention(Tensor::zeros({1, 2, 3, 4}), Tensor::zeros({1, 2, 5, 8}),
                                                            Tensor::zeros({1, 2, 5, 8})),
                         doctest::Contains("must be (B, H, Tk, D)"), Error);
    CHECK_THROWS_WITH_AS(ops::cross_entropy(Tensor::zeros({2, 3}), Tensor::from_vector(std::vector<int64_t>{0, 3}, {2})),
                         doctest::Contains("target 3 at position 1 is out of range"), Error);
    CHECK_THROWS_WITH_AS(a.narrow(1, 2, 2), doctest::Contains("narrow: range [2, 4) out of bounds"), Error);
    CHECK_THROWS_WITH_AS(a.expand({4, 3}), doctest::Contains("cannot expand"), Error);
    CHECK_THROWS_WITH_AS(Device::parse("gpu"), doctest::Contains("expected 'cpu', 'cuda' or 'cuda:N'"), Error);
    if (!cuda_built()) CHECK_THROWS_WITH_AS(a.to(Device::cuda(0)), doctest::Contains("built without CUDA"), Error);
  }

  TEST_CASE("matmul 1-D and broadcast shapes follow torch.matmul") {
    Tensor v = Tensor::ones({3}), m = Tensor::ones({3, 4}), bm = Tensor::ones({2, 5, 3});
    CHECK(ops::matmul(v, m).shape() == Shape{4});
    CHECK(ops::matmul(m, Tensor::ones({4})).shape() == Shape{3});
    CHECK(ops::matmul(bm, m).shape() == Shape{2, 5, 4});
    CHECK(ops::matmul(bm, m).to_vector<float>()[0] == 3.0f);
    CHECK(ops::linear(Tensor::ones({2, 7, 3}), Tensor::ones({5, 3})).shape() == Shape{2, 7, 5});
    CHECK(ops::matmul(Tensor::zeros({2, 0}), Tensor::zeros({0, 3})).to_vector<float>() == std::vector<float>(6, 0.0f));
  }

  TEST_CASE("integer unary ops the front-end allows are exact") {
    Tensor x = Tensor::from_vector(std::vector<int32_t>{-3, 5, 0, -7}, {4});
    CHECK(ops::neg(x).to_vector<int32_t>() == std::vector<int32_t>{3, -5, 0, 7});
    CHECK(ops::unary(UnaryKind::ABS, x).to_vector<int32_t>() == std::vector<int32_t>{3, 5, 0, 7});
    CHECK(ops::relu(x).to_vector<int32_t>() == std::vector<int32_t>{0, 5, 0, 0});
    CHECK(ops::unary(UnaryKind::SQUARE, x).to_vector<int32_t>() == std::vector<int32_t>{9, 25, 0, 49});
    CHECK_THROWS_WITH_AS(ops::exp(x), doctest::Contains("must be a floating tensor"), Error);
  }

  TEST_CASE("concat, stack, split and chunk") {
    Tensor a = Tensor::arange(0, 6, 1, DType::F32).view({2, 3});
    Tensor c = ops::concat({a, a}, 0);
    CHECK(c.shape() == Shape{4, 3});
    CHECK(ops::stack({a, a}, 1).shape() == Shape{2, 2, 3});
    auto parts = ops::split(Tensor::arange(0, 7, 1, DType::F32), 3, 0);
    REQUIRE(parts.size() == 3);
    CHECK(parts[2].to_vector<float>() == std::vector<float>{6});
    CHECK(ops::chunk(a, 3, 1).size() == 3);
    CHECK_THROWS_WITH_AS(ops::concat({a, Tensor::zeros({2, 2, 1})}, 0), doctest::Contains("different rank"), Error);
  }

  TEST_CASE("review regressions: 0-d reshape, as_strided/expand bounds, matmul batch merge, avg_pool2d size") {
    // A 0-d tensor reshapes / flattens / views to any all-ones shape (torch does).
    Tensor s = Tensor::full({}, 5.0, DType::F32);
    CHECK(s.reshape({1, 1}).shape() == Shape{1, 1});
    CHECK(s.flatten(0, -1).to_vector<float>() == std::vector<float>{5});
    CHECK(s.view({1}).to_vector<float>() == std::vector<float>{5});
    CHECK(ops::sum_all(s).item() == 5.0);
    // as_strided / expand reject views past the storage or with negative sizes.
    Tensor four = Tensor::ones({4}, DType::F32);
    CHECK_THROWS_WITH_AS(four.as_strided({100}, {1}, 0), doctest::Contains("out of bounds"), Error);
    CHECK_THROWS_WITH_AS(four.as_strided({2}, {1}, 3), doctest::Contains("out of bounds"), Error);
    CHECK(four.as_strided({2, 2}, {0, 1}, 2).numel() == 4);
    CHECK_THROWS_AS(Tensor::ones({1}, DType::F32).expand({-3}), Error);
    // Batch dims (2, 1, 3) whose strides only merge if the size-1 dim is skipped correctly:
    // a (2,1,3,M,K) = transpose of a contiguous (3,1,2,M,K) is NOT mergeable (dims 0 and 2 out of order).
    std::vector<float> xv(36);
    for (size_t i = 0; i < xv.size(); ++i) xv[i] = static_cast<float>(i);
    Tensor a = Tensor::from_vector(xv, {3, 1, 2, 2, 3}).transpose(0, 2);
    Tensor b = Tensor::from_vector(std::vector<float>{1, 0, -1, 2, 0.5f, 1}, {3, 2});
    CHECK(ops::matmul(a, b).to_vector<float>() == ops::matmul(a.contiguous(), b).to_vector<float>());
    // torch: (2,1,3,2) @ (1,4,2,3) -> (2,4,3,3), sum 4608, [1,2] = [[88.5,95,101.5],...]
    Tensor a2 = Tensor::arange(0, 12, 1, DType::F32).view({2, 1, 3, 2});
    Tensor b2 = ops::mul(Tensor::arange(0, 24, 1, DType::F32), 0.5).view({1, 4, 2, 3});
    Tensor r = ops::matmul(a2, b2);
    CHECK(r.shape() == Shape{2, 4, 3, 3});
    CHECK(ops::sum_all(r).item() == doctest::Approx(4608));
    CHECK(r.select(0, 1).select(0, 2).select(0, 0).to_vector<float>() == std::vector<float>{88.5f, 95, 101.5f});
    // linear with zero input features gives zeros (torch), not a reshape error.
    Tensor lin = ops::linear(Tensor::ones({3, 0}, DType::F32), Tensor::ones({5, 0}, DType::F32));
    CHECK(lin.shape() == Shape{3, 5});
    CHECK(ops::sum_all(lin).item() == 0.0);
    // avg_pool2d: an input smaller than the kernel is an error without ceil_mode (floor division, as torch),
    // and one output with ceil_mode; ceil_mode sizes match torch.
    ops::Pool2dOptions o;
    o.kernel_h = o.kernel_w = 4;
    o.stride_h = o.stride_w = 3;
    Tensor small = Tensor::ones({1, 1, 2, 2}, DType::F32);
    CHECK_THROWS_WITH_AS(ops::avg_pool2d(small, o), doctest::Contains("smaller than the kernel"), Error);
    o.ceil_mode = true;
    CHECK(ops::avg_pool2d(small, o).shape() == Shape{1, 1, 1, 1});
    ops::Pool2dOptions o2;
    o2.kernel_h = o2.kernel_w = 3;
    o2.stride_h = o2.stride_w = 2;
    o2.pad_h = o2.pad_w = 1;
    o2.ceil_mode = true;
    o2.count_include_pad = false;
    Tensor p = ops::avg_pool2d(Tensor::arange(0, 25, 1, DType::F32).view({1, 1, 5, 5}), o2);
    CHECK(p.shape() == Shape{1, 1, 3, 3});
    CHECK(p.to_vector<float>() == std::vector<float>{3, 4.5f, 6, 10.5f, 12, 13.5f, 18, 19.5f, 21});
  }
}
