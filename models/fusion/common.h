// models/fusion/common.h — what the three VQA fusion models share: the config, the patch and token
// embeddings, the transformer blocks, the key-padding mask of a question, the model interface and
// the analytic FLOP counts.
//
// Where it sits (docs/fusion.md):
//   pixels (B, 3, S, S) ─ PatchEmbed ─ (B, N, D) ┐
//                                                ├ early.h | late.h | hybrid.h ─ logits (B, A)
//   ids    (B, T)       ─ TokenEmbed ─ (B, T, D) ┘        cross_entropy over answer_vocab()
// N = (S / P)² patches, T = the question context (SOT … EOT, then padding), A = answers.
//
// Every model is built through a WeightScope (weights/safetensors.h): WeightScope::with_initializer
// for training (init_fusion_param), from_params for given weights (the PyTorch fixtures of
// tests/test_fusion.cpp, tools/reference/make_fusion_fixtures.py mirrors every name below), or a file.
#pragma once
#include <memory>
#include <string>

#include "models/clip/clip.h"  // clip::EncoderLayer: the pre-LN self-attention block
#include "nn/modules.h"

namespace vislang::fusion {

enum class Strategy { EARLY, LATE_CONCAT, LATE_PRODUCT, HYBRID };
// "early" | "late" (= concat) | "late-product" | "hybrid"; throws on anything else.
Strategy parse_strategy(const std::string& s);
const char* strategy_name(Strategy s);  // the CLI spelling

struct FusionConfig {
  Strategy strategy = Strategy::EARLY;
  int64_t image_size = 32, patch_size = 8;  // S, P
  int64_t vocab_size = 0;                   // V (the learned BPE)
  int64_t context_length = 16;              // T
  int64_t answers = 0;                      // A = answer_vocab().size()
  int64_t width = 64;                       // D, every stream
  int64_t heads = 4;
  int64_t mlp_dim = 256;                    // M, every FFN
  int64_t joint_layers = 4;                 // early: layers of the one joint transformer
  int64_t image_layers = 2;                 // late: image tower; hybrid: image self-attention layers
  int64_t text_layers = 2;                  // late: text tower; hybrid: text layers (self + cross + FFN)
  int64_t fusion_hidden = 128;              // late: hidden width of the decision MLP
  double eps = 1e-5;                        // LayerNorm
  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
  std::string describe() const;             // one line: sizes of this strategy's model
};

// The preset the recipe uses: similar parameter counts for every strategy (docs/fusion.md).
FusionConfig preset(Strategy s, int64_t vocab_size, int64_t context_length, int64_t answers);

// Initial value of the parameter `name`: LayerNorm gains 1, biases 0, everything else N(0, 0.02²)
// (BERT / GPT-2 style). Requires grad.
Tensor init_fusion_param(const std::string& name, const Shape& shape, DType dt, Generator& gen);

// ---- shared pieces -------------------------------------------------------------------------------
// Non-overlapping P×P patches → D (a conv with stride P, with bias), plus a learned position per patch.
//   names: patch_embedding.{weight (D, 3, P, P), bias (D)}, position_embedding (N, D)
struct PatchEmbed {
  nn::Conv2d patch_embedding;
  Tensor position_embedding;
  void load(const WeightScope& s, const FusionConfig& c);
  Tensor forward(const Tensor& pixels) const;  // (B, 3, S, S) -> (B, N, D)
};

// Token + learned position embedding.
//   names: token_embedding (V, D), position_embedding (T, D)
struct TokenEmbed {
  Tensor token_embedding, position_embedding;
  void load(const WeightScope& s, const FusionConfig& c);
  Tensor forward(const Tensor& ids) const;  // (B, T) i64 -> (B, T, D)
};

// u8 (B, T): 1 at the padding after each row's EOT token (`eot`), 0 elsewhere (SOT … EOT).
Tensor question_padding_mask(const Tensor& ids, int64_t eot);

// A stack of pre-LN self-attention blocks (clip::EncoderLayer with exact GELU): names
//   layers.<i>.{layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1, mlp.fc2}
struct Blocks {
  std::vector<clip::EncoderLayer> layers;
  void load(const WeightScope& s, int64_t n, const FusionConfig& c);
  Tensor forward(Tensor x, const ops::AttentionOptions& opt) const;  // (B, T, D) -> (B, T, D)
};

// ---- the model interface -----------------------------------------------------------------------
class VqaModel {
 public:
  virtual ~VqaModel() = default;
  // pixels (B, 3, S, S) f32, ids (B, T) i64 -> answer logits (B, A). Recorded by autograd when the
  // parameters require grad.
  virtual Tensor logits(const Tensor& pixels, const Tensor& ids) const = 0;
  // Forward FLOPs for one example (multiply-add = 2 FLOPs; matrix products only — norms, softmax,
  // activations and additions are O(T·D) and left out). The formula is in each model's header.
  virtual int64_t flops_per_example() const = 0;
  const FusionConfig& config() const { return cfg_; }

 protected:
  FusionConfig cfg_;
};

// Builds the model of cfg.strategy on `scope` (every tensor named as in that model's header).
std::unique_ptr<VqaModel> make_vqa_model(const WeightScope& scope, const FusionConfig& cfg);

// ---- FLOP building blocks (forward, per example) -------------------------------------------------
// linear n×in → n×out:                          2·n·in·out
// self-attention block on n tokens (D, M):      8·n·D² (q, k, v, out) + 4·n²·D (QKᵀ, AV) + 4·n·D·M (FFN)
// cross-attention, nq queries on nk keys:       4·nq·D² (q, out) + 4·nk·D² (k, v) + 4·nq·nk·D
// patch embedding:                              2·N·(3·P²)·D
int64_t flops_linear(int64_t n, int64_t in, int64_t out);
int64_t flops_block(int64_t n, int64_t d, int64_t m);
int64_t flops_cross(int64_t nq, int64_t nk, int64_t d);
int64_t flops_patches(const FusionConfig& c);

}  // namespace vislang::fusion
