// nn/visual_adapter.h — VisualAdapter: the module that turns a vision tower's tokens into tokens a
// language model (or any other consumer of width Dt) can take, in the three forms the literature uses:
//
//   LINEAR   (B, N, Dv) → proj                      → (B, N, Dt)   LLaVA-1.0: one Linear
//   MLP      (B, N, Dv) → fc1 → GELU → fc2          → (B, N, Dt)   LLaVA-1.5 "mlp2x_gelu"
//   QFORMER  (B, N, Dv) → Q learned queries cross-attend to the N tokens, then a feed-forward
//                                                   → (B, Q, Dt)   BLIP-2's Q-Former in miniature:
//            a fixed number Q of output tokens, however many image tokens come in.
//
// The QFORMER form is built from the two BERT-style post-LayerNorm blocks the BLIP-2 Q-Former uses
// (models/blip2/blip2.h reuses them), so they live here:
//   PostNormAttention    y = LayerNorm(x + dense(MultiHeadAttention(query(x), key(kv), value(kv))))
//   PostNormFeedForward  y = LayerNorm(x + output.dense(act(intermediate.dense(x))))
// Weight names are Hugging Face's BERT / Blip2QFormer names (attention.query, output.dense,
// output.LayerNorm, intermediate.dense, ...). tools/reference/make_blip2_fixtures.py holds the
// PyTorch reference of VisualAdapter; tests/test_blip2.cpp checks each mode against it.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "nn/modules.h"

namespace vislang::nn {

// HF BertAttention / Blip2QFormerAttention under scope s:
//   s.attention.{query,key,value}.{weight,bias}, s.output.dense.{weight,bias}, s.output.LayerNorm.{weight,bias}
// query (C, C), key/value (C, Ckv): self-attention when Ckv == C and kv is x, cross-attention otherwise.
struct PostNormAttention {
  Linear query, key, value, dense;
  LayerNorm norm;  // output.LayerNorm
  int64_t heads = 1;
  void load(const WeightScope& s, int64_t dim, int64_t kv_dim, int64_t heads_, double eps, DType dt = DType::F32);
  // x (B, Tq, C), kv (B, Tk, Ckv) -> (B, Tq, C). opt.key_padding_mask (B, Tk) u8 masks keys.
  Tensor forward(const Tensor& x, const Tensor& kv, const ops::AttentionOptions& opt = {}) const;
  // True when forward(x, kv, opt) takes the reassociated path (see visual_adapter.cpp): inference,
  // no masks, and (policy AUTO) fewer flops than projecting kv to keys and values.
  bool cross_attention_is_reassociated(const Tensor& x, const Tensor& kv, const ops::AttentionOptions& opt = {}) const;
  // q (B, H, Tq, D) projected queries, kv (B, Tk, Ckv) -> attention output before `dense`, (B, Tq, C).
  Tensor attend_reassociated(const Tensor& q, const Tensor& kv) const;
};

// Flops of PostNormAttention::forward as cross-attention, Tq queries of width C reading Tk tokens of
// width Ckv (the matmuls, 2 per multiply-add; per batch item): in the textbook order, or reassociated
// (see visual_adapter.cpp). forward() reassociates at inference when that needs < 80 % of the flops.
double cross_attention_flops(int64_t Tq, int64_t Tk, int64_t C, int64_t Ckv, int64_t heads, bool reassociated);
bool reassociation_pays(int64_t Tq, int64_t Tk, int64_t C, int64_t Ckv, int64_t heads);
// When PostNormAttention::forward reassociates (inference, no masks): AUTO where it pays (the
// default), ALWAYS (tests run small models through it), NEVER (VISLANG_REASSOCIATE_ATTENTION=off
// sets this at start-up). Process-wide.
enum class Reassociation { AUTO, ALWAYS, NEVER };
void set_reassociation(Reassociation r);
Reassociation reassociation();

// HF BertIntermediate + BertOutput: intermediate.dense (H, C), output.dense (C, H), output.LayerNorm (C),
// read from two sibling scopes (BLIP-2 has two such pairs per layer: intermediate/output for text,
// intermediate_query/output_query for the queries).
struct PostNormFeedForward {
  Linear intermediate, output;
  LayerNorm norm;  // output.LayerNorm
  Activation act = Activation::GELU;
  void load(const WeightScope& intermediate_scope, const WeightScope& output_scope, int64_t dim, int64_t hidden,
            Activation act_, double eps, DType dt = DType::F32);
  Tensor forward(const Tensor& x) const;  // (B, T, C) -> (B, T, C); act fused into the first matmul
};

struct VisualAdapterConfig {
  enum class Mode { LINEAR, MLP, QFORMER };
  Mode mode = Mode::LINEAR;
  int64_t in_dim = 0;       // Dv: width of the vision tokens
  int64_t out_dim = 0;      // Dt: width of the output tokens
  int64_t hidden_dim = 0;   // MLP: fc1 width; QFORMER: feed-forward width
  int64_t num_queries = 0;  // QFORMER: Q
  int64_t heads = 1;        // QFORMER: attention heads (out_dim % heads == 0)
  Activation act = Activation::GELU;
  double eps = 1e-12;       // QFORMER: LayerNorm eps (BERT's)

  nlohmann::json to_json() const;
  static VisualAdapterConfig from_json(const nlohmann::json& j);  // errors name the field
  void validate() const;
};
const char* visual_adapter_mode_name(VisualAdapterConfig::Mode m);  // "linear", "mlp", "qformer"
VisualAdapterConfig::Mode parse_visual_adapter_mode(const std::string& s);

// Weights under the scope given to load():
//   LINEAR:  proj.{weight (Dt, Dv), bias (Dt)}
//   MLP:     fc1.{weight (H, Dv), bias}, fc2.{weight (Dt, H), bias}
//   QFORMER: query_tokens (1, Q, Dt), layernorm.{weight,bias} (Dt) (applied to the queries, like
//            BLIP-2's qformer.layernorm), crossattention.* (PostNormAttention, kv width Dv),
//            intermediate.dense / output.dense / output.LayerNorm (PostNormFeedForward, width H)
class VisualAdapter {
 public:
  void load(const WeightScope& s, const VisualAdapterConfig& c, DType dt = DType::F32);
  Tensor forward(const Tensor& x) const;  // (B, N, Dv) -> (B, N, Dt), or (B, Q, Dt) for QFORMER
  const VisualAdapterConfig& config() const { return cfg_; }

 private:
  VisualAdapterConfig cfg_;
  Linear proj_;                        // LINEAR
  Linear fc1_, fc2_;                   // MLP
  Tensor query_tokens_;                // QFORMER (1, Q, Dt)
  LayerNorm layernorm_;                // QFORMER
  PostNormAttention crossattention_;   // QFORMER
  PostNormFeedForward ffn_;            // QFORMER
};

}  // namespace vislang::nn
