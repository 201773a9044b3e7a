// image/png_write.cpp — PNG (and JPEG) encoding through stb_image_write (compiled here, privately:
// STB_IMAGE_WRITE_STATIC, so no other translation unit can clash with its symbols) and atomic file
// writes (temporary file in the target's directory, then rename).
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "image/png_write.h"

namespace vislang {

namespace {

void append_bytes(void* context, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(context);
  const auto* p = static_cast<const uint8_t*>(data);
  out->insert(out->end(), p, p + size);
}

}  // namespace

std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height, int channels) {
  VL_CHECK(width > 0 && height > 0, "encode_png: bad size ", width, " x ", height);
  VL_CHECK(channels >= 1 && channels <= 4, "encode_png: channels must be 1..4, got ", channels);
  VL_CHECK(pixels != nullptr, "encode_png: null pixels");
  VL_CHECK(static_cast<int64_t>(width) * channels <= INT32_MAX, "encode_png: row too long (", width, " x ",
           channels, ")");
  std::vector<uint8_t> out;
  int ok = stbi_write_png_to_func(append_bytes, &out, width, height, channels, pixels, width * channels);
  VL_CHECK(ok != 0 && !out.empty(), "encode_png: stb_image_write failed for ", width, " x ", height, " x ",
           channels);
  return out;
}

std::vector<uint8_t> encode_jpeg(const Image& img, int quality) {
  VL_CHECK(!img.empty() && img.rgb.size() == static_cast<size_t>(img.width) * img.height * 3, "encode_jpeg: bad image ",
           img.width, " x ", img.height, " with ", img.rgb.size(), " bytes");
  VL_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality must be 1..100, got ", quality);
  std::vector<uint8_t> out;
  int ok = stbi_write_jpg_to_func(append_bytes, &out, img.width, img.height, 3, img.rgb.data(), quality);
  VL_CHECK(ok != 0 && !out.empty(), "encode_jpeg: stb_image_write failed for ", img.width, " x ", img.height);
  return out;
}

void write_file_atomic(const std::string& path, const void* bytes, size_t n) {
  VL_CHECK(!path.empty(), "write_file_atomic: empty path");
  static std::atomic<uint64_t> counter{0};
  const std::string tmp = str(path, ".tmp-", ::getpid(), "-", counter.fetch_add(1));
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) VL_FAIL("cannot write '", path, "': ", std::strerror(errno));
  bool ok = n == 0 || std::fwrite(bytes, 1, n, f) == n;
  int err = ok ? 0 : errno;
  if (std::fflush(f) != 0 && ok) { ok = false; err = errno; }
  if (std::fclose(f) != 0 && ok) { ok = false; err = errno; }
  if (!ok) {
    std::remove(tmp.c_str());
    VL_FAIL("cannot write '", path, "': ", std::strerror(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    std::remove(tmp.c_str());
    VL_FAIL("cannot write '", path, "' (rename from temporary file failed): ", std::strerror(err));
  }
}

void write_png(const std::string& path, const uint8_t* pixels, int width, int height, int channels) {
  std::vector<uint8_t> png;
  try {
    png = encode_png(pixels, width, height, channels);
  } catch (const Error& e) {
    VL_FAIL("write_png '", path, "': ", e.what());
  }
  write_file_atomic(path, png.data(), png.size());
}

void write_png(const std::string& path, const Image& img) {
  VL_CHECK(!img.empty() && img.rgb.size() == static_cast<size_t>(img.width) * img.height * 3, "write_png '", path,
           "': bad image ", img.width, " x ", img.height, " with ", img.rgb.size(), " bytes");
  write_png(path, img.rgb.data(), img.width, img.height, 3);
}

}  // namespace vislang
