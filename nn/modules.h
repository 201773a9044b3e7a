// nn/modules.h — the small layers models are built from: Linear, LayerNorm, Conv2d, BatchNorm2d,
// Embedding and multi-head attention with separate q/k/v projections (the Hugging Face layout).
//
// Each module has `load(scope, sizes...)`, which reads its tensors through a WeightScope (names,
// shapes and dtypes checked; errors name the full tensor path and both shapes), and a const
// `forward`. Modules hold Tensors only; they do not know which device they are on.
//
// Loading is for inference: Linear::load and Conv2d::load prepack their weight by default
// (ops::prepack_linear_weight — the CPU GEMM keeps it in its panel layout instead of repacking it on
// every call), which promises that the weight is never modified in place afterwards. Training code
// (anything that updates weights in place) must pass prepack = false.
#pragma once
#include "kernels/ops.h"
#include "weights/safetensors.h"

namespace vislang::nn {

// y = x Wᵀ + b, W (out, in) as in PyTorch. act is fused into the matmul epilogue.
struct Linear {
  Tensor weight, bias;  // (out, in), (out) or undefined
  void load(const WeightScope& s, int64_t in, int64_t out, bool has_bias = true, DType dt = DType::F32,
            bool prepack = true);
  Tensor forward(const Tensor& x, Activation act = Activation::NONE) const {
    return ops::linear(x, weight, bias, act);
  }
};

struct LayerNorm {
  Tensor weight, bias;  // (C)
  double eps = 1e-5;
  void load(const WeightScope& s, int64_t dim, double eps_, DType dt = DType::F32);
  Tensor forward(const Tensor& x) const { return ops::layer_norm(x, weight, bias, eps); }
};

struct Conv2d {
  Tensor weight, bias;  // (O, C, kh, kw), (O) or undefined
  ops::Conv2dOptions opt;
  // prepack: a patch embedding (stride == k, no padding) runs as one GEMM against the weight's
  // (out, in·k·k) matrix, which is prepacked like a Linear weight; other convs ignore it.
  void load(const WeightScope& s, int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad, bool has_bias,
            DType dt = DType::F32, bool prepack = true);
  Tensor forward(const Tensor& x) const { return ops::conv2d(x, weight, bias, opt); }
};

// Inference batch norm with running statistics (PyTorch BatchNorm2d in eval()).
struct BatchNorm2d {
  Tensor weight, bias, running_mean, running_var;  // (C)
  double eps = 1e-5;
  void load(const WeightScope& s, int64_t c, DType dt = DType::F32);
  Tensor forward(const Tensor& x) const {
    return ops::batch_norm(x, running_mean, running_var, weight, bias, eps);
  }
};

// Multi-head attention, q/k/v/out projections with biases (HF CLIPAttention, BERT, ...).
//   x_q (B, Tq, C), x_kv (B, Tk, C) -> (B, Tq, C)
struct MultiHeadAttention {
  Linear q_proj, k_proj, v_proj, out_proj;
  int64_t heads = 1;
  void load(const WeightScope& s, int64_t dim, int64_t heads_, DType dt = DType::F32);
  Tensor forward(const Tensor& x_q, const Tensor& x_kv, const ops::AttentionOptions& opt = {}) const;
};

// (B, T, C) -> (B, H, T, C/H) view; and back (a copy, since heads are interleaved in memory).
Tensor split_heads(const Tensor& x, int64_t heads);
Tensor merge_heads(const Tensor& x);

}  // namespace vislang::nn
