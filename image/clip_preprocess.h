// image/clip_preprocess.h — CLIP image preprocessing: shorter side -> `size` (bicubic), center crop
// size x size, /255, normalize with CLIP's mean/std. Output f32 (3, size, size), ready for the vision tower.
//
// Where it sits: image file → load_image (image/image.h) → **preprocess** → vision tower → projection.
//
// The two reference pipelines it reproduces, for an RGB (or greyscale) PIL image:
//   OPENAI  clip.load(...)[1] / open_clip's OpenAI preset: torchvision Resize(size, BICUBIC) on the PIL
//           image, CenterCrop(size), ToTensor, Normalize. New size: short side = size, long side =
//           int(size * long / short) (torchvision _compute_resized_output_size: truncation). Crop offset
//           int(round(d / 2)) with round-half-to-even.
//   HF      transformers CLIPImageProcessor with the PIL backend (CLIPImageProcessorPil in transformers
//           >= 5, the slow CLIPImageProcessor before): the same resize size rule
//           (get_resize_output_image_size: int(size * long / short)), PIL bicubic, crop offset d // 2.
// The two differ only in the crop offset when (resized long side - size) is 3 mod 4, e.g. 640x427 ->
// 335x224: OpenAI crops at x = 56, HF at x = 55.
// Not reproduced (documented in image/image.h): OpenAI/open_clip resize *before* converting to RGB, so
// palette ("P") images are resized with NEAREST and RGBA ones in premultiplied alpha; transformers >= 5
// composites alpha onto white. For RGB and greyscale inputs all of them equal what we compute.
// transformers >= 5's default CLIPImageProcessor (torchvision backend) resizes a uint8 tensor with
// torch's antialiased bicubic, not PIL; see tests/test_image.cpp for the measured difference.
//
// Mode::SQUARE is BLIP / BLIP-2's preprocessing (HF BlipImageProcessor with the PIL backend,
// BlipImageProcessorPil in transformers >= 5; LAVIS's blip_image_eval): PIL bicubic resize straight to
// size x size — no crop, the aspect ratio is not kept — then the same /255 and mean/std (the
// OPENAI_CLIP values in blip2-itm-vit-g's preprocessor_config.json). HF's float64 rescale rounded to
// float32 equals the float32 x / 255 here for all 256 levels, so the tensors are bit-identical
// (tests/test_blip2.cpp, fixture from tools/reference/make_blip2_fixtures.py).
#pragma once
#include <array>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "image/image.h"
#include "image/resize.h"

namespace vislang {

struct PreprocessConfig {
  // OPENAI / HF: CLIP's resize of the shorter side + center crop (crop offsets differ, see above);
  // SQUARE: BLIP-2's resize to size x size, no crop.
  enum class Mode { OPENAI, HF, SQUARE };
  int size = 224;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
  Mode mode = Mode::OPENAI;
  // Pillow's resize pass order (image/resize.h): PILLOW = Pillow >= 13; HORIZONTAL_FIRST = Pillow <= 12.
  // Only images more than ~2x taller than wide can differ (by a few levels).
  PassOrder pass_order = PassOrder::PILLOW;
};

// (width, height) the shorter side is resized to: short -> size, long -> int(size * long / short).
// Identical in torchvision and transformers; computed as Python does (exact product, one rounding in
// the true division, truncation).
std::array<int, 2> resize_shorter_side(int width, int height, int size);

// Resize + center crop (Mode::SQUARE: resize only), uint8 (size x size RGB): the image the model sees
// before normalization.
Image resize_and_crop(const Image& img, const PreprocessConfig& cfg);

// f32 (3, size, size): resize_and_crop + to_normalized_tensor.
Tensor preprocess(const Image& img, const PreprocessConfig& cfg = {});

// One file of a batch: ok with `pixels`, or not ok with `error` (the vislang::Error message).
struct PreprocessResult {
  std::string path;
  bool ok = false;
  std::string error;
  Tensor pixels;  // f32 (3, size, size) when ok
};

// Loads and preprocesses every path in parallel (OpenMP; num_threads <= 0: OpenMP's default). Never
// throws for a bad file: its entry has ok = false and the reason, and the others are still processed.
// Results are in the order of `paths`.
std::vector<PreprocessResult> preprocess_files(const std::vector<std::string>& paths,
                                               const PreprocessConfig& cfg = {}, int num_threads = 0);

// Stacks the ok results into f32 (N_ok, 3, size, size); `index` (if given) receives their positions in
// `results`. Throws when none is ok.
Tensor stack_ok(const std::vector<PreprocessResult>& results, std::vector<size_t>* index = nullptr);

}  // namespace vislang
