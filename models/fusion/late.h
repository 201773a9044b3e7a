// models/fusion/late.h — LATE fusion: two separate towers that never see each other; their pooled
// vectors meet only at the decision layer.
//
//   pixels (B, 3, S, S) ─ image.PatchEmbed (B, N, D), [cls_token; ·] (B, 1 + N, D)
//                       ─ image_encoder (image_layers blocks) ─ image_norm(x[:, 0]) ─ v (B, D) ┐
//   ids (B, T) ─ text.TokenEmbed (B, T, D) ─ text_encoder (text_layers blocks, padding masked)  │
//                       ─ text_norm(x[:, 0]) (the SOT position) ─ q (B, D) ────────────────────┤
//   concat  (`late`):          h = [v; q]  (B, 2D) ┐                                           │
//   product (`late-product`):  h = v ⊙ q   (B, D)  ┴→ fusion.fc1 → GELU → fusion.fc2 → (B, A) ←┘
//
// Weight names: image.{cls_token (D), patch_embedding.{weight,bias}, position_embedding (N, D)},
// image_encoder.layers.<i>.*, image_norm, text.{token_embedding, position_embedding},
// text_encoder.layers.<i>.*, text_norm, fusion.fc1.{weight (H, 2D | D), bias}, fusion.fc2.{weight (A, H), bias}.
//
// FLOPs per example (Li = image_layers, Lt = text_layers, H = fusion_hidden, F = 2D concat / D product):
//   2·N·3P²·D + Li · block(1 + N) + Lt · block(T) + 2·F·H + 2·H·A
//   with block(n) = 8·n·D² + 4·n²·D + 4·n·D·M
#pragma once
#include "models/fusion/common.h"

namespace vislang::fusion {

class LateFusion : public VqaModel {
 public:
  LateFusion(const WeightScope& s, const FusionConfig& c);  // c.strategy: LATE_CONCAT or LATE_PRODUCT
  Tensor logits(const Tensor& pixels, const Tensor& ids) const override;
  int64_t flops_per_example() const override;
  Tensor image_vector(const Tensor& pixels) const;  // (B, 3, S, S) -> (B, D)
  Tensor text_vector(const Tensor& ids) const;      // (B, T) -> (B, D)

 private:
  int64_t fused_width() const { return cfg_.strategy == Strategy::LATE_CONCAT ? 2 * cfg_.width : cfg_.width; }
  Tensor image_cls_;  // (D)
  PatchEmbed image_;
  Blocks image_encoder_;
  nn::LayerNorm image_norm_;
  TokenEmbed text_;
  Blocks text_encoder_;
  nn::LayerNorm text_norm_;
  nn::Linear fc1_, fc2_;  // (H, F), (A, H)
};

}  // namespace vislang::fusion
