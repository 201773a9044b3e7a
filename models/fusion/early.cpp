// models/fusion/early.cpp — see models/fusion/early.h.
#include "models/fusion/early.h"

namespace vislang::fusion {

EarlyFusion::EarlyFusion(const WeightScope& s, const FusionConfig& c) {
  cfg_ = c;
  cls_token_ = s.get("cls_token", {c.width});
  type_embedding_ = s.get("type_embedding", {2, c.width});
  image_.load(s.sub("image"), c);
  text_.load(s.sub("text"), c);
  encoder_.load(s.sub("encoder"), c.joint_layers, c);
  final_norm_.load(s.sub("final_norm"), c.width, c.eps);
  classifier_.load(s.sub("classifier"), c.width, c.answers, true, DType::F32, false);
}

Tensor EarlyFusion::logits(const Tensor& pixels, const Tensor& ids) const {
  int64_t B = pixels.size(0), D = cfg_.width, N = cfg_.num_patches(), T = cfg_.context_length;
  Tensor img = ops::add(image_.forward(pixels), type_embedding_.select(0, 0));  // (B, N, D)
  Tensor txt = ops::add(text_.forward(ids), type_embedding_.select(0, 1));      // (B, T, D)
  Tensor cls = cls_token_.view({1, 1, D}).expand({B, 1, D});                   // (B, 1, D)
  Tensor x = ops::concat({cls, img, txt}, 1);                                   // (B, 1 + N + T, D)
  // Keys to ignore: the question's padding (the CLS token and the patches are always attended).
  Tensor pad = question_padding_mask(ids, cfg_.vocab_size - 1);                // (B, T) u8
  ops::AttentionOptions opt;
  opt.key_padding_mask = ops::concat({Tensor::zeros({B, 1 + N}, DType::U8), pad}, 1);  // (B, 1 + N + T)
  (void)T;
  x = encoder_.forward(x, opt);                                                 // (B, 1 + N + T, D)
  return classifier_.forward(final_norm_.forward(x.select(1, 0)));             // (B, A)
}

int64_t EarlyFusion::flops_per_example() const {
  const FusionConfig& c = cfg_;
  int64_t n = 1 + c.num_patches() + c.context_length;
  return flops_patches(c) + c.joint_layers * flops_block(n, c.width, c.mlp_dim) + flops_linear(1, c.width, c.answers);
}

}  // namespace vislang::fusion
