// image/resize.h — PIL-exact bicubic resize, center crop, and the uint8 -> normalized f32 tensor step.
//
// Where it sits: image (image/image.h) → **resize → center crop → to_normalized_tensor** → vision tower.
// image/clip_preprocess.h strings these together the way OpenAI CLIP / open_clip / Hugging Face do.
//
// resize_bicubic reproduces Pillow's `Image.resize(size, Image.BICUBIC)` on an RGB image bit for bit
// (libImaging/Resample.c, ImagingResample): two separable passes with a uint8 image in between; a pass
// is skipped when that dimension does not change. The ORDER of the passes depends on the Pillow
// version, and it changes pixels (the intermediate is rounded):
//   Pillow <= 12: always horizontal first (over only the source rows the vertical pass reads);
//   Pillow >= 13 (PR #9549): vertical first when out_h < in_h and (in_h - out_h) > 2 * (in_w - out_w),
//                else horizontal first. Measured on Pillow 13.0.0: the rule matched 3,900 random sizes.
// For CLIP's aspect-preserving downscale this only matters for images more than about 2x taller than
// wide. PassOrder::PILLOW (default) follows Pillow >= 13; HORIZONTAL_FIRST reproduces older Pillow.
// Other details: the cubic kernel has a = -0.5 and support 2 * max(1, in/out) (antialiasing when
// downscaling); per-output-pixel weights are normalised to sum 1 in double, then rounded to fixed point
// with 22 fraction bits (PRECISION_BITS = 32 - 8 - 2); sums start at 1/2 (rounding) and are clipped to
// 0..255 after each pass. Double arithmetic is kept un-fused (no FMA contraction) so the weights are the
// same doubles PIL computes on x86-64.
#pragma once
#include <array>

#include "core/tensor.h"
#include "image/image.h"

namespace vislang {

enum class PassOrder {
  PILLOW,            // Pillow >= 13: vertical first when the height shrinks much more than the width
  HORIZONTAL_FIRST,  // Pillow <= 12
};
// True when PassOrder `order` runs the vertical pass first for this resize.
bool resize_vertical_first(int in_w, int in_h, int out_w, int out_h, PassOrder order);

// Pillow's Image.resize((out_w, out_h), Image.BICUBIC) for an RGB image.
Image resize_bicubic(const Image& img, int out_w, int out_h, PassOrder order = PassOrder::PILLOW);

// The window [x0, x0 + w) x [y0, y0 + h) of resize_bicubic(img, out_w, out_h), computing only that
// window (each output pixel of Pillow's resize depends only on its own index, so this is exact).
// preprocess() uses it to resize-and-crop without building the full resized image.
Image resize_bicubic_region(const Image& img, int out_w, int out_h, int x0, int y0, int w, int h,
                            PassOrder order = PassOrder::PILLOW);

// resize_bicubic_region with the horizontal pass as Pillow's plain loops (the default one runs the same
// integer sums on transposed blocks, which vectorizes): the reference it is tested against
// (tests/test_image.cpp). Same pixels, about 3x slower.
Image resize_bicubic_region_ref(const Image& img, int out_w, int out_h, int x0, int y0, int w, int h,
                                PassOrder order = PassOrder::PILLOW);

// How a center crop places its window when (image size - crop size) is odd, and where a crop larger
// than the image puts the zero padding:
//   TORCHVISION: torchvision.transforms.CenterCrop (OpenAI CLIP, open_clip):
//                offset = int(round(d / 2)) with Python's round-half-to-even, d = size - crop >= 0
//                (d = 1 -> 0, 3 -> 2, 5 -> 2, 7 -> 4); a too-small image is padded with floor(-d/2)
//                zeros before it.
//   HF:          transformers' image_transforms.center_crop (CLIPImageProcessor, PIL backend):
//                offset = d // 2 (floor: 1 -> 0, 3 -> 1, 5 -> 2); padding before = ceil(-d/2).
//                (transformers >= 5's default torchvision-backend processor floors the offset too, but
//                pads like torchvision; padding never happens in CLIP preprocessing.)
enum class CropRounding { TORCHVISION, HF };

// Source index of output index 0 along one dimension: output[i] = input[i + offset]; negative when the
// crop is larger than the image (that many zero pixels come first).
int center_crop_offset(int size, int crop, CropRounding rounding);

// A (w x h) center crop; where the window leaves the image the pixels are 0 (black), like both
// references' zero padding.
Image center_crop(const Image& img, int w, int h, CropRounding rounding = CropRounding::TORCHVISION);

// f32 (3, H, W): (x / 255 - mean[c]) / std[c], with torchvision's float32 arithmetic
// (ToTensor divides by 255 in f32, Normalize subtracts then divides in f32).
Tensor to_normalized_tensor(const Image& img, const std::array<float, 3>& mean, const std::array<float, 3>& std);

}  // namespace vislang
