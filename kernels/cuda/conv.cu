// kernels/cuda/conv.cu — the image ops on CUDA: CONV2D (im2col + cuBLAS GEMM), AVG_POOL2D (torch
// semantics) and inference BATCH_NORM.
//
// CONV2D. For each image n: out[n] (O, Ho·Wo) = W (O, C·kh·kw) @ col[n] (C·kh·kw, Ho·Wo), where
// col[n] holds the zero-padded, strided, dilated input patches (im2col). Images are processed in
// chunks whose col buffer stays under 256 MiB, one strided-batched GEMM per chunk (the weight's batch
// stride is 0). A 1×1 / stride-1 / no-padding conv uses the input itself as col. The bias is written
// into the output first and the GEMM adds to it (beta = 1), so f16/bf16 results round once.
// AVG_POOL2D. One thread per output; window [h0, h0+kh) clipped to the padded input for the
// count_include_pad divisor and to the real input for the sum (PyTorch's avg_pool2d; ceil_mode only
// changes the output size, which the front-end computed).
// BATCH_NORM. y = (x - mean[c]) / sqrt(var[c] + eps) · w[c] + b[c], one thread per element.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace vislang::cuda {

namespace {

struct ConvGeom {
  int64_t C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo;
};

// col (nc, C·kh·kw, Ho·Wo) from x (nc, C, H, W); raw element bits (zero bits = 0.0 for every float).
template <typename R>
__global__ void im2col_kernel(R* col, const R* x, int64_t total, ConvGeom g) {
  const int64_t P = g.Ho * g.Wo, KK = g.kh * g.kw, CKK = g.C * KK;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t p = e % P, t = e / P;
    int64_t ckk = t % CKK, n = t / CKK;
    int64_t c = ckk / KK, kk = ckk - c * KK;
    int64_t ki = kk / g.kw, kj = kk - ki * g.kw;
    int64_t oh = p / g.Wo, ow = p - oh * g.Wo;
    int64_t ih = oh * g.sh - g.ph + ki * g.dh, iw = ow * g.sw - g.pw + kj * g.dw;
    bool in = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W;
    col[e] = in ? x[((n * g.C + c) * g.H + ih) * g.W + iw] : R{};
  }
}

// out (N, O, P) = bias[o] broadcast.
template <typename T>
__global__ void bias_fill_kernel(T* out, const void* bias, int bias_dt, int64_t total, int64_t O, int64_t P) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x)
    out[e] = bias ? from_f32<T>(load_any_f32(bias, bias_dt, (e / P) % O)) : from_f32<T>(0.f);
}

struct PoolGeom {
  int64_t H, W, Ho, Wo, kh, kw, sh, sw, ph, pw;
  bool count_include_pad;
};
template <typename T>
__global__ void avg_pool2d_kernel(T* out, const T* x, int64_t total, PoolGeom g) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t ow = e % g.Wo, t = e / g.Wo;
    int64_t oh = t % g.Ho, nc = t / g.Ho;
    int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    int64_t h1 = min(h0 + g.kh, g.H + g.ph), w1 = min(w0 + g.kw, g.W + g.pw);
    int64_t pool = (h1 - h0) * (w1 - w0);
    h0 = max(h0, int64_t(0));
    w0 = max(w0, int64_t(0));
    h1 = min(h1, g.H);
    w1 = min(w1, g.W);
    if (h0 >= h1 || w0 >= w1) {
      out[e] = from_f32<T>(0.f);
      continue;
    }
    const T* plane = x + nc * g.H * g.W;
    float s = 0.f;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) s += to_f32(plane[h * g.W + w]);
    int64_t div = g.count_include_pad ? pool : (h1 - h0) * (w1 - w0);
    out[e] = from_f32<T>(s / static_cast<float>(div));
  }
}

struct BnParams {
  const void *mean, *var, *w, *b;
  int mean_dt, var_dt, w_dt, b_dt;
};
template <typename T>
__global__ void batch_norm_kernel(T* out, const T* x, int64_t total, int64_t C, int64_t inner, float eps, BnParams p) {
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t c = (e / inner) % C;
    float y = (to_f32(x[e]) - load_any_f32(p.mean, p.mean_dt, c)) / sqrtf(load_any_f32(p.var, p.var_dt, c) + eps);
    if (p.w) y *= load_any_f32(p.w, p.w_dt, c);
    if (p.b) y += load_any_f32(p.b, p.b_dt, c);
    out[e] = from_f32<T>(y);
  }
}

template <typename F>
void dispatch_raw2(size_t esize, F&& f) {
  if (esize == 2) f(uint16_t{});
  else if (esize == 4) f(uint32_t{});
  else VL_FAIL("cuda conv2d: unsupported element size ", esize);
}

}  // namespace

void conv2d(OpCall& c) {
  const Tensor& out = c.out[0];  // (N, O, Ho, Wo)
  Tensor x = c.in[0].contiguous();  // (N, C, H, W)
  Tensor w = c.in[1].contiguous();  // (O, C, kh, kw)
  if (w.dtype() != x.dtype()) w = w.to(x.dtype());
  Tensor bias = c.input(2).defined() ? c.input(2).contiguous() : Tensor();
  ConvGeom g{x.size(1), x.size(2), x.size(3), w.size(2), w.size(3), c.i[0], c.i[1], c.i[2], c.i[3], c.i[4], c.i[5],
             out.size(2), out.size(3)};
  const int64_t N = x.size(0), O = w.size(0), P = g.Ho * g.Wo, CKK = g.C * g.kh * g.kw;
  const int64_t total = out.numel();
  if (total == 0) return;
  const size_t es = x.element_size();
  float beta = 0.f;
  if (bias.defined() || CKK == 0) {
    dispatch_float(out.dtype(), [&](auto tag) {
      using T = decltype(tag);
      bias_fill_kernel<T><<<grid_for(total), kThreads>>>(out.data<T>(), bias.defined() ? bias.data_ptr() : nullptr,
                                                         bias.defined() ? int(bias.dtype()) : 0, total, O, P);
      VL_CUDA_LAUNCH_CHECK("conv2d_bias");
    });
    beta = 1.f;
  }
  if (CKK == 0) return;
  const bool direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 && g.Ho == g.H &&
                      g.Wo == g.W;
  const int64_t kColBytes = int64_t(256) << 20;
  int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(N, kColBytes / std::max<int64_t>(1, CKK * P * int64_t(es))));
  Tensor col_buf = direct ? Tensor() : Tensor::empty({chunk, CKK, P}, x.dtype(), x.device());
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t nc = std::min(chunk, N - n0);
    Tensor col;
    if (direct) {
      col = x.narrow(0, n0, nc).view({nc, g.C, g.H * g.W});
    } else {
      col = col_buf.narrow(0, 0, nc);
      const int64_t n_col = nc * CKK * P;
      dispatch_raw2(es, [&](auto tag) {
        using R = decltype(tag);
        const R* src = static_cast<const R*>(x.narrow(0, n0, nc).data_ptr());
        im2col_kernel<R><<<grid_for(n_col), kThreads>>>(col.data<R>(), src, n_col, g);
        VL_CUDA_LAUNCH_CHECK("im2col");
      });
    }
    Tensor wv = w.view({1, O, CKK}).expand({nc, O, CKK});
    char* dst = static_cast<char*>(out.data_ptr()) + n0 * O * P * static_cast<int64_t>(out.element_size());
    gemm(wv, col, dst, out.dtype(), 1.f, beta);
  }
}

void avg_pool2d(OpCall& c) {
  const Tensor& out = c.out[0];
  Tensor x = c.in[0].contiguous();
  PoolGeom g{x.size(2), x.size(3), out.size(2), out.size(3),
             c.i[0],    c.i[1],    c.i[2],      c.i[3],  // kernel h, w, stride h, w
             c.i[4],    c.i[5],    c.i[6] != 0};         // padding h, w, count_include_pad
  const int64_t total = out.numel();
  if (total == 0) return;
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    avg_pool2d_kernel<T><<<grid_for(total), kThreads>>>(out.data<T>(), x.data<T>(), total, g);
    VL_CUDA_LAUNCH_CHECK("avg_pool2d");
  });
}

void batch_norm(OpCall& c) {
  const Tensor& out = c.out[0];
  Tensor x = c.in[0].contiguous();
  auto param = [&](size_t k) { return c.input(k).defined() ? c.input(k).contiguous() : Tensor(); };
  Tensor mean = param(1), var = param(2), w = param(3), b = param(4);
  const int64_t total = out.numel();
  if (total == 0) return;
  const int64_t C = x.dim() > 1 ? x.size(1) : 1;
  const int64_t inner = x.dim() > 1 ? total / (x.size(0) * C) : 1;
  BnParams p{mean.data_ptr(),
             var.data_ptr(),
             w.defined() ? w.data_ptr() : nullptr,
             b.defined() ? b.data_ptr() : nullptr,
             int(mean.dtype()), int(var.dtype()), w.defined() ? int(w.dtype()) : 0, b.defined() ? int(b.dtype()) : 0};
  dispatch_float(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    batch_norm_kernel<T><<<grid_for(total), kThreads>>>(out.data<T>(), x.data<T>(), total, C, inner, c.f[0], p);
    VL_CUDA_LAUNCH_CHECK("batch_norm");
  });
}

}  // namespace vislang::cuda
