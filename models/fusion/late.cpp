// models/fusion/late.cpp — see models/fusion/late.h.
#include "models/fusion/late.h"

namespace vislang::fusion {

LateFusion::LateFusion(const WeightScope& s, const FusionConfig& c) {
  VL_CHECK(c.strategy == Strategy::LATE_CONCAT || c.strategy == Strategy::LATE_PRODUCT,
           "LateFusion: strategy must be late or late-product, got ", strategy_name(c.strategy));
  cfg_ = c;
  WeightScope im = s.sub("image");
  image_cls_ = im.get("cls_token", {c.width});
  image_.load(im, c);
  image_encoder_.load(s.sub("image_encoder"), c.image_layers, c);
  image_norm_.load(s.sub("image_norm"), c.width, c.eps);
  text_.load(s.sub("text"), c);
  text_encoder_.load(s.sub("text_encoder"), c.text_layers, c);
  text_norm_.load(s.sub("text_norm"), c.width, c.eps);
  fc1_.load(s.sub("fusion").sub("fc1"), fused_width(), c.fusion_hidden, true, DType::F32, false);
  fc2_.load(s.sub("fusion").sub("fc2"), c.fusion_hidden, c.answers, true, DType::F32, false);
}

Tensor LateFusion::image_vector(const Tensor& pixels) const {
  int64_t B = pixels.size(0), D = cfg_.width;
  Tensor cls = image_cls_.view({1, 1, D}).expand({B, 1, D});
  Tensor x = ops::concat({cls, image_.forward(pixels)}, 1);  // (B, 1 + N, D)
  x = image_encoder_.forward(x, {});
  return image_norm_.forward(x.select(1, 0));                // (B, D)
}

Tensor LateFusion::text_vector(const Tensor& ids) const {
  ops::AttentionOptions opt;
  opt.key_padding_mask = question_padding_mask(ids, cfg_.vocab_size - 1);  // (B, T)
  Tensor x = text_encoder_.forward(text_.forward(ids), opt);              // (B, T, D)
  return text_norm_.forward(x.select(1, 0));                              // (B, D) at SOT
}

Tensor LateFusion::logits(const Tensor& pixels, const Tensor& ids) const {
  Tensor v = image_vector(pixels), q = text_vector(ids);  // (B, D) each
  Tensor h = cfg_.strategy == Strategy::LATE_CONCAT ? ops::concat({v, q}, 1)  // (B, 2D)
                                                    : ops::mul(v, q);         // (B, D)
  return fc2_.forward(fc1_.forward(h, Activation::GELU));                     // (B, A)
}

int64_t LateFusion::flops_per_example() const {
  const FusionConfig& c = cfg_;
  return flops_patches(c) + c.image_layers * flops_block(1 + c.num_patches(), c.width, c.mlp_dim) +
         c.text_layers * flops_block(c.context_length, c.width, c.mlp_dim) +
         flops_linear(1, fused_width(), c.fusion_hidden) + flops_linear(1, c.fusion_hidden, c.answers);
}

}  // namespace vislang::fusion
