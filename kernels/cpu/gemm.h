// kernels/cpu/gemm.h — the matrix multiply every CPU matmul, linear and conv2d (im2col) uses: f32
// (sgemm) and bf16 inputs with f32 accumulation (bgemm).
//
// Where it sits: kernels/cpu/ implements Op::MATMUL (and the GEMM inside attention and conv2d) by
// calling sgemm / sgemm_batched here (bgemm for bf16 operands); the reference (kernels/ref/) is the
// plain triple loop they are tested against. Design (BLIS): A and B are packed into cache-sized
// panels (packing reads any strides, so a transposed view costs no copy), an AVX-512 register-tile
// micro-kernel does the FMAs (bgemm: vdpbf16ps dot products), OpenMP splits the output into blocks,
// and the bias + activation are fused into the last write of each tile. The instruction set is
// picked at run time (AVX-512 -> AVX2+FMA -> plain C++; bgemm: AVX512_BF16 -> AVX-512F emulation),
// so the library never executes an instruction the CPU lacks. Benchmark: `vislang bench ops`.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

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

// ---- prepacked B (a weight used many times) ------------------------------------------------------
// sgemm packs B into k-major panels on every call; for a linear layer at small M (ViT-B/32 at batch
// 1: M = 50 rows against a 768 × 3072 weight) that packing costs about as much as the FMAs. A
// PackedB holds those panels once, in exactly the layout the micro-kernel reads, for every
// (K block, NR-column panel): the panel of columns [j, j + nr) in the K block that starts at row pc
// (pc a multiple of kc) is kc' × nr floats (kc' = min(kc, K - pc)), k-major, zero past column N, at
// data() + pc·n_padded + j·kc'. The K blocks and panels are those sgemm uses for this K and N, so
// sgemm_prepacked gives results bit-identical to sgemm on the unpacked B (same tiles, same K-block
// summation order), whatever the thread count. The layout belongs to the micro-kernel active when
// it was packed (sgemm_isa(); fixed for the life of the process).
// bf16 panels (bgemm_pack_b, bf16 = true) are the same with a pair of bf16 per 32-bit word in place
// of a float: rows k = 2p (low half) and 2p + 1 (high half) of column j form word p of the column,
// the panel is ceil(kc'/2) × nr words at pairs() + (pc/2)·n_padded + j·ceil(kc'/2), and the half
// past an odd K is zero.
struct PackedB {
  struct Free { void operator()(void* p) const { std::free(p); } };
  int64_t K = 0, N = 0;
  int64_t kc = 0;        // K block: every block but the last has kc rows
  int64_t nr = 0;        // panel width in columns
  int64_t n_padded = 0;  // N rounded up to a multiple of nr
  int isa = -1;          // the micro-kernel the layout is for (internal id)
  bool bf16 = false;     // panels of bf16 pairs (bgemm) instead of floats (sgemm)
  std::unique_ptr<void, Free> panels;  // rows() · n_padded 32-bit words, 64-byte aligned
  const float* data() const { return static_cast<const float*>(panels.get()); }
  const uint32_t* pairs() const { return static_cast<const uint32_t*>(panels.get()); }
  int64_t rows() const { return bf16 ? (K + 1) / 2 : K; }  // 32-bit words per padded column
  size_t bytes() const { return size_t(rows() * n_padded) * 4; }
};

// Packs B (K, N), element (k, n) at B[k*ldb_row + n*ldb_col] (K, N > 0). Runs on all threads
// (one when called from inside a parallel region).
std::shared_ptr<const PackedB> sgemm_pack_b(int64_t K, int64_t N, const float* B, int64_t ldb_row,
                                            int64_t ldb_col);

// sgemm with B taken from its packed panels: C (M, B.N) = act(alpha · A (M, B.K) @ B + bias).
// Bit-identical to sgemm(M, B.N, B.K, alpha, A, .., <the unpacked B>, .., C, bias, act).
void sgemm_prepacked(int64_t M, float alpha, const float* A, int64_t lda_row, int64_t lda_col, const PackedB& B,
                     float* C, const float* bias, Activation act);

// ---- bf16 inputs, f32 accumulation (bgemm) --------------------------------------------------------
// C (M, N) = act(alpha · A @ B + bias) where every element of A and B is a bf16 value: given as bf16
// (bit patterns), or as f32 rounded to the nearest bf16 (ties to even, NaN stays NaN: torch's
// .bfloat16()) while packing. The products of two bf16 values are exact in f32; they are summed in
// f32 (two products per lane and instruction: vdpbf16ps), then alpha, bias and act apply in f32 with
// sgemm's epilogue math. The output is f32, or bf16 rounded once (nearest even) from that f32 value.
// So bgemm equals the f32 product of the bf16-rounded inputs up to the order of the f32 additions
// (and, with AVX512_BF16, its flush of subnormal inputs and partial sums to zero); the plain-loop
// definition is matmul_bf16_ref (kernels/ref/ref_bf16.h). Strides are in elements, any sign.
struct GemmOperand {  // element (r, c) at p[r*row_stride + c*col_stride], f32 or bf16 (uint16_t bits)
  const void* p = nullptr;
  bool bf16 = false;
  int64_t row_stride = 0, col_stride = 0;
};
struct GemmOutput {  // (M, N) contiguous (ldc = N): float, or bf16 bits when bf16
  void* p = nullptr;
  bool bf16 = false;
};
void bgemm(int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A, const GemmOperand& B,
           const GemmOutput& C, const float* bias, Activation act);

// bgemm for every b of a batch: A[b] at A.p + b·a_batch_stride elements (likewise B), C[b] at
// C.p + b·M·N elements. Threads are shared out as in sgemm_batched.
void bgemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, const GemmOperand& A,
                   int64_t a_batch_stride, const GemmOperand& B, int64_t b_batch_stride, const GemmOutput& C,
                   const float* bias, Activation act);

// B (K, N) packed once as bf16 pairs (PackedB::bf16); bgemm_prepacked with it gives bits identical
// to bgemm on the unpacked B.
std::shared_ptr<const PackedB> bgemm_pack_b(int64_t K, int64_t N, const GemmOperand& B);
void bgemm_prepacked(int64_t M, float alpha, const GemmOperand& A, const PackedB& B, const GemmOutput& C,
                     const float* bias, Activation act);

// Whether bgemm can run here: it needs the AVX-512 sgemm kernels (avx512f/vl/dq/bw). Without them
// (or with VISLANG_BF16_GEMM=off) the callers fall back to sgemm on the inputs converted to f32 — the
// same values, so the same results up to the order of the f32 additions.
bool bgemm_supported();
// The kernel bgemm runs: "avx512_bf16" (vdpbf16ps), "avx512f-emulated" (each pair of bf16 widened
// to f32, two FMAs: same products and additions as vdpbf16ps minus its subnormal flushing) or "none".
// Default: avx512_bf16 when the CPU has it; VISLANG_BF16_GEMM=emulated|off forces a lower one.
const char* bgemm_isa();
// Tests: switch the kernel for the rest of the process ("avx512_bf16", "avx512f-emulated" or "auto"
// for the default, VISLANG_BF16_GEMM included). Both use the same panel layout, so packed weights
// stay valid. Returns false, changing nothing, when this CPU cannot run the one asked for.
bool bgemm_set_isa(const std::string& name);

// The instruction set sgemm dispatches to: "avx512", "avx2" or "generic". The environment variable
// VISLANG_GEMM_ISA=avx512|avx2|generic forces a lower one (tests use it to cover every path); a
// request the CPU cannot run falls back to the best supported one.
const char* sgemm_isa();

// Applies act to n contiguous floats in place with the same vectorized math as sgemm's epilogue
// (the activation kernels may reuse it). x may alias nothing else.
void activation_inplace_f32(float* x, int64_t n, Activation act);

// y = softmax(x) (log: log_softmax) over n contiguous floats, with the exp of the activation
// epilogue (Cephes, ~1 ulp) and the sum in double. Returns false, doing nothing, when the row holds a
// NaN or its maximum is ±inf (the caller's scalar code has the rules for those) or when this CPU has
// no vector path (AVX-512 only: short rows like ViT's 50 need its masked tails). y may equal x.
bool softmax_row_f32(float* y, const float* x, int64_t n, bool log);

}  // namespace vislang::cpu
