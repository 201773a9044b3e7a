// kernels/cpu/gemm.h — the f32 matrix multiply every CPU matmul, linear and conv2d (im2col) uses.
//
// Where it sits: kernels/cpu/ implements Op::MATMUL (and the GEMM inside attention and conv2d) by
// calling sgemm / sgemm_batched here; the reference (kernels/ref/) is the plain triple loop they are
// tested against. Design (BLIS): A and B are packed into cache-sized panels (packing reads any
// strides, so a transposed view costs no copy), an AVX-512 register-tile micro-kernel does the
// FMAs, OpenMP splits the output into blocks, and the bias + activation are fused into the last
// write of each tile. The instruction set is picked at run time (AVX-512 -> AVX2+FMA -> plain
// C++), so the library never executes an instruction the CPU lacks. Benchmark: `vislang bench ops`.
#pragma once
#include <cstdint>

#include "kernels/backend.h"  // Activation

namespace vislang::cpu {

// C (M, N) = act(alpha · A @ B + bias), C contiguous row-major (ldc = N), overwritten (no beta).
//   A (M, K): element (m, k) at A[m*lda_row + k*lda_col]   (any strides, e.g. a transposed view)
//   B (K, N): element (k, n) at B[k*ldb_row + n*ldb_col]
//   bias (N) contiguous or nullptr; act uses the math of apply_activation_ref (kernels/backend.h).
// K == 0 gives C = act(bias) (or act(0)). Runs on omp_get_max_threads() threads, or on one when
// called from inside a parallel region. Strides are in elements and may be negative or zero.
void sgemm(int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda_row, int64_t lda_col,
           const float* B, int64_t ldb_row, int64_t ldb_col,
           float* C, const float* bias, Activation act);

// C (batch, M, N) contiguous = act(alpha · A[b] @ B[b] + bias) for every b, where A[b] starts at
// A + b*a_batch_stride and B[b] at B + b*b_batch_stride (a stride of 0 broadcasts one matrix).
// Small matrices run one per thread; large ones one after another, each on all threads.
void sgemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t a_batch_stride, int64_t lda_row, int64_t lda_col,
                   const float* B, int64_t b_batch_stride, int64_t ldb_row, int64_t ldb_col,
                   float* C, const float* bias, Activation act);

// The instruction set sgemm dispatches to: "avx512", "avx2" or "generic". The environment variable
// VISLANG_GEMM_ISA=avx512|avx2|generic forces a lower one (tests use it to cover every path); a
// request the CPU cannot run falls back to the best supported one.
const char* sgemm_isa();

// Applies act to n contiguous floats in place with the same vectorized math as sgemm's epilogue
// (the activation kernels may reuse it). x may alias nothing else.
void activation_inplace_f32(float* x, int64_t n, Activation act);

}  // namespace vislang::cpu
