// models/fusion/common.cpp — see models/fusion/common.h.
#include "models/fusion/common.h"

#include <sstream>

#include "models/fusion/early.h"
#include "models/fusion/hybrid.h"
#include "models/fusion/late.h"

namespace vislang::fusion {

Strategy parse_strategy(const std::string& s) {
  if (s == "early") return Strategy::EARLY;
  if (s == "late" || s == "late-concat") return Strategy::LATE_CONCAT;
  if (s == "late-product") return Strategy::LATE_PRODUCT;
  if (s == "hybrid") return Strategy::HYBRID;
  VL_FAIL("fusion: unknown strategy '", s, "' (known: early, late, late-product, hybrid)");
}

const char* strategy_name(Strategy s) {
  switch (s) {
    case Strategy::EARLY: return "early";
    case Strategy::LATE_CONCAT: return "late";
    case Strategy::LATE_PRODUCT: return "late-product";
    case Strategy::HYBRID: return "hybrid";
  }
  return "?";
}

std::string FusionConfig::describe() const {
  std::ostringstream o;
  o << strategy_name(strategy) << ": width " << width << ", " << heads << " heads, FFN " << mlp_dim << ", ";
  switch (strategy) {
    case Strategy::EARLY:
      o << joint_layers << " joint layers over 1 + " << num_patches() << " + " << context_length << " tokens";
      break;
    case Strategy::LATE_CONCAT:
    case Strategy::LATE_PRODUCT:
      o << "image tower " << image_layers << " layers (" << num_patches() + 1 << " tokens), text tower " << text_layers
        << " layers (" << context_length << " tokens), " << (strategy == Strategy::LATE_CONCAT ? "concat" : "product")
        << " -> MLP " << fusion_hidden;
      break;
    case Strategy::HYBRID:
      o << "image " << image_layers << " layers (" << num_patches() << " patches), text " << text_layers
        << " layers of self + cross + FFN (" << context_length << " tokens)";
      break;
  }
  o << "; image " << image_size << "px, patch " << patch_size << ", vocab " << vocab_size << ", " << answers
    << " answers";
  return o.str();
}

FusionConfig preset(Strategy s, int64_t vocab_size, int64_t context_length, int64_t answers) {
  FusionConfig c;
  c.strategy = s;
  c.vocab_size = vocab_size;
  c.context_length = context_length;
  c.answers = answers;
  // Same width, heads and FFN everywhere; the depth is chosen so that the parameter counts are close:
  // early 4 joint blocks; late 2 + 2 blocks + the decision MLP; hybrid 1 image block + 2 text blocks
  // that each carry an extra cross-attention.
  c.joint_layers = 4;
  c.image_layers = s == Strategy::HYBRID ? 1 : 2;
  c.text_layers = 2;
  return c;
}

static bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

Tensor init_fusion_param(const std::string& name, const Shape& shape, DType dt, Generator& gen) {
  Tensor t;
  bool norm = name.find("norm") != std::string::npos;
  if (ends_with(name, ".bias")) t = Tensor::zeros(shape, dt);
  else if (norm && ends_with(name, ".weight")) t = Tensor::ones(shape, dt);
  else t = Tensor::randn(shape, gen, dt, Device::cpu(), 0.0, 0.02);
  t.requires_grad_();
  return t;
}

// ---- shared pieces -------------------------------------------------------------------------------
void PatchEmbed::load(const WeightScope& s, const FusionConfig& c) {
  VL_CHECK(c.image_size % c.patch_size == 0, "fusion: image size ", c.image_size, " is not a multiple of the patch size ",
           c.patch_size);
  patch_embedding.load(s.sub("patch_embedding"), 3, c.width, c.patch_size, c.patch_size, 0, true);
  position_embedding = s.get("position_embedding", {c.num_patches(), c.width});
}

Tensor PatchEmbed::forward(const Tensor& pixels) const {
  Tensor p = patch_embedding.forward(pixels);  // (B, D, S/P, S/P)
  p = p.flatten(2).transpose(1, 2);            // (B, N, D) view
  return ops::add(p, position_embedding);      // + (N, D)
}

void TokenEmbed::load(const WeightScope& s, const FusionConfig& c) {
  token_embedding = s.get("token_embedding", {c.vocab_size, c.width});
  position_embedding = s.get("position_embedding", {c.context_length, c.width});
}

Tensor TokenEmbed::forward(const Tensor& ids) const {
  VL_CHECK(ids.dim() == 2 && ids.size(1) == position_embedding.size(0), "fusion: question ids must be (B, ",
           position_embedding.size(0), "), got ", ids.describe());
  return ops::add(ops::embedding(token_embedding, ids), position_embedding);  // (B, T, D)
}

Tensor question_padding_mask(const Tensor& ids, int64_t eot) {
  int64_t B = ids.size(0), T = ids.size(1);
  std::vector<int64_t> v = ids.to_vector<int64_t>();
  std::vector<uint8_t> m(static_cast<size_t>(B * T), 0);
  for (int64_t b = 0; b < B; ++b) {
    bool after = false;
    for (int64_t t = 0; t < T; ++t) {
      m[b * T + t] = after ? 1 : 0;
      if (v[b * T + t] == eot) after = true;
    }
  }
  return Tensor::from_vector(m, {B, T}, DType::U8);
}

void Blocks::load(const WeightScope& s, int64_t n, const FusionConfig& c) {
  layers.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    layers[i].load(s.sub("layers").sub(std::to_string(i)), c.width, c.heads, c.mlp_dim, Activation::GELU, c.eps,
                   DType::F32);
}

Tensor Blocks::forward(Tensor x, const ops::AttentionOptions& opt) const {
  for (const auto& l : layers) x = l.forward(x, opt);
  return x;
}

std::unique_ptr<VqaModel> make_vqa_model(const WeightScope& scope, const FusionConfig& cfg) {
  VL_CHECK(cfg.vocab_size > 0 && cfg.answers > 0 && cfg.width % cfg.heads == 0, "fusion: bad config (vocab ",
           cfg.vocab_size, ", answers ", cfg.answers, ", width ", cfg.width, ", heads ", cfg.heads, ")");
  switch (cfg.strategy) {
    case Strategy::EARLY: return std::make_unique<EarlyFusion>(scope, cfg);
    case Strategy::LATE_CONCAT:
    case Strategy::LATE_PRODUCT: return std::make_unique<LateFusion>(scope, cfg);
    case Strategy::HYBRID: return std::make_unique<HybridFusion>(scope, cfg);
  }
  VL_FAIL("fusion: unknown strategy");
}

// ---- FLOPs ---------------------------------------------------------------------------------------
int64_t flops_linear(int64_t n, int64_t in, int64_t out) { return 2 * n * in * out; }
int64_t flops_block(int64_t n, int64_t d, int64_t m) { return 8 * n * d * d + 4 * n * n * d + 4 * n * d * m; }
int64_t flops_cross(int64_t nq, int64_t nk, int64_t d) { return 4 * nq * d * d + 4 * nk * d * d + 4 * nq * nk * d; }
int64_t flops_patches(const FusionConfig& c) {
  return flops_linear(c.num_patches(), 3 * c.patch_size * c.patch_size, c.width);
}

}  // namespace vislang::fusion
