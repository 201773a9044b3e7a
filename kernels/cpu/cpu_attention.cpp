// kernels/cpu/cpu_attention.cpp — Op::ATTENTION on the CPU: blocked attention with a streaming
// ("online", flash-attention style) softmax, so the (Tq, Tk) score matrix is never materialized.
//
// One parallel task per (batch, head, block of up to kBlockQ queries). The task transposes its
// queries once into Qᵀ (D, kBlockQ) and walks the keys in blocks of kBlockK:
//   Sᵀ (keys, queries) = K (scale·Q)ᵀ   (K rows read in place when f32, else converted)
//   additive mask, causal rule, key padding (a padded key is a whole row of Sᵀ)
//   per query: running max m and denominator l updated, P = e^(S - m), O rescaled by e^(m_old - m)
//   O (queries, Dv) += P V
// and finally writes O / l, or zeros for a query whose keys are all masked (l = 0). Key blocks past
// the causal limit of the block's last query are skipped. Laying the scores out as Sᵀ makes every
// step vectorize along the queries of the block and needs no per-block transpose of K.
// Both products run on tile_kernel: R rows × NC (<= 96) columns accumulated in registers (GCC
// vector extensions) while it streams the right-hand side along rows. A head dim of 88 (EVA ViT-g)
// or 96 is one 96-wide tile (24 accumulators), not 64 + 32. One thread, ViT-g attention (16 heads,
// 257 tokens, D 88), CPU time on a loaded machine: 41 GFLOP/s before these two changes, 62-65 after.
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/cpu_math.h"

namespace vislang::cpu_kernels {
namespace {

constexpr int64_t kBlockQ = 64, kBlockK = 64;

// C (R, NC) += A (R, K) @ B (K, NC): A(r, k) at A[r*a_rs + k*a_cs], B(k, j) at B[k*ldb + j], C row-major
// with row stride ldc. The R × NC accumulator stays in registers for the whole K loop; per k, B's
// row is loaded once into NC/16 vectors and each A value is broadcast once. (GCC vector extensions
// and an empty asm that pins each B vector in a register: otherwise GCC folds the B loads into every
// FMA — R loads per vector and k, and Zen 4 loads one 512-bit vector per cycle.) Not inlined, and its
// K loop not unrolled: inside the big attention loop GCC would otherwise spill the accumulators.
typedef float V16 __attribute__((vector_size(64), aligned(4), may_alias));
template <int R, int NC>
__attribute__((noinline)) void tile_kernel(int64_t K, const float* A, int64_t a_rs, int64_t a_cs, const float* B,
                                           int64_t ldb, float* C, int64_t ldc) {
  constexpr int NV = NC / 16;
  static_assert(NC % 16 == 0, "tile widths are whole vectors");
  V16 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = *reinterpret_cast<const V16*>(C + r * ldc + 16 * v);
#pragma GCC unroll 1
  for (int64_t k = 0; k < K; ++k) {
    V16 b[NV];
    for (int v = 0; v < NV; ++v) {
      b[v] = *reinterpret_cast<const V16*>(B + k * ldb + 16 * v);
#if defined(__AVX512F__)
      asm("" : "+v"(b[v]));  // keeps it in a register (see above)
#endif
    }
    for (int r = 0; r < R; ++r) {
      const float a = A[r * a_rs + k * a_cs];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) *reinterpret_cast<V16*>(C + r * ldc + 16 * v) = acc[r][v];
}

template <int R>
void tile_rows(int64_t width, int64_t K, const float* A, int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb,
               float* C, int64_t ldc) {
  switch (width) {
    case 96: return tile_kernel<R, 96>(K, A, a_rs, a_cs, B, ldb, C, ldc);
    case 80: return tile_kernel<R, 80>(K, A, a_rs, a_cs, B, ldb, C, ldc);
    case 64: return tile_kernel<R, 64>(K, A, a_rs, a_cs, B, ldb, C, ldc);
    case 48: return tile_kernel<R, 48>(K, A, a_rs, a_cs, B, ldb, C, ldc);
    case 32: return tile_kernel<R, 32>(K, A, a_rs, a_cs, B, ldb, C, ldc);
    default: return tile_kernel<R, 16>(K, A, a_rs, a_cs, B, ldb, C, ldc);
  }
}

// C (M, N) += A (M, K) @ B (K, N) for the small blocks here; N a multiple of 16.
void small_gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_rs, int64_t a_cs, const float* B,
                int64_t ldb, float* C, int64_t ldc) {
  for (int64_t c0 = 0; c0 < N;) {
    const int64_t rest = N - c0, w = rest > 64 && rest <= 96 ? rest : std::min<int64_t>(64, rest);
    int64_t r = 0;
    for (; r + 4 <= M; r += 4) tile_rows<4>(w, K, A + r * a_rs, a_rs, a_cs, B + c0, ldb, C + r * ldc + c0, ldc);
    for (; r < M; ++r) tile_rows<1>(w, K, A + r * a_rs, a_rs, a_cs, B + c0, ldb, C + r * ldc + c0, ldc);
    c0 += w;
  }
}

// Rows [r0, r0 + n) of t[b, h] (a (T, cols) matrix of the 4-d tensor t) as f32 rows `ld` floats
// apart: in place when t is f32 with unit column stride and cols == pad, else converted into buf
// with ld = pad (columns beyond cols zeroed).
const float* rows_f32(const Tensor& t, int64_t b, int64_t h, int64_t r0, int64_t n, float* buf, int64_t pad,
                      int64_t& ld) {
  const int64_t cols = t.size(3);
  const int64_t base = b * t.stride(0) + h * t.stride(1) + r0 * t.stride(2);
  if (t.dtype() == DType::F32 && t.stride(3) == 1 && cols == pad) {
    ld = t.stride(2);
    return t.data<const float>() + base;
  }
  const char* p = byte_ptr(t);
  const int64_t es = esize(t);
  for (int64_t r = 0; r < n; ++r) {
    load_f32(buf + r * pad, p + (base + r * t.stride(2)) * es, t.dtype(), cols, t.stride(3));
    std::fill(buf + r * pad + cols, buf + (r + 1) * pad, 0.0f);
  }
  ld = pad;
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
  const int64_t Dvp = (Dv + 15) / 16 * 16;  // output tile width, padded to whole vectors
  const int64_t q_blocks = (Tq + kBlockQ - 1) / kBlockQ;
  const int64_t tasks = B * H * q_blocks;
  const uint8_t* kpm = key_padding.defined() ? key_padding.data<const uint8_t>() : nullptr;
  const char* pmask = mask.defined() ? byte_ptr(mask) : nullptr;
  const int64_t emask = mask.defined() ? esize(mask) : 0;
  const char* pq = byte_ptr(q);
  const int64_t eq = esize(q);
  char* po = byte_ptr(out);
  const int64_t eo = esize(out);
  const double work = static_cast<double>(B * H) * Tq * Tk * (D + Dv);

#pragma omp parallel for schedule(dynamic, 1) if (tasks > 1 && work >= 1e5)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t bh = task / q_blocks, b = bh / H, h = bh % H;
    const int64_t i0 = (task % q_blocks) * kBlockQ, bq = std::min(kBlockQ, Tq - i0);
    const int64_t bqp = (bq + 15) / 16 * 16;  // query columns of Qᵀ / Sᵀ, padded to whole vectors
    float* qt = scratch(0, static_cast<size_t>(D * kBlockQ + D));  // Qᵀ (D, kBlockQ), + one q row
    float* kbuf = scratch(1, static_cast<size_t>(kBlockK * D));
    float* vbuf = scratch(2, static_cast<size_t>(kBlockK * Dvp));
    float* acc = scratch(3, static_cast<size_t>(kBlockQ * Dvp));  // O (bq, Dvp), unnormalized
    float* st = scratch(4, static_cast<size_t>(kBlockK * kBlockQ));  // Sᵀ, then Pᵀ (bk, kBlockQ)
    float* mrow = scratch(5, static_cast<size_t>(kBlockQ));          // mask[i0 : i0 + bq, j]
    float m[kBlockQ], l[kBlockQ], m_new[kBlockQ], sub[kBlockQ], corr[kBlockQ], colsum[kBlockQ];
    std::fill(m, m + kBlockQ, -kInf);
    std::fill(l, l + kBlockQ, 0.0f);
    std::fill(acc, acc + bq * Dvp, 0.0f);

    // Qᵀ scaled: column r = scale · query i0 + r (zero beyond bq). Scaling q instead of the scores
    // saves a pass over S; for the usual 1/sqrt(64) it is exact.
    float* qrow = qt + D * kBlockQ;
    if (bq < bqp) std::fill(qt, qt + D * kBlockQ, 0.0f);
    for (int64_t r = 0; r < bq; ++r) {
      const int64_t off = b * q.stride(0) + h * q.stride(1) + (i0 + r) * q.stride(2);
      const float* src = qrow;
      if (q.dtype() == DType::F32 && q.stride(3) == 1) src = q.data<const float>() + off;
      else load_f32(qrow, pq + off * eq, q.dtype(), D, q.stride(3));
      for (int64_t d = 0; d < D; ++d) qt[d * kBlockQ + r] = src[d] * scale;
    }

    // Keys beyond the causal limit of the block's last query are never seen by any of its rows.
    const int64_t shift = Tk - Tq;  // query i sees keys j <= i + shift
    const int64_t key_end = causal ? std::max<int64_t>(0, std::min(Tk, i0 + bq + shift)) : Tk;
    for (int64_t j0 = 0; j0 < key_end; j0 += kBlockK) {
      const int64_t bk = std::min(kBlockK, key_end - j0);
      int64_t ldk, ldv;
      const float* kr = rows_f32(k, b, h, j0, bk, kbuf, D, ldk);
      const float* vr = rows_f32(v, b, h, j0, bk, vbuf, Dvp, ldv);

      // Sᵀ (bk, bqp) = K (bk, D) Qᵀ (D, bqp)
      for (int64_t jj = 0; jj < bk; ++jj) std::fill(st + jj * kBlockQ, st + jj * kBlockQ + bqp, 0.0f);
      small_gemm(bk, bqp, D, kr, ldk, 1, qt, kBlockQ, st, kBlockQ);

      // Masks, one key (a row of Sᵀ) at a time.
      for (int64_t jj = 0; jj < (pmask || kpm || causal ? bk : 0); ++jj) {
        const int64_t j = j0 + jj;
        float* s = st + jj * kBlockQ;
        if (kpm && kpm[b * Tk + j]) {  // padded key: masked for every query
          std::fill(s, s + bq, -kInf);
          continue;
        }
        if (pmask) {
          load_f32(mrow, pmask + (b * mask.stride(0) + h * mask.stride(1) + i0 * mask.stride(2) + j * mask.stride(3)) * emask,
                   mask.dtype(), bq, mask.stride(2));
#pragma omp simd
          for (int64_t r = 0; r < bq; ++r) s[r] += mrow[r];
        }
        if (causal)  // query i0 + r sees key j only when j <= i0 + r + shift
          std::fill(s, s + std::min(bq, std::max<int64_t>(0, j - shift - i0)), -kInf);
      }

      // Online softmax, vectorized across the block's queries: m_new = running max including this
      // block; P = e^(S - m_new); l and O are rescaled by e^(m - m_new).
      for (int64_t r = 0; r < bq; ++r) m_new[r] = m[r];
      for (int64_t jj = 0; jj < bk; ++jj) {
        const float* s = st + jj * kBlockQ;
#pragma omp simd
        for (int64_t r = 0; r < bq; ++r) m_new[r] = s[r] > m_new[r] ? s[r] : m_new[r];
      }
#pragma omp simd
      for (int64_t r = 0; r < bq; ++r) {
        // A query with every key so far masked has m_new = -inf: its scores are all -inf, P = 0.
        const bool none = m_new[r] == -kInf;
        corr[r] = none ? 1.0f : exp_f(m[r] - m_new[r]);  // 0 when m = -inf
        sub[r] = none ? 0.0f : m_new[r];
        colsum[r] = 0.0f;
      }
      for (int64_t jj = 0; jj < bk; ++jj) {
        float* s = st + jj * kBlockQ;
#pragma omp simd
        for (int64_t r = 0; r < bq; ++r) {
          s[r] = exp_f(s[r] - sub[r]);  // masked (-inf) -> 0
          colsum[r] += s[r];
        }
      }
      for (int64_t r = 0; r < bq; ++r) {
        l[r] = l[r] * corr[r] + colsum[r];
        m[r] = m_new[r];
        if (corr[r] != 1.0f) {
          float* o = acc + r * Dvp;
          const float cr = corr[r];
#pragma omp simd
          for (int64_t e = 0; e < Dvp; ++e) o[e] *= cr;
        }
      }
      // O (bq, Dvp) += P (bq, bk) V (bk, Dvp), with P(r, jj) = Pᵀ[jj][r]
      small_gemm(bq, Dvp, bk, st, 1, kBlockQ, vr, ldv, acc, Dvp);
    }

    for (int64_t r = 0; r < bq; ++r) {
      float* o = acc + r * Dvp;
      const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;  // all keys masked -> zeros
      const int64_t row = (bh * Tq + i0 + r) * Dv;
      float* y = out.dtype() == DType::F32 ? out.data<float>() + row : o;
#pragma omp simd
      for (int64_t e = 0; e < Dv; ++e) y[e] = o[e] * inv;
      if (y == o) store_f32(po + row * eo, out.dtype(), o, Dv);
    }
  }
}

}  // namespace vislang::cpu_kernels
