// tests/test_blip2.cpp — BLIP-2 retrieval (models/blip2/*) and VisualAdapter (nn/visual_adapter.h)
// against PyTorch.
//
// The fixtures in tests/fixtures/blip2/ come from tools/reference/make_blip2_fixtures.py: a small
// random transformers Blip2ForImageTextRetrieval as a Hugging Face folder (hf/, read directly), the
// same weights in LAVIS's layout converted by tools/convert.py (lavis.safetensors), and
// reference.safetensors with the pixels, token ids, attention mask and the torch float32 output of
// every stage: vision last_hidden_state, the Q-Former's query outputs, image embeds, the text-only
// Q-Former states, text embeds, ITC scores, ITM logits and probabilities. Each stage is compared on
// its rows (last dim): NaN/Inf first, max |got - ref| <= 1e-4 * max |ref|, cosine >= 0.99999 per row;
// the test prints the max |diff| and 1 - min cosine of each. adapter.safetensors holds VisualAdapter's
// PyTorch reference in its three modes.
// Error cases: a missing, mis-shaped or unexpected tensor, a file without vislang.config, a CLIP file.
//
// Preprocessing (image/clip_preprocess.h, Mode::SQUARE): preprocess.safetensors holds HF
// BlipImageProcessorPil's output on the shared photos (../shared/data/images; skipped with a message
// when absent): the uint8 resize must have PIL's crc32 and the float tensor must equal the reference
// bit for bit (JPEG inputs decoded without libjpeg-turbo: within 3 levels). Also: preprocessor_config.json
// and config.json checks, model-family detection, and the WordPiece inputs of the hf/ fixture's tokenizer.
//
// Real-shape check (not in CI): python3 tools/reference/make_blip2_fixtures.py --full DIR writes
// blip2-itm-vit-g with random weights; VISLANG_BLIP2_FULL_DIR=DIR runs the same comparison on it.
#include <doctest/doctest.h>

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "image/clip_preprocess.h"
#include "models/blip2/blip2.h"
#include "nn/visual_adapter.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

using namespace vislang;
using namespace vislang::blip2;
using vislang::test::contains;
using vislang::test::error_of;
using vislang::test::TempDir;
namespace fs = std::filesystem;
using ImagePreprocess = vislang::PreprocessConfig;  // (blip2::PreprocessConfig is the config's size/mean/std)

namespace {

constexpr const char* kBlip2FixtureVersion = "1";
constexpr const char* kRegen = "re-run: python3 tools/reference/make_blip2_fixtures.py";
constexpr double kRelTol = 1e-4;  // max |diff| <= kRelTol * max |ref|
constexpr double kMinCos = 0.99999;

std::string fixture(const std::string& rel = "") {
  return std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/blip2" + (rel.empty() ? "" : "/" + rel);
}

SafeTensorsFile open_versioned(const std::string& path) {
  SafeTensorsFile f = SafeTensorsFile::open(path);
  auto it = f.metadata().find("format_version");
  REQUIRE_MESSAGE(it != f.metadata().end(), str(path, " has no format_version; ", kRegen));
  REQUIRE_MESSAGE(it->second == kBlip2FixtureVersion, str(path, " has format_version ", it->second,
                  " but this test expects ", kBlip2FixtureVersion, "; ", kRegen));
  return f;
}

struct Stat {
  double max_diff = 0, max_ref = 0, min_cos = 1;
};

// got vs ref, compared as rows of the last dim: (..., D) -> (R, D).
Stat check_close(const Tensor& got_in, const Tensor& ref_in, const std::string& what) {
  REQUIRE_MESSAGE(got_in.shape() == ref_in.shape(), str(what, ": shape ", shape_str(got_in.shape()),
                  ", reference ", shape_str(ref_in.shape())));
  const int64_t D = ref_in.size(-1), R = ref_in.numel() / D;
  std::vector<double> g = got_in.to(Device::cpu()).to_vector<double>(), r = ref_in.to_vector<double>();
  Stat s;
  size_t worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    REQUIRE_MESSAGE(std::isfinite(g[i]), str(what, ": non-finite ", g[i], " at flat index ", i));
    s.max_ref = std::max(s.max_ref, std::fabs(r[i]));
    if (std::fabs(g[i] - r[i]) > s.max_diff) s.max_diff = std::fabs(g[i] - r[i]), worst = i;
  }
  for (int64_t row = 0; row < R; ++row) {
    double gr = 0, gg = 0, rr = 0;
    for (int64_t d = row * D; d < (row + 1) * D; ++d) gr += g[d] * r[d], gg += g[d] * g[d], rr += r[d] * r[d];
    const double cos = (gg == 0 && rr == 0) ? 1.0 : gr / std::sqrt(std::max(gg * rr, 1e-300));
    s.min_cos = std::min(s.min_cos, cos);
    CHECK_MESSAGE(cos >= kMinCos, str(what, ": row ", row, " cosine ", cos, " < ", kMinCos));
  }
  CHECK_MESSAGE(s.max_diff <= kRelTol * s.max_ref, str(what, ": max |diff| ", s.max_diff, " at flat index ", worst,
                " (got ", g[worst], ", expected ", r[worst], ") > ", kRelTol, " * max |ref| ", s.max_ref, "; ", kRegen,
                " if the model changed on purpose"));
  return s;
}

// Loads the model at `model_path` and checks every stage against `ref` (a reference.safetensors).
void check_against_reference(const std::string& model_path, const SafeTensorsFile& ref, const std::string& tag,
                             Device device = Device::cpu()) {
  Blip2Retrieval m = Blip2Retrieval::load(model_path, device);
  Tensor pixels = ref.get("pixels"), ids = ref.get("input_ids"), mask = ref.get("attention_mask");
  const int64_t Bi = pixels.size(0), Bt = ids.size(0);
  Tensor vis = m.vision_features(pixels);        // (Bi, 1 + N, Cv)
  Tensor queries = m.query_features(vis);        // (Bi, Q, C)
  Tensor img = m.image_embeds(queries);          // (Bi, Q, E)
  Tensor txt = m.encode_text(ids, mask);         // (Bt, E)
  // ITM on the pairs (image i, text j) at row i·Bt + j, as the reference computes them.
  std::vector<int64_t> img_rows, txt_rows;
  for (int64_t i = 0; i < Bi; ++i)
    for (int64_t j = 0; j < Bt; ++j) img_rows.push_back(i), txt_rows.push_back(j);
  auto rows = [&](const std::vector<int64_t>& v) { return Tensor::from_vector(v, {int64_t(v.size())}).to(device); };
  Tensor itm = m.itm_logits(ops::index_select(vis, 0, rows(img_rows)), ops::index_select(ids.to(device), 0, rows(txt_rows)),
                            ops::index_select(mask.to(device), 0, rows(txt_rows)));
  struct Item { const char* name; Tensor got; };
  const std::vector<Item> items = {
      {"vision_last_hidden_state", vis},
      {"query_output", queries},
      {"image_embeds", img},
      {"text_last_hidden_state", m.text_features(ids, mask)},
      {"text_embeds", txt},
      {"itc_scores", m.itc_scores(img, txt)},
      {"itm_logits", itm},
      {"itm_probabilities", m.itm_probabilities(vis, ids, mask)},
  };
  std::string report = tag + ":";
  for (const Item& it : items) {
    Stat s = check_close(it.got, ref.get(it.name), tag + " " + it.name);
    report += str("\n  ", it.name, ": max|diff| ", s.max_diff, " (max|ref| ", s.max_ref, "), 1 - min cos ", 1 - s.min_cos);
  }
  // The composed entry point gives the same image embeds as the stages.
  Stat e = check_close(m.encode_image(pixels), ref.get("image_embeds"), tag + " encode_image");
  CHECK(e.max_diff <= kRelTol * e.max_ref);
  MESSAGE(report);
}

std::vector<std::pair<std::string, Tensor>> all_tensors(const SafeTensorsFile& f) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const std::string& n : f.names()) out.emplace_back(n, f.get(n));
  return out;
}

// lavis.safetensors rewritten through `edit`, saved to a scratch file; returns the load error.
template <typename Edit>
std::string load_error_after(Edit edit, const std::string& file_name) {
  SafeTensorsFile src = SafeTensorsFile::open(fixture("lavis.safetensors"));
  auto ts = all_tensors(src);
  auto meta = src.metadata();
  edit(ts, meta);
  TempDir tmp;
  const std::string out = tmp.path(file_name);
  save_safetensors(out, ts, meta);
  std::string msg = error_of([&] { (void)Blip2Retrieval::load(out); });
  CHECK_MESSAGE(contains(msg, out), msg);
  return msg;
}

}  // namespace

TEST_SUITE("blip2") {
  TEST_CASE("blip2: HF folder and LAVIS-converted file match transformers at every stage") {
    SafeTensorsFile ref = open_versioned(fixture("reference.safetensors"));
    SUBCASE("hf folder") { check_against_reference(fixture("hf"), ref, "hf/ (cpu)"); }
    SUBCASE("lavis converted") { check_against_reference(fixture("lavis.safetensors"), ref, "lavis.safetensors (cpu)"); }
  }

  TEST_CASE("blip2: the reference (plain-loop) CPU kernels agree too") {
    SafeTensorsFile ref = open_versioned(fixture("reference.safetensors"));
    CpuModeGuard g(CpuMode::REFERENCE);
    check_against_reference(fixture("hf"), ref, "hf/ (reference kernels)");
  }

  // The fixture is too small for the reassociated cross-attention to pay (nn::reassociation_pays), so
  // AUTO never takes it here; ALWAYS runs the whole model through it (the image pass and ITM, where
  // text and queries share the self-attention) against the same transformers outputs.
  TEST_CASE("blip2: the reassociated cross-attention (forced) matches transformers at every stage") {
    struct Policy {
      nn::Reassociation saved = nn::reassociation();
      Policy() { nn::set_reassociation(nn::Reassociation::ALWAYS); }
      ~Policy() { nn::set_reassociation(saved); }
    } policy;
    SafeTensorsFile ref = open_versioned(fixture("reference.safetensors"));
    check_against_reference(fixture("hf"), ref, "hf/ (cpu, cross-attention reassociated)");
    CpuModeGuard g(CpuMode::REFERENCE);
    check_against_reference(fixture("hf"), ref, "hf/ (reference kernels, cross-attention reassociated)");
  }

  TEST_CASE("blip2: CUDA") {
    if (cuda_device_count() == 0) {
      MESSAGE(str("skipped: ", cuda_built() ? "no CUDA GPU on this machine" : "vislang was built without CUDA"));
      return;
    }
    SafeTensorsFile ref = open_versioned(fixture("reference.safetensors"));
    check_against_reference(fixture("lavis.safetensors"), ref, "lavis.safetensors (cuda)", Device::cuda(0));
  }

  TEST_CASE("blip2: no attention mask means no padding") {
    SafeTensorsFile ref = open_versioned(fixture("reference.safetensors"));
    Blip2Retrieval m = Blip2Retrieval::load(fixture("hf"));
    Tensor ids = ref.get("input_ids").narrow(0, 0, 1);  // row 0 fills all 10 positions
    Tensor with = m.encode_text(ids, ref.get("attention_mask").narrow(0, 0, 1)), without = m.encode_text(ids);
    CHECK(with.to_vector<float>() == without.to_vector<float>());
    // Padding matters: row 2 (4 tokens) without its mask attends to the padding and changes.
    Tensor row2 = ref.get("input_ids").narrow(0, 2, 1);
    Stat s = check_close(m.encode_text(row2, ref.get("attention_mask").narrow(0, 2, 1)),
                         ref.get("text_embeds").narrow(0, 2, 1), "row 2 with mask");
    CHECK(s.max_diff < 1e-5);
    std::vector<float> a = m.encode_text(row2).to_vector<float>(), b = ref.get("text_embeds").narrow(0, 2, 1).to_vector<float>();
    double d = 0;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i])));
    CHECK_MESSAGE(d > 1e-3, str("ignoring the mask should change the embedding, max |diff| ", d));
  }

  TEST_CASE("blip2: configs — config.json, convert.py's vislang.config and the blip2-tiny preset agree") {
    SafeTensorsFile ref = open_versioned(fixture("reference.safetensors"));
    std::ifstream in(fixture("hf/config.json"));
    REQUIRE(in.good());
    nlohmann::json hf;
    in >> hf;
    nlohmann::json a = Blip2Config::from_hf(hf).to_json();
    nlohmann::json b = Blip2Config::from_json(nlohmann::json::parse(ref.metadata().at("hf_vislang_config"))).to_json();
    CHECK_MESSAGE(a == b, str("from_hf: ", a.dump(), "\nconvert.py: ", b.dump()));
    SafeTensorsFile lav = SafeTensorsFile::open(fixture("lavis.safetensors"));
    CHECK(lav.metadata().at("format") == "vislang-blip2-1");
    nlohmann::json c = Blip2Config::from_json(nlohmann::json::parse(lav.metadata().at("vislang.config"))).to_json();
    nlohmann::json tiny = Blip2Config::preset("blip2-tiny").to_json();
    for (nlohmann::json* j : {&a, &c, &tiny}) j->erase("name");
    CHECK_MESSAGE(c == a, str("lavis: ", c.dump(), "\nhf: ", a.dump()));
    CHECK_MESSAGE(tiny == a, str("preset blip2-tiny: ", tiny.dump(), "\nfixture: ", a.dump()));
    Blip2Config g = Blip2Config::preset("blip2-itm-vit-g");
    CHECK(g.vision.num_patches() + 1 == 257);
    CHECK(g.vision.width / g.vision.heads == 88);
    CHECK(Blip2Config::from_json(g.to_json()).to_json() == g.to_json());
    std::string msg = error_of([] { (void)Blip2Config::preset("blip2-nope"); });
    CHECK_MESSAGE(contains(msg, "blip2-itm-vit-g"), msg);
    nlohmann::json bad = g.to_json();
    bad["qformer"]["encoder_width"] = 1024;
    msg = error_of([&] { (void)Blip2Config::from_json(bad); });
    CHECK_MESSAGE(contains(msg, "encoder_width"), msg);
  }

  TEST_CASE("blip2: LAVIS temperature is kept; HF folders have none") {
    CHECK(Blip2Retrieval::load(fixture("lavis.safetensors")).temperature() == doctest::Approx(0.07).epsilon(1e-3));
    CHECK(std::isnan(Blip2Retrieval::load(fixture("hf")).temperature()));
  }

  TEST_CASE("blip2: the legacy q_bias / v_bias layout loads to the same model") {
    SafeTensorsFile src = SafeTensorsFile::open(fixture("lavis.safetensors"));
    std::vector<std::pair<std::string, Tensor>> ts;
    for (auto& [n, t] : all_tensors(src)) {
      const std::string suffix = "self_attn.qkv.bias";
      if (n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
        const std::string base = n.substr(0, n.size() - std::string("qkv.bias").size());
        const int64_t C = t.size(0) / 3;
        ts.emplace_back(base + "q_bias", t.narrow(0, 0, C).contiguous());
        ts.emplace_back(base + "v_bias", t.narrow(0, 2 * C, C).contiguous());
      } else {
        ts.emplace_back(n, t);
      }
    }
    TempDir tmp;
    const std::string out = tmp.path("legacy.safetensors");
    save_safetensors(out, ts, src.metadata());
    SafeTensorsFile ref = open_versioned(fixture("reference.safetensors"));
    Blip2Retrieval m = Blip2Retrieval::load(out);
    check_close(m.vision_features(ref.get("pixels")), ref.get("vision_last_hidden_state"), "legacy q_bias/v_bias");
  }

  TEST_CASE("blip2: a missing tensor names its full path and shape") {
    for (const char* victim : {"qformer.encoder.layer.2.crossattention.attention.key.weight",
                               "vision_model.encoder.layers.1.self_attn.qkv.bias", "itm_head.bias"}) {
      Shape shape = SafeTensorsFile::open(fixture("lavis.safetensors")).info(victim).shape;
      std::string msg = load_error_after([&](auto& ts, auto&) {
        ts.erase(std::remove_if(ts.begin(), ts.end(), [&](const auto& p) { return p.first == victim; }), ts.end());
      }, "missing.safetensors");
      CHECK_MESSAGE(contains(msg, std::string("'") + victim + "'"), msg);
      CHECK_MESSAGE(contains(msg, "missing"), msg);
      CHECK_MESSAGE(contains(msg, shape_str(shape)), msg);
    }
  }

  TEST_CASE("blip2: a mis-shaped tensor names its full path and both shapes") {
    // Cross-attention keys read the vision width (48), not the Q-Former's (64): a swap must not load.
    for (const char* victim : {"qformer.encoder.layer.0.crossattention.attention.key.weight",
                               "vision_model.embeddings.position_embedding", "query_tokens"}) {
      Shape good = SafeTensorsFile::open(fixture("lavis.safetensors")).info(victim).shape, bad = good;
      bad.back() += 16;
      std::string msg = load_error_after([&](auto& ts, auto&) {
        for (auto& [n, t] : ts)
          if (n == victim) t = Tensor::zeros(bad, t.dtype());
      }, "misshaped.safetensors");
      CHECK_MESSAGE(contains(msg, std::string("'") + victim + "'"), msg);
      CHECK_MESSAGE(contains(msg, shape_str(bad)), msg);
      CHECK_MESSAGE(contains(msg, shape_str(good)), msg);
    }
  }

  TEST_CASE("blip2: an unexpected tensor is an error, not silently ignored") {
    // layer 1 has no cross-attention (frequency 2): weights for one must not be dropped quietly.
    std::string msg = load_error_after([](auto& ts, auto&) {
      ts.emplace_back("qformer.encoder.layer.1.crossattention.attention.query.weight", Tensor::zeros({64, 64}));
    }, "extra.safetensors");
    CHECK_MESSAGE(contains(msg, "qformer.encoder.layer.1.crossattention.attention.query.weight"), msg);
  }

  TEST_CASE("blip2: files that are not converted BLIP-2 models get clear errors") {
    std::string msg = load_error_after([](auto&, auto& meta) { meta.erase("vislang.config"); }, "no_config.safetensors");
    CHECK_MESSAGE(contains(msg, "vislang.config"), msg);
    CHECK_MESSAGE(contains(msg, "tools/convert.py"), msg);
    std::string clip = std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/clip/openclip_vit.safetensors";
    msg = error_of([&] { (void)Blip2Retrieval::load(clip); });
    CHECK_MESSAGE(contains(msg, "model_type is 'clip'"), msg);
    msg = error_of([&] { (void)Blip2Retrieval::load(std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/clip/hf_vit"); });
    CHECK_MESSAGE(contains(msg, "blip-2"), msg);
  }

  TEST_CASE("blip2: inputs are checked") {
    Blip2Retrieval m = Blip2Retrieval::load(fixture("hf"));
    std::string msg = error_of([&] { (void)m.vision_features(Tensor::zeros({1, 3, 64, 64})); });
    CHECK_MESSAGE(contains(msg, "(B, 3, 56, 56)"), msg);
    msg = error_of([&] { (void)m.encode_text(Tensor::zeros({1, 40}, DType::I64)); });  // 32 positions
    CHECK_MESSAGE(contains(msg, "outside [1, 32]"), msg);
    msg = error_of([&] { (void)m.encode_text(Tensor::zeros({2, 5}, DType::I64), Tensor::ones({2, 4}, DType::I64)); });
    CHECK_MESSAGE(contains(msg, "attention_mask"), msg);
  }

  TEST_CASE("blip2: random weights at the tiny preset load and run") {
    TempDir tmp;
    const std::string out = tmp.path("random_tiny.safetensors");
    write_random_blip2(Blip2Config::preset("blip2-tiny"), out, 7);
    Blip2Retrieval m = Blip2Retrieval::load(out);
    Tensor img = m.encode_image(Tensor::zeros({2, 3, 56, 56}));
    CHECK(img.shape() == Shape{2, 8, 32});
    Tensor ids = Tensor::from_vector(std::vector<int64_t>{101, 7, 8, 102}, {1, 4});
    CHECK(m.itc_scores(img, m.encode_text(ids)).shape() == Shape{2, 1});
  }

  TEST_CASE("visual adapter: linear, mlp and qformer modes match the PyTorch module") {
    SafeTensorsFile f = open_versioned(fixture("adapter.safetensors"));
    WeightScope root(f);
    Tensor x = f.get("inputs.x");  // (2, 17, 48): the tiny model's vision features
    std::string report = "visual adapter:";
    for (const char* mode : {"linear", "mlp", "qformer"}) {
      CAPTURE(mode);
      nn::VisualAdapterConfig c =
          nn::VisualAdapterConfig::from_json(nlohmann::json::parse(f.metadata().at(str(mode, ".config"))));
      nn::VisualAdapter a;
      WeightScope s = root.sub(mode);
      a.load(s, c);
      s.check_all_used();
      Tensor y = a.forward(x);
      Stat st = check_close(y, f.get(str("outputs.", mode)), str("adapter ", mode));
      report += str("\n  ", mode, " ", shape_str(x.shape()), " -> ", shape_str(y.shape()), ": max|diff| ", st.max_diff,
                    " (max|ref| ", st.max_ref, "), 1 - min cos ", 1 - st.min_cos);
      CHECK(nn::VisualAdapterConfig::from_json(c.to_json()).to_json() == c.to_json());
    }
    MESSAGE(report);
  }

  TEST_CASE("visual adapter: shapes per mode and clear errors") {
    SafeTensorsFile f = open_versioned(fixture("adapter.safetensors"));
    WeightScope root(f);
    auto cfg = [&](const char* mode) {
      return nn::VisualAdapterConfig::from_json(nlohmann::json::parse(f.metadata().at(str(mode, ".config"))));
    };
    nn::VisualAdapter q;
    q.load(root.sub("qformer"), cfg("qformer"));
    // Q output tokens whatever N is.
    CHECK(q.forward(Tensor::zeros({3, 5, 48})).shape() == Shape{3, 6, 32});
    CHECK(q.forward(Tensor::zeros({1, 300, 48})).shape() == Shape{1, 6, 32});
    std::string msg = error_of([&] { (void)q.forward(Tensor::zeros({1, 5, 40})); });
    CHECK_MESSAGE(contains(msg, "(B, N, 48)"), msg);
    nn::VisualAdapterConfig wrong = cfg("mlp");
    wrong.hidden_dim += 1;
    nn::VisualAdapter m;
    msg = error_of([&] { m.load(root.sub("mlp"), wrong); });
    CHECK_MESSAGE(contains(msg, "mlp.fc1.weight"), msg);
    msg = error_of([] { (void)nn::parse_visual_adapter_mode("perceiver"); });
    CHECK_MESSAGE(contains(msg, "linear, mlp, qformer"), msg);
  }

  // nn/visual_adapter.cpp evaluates few-query cross-attention with the key/value projections moved to
  // the query side (BLIP-2: 0.69 instead of 1.14 GFLOP per image and layer). The same forward() takes
  // the textbook order when a gradient is needed, which gives the reference here. Tolerances: f64
  // 1e-12 of max |y| (the algebra is exact; only rounding differs), f32 2e-6.
  TEST_CASE("PostNormAttention: the reassociated cross-attention equals the textbook order") {
    for (DType dt : {DType::F64, DType::F32}) {
      const std::string dname = dtype_name(dt);
      CAPTURE(dname);
      Generator g(7);
      const int64_t C = 32, H = 4, Ckv = 96;
      nn::PostNormAttention a;
      a.heads = H;
      auto init = [&](nn::Linear& l, int64_t out, int64_t in) {
        l.weight = Tensor::randn({out, in}, g, dt, Device::cpu(), 0.0, 0.2);
        l.bias = Tensor::randn({out}, g, dt);  // large biases: b_k must cancel, b_v must pass through
      };
      init(a.query, C, C), init(a.key, C, Ckv), init(a.value, C, Ckv), init(a.dense, C, C);
      a.norm.weight = Tensor::randn({C}, g, dt), a.norm.bias = Tensor::randn({C}, g, dt), a.norm.eps = 1e-12;
      Tensor x = Tensor::randn({2, 4, C}, g, dt), kv = Tensor::randn({2, 40, Ckv}, g, dt, Device::cpu(), 0.0, 2.0);
      REQUIRE(a.cross_attention_is_reassociated(x, kv));
      Tensor fast = a.forward(x, kv);                                   // (2, 4, C)
      Tensor kv_grad = kv.clone();
      kv_grad.requires_grad_();
      REQUIRE_FALSE(a.cross_attention_is_reassociated(x, kv_grad));  // training: textbook order
      Tensor ref = a.forward(x, kv_grad).detach();
      const double tol = dt == DType::F64 ? 1e-12 : 2e-6;
      Stat st = check_close(fast, ref, str("reassociated cross-attention ", dname));
      CHECK_MESSAGE(st.max_diff <= tol * st.max_ref, "max |diff| ", st.max_diff, " > ", tol, " * ", st.max_ref);
      MESSAGE("reassociated vs textbook cross-attention (", dname, "): max|diff| ", st.max_diff,
              " (max|ref| ", st.max_ref, ")");
      // Masks and self-attention-like shapes keep the textbook order.
      ops::AttentionOptions masked;
      masked.key_padding_mask = Tensor::zeros({2, 40}, DType::U8);
      CHECK_FALSE(a.cross_attention_is_reassociated(x, kv, masked));
      CHECK_FALSE(a.cross_attention_is_reassociated(Tensor::randn({2, 40, C}, g, dt), Tensor::randn({2, 6, Ckv}, g, dt)));
    }
  }

  // `vislang bench blip2` prints GFLOP/s and % of peak from blip2::image_flops. The reference numbers are
  // torch's own count of transformers' model at this shape (torch.utils.flop_counter.FlopCounterMode,
  // one image): python3 tools/reference/bench_blip2_torch.py --count-flops (torch 2.15.0).
  TEST_CASE("blip2: image_flops counts what torch's FlopCounterMode counts, and the reassociated Q-Former") {
    const blip2::Blip2Config c = blip2::Blip2Config::preset("blip2-itm-vit-g");
    const blip2::ImageFlops written = blip2::image_flops(c, /*as_written=*/true), ours = blip2::image_flops(c);
    CHECK(written.vision == 520719260160.0);
    CHECK(written.qformer == 12760449024.0);
    CHECK(ours.vision == written.vision);
    // 6 cross-attention layers, each 4·Tk·Ckv·C + 4·Tq·Tk·C as written, 4·Tq·C·Ckv + 4·H·Tq·Tk·Ckv reassociated.
    const double per_layer = (4.0 * 257 * 1408 * 768 + 4.0 * 32 * 257 * 768) - (4.0 * 32 * 768 * 1408 + 4.0 * 12 * 32 * 257 * 1408);
    CHECK(ours.qformer == doctest::Approx(written.qformer - 6 * per_layer).epsilon(1e-12));
    // A model whose cross-attention does not pay to reassociate (the tiny preset) counts the same both ways.
    const blip2::Blip2Config tiny = blip2::Blip2Config::preset("blip2-tiny");
    const bool pays = nn::reassociation_pays(tiny.num_query_tokens, tiny.vision.num_patches() + 1, tiny.qformer.width,
                                             tiny.qformer.encoder_width, tiny.qformer.heads);
    CHECK((blip2::image_flops(tiny).qformer < blip2::image_flops(tiny, true).qformer) == pays);
  }

  TEST_CASE("blip2: preprocessing matches HF BlipImageProcessor (PIL backend) on the shared photos") {
    SafeTensorsFile f = open_versioned(fixture("preprocess.safetensors"));
    if (test::shared_dir().empty()) {
      MESSAGE("SKIPPED the BLIP-2 preprocessing checks on the shared photos: ../shared not found (set VISLANG_SHARED_DIR)");
      return;
    }
    const size_t stride = std::stoul(f.metadata().at("stride"));
    std::string report;
    int entries = 0;
    for (const auto& [key, value] : f.metadata()) {
      if (!f.has(key + ".samples")) continue;
      const nlohmann::json e = nlohmann::json::parse(value);
      const std::string in = e.at("input").get<std::string>(), path = test::shared_dir() + "/data/images/" + in;
      CAPTURE(key);
      ImagePreprocess cfg = Blip2Config::preset("blip2-itm-vit-g").image_preprocess();
      cfg.size = e.at("size").get<int>();
      REQUIRE(cfg.mode == ImagePreprocess::Mode::SQUARE);
      const bool jpeg = in.size() > 4 && in.compare(in.size() - 4, 4, ".jpg") == 0;
      const int levels = (jpeg && !jpeg_matches_pil()) ? 3 : 0;  // stb_image decodes JPEG a few levels off
      Image img = load_image(path);
      Image u8 = resize_and_crop(img, cfg);  // (S, S) RGB, no crop
      REQUIRE(u8.width == cfg.size);
      REQUIRE(u8.height == cfg.size);
      const uint32_t crc = uint32_t(crc32(0L, u8.rgb.data(), uInt(u8.rgb.size())));
      if (levels == 0) CHECK_MESSAGE(crc == e.at("crc32").get<uint32_t>(), "crc32 of the uint8 resize differs from PIL's");
      Tensor t = preprocess(img, cfg);
      REQUIRE(t.shape() == Shape{3, int64_t(cfg.size), int64_t(cfg.size)});
      std::vector<float> ref = f.get(key + ".samples").to_vector<float>();
      const float* p = t.data<float>();
      double worst = 0, sum = 0, sumsq = 0;
      for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(double(p[i * stride]) - ref[i]));
      for (int64_t i = 0; i < t.numel(); ++i) sum += p[i], sumsq += double(p[i]) * p[i];
      const double bound = levels / 255.0 / 0.26;  // one level of the smallest std, per allowed level
      CHECK_MESSAGE(worst <= bound, "worst |diff| ", worst, " > ", bound);
      const double n = double(t.numel());
      CHECK(std::fabs(sum / n - e.at("sum").get<double>() / n) <= 1e-6 + bound);
      CHECK(std::fabs(sumsq / n - e.at("sumsq").get<double>() / n) <= 1e-6 + 10 * bound);
      report += str("\n  ", key, ": crc32 ", crc == e.at("crc32").get<uint32_t>() ? "equal" : "DIFFERENT",
                    ", max |diff| of the floats ", worst, " (torchvision-backend BlipImageProcessor: up to ",
                    e.at("torchvision_backend_max_levels").get<double>(), " levels off PIL)");
      ++entries;
    }
    CHECK(entries >= 6);
    MESSAGE("BLIP-2 preprocessing vs BlipImageProcessorPil, JPEG decoder ", jpeg_decoder(), ":", report);
  }

  TEST_CASE("blip2: SQUARE preprocessing squashes instead of cropping") {
    // 100 x 50: left half red, right half blue. CLIP's crop keeps the middle 50 x 50 (half red, half
    // blue around the centre); the squashing resize keeps both halves whole.
    Image im;
    im.width = 100;
    im.height = 50;
    im.rgb.assign(size_t(100 * 50 * 3), 0);
    for (int y = 0; y < 50; ++y)
      for (int x = 0; x < 100; ++x) im.rgb[size_t((y * 100 + x) * 3 + (x < 50 ? 0 : 2))] = 255;
    ImagePreprocess cfg;
    cfg.size = 20;
    cfg.mode = ImagePreprocess::Mode::SQUARE;
    Image sq = resize_and_crop(im, cfg);
    Image ref = resize_bicubic(im, 20, 20);
    CHECK(sq.rgb == ref.rgb);
    CHECK(sq.rgb[0] == 255);                       // (0, 0) red
    CHECK(sq.rgb[size_t(19 * 3 + 2)] == 255);      // (19, 0) blue
    cfg.mode = ImagePreprocess::Mode::OPENAI;
    Image crop = resize_and_crop(im, cfg);
    CHECK(crop.rgb != sq.rgb);
  }

  TEST_CASE("blip2: preprocessor_config.json is read, and what is not reproduced is refused") {
    Blip2Retrieval m = Blip2Retrieval::load(fixture("hf"));
    ImagePreprocess p = m.config().image_preprocess();
    CHECK(p.size == 56);
    CHECK(p.mode == ImagePreprocess::Mode::SQUARE);
    CHECK(p.mean[0] == doctest::Approx(0.48145466f));
    Blip2Config c = Blip2Config::preset("blip2-tiny");
    nlohmann::json pre = {{"size", {{"height", 56}, {"width", 56}}}, {"image_mean", {0.5, 0.5, 0.5}},
                          {"image_std", {0.25, 0.25, 0.25}}, {"resample", 3}};
    c.apply_hf_preprocessor(pre);
    CHECK(c.preprocess.mean[1] == 0.5f);
    CHECK(c.preprocess.std[2] == 0.25f);
    for (auto [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
             {"do_center_crop", true}, {"resample", 2}, {"rescale_factor", 0.5}, {"do_normalize", false}}) {
      nlohmann::json bad = pre;
      bad[key] = value;
      std::string msg = error_of([&] { c.apply_hf_preprocessor(bad); });
      CHECK_MESSAGE(contains(msg, key), msg);
    }
    nlohmann::json bad = pre;
    bad["size"] = {{"height", 64}, {"width", 56}};
    CHECK_MESSAGE(contains(error_of([&] { c.apply_hf_preprocessor(bad); }), "square"), "non-square size");
    bad["size"] = {{"height", 64}, {"width", 64}};
    CHECK_MESSAGE(contains(error_of([&] { c.apply_hf_preprocessor(bad); }), "position embeddings"), "size vs model");
  }

  TEST_CASE("blip2: family detection and the generation model's config") {
    CHECK(is_blip2_checkpoint(fixture("hf")));
    CHECK(is_blip2_checkpoint(fixture("lavis.safetensors")));
    CHECK_FALSE(is_blip2_checkpoint(std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/clip/hf_vit"));
    CHECK_FALSE(is_blip2_checkpoint(std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/clip/openclip_vit.safetensors"));
    CHECK_FALSE(is_blip2_checkpoint("/nonexistent/model"));
    std::ifstream in(fixture("hf/config.json"));
    nlohmann::json hf;
    in >> hf;
    hf["architectures"] = {"Blip2ForConditionalGeneration"};
    std::string msg = error_of([&] { (void)Blip2Config::from_hf(hf); });
    CHECK_MESSAGE(contains(msg, "Blip2ForImageTextRetrieval"), msg);
  }

  TEST_CASE("blip2: text inputs from the fixture's WordPiece tokenizer match HF's BertTokenizer") {
    SafeTensorsFile ref = open_versioned(fixture("cli_reference.safetensors"));
    Blip2Retrieval m = Blip2Retrieval::load(fixture("hf"));
    WordPieceTokenizer tok = WordPieceTokenizer::from_folder(fixture("hf"));
    CHECK(m.max_text_length(tok) == 32);
    std::vector<std::string> texts = nlohmann::json::parse(ref.metadata().at("texts")).get<std::vector<std::string>>();
    WordPieceTokenizer::Batch b = m.tokenize(tok, texts, false);
    CHECK(b.ids.to_vector<int64_t>() == ref.get("input_ids").to_vector<int64_t>());
    CHECK(b.attention_mask.to_vector<int64_t>() == ref.get("attention_mask").to_vector<int64_t>());
    check_close(m.encode_text(b.ids, b.attention_mask), ref.get("text_embeds"), "text embeds from tokenized texts");
    std::string long_text;
    for (int i = 0; i < 40; ++i) long_text += "cat ";
    std::string msg = error_of([&] { (void)m.tokenize(tok, {"a dog", long_text}, false); });
    CHECK_MESSAGE(contains(msg, "text 2 of 2"), msg);
    CHECK_MESSAGE(contains(msg, "42 tokens"), msg);
    CHECK_MESSAGE(contains(msg, "--truncate"), msg);
    WordPieceTokenizer::Batch cut = m.tokenize(tok, {"a dog", long_text}, true);
    CHECK(cut.ids.shape() == Shape{2, 32});
    CHECK(cut.ids.to_vector<int64_t>()[63] == tok.sep_id());
  }

  TEST_CASE("blip2: real-shape blip2-itm-vit-g (VISLANG_BLIP2_FULL_DIR)") {
    const char* dir = std::getenv("VISLANG_BLIP2_FULL_DIR");
    if (!dir || !*dir) {
      MESSAGE("skipped: set VISLANG_BLIP2_FULL_DIR to the folder written by "
              "python3 tools/reference/make_blip2_fixtures.py --full DIR");
      return;
    }
    SafeTensorsFile ref = open_versioned(std::string(dir) + "/reference.safetensors");
    check_against_reference(std::string(dir) + "/hf", ref, "blip2-itm-vit-g random weights (cpu)");
  }
}
