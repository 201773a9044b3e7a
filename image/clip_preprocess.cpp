// image/clip_preprocess.cpp — CLIP preprocessing (see image/clip_preprocess.h) and the batch helper.
#include "image/clip_preprocess.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <exception>

#include "core/error.h"

namespace vislang {

std::array<int, 2> resize_shorter_side(int width, int height, int size) {
  VL_CHECK(width > 0 && height > 0 && size > 0, "resize_shorter_side: bad sizes ", width, " x ", height,
           " -> ", size);
  int64_t short_side = std::min(width, height), long_side = std::max(width, height);
  // Python: int(size * long / short) — exact integer product, correctly rounded true division, trunc.
  double q = static_cast<double>(static_cast<int64_t>(size) * long_side) / static_cast<double>(short_side);
  VL_CHECK(q < 2147483647.0, "resize_shorter_side: ", width, " x ", height, " -> long side ", q, " is too large");
  int new_long = static_cast<int>(q);
  return width <= height ? std::array<int, 2>{size, new_long} : std::array<int, 2>{new_long, size};
}

Image resize_and_crop(const Image& img, const PreprocessConfig& cfg) {
  VL_CHECK(!img.empty(), "preprocess: empty image");
  VL_CHECK(cfg.size > 0, "preprocess: size must be positive, got ", cfg.size);
  if (cfg.mode == PreprocessConfig::Mode::SQUARE) return resize_bicubic(img, cfg.size, cfg.size, cfg.pass_order);
  auto [rw, rh] = resize_shorter_side(img.width, img.height, cfg.size);
  CropRounding r = cfg.mode == PreprocessConfig::Mode::OPENAI ? CropRounding::TORCHVISION : CropRounding::HF;
  // The crop never exceeds the resized image (its short side is `size`), so it is a window of the
  // resize, and only that window is computed.
  int x0 = center_crop_offset(rw, cfg.size, r), y0 = center_crop_offset(rh, cfg.size, r);
  return resize_bicubic_region(img, rw, rh, x0, y0, cfg.size, cfg.size, cfg.pass_order);
}

Tensor preprocess(const Image& img, const PreprocessConfig& cfg) {
  return to_normalized_tensor(resize_and_crop(img, cfg), cfg.mean, cfg.std);
}

std::vector<PreprocessResult> preprocess_files(const std::vector<std::string>& paths, const PreprocessConfig& cfg,
                                               int num_threads) {
  std::vector<PreprocessResult> results(paths.size());
  const int64_t n = static_cast<int64_t>(paths.size());
  if (num_threads <= 0) num_threads = omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
  for (int64_t i = 0; i < n; ++i) {
    PreprocessResult& r = results[i];
    r.path = paths[i];
    try {
      r.pixels = preprocess(load_image(paths[i]), cfg);
      r.ok = true;
    } catch (const std::exception& e) {  // vislang::Error, or bad_alloc on a huge image
      r.ok = false;
      r.error = e.what();
    }
  }
  return results;
}

Tensor stack_ok(const std::vector<PreprocessResult>& results, std::vector<size_t>* index) {
  std::vector<size_t> ok;
  for (size_t i = 0; i < results.size(); ++i)
    if (results[i].ok) ok.push_back(i);
  VL_CHECK(!ok.empty(), "stack_ok: none of the ", results.size(), " images could be preprocessed",
           results.empty() ? "" : str(" (first error: ", results[0].error, ")"));
  const Shape& s = results[ok[0]].pixels.shape();
  Tensor out = Tensor::empty({static_cast<int64_t>(ok.size()), s[0], s[1], s[2]}, DType::F32);
  const size_t per = static_cast<size_t>(shape_numel(s));
  for (size_t j = 0; j < ok.size(); ++j) {
    const Tensor& p = results[ok[j]].pixels;
    VL_CHECK(p.shape() == s && p.dtype() == DType::F32 && p.is_contiguous(), "stack_ok: ", results[ok[j]].path,
             " has ", p.describe(), ", expected f32 ", shape_str(s));
    std::memcpy(out.data<float>() + j * per, p.data<float>(), per * sizeof(float));
  }
  if (index) *index = ok;
  return out;
}

}  // namespace vislang
