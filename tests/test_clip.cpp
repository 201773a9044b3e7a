// tests/test_clip.cpp — CLIP end to end against PyTorch (models/clip/*), in every input format.
//
// The fixtures in tests/fixtures/clip/ are written by tools/reference/make_clip_fixtures.py: small
// random models as a Hugging Face folder (read directly), an OpenCLIP ViT checkpoint and an OpenAI
// TorchScript ModifiedResNet, both converted by tools/convert.py, plus reference.safetensors with the
// preprocessed pixels, the token ids and the torch float32 outputs of each model. For each model the
// test loads it with ClipModel::load and compares encode_image / encode_text / logits_per_image:
// max |got - ref| <= 1e-4 * max |ref| over the tensor, and per-row cosine >= 0.99999. The ResNet runs
// once more on the reference (plain-loop) CPU kernels, and on CUDA when a GPU is present.
// Error cases: a missing tensor, a mis-shaped tensor, an unexpected tensor and a file without
// vislang.config metadata must each throw an error naming the file, the full tensor path and shapes.
//
// Real-shape check (not in CI): python3 tools/reference/make_clip_fixtures.py --full DIR writes
// ViT-B/32 and RN50 with random weights; VISLANG_FULL_CHECK_DIR=DIR runs the same comparison on them.
#include <doctest/doctest.h>

#include "tests/test_util.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/clip/clip.h"
#include "weights/safetensors.h"

using namespace vislang;
using vislang::test::contains;
using vislang::test::error_of;
using vislang::test::TempDir;
using namespace vislang::clip;
namespace fs = std::filesystem;

namespace {

constexpr const char* kClipFixtureVersion = "1";
constexpr const char* kRegenerate = "re-run: python3 tools/reference/make_clip_fixtures.py";
constexpr double kRelTol = 1e-4;     // max |diff| <= kRelTol * max |ref|
constexpr double kMinCosine = 0.99999;

std::string clip_dir() { return std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/clip"; }

// The reference file of a fixture folder, its version checked.
SafeTensorsFile open_reference(const std::string& dir) {
  std::string p = dir + "/reference.safetensors";
  SafeTensorsFile f = SafeTensorsFile::open(p);
  auto it = f.metadata().find("format_version");
  REQUIRE_MESSAGE(it != f.metadata().end(), str(p, " has no format_version; ", kRegenerate));
  REQUIRE_MESSAGE(it->second == kClipFixtureVersion, str(p, " has format_version ", it->second,
                  " but this test expects ", kClipFixtureVersion, "; ", kRegenerate));
  return f;
}

// name -> path relative to the fixture folder, from the "models" metadata.
std::vector<std::pair<std::string, std::string>> reference_models(const SafeTensorsFile& ref) {
  auto j = nlohmann::json::parse(ref.metadata().at("models"));
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = j.begin(); it != j.end(); ++it) out.emplace_back(it.key(), it.value().get<std::string>());
  return out;
}

struct Parity {
  double max_abs = 0, max_ref = 0, min_cos = 1;
};

// got/ref (R, E): NaN/Inf first, then max |diff| against kRelTol * max |ref|, then cosine per row.
Parity compare_rows(const Tensor& got, const Tensor& ref, const std::string& what) {
  Parity p;
  REQUIRE_MESSAGE(got.shape() == ref.shape(), str(what, ": shape ", shape_str(got.shape()), " but the reference is ",
                  shape_str(ref.shape())));
  REQUIRE(got.dim() == 2);
  std::vector<double> g = got.to_vector<double>(), r = ref.to_vector<double>();
  int64_t R = got.size(0), E = got.size(1);
  size_t worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    REQUIRE_MESSAGE(std::isfinite(g[i]), str(what, ": non-finite value ", g[i], " at flat index ", i));
    p.max_ref = std::max(p.max_ref, std::fabs(r[i]));
    double d = std::fabs(g[i] - r[i]);
    if (d > p.max_abs) { p.max_abs = d; worst = i; }
  }
  for (int64_t row = 0; row < R; ++row) {
    double dot = 0, ng = 0, nr = 0;
    for (int64_t e = 0; e < E; ++e) {
      double a = g[row * E + e], b = r[row * E + e];
      dot += a * b; ng += a * a; nr += b * b;
    }
    double cos = dot / std::sqrt(std::max(ng * nr, 1e-300));
    p.min_cos = std::min(p.min_cos, cos);
    CHECK_MESSAGE(cos >= kMinCosine, str(what, ": row ", row, " cosine ", cos, " < ", kMinCosine));
  }
  CHECK_MESSAGE(p.max_abs <= kRelTol * p.max_ref, str(what, ": max |diff| ", p.max_abs, " at flat index ", worst,
                " (got ", g[worst], ", expected ", r[worst], ") exceeds ", kRelTol, " * max |ref| = ",
                kRelTol * p.max_ref, "; ", kRegenerate, " if the model code changed on purpose"));
  return p;
}

// Loads `dir/rel`, runs both towers and the logits on the reference inputs, compares all three.
void check_model(const std::string& dir, const SafeTensorsFile& ref, const std::string& name, const std::string& rel,
                 Device device = Device::cpu(), const std::string& tag = "cpu") {
  ClipModel m = ClipModel::load(dir + "/" + rel, device);
  Tensor pixels = ref.get("pixels"), ids = ref.get("input_ids");
  Tensor img = m.encode_image(pixels).to(Device::cpu());
  Tensor txt = m.encode_text(ids).to(Device::cpu());
  Tensor lg = m.logits_per_image(m.encode_image(pixels), m.encode_text(ids)).to(Device::cpu());
  std::string w = name + " (" + rel + ", " + tag + ")";
  Parity pi = compare_rows(img, ref.get(name + ".image_embeds"), w + " image_embeds");
  Parity pt = compare_rows(txt, ref.get(name + ".text_embeds"), w + " text_embeds");
  Parity pl = compare_rows(lg, ref.get(name + ".logits_per_image"), w + " logits_per_image");
  MESSAGE(str(w, ": image max|diff| ", pi.max_abs, " (max|ref| ", pi.max_ref, ", 1 - min cos ", 1 - pi.min_cos,
              "); text max|diff| ", pt.max_abs, " (max|ref| ", pt.max_ref, ", 1 - min cos ", 1 - pt.min_cos,
              "); logits max|diff| ", pl.max_abs, " (max|ref| ", pl.max_ref, ")"));
}

// All tensors of a file, for writing modified copies.
std::vector<std::pair<std::string, Tensor>> all_tensors(const SafeTensorsFile& f) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const std::string& n : f.names()) out.emplace_back(n, f.get(n));
  return out;
}

}  // namespace

TEST_SUITE("models") {
  TEST_CASE("clip: every fixture format matches PyTorch") {
    SafeTensorsFile ref = open_reference(clip_dir());
    auto models = reference_models(ref);
    REQUIRE(models.size() == 3);
    for (const auto& [name, rel] : models) {
      SUBCASE(name.c_str()) { check_model(clip_dir(), ref, name, rel); }
    }
  }

  TEST_CASE("clip: ResNet tower on the reference CPU kernels") {
    SafeTensorsFile ref = open_reference(clip_dir());
    CpuModeGuard g(CpuMode::REFERENCE);
    check_model(clip_dir(), ref, "openai_rn", "openai_rn.safetensors", Device::cpu(), "reference kernels");
  }

  TEST_CASE("clip: every fixture format on CUDA") {
    if (cuda_device_count() == 0) {
      MESSAGE(str("skipped: ", cuda_built() ? "no CUDA GPU on this machine" : "vislang was built without CUDA"));
      return;
    }
    SafeTensorsFile ref = open_reference(clip_dir());
    for (const auto& [name, rel] : reference_models(ref)) check_model(clip_dir(), ref, name, rel, Device::cuda(0), "cuda");
  }

  TEST_CASE("clip: config.json of the HF folder reads like convert.py's vislang.config") {
    SafeTensorsFile ref = open_reference(clip_dir());
    std::ifstream in(clip_dir() + "/hf_vit/config.json");
    REQUIRE(in.good());
    nlohmann::json hf;
    in >> hf;
    nlohmann::json from_hf = ClipConfig::from_hf(hf).to_json();
    nlohmann::json from_convert =
        ClipConfig::from_json(nlohmann::json::parse(ref.metadata().at("hf_vit.vislang_config"))).to_json();
    CHECK_MESSAGE(from_hf == from_convert, str("from_hf: ", from_hf.dump(), "\nconvert.py: ", from_convert.dump()));
    // And every converted file's metadata survives from_json -> to_json unchanged (the formats are in sync).
    for (const char* f : {"openclip_vit.safetensors", "openai_rn.safetensors"}) {
      SafeTensorsFile st = SafeTensorsFile::open(clip_dir() + "/" + f);
      CHECK(st.metadata().at("format") == "vislang-clip-1");
      nlohmann::json j = nlohmann::json::parse(st.metadata().at("vislang.config"));
      nlohmann::json back = ClipConfig::from_json(j).to_json();
      // mean/std are floats in ClipConfig: compare those approximately, everything else exactly.
      for (const char* k : {"mean", "std"})
        for (int c = 0; c < 3; ++c)
          CHECK(back["preprocess"][k][c].get<double>() == doctest::Approx(j["preprocess"][k][c].get<double>()).epsilon(1e-7));
      back["preprocess"].erase("mean"), back["preprocess"].erase("std");
      j["preprocess"].erase("mean"), j["preprocess"].erase("std");
      CHECK_MESSAGE(back == j, str(f, ": ", j.dump(), "\nround trip: ", back.dump()));
    }
  }

  TEST_CASE("clip: ResNet tower checks the image size") {
    ClipModel m = ClipModel::load(clip_dir() + "/openai_rn.safetensors");
    std::string msg = error_of([&] { (void)m.encode_image(Tensor::zeros({1, 3, 32, 32})); });
    CHECK_MESSAGE(contains(msg, "64x64"), msg);
  }

  TEST_CASE("clip: a missing tensor names its full path and shape") {
    TempDir tmp;
    for (const char* victim : {"visual.layer2.0.downsample.1.running_var", "text_model.encoder.layers.1.mlp.fc1.bias"}) {
      SafeTensorsFile src = SafeTensorsFile::open(clip_dir() + "/openai_rn.safetensors");
      Shape shape = src.info(victim).shape;
      auto ts = all_tensors(src);
      ts.erase(std::remove_if(ts.begin(), ts.end(), [&](const auto& p) { return p.first == victim; }), ts.end());
      std::string p = tmp.path("missing.safetensors");
      save_safetensors(p, ts, src.metadata());
      std::string msg = error_of([&] { (void)ClipModel::load(p); });
      CHECK_MESSAGE(contains(msg, std::string("'") + victim + "'"), msg);
      CHECK_MESSAGE(contains(msg, "missing"), msg);
      CHECK_MESSAGE(contains(msg, shape_str(shape)), msg);
      CHECK_MESSAGE(contains(msg, p), msg);
    }
  }

  TEST_CASE("clip: a mis-shaped tensor names its full path and both shapes") {
    TempDir tmp;
    struct Case { const char* file; const char* victim; };
    for (Case c : {Case{"openai_rn.safetensors", "visual.attnpool.q_proj.weight"},
                   Case{"openclip_vit.safetensors", "vision_model.embeddings.position_embedding.weight"},
                   Case{"openclip_vit.safetensors", "text_model.encoder.layers.1.mlp.fc1.weight"}}) {
      SafeTensorsFile src = SafeTensorsFile::open(clip_dir() + "/" + c.file);
      Shape good = src.info(c.victim).shape, bad = good;
      bad.back() += 1;
      auto ts = all_tensors(src);
      for (auto& [n, t] : ts)
        if (n == c.victim) t = Tensor::zeros(bad, t.dtype());
      std::string p = tmp.path("misshaped.safetensors");
      save_safetensors(p, ts, src.metadata());
      std::string msg = error_of([&] { (void)ClipModel::load(p); });
      CHECK_MESSAGE(contains(msg, std::string("'") + c.victim + "'"), msg);
      CHECK_MESSAGE(contains(msg, shape_str(bad)), msg);
      CHECK_MESSAGE(contains(msg, shape_str(good)), msg);
      CHECK_MESSAGE(contains(msg, p), msg);
    }
  }

  TEST_CASE("clip: an unexpected tensor is an error, not silently ignored") {
    TempDir tmp;
    SafeTensorsFile src = SafeTensorsFile::open(clip_dir() + "/openai_rn.safetensors");
    auto ts = all_tensors(src);
    ts.emplace_back("visual.layer4.0.extra.weight", Tensor::zeros({2}));
    std::string p = tmp.path("extra.safetensors");
    save_safetensors(p, ts, src.metadata());
    std::string msg = error_of([&] { (void)ClipModel::load(p); });
    CHECK_MESSAGE(contains(msg, "visual.layer4.0.extra.weight"), msg);
  }

  TEST_CASE("clip: a file without vislang.config metadata gets a clear error") {
    TempDir tmp;
    SafeTensorsFile src = SafeTensorsFile::open(clip_dir() + "/openai_rn.safetensors");
    std::string p = tmp.path("no_config.safetensors");
    save_safetensors(p, all_tensors(src), {{"format", "vislang-clip-1"}});
    std::string msg = error_of([&] { (void)ClipModel::load(p); });
    CHECK_MESSAGE(contains(msg, "vislang.config"), msg);
    CHECK_MESSAGE(contains(msg, p), msg);
    CHECK_MESSAGE(contains(msg, "tools/convert.py"), msg);
    // Raw HF weights without their config.json are the common way to hit this.
    std::string msg2 = error_of([&] { (void)ClipModel::load(clip_dir() + "/hf_vit/model.safetensors"); });
    CHECK_MESSAGE(contains(msg2, "vislang.config"), msg2);
  }

  TEST_CASE("clip: real-shape ViT-B/32 and RN50 (VISLANG_FULL_CHECK_DIR)") {
    const char* dir = std::getenv("VISLANG_FULL_CHECK_DIR");
    if (!dir || !*dir) {
      MESSAGE("skipped: set VISLANG_FULL_CHECK_DIR to the folder written by "
              "python3 tools/reference/make_clip_fixtures.py --full DIR");
      return;
    }
    SafeTensorsFile ref = open_reference(dir);
    for (const auto& [name, rel] : reference_models(ref)) check_model(dir, ref, name, rel);
  }

  // The text tower runs only up to the batch's last EOT (models/clip/clip.cpp): a short text encoded
  // alone (4 positions) must give the embedding it gets when a 77-token text in the same batch forces
  // all 77 positions (the padded path), for both pooling rules.
  TEST_CASE("clip: text tower trimmed to the last EOT equals the padded path") {
    for (bool argmax : {true, false}) {
      ClipConfig cfg;
      cfg.vision.image_size = 32;
      cfg.vision.patch_size = 16;
      cfg.vision.width = 16;
      cfg.vision.layers = 1;
      cfg.vision.heads = 2;
      cfg.vision.mlp_dim = 32;
      cfg.text.vocab_size = 100;
      cfg.text.width = 32;
      cfg.text.layers = 2;
      cfg.text.heads = 2;
      cfg.text.mlp_dim = 64;
      cfg.text.pool_argmax = argmax;
      cfg.text.eos_token_id = 99;
      cfg.projection_dim = 16;
      Generator gen(7);
      WeightScope scope = WeightScope::with_initializer([&](const std::string&, const Shape& shape, DType dt) {
        return Tensor::randn(shape, gen, dt, Device::cpu(), 0.0, 0.5);
      });
      ClipModel m = ClipModel::from_scope(scope, cfg, Device::cpu(), DType::F32);
      const int64_t T = cfg.text.context_length;
      // Row 0: SOT 98, two tokens, EOT 99, then padding (0, or EOT again like HF's pad token).
      // Row 1: EOT at the last position, so the batch cannot be trimmed.
      std::vector<int32_t> ids(size_t(2 * T), argmax ? 0 : 99);
      const int32_t short_row[4] = {98, 5, 7, 99};
      std::copy(short_row, short_row + 4, ids.begin());
      for (int64_t t = 0; t < T; ++t) ids[size_t(T + t)] = t == 0 ? 98 : t == T - 1 ? 99 : int32_t(1 + t % 90);
      Tensor both = m.encode_text(Tensor::from_vector(ids, {2, T}, DType::I32));         // (2, E), 77 positions
      std::vector<int32_t> first(ids.begin(), ids.begin() + T);
      Tensor alone = m.encode_text(Tensor::from_vector(first, {1, T}, DType::I32));       // (1, E), 4 positions
      Tensor exact4 = m.encode_text(Tensor::from_vector(std::vector<int32_t>(short_row, short_row + 4), {1, 4},
                                                        DType::I32));                      // (1, E)
      const std::string tag = argmax ? "argmax pooling" : "eos_token_id pooling";
      compare_rows(alone, both.narrow(0, 0, 1).contiguous(), tag + ": trimmed vs padded path");
      compare_rows(alone, exact4, tag + ": trimmed vs 4 positions");
      // Row 1 differs from row 0 (the test would not notice a tower that ignores its input otherwise).
      CHECK(std::fabs(both.to_vector<float>()[0] - both.to_vector<float>()[size_t(cfg.projection_dim)]) > 1e-4);
    }
  }
}
