// kernels/cuda/cuda_ops.h — the CUDA kernels' entry points (one per Op, each `void(OpCall&)`), as
// returned by cuda_backend().find() in backend.cu, plus the GEMM helper that MATMUL and CONV2D share.
//
// Entry points assume the contract of kernels/backend.h (the front-end validated shapes and dtypes)
// and that find() accepted the dtypes; backend.cu sets the current device before calling them.
#pragma once
#include "kernels/backend.h"

namespace vislang::cuda {

// elementwise.cu
void copy(OpCall& c);
void fill(OpCall& c);
void binary(OpCall& c);
void scalar(OpCall& c);
void unary(OpCall& c);
void clamp(OpCall& c);
void where(OpCall& c);
void embedding(OpCall& c);
void index_select(OpCall& c);
void gather(OpCall& c);
// reduce.cu
void reduce(OpCall& c);
void argmax(OpCall& c);
void topk(OpCall& c);
void softmax(OpCall& c);
void l2_normalize(OpCall& c);
void cross_entropy(OpCall& c);
void layer_norm(OpCall& c);
void rms_norm(OpCall& c);
// matmul.cu
void matmul(OpCall& c);
// conv.cu
void conv2d(OpCall& c);
void avg_pool2d(OpCall& c);
void batch_norm(OpCall& c);
// attention.cu
void attention(OpCall& c);

// Largest head dim ATTENTION supports (D and Dv).
constexpr int64_t kAttentionMaxHeadDim = 128;

// c (B, M, N) row-major contiguous at `c_ptr` of dtype `c_dtype` = alpha · a (B, M, K) @ b (B, K, N)
// + beta · c. a and b: same float dtype, any strides (batch stride may be 0); a layout cuBLAS cannot
// take is copied to contiguous first. c_dtype is a's dtype or f32. fp32 compute (no TF32).
void gemm(const Tensor& a, const Tensor& b, void* c_ptr, DType c_dtype, float alpha, float beta);

// INDEX_SELECT / GATHER walk the output's coordinates directly: at most this many dims.
constexpr int kMaxIndexDims = 16;

}  // namespace vislang::cuda
