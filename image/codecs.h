// image/codecs.h — internal: the per-format decoders behind decode_image() (image/image.cpp).
//
// Each decoder fills `out` (8-bit RGB) and returns "" on success, or the reason it failed
// ("truncated: ...", "corrupt: ...", "unsupported: ..."); decode_image() adds the file name.
// Not part of the public API: include image/image.h instead.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "image/image.h"

namespace vislang::detail {

// libjpeg-turbo with PIL's settings. Only available when built with VISLANG_WITH_LIBJPEG.
bool have_libjpeg();
std::string libjpeg_version();
std::string decode_jpeg_libjpeg(const uint8_t* data, size_t n, Image& out);

// Walks a JPEG's marker segments and entropy-coded data up to EOI without decoding: "" when the
// stream is complete, else why not. Used with stb_image, which silently decodes truncated files.
std::string jpeg_structure_error(const uint8_t* data, size_t n);

// PNG: decode_image tries decode_png_fast, then decode_png_stb.
// The fast path for well-formed 8-bit, non-interlaced PNGs without tRNS (image/png.cpp): true with
// `out` filled, or false — "not decoded here", never an error — and the stb_image path decides.
// zlib_only: inflate with zlib even in a build with libdeflate (so tests cover both).
bool decode_png_fast(const uint8_t* data, size_t n, Image& out, bool zlib_only = false);
// The stb_image path (image/image.cpp): every PNG stb reads, PIL's conversions, truncated-file repair,
// PIL-style errors. The reference the fast path is tested against.
std::string decode_png_stb(const uint8_t* data, size_t n, Image& out);

// First frame of a GIF, following PIL's GifImagePlugin + GifDecode.c (see image/gif.cpp).
std::string decode_gif_first_frame(const uint8_t* data, size_t n, Image& out);

// PIL's CMYK -> RGB for "Adobe inverted" JPEG CMYK (libImaging/Convert.c cmyk2rgb after the
// "CMYK;I" unpacker): shared by the libjpeg path and its test.
void cmyk_inverted_to_rgb(const uint8_t* cmyk, size_t npixels, uint8_t* rgb);

}  // namespace vislang::detail
