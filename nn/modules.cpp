// nn/modules.cpp — loading and forward passes of the basic layers (see nn/modules.h).
#include "nn/modules.h"

namespace vislang::nn {

void Linear::load(const WeightScope& s, int64_t in, int64_t out, bool has_bias, DType dt, bool prepack) {
  weight = s.get("weight", {out, in}, dt);
  bias = has_bias ? s.get("bias", {out}, dt) : Tensor();
  if (prepack && !s.trainable()) ops::prepack_linear_weight(weight);
}

void LayerNorm::load(const WeightScope& s, int64_t dim, double eps_, DType dt) {
  weight = s.get("weight", {dim}, dt);
  bias = s.get("bias", {dim}, dt);
  eps = eps_;
}

void Conv2d::load(const WeightScope& s, int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad,
                  bool has_bias, DType dt, bool prepack) {
  weight = s.get("weight", {out, in, k, k}, dt);
  bias = has_bias ? s.get("bias", {out}, dt) : Tensor();
  opt = {stride, stride, pad, pad, 1, 1};
  // The patch-embedding path of conv2d multiplies by the (out, in·k·k) matrix of a contiguous weight.
  if (prepack && !s.trainable() && stride == k && pad == 0 && weight.is_contiguous())
    ops::prepack_linear_weight(weight.view({out, in * k * k}));
}

void BatchNorm2d::load(const WeightScope& s, int64_t c, DType dt) {
  weight = s.get("weight", {c}, dt);
  bias = s.get("bias", {c}, dt);
  running_mean = s.get("running_mean", {c}, dt);
  running_var = s.get("running_var", {c}, dt);
  // num_batches_tracked is a training counter; accept it when present so nothing is "unused".
  if (s.has("num_batches_tracked")) (void)s.get("num_batches_tracked", {}, DType::I64);
}

void MultiHeadAttention::load(const WeightScope& s, int64_t dim, int64_t heads_, DType dt) {
  VL_CHECK(heads_ > 0 && dim % heads_ == 0, "attention ", s.path(""), ": width ", dim, " is not divisible by ",
           heads_, " heads");
  heads = heads_;
  q_proj.load(s.sub("q_proj"), dim, dim, true, dt);
  k_proj.load(s.sub("k_proj"), dim, dim, true, dt);
  v_proj.load(s.sub("v_proj"), dim, dim, true, dt);
  out_proj.load(s.sub("out_proj"), dim, dim, true, dt);
}

Tensor split_heads(const Tensor& x, int64_t heads) {
  int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  return x.view({B, T, heads, C / heads}).transpose(1, 2);  // (B, H, T, D), no copy
}
Tensor merge_heads(const Tensor& x) {
  int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3);
  return x.transpose(1, 2).reshape({B, T, H * D});  // (B, T, C)
}

Tensor MultiHeadAttention::forward(const Tensor& x_q, const Tensor& x_kv, const ops::AttentionOptions& opt) const {
  Tensor q = split_heads(q_proj.forward(x_q), heads);   // (B, H, Tq, D)
  Tensor k = split_heads(k_proj.forward(x_kv), heads);  // (B, H, Tk, D)
  Tensor v = split_heads(v_proj.forward(x_kv), heads);  // (B, H, Tk, D)
  Tensor o = ops::scaled_dot_product_attention(q, k, v, opt);  // (B, H, Tq, D)
  return out_proj.forward(merge_heads(o));                     // (B, Tq, C)
}

}  // namespace vislang::nn
