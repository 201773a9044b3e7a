// kernels/ops.h — the public op API that models compose. Each function validates its arguments
// (errors name the op and show shapes/dtypes/devices), allocates the result and dispatches to the
// backend of the inputs' device (see kernels/backend.h). Float ops accept f32, f16, bf16 (and f64,
// reference only); results have the input dtype. All inputs of one call must be on one device.
#pragma once
#include <optional>
#include <vector>

#include "kernels/backend.h"

namespace vislang::ops {

// ---- elementwise (numpy broadcasting) ---------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor binary(BinaryKind k, const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double s);
Tensor sub(const Tensor& a, double s);
Tensor mul(const Tensor& a, double s);
Tensor div(const Tensor& a, double s);
Tensor pow(const Tensor& a, double s);
Tensor rsub(double s, const Tensor& a);  // s - a
Tensor rdiv(double s, const Tensor& a);  // s / a
Tensor scalar(BinaryKind k, const Tensor& a, double s, bool reverse = false);

Tensor unary(UnaryKind k, const Tensor& x);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);       // erf form (torch default)
Tensor gelu_tanh(const Tensor& x);  // tanh approximation
Tensor quick_gelu(const Tensor& x); // x * sigmoid(1.702 x), OpenAI CLIP
Tensor activation(Activation a, const Tensor& x);
Tensor clamp(const Tensor& x, std::optional<double> lo, std::optional<double> hi);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // cond: u8 (nonzero = true)

// ---- reductions along one dim -------------------------------------------------------------------
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor reduce(ReduceKind k, const Tensor& x, int64_t dim, bool keepdim = false);
Tensor sum_all(const Tensor& x);  // 0-d
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);  // i64
struct TopK { Tensor values, indices; };
TopK topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);  // sorted
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
Tensor l2_normalize(const Tensor& x, int64_t dim = -1, double eps = 1e-12);
enum class Reduction { NONE, MEAN, SUM };
// logits (N, C), targets (N) i64/i32 in [0, C) or == ignore_index. MEAN averages over non-ignored.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, Reduction r = Reduction::MEAN,
                     int64_t ignore_index = -100);

// ---- normalization ------------------------------------------------------------------------------
// Normalizes over the last dim. weight/bias may be undefined (no affine).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-6);
// x (N, C, ...) inference-mode batch norm with running statistics.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, double eps = 1e-5);

// ---- matrix products ----------------------------------------------------------------------------
// a (..., M, K) @ b (..., K, N) with broadcast batch dims; trans_a / trans_b transpose the last two
// dims first (views, no copy). bias (N) optional, act fused after the bias.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
              const Tensor& bias = Tensor(), Activation act = Activation::NONE, double alpha = 1.0);
// PyTorch convention: x (..., in), W (out, in), b (out) -> (..., out).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              Activation act = Activation::NONE);
// Inference-time promise that `weight` (out, in) will not be modified in place from now on, so the
// CPU backend may keep it packed in the layout its GEMM micro-kernel reads instead of repacking it
// in every linear(x, weight) — at small batch that packing costs as much as the multiply. The
// panels are made on the first product that uses them and live as long as the weight's storage
// (memory: one f32 copy of the weight). Writing to a prepacked weight in place afterwards gives
// stale results: training code must not prepack. A no-op for weights that are not f32 / f16 / bf16
// on the CPU, or not 2-D. Results are bit-identical to the unpacked path. nn::Linear::load and
// nn::Conv2d::load (patch embeddings) call it by default.
void prepack_linear_weight(const Tensor& weight);

// ---- attention ----------------------------------------------------------------------------------
struct AttentionOptions {
  Tensor attn_mask;         // additive, broadcastable to (B, H, Tq, Tk); undefined = none
  Tensor key_padding_mask;  // (B, Tk) u8, nonzero = padded key (ignored); undefined = none
  bool causal = false;      // query i attends keys j <= i + (Tk - Tq)
  std::optional<double> scale;  // default 1/sqrt(D)
};
// q (B, H, Tq, D), k (B, H, Tk, D), v (B, H, Tk, Dv) -> (B, H, Tq, Dv)
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const AttentionOptions& opt = {});

// ---- convolution & pooling ----------------------------------------------------------------------
struct Conv2dOptions { int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dil_h = 1, dil_w = 1; };
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor(), const Conv2dOptions& o = {});
struct Pool2dOptions {
  int64_t kernel_h = 2, kernel_w = 2, stride_h = 0, stride_w = 0, pad_h = 0, pad_w = 0;  // stride 0 = kernel
  bool count_include_pad = true, ceil_mode = false;
};
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& o);

// ---- indexing, joining, casting -----------------------------------------------------------------
Tensor embedding(const Tensor& table, const Tensor& ids);  // (V, D), ids (...) -> (..., D)
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim);  // views
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim);      // views
Tensor cast(const Tensor& x, DType dtype);

}  // namespace vislang::ops
