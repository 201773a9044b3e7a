// tests/test_fusion.cpp — the VQA fusion models (models/fusion/) and their recipe (train/vqa_recipe.h):
//   * forward shapes, parameter lists and FLOP formulas of every strategy;
//   * one training step of each model against PyTorch: logits, loss and EVERY parameter gradient
//     (fixtures tests/fixtures/fusion/*.safetensors from tools/reference/make_fusion_fixtures.py, float64
//     torch on the same f32 weights; vislang runs in f32);
//   * a short training run of every strategy that must beat the majority-answer baseline.
#include <doctest/doctest.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <map>
#include <string>

#include "core/autograd.h"
#include "kernels/ops.h"
#include "models/fusion/common.h"
#include "tests/test_util.h"
#include "train/vqa_recipe.h"
#include "weights/safetensors.h"

using namespace vislang;
using vislang::test::compare;
using vislang::test::Tol;

namespace {

// Must match FORMAT_VERSION in tools/reference/make_fusion_fixtures.py.
const std::string kFusionFixtureVersion = "1";
const std::string kRegenerate = "re-run `python3 tools/reference/make_fusion_fixtures.py` (needs torch)";

const char* kStrategies[] = {"early", "late", "late-product", "hybrid"};

fusion::FusionConfig tiny_config(fusion::Strategy s) {
  fusion::FusionConfig c;
  c.strategy = s;
  c.image_size = 16;
  c.patch_size = 8;
  c.vocab_size = 20;
  c.context_length = 6;
  c.answers = 7;
  c.width = 16;
  c.heads = 2;
  c.mlp_dim = 32;
  c.joint_layers = 2;
  c.image_layers = 1;
  c.text_layers = 2;
  c.fusion_hidden = 24;
  return c;
}

int64_t meta_int(const SafeTensorsFile& f, const std::string& k) {
  auto it = f.metadata().find(k);
  REQUIRE_MESSAGE(it != f.metadata().end(), f.path(), " has no metadata '", k, "': ", kRegenerate);
  return std::stoll(it->second);
}

}  // namespace

TEST_SUITE("fusion") {

TEST_CASE("every strategy: logits (B, A), parameters listed once, FLOPs from the formula") {
  Generator gen(7);
  for (const char* name : kStrategies) {
    fusion::Strategy s = fusion::parse_strategy(name);
    fusion::FusionConfig c = tiny_config(s);
    WeightScope scope = WeightScope::with_initializer(
        [&](const std::string& n, const Shape& sh, DType dt) { return fusion::init_fusion_param(n, sh, dt, gen); });
    auto model = fusion::make_vqa_model(scope, c);
    Tensor px = Tensor::randn({5, 3, 16, 16}, gen);
    Tensor ids = Tensor::from_vector(std::vector<int64_t>{18, 3, 4, 19, 0, 0, 18, 5, 19, 0, 0, 0, 18, 1, 2, 3, 4, 19,
                                                          18, 7, 19, 0, 0, 0, 18, 19, 0, 0, 0, 0},
                                     {5, 6});
    Tensor logits = model->logits(px, ids);
    CHECK(logits.shape() == Shape{5, 7});
    CHECK(logits.requires_grad());
    // Padding after EOT does not change the answer: what the mask is for.
    Tensor ids2 = ids.clone();
    ids2.data<int64_t>()[4] = 9;  // row 0, position 4: after its EOT
    {
      autograd::NoGradGuard ng;
      CHECK(compare(model->logits(px, ids2), logits.detach(), Tol{1e-6, 1e-6}).ok);
    }
    // Analytic FLOPs: the documented formulas with N = 4 patches, T = 6, D = 16, M = 32, A = 7.
    int64_t N = 4, T = 6, D = 16, M = 32, A = 7, patch = 2 * N * 3 * 64 * D;
    auto block = [&](int64_t n) { return 8 * n * D * D + 4 * n * n * D + 4 * n * D * M; };
    int64_t want = 0;
    if (s == fusion::Strategy::EARLY) want = patch + 2 * block(1 + N + T) + 2 * D * A;
    if (s == fusion::Strategy::LATE_CONCAT) want = patch + block(1 + N) + 2 * block(T) + 2 * 2 * D * 24 + 2 * 24 * A;
    if (s == fusion::Strategy::LATE_PRODUCT) want = patch + block(1 + N) + 2 * block(T) + 2 * D * 24 + 2 * 24 * A;
    if (s == fusion::Strategy::HYBRID)
      want = patch + block(N) + 2 * (block(T) + 4 * T * D * D + 4 * N * D * D + 4 * T * N * D) + 2 * D * A;
    CHECK_MESSAGE(model->flops_per_example() == want, std::string(name));
    // Every parameter requires grad and appears once under its own name.
    std::map<std::string, int> seen;
    for (const auto& p : scope.params()) {
      CHECK(p.second.requires_grad());
      CHECK(++seen[p.first] == 1);
    }
  }
  CHECK_THROWS(fusion::parse_strategy("middle"));
}

TEST_CASE("one step of each model matches PyTorch: logits, loss and every parameter gradient") {
  // Tolerances: f32 forward/backward against float64 torch on the same f32 weights. Sums run over at
  // most ~100 terms of O(1) values, so the error is a few f32 ulps times that: 2e-5 absolute (scaled
  // by max(1, max|ref|)) + 1e-4 relative covers it with margin; a wrong gradient is off by O(1).
  const Tol logit_tol{2e-5, 1e-4}, grad_tol{2e-5, 1e-4};
  for (const char* name : kStrategies) {
    std::string path = std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/fusion/" + name + ".safetensors";
    SafeTensorsFile f = SafeTensorsFile::open(path);
    auto v = f.metadata().find("format_version");
    REQUIRE_MESSAGE((v != f.metadata().end() && v->second == kFusionFixtureVersion), path,
                    " has another format_version than ", kFusionFixtureVersion, ": ", kRegenerate);
    fusion::FusionConfig c = tiny_config(fusion::parse_strategy(name));
    CHECK(meta_int(f, "width") == c.width);
    CHECK(meta_int(f, "context_length") == c.context_length);
    CHECK(meta_int(f, "text_layers") == c.text_layers);

    NamedTensors params;
    for (const std::string& n : f.names())
      if (n.rfind("param.", 0) == 0) {
        Tensor t = f.get(n).clone().detach();  // private copy, not the mapping
        t.requires_grad_();
        params.emplace_back(n.substr(6), t);
      }
    WeightScope scope = WeightScope::from_params(params);
    auto model = fusion::make_vqa_model(scope, c);
    scope.check_all_used();  // the torch model has no tensor vislang does not use, and vice versa

    Tensor logits = model->logits(f.get("input.pixels"), f.get("input.ids"));
    auto lr = compare(logits, f.get("logits"), logit_tol);
    CHECK_MESSAGE(lr.ok, "logits: ", lr.message);
    Tensor loss = ops::cross_entropy(logits, f.get("input.targets"));
    double want = f.get("loss").item();
    CHECK(std::fabs(loss.item() - want) <= 2e-5 * std::max(1.0, std::fabs(want)));
    loss.backward();

    double worst_abs = 0;
    std::string worst_name;
    int64_t checked = 0;
    for (const auto& [n, p] : scope.params()) {
      REQUIRE_MESSAGE(f.has("grad." + n), "no torch gradient for ", n);
      REQUIRE_MESSAGE(p.grad().defined(), "no vislang gradient for ", n);
      Tensor ref = f.get("grad." + n);
      auto r = compare(p.grad(), ref, grad_tol);
      CHECK_MESSAGE(r.ok, n, ": ", r.message);
      std::vector<double> g = p.grad().to_vector<double>(), e = ref.to_vector<double>();
      for (size_t i = 0; i < g.size(); ++i)
        if (std::fabs(g[i] - e[i]) > worst_abs) { worst_abs = std::fabs(g[i] - e[i]); worst_name = n; }
      ++checked;
    }
    MESSAGE(std::string(name), ": loss ", loss.item(), " (torch ", want, "), ", checked, " parameter gradients, worst |diff| ",
            worst_abs, " in ", worst_name);
  }
}

TEST_CASE("a short training run beats the majority-answer baseline") {
  // COLOR questions on one-object images ("what color is the circle?"): the answer is in the image, and
  // the majority colour is right ~13 % of the time. Width 32, batches of 32, one thread.
  // Measured (docs/fusion.md): hybrid leaves the majority plateau first (61.0 % after 800 steps), early
  // next (30.5 %); the late models are still on the plateau after 800 steps (13.0 %, 12.0 %: their image
  // vector cannot know which object will be asked about until the towers have learned to summarise the
  // scene), so they get 1,600 steps (late 26.5 %, late-product 48.5 %). ~45 s for all four on 2 cores.
  int threads = omp_get_max_threads();
  omp_set_num_threads(1);  // tiny ops: a second thread only waits at barriers on a loaded machine
  train::VqaRecipeOptions o;
  o.types = {static_cast<int>(toy::QuestionType::COLOR)};
  o.two_object_prob = 0;
  o.train_images = 3000;
  o.eval_images = 200;
  o.batch = 32;
  o.warmup = 30;
  o.lr = 3e-3;
  o.width = 32;
  o.progress = false;
  o.write_files = false;
  train::VqaData d = train::make_vqa_data(o);
  double base = train::majority_accuracy(d, d.test).overall;
  // Steps, and the required margin over the baseline (accuracy points), per strategy.
  const std::map<std::string, int64_t> steps{{"early", 800}, {"late", 1600}, {"late-product", 1600}, {"hybrid", 800}};
  const std::map<std::string, double> margin{{"early", 0.08}, {"late", 0.07}, {"late-product", 0.15}, {"hybrid", 0.25}};
  auto t0 = std::chrono::steady_clock::now();
  for (const char* name : kStrategies) {
    o.fusion = name;
    o.steps = steps.at(name);
    train::VqaResult r = train::run_vqa_recipe(o, &d);
    MESSAGE(std::string(name), ": colour accuracy on held-out images ", r.test.overall, " vs majority ", base,
            " after ", o.steps, " steps (required margin ", margin.at(name), ", ", r.train_seconds, " s)");
    CHECK(r.test.overall >= base + margin.at(name));
  }
  MESSAGE("all strategies: ", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), " s");
  omp_set_num_threads(threads);
}

}  // TEST_SUITE
