// image/resize.cpp — PIL-exact bicubic resampling, center crop and normalization (see image/resize.h).
//
// Written from a reading of Pillow's libImaging/Resample.c (precompute_coeffs, normalize_coeffs_8bpc,
// ImagingResampleHorizontal/Vertical_8bpc, ImagingResampleInner); the arithmetic below is kept in the
// same order as Pillow's so that every double and every rounding matches.
#include "image/resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace vislang {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // fixed-point fraction bits of the weights

// Forces `v` to be rounded to a double here. Pillow's wheels are built for baseline x86-64 (no FMA),
// so `a * b + c` is two roundings there; a compiler allowed to contract (GCC's default with
// -march=native) would fuse it into one and change a weight in the last bit, which after the
// fixed-point rounding can move a pixel by 1.
inline double unfused(double v) {
  volatile double t = v;
  return t;
}

// Keys' cubic convolution kernel with a = -0.5 (Pillow's bicubic_filter), same operation order.
double bicubic(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) {
    double t = unfused((a + 2.0) * x) - (a + 3.0);
    return unfused(t * x * x) + 1;
  }
  if (x < 2.0) {
    double t = unfused((x - 5) * x) + 8;
    return (unfused(t * x) - 4) * a;
  }
  return 0.0;
}

// Fixed-point weights of one pass: output index i reads input [first[i], first[i] + count[i]) with
// weights k[i * ksize + j].
struct Weights {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> k;
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the full box (0, in_size), restricted to
// output indices [out0, out0 + n).
Weights bicubic_weights(int in_size, int out_size, int out0, int n) {
  const double support_unit = 2.0;  // BICUBIC support
  double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = support_unit * filterscale;
  Weights w;
  w.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  w.first.resize(n);
  w.count.resize(n);
  w.k.assign(static_cast<size_t>(n) * w.ksize, 0);
  std::vector<double> kd(w.ksize);
  const double inv_filterscale = 1.0 / filterscale;
  for (int i = 0; i < n; ++i) {
    int xx = out0 + i;
    double center = (xx + 0.5) * scale;  // in0 = 0
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      double v = bicubic((static_cast<double>(x + xmin) - center + 0.5) * inv_filterscale);
      kd[x] = v;
      ww += v;
    }
    for (int x = 0; x < xmax; ++x) {
      if (ww != 0.0) kd[x] /= ww;
      double s = kd[x] * (1 << kPrecisionBits);  // exact: a power of two
      w.k[static_cast<size_t>(i) * w.ksize + x] = static_cast<int32_t>(kd[x] < 0 ? -0.5 + s : 0.5 + s);
    }
    w.first[i] = xmin;
    w.count[i] = xmax;
  }
  return w;
}

// bicubic_weights through a small per-thread cache: a folder of same-size images asks for the same
// weights every time, and computing them (un-fused doubles) cost as much as a tenth of a small resize.
Weights cached_bicubic_weights(int in_size, int out_size, int out0, int n) {
  struct Entry {
    int in_size, out_size, out0, n;
    Weights w;
  };
  thread_local std::vector<Entry> cache;  // the most recent last
  for (const Entry& e : cache)
    if (e.in_size == in_size && e.out_size == out_size && e.out0 == out0 && e.n == n) return e.w;
  if (cache.size() >= 4) cache.erase(cache.begin());
  cache.push_back({in_size, out_size, out0, n, bicubic_weights(in_size, out_size, out0, n)});
  return cache.back().w;
}

inline uint8_t clip8(int ss) {
  int v = ss >> kPrecisionBits;  // arithmetic shift: floor, as Pillow's lookup table index
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace

namespace {

inline void copy_pixel(const uint8_t* from, uint8_t* to) {  // (std::copy_n of 3 bytes became a memmove call)
  to[0] = from[0];
  to[1] = from[1];
  to[2] = from[2];
}
// The same with one 4-byte load and store: the 4th byte read must exist, and the 4th byte written must
// be rewritten afterwards (the next pixel, copied later) or be slack.
inline void copy_pixel4(const uint8_t* from, uint8_t* to) {
  uint32_t v;
  std::memcpy(&v, from, 4);
  std::memcpy(to, &v, 4);
}

// Vertical pass: out(x, y) = sum_j src(x + col0, first[y] - row0 + j) * k[y][j] for out_w columns
// starting at column col0 of `src` (row stride src_w pixels; src row 0 is source row row0), clipped to
// uint8, into `out` (out_h rows of out_w pixels). Row-at-a-time accumulation (contiguous, vectorizes);
// integer sums, so the order of the additions does not change the result. OpenMP over rows when
// `parallel` and the pass is large.
void vertical_pass_into(const uint8_t* src, int src_w, int row0, int col0, const Weights& wv, int out_w, int out_h,
                        uint8_t* out, bool parallel) {
  const size_t in_stride = static_cast<size_t>(src_w) * 3, n = static_cast<size_t>(out_w) * 3;
  constexpr size_t kLanes = 32;
  const bool par = parallel && static_cast<int64_t>(out_h) * out_w * wv.ksize > (1 << 18);
#pragma omp parallel for schedule(static) if (par)
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = &wv.k[static_cast<size_t>(yy) * wv.ksize];
    const uint8_t* base = src + static_cast<size_t>(wv.first[yy] - row0) * in_stride + static_cast<size_t>(col0) * 3;
    uint8_t* o = out + static_cast<size_t>(yy) * n;
    size_t x0 = 0;
    // Sums over all taps held in registers, kLanes values at a time, then 8, then one.
    auto block = [&](auto lanes) {
      constexpr size_t L = decltype(lanes)::value;
      for (; x0 + L <= n; x0 += L) {
        int32_t a[L];
        for (size_t j = 0; j < L; ++j) a[j] = 1 << (kPrecisionBits - 1);
        for (int y = 0; y < wv.count[yy]; ++y) {
          const uint8_t* row = base + static_cast<size_t>(y) * in_stride + x0;
          const int32_t ky = k[y];
          for (size_t j = 0; j < L; ++j) a[j] += row[j] * ky;
        }
        for (size_t j = 0; j < L; ++j) o[x0 + j] = clip8(a[j]);
      }
    };
    block(std::integral_constant<size_t, kLanes>());
    block(std::integral_constant<size_t, 8>());
    block(std::integral_constant<size_t, 1>());
  }
}

Image vertical_pass(const uint8_t* src, int src_w, int row0, int col0, const Weights& wv, int out_w, int out_h) {
  Image out = Image::blank(out_w, out_h);
  vertical_pass_into(src, src_w, row0, col0, wv, out_w, out_h, out.rgb.data(), true);
  return out;
}

// Horizontal pass, plain loops as Pillow writes it (ImagingResampleHorizontal_8bpc): out(x, y) =
// sum_j src(first[x] - col0 + j, y) * k[x][j] for `rows` rows of `src` (row stride src_w pixels), clipped
// to uint8. The reference for horizontal_pass.
Image horizontal_pass_ref(const uint8_t* src, int src_w, int rows, int col0, const Weights& wh, int out_w) {
  Image out = Image::blank(out_w, rows);
  for (int y = 0; y < rows; ++y) {
    const uint8_t* in = src + static_cast<size_t>(y) * src_w * 3;
    uint8_t* o = &out.rgb[static_cast<size_t>(y) * out_w * 3];
    for (int xx = 0; xx < out_w; ++xx) {
      const int32_t* k = &wh.k[static_cast<size_t>(xx) * wh.ksize];
      const uint8_t* p = in + static_cast<size_t>(wh.first[xx] - col0) * 3;
      int ss0 = 1 << (kPrecisionBits - 1), ss1 = ss0, ss2 = ss0;
      for (int x = 0; x < wh.count[xx]; ++x) {
        ss0 += p[x * 3 + 0] * k[x];
        ss1 += p[x * 3 + 1] * k[x];
        ss2 += p[x * 3 + 2] * k[x];
      }
      o[xx * 3 + 0] = clip8(ss0);
      o[xx * 3 + 1] = clip8(ss1);
      o[xx * 3 + 2] = clip8(ss2);
    }
  }
  return out;
}

// The same pass, computed as the vertical pass on transposed blocks of kBlockRows rows: transpose the
// block's source columns [c0, c1) (block pixel (r, x) -> t(x, r)), run vertical_pass_into over t with
// the horizontal weights, transpose the (out_w, rows) result back. The integer sums are the same, so the
// pixels are; the inner loop now runs over contiguous memory and vectorizes (224 -> 64, CLIP's toy
// model input: 3x faster than horizontal_pass_ref). Blocks keep the transposed copies in L1/L2.
Image horizontal_pass(const uint8_t* src, int src_w, int rows, int col0, const Weights& wh, int out_w) {
  constexpr int kBlockRows = 32;
  Image out = Image::blank(out_w, rows);
  const int c0 = wh.first[0] - col0, c1 = wh.first[out_w - 1] + wh.count[out_w - 1] - col0;  // columns read
  const int nblocks = (rows + kBlockRows - 1) / kBlockRows;
#pragma omp parallel if (static_cast<int64_t>(rows) * out_w * wh.ksize > (1 << 18))
  {
    // + 4 bytes of slack for copy_pixel4.
    std::vector<uint8_t> t(static_cast<size_t>(c1 - c0) * kBlockRows * 3 + 4), ot(static_cast<size_t>(out_w) * kBlockRows * 3 + 4);
#pragma omp for schedule(static)
    for (int b = 0; b < nblocks; ++b) {
      const int y0 = b * kBlockRows, nr = std::min(kBlockRows, rows - y0);
      for (int x = 0; x < c1 - c0; ++x) {  // t: (c1 - c0) rows of nr pixels, each written in order
        const uint8_t* s = src + (static_cast<size_t>(y0) * src_w + c0 + x) * 3;
        uint8_t* d = &t[static_cast<size_t>(x) * nr * 3];
        for (int r = 0; r < nr; ++r, s += static_cast<size_t>(src_w) * 3, d += 3) {
          if (y0 + r == rows - 1 && c0 + x == src_w - 1) copy_pixel(s, d);  // the last byte of `src`
          else copy_pixel4(s, d);
        }
      }
      // ot: out_w rows of nr pixels; t's row 0 is source column c0 + col0.
      vertical_pass_into(t.data(), nr, c0 + col0, 0, wh, nr, out_w, ot.data(), false);
      for (int r = 0; r < nr; ++r) {  // each output row in order; the block's last pixel exactly (the
        uint8_t* d = out.pixel(0, y0 + r);  // next block may be another thread's)
        for (int xx = 0; xx < out_w; ++xx, d += 3) {
          const uint8_t* from = &ot[(static_cast<size_t>(xx) * nr + r) * 3];
          if (r == nr - 1 && xx == out_w - 1) copy_pixel(from, d);
          else copy_pixel4(from, d);
        }
      }
    }
  }
  return out;
}

// Copies the window [c0, c0 + w) x [r0, r0 + h) of `img`.
Image window(const Image& img, int c0, int r0, int w, int h) {
  Image out = Image::blank(w, h);
  for (int y = 0; y < h; ++y)
    std::copy_n(img.pixel(c0, r0 + y), static_cast<size_t>(w) * 3, out.pixel(0, y));
  return out;
}

}  // namespace

bool resize_vertical_first(int in_w, int in_h, int out_w, int out_h, PassOrder order) {
  return order == PassOrder::PILLOW && out_h < in_h &&
         static_cast<int64_t>(in_h) - out_h > 2 * (static_cast<int64_t>(in_w) - out_w);
}

namespace {

using HorizontalPass = Image (*)(const uint8_t* src, int src_w, int rows, int col0, const Weights& wh, int out_w);

Image resize_region(const Image& img, int out_w, int out_h, int x0, int y0, int w, int h, PassOrder order,
                    HorizontalPass horizontal) {
  VL_CHECK(img.width > 0 && img.height > 0 && static_cast<size_t>(img.width) * img.height * 3 == img.rgb.size(),
           "resize_bicubic: bad input image ", img.width, " x ", img.height, " with ", img.rgb.size(), " bytes");
  VL_CHECK(out_w > 0 && out_h > 0, "resize_bicubic: output size must be positive, got ", out_w, " x ", out_h);
  VL_CHECK(w > 0 && h > 0 && x0 >= 0 && y0 >= 0 && x0 + w <= out_w && y0 + h <= out_h,
           "resize_bicubic_region: window (", x0, ", ", y0, ") ", w, " x ", h, " is not inside ", out_w, " x ",
           out_h);
  const bool need_h = out_w != img.width, need_v = out_h != img.height;
  if (!need_h && !need_v) return window(img, x0, y0, w, h);
  if (!need_h)
    return vertical_pass(img.rgb.data(), img.width, 0, x0, cached_bicubic_weights(img.height, out_h, y0, h), w, h);
  if (!need_v)
    return horizontal(img.pixel(0, y0), img.width, h, 0, cached_bicubic_weights(img.width, out_w, x0, w), w);

  Weights wh = cached_bicubic_weights(img.width, out_w, x0, w);
  Weights wv = cached_bicubic_weights(img.height, out_h, y0, h);
  if (resize_vertical_first(img.width, img.height, out_w, out_h, order)) {
    // Vertical over the source columns the horizontal pass reads, then horizontal.
    int col0 = wh.first[0], col1 = wh.first[w - 1] + wh.count[w - 1];
    Image temp = vertical_pass(img.rgb.data(), img.width, 0, col0, wv, col1 - col0, h);
    return horizontal(temp.rgb.data(), temp.width, h, col0, wh, w);
  }
  // Horizontal over the source rows the vertical pass reads (Pillow's ybox_first..ybox_last), then vertical.
  int row0 = wv.first[0], row1 = wv.first[h - 1] + wv.count[h - 1];
  Image temp = horizontal(img.pixel(0, row0), img.width, row1 - row0, 0, wh, w);
  return vertical_pass(temp.rgb.data(), temp.width, row0, 0, wv, w, h);
}

}  // namespace

Image resize_bicubic_region(const Image& img, int out_w, int out_h, int x0, int y0, int w, int h, PassOrder order) {
  return resize_region(img, out_w, out_h, x0, y0, w, h, order, horizontal_pass);
}

Image resize_bicubic_region_ref(const Image& img, int out_w, int out_h, int x0, int y0, int w, int h,
                                PassOrder order) {
  return resize_region(img, out_w, out_h, x0, y0, w, h, order, horizontal_pass_ref);
}

Image resize_bicubic(const Image& img, int out_w, int out_h, PassOrder order) {
  return resize_bicubic_region(img, out_w, out_h, 0, 0, out_w, out_h, order);
}

int center_crop_offset(int size, int crop, CropRounding rounding) {
  VL_CHECK(size > 0 && crop > 0, "center_crop: sizes must be positive, got image ", size, " and crop ", crop);
  int d = size - crop;
  if (rounding == CropRounding::TORCHVISION) {
    if (d >= 0) {  // int(round(d / 2.0)), Python rounds halves to even
      int q = d / 2;
      return (d % 2 == 1 && q % 2 == 1) ? q + 1 : q;
    }
    return -((-d) / 2);  // pad left/top = (crop - size) // 2
  }
  if (d >= 0) return d / 2;  // (size - crop) // 2
  return -((-d + 1) / 2);    // image pasted at ceil((crop - size) / 2)
}

Image center_crop(const Image& img, int w, int h, CropRounding rounding) {
  VL_CHECK(img.width > 0 && img.height > 0, "center_crop: empty image");
  VL_CHECK(w > 0 && h > 0, "center_crop: crop size must be positive, got ", w, " x ", h);
  int ox = center_crop_offset(img.width, w, rounding), oy = center_crop_offset(img.height, h, rounding);
  Image out = Image::blank(w, h);
  for (int y = 0; y < h; ++y) {
    int sy = y + oy;
    if (sy < 0 || sy >= img.height) continue;
    int xa = std::max(0, -ox), xb = std::min(w, img.width - ox);  // output columns with a source pixel
    if (xa < xb)
      std::copy_n(img.pixel(xa + ox, sy), static_cast<size_t>(xb - xa) * 3, out.pixel(xa, y));
  }
  return out;
}

Tensor to_normalized_tensor(const Image& img, const std::array<float, 3>& mean, const std::array<float, 3>& std) {
  VL_CHECK(img.width > 0 && img.height > 0 && static_cast<size_t>(img.width) * img.height * 3 == img.rgb.size(),
           "to_normalized_tensor: bad image ", img.width, " x ", img.height);
  for (int c = 0; c < 3; ++c) VL_CHECK(std[c] != 0.0f, "to_normalized_tensor: std[", c, "] is 0");
  Tensor t = Tensor::empty({3, img.height, img.width}, DType::F32);
  float* o = t.data<float>();  // (3, H, W)
  const size_t np = static_cast<size_t>(img.width) * img.height;
  for (int c = 0; c < 3; ++c) {
    const float m = mean[c], s = std[c];
    float* oc = o + c * np;
    for (size_t i = 0; i < np; ++i) {
      float v = static_cast<float>(img.rgb[i * 3 + c]) / 255.0f;
      oc[i] = (v - m) / s;
    }
  }
  return t;
}

}  // namespace vislang
