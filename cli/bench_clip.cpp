// cli/bench_clip.cpp — `vislang bench clip`: end-to-end CLIP throughput (images/s through the image
// tower, texts/s through the text tower), peak memory and the weights' size.
//
// Inputs are random: pixels ~ N(0, 1) of shape (B, 3, S, S) (already preprocessed — decoding and
// resizing are not timed), and token ids of the full context length (SOT, random ids, EOT last).
// Each tower runs --warmup times, then --reps timed runs; the median is reported. Inputs are moved
// to the device and dtype before timing, so the numbers are the model's forward passes only.
//
// --model is a model path, or a preset name ("ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14-336",
// "RN50") meaning random weights of that shape: write_random_clip() writes them, named exactly as
// models/clip/clip.cpp loads them, into a temporary .safetensors that ClipModel::load then maps. It
// runs in a forked child process, so that the peak RSS reported (getrusage, this process only) is
// that of loading and running the model — not of generating the weights — as for a real checkpoint.
// tools/reference/bench_peers.py runs this next to PyTorch and ONNX Runtime.
#include <omp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/clip_common.h"
#include "cli/commands.h"
#include "core/cpu_features.h"
#include "kernels/backend.h"
#include "weights/safetensors.h"

using namespace vislang;
using namespace vislang::cli;
namespace fs = std::filesystem;

namespace vislang::cli {

// Random weights for `c`, named as ClipModel::from_weights expects (HF names for the ViT and text
// towers, OpenAI's `visual.` names for the ModifiedResNet), with the config as `vislang.config`
// metadata, so that ClipModel::load(path) reads it like a converted checkpoint. Linear and conv
// weights ~ N(0, 1/fan_in) (activations keep their scale through the layers: no denormals, no
// overflow), embeddings ~ N(0, 0.02²), norms 1/0, biases 0, BatchNorm statistics mean 0 / var 1.
void write_random_clip(const clip::ClipConfig& c, const std::string& path, uint64_t seed) {
  Generator gen(seed);
  std::vector<std::pair<std::string, Tensor>> t;
  auto normal = [&](const std::string& n, const Shape& s, double sd) {
    t.emplace_back(n, Tensor::randn(s, gen, DType::F32, Device::cpu(), 0.0, sd));
  };
  auto fill = [&](const std::string& n, const Shape& s, double v) { t.emplace_back(n, Tensor::full(s, v)); };
  auto linear = [&](const std::string& p, int64_t in, int64_t out, bool bias) {
    normal(p + ".weight", {out, in}, 1.0 / std::sqrt(double(in)));
    if (bias) fill(p + ".bias", {out}, 0.0);
  };
  auto norm = [&](const std::string& p, int64_t d) {
    fill(p + ".weight", {d}, 1.0);
    fill(p + ".bias", {d}, 0.0);
  };
  auto encoder = [&](const std::string& p, int64_t n, int64_t w, int64_t mlp) {
    for (int64_t i = 0; i < n; ++i) {
      std::string l = p + ".layers." + std::to_string(i);
      norm(l + ".layer_norm1", w);
      for (const char* proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) linear(l + ".self_attn." + proj, w, w, true);
      norm(l + ".layer_norm2", w);
      linear(l + ".mlp.fc1", w, mlp, true);
      linear(l + ".mlp.fc2", mlp, w, true);
    }
  };
  const clip::VisionConfig& v = c.vision;
  if (v.type == "vit") {
    const int64_t C = v.width, P = v.patch_size, N = (v.image_size / P) * (v.image_size / P);
    normal("vision_model.embeddings.class_embedding", {C}, 0.02);
    normal("vision_model.embeddings.patch_embedding.weight", {C, 3, P, P}, 1.0 / std::sqrt(3.0 * P * P));
    normal("vision_model.embeddings.position_embedding.weight", {N + 1, C}, 0.02);
    norm("vision_model.pre_layrnorm", C);
    encoder("vision_model.encoder", v.layers, C, v.mlp_dim);
    norm("vision_model.post_layernorm", C);
    linear("visual_projection", C, c.projection_dim, false);
  } else {
    VL_CHECK(v.type == "resnet" && v.resnet_layers.size() == 4, "write_random_clip: unsupported vision tower '", v.type, "'");
    auto conv_bn = [&](const std::string& conv, const std::string& bn, int64_t in, int64_t out, int64_t k) {
      normal(conv + ".weight", {out, in, k, k}, 1.0 / std::sqrt(double(in * k * k)));
      norm(bn, out);
      fill(bn + ".running_mean", {out}, 0.0);
      fill(bn + ".running_var", {out}, 1.0);
    };
    const int64_t w = v.width;
    conv_bn("visual.conv1", "visual.bn1", 3, w / 2, 3);
    conv_bn("visual.conv2", "visual.bn2", w / 2, w / 2, 3);
    conv_bn("visual.conv3", "visual.bn3", w / 2, w, 3);
    int64_t inplanes = w;
    for (int i = 0; i < 4; ++i) {
      const int64_t planes = w << i;
      for (int64_t j = 0; j < v.resnet_layers[i]; ++j) {
        const std::string b = "visual.layer" + std::to_string(i + 1) + "." + std::to_string(j);
        const int64_t stride = (i > 0 && j == 0) ? 2 : 1;
        conv_bn(b + ".conv1", b + ".bn1", inplanes, planes, 1);
        conv_bn(b + ".conv2", b + ".bn2", planes, planes, 3);
        conv_bn(b + ".conv3", b + ".bn3", planes, planes * 4, 1);
        if (stride > 1 || inplanes != planes * 4) conv_bn(b + ".downsample.0", b + ".downsample.1", inplanes, planes * 4, 1);
        inplanes = planes * 4;
      }
    }
    const int64_t D = w * 32, sp = v.image_size / 32;
    normal("visual.attnpool.positional_embedding", {sp * sp + 1, D}, 1.0 / std::sqrt(double(D)));
    for (const char* proj : {"q_proj", "k_proj", "v_proj"}) linear(std::string("visual.attnpool.") + proj, D, D, true);
    linear("visual.attnpool.c_proj", D, c.projection_dim, true);
  }
  const clip::TextConfig& tc = c.text;
  normal("text_model.embeddings.token_embedding.weight", {tc.vocab_size, tc.width}, 0.02);
  normal("text_model.embeddings.position_embedding.weight", {tc.context_length, tc.width}, 0.01);
  encoder("text_model.encoder", tc.layers, tc.width, tc.mlp_dim);
  norm("text_model.final_layer_norm", tc.width);
  linear("text_projection", tc.width, c.projection_dim, false);
  t.emplace_back("logit_scale", Tensor::full({}, std::log(1 / 0.07)));
  save_safetensors(path, t,
                   {{"format", "vislang-clip-1"},
                    {"vislang.config", c.to_json().dump()},
                    {"vislang.random_seed", std::to_string(seed)}});
}

}  // namespace vislang::cli

namespace {

bool path_exists(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0;
}

// write_random_clip in a child process (see the file header). The parent has not started any
// OpenMP or CUDA threads yet when this runs.
void write_random_clip_in_child(const clip::ClipConfig& c, const std::string& path, uint64_t seed) {
  std::cout.flush();
  std::cerr.flush();
  pid_t pid = ::fork();
  VL_CHECK(pid >= 0, "bench clip: fork failed");
  if (pid == 0) {
    try {
      write_random_clip(c, path, seed);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "vislang bench clip: writing random weights to %s failed: %s\n", path.c_str(), e.what());
      ::_exit(1);
    }
    ::_exit(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  VL_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "bench clip: generating random ", c.name,
           " weights in ", path, " failed (see above)");
}

double median_ms(const std::function<void()>& run, int warmup, int reps, bool cuda) {
  for (int i = 0; i < warmup; ++i) run();
  if (cuda) cuda_synchronize();
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    run();
    if (cuda) cuda_synchronize();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const size_t n = ms.size();
  return n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
}

double peak_rss_mib() {
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // Linux: kilobytes
}

// Sizes of the checkpoint's tensors. `params` counts every tensor element in the file (BatchNorm
// running statistics included, so RN50 shows slightly more than its trainable parameters).
struct WeightStats {
  int64_t params = 0, vision_params = 0, text_params = 0;
  double bytes = 0, vision_bytes = 0, text_bytes = 0;  // at the model's dtype
};

WeightStats weight_stats(const std::string& st_path, DType dtype) {
  SafeTensorsFile f = SafeTensorsFile::open(st_path);
  WeightStats s;
  for (const std::string& n : f.names()) {
    const TensorInfo& ti = f.info(n);
    const int64_t numel = shape_numel(ti.shape);
    // Float tensors are converted to the model dtype on load; buffers (position_ids) keep theirs.
    const double bytes = double(numel) * double(ti.supported && is_floating(ti.dtype) ? dtype_size(dtype) : dtype_size(ti.dtype));
    s.params += numel;
    s.bytes += bytes;
    if (n.rfind("vision_model.", 0) == 0 || n.rfind("visual_projection.", 0) == 0 || n.rfind("visual.", 0) == 0) {
      s.vision_params += numel;
      s.vision_bytes += bytes;
    } else if (n.rfind("text_model.", 0) == 0 || n.rfind("text_projection.", 0) == 0) {
      s.text_params += numel;
      s.text_bytes += bytes;
    }
  }
  return s;
}

ArgParser bench_parser() {
  ArgParser p("bench clip", "--model M [--batch B] [--threads N] [--reps R] [--device DEV] [--format table|json]",
              "CLIP throughput: images/s through the image tower and texts/s through the text tower on\n"
              "random inputs (batch B, full context length), median of R runs after warm-up, plus the\n"
              "peak RSS of this process and the weights' size. M is a model path or a preset name\n"
              "(ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14-336, RN50) meaning random weights of that shape.");
  p.value("--model", "M", "model path or preset name", "model");
  p.alias("-m");
  p.value("--device", "DEV", "cpu (default), cuda or cuda:N", "model");
  p.value("--dtype", "T", "f32 (default), f16 or bf16", "model");
  p.value("--threads", "N", "OpenMP threads (default: $OMP_NUM_THREADS or every core)", "model");
  p.value("--seed", "S", "seed of the random weights and inputs (default 0)", "model");
  p.value("--batch", "B", "images / texts per forward pass (default 32)", "run");
  p.value("--reps", "R", "timed runs per tower (default 5)", "run");
  p.value("--warmup", "W", "untimed runs first (default 1)", "run");
  p.value("--tower", "T", "image, text or both (default both)", "run");
  p.value("--format", "F", "table (default) or json", "output");
  p.epilog("Compare with PyTorch and ONNX Runtime: python3 tools/reference/bench_peers.py");
  return p;
}

int bench_main(const Parsed& a) {
  const std::string model = a.get("--model");
  if (model.empty()) throw UsageError("--model M is required (a model path or a preset such as ViT-B/32)");
  const int batch = static_cast<int>(a.get_int("--batch", 32, 1, 1 << 20));
  const int reps = static_cast<int>(a.get_int("--reps", 5, 1, 1 << 20));
  const int warmup = static_cast<int>(a.get_int("--warmup", 1, 0, 1 << 20));
  const uint64_t seed = static_cast<uint64_t>(a.get_int("--seed", 0, 0, 1LL << 62));
  const std::string tower = a.get("--tower", "both"), format = a.get("--format", "table");
  if (tower != "image" && tower != "text" && tower != "both")
    throw UsageError(str("--tower must be image, text or both, got '", tower, "'"));
  if (format != "table" && format != "json") throw UsageError(str("--format must be table or json, got '", format, "'"));
  try {
    (void)Device::parse(a.get("--device", "cpu"));
  } catch (const Error&) {
    throw UsageError(str("--device must be cpu, cuda or cuda:N, got '", a.get("--device"), "'"));
  }
  (void)parse_dtype(a.get("--dtype", "f32"));

  // A path, else a preset with random weights (generated before any thread is started).
  std::string load_path = model, st_path = model, tmp;
  const bool random = !path_exists(model);
  double gen_s = 0;
  if (random) {
    clip::ClipConfig cfg;
    try {
      cfg = clip::ClipConfig::preset(model);
    } catch (const Error& e) {
      VL_FAIL("model '", model, "' is neither an existing path nor a preset (", e.what(), ")");
    }
    std::string safe = model;
    for (char& ch : safe)
      if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    tmp = (fs::temp_directory_path() / str("vislang_random_", safe, "_", ::getpid(), ".safetensors")).string();
    auto t0 = std::chrono::steady_clock::now();
    write_random_clip_in_child(cfg, tmp, seed);
    gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    load_path = st_path = tmp;
  } else if (fs::is_directory(model)) {
    st_path = model + "/model.safetensors";
  }
  struct Unlink {
    std::string p;
    ~Unlink() {
      if (!p.empty()) ::unlink(p.c_str());
    }
  } unlink_tmp{tmp};

  Runtime rt = apply_runtime_options(a);
  const bool cuda = rt.device.is_cuda();
  const WeightStats ws = weight_stats(st_path, rt.dtype);
  auto t0 = std::chrono::steady_clock::now();
  clip::ClipModel m = load_model(load_path, rt);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!tmp.empty()) {  // the mapping keeps the data; the file is not needed any more
    ::unlink(tmp.c_str());
    unlink_tmp.p.clear();
  }
  const clip::ClipConfig& c = m.config();

  Generator gen(seed + 1);
  const int64_t S = c.preprocess.size, T = c.text.context_length, V = c.text.vocab_size;
  double image_ms = 0, text_ms = 0;
  if (tower != "text") {
    Tensor pixels = Tensor::randn({batch, 3, S, S}, gen).to(rt.device, rt.dtype);  // (B, 3, S, S)
    image_ms = median_ms([&] { (void)m.encode_image(pixels); }, warmup, reps, cuda);
  }
  if (tower != "image") {
    // SOT, random ids below EOT (never the EOS id of eos-pooled configs), EOT at the last position.
    const int64_t eot = c.text.pool_argmax ? V - 1 : c.text.eos_token_id;
    const int64_t hi = std::max<int64_t>(2, std::min(V - 1, eot));
    std::vector<int64_t> ids(static_cast<size_t>(batch * T));
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t t = 0; t < T; ++t)
        ids[b * T + t] = t == 0 ? std::min<int64_t>(49406, hi - 1) : t == T - 1 ? eot : int64_t(gen.next_u64() % uint64_t(hi));
    Tensor tok = Tensor::from_vector(ids, {batch, T}).to(rt.device);  // (B, T) i64
    text_ms = median_ms([&] { (void)m.encode_text(tok); }, warmup, reps, cuda);
  }
  const double rss = peak_rss_mib(), mib = 1024.0 * 1024.0;
  const std::string device_name = cuda ? cuda_device_name(rt.device.index) : cpu_info().brand;

  if (format == "json") {
    nlohmann::json j;
    j["model"] = model;
    j["random_weights"] = random;
    j["config"] = c.name;
    j["device"] = rt.device.name();
    j["device_name"] = device_name;
    j["dtype"] = dtype_name(rt.dtype);
    j["threads"] = rt.threads;
    j["batch"] = batch;
    j["reps"] = reps;
    j["warmup"] = warmup;
    j["image_size"] = S;
    j["context_length"] = T;
    j["image_ms"] = tower != "text" ? nlohmann::json(image_ms) : nlohmann::json(nullptr);
    j["images_per_s"] = tower != "text" ? nlohmann::json(batch * 1000.0 / image_ms) : nlohmann::json(nullptr);
    j["text_ms"] = tower != "image" ? nlohmann::json(text_ms) : nlohmann::json(nullptr);
    j["texts_per_s"] = tower != "image" ? nlohmann::json(batch * 1000.0 / text_ms) : nlohmann::json(nullptr);
    j["peak_rss_mib"] = rss;
    j["params"] = ws.params;
    j["weights_mib"] = ws.bytes / mib;
    j["vision_weights_mib"] = ws.vision_bytes / mib;
    j["text_weights_mib"] = ws.text_bytes / mib;
    j["load_s"] = load_s;
    j["random_weights_s"] = gen_s;
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("vislang bench clip — %s%s, %s %s (%s), %d threads, batch %d\n", model.c_str(),
              random ? " (random weights)" : "", rt.device.name().c_str(), dtype_name(rt.dtype), device_name.c_str(),
              rt.threads, batch);
  std::printf("median of %d runs after %d warm-up runs; random inputs: %lldx%lld images, %lld-token texts\n\n", reps,
              warmup, (long long)S, (long long)S, (long long)T);
  std::printf("%-12s %12s %12s\n", "tower", "ms/batch", "items/s");
  if (tower != "text") std::printf("%-12s %12.2f %12.2f\n", "image", image_ms, batch * 1000.0 / image_ms);
  if (tower != "image") std::printf("%-12s %12.2f %12.2f\n", "text", text_ms, batch * 1000.0 / text_ms);
  std::printf("\nweights:  %.1f MiB at %s (%lld parameters; image tower %.1f MiB, text tower %.1f MiB)\n", ws.bytes / mib,
              dtype_name(rt.dtype), (long long)ws.params, ws.vision_bytes / mib, ws.text_bytes / mib);
  char gen_note[96] = "";
  if (random) std::snprintf(gen_note, sizeof gen_note, ", random weights written by a child process in %.1f s", gen_s);
  std::printf("peak RSS: %.1f MiB (this process; load %.2f s%s)\n", rss, load_s, gen_note);
  return 0;
}

}  // namespace

int run_bench_clip(int argc, char** argv) {
  ArgParser p = bench_parser();
  return run_command(p, argc, argv, bench_main);
}
