// kernels/ref/ref_bf16.h — the plain-loop definition of a bf16 matrix product (bgemm's semantics).
//
// Where it sits: kernels/cpu/gemm.h's bgemm (the AVX512_BF16 micro-kernel and its AVX-512F emulation)
// and the CPU MATMUL of bf16 tensors are tested against this (tests/test_gemm_bf16.cpp). It states
// what a "bf16 matmul" means here, the way PyTorch computes a bf16 linear on the CPU:
//   1. every input element is a bf16 value: f32 inputs are rounded to the nearest bf16, ties to even
//      (NaN stays NaN: torch's .bfloat16(), core/dtype.h f32_to_bf16);
//   2. the products of those values are summed (here in double, exactly enough to be the value of
//      record; an optimized kernel sums them in f32, in its own order);
//   3. alpha, the bias and the activation apply to that sum (apply_activation_ref);
//   4. the result is returned in double; a bf16 output is that value rounded once to bf16.
// Deliberately left out: speed, strides beyond row/column strides, and batches.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/backend.h"

namespace vislang {

// C (M, N), row-major, = act(alpha · bf16(A) (M, K) @ bf16(B) (K, N) + bias (N)) in double.
//   A element (m, k) at A[m*a_rs + k*a_cs], f32; B element (k, n) at B[k*b_rs + n*b_cs], f32;
//   bias (N) or nullptr.
std::vector<double> matmul_bf16_ref(int64_t M, int64_t N, int64_t K, double alpha, const float* A, int64_t a_rs,
                                    int64_t a_cs, const float* B, int64_t b_rs, int64_t b_cs, const float* bias,
                                    Activation act);

// Σ_k |bf16(A[m, k]) · bf16(B[k, n])| for every (m, n), row-major (M, N): the scale of the rounding
// error an f32 summation of that row and column can make (tests bound |optimized − reference| by a
// multiple of it).
std::vector<double> matmul_bf16_abs_ref(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_cs,
                                        const float* B, int64_t b_rs, int64_t b_cs);

}  // namespace vislang
