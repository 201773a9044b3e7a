// kernels/cpu/cpu_conv.cpp — Op::CONV2D (im2col + sgemm) and Op::AVG_POOL2D on the CPU.
//
// conv2d, per image n: cols (C·kh·kw, OH·OW) = im2col(x[n]) (zero padding, stride, dilation), then
// out[n] (O, OH·OW) = W (O, C·kh·kw) @ cols with sgemm, then + bias per output channel. A 1×1
// stride-1 unpadded conv skips im2col (cols is x[n] itself). Images run in parallel (one sgemm per
// thread) when there are at least as many as threads; otherwise one after another, each im2col and
// sgemm using every thread. f16 / bf16 are converted to f32 first and rounded back.
// A patch embedding (stride = kernel, no padding, no dilation: the ViT stem) is one GEMM over all
// images instead: patches (N·OH·OW, C·kh·kw) @ Wᵀ + bias (fused) -> (N·OH·OW, O), then a transpose
// into NCHW. One large product keeps the micro-kernel busy at batch 1 (49 patch rows) and at batch 32
// alike, and Wᵀ is the prepacked operand when the weight was registered (kernels/cpu/prepack.h).
// Each output element sums the same K blocks in the same order as the per-image path.
// avg_pool2d: PyTorch semantics (count_include_pad, ceil_mode; the output size comes from out),
// parallel over (n, c) planes.
#include <omp.h>

#include <cstring>

#include "kernels/cpu/cpu_common.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/prepack.h"

namespace vislang::cpu_kernels {
namespace {

struct ConvGeometry {
  int64_t C, H, W, KH, KW, OH, OW;
  int64_t sh, sw, ph, pw, dh, dw;
};

// Smallest o >= 0 with o * s >= v, i.e. ceil(v / s) clamped at 0 (s > 0).
int64_t first_at_least(int64_t v, int64_t s) { return v <= 0 ? 0 : (v + s - 1) / s; }

// cols (C·KH·KW, OH·OW): row (c, ky, kx), column (oy, ox) = x (C, H, W) at
// (oy·sh - ph + ky·dh, ox·sw - pw + kx·dw), zero outside the image.
void im2col(float* cols, const float* x, const ConvGeometry& g, bool parallel) {
  const int64_t rows = g.C * g.KH * g.KW, P = g.OH * g.OW;
#pragma omp parallel for schedule(static) if (parallel && rows > 1 && rows * P >= kParallelMin)
  for (int64_t q = 0; q < rows; ++q) {
    const int64_t ch = q / (g.KH * g.KW), ky = (q / g.KW) % g.KH, kx = q % g.KW;
    float* dst = cols + q * P;
    // Output columns whose input column ix = ox·sw - pw + kx·dw lies in [0, W): [ox0, ox1).
    const int64_t shift = kx * g.dw - g.pw;
    const int64_t ox0 = std::min(g.OW, first_at_least(-shift, g.sw));
    const int64_t ox1 = std::max(ox0, std::min(g.OW, first_at_least(g.W - shift, g.sw)));
    for (int64_t oy = 0; oy < g.OH; ++oy) {
      float* d = dst + oy * g.OW;
      const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.H) {
        std::fill(d, d + g.OW, 0.0f);
        continue;
      }
      const float* src = x + (ch * g.H + iy) * g.W;
      std::fill(d, d + ox0, 0.0f);
      if (g.sw == 1 && ox1 > ox0) std::memcpy(d + ox0, src + ox0 + shift, static_cast<size_t>(ox1 - ox0) * sizeof(float));
      else
        for (int64_t ox = ox0; ox < ox1; ++ox) d[ox] = src[ox * g.sw + shift];
      std::fill(d + ox1, d + g.OW, 0.0f);
    }
  }
}

// patches (N·OH·OW, C·KH·KW): row (n, oy, ox), column (c, ky, kx) = x (N, C, H, W) at
// (oy·KH + ky, ox·KW + kx) — stride = kernel, no padding, no dilation; x of any float dtype.
void gather_patches(float* patches, const char* px, DType t, int64_t N, const ConvGeometry& g) {
  const int64_t CKK = g.C * g.KH * g.KW, es = static_cast<int64_t>(dtype_size(t));
#pragma omp parallel for schedule(static) if (N * g.OH > 1 && N * g.OH * g.OW * CKK >= kParallelMin)
  for (int64_t row = 0; row < N * g.OH; ++row) {  // one row of patches: (n, oy)
    const int64_t n = row / g.OH, oy = row % g.OH;
    for (int64_t ox = 0; ox < g.OW; ++ox) {
      float* d = patches + (row * g.OW + ox) * CKK;
      for (int64_t ch = 0; ch < g.C; ++ch)
        for (int64_t ky = 0; ky < g.KH; ++ky) {
          const int64_t src = ((n * g.C + ch) * g.H + oy * g.KH + ky) * g.W + ox * g.KW;
          float* dd = d + (ch * g.KH + ky) * g.KW;
          if (t == DType::F32) std::memcpy(dd, reinterpret_cast<const float*>(px) + src, static_cast<size_t>(g.KW) * sizeof(float));
          else load_f32(dd, px + src * es, t, g.KW);
        }
    }
  }
}

// out (N, O, OH, OW) = patch-embedding conv of x (N, C, H, W) with w (O, C, KH, KW) + bias (O).
void conv2d_patches(const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias, const ConvGeometry& g) {
  const int64_t N = x.size(0), O = w.size(0), CKK = g.C * g.KH * g.KW, P = g.OH * g.OW, rows = N * P;
  float* patches = scratch(0, static_cast<size_t>(rows * CKK));
  gather_patches(patches, byte_ptr(x), x.dtype(), N, g);
  std::vector<float> b_f32;
  const float* bp = nullptr;
  if (bias.defined()) bp = bias.dtype() == DType::F32 ? bias.data<const float>() : (b_f32 = to_f32_vector(bias), b_f32.data());
  float* y = scratch(1, static_cast<size_t>(rows * O));  // (N·P, O)
  const Tensor wt = w.view({O, CKK}).t();                 // (CKK, O): B of the GEMM, a view
  if (auto packed = cpu::find_prepacked(wt)) {
    cpu::sgemm_prepacked(rows, 1.0f, patches, CKK, 1, *packed, y, bp, Activation::NONE);
  } else {
    std::vector<float> w_f32;
    const float* wp = w.dtype() == DType::F32 ? w.data<const float>() : (w_f32 = to_f32_vector(w), w_f32.data());
    cpu::sgemm(rows, O, CKK, 1.0f, patches, CKK, 1, wp, 1, CKK, y, bp, Activation::NONE);
  }
  // (N·P, O) -> (N, O, P) in 32 × 32 tiles, rounded to out's dtype.
  constexpr int64_t kT = 32;
  const int64_t tp = (P + kT - 1) / kT, to = (O + kT - 1) / kT;
  char* py = byte_ptr(out);
  const int64_t ey = esize(out);
#pragma omp parallel for schedule(static) if (N * tp * to > 1 && rows * O >= kParallelMin)
  for (int64_t item = 0; item < N * tp * to; ++item) {
    const int64_t n = item / (tp * to), p0 = (item / to) % tp * kT, o0 = item % to * kT;
    const int64_t p1 = std::min(P, p0 + kT), o1 = std::min(O, o0 + kT);
    float tile[kT][kT];
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t o = o0; o < o1; ++o) tile[o - o0][p - p0] = y[(n * P + p) * O + o];
    for (int64_t o = o0; o < o1; ++o) {
      const int64_t dst = (n * O + o) * P + p0;
      if (out.dtype() == DType::F32) std::memcpy(out.data<float>() + dst, tile[o - o0], static_cast<size_t>(p1 - p0) * sizeof(float));
      else store_f32(py + dst * ey, out.dtype(), tile[o - o0], p1 - p0);
    }
  }
}

}  // namespace

// out (N, O, OH, OW) = conv(in0 x (N, C, H, W), in1 w (O, C, kh, kw)) + in2 bias (O);
// i[0..5] = stride h, w, padding h, w, dilation h, w
void conv2d_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const Tensor& w = c.in[1];
  const Tensor& bias = c.input(2);
  ConvGeometry g;
  const int64_t N = x.size(0), O = w.size(0);
  g.C = x.size(1), g.H = x.size(2), g.W = x.size(3), g.KH = w.size(2), g.KW = w.size(3);
  g.OH = out.size(2), g.OW = out.size(3);
  g.sh = c.i[0], g.sw = c.i[1], g.ph = c.i[2], g.pw = c.i[3], g.dh = c.i[4], g.dw = c.i[5];
  if (out.numel() == 0) return;
  const int64_t CKK = g.C * g.KH * g.KW, P = g.OH * g.OW, image = g.C * g.H * g.W;
  const bool pointwise = g.KH == 1 && g.KW == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0;
  const bool patches = !pointwise && g.sh == g.KH && g.sw == g.KW && g.ph == 0 && g.pw == 0 && g.dh == 1 && g.dw == 1;
  if (patches && !omp_in_parallel()) return conv2d_patches(out, x, w, bias, g);

  std::vector<float> w_f32, b_f32;
  const float* wp = w.dtype() == DType::F32 ? w.data<const float>() : (w_f32 = to_f32_vector(w), w_f32.data());
  if (bias.defined()) b_f32 = to_f32_vector(bias);
  const bool x_direct = x.dtype() == DType::F32, y_direct = out.dtype() == DType::F32;
  const char* px = byte_ptr(x);
  char* py = byte_ptr(out);
  const int64_t ex = esize(x), ey = esize(out);

  auto one_image = [&](int64_t n, bool parallel) {
    const float* xn;
    if (x_direct) {
      xn = x.data<const float>() + n * image;
    } else {
      float* buf = scratch(0, static_cast<size_t>(image));
      load_f32(buf, px + n * image * ex, x.dtype(), image);
      xn = buf;
    }
    const float* cols = xn;  // pointwise: (C, H·W) is already the column matrix
    if (!pointwise) {
      float* buf = scratch(1, static_cast<size_t>(CKK * P));
      im2col(buf, xn, g, parallel);
      cols = buf;
    }
    float* yn = y_direct ? out.data<float>() + n * O * P : scratch(2, static_cast<size_t>(O * P));
    cpu::sgemm(O, P, CKK, 1.0f, wp, CKK, 1, cols, P, 1, yn, nullptr, Activation::NONE);
    if (!b_f32.empty()) {
#pragma omp parallel for schedule(static) if (parallel && O * P >= kParallelMin)
      for (int64_t o = 0; o < O; ++o) {
        const float b = b_f32[o];
        float* row = yn + o * P;
#pragma omp simd
        for (int64_t p = 0; p < P; ++p) row[p] += b;
      }
    }
    if (!y_direct) store_f32(py + n * O * P * ey, out.dtype(), yn, O * P);
  };

  if (N > 1 && N >= omp_get_max_threads() && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t n = 0; n < N; ++n) one_image(n, false);  // sgemm runs on one thread inside
  } else {
    for (int64_t n = 0; n < N; ++n) one_image(n, true);
  }
}

// out (N, C, OH, OW) = window averages of in0 (N, C, H, W); i[0..5] = kernel h, w, stride h, w,
// padding h, w; i[6] = count_include_pad (i[7] = ceil_mode is already in out's size)
void avg_pool2d_kernel(OpCall& c) {
  const Tensor& out = c.out[0];
  const Tensor& x = c.in[0];
  const int64_t kh = c.i[0], kw = c.i[1], sh = c.i[2], sw = c.i[3], ph = c.i[4], pw = c.i[5];
  const bool count_include_pad = c.i[6] != 0;
  const int64_t NC = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OH = out.size(2), OW = out.size(3);
  if (out.numel() == 0) return;
  const char* px = byte_ptr(x);
  char* py = byte_ptr(out);
  const int64_t ex = esize(x), ey = esize(out);
#pragma omp parallel for schedule(static) if (NC > 1 && x.numel() >= kParallelMin)
  for (int64_t plane = 0; plane < NC; ++plane) {
    const float* xp;
    if (x.dtype() == DType::F32) {
      xp = x.data<const float>() + plane * H * W;
    } else {
      float* buf = scratch(0, static_cast<size_t>(H * W));
      load_f32(buf, px + plane * H * W * ex, x.dtype(), H * W);
      xp = buf;
    }
    float* yp = out.dtype() == DType::F32 ? out.data<float>() + plane * OH * OW : scratch(1, static_cast<size_t>(OH * OW));
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        // The window clipped to input + padding (its area is the count_include_pad divisor), then to
        // the input (the positions summed).
        int64_t h0 = oy * sh - ph, w0 = ox * sw - pw;
        int64_t h1 = std::min(h0 + kh, H + ph), w1 = std::min(w0 + kw, W + pw);
        const int64_t padded_area = (h1 - h0) * (w1 - w0);
        h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
        h1 = std::min(h1, H), w1 = std::min(w1, W);
        float v = 0;
        if (h0 < h1 && w0 < w1) {
          float sum = 0;
          for (int64_t iy = h0; iy < h1; ++iy)
            for (int64_t ix = w0; ix < w1; ++ix) sum += xp[iy * W + ix];
          const int64_t divisor = count_include_pad ? padded_area : (h1 - h0) * (w1 - w0);
          v = sum / static_cast<float>(divisor);
        }
        yp[oy * OW + ox] = v;
      }
    if (out.dtype() != DType::F32) store_f32(py + plane * OH * OW * ey, out.dtype(), yp, OH * OW);
  }
}

}  // namespace vislang::cpu_kernels
