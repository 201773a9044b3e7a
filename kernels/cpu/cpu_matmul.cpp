// kernels/cpu/cpu_matmul.cpp — Op::MATMUL on the CPU: a thin layer over sgemm and bgemm
// (kernels/cpu/gemm.h).
//
// f32 operands go to sgemm_batched as they are (any strides: transposed views and zero batch strides
// cost no copy; bias + activation are fused in sgemm). bf16 operands go to bgemm_batched as they are
// (bf16 products, f32 sums, bias + activation in f32, one rounding to bf16 on the store) when the CPU
// has the AVX-512 kernels; otherwise, like f16, they are first converted to contiguous f32 (a
// broadcast operand, batch stride 0, only once), the product is formed in f32 and rounded back to the
// output dtype — the same value up to the order of the f32 additions. When in1 is the transposed
// view of a weight registered with ops::prepack_linear_weight (the linear path, batch 1), its panels
// come prepacked from the registry (kernels/cpu/prepack.h; bf16 panels for bgemm) and are neither
// converted nor repacked: same results, bit for bit.
#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/prepack.h"

namespace vislang::cpu_kernels {
namespace {

// A (batch, rows, cols) view of t as f32: in place when t is f32, else converted to a contiguous
// buffer (one matrix when the batch stride is 0).
struct Matrices {
  const float* p = nullptr;
  int64_t batch_stride = 0, row_stride = 0, col_stride = 0;
  std::vector<float> storage;
};
Matrices as_f32(const Tensor& t) {
  Matrices m;
  if (t.dtype() == DType::F32) {
    m.p = t.data<const float>();
    m.batch_stride = t.stride(0);
    m.row_stride = t.stride(1);
    m.col_stride = t.stride(2);
    return m;
  }
  const int64_t B = t.stride(0) == 0 ? 1 : t.size(0), R = t.size(1), C = t.size(2);
  m.storage.resize(static_cast<size_t>(B * R * C));
  const char* base = byte_ptr(t);
  const int64_t es = esize(t);
#pragma omp parallel for schedule(static) if (B * R > 1 && B * R * C >= kParallelMin)
  for (int64_t br = 0; br < B * R; ++br) {
    const int64_t b = br / R, r = br % R;
    load_f32(m.storage.data() + br * C, base + (b * t.stride(0) + r * t.stride(1)) * es, t.dtype(), C, t.stride(2));
  }
  m.p = m.storage.data();
  m.batch_stride = B == 1 ? 0 : R * C;
  m.row_stride = C;
  m.col_stride = 1;
  return m;
}

// bias (N) as f32: in place, or converted into `storage`; nullptr when absent.
const float* bias_f32(const Tensor& bias, std::vector<float>& storage) {
  if (!bias.defined()) return nullptr;
  if (bias.dtype() == DType::F32) return bias.data<const float>();
  storage = to_f32_vector(bias);
  return storage.data();
}

// An operand's matrix b of a (batch, rows, cols) tensor for bgemm: f32 or bf16, any strides.
cpu::GemmOperand operand(const Tensor& t) {
  return cpu::GemmOperand{t.data_ptr(), t.dtype() == DType::BF16, t.stride(1), t.stride(2)};
}

// out (B, M, N) bf16 = act(alpha · a (B, M, K) @ w (B, K, N) + bias) through bgemm.
void matmul_bf16(const Tensor& out, const Tensor& a, const Tensor& w, const float* bias, Activation act, float alpha) {
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a.size(2);
  const cpu::GemmOutput C{out.data_ptr(), true};
  if (const auto packed = B == 1 ? cpu::find_prepacked_bf16(w) : nullptr)
    return cpu::bgemm_prepacked(M, alpha, operand(a), *packed, C, bias, act);
  // (The strides of a size-1 batch never matter; pass 0 so bgemm_batched sees a broadcast.)
  cpu::bgemm_batched(B, M, N, K, alpha, operand(a), B == 1 ? 0 : a.stride(0), operand(w), B == 1 ? 0 : w.stride(0), C,
                     bias, act);
}

}  // namespace

// out (B, M, N) = act(f[0] · in0 (B, M, K) @ in1 (B, K, N) + in2 bias (N)); i[0] = Activation
void matmul_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& a = c.in[0];
  const Tensor& w = c.in[1];
  const Tensor& bias = c.input(2);
  const Activation act = static_cast<Activation>(c.i[0]);
  const float alpha = c.f[0];
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2), K = a.size(2);
  if (out.numel() == 0) return;
  std::vector<float> bias_storage;
  const float* bp = bias_f32(bias, bias_storage);
  if (out.dtype() == DType::BF16 && cpu::bgemm_supported()) return matmul_bf16(out, a, w, bp, act, alpha);
  const std::shared_ptr<const cpu::PackedB> packed = B == 1 ? cpu::find_prepacked(w) : nullptr;
  const Matrices A = as_f32(a), W = packed ? Matrices{} : as_f32(w);
  std::vector<float> out_f32;
  float* C = out.dtype() == DType::F32 ? out.data<float>() : (out_f32.resize(static_cast<size_t>(B * M * N)), out_f32.data());
  // (The strides of a size-1 batch never matter; pass 0 so sgemm_batched sees a broadcast.)
  if (packed)
    cpu::sgemm_prepacked(M, alpha, A.p, A.row_stride, A.col_stride, *packed, C, bp, act);
  else
    cpu::sgemm_batched(B, M, N, K, alpha, A.p, B == 1 ? 0 : A.batch_stride, A.row_stride, A.col_stride, W.p,
                       B == 1 ? 0 : W.batch_stride, W.row_stride, W.col_stride, C, bp, act);
  if (out.dtype() != DType::F32) {
    const int64_t n = B * M * N, chunk = 1 << 14;
    char* po = byte_ptr(out);
    const int64_t eo = esize(out);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; i += chunk) store_f32(po + i * eo, out.dtype(), C + i, std::min(chunk, n - i));
  }
}

}  // namespace vislang::cpu_kernels
