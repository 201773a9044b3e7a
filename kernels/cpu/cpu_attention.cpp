// kernels/cpu/cpu_attention.cpp — Op::ATTENTION on the CPU: blocked attention with a streaming
// ("online", flash-attention style) softmax, so the (Tq, Tk) score matrix is never materialized.
//
// One parallel task per (batch, head, block of kBlockQ queries). The task walks the keys in blocks of
// kBlockK: S = Q Kᵀ for the block (Eigen GEMM on f32 tiles), then per query row: scale, additive
// mask, causal rule and key padding; the running max m and denominator l are updated, the output
// accumulator rescaled by e^(m_old - m_new), and O += P V (Eigen). At the end O / l is written; a row
// whose keys are all masked (l = 0) writes zeros. Key blocks past the causal limit of the whole query
// block are skipped. f32 q / k / v with unit last stride are read in place (strided rows), anything
// else (f16, bf16, other strides) is converted into per-thread f32 tiles.
// GCC 12 reports its own AVX-512 intrinsic headers as using uninitialized values (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop
#include <cmath>

#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/cpu_math.h"

namespace vislang::cpu_kernels {
namespace {

constexpr int64_t kBlockQ = 64, kBlockK = 64;

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstTile = Eigen::Map<const RowMajor, 0, Eigen::OuterStride<>>;
using Tile = Eigen::Map<RowMajor, 0, Eigen::OuterStride<>>;

// Rows [r0, r0 + n) of t[b, h] (a (T, cols) matrix of the 4-d tensor t) as an f32 tile: in place
// when possible (sets ld to the row stride), else converted into buf (ld = cols).
const float* rows_f32(const Tensor& t, int64_t b, int64_t h, int64_t r0, int64_t n, float* buf, int64_t& ld) {
  const int64_t cols = t.size(3);
  const int64_t base = b * t.stride(0) + h * t.stride(1) + r0 * t.stride(2);
  if (t.dtype() == DType::F32 && t.stride(3) == 1 && t.stride(2) >= cols) {
    ld = t.stride(2);
    return t.data<const float>() + base;
  }
  const char* p = byte_ptr(t);
  const int64_t es = esize(t);
  for (int64_t r = 0; r < n; ++r) load_f32(buf + r * cols, p + (base + r * t.stride(2)) * es, t.dtype(), cols, t.stride(3));
  ld = cols;
  return buf;
}

}  // namespace

// out (B, H, Tq, Dv) = softmax(f[0] · q (B, H, Tq, D) kᵀ + mask) v (B, H, Tk, Dv); in3 additive mask
// (B, H, Tq, Tk) strided or undefined; in4 key padding u8 (B, Tk) or undefined; i[0] = causal
void attention_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& q = c.in[0];
  const Tensor& k = c.in[1];
  const Tensor& v = c.in[2];
  const Tensor& mask = c.input(3);
  const Tensor& key_padding = c.input(4);
  const bool causal = c.i[0] != 0;
  const float scale = c.f[0];
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3);
  const int64_t Tk = k.size(2), Dv = v.size(3);
  if (out.numel() == 0) return;
  const int64_t q_blocks = (Tq + kBlockQ - 1) / kBlockQ;
  const int64_t tasks = B * H * q_blocks;
  const uint8_t* kpm = key_padding.defined() ? key_padding.data<const uint8_t>() : nullptr;
  const char* pmask = mask.defined() ? byte_ptr(mask) : nullptr;
  const int64_t emask = mask.defined() ? esize(mask) : 0;
  char* po = byte_ptr(out);
  const int64_t eo = esize(out);
  const double work = static_cast<double>(B * H) * Tq * Tk * (D + Dv);

#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1 && work >= 1e5)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t bh = task / q_blocks, b = bh / H, h = bh % H;
    const int64_t i0 = (task % q_blocks) * kBlockQ, bq = std::min(kBlockQ, Tq - i0);
    float* qbuf = scratch(0, static_cast<size_t>(kBlockQ * D));
    float* kbuf = scratch(1, static_cast<size_t>(kBlockK * D));
    float* vbuf = scratch(2, static_cast<size_t>(kBlockK * Dv));
    float* acc = scratch(3, static_cast<size_t>(kBlockQ * Dv));  // O, unnormalized
    float* sbuf = scratch(4, static_cast<size_t>(kBlockQ * kBlockK));
    float* mrow = scratch(5, static_cast<size_t>(kBlockK));  // one row of the additive mask
    float m[kBlockQ], l[kBlockQ];
    std::fill(m, m + bq, -kInf);
    std::fill(l, l + bq, 0.0f);
    std::fill(acc, acc + bq * Dv, 0.0f);
    int64_t ldq;
    const float* qt = rows_f32(q, b, h, i0, bq, qbuf, ldq);
    const ConstTile Q(qt, bq, D, Eigen::OuterStride<>(ldq));
    Tile O(acc, bq, Dv, Eigen::OuterStride<>(Dv));

    // Keys beyond the causal limit of the block's last query are never seen by any of its rows.
    const int64_t shift = Tk - Tq;  // query i sees keys j <= i + shift
    const int64_t key_end = causal ? std::max<int64_t>(0, std::min(Tk, i0 + bq + shift)) : Tk;
    for (int64_t j0 = 0; j0 < key_end; j0 += kBlockK) {
      const int64_t bk = std::min(kBlockK, key_end - j0);
      int64_t ldk, ldv;
      const float* kt = rows_f32(k, b, h, j0, bk, kbuf, ldk);
      const float* vt = rows_f32(v, b, h, j0, bk, vbuf, ldv);
      Tile S(sbuf, bq, bk, Eigen::OuterStride<>(kBlockK));
      S.noalias() = Q * ConstTile(kt, bk, D, Eigen::OuterStride<>(ldk)).transpose();

      for (int64_t r = 0; r < bq; ++r) {
        const int64_t i = i0 + r;
        float* s = sbuf + r * kBlockK;
        if (pmask) {
          load_f32(mrow, pmask + (b * mask.stride(0) + h * mask.stride(1) + i * mask.stride(2) + j0 * mask.stride(3)) * emask,
                   mask.dtype(), bk, mask.stride(3));
#pragma omp simd
          for (int64_t jj = 0; jj < bk; ++jj) s[jj] = s[jj] * scale + mrow[jj];
        } else {
#pragma omp simd
          for (int64_t jj = 0; jj < bk; ++jj) s[jj] *= scale;
        }
        if (causal)  // keys j > i + shift are masked
          for (int64_t jj = std::max<int64_t>(0, i + shift + 1 - j0); jj < bk; ++jj) s[jj] = -kInf;
        if (kpm) {
          const uint8_t* pad = kpm + b * Tk + j0;
#pragma omp simd
          for (int64_t jj = 0; jj < bk; ++jj) s[jj] = pad[jj] ? -kInf : s[jj];
        }
        float block_max = -kInf;
#pragma omp simd reduction(max : block_max)
        for (int64_t jj = 0; jj < bk; ++jj) block_max = s[jj] > block_max ? s[jj] : block_max;
        const float m_new = std::max(m[r], block_max);
        if (m_new == -kInf) {  // every key so far masked: this block adds nothing to the row
          std::fill(s, s + bk, 0.0f);
          continue;
        }
        const float correction = exp_f(m[r] - m_new);  // 0 when m[r] = -inf
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t jj = 0; jj < bk; ++jj) {
          s[jj] = exp_f(s[jj] - m_new);  // masked (-inf) -> 0
          sum += s[jj];
        }
        l[r] = l[r] * correction + sum;
        m[r] = m_new;
        if (correction != 1.0f) {
          float* o = acc + r * Dv;
#pragma omp simd
          for (int64_t e = 0; e < Dv; ++e) o[e] *= correction;
        }
      }
      O.noalias() += Tile(sbuf, bq, bk, Eigen::OuterStride<>(kBlockK)) * ConstTile(vt, bk, Dv, Eigen::OuterStride<>(ldv));
    }

    for (int64_t r = 0; r < bq; ++r) {
      float* o = acc + r * Dv;
      const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;  // all keys masked -> zeros
#pragma omp simd
      for (int64_t e = 0; e < Dv; ++e) o[e] *= inv;
      store_f32(po + ((bh * Tq) + i0 + r) * Dv * eo, out.dtype(), o, Dv);
    }
  }
}

}  // namespace vislang::cpu_kernels
