// image/image.h — decoding image files into 8-bit RGB, the way PIL's `Image.open(p).convert("RGB")` does.
//
// Where it sits: image → **decode** → resize/crop (image/resize.h) → normalized tensor
// (image/clip_preprocess.h) → vision tower → projection → similarity.
//
// The goal is bit-exact agreement with PIL, because every CLIP reference pipeline (OpenAI `clip`,
// open_clip, Hugging Face) starts from a PIL image. What "the same as PIL" means per format:
//   JPEG  libjpeg-turbo with PIL's settings (ISLOW IDCT, fancy upsampling) when vislang is built with
//         VISLANG_WITH_LIBJPEG: identical pixels. Otherwise stb_image, which differs from libjpeg by up to
//         a few levels per pixel (much more on 4:2:2 chroma), see jpeg_decoder(). CMYK/YCCK JPEGs are
//         converted with PIL's "Adobe inverted" CMYK -> RGB formula (libjpeg build only).
//   PNG   stb_image; 16-bit RGB(A)/LA keep the high byte (PIL does the same). 16-bit grayscale is
//         clamped to 255 — PIL opens it as mode "I;16" and convert("RGB") clips, it does not rescale.
//   BMP   stb_image (uncompressed 1/4/8/16/24/32-bit; RLE-compressed BMPs are reported as unsupported).
//   GIF   the first frame, by our own LZW decoder that follows PIL's: palette colours of the logical
//         screen, transparent pixels keep their palette colour (convert("RGB") ignores transparency),
//         the area outside the first frame is palette index 0 (or the transparent index).
// Alpha is dropped, not composited (PIL's convert("RGB")); grey is replicated; palettes are expanded.
// EXIF orientation is NOT applied (PIL does not either unless you call ImageOps.exif_transpose).
// Note: Hugging Face transformers >= 5 composites alpha onto white in its convert_to_rgb; vislang
// follows PIL (and OpenAI/open_clip), so RGBA/LA inputs with partial transparency differ from HF v5.
//
// Every failure is a vislang::Error that names the file and the reason: missing path, a directory,
// an empty file, an unsupported format (named when recognised: WebP, TIFF, ...), a truncated or corrupt
// file (PIL raises "image file is truncated"; so do we — never a partially decoded image), or an image
// larger than PIL's decompression-bomb limit (2 * 89,478,485 pixels).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vislang {

// An 8-bit RGB image, rows top to bottom, pixels interleaved: rgb[(y * width + x) * 3 + c].
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // (H, W, 3)

  bool empty() const { return width == 0 || height == 0; }
  const uint8_t* pixel(int x, int y) const { return &rgb[(static_cast<size_t>(y) * width + x) * 3]; }
  uint8_t* pixel(int x, int y) { return &rgb[(static_cast<size_t>(y) * width + x) * 3]; }
  static Image blank(int width, int height);  // zero-filled (black)
};

// Reads and decodes a JPEG, PNG, BMP or GIF (first frame) file. Throws vislang::Error naming `path`.
Image load_image(const std::string& path);

// Decodes an in-memory file (an upload, a file read elsewhere). `name` is used in error messages.
Image decode_image(const uint8_t* data, size_t n, const std::string& name);

// The file format recognised from the first bytes: "JPEG", "PNG", "BMP", "GIF", the name of a known
// but unsupported format ("WebP", "TIFF", ...), or "" when unknown.
std::string sniff_image_format(const uint8_t* data, size_t n);

// Which JPEG decoder this build uses, e.g. "libjpeg-turbo (libjpeg API 62)" or "stb_image 2.27".
std::string jpeg_decoder();
// True when JPEG decoding is bit-exact with PIL (the libjpeg-turbo build).
bool jpeg_matches_pil();

// The largest image decoded, in pixels: PIL raises DecompressionBombError above this.
constexpr int64_t kMaxImagePixels = 2 * 89478485LL;

}  // namespace vislang
