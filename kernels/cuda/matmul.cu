// kernels/cuda/matmul.cu — MATMUL on CUDA: cuBLAS strided-batched GEMM with fp32 compute, then a
// fused epilogue kernel for bias and activation; also the gemm() helper that CONV2D reuses.
//
// Layout. vislang tensors are row-major; cuBLAS is column-major. A row-major C (M, N) is the
// column-major Cᵀ (N, M), so we ask cuBLAS for Cᵀ = Bᵀ · Aᵀ. Each operand P (R, C) with strides
// (sr, sc) is passed without a copy when it is row-major (sc == 1: its bytes are Pᵀ column-major,
// op N, ld = sr) or column-major (sr == 1, e.g. a transposed view: op T, ld = sc); any other
// layout (a broadcast inside the matrix, a step-2 slice of both dims) is made contiguous first.
// Batch strides go to cuBLAS as is, including 0 for a broadcast operand.
//
// Precision. CUBLAS_COMPUTE_32F everywhere (no TF32: the tests hold f32 to ~1e-6). f16/bf16
// operands accumulate in f32; without an epilogue cuBLAS writes the f16/bf16 result directly (one
// rounding); with bias or activation the product goes to an f32 buffer and the epilogue rounds once.
// Epilogue: y = act(alpha·(a@b) + bias[n]) with the formulas of apply_activation_ref (erf GELU,
// tanh GELU, quick_gelu = x·sigmoid(1.702x)). cublasLt's fused epilogues are not used: its GELU is
// the tanh approximation only, and one path for every activation is easier to test.
#include <cublas_v2.h>

#include <climits>
#include <vector>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

#define VL_CUBLAS_CHECK(call)                                                                             \
  do {                                                                                                    \
    cublasStatus_t vl_st_ = (call);                                                                       \
    if (vl_st_ != CUBLAS_STATUS_SUCCESS)                                                                  \
      VL_FAIL("cuda: ", #call, " failed: ", cublasGetStatusString(vl_st_), " (", __FILE__, ":", __LINE__, ")"); \
  } while (0)

namespace vislang::cuda {

namespace {

// One handle per (host thread, device): cuBLAS handles must not be shared between threads. Handles
// are never destroyed (destroying them at exit can run after the CUDA runtime has unloaded).
cublasHandle_t cublas_handle() {
  int dev = 0;
  VL_CUDA_CHECK(cudaGetDevice(&dev));
  thread_local std::vector<cublasHandle_t> handles;
  if (static_cast<int>(handles.size()) <= dev) handles.resize(dev + 1, nullptr);
  if (!handles[dev]) {
    cublasHandle_t h = nullptr;
    VL_CUBLAS_CHECK(cublasCreate(&h));
    VL_CUBLAS_CHECK(cublasSetStream(h, 0));  // the legacy default stream, like every vislang kernel
    VL_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    VL_CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
    handles[dev] = h;
  }
  return handles[dev];
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: VL_FAIL("cuda gemm: unsupported dtype ", dtype_name(t));
  }
}

// How a row-major-indexed matrix P (R, C) with strides (sr, sc) is handed to cuBLAS as the
// column-major matrix Pᵀ (C, R): op N when P is row-major, op T when it is column-major.
struct OperandLayout {
  bool ok = false;
  cublasOperation_t op = CUBLAS_OP_N;
  int64_t ld = 1;
};
OperandLayout operand_layout(int64_t R, int64_t C, int64_t sr, int64_t sc) {
  OperandLayout l;
  if (sc == 1 || C == 1) {  // row-major: Pᵀ column-major with ld = sr
    int64_t ld = R == 1 ? std::max<int64_t>(1, C) : sr;
    if (ld >= std::max<int64_t>(1, C)) return {true, CUBLAS_OP_N, ld};
  }
  if (sr == 1 || R == 1) {  // column-major: P column-major with ld = sc, transposed by cuBLAS
    int64_t ld = C == 1 ? std::max<int64_t>(1, R) : sc;
    if (ld >= std::max<int64_t>(1, R)) return {true, CUBLAS_OP_T, ld};
  }
  return l;
}

int to_int(int64_t v, const char* what) {
  VL_CHECK(v >= 0 && v <= INT_MAX, "cuda gemm: ", what, " = ", v, " exceeds cuBLAS's 32-bit limit");
  return static_cast<int>(v);
}

// y[e] = act(acc[e] + bias[e % N]); acc is f32 (may alias y when T = float).
template <typename T>
__global__ void matmul_epilogue_kernel(T* y, const float* acc, const void* bias, int bias_dt, int64_t n, int64_t N,
                                       int act) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    float v = acc[e];
    if (bias) v += load_any_f32(bias, bias_dt, e % N);
    y[e] = from_f32<T>(apply_activation(act, v));
  }
}

}  // namespace

void gemm(const Tensor& a0, const Tensor& b0, void* c_ptr, DType c_dtype, float alpha, float beta) {
  Tensor a = a0, b = b0;
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  const size_t c_esize = dtype_size(c_dtype);
  if (B == 0 || M == 0 || N == 0) return;
  if (K == 0) {  // empty product: C = beta·C
    if (beta == 0.f) VL_CUDA_CHECK(cudaMemsetAsync(c_ptr, 0, static_cast<size_t>(B * M * N) * c_esize, 0));
    else VL_CHECK(beta == 1.f, "cuda gemm: K == 0 with beta ", beta, " is not supported");
    return;
  }
  OperandLayout la = operand_layout(M, K, a.stride(1), a.stride(2));
  if (!la.ok) {
    a = a.contiguous();
    la = operand_layout(M, K, a.stride(1), a.stride(2));
  }
  OperandLayout lb = operand_layout(K, N, b.stride(1), b.stride(2));
  if (!lb.ok) {
    b = b.contiguous();
    lb = operand_layout(K, N, b.stride(1), b.stride(2));
  }
  VL_CHECK(la.ok && lb.ok, "cuda gemm: internal error: no cuBLAS layout for contiguous operands");
  const int64_t sa = B == 1 ? 0 : a.stride(0), sb = B == 1 ? 0 : b.stride(0), scs = M * N;
  const int m = to_int(N, "N"), n = to_int(M, "M"), k = to_int(K, "K");
  const int lda = to_int(la.ld, "lda"), ldb = to_int(lb.ld, "ldb");
  const cudaDataType_t ta = cuda_type(a.dtype()), tb = cuda_type(b.dtype()), tc = cuda_type(c_dtype);
  cublasHandle_t h = cublas_handle();
  const char* pa = static_cast<const char*>(a.data_ptr());
  const char* pb = static_cast<const char*>(b.data_ptr());
  char* pc = static_cast<char*>(c_ptr);
  const int64_t kMaxBatch = 65535;  // stay inside every cuBLAS kernel's grid limits
  for (int64_t b0i = 0; b0i < B; b0i += kMaxBatch) {
    int batch = static_cast<int>(std::min(kMaxBatch, B - b0i));
    VL_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        h, lb.op, la.op, m, n, k, &alpha, pb + b0i * sb * static_cast<int64_t>(b.element_size()), tb, ldb, sb,
        pa + b0i * sa * static_cast<int64_t>(a.element_size()), ta, lda, sa, &beta,
        pc + b0i * scs * static_cast<int64_t>(c_esize), tc, m, scs, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

void matmul(OpCall& c) {
  const Tensor& out = c.out[0];  // (B, M, N)
  Tensor a = c.in[0], b = c.in[1];
  if (a.dtype() != out.dtype()) a = a.to(out.dtype());
  if (b.dtype() != out.dtype()) b = b.to(out.dtype());
  Tensor bias = c.input(2).defined() ? c.input(2).contiguous() : Tensor();
  const int act = static_cast<int>(c.i[0]);
  const float alpha = c.f[0];
  const int64_t n = out.numel();
  if (n == 0) return;
  if (!bias.defined() && act == int(Activation::NONE)) {
    gemm(a, b, out.data_ptr(), out.dtype(), alpha, 0.f);
    return;
  }
  Tensor acc = out.dtype() == DType::F32 ? out : Tensor::empty(out.shape(), DType::F32, out.device());
  gemm(a, b, acc.data_ptr(), DType::F32, alpha, 0.f);
  const int64_t N = out.size(-1);
  dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    matmul_epilogue_kernel<T><<<grid_for(n), kThreads>>>(out.data<T>(), acc.data<float>(),
                                                         bias.defined() ? bias.data_ptr() : nullptr,
                                                         bias.defined() ? int(bias.dtype()) : 0, n, N, act);
    VL_CUDA_LAUNCH_CHECK("matmul_epilogue");
  });
}

}  // namespace vislang::cuda
