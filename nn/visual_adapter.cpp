// nn/visual_adapter.cpp — the BERT-style post-LayerNorm blocks and VisualAdapter (see the header).
#include "nn/visual_adapter.h"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/autograd.h"

namespace vislang::nn {

// ---- PostNormAttention --------------------------------------------------------------------------
void PostNormAttention::load(const WeightScope& s, int64_t dim, int64_t kv_dim, int64_t heads_, double eps, DType dt) {
  VL_CHECK(heads_ > 0 && dim % heads_ == 0, "attention ", s.path("attention"), ": width ", dim,
           " is not divisible by ", heads_, " heads");
  heads = heads_;
  WeightScope a = s.sub("attention"), o = s.sub("output");
  query.load(a.sub("query"), dim, dim, true, dt);
  key.load(a.sub("key"), kv_dim, dim, true, dt);
  value.load(a.sub("value"), kv_dim, dim, true, dt);
  dense.load(o.sub("dense"), dim, dim, true, dt);
  norm.load(o.sub("LayerNorm"), dim, eps, dt);
}

// Few queries reading many wide tokens (BLIP-2's cross-attention: Tq = 32 queries of width C = 768
// read Tk = 257 image tokens of width Ckv = 1408) spend most of their time projecting the tokens to
// keys and values: 2·2·Tk·Ckv·C flops, although only Tq rows per head are ever read out. The same
// attention can be evaluated with the projections moved to the query side, per head h (D = C/H):
//   scores_h = q_h k_hᵀ = q_h (X W_k,hᵀ + b_k,h)ᵀ = (q_h W_k,h) Xᵀ + q_h b_k,hᵀ
//     where q_h b_k,hᵀ is one constant per query row, which the softmax over keys cancels;
//   out_h = P_h (X W_v,hᵀ + b_v,h) = (P_h X) W_v,hᵀ + b_v,h      since every row of P_h sums to 1.
// Flops: 4·Tq·C·Ckv + 4·H·Tq·Tk·Ckv instead of 4·Tk·Ckv·C + 4·Tq·Tk·C, plus the query and output
// projections either way (cross_attention_flops; BLIP-2: 0.77 vs 1.21 GFLOP per image and layer). The result is the same function, rounded differently (f32: ~1e-6 relative).
// Used for inference only (no gradient is recorded through it: training keeps the textbook order)
// and only without masks, where it is cheaper (cross_attention_is_reassociated).
double cross_attention_flops(int64_t Tq, int64_t Tk, int64_t C, int64_t Ckv, int64_t heads, bool reassociated) {
  const double q = double(Tq), k = double(Tk), c = double(C), ckv = double(Ckv), h = double(heads);
  const double query_and_dense = 2 * 2 * q * c * c;
  if (reassociated) return query_and_dense + 4 * q * c * ckv + 4 * h * q * k * ckv;
  return query_and_dense + 4 * k * ckv * c + 4 * q * k * c;  // keys and values of every token, then attention
}

bool reassociation_pays(int64_t Tq, int64_t Tk, int64_t C, int64_t Ckv, int64_t H) {
  return cross_attention_flops(Tq, Tk, C, Ckv, H, true) < 0.8 * cross_attention_flops(Tq, Tk, C, Ckv, H, false);
}

// The policy starts as AUTO, or NEVER when VISLANG_REASSOCIATE_ATTENTION=off (to compare speed and
// results from the command line).
static std::atomic<Reassociation>& policy() {
  static std::atomic<Reassociation> p{[] {
    const char* env = std::getenv("VISLANG_REASSOCIATE_ATTENTION");
    return env && std::string(env) == "off" ? Reassociation::NEVER : Reassociation::AUTO;
  }()};
  return p;
}
void set_reassociation(Reassociation r) { policy().store(r); }
Reassociation reassociation() { return policy().load(); }

bool PostNormAttention::cross_attention_is_reassociated(const Tensor& x, const Tensor& kv,
                                                         const ops::AttentionOptions& opt) const {
  const Reassociation r = reassociation();
  if (r == Reassociation::NEVER || &x == &kv || x.dim() != 3 || kv.dim() != 3) return false;
  if (opt.attn_mask.defined() || opt.key_padding_mask.defined() || opt.causal || opt.scale) return false;
  if (!key.bias.defined() || !value.bias.defined()) return false;
  if (autograd::needs_grad({x, kv, query.weight, key.weight, value.weight, key.bias, value.bias})) return false;
  return r == Reassociation::ALWAYS || reassociation_pays(x.size(1), kv.size(1), query.weight.size(0), kv.size(2), heads);
}

Tensor PostNormAttention::attend_reassociated(const Tensor& q, const Tensor& kv) const {
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3), Ckv = kv.size(2);
  const Tensor wk = key.weight.view({H, D, Ckv}), wv = value.weight.view({H, D, Ckv});  // per-head rows of W_k, W_v
  const double scale = 1.0 / std::sqrt(double(D));
  // One image at a time: the weights are shared by the images but the tokens are not, so a batched
  // product over (image, head) would have to copy the weights per image.
  std::vector<Tensor> outs;
  outs.reserve(size_t(B));
  for (int64_t b = 0; b < B; ++b) {
    const Tensor x = kv.select(0, b);                                                        // (Tk, Ckv)
    Tensor qk = ops::matmul(q.select(0, b), wk, false, false, Tensor(), Activation::NONE, scale);  // (H, Tq, Ckv)
    Tensor s = ops::matmul(qk.view({H * Tq, Ckv}), x, false, true);  // (H·Tq, Tk): every head's scores at once
    Tensor px = ops::matmul(ops::softmax(s, -1), x);                  // (H·Tq, Ckv): probability-weighted tokens
    outs.push_back(ops::matmul(px.view({H, Tq, Ckv}), wv, false, true));  // (H, Tq, D)
  }
  return ops::add(merge_heads(ops::stack(outs, 0)), value.bias);  // (B, H, Tq, D) -> (B, Tq, C), + b_v
}

Tensor PostNormAttention::forward(const Tensor& x, const Tensor& kv, const ops::AttentionOptions& opt) const {
  Tensor q = split_heads(query.forward(x), heads);  // (B, H, Tq, D)
  Tensor a;                                         // (B, Tq, C)
  if (cross_attention_is_reassociated(x, kv, opt)) {
    a = attend_reassociated(q, kv);
  } else {
    Tensor k = split_heads(key.forward(kv), heads);    // (B, H, Tk, D)
    Tensor v = split_heads(value.forward(kv), heads);  // (B, H, Tk, D)
    a = merge_heads(ops::scaled_dot_product_attention(q, k, v, opt));
  }
  return norm.forward(ops::add(x, dense.forward(a)));  // post-LN residual
}

// ---- PostNormFeedForward ------------------------------------------------------------------------
void PostNormFeedForward::load(const WeightScope& intermediate_scope, const WeightScope& output_scope, int64_t dim,
                               int64_t hidden, Activation act_, double eps, DType dt) {
  intermediate.load(intermediate_scope.sub("dense"), dim, hidden, true, dt);
  output.load(output_scope.sub("dense"), hidden, dim, true, dt);
  norm.load(output_scope.sub("LayerNorm"), dim, eps, dt);
  act = act_;
}

Tensor PostNormFeedForward::forward(const Tensor& x) const {
  Tensor h = intermediate.forward(x, act);            // (B, T, H)
  return norm.forward(ops::add(x, output.forward(h)));  // (B, T, C)
}

// ---- config -----------------------------------------------------------------------------------
const char* visual_adapter_mode_name(VisualAdapterConfig::Mode m) {
  switch (m) {
    case VisualAdapterConfig::Mode::LINEAR: return "linear";
    case VisualAdapterConfig::Mode::MLP: return "mlp";
    case VisualAdapterConfig::Mode::QFORMER: return "qformer";
  }
  return "?";
}

VisualAdapterConfig::Mode parse_visual_adapter_mode(const std::string& s) {
  for (auto m : {VisualAdapterConfig::Mode::LINEAR, VisualAdapterConfig::Mode::MLP, VisualAdapterConfig::Mode::QFORMER})
    if (s == visual_adapter_mode_name(m)) return m;
  VL_FAIL("visual adapter: mode '", s, "' is not one of linear, mlp, qformer");
}

void VisualAdapterConfig::validate() const {
  VL_CHECK(in_dim > 0 && out_dim > 0, "visual adapter: in_dim and out_dim must be > 0, got ", in_dim, " and ", out_dim);
  if (mode == Mode::LINEAR) return;
  VL_CHECK(hidden_dim > 0, "visual adapter (", visual_adapter_mode_name(mode), "): hidden_dim must be > 0, got ",
           hidden_dim);
  if (mode == Mode::QFORMER) {
    VL_CHECK(num_queries > 0, "visual adapter (qformer): num_queries must be > 0, got ", num_queries);
    VL_CHECK(heads > 0 && out_dim % heads == 0, "visual adapter (qformer): out_dim ", out_dim,
             " is not divisible by heads ", heads);
  }
}

nlohmann::json VisualAdapterConfig::to_json() const {
  return {{"mode", visual_adapter_mode_name(mode)}, {"in_dim", in_dim},   {"out_dim", out_dim},
          {"hidden_dim", hidden_dim},               {"num_queries", num_queries}, {"heads", heads},
          {"act", activation_name(act)},            {"eps", eps}};
}

VisualAdapterConfig VisualAdapterConfig::from_json(const nlohmann::json& j) {
  VL_CHECK(j.is_object(), "visual adapter config: expected a JSON object, got ", j.dump());
  VisualAdapterConfig c;
  auto num = [&](const char* key, int64_t def) -> int64_t {
    if (!j.contains(key)) return def;
    VL_CHECK(j[key].is_number_integer(), "visual adapter config: field ", key, " must be an integer, got ", j[key].dump());
    return j[key].get<int64_t>();
  };
  VL_CHECK(j.contains("mode") && j["mode"].is_string(), "visual adapter config: missing string field mode");
  c.mode = parse_visual_adapter_mode(j["mode"].get<std::string>());
  c.in_dim = num("in_dim", 0);
  c.out_dim = num("out_dim", 0);
  c.hidden_dim = num("hidden_dim", 0);
  c.num_queries = num("num_queries", 0);
  c.heads = num("heads", 1);
  std::string act = j.value("act", std::string("gelu"));
  bool found = false;
  for (int a = 0; a < int(Activation::COUNT) && !found; ++a)
    if (act == activation_name(Activation(a))) c.act = Activation(a), found = true;
  VL_CHECK(found, "visual adapter config: act '", act, "' is not a known activation");
  c.eps = j.value("eps", 1e-12);
  c.validate();
  return c;
}

// ---- VisualAdapter ----------------------------------------------------------------------------
void VisualAdapter::load(const WeightScope& s, const VisualAdapterConfig& c, DType dt) {
  c.validate();
  cfg_ = c;
  switch (c.mode) {
    case VisualAdapterConfig::Mode::LINEAR:
      proj_.load(s.sub("proj"), c.in_dim, c.out_dim, true, dt);
      break;
    case VisualAdapterConfig::Mode::MLP:
      fc1_.load(s.sub("fc1"), c.in_dim, c.hidden_dim, true, dt);
      fc2_.load(s.sub("fc2"), c.hidden_dim, c.out_dim, true, dt);
      break;
    case VisualAdapterConfig::Mode::QFORMER:
      query_tokens_ = s.get("query_tokens", {1, c.num_queries, c.out_dim}, dt);
      layernorm_.load(s.sub("layernorm"), c.out_dim, c.eps, dt);
      crossattention_.load(s.sub("crossattention"), c.out_dim, c.in_dim, c.heads, c.eps, dt);
      ffn_.load(s.sub("intermediate"), s.sub("output"), c.out_dim, c.hidden_dim, c.act, c.eps, dt);
      break;
  }
}

Tensor VisualAdapter::forward(const Tensor& x) const {
  VL_CHECK(x.dim() == 3 && x.size(2) == cfg_.in_dim, "visual adapter (", visual_adapter_mode_name(cfg_.mode),
           "): expected vision tokens (B, N, ", cfg_.in_dim, "), got ", x.describe());
  switch (cfg_.mode) {
    case VisualAdapterConfig::Mode::LINEAR:
      return proj_.forward(x);                                    // (B, N, Dt)
    case VisualAdapterConfig::Mode::MLP:
      return fc2_.forward(fc1_.forward(x, cfg_.act));             // (B, N, H) -> (B, N, Dt)
    case VisualAdapterConfig::Mode::QFORMER: {
      const int64_t B = x.size(0), Q = cfg_.num_queries, D = cfg_.out_dim;
      Tensor q = layernorm_.forward(query_tokens_).expand({B, Q, D});  // (B, Q, Dt), one copy shared
      Tensor h = crossattention_.forward(q, x);                         // queries attend to the N tokens
      return ffn_.forward(h);                                           // (B, Q, Dt)
    }
  }
  VL_FAIL("visual adapter: unknown mode");
}

}  // namespace vislang::nn
