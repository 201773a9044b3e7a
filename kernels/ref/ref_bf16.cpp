// kernels/ref/ref_bf16.cpp — the bf16 matrix product of record (see ref_bf16.h): plain loops, double.
#include "kernels/ref/ref_bf16.h"

#include <cmath>

#include "core/dtype.h"

namespace vislang {
namespace {

// x rounded to the nearest bf16 (ties to even), as a double: the value a bf16 product reads.
double bf16_value(float x) { return static_cast<double>(bf16_to_f32(f32_to_bf16(x))); }

// Calls fn(m, n, products) for every output element with its K products bf16(A[m, k]) · bf16(B[k, n]).
template <class Fn>
void for_each_dot(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_cs, const float* B,
                  int64_t b_rs, int64_t b_cs, Fn fn) {
  std::vector<double> prod(static_cast<size_t>(K));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t k = 0; k < K; ++k) prod[k] = bf16_value(A[m * a_rs + k * a_cs]) * bf16_value(B[k * b_rs + n * b_cs]);
      fn(m, n, prod);
    }
}

}  // namespace

std::vector<double> matmul_bf16_ref(int64_t M, int64_t N, int64_t K, double alpha, const float* A, int64_t a_rs,
                                    int64_t a_cs, const float* B, int64_t b_rs, int64_t b_cs, const float* bias,
                                    Activation act) {
  std::vector<double> C(static_cast<size_t>(M * N));
  for_each_dot(M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, [&](int64_t m, int64_t n, const std::vector<double>& prod) {
    double acc = 0;
    for (double p : prod) acc += p;
    double y = alpha * acc;
    if (bias) y += bias[n];
    C[m * N + n] = apply_activation_ref(act, y);
  });
  return C;
}

std::vector<double> matmul_bf16_abs_ref(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_cs,
                                        const float* B, int64_t b_rs, int64_t b_cs) {
  std::vector<double> S(static_cast<size_t>(M * N));
  for_each_dot(M, N, K, A, a_rs, a_cs, B, b_rs, b_cs, [&](int64_t m, int64_t n, const std::vector<double>& prod) {
    double s = 0;
    for (double p : prod) s += std::fabs(p);
    S[m * N + n] = s;
  });
  return S;
}

}  // namespace vislang
