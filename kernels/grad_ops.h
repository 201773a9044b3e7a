// kernels/grad_ops.h — the backward kernels autograd needs that cannot be composed cheaply from the
// forward ops. Each is an Op of its own (kernels/backend.h: UNARY_BACKWARD ... SCATTER_ADD) with a
// plain-loop reference kernel, an optimized CPU kernel and a CUDA kernel, exactly like the forward
// ops. core/autograd.cpp composes every other gradient (matmul, attention, elementwise, reductions,
// l2_normalize, cross_entropy, ...) from these and the forward ops, so the same backward runs on
// every backend.
//
// Validation follows kernels/ops.h: errors name the op and show shapes/dtypes/devices. Float tensors
// are f32, f16 or bf16 (f64 on the reference backend); results have the dtype of `grad`.
#pragma once
#include <optional>

#include "kernels/ops.h"

namespace vislang::ops {

// d/dx of unary(k, x): returns grad · f'(x), same shape as x (grad must have x's shape).
// Kinds: NEG EXP LOG SQRT RSQRT TANH SIGMOID RELU GELU GELU_TANH QUICK_GELU ABS SQUARE RECIPROCAL
// (relu'(0) = 0, abs'(0) = 0, as torch).
Tensor unary_backward(UnaryKind k, const Tensor& x, const Tensor& grad);
// d/dx of clamp(x, lo, hi): grad where lo <= x <= hi, else 0 (torch's convention at the bounds).
Tensor clamp_backward(const Tensor& x, const Tensor& grad, std::optional<double> lo, std::optional<double> hi);

// y = softmax(x, dim) (or log_softmax when log): the gradient wrt x given y and dL/dy.
//   softmax:     dx = y · (g − Σ_dim g·y)
//   log_softmax: dx = g − exp(y) · Σ_dim g
Tensor softmax_backward(const Tensor& y, const Tensor& grad, int64_t dim, bool log = false);

// y = layer_norm(x, w, b, eps) over the last dim C. Returns dx (x's shape) and, when weight is
// defined, dweight = Σ_rows g·x̂ and dbias = Σ_rows g (both (C)). Statistics are recomputed from x.
struct LayerNormGrads { Tensor dx, dweight, dbias; };
LayerNormGrads layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& grad, double eps);

// y = conv2d(x, w, bias, o). Returns dx (x's shape) when need_dx, dw (w's shape) when need_dw;
// dbias is sum(grad, {0, 2, 3}) and left to the caller.
struct Conv2dGrads { Tensor dx, dw; };
Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& grad, const Conv2dOptions& o,
                            bool need_dx = true, bool need_dw = true);

// The adjoint of gather: out = zeros(shape) then out[.. index[..i..] ..] += src[..i..] along dim
// (index i64/i32 with src's shape; every other dim of src ≤ that of out). Accumulates duplicates
// (deterministically on the CPU). Serves the backward of gather, embedding, index_select,
// cross_entropy and max/min along a dim.
Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);

}  // namespace vislang::ops
