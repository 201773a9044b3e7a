// models/fusion/early.h — EARLY fusion: image patches and question tokens are concatenated into ONE
// sequence and a single transformer attends across both modalities from its first layer on.
//
//   pixels (B, 3, S, S) ─ image.PatchEmbed ─ (B, N, D) + type_embedding[0] ┐
//   cls_token (D)                                        ─ (B, 1, D)        ├ concat → (B, 1 + N + T, D)
//   ids (B, T) ─ text.TokenEmbed ─ (B, T, D) + type_embedding[1]           ┘
//     → encoder (joint_layers pre-LN blocks; padded question tokens masked as keys)
//     → final_norm(x[:, 0]) (B, D) → classifier (B, A)
//
// Weight names: cls_token (D), type_embedding (2, D), image.{patch_embedding.{weight,bias},
// position_embedding}, text.{token_embedding, position_embedding}, encoder.layers.<i>.*,
// final_norm.{weight,bias}, classifier.{weight (A, D), bias (A)}.
//
// FLOPs per example (L = joint_layers, n = 1 + N + T):
//   2·N·3P²·D  +  L · (8·n·D² + 4·n²·D + 4·n·D·M)  +  2·D·A
#pragma once
#include "models/fusion/common.h"

namespace vislang::fusion {

class EarlyFusion : public VqaModel {
 public:
  EarlyFusion(const WeightScope& s, const FusionConfig& c);
  Tensor logits(const Tensor& pixels, const Tensor& ids) const override;
  int64_t flops_per_example() const override;

 private:
  Tensor cls_token_, type_embedding_;  // (D), (2, D)
  PatchEmbed image_;
  TokenEmbed text_;
  Blocks encoder_;
  nn::LayerNorm final_norm_;
  nn::Linear classifier_;  // (A, D)
};

}  // namespace vislang::fusion
