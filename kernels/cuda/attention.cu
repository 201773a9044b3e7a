// kernels/cuda/attention.cu — ATTENTION on CUDA: one fused flash-style kernel, out = softmax(scale·q kᵀ
// + mask) v, without materializing the (Tq, Tk) score matrix.
//
// Grid: one block per (batch·head, tile of kBQ = 32 queries); 4 warps, each owning kRows = 8 query
// rows. The block walks the keys in tiles of kBK = 32 (one key per lane): K and V tiles are staged
// in shared memory as f32 (converted from any strided f32/f16/bf16 layout on load), each lane
// computes its key's score for the warp's 8 rows (float4 dot products; K rows are padded by 4
// floats so the lanes' loads hit distinct banks), and the warp updates its rows' online softmax:
//   m' = max(m, max_j s_j);  p_j = exp(s_j - m');  l = l·exp(m - m') + Σ p_j;  acc = acc·exp(m - m') + Σ p_j v_j
// with p_j broadcast by shuffle and each lane accumulating 1–4 of the Dv output columns. The final
// output is acc / l, or zeros when l == 0 (every key masked). Everything accumulates in f32.
// Masking per (query i, key j): key-padding mask (u8 (B, Tk), nonzero = ignore), causal
// (allowed iff j <= i + Tk - Tq; key tiles past the last allowed key of the query tile are skipped)
// and the additive mask (any strides, zero strides for broadcasts; -inf behaves like a masked key).
// Head dims: D and Dv up to 128 (template buckets 32, 64, 128; any size inside a bucket).
// Reference: kernels/ref attention (double-precision softmax(q kᵀ) v).
#include <cfloat>

#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace vislang::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kRows = 8;                 // query rows per warp
constexpr int kBQ = kWarps * kRows;      // queries per block
constexpr int kBK = 32;                  // keys per tile (one per lane)
constexpr int kAttnThreads = kWarps * 32;

struct AttnParams {
  const void* q;
  const void* k;
  const void* v;
  const void* mask;    // additive, (B, H, Tq, Tk) strided, or null
  const uint8_t* kpm;  // (B, Tk) contiguous, or null
  void* out;           // (B, H, Tq, Dv) contiguous
  int mask_dt;
  int causal;
  float scale;
  int64_t H, Tq, Tk, D, Dv, ntiles;
  int64_t qs[4], ks[4], vs[4], ms[4];
};

template <int DMAX>
constexpr size_t attn_smem_bytes() {
  return sizeof(float) * (size_t(kBQ) * DMAX + size_t(kBK) * (DMAX + 4) + size_t(kBK) * DMAX);
}

template <typename T, int DMAX>
__global__ void __launch_bounds__(kAttnThreads) attention_kernel(AttnParams p) {
  constexpr int KLD = DMAX + 4;  // padded K row (floats)
  constexpr int NC = DMAX / 32;  // output columns per lane
  extern __shared__ __align__(16) float attn_smem[];
  float* Qs = attn_smem;              // [kBQ][DMAX]
  float* Ks = Qs + kBQ * DMAX;        // [kBK][KLD]
  float* Vs = Ks + kBK * KLD;         // [kBK][DMAX]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t tile = blockIdx.x % p.ntiles, bh = blockIdx.x / p.ntiles;
  const int64_t b = bh / p.H, h = bh - b * p.H;
  const int64_t q0 = tile * kBQ;
  const int D = static_cast<int>(p.D), Dv = static_cast<int>(p.Dv), D4 = (D + 3) & ~3;
  const T* q = static_cast<const T*>(p.q) + b * p.qs[0] + h * p.qs[1];
  const T* k = static_cast<const T*>(p.k) + b * p.ks[0] + h * p.ks[1];
  const T* v = static_cast<const T*>(p.v) + b * p.vs[0] + h * p.vs[1];

  // Q tile, zero-padded to D4 columns and kBQ rows.
  for (int e = tid; e < kBQ * D4; e += kAttnThreads) {
    int r = e / D4, d = e - r * D4;
    int64_t i = q0 + r;
    Qs[r * DMAX + d] = (i < p.Tq && d < D) ? to_f32(q[i * p.qs[2] + d * p.qs[3]]) : 0.f;
  }

  float m[kRows], l[kRows], acc[kRows][NC];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[r][c] = 0.f;
  }

  // Keys this query tile can see at all.
  int64_t kend = p.Tk;
  if (p.causal) {
    const int64_t last_i = (q0 + kBQ < p.Tq ? q0 + kBQ : p.Tq) - 1;
    const int64_t last_j = last_i + p.Tk - p.Tq;  // keys j <= last_j are visible to some row
    if (last_j + 1 < kend) kend = last_j + 1;
  }

  for (int64_t j0 = 0; j0 < kend; j0 += kBK) {
    __syncthreads();  // the previous tile (and the Q load) is done
    for (int e = tid; e < kBK * D4; e += kAttnThreads) {
      int jj = e / D4, d = e - jj * D4;
      int64_t j = j0 + jj;
      Ks[jj * KLD + d] = (j < p.Tk && d < D) ? to_f32(k[j * p.ks[2] + d * p.ks[3]]) : 0.f;
    }
    for (int e = tid; e < kBK * Dv; e += kAttnThreads) {
      int jj = e / Dv, d = e - jj * Dv;
      int64_t j = j0 + jj;
      Vs[jj * DMAX + d] = j < p.Tk ? to_f32(v[j * p.vs[2] + d * p.vs[3]]) : 0.f;
    }
    __syncthreads();

    // Scores of key j = j0 + lane against the warp's rows.
    float s[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) s[r] = 0.f;
    const float4* k4 = reinterpret_cast<const float4*>(Ks + lane * KLD);
    const float4* q4 = reinterpret_cast<const float4*>(Qs + warp * kRows * DMAX);
    for (int d4 = 0; d4 < D4 / 4; ++d4) {
      float4 kv = k4[d4];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        float4 qv = q4[r * (DMAX / 4) + d4];
        s[r] = fmaf(qv.x, kv.x, s[r]);
        s[r] = fmaf(qv.y, kv.y, s[r]);
        s[r] = fmaf(qv.z, kv.z, s[r]);
        s[r] = fmaf(qv.w, kv.w, s[r]);
      }
    }

    const int64_t j = j0 + lane;
    const bool key_ok = j < p.Tk && !(p.kpm && p.kpm[b * p.Tk + j]);
    float pr[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int64_t i = q0 + warp * kRows + r;
      const bool ok = key_ok && i < p.Tq && (!p.causal || j <= i + p.Tk - p.Tq);
      float sv = -INFINITY;
      if (ok) {
        sv = s[r] * p.scale;
        if (p.mask) sv += load_any_f32(p.mask, p.mask_dt, b * p.ms[0] + h * p.ms[1] + i * p.ms[2] + j * p.ms[3]);
      }
      const float mnew = fmaxf(m[r], warp_max(sv));
      pr[r] = sv == -INFINITY ? 0.f : expf(sv - mnew);
      const float corr = m[r] == -INFINITY ? 0.f : expf(m[r] - mnew);  // acc, l are 0 while m = -inf
      l[r] = l[r] * corr + warp_sum(pr[r]);
      m[r] = mnew;
#pragma unroll
      for (int c = 0; c < NC; ++c) acc[r][c] *= corr;
    }

    // acc += p · V over the tile's keys.
    const int nk = p.Tk - j0 < kBK ? static_cast<int>(p.Tk - j0) : kBK;
    for (int jj = 0; jj < nk; ++jj) {
      float vv[NC];
#pragma unroll
      for (int c = 0; c < NC; ++c) vv[c] = Vs[jj * DMAX + lane + 32 * c];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const float pj = __shfl_sync(0xffffffffu, pr[r], jj);
#pragma unroll
        for (int c = 0; c < NC; ++c) acc[r][c] = fmaf(pj, vv[c], acc[r][c]);
      }
    }
  }

  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t i = q0 + warp * kRows + r;
    if (i >= p.Tq) continue;
    const float inv = l[r] > 0.f ? 1.0f / l[r] : 0.f;
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d = lane + 32 * c;
      if (d < Dv) out[(bh * p.Tq + i) * p.Dv + d] = from_f32<T>(l[r] > 0.f ? acc[r][c] * inv : 0.f);
    }
  }
}

template <typename T, int DMAX>
void launch_attention(const AttnParams& p, int64_t blocks) {
  constexpr size_t smem = attn_smem_bytes<DMAX>();
  if (smem > 48 * 1024)
    VL_CUDA_CHECK(cudaFuncSetAttribute(attention_kernel<T, DMAX>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  attention_kernel<T, DMAX><<<static_cast<unsigned>(blocks), kAttnThreads, smem>>>(p);
  VL_CUDA_LAUNCH_CHECK("attention");
}

void strides4(const Tensor& t, int64_t (&s)[4]) {
  for (int d = 0; d < 4; ++d) s[d] = t.stride(d);
}

}  // namespace

void attention(OpCall& c) {
  const Tensor& out = c.out[0];  // (B, H, Tq, Dv)
  const DType dt = out.dtype();
  auto as_out = [&](const Tensor& t) { return t.dtype() == dt ? t : t.to(dt); };
  Tensor q = as_out(c.in[0]), k = as_out(c.in[1]), v = as_out(c.in[2]);
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3), Tk = k.size(2), Dv = v.size(3);
  if (out.numel() == 0) return;
  Tensor mask = c.input(3);
  if (mask.defined() && mask.shape() != Shape{B, H, Tq, Tk}) mask = mask.expand({B, H, Tq, Tk});
  Tensor kpm = c.input(4);
  if (kpm.defined()) kpm = (kpm.dtype() == DType::U8 ? kpm : kpm.to(DType::U8)).contiguous();

  AttnParams p{};
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.mask = mask.defined() ? mask.data_ptr() : nullptr;
  p.mask_dt = mask.defined() ? int(mask.dtype()) : 0;
  p.kpm = kpm.defined() ? kpm.data<uint8_t>() : nullptr;
  p.out = out.data_ptr();
  p.causal = c.i[0] != 0;
  p.scale = c.f[0];
  p.H = H;
  p.Tq = Tq;
  p.Tk = Tk;
  p.D = D;
  p.Dv = Dv;
  p.ntiles = (Tq + kBQ - 1) / kBQ;
  strides4(q, p.qs);
  strides4(k, p.ks);
  strides4(v, p.vs);
  if (mask.defined()) strides4(mask, p.ms);
  const int64_t blocks = B * H * p.ntiles;
  VL_CHECK(blocks < (int64_t(1) << 31), "cuda attention: too many blocks (B·H·tiles = ", blocks, ")");
  const int64_t dmax = std::max((D + 3) / 4 * 4, Dv);
  VL_CHECK(dmax <= kAttentionMaxHeadDim, "cuda attention: head dim ", std::max(D, Dv), " > ", kAttentionMaxHeadDim);
  dispatch_float(dt, [&](auto tag) {
    using T = decltype(tag);
    if (dmax <= 32) launch_attention<T, 32>(p, blocks);
    else if (dmax <= 64) launch_attention<T, 64>(p, blocks);
    else launch_attention<T, 128>(p, blocks);
  });
}

}  // namespace vislang::cuda
