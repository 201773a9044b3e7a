// cli/bench_ops.cpp — `vislang bench ops`: throughput of the ops a ViT-B/32 forward spends its time in,
// at batch 32 (32 images × 50 tokens = 1600 rows, width 768, MLP 3072, 12 heads of 64).
//
// Each case calls the public op API (kernels/ops.h) exactly as a model does — output allocation
// included — after warm-up runs, and reports the median of --reps timed runs as GFLOP/s, GB/s and %
// of the fp32 peak (core/cpu_features.h: threads × nominal clock × flops/cycle). Counting rules:
//   matmul / linear / conv2d: 2·M·N·K;  attention: 4·B·H·Tq·Tk·D (q·kᵀ and p·v; softmax not counted);
//   elementwise and normalization ops: nominal counts from their formulas, a transcendental = 1
//     (gelu 5, quick_gelu 4, softmax 5, layer_norm 7 flop/element) — GB/s is their real metric.
//   bytes = every input read once + every output written once (a lower bound on the traffic).
// The *_bf16 cases run the same linear layers on bf16 tensors (bgemm: bf16 products, f32 sums; see
// kernels/cpu/gemm.h): AVX512_BF16 does two products per f32 lane, so they may exceed 100 %peak.
// tools/reference/bench_torch_ops.py runs the same cases in PyTorch and prints the ratios.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/cpu_features.h"
#include "kernels/backend.h"
#include "kernels/ops.h"

namespace {

using namespace vislang;

struct Case {
  std::string name;   // stable key, shared with bench_torch_ops.py
  std::string shape;  // human-readable problem size
  double flops;       // per call
  double bytes;       // per call
  std::function<Tensor()> run;
};

struct Result {
  std::string name, shape;
  double ms, gflops, gbps;
};

constexpr int64_t kBatch = 32, kTokens = 50, kRows = kBatch * kTokens, kWidth = 768, kMlp = 3072,
                  kHeads = 12, kHeadDim = 64, kImage = 224, kPatch = 32;

std::vector<Case> make_cases(Device dev) {
  Generator gen(1234);
  auto randn = [&](const Shape& s) { return Tensor::randn(s, gen, DType::F32, dev, 0.0, 1.0); };
  auto matmul_case = [&](const char* name, int64_t M, int64_t K, int64_t N) {
    Tensor a = randn({M, K}), b = randn({K, N});
    return Case{name, std::to_string(M) + "x" + std::to_string(K) + " @ " + std::to_string(K) + "x" + std::to_string(N),
                2.0 * M * N * K, 4.0 * (M * K + K * N + M * N), [a, b] { return ops::matmul(a, b); }};
  };
  std::vector<Case> cases;
  cases.push_back(matmul_case("matmul_fc1", kRows, kWidth, kMlp));
  cases.push_back(matmul_case("matmul_fc2", kRows, kMlp, kWidth));
  cases.push_back(matmul_case("matmul_qkv", kRows, kWidth, 3 * kWidth));
  // A linear layer as the model runs it: x·Wᵀ (W in nn.Linear layout) + bias, activation fused.
  auto linear_case = [&](const char* name, const char* shape, int64_t in, int64_t out, Activation act, DType t) {
    Tensor x = randn({kRows, in}).to(t), w = randn({out, in}).to(t), b = randn({out}).to(t);
    return Case{name, shape, 2.0 * kRows * out * in, double(dtype_size(t)) * (kRows * in + out * in + out + kRows * out),
                [x, w, b, act] { return ops::linear(x, w, b, act); }};
  };
  cases.push_back(linear_case("linear_fc1_quick_gelu", "1600x768 @ (3072x768)^T + b, quick_gelu", kWidth, kMlp,
                              Activation::QUICK_GELU, DType::F32));
  cases.push_back(linear_case("linear_fc1_bf16", "the same in bf16", kWidth, kMlp, Activation::QUICK_GELU,
                              DType::BF16));
  cases.push_back(linear_case("linear_fc2_bf16", "1600x3072 @ (768x3072)^T + b, bf16", kMlp, kWidth, Activation::NONE,
                              DType::BF16));
  {
    Tensor q = randn({kBatch, kHeads, kTokens, kHeadDim}), k = randn({kBatch, kHeads, kTokens, kHeadDim}),
           v = randn({kBatch, kHeads, kTokens, kHeadDim});
    const double bh = double(kBatch * kHeads);
    cases.push_back({"attention", "32x12 heads, 50 tokens, 64 dims", 4.0 * bh * kTokens * kTokens * kHeadDim,
                     4.0 * 4 * bh * kTokens * kHeadDim,
                     [q, k, v] { return ops::scaled_dot_product_attention(q, k, v); }});
  }
  {
    Tensor x = randn({kRows, kWidth}), w = randn({kWidth}), b = randn({kWidth});
    const double n = double(kRows * kWidth);
    cases.push_back({"layer_norm", "1600x768", 7 * n, 4.0 * (2 * n + 2 * kWidth),
                     [x, w, b] { return ops::layer_norm(x, w, b, 1e-5); }});
  }
  {
    Tensor x = randn({kRows, kMlp});
    const double n = double(kRows * kMlp);
    cases.push_back({"gelu", "1600x3072", 5 * n, 8 * n, [x] { return ops::gelu(x); }});
    cases.push_back({"quick_gelu", "1600x3072", 4 * n, 8 * n, [x] { return ops::quick_gelu(x); }});
  }
  {
    Tensor x = randn({kBatch * kHeads, kTokens, kTokens});
    const double n = double(kBatch * kHeads * kTokens * kTokens);
    cases.push_back({"softmax", "384x50x50, last dim", 5 * n, 8 * n, [x] { return ops::softmax(x, -1); }});
  }
  {
    Tensor x = randn({kBatch, 3, kImage, kImage}), w = randn({kWidth, 3, kPatch, kPatch});
    const int64_t P = (kImage / kPatch) * (kImage / kPatch), CKK = 3 * kPatch * kPatch;
    ops::Conv2dOptions o;
    o.stride_h = o.stride_w = kPatch;
    cases.push_back({"conv2d_patch", "32x3x224x224 * 768x3x32x32 /32", 2.0 * kBatch * kWidth * P * CKK,
                     4.0 * (double(x.numel()) + double(w.numel()) + double(kBatch * kWidth * P)),
                     [x, w, o] { return ops::conv2d(x, w, Tensor(), o); }});
  }
  return cases;
}

double median_ms(const std::function<Tensor()>& run, int warmup, int reps, bool cuda) {
  for (int i = 0; i < warmup; ++i) run();
  if (cuda) cuda_synchronize();
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    if (cuda) cuda_synchronize();
    auto t0 = std::chrono::steady_clock::now();
    Tensor out = run();
    if (cuda) cuda_synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const size_t n = ms.size();
  return n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
}

void usage(std::ostream& os) {
  os << "usage: vislang bench ops [--device cpu|cuda[:N]] [--reps N] [--warmup N] [--threads N]\n"
        "                         [--format table|json] [--filter SUBSTRING]\n"
        "  Times the ops of a ViT-B/32 forward at batch 32 through the public op API and prints the\n"
        "  median of N runs (default 10, after 3 warm-up runs) as GFLOP/s, GB/s and % of fp32 peak.\n"
        "  --threads sets the OpenMP thread count (default: OMP_NUM_THREADS or all cores).\n"
        "  Compare with PyTorch: python3 tools/reference/bench_torch_ops.py\n";
}

}  // namespace

int run_bench_ops(int argc, char** argv) {
  std::string device = "cpu", format = "table", filter;
  int reps = 10, warmup = 3, threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error("bench ops: option " + a + " needs a value");
      return argv[++i];
    };
    auto int_value = [&](int lo) {
      const std::string v = value();
      int n = 0;
      try {
        n = std::stoi(v);
      } catch (const std::exception&) {
        throw Error("bench ops: " + a + " expects an integer, got '" + v + "'");
      }
      if (n < lo) throw Error("bench ops: " + a + " must be >= " + std::to_string(lo) + ", got " + v);
      return n;
    };
    if (a == "--help" || a == "-h") {
      usage(std::cout);
      return 0;
    } else if (a == "--device") {
      device = value();
    } else if (a == "--reps") {
      reps = int_value(1);
    } else if (a == "--warmup") {
      warmup = int_value(0);
    } else if (a == "--threads") {
      threads = int_value(1);
    } else if (a == "--format") {
      format = value();
      if (format != "table" && format != "json") throw Error("bench ops: --format must be table or json, got '" + format + "'");
    } else if (a == "--filter") {
      filter = value();
    } else {
      std::cerr << "vislang bench ops: unknown option '" << a << "'\n";
      usage(std::cerr);
      return 2;
    }
  }
  const Device dev = Device::parse(device);
  const bool cuda = dev.is_cuda();
  if (threads > 0) omp_set_num_threads(threads);
  threads = omp_get_max_threads();
  InferenceMode no_grad;

  const CpuInfo& ci = cpu_info();
  const double peak = cuda ? 0 : cpu_peak_gflops_f32(threads);
  const double measured_peak = cuda ? 0 : cpu_measure_peak_gflops_f32(threads, 0.1);

  std::vector<Result> results;
  for (const Case& c : make_cases(dev)) {
    if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
    const double ms = median_ms(c.run, warmup, reps, cuda);
    results.push_back({c.name, c.shape, ms, c.flops / ms / 1e6, c.bytes / ms / 1e6});
  }

  std::string device_name = cuda ? cuda_device_name(dev.index) : ci.brand;
  if (format == "json") {
    nlohmann::json j;
    j["device"] = dev.name();
    j["device_name"] = device_name;
    j["threads"] = threads;
    j["reps"] = reps;
    j["warmup"] = warmup;
    j["peak_gflops_f32"] = cuda ? nlohmann::json(nullptr) : nlohmann::json(peak);
    j["measured_fma_peak_gflops_f32"] = cuda ? nlohmann::json(nullptr) : nlohmann::json(measured_peak);
    j["results"] = nlohmann::json::array();
    for (const Result& r : results) {
      nlohmann::json e = {{"name", r.name}, {"shape", r.shape}, {"ms", r.ms}, {"gflops", r.gflops}, {"gbps", r.gbps}};
      e["pct_peak"] = cuda ? nlohmann::json(nullptr) : nlohmann::json(100.0 * r.gflops / peak);
      j["results"].push_back(e);
    }
    std::cout << j.dump(2) << "\n";
    return 0;
  }

  std::printf("vislang bench ops — ViT-B/32 forward shapes at batch 32, device %s (%s)\n", dev.name().c_str(),
              device_name.c_str());
  if (!cuda) {
    std::printf("%d OpenMP threads; fp32 peak %.1f GFLOP/s nominal (%d flop/cycle × %.3f GHz × %d), "
                "%.1f GFLOP/s measured with an FMA loop\n",
                threads, peak, ci.flops_per_cycle_f32(), ci.clock_ghz, threads, measured_peak);
  }
  std::printf("median of %d runs after %d warm-up runs\n\n", reps, warmup);
  std::printf("%-22s %-42s %10s %10s %9s %7s %7s\n", "op", "shape", "ms", "GFLOP/s", "GB/s", "%peak", "%meas");
  for (const Result& r : results) {
    if (cuda) {
      std::printf("%-22s %-42s %10.3f %10.1f %9.1f %7s %7s\n", r.name.c_str(), r.shape.c_str(), r.ms, r.gflops,
                  r.gbps, "-", "-");
    } else {
      std::printf("%-22s %-42s %10.3f %10.1f %9.1f %6.1f%% %6.1f%%\n", r.name.c_str(), r.shape.c_str(), r.ms,
                  r.gflops, r.gbps, 100.0 * r.gflops / peak, 100.0 * r.gflops / measured_peak);
    }
  }
  if (!cuda)
    std::printf("\n%%peak: of the nominal-clock peak (boosting cores can exceed 100%%); %%meas: of the measured FMA "
                "peak. Elementwise flop counts are nominal; GB/s is their metric.\n");
  return 0;
}
