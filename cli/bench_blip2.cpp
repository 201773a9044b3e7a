// cli/bench_blip2.cpp — `vislang bench blip2`: BLIP-2 image throughput, the part of retrieval that
// scales with the number of images:
//   vision + Q-Former  pixels (B, 3, 224, 224) → ViT-g (B, 257, 1408) → Q-Former (B, 32, 768)
//                      → vision_projection + normalize (B, 32, 256)      = Blip2Retrieval::encode_image
//   Q-Former alone     image features (B, 257, 1408) → (B, 32, 256)       = query_features + image_embeds
// at each --batch size (default 1 and 8), median of --reps runs after --warmup runs. Inputs are
// random (pixels ~ N(0, 1), features ~ N(0, 1)) and already on the device, so only the forward passes
// are timed; ~97% of the work is the ViT-g (about 0.5 TFLOP per image).
//
// --model is a model path, or a preset (blip2-itm-vit-g, blip2-itm-vit-g-coco, blip2-tiny) meaning
// random weights of that shape: models/blip2 write_random_blip2() writes them to a temporary
// .safetensors (f32, 4.6 GB for ViT-g; in a forked child, so the parent's peak RSS is that of loading
// and running the model, as for a real checkpoint), which Blip2Retrieval::load then maps. With
// --dtype f16 / bf16 the child rewrites that file in the run dtype (2.3 GB), as a checkpoint saved in
// that dtype would be: its weights are then mapped, not converted into memory.
// --dtype bf16 multiplies bf16 values with f32 sums (bgemm, kernels/cpu/gemm.h; docs/engine.md).
// tools/reference/bench_blip2_torch.py runs this and transformers' Blip2ForImageTextRetrieval at the
// same shapes and thread count and prints the ratios.
#include <omp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "cli/clip_common.h"
#include "cli/commands.h"
#include "core/cpu_features.h"
#include "models/blip2/blip2.h"
#include "weights/safetensors.h"

using namespace vislang;
using namespace vislang::cli;

namespace {

using Clock = std::chrono::steady_clock;

// Median wall time of `reps` calls after `warmup` untimed ones, in ms.
double time_median_ms(const std::function<void()>& fn, int warmup, int reps, bool cuda) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> t(static_cast<size_t>(reps));
  for (double& ms : t) {
    if (cuda) cuda_synchronize();
    const auto t0 = Clock::now();
    fn();
    if (cuda) cuda_synchronize();
    ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  }
  std::nth_element(t.begin(), t.begin() + reps / 2, t.end());
  const double upper = t[reps / 2];
  if (reps % 2) return upper;
  return 0.5 * (upper + *std::max_element(t.begin(), t.begin() + reps / 2));
}

// Runs `fn` in a forked child and waits; the parent has started no threads yet.
void in_child(const std::function<void()>& fn, const std::string& what) {
  std::cout.flush();
  std::cerr.flush();
  const pid_t pid = ::fork();
  VL_CHECK(pid >= 0, "bench blip2: fork failed");
  if (pid == 0) {
    int rc = 0;
    try {
      fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "vislang bench blip2: %s failed: %s\n", what.c_str(), e.what());
      rc = 1;
    }
    ::_exit(rc);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  VL_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "bench blip2: ", what, " failed (see above)");
}

// Rewrites the safetensors file at `path` with its floating tensors in dtype `dt` (metadata kept).
void convert_checkpoint(const std::string& path, DType dt) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;
  {
    const SafeTensorsFile f = SafeTensorsFile::open(path);
    metadata = f.metadata();
    for (const std::string& name : f.names()) {
      Tensor t = f.get(name);
      tensors.emplace_back(name, is_floating(t.dtype()) ? t.to(dt) : t.clone());
    }
  }
  save_safetensors(path, tensors, metadata);
}

std::vector<int> parse_batches(const std::string& s) {
  std::vector<int> out;
  for (const std::string& item : split_commas(s)) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (!end || *end || v < 1 || v > 4096) throw UsageError(str("--batch: '", item, "' is not a batch size in [1, 4096]"));
    out.push_back(static_cast<int>(v));
  }
  if (out.empty()) throw UsageError("--batch needs at least one size, e.g. --batch 1,8");
  return out;
}

ArgParser bench_parser() {
  ArgParser p("bench blip2", "[--model M] [--batch 1,8] [--threads N] [--reps R] [--part all|vision|qformer] "
              "[--format table|json]",
              "BLIP-2 image throughput: images/s through the vision tower + Q-Former (encode_image) and\n"
              "through the Q-Former alone, per batch size, median of R runs after warm-up. M is a model\n"
              "path or a preset (blip2-itm-vit-g, blip2-itm-vit-g-coco, blip2-tiny) meaning random weights.");
  p.value("--model", "M", "model path or preset (default blip2-itm-vit-g)", "model");
  p.alias("-m");
  p.value("--device", "DEV", "cpu (default), cuda or cuda:N", "model");
  p.value("--dtype", "T", "f32 (default), f16 or bf16", "model");
  p.value("--threads", "N", "OpenMP threads (default: $OMP_NUM_THREADS or every core)", "model");
  p.value("--seed", "S", "seed of the random weights and inputs (default 0)", "model");
  p.value("--batch", "B,B", "comma-separated batch sizes (default 1,8)", "run");
  p.value("--reps", "R", "timed runs per measurement (default 3)", "run");
  p.value("--warmup", "W", "untimed runs first (default 1)", "run");
  p.value("--part", "P", "all (default), vision (vision + Q-Former only) or qformer (Q-Former only)", "run");
  p.value("--format", "F", "table (default) or json", "output");
  p.epilog("Compare with PyTorch (transformers): python3 tools/reference/bench_blip2_torch.py --threads 2");
  return p;
}

int bench_main(const Parsed& a) {
  const std::string model = a.get("--model", "blip2-itm-vit-g"), part = a.get("--part", "all");
  const std::string format = a.get("--format", "table");
  const std::vector<int> batches = parse_batches(a.get("--batch", "1,8"));
  const int reps = static_cast<int>(a.get_int("--reps", 3, 1, 1 << 20));
  const int warmup = static_cast<int>(a.get_int("--warmup", 1, 0, 1 << 20));
  const uint64_t seed = static_cast<uint64_t>(a.get_int("--seed", 0, 0, 1LL << 62));
  if (part != "all" && part != "vision" && part != "qformer")
    throw UsageError(str("--part must be all, vision or qformer, got '", part, "'"));
  if (format != "table" && format != "json") throw UsageError(str("--format must be table or json, got '", format, "'"));
  const DType dtype = parse_dtype(a.get("--dtype", "f32"));

  std::string path = model, tmp;
  double gen_s = 0;
  struct stat st;
  const bool random = ::stat(model.c_str(), &st) != 0;
  if (random) {
    blip2::Blip2Config cfg;
    try {
      cfg = blip2::Blip2Config::preset(model);
    } catch (const Error& e) {
      VL_FAIL("model '", model, "' is neither an existing path nor a preset (", e.what(), ")");
    }
    tmp = (std::filesystem::temp_directory_path() / str("vislang_random_", model, "_", ::getpid(), ".safetensors")).string();
    const auto t0 = Clock::now();
    in_child(
        [&] {
          blip2::write_random_blip2(cfg, tmp, seed);
          if (dtype != DType::F32) convert_checkpoint(tmp, dtype);
        },
        "writing random " + model + " weights to " + tmp);
    gen_s = std::chrono::duration<double>(Clock::now() - t0).count();
    path = tmp;
  }
  struct Remove {
    std::string p;
    ~Remove() {
      if (!p.empty()) ::unlink(p.c_str());
    }
  } remove_tmp{tmp};

  Runtime rt = apply_runtime_options(a);
  const bool cuda = rt.device.is_cuda();
  auto t0 = Clock::now();
  blip2::Blip2Retrieval m = blip2::Blip2Retrieval::load(path, rt.device, rt.dtype);
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!tmp.empty()) ::unlink(tmp.c_str()), remove_tmp.p.clear();  // the mapping keeps the data
  const blip2::Blip2Config& c = m.config();
  const int64_t S = c.vision.image_size, N1 = c.vision.num_patches() + 1, Cv = c.vision.width;

  struct Row {
    std::string part;
    int batch;
    double ms;
  };
  std::vector<Row> rows;
  Generator gen(seed + 1);
  for (int B : batches) {
    if (part != "qformer") {
      Tensor pixels = Tensor::randn({B, 3, S, S}, gen).to(rt.device, rt.dtype);  // (B, 3, S, S)
      rows.push_back({"vision + Q-Former", B, time_median_ms([&] { (void)m.encode_image(pixels); }, warmup, reps, cuda)});
    }
    if (part != "vision") {
      Tensor feats = Tensor::randn({B, N1, Cv}, gen).to(rt.device);  // (B, 1 + N, Cv) f32
      rows.push_back({"Q-Former alone", B,
                      time_median_ms([&] { (void)m.image_embeds(m.query_features(feats)); }, warmup, reps, cuda)});
    }
  }
  // Flops per image of each part, and the register-only peak of the arithmetic the dtype runs on
  // (f32: the FMA loop; bf16: vdpbf16ps, what bgemm is built on) at this thread count: no kernel
  // can do the part's flops faster than gflop / peak.
  const blip2::ImageFlops fl = blip2::image_flops(c), fl_written = blip2::image_flops(c, /*as_written=*/true);
  auto gflop_of = [&](const Row& r, const blip2::ImageFlops& f) {
    return (r.part == "Q-Former alone" ? f.qformer : f.vision + f.qformer) / 1e9;
  };
  // (bf16 without AVX512_BF16 runs on f32 FMAs: the bf16 loop then returns 0 and the f32 one counts.)
  double peak = 0;
  const char* peak_what = "vdpbf16ps loop";
  if (!cuda && rt.dtype == DType::BF16) peak = cpu_measure_peak_gflops_bf16(rt.threads, 0.3);
  if (!cuda && peak == 0) peak = cpu_measure_peak_gflops_f32(rt.threads, 0.3), peak_what = "f32 FMA loop";
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  const double rss_mib = ru.ru_maxrss / 1024.0;
  const std::string device_name = cuda ? cuda_device_name(rt.device.index) : cpu_info().brand;

  if (format == "json") {
    nlohmann::json j = {{"model", model}, {"random_weights", random}, {"config", c.name},
                        {"device", rt.device.name()}, {"device_name", device_name}, {"dtype", dtype_name(rt.dtype)},
                        {"threads", rt.threads}, {"reps", reps}, {"warmup", warmup}, {"image_size", S},
                        {"peak_rss_mib", rss_mib}, {"load_s", load_s}, {"random_weights_s", gen_s}};
    if (!cuda) j["measured_peak_gflops"] = peak, j["measured_peak_of"] = peak_what;
    for (const Row& r : rows)
      j["results"].push_back({{"part", r.part}, {"batch", r.batch}, {"ms", r.ms}, {"images_per_s", r.batch * 1000.0 / r.ms},
                              {"gflop_per_image", gflop_of(r, fl)}, {"gflop_per_image_as_written", gflop_of(r, fl_written)}});
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("vislang bench blip2 — %s%s, %s %s (%s), %d threads\n", model.c_str(), random ? " (random weights)" : "",
              rt.device.name().c_str(), dtype_name(rt.dtype), device_name.c_str(), rt.threads);
  std::printf("ViT width %lld x %lld layers, %lld tokens; Q-Former width %lld x %lld layers, %lld queries; "
              "median of %d runs after %d warm-up\n\n",
              (long long)Cv, (long long)c.vision.layers, (long long)N1, (long long)c.qformer.width,
              (long long)c.qformer.layers, (long long)c.num_query_tokens, reps, warmup);
  std::printf("%-20s %6s %12s %12s %12s %9s %8s\n", "part", "batch", "ms/batch", "images/s", "GFLOP/image", "GFLOP/s",
              "%peak");
  for (const Row& r : rows) {
    const double gflops = gflop_of(r, fl) * r.batch * 1000.0 / r.ms;
    std::printf("%-20s %6d %12.1f %12.2f %12.2f %9.1f %7.0f%%\n", r.part.c_str(), r.batch, r.ms, r.batch * 1000.0 / r.ms,
                gflop_of(r, fl), gflops, cuda ? 0.0 : 100.0 * gflops / peak);
  }
  if (!cuda)
    std::printf("\nGFLOP/image: the matmuls as vislang runs them (Q-Former %.2f GFLOP; %.2f with its cross-attention as\n"
                "written, see docs/qformer.md). %%peak: of %.1f GFLOP/s, a register-only %s\n"
                "on %d threads measured after the runs.\n",
                fl.qformer / 1e9, fl_written.qformer / 1e9, peak, peak_what, rt.threads);
  std::printf("\npeak RSS %.0f MiB (this process); load %.2f s", rss_mib, load_s);
  if (random) std::printf("; random weights written (%s) by a child process in %.1f s", dtype_name(dtype), gen_s);
  std::printf("\n");
  return 0;
}

}  // namespace

int run_bench_blip2(int argc, char** argv) {
  ArgParser p = bench_parser();
  return run_command(p, argc, argv, bench_main);
}
