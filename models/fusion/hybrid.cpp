// models/fusion/hybrid.cpp — see models/fusion/hybrid.h.
#include "models/fusion/hybrid.h"

namespace vislang::fusion {

void HybridLayer::load(const WeightScope& s, const FusionConfig& c) {
  self_norm.load(s.sub("self_norm"), c.width, c.eps);
  self_attn.load(s.sub("self_attn"), c.width, c.heads);
  cross_norm.load(s.sub("cross_norm"), c.width, c.eps);
  cross_attn.load(s.sub("cross_attn"), c.width, c.heads);
  mlp_norm.load(s.sub("mlp_norm"), c.width, c.eps);
  fc1.load(s.sub("mlp").sub("fc1"), c.width, c.mlp_dim, true, DType::F32, false);
  fc2.load(s.sub("mlp").sub("fc2"), c.mlp_dim, c.width, true, DType::F32, false);
}

Tensor HybridLayer::forward(const Tensor& x, const Tensor& image, const ops::AttentionOptions& self_opt) const {
  Tensor h = self_norm.forward(x);
  Tensor x1 = ops::add(x, self_attn.forward(h, h, self_opt));                   // (B, T, D)
  Tensor x2 = ops::add(x1, cross_attn.forward(cross_norm.forward(x1), image));  // queries: text, keys: patches
  return ops::add(x2, fc2.forward(fc1.forward(mlp_norm.forward(x2), Activation::GELU)));
}

HybridFusion::HybridFusion(const WeightScope& s, const FusionConfig& c) {
  cfg_ = c;
  image_.load(s.sub("image"), c);
  image_encoder_.load(s.sub("image_encoder"), c.image_layers, c);
  image_norm_.load(s.sub("image_norm"), c.width, c.eps);
  text_.load(s.sub("text"), c);
  layers_.resize(static_cast<size_t>(c.text_layers));
  for (int64_t i = 0; i < c.text_layers; ++i) layers_[i].load(s.sub("layers").sub(std::to_string(i)), c);
  final_norm_.load(s.sub("final_norm"), c.width, c.eps);
  classifier_.load(s.sub("classifier"), c.width, c.answers, true, DType::F32, false);
}

Tensor HybridFusion::logits(const Tensor& pixels, const Tensor& ids) const {
  Tensor m = image_norm_.forward(image_encoder_.forward(image_.forward(pixels), {}));  // (B, N, D)
  ops::AttentionOptions self_opt;
  self_opt.key_padding_mask = question_padding_mask(ids, cfg_.vocab_size - 1);       // (B, T)
  Tensor x = text_.forward(ids);                                                      // (B, T, D)
  for (const HybridLayer& l : layers_) x = l.forward(x, m, self_opt);
  return classifier_.forward(final_norm_.forward(x.select(1, 0)));                   // (B, A)
}

int64_t HybridFusion::flops_per_example() const {
  const FusionConfig& c = cfg_;
  int64_t N = c.num_patches(), T = c.context_length, D = c.width;
  return flops_patches(c) + c.image_layers * flops_block(N, D, c.mlp_dim) +
         c.text_layers * (flops_block(T, D, c.mlp_dim) + flops_cross(T, N, D)) + flops_linear(1, D, c.answers);
}

}  // namespace vislang::fusion
