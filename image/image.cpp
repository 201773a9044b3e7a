// image/image.cpp — load_image / decode_image: file reading, format sniffing, errors, and the PNG/BMP
// (and fallback JPEG) decoding through stb_image, with PIL's conversions to RGB. Well-formed 8-bit PNGs
// take a faster path first (image/png.cpp); every other PNG, and every error, comes from here.
//
// stb_image is compiled here, privately (STB_IMAGE_STATIC), so another translation unit that also
// includes stb_image.h with STB_IMAGE_IMPLEMENTATION cannot clash with it.
//
// Where stb alone would disagree with PIL, we check or repair first:
//   - BMP: stb reads past the end of a truncated file as zeros; we compute the size the pixel array
//     needs and report a truncated file as PIL does.
//   - PNG: stb rejects a file whose IEND chunk (or the zlib checksum at the end of the last IDAT) is
//     missing, while PIL decodes it because all pixel rows are there. When stb fails on a PNG that ends
//     early we inflate the IDAT data with zlib: if every row is present we rebuild the chunk list with an
//     IEND and decode that (PIL's answer); otherwise it is truncated (PIL: "image file is truncated").
//   - 16-bit greyscale PNG: PIL's "I;16" -> RGB clips at 255; stb would keep the high byte.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_JPEG
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#include <stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "image/codecs.h"
#include "image/image.h"

namespace vislang {

Image Image::blank(int width, int height) {
  VL_CHECK(width >= 0 && height >= 0, "Image::blank: negative size ", width, " x ", height);
  Image im;
  im.width = width;
  im.height = height;
  im.rgb.assign(static_cast<size_t>(width) * height * 3, 0);
  return im;
}

std::string sniff_image_format(const uint8_t* d, size_t n) {
  auto at = [&](size_t off, const char* s, size_t len) { return n >= off + len && std::memcmp(d + off, s, len) == 0; };
  if (at(0, "\xFF\xD8\xFF", 3)) return "JPEG";
  if (at(0, "\x89PNG\r\n\x1a\n", 8)) return "PNG";
  if (at(0, "GIF87a", 6) || at(0, "GIF89a", 6)) return "GIF";
  if (at(0, "BM", 2)) return "BMP";
  // Known but unsupported: named in the error so the user knows what to convert.
  if (at(0, "RIFF", 4) && at(8, "WEBP", 4)) return "WebP";
  if (at(0, "II*\0", 4) || at(0, "MM\0*", 4)) return "TIFF";
  if (at(4, "ftypheic", 8) || at(4, "ftypheix", 8) || at(4, "ftypmif1", 8)) return "HEIC";
  if (at(4, "ftypavif", 8)) return "AVIF";
  if (at(0, "\0\0\1\0", 4)) return "ICO";
  if (at(0, "8BPS", 4)) return "PSD";
  if (at(0, "\xFF\x0A", 2) || at(0, "\0\0\0\x0CJXL ", 8)) return "JPEG XL";
  if (at(0, "%PDF", 4)) return "PDF";
  if (n >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7') return "PNM";
  return "";
}

std::string jpeg_decoder() {
  if (detail::have_libjpeg()) return detail::libjpeg_version();
  return str("stb_image ", 2, ".", 27);
}
bool jpeg_matches_pil() { return detail::have_libjpeg(); }

namespace {

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}
uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

std::string size_error(int64_t w, int64_t h) {
  return str("image too large: ", w, " x ", h, " pixels exceeds the limit of ", kMaxImagePixels,
             " (PIL's decompression-bomb limit)");
}

// stb output with `channels` interleaved components (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) -> RGB.
template <typename T>
void to_rgb(const T* src, int w, int h, int channels, Image& out, bool clamp16) {
  out.width = w;
  out.height = h;
  size_t np = static_cast<size_t>(w) * h;
  out.rgb.resize(np * 3);
  for (size_t i = 0; i < np; ++i) {
    const T* s = src + i * channels;
    uint8_t* o = &out.rgb[i * 3];
    if (channels <= 2) {
      unsigned v = s[0];
      uint8_t g = clamp16 ? static_cast<uint8_t>(v > 255 ? 255 : v) : static_cast<uint8_t>(v);
      o[0] = o[1] = o[2] = g;
    } else {
      o[0] = static_cast<uint8_t>(s[0]);
      o[1] = static_cast<uint8_t>(s[1]);
      o[2] = static_cast<uint8_t>(s[2]);
    }
  }
}

std::string stb_reason() {
  const char* r = stbi_failure_reason();
  return (r && *r) ? r : "unknown error";
}

std::string decode_stb(const uint8_t* d, size_t n, Image& out, const char* fmt) {
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(d, static_cast<int>(n), &w, &h, &comp))
    return str("corrupt ", fmt, " header: ", stb_reason());
  if (static_cast<int64_t>(w) * h > kMaxImagePixels) return size_error(w, h);
  int channels = 0;
  stbi_uc* px = stbi_load_from_memory(d, static_cast<int>(n), &w, &h, &channels, 0);
  if (!px) return str("corrupt ", fmt, ": ", stb_reason());
  std::unique_ptr<stbi_uc, void (*)(void*)> guard(px, stbi_image_free);
  to_rgb(px, w, h, channels, out, false);
  return "";
}

// ---- PNG ----------------------------------------------------------------------------------------

// Bytes of filtered scanline data a PNG needs (all Adam7 passes when interlaced).
uint64_t png_raw_size(uint32_t w, uint32_t h, int depth, int color_type, int interlace) {
  int samples = color_type == 0 ? 1 : color_type == 2 ? 3 : color_type == 3 ? 1 : color_type == 4 ? 2 : 4;
  auto row = [&](uint64_t pw) { return 1 + (pw * samples * depth + 7) / 8; };
  if (!interlace) return uint64_t{h} * row(w);
  static const int xo[7] = {0, 4, 0, 2, 0, 1, 0}, yo[7] = {0, 0, 4, 0, 2, 0, 1};
  static const int xs[7] = {8, 8, 4, 4, 2, 2, 1}, ys[7] = {8, 8, 8, 4, 4, 2, 2};
  uint64_t total = 0;
  for (int p = 0; p < 7; ++p) {
    uint64_t pw = (w > static_cast<uint32_t>(xo[p])) ? (w - xo[p] + xs[p] - 1) / xs[p] : 0;
    uint64_t ph = (h > static_cast<uint32_t>(yo[p])) ? (h - yo[p] + ys[p] - 1) / ys[p] : 0;
    if (pw && ph) total += ph * row(pw);
  }
  return total;
}

// When a PNG ends before IEND: "" and `repaired` = the complete chunks (the last IDAT cut to the bytes
// present) + IEND, if zlib can inflate every scanline from the IDAT data present; else the reason.
std::string png_repair(const uint8_t* d, size_t n, std::vector<uint8_t>& repaired) {
  if (n < 33 || std::memcmp(d + 12, "IHDR", 4) != 0) return "truncated: the PNG header is incomplete";
  uint32_t w = be32(d + 16), h = be32(d + 20);
  int depth = d[24], color_type = d[25], interlace = d[28];
  uint64_t need = png_raw_size(w, h, depth, color_type, interlace);
  repaired.assign(d, d + 8);
  std::vector<uint8_t> idat;
  size_t p = 8;
  while (p + 8 <= n) {
    uint32_t len = be32(d + p);
    const uint8_t* type = d + p + 4;
    if (std::memcmp(type, "IEND", 4) == 0) return "corrupt PNG";  // complete file: stb's error stands
    size_t avail = n - (p + 8);
    bool cut = avail < static_cast<size_t>(len) + 4;  // data + CRC
    bool is_idat = std::memcmp(type, "IDAT", 4) == 0;
    size_t take = cut ? std::min<size_t>(avail, len) : len;
    if (is_idat) idat.insert(idat.end(), d + p + 8, d + p + 8 + take);
    if (cut && !is_idat) break;  // a cut ancillary chunk is dropped
    uint8_t hdr[8] = {uint8_t(take >> 24), uint8_t(take >> 16), uint8_t(take >> 8), uint8_t(take),
                      type[0], type[1], type[2], type[3]};
    repaired.insert(repaired.end(), hdr, hdr + 8);
    repaired.insert(repaired.end(), d + p + 8, d + p + 8 + take);
    const uint8_t crc[4] = {0, 0, 0, 0};  // stb does not check CRCs
    repaired.insert(repaired.end(), crc, crc + 4);
    if (cut) break;
    p += 12 + len;
  }
  // Inflate what is there and count the bytes we get.
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) return "truncated PNG (zlib init failed)";
  std::vector<uint8_t> sink(1 << 16);
  uint64_t got = 0;
  zs.next_in = idat.data();
  zs.avail_in = static_cast<uInt>(idat.size());
  int rc = Z_OK;
  while (got < need) {
    zs.next_out = sink.data();
    zs.avail_out = static_cast<uInt>(sink.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    got += sink.size() - zs.avail_out;
    if (rc == Z_STREAM_END || rc == Z_BUF_ERROR || rc < 0) break;
  }
  inflateEnd(&zs);
  if (rc < 0 && rc != Z_BUF_ERROR) return "corrupt PNG: bad compressed data";
  if (got < need)
    return str("truncated: the PNG ends before its pixel data (", got, " of ", need,
               " bytes of scanlines; PIL: \"image file is truncated\")");
  const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
  repaired.insert(repaired.end(), iend, iend + 12);
  return "";
}

std::string decode_png(const uint8_t* d, size_t n, Image& out) {
  if (detail::decode_png_fast(d, n, out)) return "";  // the common case; see image/png.cpp
  return detail::decode_png_stb(d, n, out);
}

}  // namespace

std::string detail::decode_png_stb(const uint8_t* d, size_t n, Image& out) {
  if (n < 33 || std::memcmp(d + 12, "IHDR", 4) != 0) return "corrupt PNG: no IHDR chunk";
  uint32_t w = be32(d + 16), h = be32(d + 20);
  int depth = d[24], color_type = d[25];
  if (static_cast<uint64_t>(w) * h > static_cast<uint64_t>(kMaxImagePixels)) return size_error(w, h);
  auto attempt = [&](const uint8_t* p, size_t len) -> std::string {
    if (depth == 16 && color_type == 0) {  // PIL: mode "I;16", convert("RGB") clips at 255
      int ww, hh, ch;
      stbi_us* px = stbi_load_16_from_memory(p, static_cast<int>(len), &ww, &hh, &ch, 0);
      if (!px) return stb_reason();
      std::unique_ptr<stbi_us, void (*)(void*)> guard(px, stbi_image_free);
      to_rgb(px, ww, hh, ch, out, true);
      return "";
    }
    int ww, hh, ch;
    stbi_uc* px = stbi_load_from_memory(p, static_cast<int>(len), &ww, &hh, &ch, 0);
    if (!px) return stb_reason();
    std::unique_ptr<stbi_uc, void (*)(void*)> guard(px, stbi_image_free);
    to_rgb(px, ww, hh, ch, out, false);  // 16-bit RGB(A)/LA: stb keeps the high byte, like PIL
    return "";
  };
  std::string err = attempt(d, n);
  if (err.empty()) return "";
  std::vector<uint8_t> repaired;
  std::string why = png_repair(d, n, repaired);
  if (why == "corrupt PNG") return "corrupt PNG: " + err;
  if (!why.empty()) return why;
  std::string err2 = attempt(repaired.data(), repaired.size());
  if (err2.empty()) return "";
  return "truncated: the PNG ends early (" + err2 + ")";
}

namespace {

// ---- BMP ----------------------------------------------------------------------------------------

std::string decode_bmp(const uint8_t* d, size_t n, Image& out) {
  if (n < 26) return "truncated: the BMP header is incomplete";
  uint32_t offset = le32(d + 10), hsize = le32(d + 14);
  int64_t w, h;
  int bpp;
  uint32_t compression = 0;
  if (hsize == 12) {
    w = le16(d + 18);
    h = le16(d + 20);
    bpp = le16(d + 24);
  } else {
    if (n < 34) return "truncated: the BMP header is incomplete";
    w = static_cast<int32_t>(le32(d + 18));
    h = static_cast<int32_t>(le32(d + 22));
    bpp = le16(d + 28);
    compression = le32(d + 30);
  }
  if (h < 0) h = -h;
  if (w <= 0 || h <= 0) return str("corrupt BMP: size ", w, " x ", h);
  if (w * h > kMaxImagePixels) return size_error(w, h);
  if (compression == 1 || compression == 2) return "unsupported: RLE-compressed BMP";
  if (compression == 4 || compression == 5) return "unsupported: BMP with embedded JPEG/PNG data";
  if (compression == 0 || compression == 3 || compression == 6) {
    // PIL reads whole rows of the pixel array; the padding after the last row may be missing.
    uint64_t stride = ((static_cast<uint64_t>(w) * bpp + 31) / 32) * 4;
    uint64_t need = uint64_t{offset} + stride * (h - 1) + (static_cast<uint64_t>(w) * bpp + 7) / 8;
    if (n < need)
      return str("truncated: the BMP pixel array needs ", need, " bytes, the file has ", n,
                 " (PIL: \"image file is truncated\")");
  }
  return decode_stb(d, n, out, "BMP");
}

// ---- JPEG fallback ------------------------------------------------------------------------------

std::string decode_jpeg(const uint8_t* d, size_t n, Image& out) {
  if (detail::have_libjpeg()) return detail::decode_jpeg_libjpeg(d, n, out);
  std::string why = detail::jpeg_structure_error(d, n);
  if (!why.empty()) return why;
  return decode_stb(d, n, out, "JPEG");
}

[[noreturn]] void fail(const char* fn, const std::string& name, const std::string& why) {
  VL_FAIL(fn, ": '", name, "': ", why);
}

Image decode_named(const uint8_t* data, size_t n, const std::string& name, const char* fn) {
  if (n == 0) fail(fn, name, "empty file (0 bytes)");
  if (n > static_cast<size_t>(INT32_MAX)) fail(fn, name, "file too large (over 2 GiB)");
  std::string fmt = sniff_image_format(data, n);
  Image out;
  std::string err;
  if (fmt == "JPEG") err = decode_jpeg(data, n, out);
  else if (fmt == "PNG") err = decode_png(data, n, out);
  else if (fmt == "BMP") err = decode_bmp(data, n, out);
  else if (fmt == "GIF") err = detail::decode_gif_first_frame(data, n, out);
  else if (fmt.empty())
    fail(fn, name, "unsupported or unrecognised image format (not JPEG, PNG, BMP or GIF)");
  else
    fail(fn, name, str("unsupported image format (", fmt, "); supported: JPEG, PNG, BMP, GIF"));
  if (!err.empty()) VL_FAIL(fn, ": '", name, "' (", fmt, "): ", err);
  if (out.width <= 0 || out.height <= 0) fail(fn, name, "decoded an empty image");
  return out;
}

}  // namespace

Image decode_image(const uint8_t* data, size_t n, const std::string& name) {
  return decode_named(data, n, name, "decode_image");
}

Image load_image(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    int e = errno;
    fail("load_image", path, str("cannot open: ", std::strerror(e)));
  }
  if (S_ISDIR(st.st_mode)) fail("load_image", path, "is a directory, not an image file");
  if (!S_ISREG(st.st_mode)) fail("load_image", path, "not a regular file");
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    int e = errno;
    fail("load_image", path, str("cannot open: ", std::strerror(e)));
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  if (!bytes.empty() && !f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(bytes.size())))
    fail("load_image", path, "read error");
  return decode_named(bytes.data(), bytes.size(), path, "load_image");
}

}  // namespace vislang
