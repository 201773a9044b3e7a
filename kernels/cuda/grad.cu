// kernels/cuda/grad.cu — the backward ops on CUDA: UNARY_BACKWARD, SOFTMAX_BACKWARD,
// LAYER_NORM_BACKWARD, CONV2D_BACKWARD, SCATTER_ADD (contracts in kernels/backend.h, front-ends in
// kernels/grad_ops.cpp, definitions of record in kernels/ref/ref_grad.cpp).
//
// Every float kernel computes in f32 and rounds once on store (cuda_common.cuh).
//  * unary_backward: one grid-stride kernel over (out, x, grad) through a StridedIter, so views and
//    broadcasts need no copies; the derivative formulas are those of ref_grad.cpp in f32.
//  * softmax_backward: dim last -> one block per row, block sums; otherwise one thread per column
//    (o, j), which walks the dim itself (neighbouring threads read neighbouring addresses).
//  * layer_norm_backward: one block per row for dx (statistics recomputed, two passes like the
//    forward); dweight / dbias as per-chunk column sums (32 columns × 8 row-threads per block) added
//    in a fixed order by a last kernel, so the result is deterministic.
//  * conv2d_backward: per chunk of images, G (O, images·positions) = grad regrouped; dw (O, C·kh·kw)
//    += G @ colsᵀ with cols from im2col (cuBLAS, fp32 compute, accumulated in an f32 buffer); dx via
//    dcols (C·kh·kw, K) = Wᵀ @ G and a col2im in which each thread gathers the taps of one input
//    element (no atomics).
//  * scatter_add: one thread per source element, atomicAdd into f32 (an f32 scratch for f16 / bf16,
//    cast once at the end); the order of the additions, hence the last bits, may vary run to run.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace vislang::cuda {

namespace {

int64_t wrap_dim(int64_t d, int64_t n) { return d < 0 ? d + n : d; }
unsigned grid_rows(int64_t rows) {
  VL_CHECK(rows < (int64_t(1) << 31), "cuda: too many rows (", rows, ")");
  return static_cast<unsigned>(rows < 1 ? 1 : rows);
}

// ---- unary_backward -----------------------------------------------------------------------------------
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
constexpr float kGeluTanhK = 0.79788456080286535588f;

// g · f'(x); kind < 0: clamp to [lo, hi] (the gradient passes where lo <= x <= hi).
__device__ __forceinline__ float unary_grad(int kind, float lo, float hi, float x, float g) {
  if (kind < 0) return x >= lo && x <= hi ? g : 0.f;
  switch (kind) {
    case int(UnaryKind::NEG): return -g;
    case int(UnaryKind::EXP): return g * expf(x);
    case int(UnaryKind::LOG): return g / x;
    case int(UnaryKind::SQRT): return 0.5f * g / sqrtf(x);
    case int(UnaryKind::RSQRT): return -0.5f * g / (x * sqrtf(x));
    case int(UnaryKind::TANH): {
      const float t = tanhf(x);
      return g * (1.f - t * t);
    }
    case int(UnaryKind::SIGMOID): {
      const float s = 1.f / (1.f + expf(-x));
      return g * s * (1.f - s);
    }
    case int(UnaryKind::RELU): return x > 0.f ? g : 0.f;
    case int(UnaryKind::GELU):
      return g * (0.5f * erfcf(-x * 0.70710678118654752440f) + x * kInvSqrt2Pi * expf(-0.5f * x * x));
    case int(UnaryKind::GELU_TANH): {
      const float t = tanhf(kGeluTanhK * (x + 0.044715f * x * x * x));
      return g * (0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * kGeluTanhK * (1.f + 0.134145f * x * x));
    }
    case int(UnaryKind::QUICK_GELU): {
      const float s = 1.f / (1.f + expf(-1.702f * x));
      return g * (s + 1.702f * x * s * (1.f - s));
    }
    case int(UnaryKind::ABS): return g * (x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f));
    case int(UnaryKind::SQUARE): return 2.f * x * g;
    case int(UnaryKind::RECIPROCAL): return -g / (x * x);
    default: return 0.f;
  }
}

template <typename T>
__global__ void unary_backward_kernel(T* out, const T* x, const T* g, int64_t n, StridedIter<3> it, int kind,
                                      float lo, float hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[3];
    iter_offsets(it, i, off);
    out[off[0]] = from_f32<T>(unary_grad(kind, lo, hi, to_f32(x[off[1]]), to_f32(g[off[2]])));
  }
}

// ---- softmax_backward ------------------------------------------------------------------------------------
// s = Σ g·y (softmax) or Σ g (log_softmax); out = y (g - s) or g - exp(y) s.
__device__ __forceinline__ float softmax_grad(bool log, float y, float g, float s) {
  return log ? g - expf(y) * s : y * (g - s);
}

// dim last: one block per row of length R
template <typename T>
__global__ void softmax_backward_rows(T* out, const T* y, const T* g, int64_t R, bool log) {
  __shared__ float sh[32];
  const int64_t base = blockIdx.x * R;
  float s = 0.f;
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
    s += log ? to_f32(g[base + r]) : to_f32(g[base + r]) * to_f32(y[base + r]);
  s = block_sum(s, sh);
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
    out[base + r] = from_f32<T>(softmax_grad(log, to_f32(y[base + r]), to_f32(g[base + r]), s));
}

// dim not last: one thread per column (o, j) of the (outer, R, inner) view
template <typename T>
__global__ void softmax_backward_columns(T* out, const T* y, const T* g, int64_t ncols, int64_t R, int64_t inner,
                                         bool log) {
  for (int64_t col = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; col < ncols;
       col += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = col / inner, base = o * R * inner + (col - o * inner);
    float s = 0.f;
    for (int64_t r = 0; r < R; ++r) {
      const int64_t at = base + r * inner;
      s += log ? to_f32(g[at]) : to_f32(g[at]) * to_f32(y[at]);
    }
    for (int64_t r = 0; r < R; ++r) {
      const int64_t at = base + r * inner;
      out[at] = from_f32<T>(softmax_grad(log, to_f32(y[at]), to_f32(g[at]), s));
    }
  }
}

// ---- layer_norm_backward ---------------------------------------------------------------------------------
// dx for one row per block; stats[row] = (mean, rstd) when the parameter gradients need them.
template <typename T>
__global__ void layer_norm_backward_dx(T* dx, float* stats, const T* x, const T* g, const void* w, int w_dt,
                                       int64_t C, float eps) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * C;
  const T* gr = g + row * C;
  float s = 0.f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += to_f32(xr[c]);
  const float mean = block_sum(s, sh) / static_cast<float>(C);
  float v = 0.f;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float d = to_f32(xr[c]) - mean;
    v += d * d;
  }
  const float rstd = rsqrtf(block_sum(v, sh) / static_cast<float>(C) + eps);
  float a = 0.f, b = 0.f;  // Σ g w, Σ g w x̂
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float gw = to_f32(gr[c]) * (w ? load_any_f32(w, w_dt, c) : 1.f);
    a += gw;
    b += gw * (to_f32(xr[c]) - mean) * rstd;
  }
  a = block_sum(a, sh) / static_cast<float>(C);
  b = block_sum(b, sh) / static_cast<float>(C);
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
    const float gw = to_f32(gr[c]) * (w ? load_any_f32(w, w_dt, c) : 1.f);
    const float xhat = (to_f32(xr[c]) - mean) * rstd;
    dx[row * C + c] = from_f32<T>(rstd * (gw - a - xhat * b));
  }
  if (stats && threadIdx.x == 0) {
    stats[2 * row] = mean;
    stats[2 * row + 1] = rstd;
  }
}

constexpr int kLnColumns = 32, kLnRowThreads = 8;
constexpr int64_t kLnChunkRows = 64;

// partial[chunk, c] = Σ g x̂ and partial[nchunks + chunk, c] = Σ g over the rows of one chunk
template <typename T>
__global__ void layer_norm_backward_params(float* partial, const T* x, const T* g, const float* stats, int64_t rows,
                                           int64_t C, int64_t nchunks) {
  __shared__ float sw[kLnRowThreads][kLnColumns], sb[kLnRowThreads][kLnColumns];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = blockIdx.x * int64_t(kLnColumns) + tx, chunk = blockIdx.y;
  const int64_t r1 = min(rows, (chunk + 1) * kLnChunkRows);
  float aw = 0.f, ab = 0.f;
  if (c < C)
    for (int64_t r = chunk * kLnChunkRows + ty; r < r1; r += kLnRowThreads) {
      const float gv = to_f32(g[r * C + c]);
      aw += gv * (to_f32(x[r * C + c]) - stats[2 * r]) * stats[2 * r + 1];
      ab += gv;
    }
  sw[ty][tx] = aw;
  sb[ty][tx] = ab;
  __syncthreads();
  if (ty != 0 || c >= C) return;
  for (int k = 1; k < kLnRowThreads; ++k) aw += sw[k][tx], ab += sb[k][tx];
  partial[chunk * C + c] = aw;
  partial[(nchunks + chunk) * C + c] = ab;
}

// dweight[c] / dbias[c] = the chunk partials added in chunk order
template <typename T>
__global__ void layer_norm_backward_sum(T* dweight, T* dbias, const float* partial, int64_t C, int64_t nchunks) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < C; c += int64_t(gridDim.x) * blockDim.x) {
    float aw = 0.f, ab = 0.f;
    for (int64_t k = 0; k < nchunks; ++k) aw += partial[k * C + c], ab += partial[(nchunks + k) * C + c];
    if (dweight) dweight[c] = from_f32<T>(aw);
    if (dbias) dbias[c] = from_f32<T>(ab);
  }
}

// ---- conv2d_backward -------------------------------------------------------------------------------------
struct ConvGeom {
  int64_t C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo;
};

// G (O, nc·P): G[o, n·P + p] = grad[n, o, p] for the nc images of the chunk (raw element bits).
template <typename R>
__global__ void regroup_kernel(R* G, const R* grad, int64_t nc, int64_t O, int64_t P) {
  const int64_t total = nc * O * P;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = e % P, t = e / P, o = t % O, n = t / O;
    G[o * nc * P + n * P + p] = grad[e];
  }
}

// cols (C·kh·kw, nc·P): cols[(c, ky, kx), n·P + p] = x[n] at the tap's input position, zero outside
template <typename R>
__global__ void im2col_cols_kernel(R* cols, const R* x, int64_t nc, ConvGeom g) {
  const int64_t P = g.Ho * g.Wo, K = nc * P, KK = g.kh * g.kw, total = g.C * KK * K;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t k = e % K, ckk = e / K, n = k / P, p = k - n * P;
    const int64_t c = ckk / KK, ki = (ckk - c * KK) / g.kw, kj = ckk % g.kw;
    const int64_t oh = p / g.Wo, ow = p - oh * g.Wo;
    const int64_t ih = oh * g.sh - g.ph + ki * g.dh, iw = ow * g.sw - g.pw + kj * g.dw;
    const bool in = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
    cols[e] = in ? x[((n * g.C + c) * g.H + ih) * g.W + iw] : R{};
  }
}

// dx[n, c, ih, iw] = Σ over the taps (ky, kx) and output positions that read it of dcols (C·kh·kw, nc·P)
template <typename T>
__global__ void col2im_gather_kernel(T* dx, const float* dcols, int64_t nc, ConvGeom g) {
  const int64_t P = g.Ho * g.Wo, K = nc * P, total = nc * g.C * g.H * g.W;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t iw = e % g.W, t1 = e / g.W, ih = t1 % g.H, t2 = t1 / g.H, c = t2 % g.C, n = t2 / g.C;
    float acc = 0.f;
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t hnum = ih + g.ph - ki * g.dh;
      if (hnum < 0 || hnum % g.sh != 0 || hnum / g.sh >= g.Ho) continue;
      const int64_t oh = hnum / g.sh;
      for (int64_t kj = 0; kj < g.kw; ++kj) {
        const int64_t wnum = iw + g.pw - kj * g.dw;
        if (wnum < 0 || wnum % g.sw != 0 || wnum / g.sw >= g.Wo) continue;
        const int64_t ckk = (c * g.kh + ki) * g.kw + kj;
        acc += dcols[ckk * K + n * P + oh * g.Wo + wnum / g.sw];
      }
    }
    dx[e] = from_f32<T>(acc);
  }
}

template <typename T>
__global__ void cast_from_f32_kernel(T* out, const float* in, int64_t n) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x)
    out[e] = from_f32<T>(in[e]);
}

template <typename F>
void dispatch_bits(size_t esize, F&& f) {
  if (esize == 2) f(uint16_t{});
  else if (esize == 4) f(uint32_t{});
  else VL_FAIL("cuda conv2d_backward: unsupported element size ", esize);
}

// ---- scatter_add ------------------------------------------------------------------------------------------
struct ScatterDesc {
  int ndim, dim;
  int64_t src_shape[kMaxIndexDims];
  int64_t out_stride[kMaxIndexDims];
};
template <typename T>
__global__ void scatter_add_kernel(float* acc, const T* src, const int64_t* index, int64_t n, ScatterDesc d) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = e, off = 0;
#pragma unroll
    for (int k = kMaxIndexDims - 1; k >= 0; --k) {
      if (k < d.ndim) {
        const int64_t q = rem / d.src_shape[k], coord = rem - q * d.src_shape[k];
        rem = q;
        off += (k == d.dim ? index[e] : coord) * d.out_stride[k];
      }
    }
    atomicAdd(acc + off, to_f32(src[e]));
  }
}

void cast_into(const Tensor& out, const float* acc, int64_t n) {
  dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    cast_from_f32_kernel<T><<<grid_for(n), kThreads>>>(out.data<T>(), acc, n);
    VL_CUDA_LAUNCH_CHECK("cast_from_f32");
  });
}

}  // namespace

// ---- entry points ------------------------------------------------------------------------------------------
void unary_backward(OpCall& c) {
  const Tensor& out = c.out[0];
  Tensor x = c.in[0], g = c.in[1];
  StridedIter<3> it;
  const Shape* st[3] = {&out.strides(), &x.strides(), &g.strides()};
  if (!make_iter<3>(out.shape(), st, it)) {  // rare: high-rank views that do not coalesce
    x = x.contiguous(), g = g.contiguous();
    const Shape* st2[3] = {&out.strides(), &x.strides(), &g.strides()};
    VL_CHECK(make_iter<3>(out.shape(), st2, it), "cuda unary_backward: cannot iterate over ", shape_str(out.shape()));
  }
  const int64_t n = out.numel();
  dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    unary_backward_kernel<T><<<grid_for(n), kThreads>>>(out.data<T>(), x.data<T>(), g.data<T>(), n, it, int(c.i[0]),
                                                        c.f[0], c.f[1]);
    VL_CUDA_LAUNCH_CHECK("unary_backward");
  });
}

void softmax_backward(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& y = c.in[0];
  const Tensor& g = c.in[1];
  RowLayout l = row_layout(y.shape(), wrap_dim(c.i[0], y.dim()));
  const int64_t ncols = l.outer * l.inner;
  const bool log = c.i[1] != 0;
  if (ncols == 0 || l.R == 0) return;
  dispatch_float(out.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if (l.inner == 1)
      softmax_backward_rows<T><<<grid_rows(ncols), kThreads>>>(out.data<T>(), y.data<T>(), g.data<T>(), l.R, log);
    else
      softmax_backward_columns<T><<<grid_for(ncols), kThreads>>>(out.data<T>(), y.data<T>(), g.data<T>(), ncols, l.R,
                                                                 l.inner, log);
    VL_CUDA_LAUNCH_CHECK("softmax_backward");
  });
}

void layer_norm_backward(OpCall& c) {
  const Tensor& dx = c.out[0];
  const Tensor dweight = c.out.size() > 1 ? c.out[1] : Tensor();
  const Tensor dbias = c.out.size() > 2 ? c.out[2] : Tensor();
  const Tensor& x = c.in[0];
  const Tensor& w = c.input(1);
  const Tensor& g = c.in[2];
  const int64_t C = x.size(-1), rows = C > 0 ? x.numel() / C : 0;
  if (rows == 0) return;
  const bool params = dweight.defined() || dbias.defined();
  Tensor stats = params ? Tensor::empty({rows, 2}, DType::F32, x.device()) : Tensor();
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    layer_norm_backward_dx<T><<<grid_rows(rows), kThreads>>>(
        dx.data<T>(), params ? stats.data<float>() : nullptr, x.data<T>(), g.data<T>(),
        w.defined() ? w.data_ptr() : nullptr, w.defined() ? int(w.dtype()) : 0, C, c.f[0]);
    VL_CUDA_LAUNCH_CHECK("layer_norm_backward_dx");
    if (!params) return;
    const int64_t nchunks = (rows + kLnChunkRows - 1) / kLnChunkRows;
    VL_CHECK(nchunks < 65536, "cuda layer_norm_backward: too many rows (", rows, ")");
    Tensor partial = Tensor::empty({2 * nchunks, C}, DType::F32, x.device());
    const dim3 grid(static_cast<unsigned>((C + kLnColumns - 1) / kLnColumns), static_cast<unsigned>(nchunks));
    layer_norm_backward_params<T><<<grid, dim3(kLnColumns, kLnRowThreads)>>>(
        partial.data<float>(), x.data<T>(), g.data<T>(), stats.data<float>(), rows, C, nchunks);
    VL_CUDA_LAUNCH_CHECK("layer_norm_backward_params");
    layer_norm_backward_sum<T><<<grid_for(C), kThreads>>>(dweight.defined() ? dweight.data<T>() : nullptr,
                                                          dbias.defined() ? dbias.data<T>() : nullptr,
                                                          partial.data<float>(), C, nchunks);
    VL_CUDA_LAUNCH_CHECK("layer_norm_backward_sum");
  });
}

void conv2d_backward(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];     // (N, C, H, W)
  const Tensor& w = c.in[1];     // (O, C, kh, kw)
  const Tensor& grad = c.in[2];  // (N, O, Ho, Wo)
  const bool want_dw = c.i[6] != 0;
  ConvGeom g{x.size(1), x.size(2), x.size(3), w.size(2), w.size(3), c.i[0], c.i[1], c.i[2], c.i[3], c.i[4], c.i[5],
             grad.size(2), grad.size(3)};
  const int64_t N = x.size(0), O = w.size(0), P = g.Ho * g.Wo, CKK = g.C * g.kh * g.kw;
  if (out.numel() == 0) return;
  const size_t es = x.element_size();
  // Images per chunk: the f32 column buffer stays under 256 MiB.
  const int64_t kColBytes = int64_t(256) << 20;
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(N, kColBytes / std::max<int64_t>(1, CKK * P * 4)));
  Tensor G = Tensor::empty({1, O, chunk * P}, x.dtype(), x.device());
  Tensor cols = Tensor::empty({CKK, chunk * P}, want_dw ? x.dtype() : DType::F32, x.device());
  Tensor acc = want_dw && out.dtype() != DType::F32 ? Tensor::empty({O, CKK}, DType::F32, x.device()) : Tensor();
  float* dw_f32 = want_dw ? (acc.defined() ? acc.data<float>() : out.data<float>()) : nullptr;
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t nc = std::min(chunk, N - n0), K = nc * P;
    Tensor Gv = G.as_strided({1, O, K}, {O * K, K, 1}, G.offset());  // (O, K) packed for this chunk
    dispatch_bits(es, [&](auto tag) {
      using R = decltype(tag);
      const R* src = static_cast<const R*>(grad.narrow(0, n0, nc).data_ptr());
      regroup_kernel<R><<<grid_for(nc * O * P), kThreads>>>(Gv.data<R>(), src, nc, O, P);
      VL_CUDA_LAUNCH_CHECK("conv2d_backward_regroup");
      if (!want_dw) return;
      const R* xs = static_cast<const R*>(x.narrow(0, n0, nc).data_ptr());
      im2col_cols_kernel<R><<<grid_for(CKK * K), kThreads>>>(cols.data<R>(), xs, nc, g);
      VL_CUDA_LAUNCH_CHECK("conv2d_backward_im2col");
    });
    Tensor cv = cols.as_strided({CKK, K}, {K, 1}, cols.offset());  // (CKK, K) packed for this chunk
    if (want_dw) {
      // dw (O, CKK) (+)= G (O, K) @ colsᵀ (K, CKK)
      gemm(Gv, cv.t().unsqueeze(0), dw_f32, DType::F32, 1.f, n0 > 0 ? 1.f : 0.f);
    } else {
      // dcols (CKK, K) = Wᵀ (CKK, O) @ G (O, K), then gathered into dx
      gemm(w.view({1, O, CKK}).transpose(1, 2), Gv, cv.data<float>(), DType::F32, 1.f, 0.f);
      const int64_t total = nc * g.C * g.H * g.W;
      dispatch_float(out.dtype(), [&](auto tag) {
        using T = decltype(tag);
        col2im_gather_kernel<T><<<grid_for(total), kThreads>>>(out.data<T>() + n0 * g.C * g.H * g.W,
                                                               cv.data<float>(), nc, g);
        VL_CUDA_LAUNCH_CHECK("conv2d_backward_col2im");
      });
    }
  }
  if (acc.defined()) cast_into(out, acc.data<float>(), O * CKK);
}

void scatter_add(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& index = c.in[0];
  const Tensor& src = c.in[1];
  const int64_t total = out.numel(), n = src.numel();
  if (total == 0) return;
  ScatterDesc d{};
  d.ndim = static_cast<int>(src.dim());
  d.dim = static_cast<int>(wrap_dim(c.i[0], out.dim()));
  const Shape os = contiguous_strides(out.shape());
  for (int k = 0; k < d.ndim; ++k) d.src_shape[k] = src.shape()[k], d.out_stride[k] = os[k];
  Tensor acc = out.dtype() == DType::F32 ? out : Tensor::empty(out.shape(), DType::F32, out.device());
  VL_CUDA_CHECK(cudaMemsetAsync(acc.data_ptr(), 0, static_cast<size_t>(total) * sizeof(float), 0));
  if (n > 0)
    dispatch_float(src.dtype(), [&](auto tag) {
      using T = decltype(tag);
      scatter_add_kernel<T><<<grid_for(n), kThreads>>>(acc.data<float>(), src.data<T>(), index.data<int64_t>(), n, d);
      VL_CUDA_LAUNCH_CHECK("scatter_add");
    });
  if (out.dtype() != DType::F32) cast_into(out, acc.data<float>(), total);
}

}  // namespace vislang::cuda
