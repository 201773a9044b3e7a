// image/png_write.h — saving 8-bit images as PNG (stb_image_write), the inverse of load_image for PNG;
// and JPEG bytes (lossy, for generated test and benchmark folders).
//
// Where it sits: anything that produces pixels (datasets/toy_world.h, image/plot.h, examples) →
// **write_png** → a file that load_image (image/image.h) reads back bit for bit.
//
// Writes are atomic: the PNG goes to a temporary file next to `path`, which is renamed over `path` only
// once complete, so a reader never sees a half-written file and a failed write leaves the old file.
// Every failure is a vislang::Error that names the path (and the OS reason where there is one).
// Thread-safe: different threads may write different files concurrently.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "image/image.h"

namespace vislang {

// Encodes `pixels` (u8 (height, width, channels), rows top to bottom, tightly packed) as PNG bytes.
// channels: 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
std::vector<uint8_t> encode_png(const uint8_t* pixels, int width, int height, int channels);

// Encodes an RGB image as baseline JPEG bytes (stb_image_write: 4:2:0 chroma up to quality 90, 4:4:4
// above), quality 1..100.
std::vector<uint8_t> encode_jpeg(const Image& img, int quality);

// encode_png + atomic write to `path`.
void write_png(const std::string& path, const uint8_t* pixels, int width, int height, int channels);
void write_png(const std::string& path, const Image& img);  // RGB

// Writes `bytes` to `path` atomically (temporary file in the same directory + rename). Used by
// write_png; exposed for other small generated files (CSV, JSON).
void write_file_atomic(const std::string& path, const void* bytes, size_t n);

}  // namespace vislang
