// models/fusion/hybrid.h — HYBRID fusion: each modality keeps its own stream, but at every text layer
// the question tokens cross-attend to the image patches (a decoder over the image, like the
// Q-Former's / Flamingo's cross-attention), so the two interact throughout the depth of the model.
//
//   pixels (B, 3, S, S) ─ image.PatchEmbed ─ image_encoder (image_layers blocks) ─ image_norm ─ m (B, N, D)
//   ids (B, T) ─ text.TokenEmbed ─ x (B, T, D), then per text layer l:
//       x = x + self_attn(self_norm(x))          text ↔ text, padded keys masked
//       x = x + cross_attn(cross_norm(x), m)     text → image patches
//       x = x + fc2(GELU(fc1(mlp_norm(x))))
//   → final_norm(x[:, 0]) (the SOT position) → classifier (B, A)
//
// Weight names: image.{patch_embedding.{weight,bias}, position_embedding}, image_encoder.layers.<i>.*,
// image_norm, text.{token_embedding, position_embedding}, layers.<l>.{self_norm, self_attn.{q,k,v,out}_proj,
// cross_norm, cross_attn.{q,k,v,out}_proj, mlp_norm, mlp.fc1, mlp.fc2}, final_norm, classifier.
//
// FLOPs per example (Li = image_layers, Lt = text_layers):
//   2·N·3P²·D + Li · block(N) + Lt · (block(T) + 4·T·D² + 4·N·D² + 4·T·N·D) + 2·D·A
#pragma once
#include "models/fusion/common.h"

namespace vislang::fusion {

// One text layer: self-attention, cross-attention to the image, FFN (all pre-LN, residual).
struct HybridLayer {
  nn::LayerNorm self_norm, cross_norm, mlp_norm;
  nn::MultiHeadAttention self_attn, cross_attn;
  nn::Linear fc1, fc2;  // (M, D), (D, M)
  void load(const WeightScope& s, const FusionConfig& c);
  // x (B, T, D), image (B, N, D) -> (B, T, D)
  Tensor forward(const Tensor& x, const Tensor& image, const ops::AttentionOptions& self_opt) const;
};

class HybridFusion : public VqaModel {
 public:
  HybridFusion(const WeightScope& s, const FusionConfig& c);
  Tensor logits(const Tensor& pixels, const Tensor& ids) const override;
  int64_t flops_per_example() const override;

 private:
  PatchEmbed image_;
  Blocks image_encoder_;
  nn::LayerNorm image_norm_;
  TokenEmbed text_;
  std::vector<HybridLayer> layers_;
  nn::LayerNorm final_norm_;
  nn::Linear classifier_;  // (A, D)
};

}  // namespace vislang::fusion
