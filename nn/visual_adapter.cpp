// nn/visual_adapter.cpp — the BERT-style post-LayerNorm blocks and VisualAdapter (see the header).
#include "nn/visual_adapter.h"

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

Tensor PostNormAttention::forward(const Tensor& x, const Tensor& kv, const ops::AttentionOptions& opt) const {
  Tensor q = split_heads(query.forward(x), heads);    // (B, H, Tq, D)
  Tensor k = split_heads(key.forward(kv), heads);     // (B, H, Tk, D)
  Tensor v = split_heads(value.forward(kv), heads);   // (B, H, Tk, D)
  Tensor a = merge_heads(ops::scaled_dot_product_attention(q, k, v, opt));  // (B, Tq, C)
  return norm.forward(ops::add(x, dense.forward(a)));                          // post-LN residual
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
