// tests/test_train.cpp — the training pieces against PyTorch: the contrastive losses (nn/loss.h) and
// their gradients, AdamW, clip_grad_norm_ and the cosine schedule (nn/optim.h), and checkpoints
// (train/checkpoint.h): a run resumed from a checkpoint must match an uninterrupted one bit for bit.
//
// Fixtures: tests/fixtures/train/*.safetensors from tools/reference/make_train_fixtures.py
// (OpenCLIP's ClipLoss in float64, torch.optim.AdamW and clip_grad_norm_ in float32, OpenCLIP's
// cosine_lr). Each comparison prints its worst absolute difference.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>

#include "core/autograd.h"
#include "kernels/ops.h"
#include "nn/loss.h"
#include "nn/optim.h"
#include "tests/test_util.h"
#include "train/checkpoint.h"
#include "weights/safetensors.h"

using namespace vislang;
using vislang::test::compare;
using vislang::test::contains;
using vislang::test::error_of;
using vislang::test::Tol;
namespace fs = std::filesystem;

namespace {

// Must match FORMAT_VERSION in tools/reference/make_train_fixtures.py.
const std::string kTrainFixtureVersion = "1";
const std::string kRegenerate = "re-run `python3 tools/reference/make_train_fixtures.py` (needs torch; OpenCLIP optional)";

SafeTensorsFile open_fixture(const std::string& file) {
  return test::open_versioned_fixture("train/" + file, kTrainFixtureVersion, kRegenerate);
}

double meta_num(const SafeTensorsFile& f, const std::string& key) {
  auto it = f.metadata().find(key);
  REQUIRE_MESSAGE(it != f.metadata().end(), f.path(), " has no metadata '", key, "'; ", kRegenerate);
  return std::stod(it->second);
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, ',');) out.push_back(part);
  return out;
}

// A leaf that requires grad, holding a private copy of `t` (not the fixture's mapping).
Tensor leaf(const Tensor& t) {
  Tensor c = t.clone();
  c.requires_grad_();
  return c;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

#define CHECK_CLOSE(got, ref, tol, what)                                     \
  do {                                                                       \
    auto r_ = compare((got), (ref), (tol));                                  \
    CHECK_MESSAGE(r_.ok, (what), ": ", r_.message);                          \
  } while (0)

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

using vislang::test::TempDir;

// ---- a tiny model for the optimizer and checkpoint tests ---------------------------------------------
// A 2-layer MLP classifier: logits = W2 relu(W1 x + b1) + b2, trained with cross-entropy.
struct Mlp {
  NamedTensors params;  // fc1.weight (H, D), fc1.bias (H), fc2.weight (C, H), fc2.bias (C)
  Mlp(int64_t D, int64_t H, int64_t C, uint64_t seed) {
    Generator g(seed);
    auto p = [&](const char* name, Shape s, double std) {
      Tensor t = Tensor::randn(s, g, DType::F32, Device::cpu(), 0.0, std);
      t.requires_grad_();
      params.emplace_back(name, t);
    };
    p("fc1.weight", {H, D}, 1.0 / std::sqrt(static_cast<double>(D)));
    p("fc1.bias", {H}, 0.1);
    p("fc2.weight", {C, H}, 1.0 / std::sqrt(static_cast<double>(H)));
    p("fc2.bias", {C}, 0.1);
  }
  const Tensor& at(size_t i) const { return params[i].second; }
  Tensor forward(const Tensor& x) const {  // x (N, D) -> logits (N, C)
    return ops::linear(ops::relu(ops::linear(x, at(0), at(1))), at(2), at(3));
  }
};

// The data: N random points, labels from a random linear rule, so the MLP has something to learn.
struct Data {
  Tensor x, y;  // (N, D) f32, (N) i64
  Data(int64_t N, int64_t D, int64_t C) {
    Generator g(7);
    x = Tensor::randn({N, D}, g);
    Tensor w = Tensor::randn({C, D}, g);
    y = ops::argmax(ops::matmul(x, w, false, true), 1);
  }
  // A mini-batch of B rows drawn with `rng` (so the RNG state is part of what a checkpoint restores).
  std::pair<Tensor, Tensor> batch(Generator& rng, int64_t B) const {
    std::vector<int64_t> idx(B);
    for (auto& i : idx) i = static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(x.size(0)));
    Tensor ix = Tensor::from_vector(idx, {B});
    return {ops::index_select(x, 0, ix), ops::index_select(y, 0, ix)};
  }
};

optim::AdamWOptions mlp_adamw() {
  optim::AdamWOptions o;
  o.lr = 3e-2;
  o.weight_decay = 0.1;
  o.beta2 = 0.98;
  o.eps = 1e-6;
  return o;
}
const optim::CosineSchedule kMlpSchedule{3e-2, 3, 12, 1e-4, 0.0};

// One training step, as a training loop does it. Returns the loss.
double train_step(const Mlp& m, optim::AdamW& opt, const Data& d, Generator& rng, int64_t step) {
  auto [x, y] = d.batch(rng, 16);
  opt.zero_grad();
  Tensor loss = ops::cross_entropy(m.forward(x), y);
  loss.backward();
  optim::clip_grad_norm_(opt.params(), 1.0);
  opt.set_lr(kMlpSchedule.lr_at(step));
  opt.step();
  return loss.item();
}

}  // namespace

TEST_SUITE("train") {

// ---- losses -----------------------------------------------------------------------------------------
TEST_CASE("clip_contrastive_loss matches OpenCLIP's ClipLoss: value, gradients, accuracies") {
  SafeTensorsFile f = open_fixture("clip_loss.safetensors");
  Tensor img = leaf(f.get("image_emb")), txt = leaf(f.get("text_emb")), scale = leaf(f.get("logit_scale"));
  REQUIRE(scale.dim() == 0);
  nn::ContrastiveStats st;
  Tensor loss = nn::clip_contrastive_loss(img, txt, scale, &st);
  CHECK(loss.dim() == 0);
  CHECK(loss.requires_grad());
  loss.backward();
  const double ref = f.get("loss").item();
  MESSAGE("clip loss ", loss.item(), " vs OpenCLIP (f64) ", ref, ": |diff| ", std::fabs(loss.item() - ref),
          "; grad image_emb max |diff| ", max_abs_diff(img.grad(), f.get("grad.image_emb")), ", text_emb ",
          max_abs_diff(txt.grad(), f.get("grad.text_emb")), ", logit_scale ",
          std::fabs(scale.grad().item() - f.get("grad.logit_scale").item()));
  CHECK(std::fabs(loss.item() - ref) < 2e-6 * std::max(1.0, std::fabs(ref)));
  CHECK(st.loss == loss.item());
  CHECK_CLOSE(img.grad(), f.get("grad.image_emb"), (Tol{2e-6, 1e-5}), "d loss / d image_emb");
  CHECK_CLOSE(txt.grad(), f.get("grad.text_emb"), (Tol{2e-6, 1e-5}), "d loss / d text_emb");
  CHECK_CLOSE(scale.grad(), f.get("grad.logit_scale"), (Tol{2e-6, 1e-5}), "d loss / d logit_scale");
  CHECK(scale.grad().shape() == Shape{});
  CHECK(st.acc_i2t == f.get("acc_i2t").item());
  CHECK(st.acc_t2i == f.get("acc_t2i").item());
  CHECK(st.batch == img.size(0));
  CHECK(st.scale == doctest::Approx(std::exp(2.3)).epsilon(1e-6));
}

TEST_CASE("contrastive_loss with a fixed temperature matches torch") {
  SafeTensorsFile f = open_fixture("clip_loss.safetensors");
  const double T = meta_num(f, "temperature");
  Tensor img = leaf(f.get("image_emb")), txt = leaf(f.get("text_emb"));
  nn::ContrastiveStats st;
  Tensor loss = nn::contrastive_loss(img, txt, T, &st);
  loss.backward();
  const double ref = f.get("fixed.loss").item();
  MESSAGE("fixed-temperature loss |diff| ", std::fabs(loss.item() - ref), "; grad max |diff| image_emb ",
          max_abs_diff(img.grad(), f.get("fixed.grad.image_emb")), ", text_emb ",
          max_abs_diff(txt.grad(), f.get("fixed.grad.text_emb")));
  CHECK(std::fabs(loss.item() - ref) < 2e-6 * std::max(1.0, std::fabs(ref)));
  CHECK_CLOSE(img.grad(), f.get("fixed.grad.image_emb"), (Tol{2e-6, 1e-5}), "d loss / d image_emb");
  CHECK_CLOSE(txt.grad(), f.get("fixed.grad.text_emb"), (Tol{2e-6, 1e-5}), "d loss / d text_emb");
  CHECK(st.scale == doctest::Approx(1.0 / T));
  CHECK(st.acc_i2t == f.get("acc_i2t").item());  // the ranking does not depend on the temperature
}

TEST_CASE("contrastive losses: perfect pairs give top-1 accuracy 1 and a small loss; errors name the tensors") {
  Generator g(3);
  Tensor e = Tensor::randn({6, 32}, g);
  nn::ContrastiveStats st;
  Tensor loss = nn::contrastive_loss(e, ops::mul(e, 2.0), 0.01, &st);  // same directions, different norms
  CHECK(st.acc_i2t == 1.0);
  CHECK(st.acc_t2i == 1.0);
  CHECK(loss.item() < 1e-3);
  CHECK(!loss.requires_grad());  // nothing required grad

  Tensor s = nn::init_logit_scale();
  std::string msg = error_of([&] { nn::clip_contrastive_loss(e, Tensor::randn({5, 32}, g), s); });
  CHECK(contains(msg, "clip_contrastive_loss"));
  CHECK(contains(msg, "(6, 32)"));
  CHECK(contains(msg, "(5, 32)"));
  msg = error_of([&] { nn::clip_contrastive_loss(e, e, Tensor::zeros({2})); });
  CHECK(contains(msg, "logit_scale"));
  msg = error_of([&] { nn::contrastive_loss(e, e, 0.0); });
  CHECK(contains(msg, "temperature"));
  msg = error_of([&] { nn::contrastive_loss(Tensor::zeros({0, 4}), Tensor::zeros({0, 4}), 0.1); });
  CHECK(contains(msg, "B = 0"));
}

TEST_CASE("init_logit_scale is ln(1/0.07); clamp_logit_scale_ writes [0, ln 100] into the shared storage") {
  Tensor s = nn::init_logit_scale();
  CHECK(s.dim() == 0);
  CHECK(s.requires_grad());
  CHECK(s.item() == static_cast<double>(static_cast<float>(std::log(1.0 / 0.07))));
  Tensor alias = s;  // a module holding the same parameter
  {
    autograd::NoGradGuard ng;
    s.fill_(7.0);
  }
  nn::clamp_logit_scale_(s);
  CHECK(alias.item() == static_cast<double>(static_cast<float>(std::log(100.0))));
  {
    autograd::NoGradGuard ng;
    s.fill_(-0.5);
  }
  nn::clamp_logit_scale_(s);
  CHECK(alias.item() == 0.0);
  CHECK(s.requires_grad());  // still the same learnable leaf
  CHECK(s.data_ptr() == alias.data_ptr());
}

// ---- AdamW ------------------------------------------------------------------------------------------
// Replays the fixture's 10 steps (per-step lr, some gradients absent) and compares parameters and state.
void replay_adamw(const SafeTensorsFile& f, DType dtype, Tol tol, const std::string& what) {
  const std::vector<std::string> decay = split_commas(f.metadata().at("decay"));
  const std::vector<std::string> no_decay = split_commas(f.metadata().at("no_decay"));
  std::vector<std::string> names = decay;
  names.insert(names.end(), no_decay.begin(), no_decay.end());
  NamedTensors params;
  for (const auto& n : names) params.emplace_back(n, leaf(f.get("init." + n).to(dtype)));
  optim::AdamWOptions o;
  o.weight_decay = meta_num(f, "weight_decay");
  o.beta1 = meta_num(f, "beta1");
  o.beta2 = meta_num(f, "beta2");
  o.eps = meta_num(f, "eps");
  optim::AdamW opt(params, o);
  // The default name rule puts exactly the fixture's decay names in the decay group.
  REQUIRE(opt.param_groups().size() == 2);
  CHECK(opt.param_groups()[0].name == "decay");
  std::vector<std::string> got_decay;
  for (size_t i : opt.param_groups()[0].indices) got_decay.push_back(params[i].first);
  CHECK(got_decay == decay);
  CHECK(opt.param_groups()[1].indices.size() == no_decay.size());
  const std::string report = opt.param_groups_report();
  CHECK(contains(report, "no_decay: weight_decay 0, 3 tensors"));
  CHECK(contains(report, "token_embedding.weight (7, 4)"));

  const std::vector<double> lrs = f.get("lr").to_vector<double>();
  const int64_t steps = static_cast<int64_t>(meta_num(f, "steps"));
  for (int64_t k = 0; k < steps; ++k) {
    for (const auto& [n, p] : params) {
      std::string g = "grad." + n + "." + std::to_string(k);
      p.set_grad(f.has(g) ? f.get(g).to(dtype).clone() : Tensor());
    }
    opt.set_lr(lrs[static_cast<size_t>(k)]);
    opt.step();
  }
  CHECK(opt.steps_taken() == steps);
  NamedTensors state = opt.state_dict();
  auto state_of = [&](const std::string& name) {
    for (const auto& [n, t] : state)
      if (n == name) return t;
    FAIL("no state tensor " << name);
    return Tensor();
  };
  double worst_p = 0, worst_m = 0, worst_v = 0;
  for (const auto& [n, p] : params) {
    CHECK_CLOSE(p, f.get("expected." + n), tol, str(what, ": parameter ", n));
    CHECK_CLOSE(state_of("exp_avg." + n), f.get("expected.exp_avg." + n), tol, str(what, ": exp_avg ", n));
    CHECK_CLOSE(state_of("exp_avg_sq." + n), f.get("expected.exp_avg_sq." + n), tol, str(what, ": exp_avg_sq ", n));
    CHECK_MESSAGE(state_of("step." + n).item() == f.get("expected.step." + n).item(), what, ": step of ", n);
    worst_p = std::max(worst_p, max_abs_diff(p, f.get("expected." + n)));
    worst_m = std::max(worst_m, max_abs_diff(state_of("exp_avg." + n), f.get("expected.exp_avg." + n)));
    worst_v = std::max(worst_v, max_abs_diff(state_of("exp_avg_sq." + n), f.get("expected.exp_avg_sq." + n)));
  }
  MESSAGE(what, " vs torch.optim.AdamW after ", steps, " steps: max |diff| parameters ", worst_p, ", exp_avg ",
          worst_m, ", exp_avg_sq ", worst_v);
}

TEST_CASE("AdamW matches torch.optim.AdamW over 10 steps (fused CPU f32 path)") {
  SafeTensorsFile f = open_fixture("adamw.safetensors");
  replay_adamw(f, DType::F32, Tol{1e-6, 1e-6}, "AdamW f32 fused");
}

TEST_CASE("AdamW composed path (f64 parameters, ops::) matches torch.optim.AdamW too") {
  SafeTensorsFile f = open_fixture("adamw.safetensors");
  replay_adamw(f, DType::F64, Tol{1e-6, 1e-6}, "AdamW f64 composed");
}

TEST_CASE("AdamW updates the parameters' own storage, zero_grad clears, state round-trips and is checked") {
  Tensor w = Tensor::ones({3, 2});
  w.requires_grad_();
  Tensor alias = w;  // what a module holds
  const void* before = w.data_ptr();
  optim::AdamW opt({{"w", w}}, optim::AdamWOptions{});
  w.set_grad(Tensor::ones({3, 2}));
  opt.step();
  CHECK(w.data_ptr() == before);
  CHECK(alias.to_vector<float>()[0] < 1.0f);  // the module sees the update
  opt.zero_grad();
  CHECK(!w.grad().defined());
  opt.step();  // no gradient: nothing moves, the step count does not advance
  CHECK(opt.state_dict()[0].second.item() == 1.0);

  optim::AdamW other({{"w", Tensor::ones({3, 2})}}, optim::AdamWOptions{});
  other.load_state_dict(opt.state_dict());
  for (size_t i = 0; i < 3; ++i) CHECK(bitwise_equal(other.state_dict()[i].second, opt.state_dict()[i].second));
  std::string msg = error_of([&] {
    optim::AdamW bad({{"w", Tensor::ones({2, 3})}}, optim::AdamWOptions{});
    bad.load_state_dict(opt.state_dict(), "my.ckpt");
  });
  CHECK(contains(msg, "my.ckpt"));
  CHECK(contains(msg, "exp_avg.w"));
  CHECK(contains(msg, "(3, 2)"));
  CHECK(contains(msg, "(2, 3)"));
  msg = error_of([&] { optim::AdamW dup({{"w", w}, {"w", Tensor::ones({1, 1})}}); });
  CHECK(contains(msg, "given twice"));
  msg = error_of([&] { optim::AdamW t({{"wt", Tensor::ones({3, 2}).t()}}); });
  CHECK(contains(msg, "contiguous"));
}

TEST_CASE("default_no_decay: biases, norms, embeddings, logit_scale and < 2-D tensors are not decayed") {
  Tensor m = Tensor::zeros({4, 4}), v = Tensor::zeros({4});
  CHECK(!optim::default_no_decay("vision_model.encoder.layers.0.mlp.fc1.weight", m));
  CHECK(!optim::default_no_decay("visual_projection.weight", m));
  CHECK(optim::default_no_decay("vision_model.encoder.layers.0.mlp.fc1.bias", v));
  CHECK(optim::default_no_decay("text_model.final_layer_norm.weight", v));
  CHECK(optim::default_no_decay("vision_model.pre_layrnorm.weight", m));
  CHECK(optim::default_no_decay("transformer.resblocks.0.ln_1.weight", m));
  CHECK(optim::default_no_decay("text_model.embeddings.token_embedding.weight", m));
  CHECK(optim::default_no_decay("text_model.embeddings.position_embedding.weight", m));
  CHECK(optim::default_no_decay("logit_scale", Tensor::zeros({})));
  CHECK(optim::default_no_decay("attn.in_proj_bias", m));
  CHECK(optim::default_no_decay("anything", v));
}

TEST_CASE("gradient accumulation: K micro-batch losses divided by K give the full-batch gradient") {
  Mlp full(5, 8, 3, 11), acc(5, 8, 3, 11);
  Data d(32, 5, 3);
  ops::cross_entropy(full.forward(d.x), d.y).backward();
  const int64_t K = 4;
  for (int64_t k = 0; k < K; ++k)
    ops::div(ops::cross_entropy(acc.forward(d.x.narrow(0, 8 * k, 8)), d.y.narrow(0, 8 * k, 8)),
             static_cast<double>(K)).backward();
  for (size_t i = 0; i < full.params.size(); ++i)
    CHECK_CLOSE(acc.at(i).grad(), full.at(i).grad(), (Tol{1e-6, 1e-5}), full.params[i].first);
}

// ---- clipping and the schedule ----------------------------------------------------------------------
TEST_CASE("clip_grad_norm_ matches torch.nn.utils.clip_grad_norm_ (total norm and scaled gradients)") {
  SafeTensorsFile f = open_fixture("clip_grad_norm.safetensors");
  for (const std::string c : {"clip", "noclip"}) {
    std::vector<Tensor> ps;
    for (int i = 0; f.has(c + ".grad." + std::to_string(i)); ++i) {
      Tensor g = f.get(c + ".grad." + std::to_string(i)).clone();
      Tensor p = Tensor::zeros(g.shape());
      p.requires_grad_();
      p.set_grad(g);
      ps.push_back(p);
    }
    REQUIRE(ps.size() == 3);
    const double total = optim::clip_grad_norm_(ps, meta_num(f, c + ".max_norm"));
    const double ref = f.get(c + ".total_norm").item();
    double worst = 0;
    for (size_t i = 0; i < ps.size(); ++i) {
      Tensor want = f.get(c + ".clipped." + std::to_string(i));
      CHECK_CLOSE(ps[i].grad(), want, (Tol{1e-6, 1e-6}), str(c, ": clipped gradient ", i));
      worst = std::max(worst, max_abs_diff(ps[i].grad(), want));
    }
    MESSAGE("clip_grad_norm_ (", c, "): total norm ", total, " vs torch ", ref, " (|diff| ", std::fabs(total - ref),
            "), clipped gradients max |diff| ", worst);
    CHECK(std::fabs(total - ref) < 1e-6 * ref);
  }
}

TEST_CASE("clip_grad_norm_ never scales a gradient tensor in place (gradients may be shared)") {
  Tensor shared = Tensor::full({4}, 3.0);
  Tensor a = Tensor::zeros({4}), b = Tensor::zeros({4});
  a.requires_grad_();
  b.requires_grad_();
  a.set_grad(shared);
  b.set_grad(shared);
  const double total = optim::clip_grad_norm_(std::vector<Tensor>{a, b}, 1.0);
  CHECK(total == doctest::Approx(std::sqrt(8 * 9.0)));
  CHECK(shared.to_vector<float>()[0] == 3.0f);
  const double c = 1.0 / (total + 1e-6);
  CHECK(a.grad().to_vector<float>()[0] == doctest::Approx(3.0 * c).epsilon(1e-6));
  CHECK(b.grad().to_vector<float>()[0] == doctest::Approx(3.0 * c).epsilon(1e-6));
}

TEST_CASE("clip_grad_norm_ on f64 and mixed gradients agrees with the f32 fast path") {
  Generator g(5);
  Tensor g1 = Tensor::randn({40, 3}, g), g2 = Tensor::randn({17}, g);
  auto make = [](const Tensor& grad, DType dt) {
    Tensor p = Tensor::zeros(grad.shape(), dt);
    p.requires_grad_();
    p.set_grad(grad.to(dt));
    return p;
  };
  std::vector<Tensor> f32 = {make(g1, DType::F32), make(g2, DType::F32)};
  std::vector<Tensor> mixed = {make(g1, DType::F64), make(g2, DType::F32)};
  const double a = optim::clip_grad_norm_(f32, 0.5), b = optim::clip_grad_norm_(mixed, 0.5);
  CHECK(a == doctest::Approx(b).epsilon(1e-12));
  CHECK_CLOSE(mixed[0].grad(), f32[0].grad(), (Tol{1e-7, 1e-6}), "clipped f64 gradient");
}

// The CUDA paths (composed AdamW update, device-side norm, the loss on the GPU) against the CPU.
// Skipped, with a message, on machines without a GPU.
TEST_CASE("CUDA: AdamW composed path, clip_grad_norm_ and the clip loss match the CPU") {
  if (cuda_device_count() == 0) {
    MESSAGE("skipped: no CUDA device (vislang ", std::string(cuda_built() ? "has" : "was built without"), " CUDA)");
    return;
  }
  const Device gpu = Device::cuda(0);
  SafeTensorsFile f = open_fixture("clip_loss.safetensors");
  Tensor img = leaf(f.get("image_emb").to(gpu)), txt = leaf(f.get("text_emb").to(gpu));
  Tensor scale = leaf(f.get("logit_scale").to(gpu));
  nn::ContrastiveStats st;
  Tensor loss = nn::clip_contrastive_loss(img, txt, scale, &st);
  loss.backward();
  CHECK(std::fabs(loss.item() - f.get("loss").item()) < 1e-5);
  CHECK_CLOSE(img.grad().to(Device::cpu()), f.get("grad.image_emb"), (Tol{1e-5, 1e-4}), "CUDA d loss / d image_emb");
  CHECK_CLOSE(scale.grad().to(Device::cpu()), f.get("grad.logit_scale"), (Tol{1e-5, 1e-4}), "CUDA d / d logit_scale");
  CHECK(st.acc_i2t == f.get("acc_i2t").item());

  Mlp cpu(5, 8, 3, 21);
  NamedTensors on_gpu;
  for (const auto& [n, p] : cpu.params) on_gpu.emplace_back(n, leaf(p.to(gpu)));
  optim::AdamW oc(cpu.params, mlp_adamw()), og(on_gpu, mlp_adamw());
  Generator g(8);
  for (int k = 0; k < 5; ++k) {
    for (size_t i = 0; i < cpu.params.size(); ++i) {
      Tensor grad = Tensor::randn(cpu.at(i).shape(), g);
      cpu.params[i].second.set_grad(grad);
      on_gpu[i].second.set_grad(grad.to(gpu));
    }
    const double nc = optim::clip_grad_norm_(oc.params(), 1.0), ng = optim::clip_grad_norm_(og.params(), 1.0);
    CHECK(nc == doctest::Approx(ng).epsilon(1e-6));
    oc.step();
    og.step();
  }
  for (size_t i = 0; i < cpu.params.size(); ++i)
    CHECK_CLOSE(on_gpu[i].second.to(Device::cpu()), cpu.at(i), (Tol{1e-6, 1e-5}), "CUDA AdamW " + cpu.params[i].first);
}

TEST_CASE("CosineSchedule matches OpenCLIP's cosine_lr and the documented formula") {
  SafeTensorsFile f = open_fixture("lr_schedule.safetensors");
  std::vector<double> oc = f.get("openclip").to_vector<double>();
  optim::CosineSchedule s{5e-4, 10, 100};
  double worst = 0;
  for (size_t i = 0; i < oc.size(); ++i) worst = std::max(worst, std::fabs(s.lr_at(static_cast<int64_t>(i)) - oc[i]));
  MESSAGE("lr schedule vs ", f.metadata().at("openclip_source"), ": max |diff| ", worst, " over ", oc.size(), " steps");
  CHECK(worst <= 1e-18);
  std::vector<double> fm = f.get("formula").to_vector<double>();
  optim::CosineSchedule s2{3e-3, 7, 50, 1e-5, 0.1};
  for (size_t i = 0; i < fm.size(); ++i)
    CHECK_MESSAGE(std::fabs(s2.lr_at(static_cast<int64_t>(i)) - fm[i]) <= 1e-18, "step ", i);
  // Landmarks: the warm-up reaches base_lr at step W-1, the cosine starts at base_lr, ends near min_lr.
  CHECK(s2.lr_at(6) == doctest::Approx(3e-3));
  CHECK(s2.lr_at(7) == doctest::Approx(3e-3));
  CHECK(s2.lr_at(50) == 1e-5);
  optim::CosineSchedule no_warmup{1.0, 0, 4};
  CHECK(no_warmup.lr_at(0) == 1.0);
  CHECK(no_warmup.lr_at(2) == doctest::Approx(0.5));
}

// ---- checkpoints ------------------------------------------------------------------------------------
TEST_CASE("checkpoint: N steps straight == N/2 steps + save + load into fresh tensors + N/2 steps, bitwise") {
  TempDir tmp;
  const int64_t N = 12;
  Data d(64, 6, 4);

  // The uninterrupted run.
  Mlp a(6, 10, 4, 1);
  optim::AdamW opt_a(a.params, mlp_adamw());
  Generator rng_a(99);
  std::vector<double> losses_a;
  for (int64_t s = 0; s < N; ++s) losses_a.push_back(train_step(a, opt_a, d, rng_a, s));
  CHECK(losses_a.back() < losses_a.front());  // it learns

  // The interrupted run: N/2 steps, checkpoint, then a new "process" with differently initialised tensors.
  const std::string path = tmp.path("run.ckpt.safetensors");
  {
    Mlp b(6, 10, 4, 1);
    optim::AdamW opt_b(b.params, mlp_adamw());
    Generator rng_b(99);
    for (int64_t s = 0; s < N / 2; ++s) train_step(b, opt_b, d, rng_b, s);
    train::CheckpointState st{N / 2, rng_b.state(), {{"config", R"({"hidden": 10})"}, {"recipe", "mlp"},
                                                     {"data_position", "6"}}};
    train::save_checkpoint(path, b.params, &opt_b, st);
  }
  Mlp c(6, 10, 4, 12345);  // other initial values: everything must come from the file
  optim::AdamW opt_c(c.params, mlp_adamw());
  std::vector<const void*> storage;
  for (const auto& np : c.params) storage.push_back(np.second.data_ptr());
  train::CheckpointState st = train::load_checkpoint(path, c.params, &opt_c);
  for (size_t i = 0; i < c.params.size(); ++i) CHECK(c.at(i).data_ptr() == storage[i]);  // written in place
  CHECK(st.step == N / 2);
  CHECK(st.metadata.at("recipe") == "mlp");
  CHECK(st.metadata.at("config") == R"({"hidden": 10})");
  CHECK(st.metadata.at("data_position") == "6");
  CHECK(st.metadata.count("vislang.step") == 0);  // reserved keys are parsed, not handed back
  CHECK(opt_c.steps_taken() == N / 2);
  Generator rng_c(0);
  rng_c.set_state(st.rng_state);
  std::vector<double> losses_c;
  for (int64_t s = st.step; s < N; ++s) losses_c.push_back(train_step(c, opt_c, d, rng_c, s));

  for (size_t i = 0; i < a.params.size(); ++i)
    CHECK_MESSAGE(bitwise_equal(c.at(i), a.at(i)), "parameter ", a.params[i].first, " differs after resume");
  NamedTensors sa = opt_a.state_dict(), sc = opt_c.state_dict();
  REQUIRE(sa.size() == sc.size());
  for (size_t i = 0; i < sa.size(); ++i)
    CHECK_MESSAGE(bitwise_equal(sc[i].second, sa[i].second), "optimizer state ", sa[i].first, " differs");
  for (size_t i = 0; i < losses_c.size(); ++i) CHECK(losses_c[i] == losses_a[static_cast<size_t>(N / 2) + i]);
  CHECK(rng_c.next_u64() == rng_a.next_u64());

  // The file is also a weight file: its model part loads through a WeightScope.
  SafeTensorsFile f = SafeTensorsFile::open(path);
  WeightScope scope(f);
  CHECK(scope.sub("model").get("fc1.weight", {10, 6}).shape() == Shape{10, 6});
  CHECK(train::read_checkpoint_state(path).step == N / 2);
}

TEST_CASE("checkpoint errors name the file and the tensor") {
  TempDir tmp;
  Mlp m(3, 4, 2, 5);
  optim::AdamW opt(m.params, mlp_adamw());
  const std::string path = tmp.path("ok.safetensors");
  train::save_checkpoint(path, m.params, &opt, train::CheckpointState{3, {}, {}});

  SUBCASE("a checkpoint missing a model tensor") {
    NamedTensors partial(m.params.begin(), m.params.begin() + 3);  // no fc2.bias
    const std::string p2 = tmp.path("partial.safetensors");
    train::save_checkpoint(p2, partial, nullptr, {});
    std::string msg = error_of([&] { train::load_checkpoint(p2, m.params, nullptr); });
    CHECK(contains(msg, p2));
    CHECK(contains(msg, "model.fc2.bias"));
  }
  SUBCASE("a checkpoint without optimizer state, loaded with an optimizer") {
    const std::string p2 = tmp.path("noopt.safetensors");
    train::save_checkpoint(p2, m.params, nullptr, {});
    std::string msg = error_of([&] { train::load_checkpoint(p2, m.params, &opt); });
    CHECK(contains(msg, p2));
    CHECK(contains(msg, "step.fc1.weight"));
  }
  SUBCASE("a tensor of the wrong shape: both shapes, and nothing is overwritten") {
    Mlp wide(3, 5, 2, 6);  // hidden 5 instead of 4
    optim::AdamW opt_w(wide.params, mlp_adamw());
    Tensor before = wide.at(0).clone();
    std::string msg = error_of([&] { train::load_checkpoint(path, wide.params, &opt_w); });
    CHECK(contains(msg, path));
    CHECK(contains(msg, "model.fc1.weight"));
    CHECK(contains(msg, "(4, 3)"));
    CHECK(contains(msg, "(5, 3)"));
    CHECK(bitwise_equal(wide.at(0), before));
  }
  SUBCASE("a tensor the model does not have") {
    NamedTensors fewer(m.params.begin(), m.params.begin() + 2);
    std::string msg = error_of([&] { train::load_checkpoint(path, fewer, nullptr); });
    CHECK(contains(msg, path));
    CHECK(contains(msg, "model.fc2."));
    CHECK(contains(msg, "for no parameter of this model"));
  }
  SUBCASE("not a checkpoint") {
    const std::string p2 = tmp.path("weights.safetensors");
    save_safetensors(p2, m.params);
    std::string msg = error_of([&] { train::load_checkpoint(p2, m.params, &opt); });
    CHECK(contains(msg, p2));
    CHECK(contains(msg, "not a vislang training checkpoint"));
  }
  SUBCASE("reserved metadata keys") {
    std::string msg = error_of([&] {
      train::save_checkpoint(tmp.path("x.safetensors"), m.params, &opt,
                             train::CheckpointState{0, {}, {{"vislang.step", "9"}}});
    });
    CHECK(contains(msg, "vislang.step"));
  }
  SUBCASE("the RNG state round-trips exactly") {
    Generator g(42);
    g.normal();  // leaves a spare normal in the state
    const std::string p2 = tmp.path("rng.safetensors");
    train::save_checkpoint(p2, m.params, &opt, train::CheckpointState{1, g.state(), {}});
    CHECK(train::read_checkpoint_state(p2).rng_state == g.state());
  }
}

}  // TEST_SUITE("train")
