// image/png.cpp — the fast path for the common PNG: 8 bits per sample, not interlaced, greyscale, RGB,
// palette, grey+alpha or RGBA, every chunk present and intact. libdeflate (zlib in builds without it)
// inflates the IDAT stream straight into a reused scanline buffer, the five PNG filters are undone in
// place, and each row is converted to RGB into the output image — one pass, no intermediate image
// (stb_image inflates with its own, slower decoder, unfilters into a second buffer and leaves the RGB
// conversion to a third pass).
//
// Where it sits: decode_image (image/image.cpp) → **decode_png_fast** → (declined) the stb_image path.
//
// Same pixels as the stb_image path by construction: decoding a well-formed PNG has exactly one answer
// (inflate + unfilter are lossless, and the conversions are PIL's: grey replicated, alpha dropped,
// palette expanded). Anything else — 16-bit or 1/2/4-bit samples, Adam7 interlacing, a tRNS chunk, an
// unknown critical chunk, a chunk cut short, a missing IEND, a deflate stream that fails, ends early or
// carries extra bytes, a bad filter type or a palette index past the palette — is declined, and the
// stb_image path (with its PIL-style error messages and truncated-file repair) decides, exactly as
// before this fast path existed. tests/test_image.cpp checks both paths against each other and PIL.
#include <zlib.h>
#ifdef VISLANG_WITH_LIBDEFLATE
#include <libdeflate.h>
#endif

#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "image/codecs.h"

namespace vislang::detail {

namespace {

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// row[i] += prev[i]: the Up filter. Kept out of line: inlined into the decoder, GCC (12) no longer
// vectorizes it.
[[gnu::noinline]] void add_rows(uint8_t* __restrict row, const uint8_t* __restrict prev, size_t n) {
  for (size_t i = 0; i < n; ++i) row[i] = uint8_t(row[i] + prev[i]);
}

// Undoes the filter of one scanline in place. `row`: the filtered bytes (after the filter byte),
// `prev`: the previous unfiltered scanline (all zero for the first row; never overlapping `row`),
// n = width * BPP bytes.
// Returns false for a filter type other than 0..4. Sub, Average and Paeth depend on the pixel to the
// left; keeping it in registers (BPP independent chains) rather than re-reading what was just stored
// makes these loops several times faster than the byte-at-a-time form.
template <int BPP>
bool unfilter_row(int filter, uint8_t* __restrict row, const uint8_t* __restrict prev, size_t n) {
  int left[BPP] = {}, upper_left[BPP] = {};  // the unfiltered pixel to the left and its upper neighbour
  switch (filter) {
    case 0:  // None
      return true;
    case 1:  // Sub: + left
      for (size_t i = 0; i < n; i += BPP)
#pragma GCC unroll 4
        for (int c = 0; c < BPP; ++c) row[i + c] = uint8_t(left[c] = uint8_t(row[i + c] + left[c]));
      return true;
    case 2:  // Up: + above
      add_rows(row, prev, n);
      return true;
    case 3:  // Average: + floor((left + above) / 2)
      for (size_t i = 0; i < n; i += BPP)
#pragma GCC unroll 4
        for (int c = 0; c < BPP; ++c) row[i + c] = uint8_t(left[c] = uint8_t(row[i + c] + ((left[c] + prev[i + c]) >> 1)));
      return true;
    case 4:  // Paeth: + whichever of left, above, upper-left is closest to left + above - upper-left
      for (size_t i = 0; i < n; i += BPP)
#pragma GCC unroll 4
        for (int c = 0; c < BPP; ++c) {
          const int a = left[c], b = prev[i + c], cc = upper_left[c];
          const int pa = std::abs(b - cc), pb = std::abs(a - cc), pc = std::abs(a + b - 2 * cc);
          const int pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : cc);
          row[i + c] = uint8_t(left[c] = uint8_t(row[i + c] + pred));
          upper_left[c] = b;
        }
      return true;
    default:
      return false;
  }
}

bool unfilter_row(int filter, uint8_t* row, const uint8_t* prev, size_t n, size_t bpp) {
  switch (bpp) {
    case 1: return unfilter_row<1>(filter, row, prev, n);
    case 2: return unfilter_row<2>(filter, row, prev, n);
    case 3: return unfilter_row<3>(filter, row, prev, n);
    default: return unfilter_row<4>(filter, row, prev, n);
  }
}

// A zlib stream header (RFC 1950) stb_image accepts: deflate, window <= 32 KiB, no preset dictionary,
// check bits valid.
bool zlib_header_ok(const uint8_t* h) {
  return (h[0] & 0x0F) == 8 && (h[0] >> 4) <= 7 && (h[1] & 0x20) == 0 && ((h[0] << 8) | h[1]) % 31 == 0;
}

using Chunks = std::vector<std::pair<const uint8_t*, size_t>>;

// Inflates the raw deflate stream held by `parts` (in order) into out[0, need). True when the stream
// ends after exactly `need` bytes with at most 4 bytes after it (the Adler-32, not checked).
bool inflate_zlib(const Chunks& parts, uint8_t* out, size_t need) {
  z_stream zs{};
  if (inflateInit2(&zs, -15) != Z_OK) return false;
  zs.next_out = out;
  zs.avail_out = uInt(need);
  int rc = Z_OK;
  size_t unused = 0;  // bytes after the end of the deflate stream
  for (const auto& [data, len] : parts) {
    if (rc == Z_STREAM_END) {
      unused += len;
      continue;
    }
    zs.next_in = const_cast<Bytef*>(data);
    zs.avail_in = uInt(len);
    while (zs.avail_in > 0 && rc == Z_OK) rc = inflate(&zs, Z_NO_FLUSH);  // Z_BUF_ERROR: output full
    unused += zs.avail_in;
    if (rc != Z_OK && rc != Z_STREAM_END) break;
  }
  inflateEnd(&zs);
  return rc == Z_STREAM_END && zs.avail_out == 0 && unused <= 4;
}

#ifdef VISLANG_WITH_LIBDEFLATE
// The same with libdeflate (one call over contiguous input: split IDATs are joined first).
bool inflate_libdeflate(const Chunks& parts, uint8_t* out, size_t need) {
  struct Free {
    void operator()(libdeflate_decompressor* d) const { libdeflate_free_decompressor(d); }
  };
  thread_local std::unique_ptr<libdeflate_decompressor, Free> dec(libdeflate_alloc_decompressor());
  if (!dec) return false;
  const uint8_t* in = parts[0].first;
  size_t in_n = parts[0].second;
  std::vector<uint8_t> joined;
  if (parts.size() > 1) {
    for (const auto& [data, len] : parts) joined.insert(joined.end(), data, data + len);
    in = joined.data();
    in_n = joined.size();
  }
  size_t in_used = 0, got = 0;
  const libdeflate_result r = libdeflate_deflate_decompress_ex(dec.get(), in, in_n, out, need, &in_used, &got);
  return r == LIBDEFLATE_SUCCESS && got == need && in_n - in_used <= 4;
}
#endif

// Per-thread scanline buffer, reused across images (a fresh 150 KB buffer per image costs page
// faults and zeroing each time); images whose scanlines exceed kKeep get a buffer of their own.
constexpr size_t kKeepScratch = size_t{8} << 20;

}  // namespace

bool decode_png_fast(const uint8_t* d, size_t n, Image& out, bool zlib_only) {
  // Signature + IHDR (13 bytes of data), as the first chunk.
  if (n < 8 + 25 || std::memcmp(d, "\x89PNG\r\n\x1a\n", 8) != 0 || be32(d + 8) != 13 ||
      std::memcmp(d + 12, "IHDR", 4) != 0)
    return false;
  const uint32_t w = be32(d + 16), h = be32(d + 20);
  const int depth = d[24], color_type = d[25], compression = d[26], filter_method = d[27], interlace = d[28];
  if (w == 0 || h == 0 || depth != 8 || compression != 0 || filter_method != 0 || interlace != 0) return false;
  size_t channels = 0;  // samples per pixel in the file
  switch (color_type) {
    case 0: channels = 1; break;  // grey
    case 2: channels = 3; break;  // RGB
    case 3: channels = 1; break;  // palette index
    case 4: channels = 2; break;  // grey + alpha
    case 6: channels = 4; break;  // RGBA
    default: return false;
  }
  if (uint64_t{w} * h > uint64_t(kMaxImagePixels)) return false;  // the stb path reports it

  // The chunks: PLTE (palette images), IDAT (the zlib stream, possibly split), IEND; other ancillary
  // chunks are skipped (as stb_image and PIL do); anything else declines.
  const uint8_t* palette = nullptr;
  size_t palette_entries = 0;
  Chunks idat;
  bool iend = false;
  for (size_t p = 8 + 25; !iend;) {
    if (n - p < 12) return false;  // chunk header + CRC cut short (no IEND)
    const size_t len = be32(d + p);
    const uint8_t* type = d + p + 4;
    if (len > n - p - 12) return false;  // chunk data cut short
    const uint8_t* data = d + p + 8;
    if (std::memcmp(type, "IDAT", 4) == 0) {
      idat.emplace_back(data, len);
    } else if (std::memcmp(type, "PLTE", 4) == 0) {
      if (palette || !idat.empty() || len == 0 || len % 3 != 0 || len > 256 * 3) return false;
      palette = data;
      palette_entries = len / 3;
    } else if (std::memcmp(type, "IEND", 4) == 0) {
      iend = true;
    } else if ((type[0] & 0x20) == 0 || std::memcmp(type, "tRNS", 4) == 0) {
      return false;  // a critical chunk we do not handle (or IHDR again), or transparency
    }
    p += 12 + len;
  }
  if (idat.empty() || (color_type == 3 && !palette)) return false;

  // Inflate the IDAT data into the scanlines: h rows of (filter byte + w * channels bytes). As raw
  // deflate after the 2-byte zlib header: stb_image does not check the Adler-32 at the end either (and
  // computing it was a sixth of the decode time). Sizes fit zlib's 32-bit counters: a chunk is < 2^31
  // bytes, the scanlines < 4 GiB within kMaxImagePixels.
  const size_t stride = size_t{w} * channels, need = size_t{h} * (stride + 1);
  thread_local std::vector<uint8_t> scratch;
  std::vector<uint8_t> own;
  std::vector<uint8_t>& raw = need <= kKeepScratch ? scratch : own;
  if (raw.size() < need) raw.resize(need);
  if (idat[0].second < 2 || !zlib_header_ok(idat[0].first)) return false;
  idat[0].first += 2;
  idat[0].second -= 2;
#ifdef VISLANG_WITH_LIBDEFLATE
  const bool inflated = zlib_only ? inflate_zlib(idat, raw.data(), need) : inflate_libdeflate(idat, raw.data(), need);
#else
  const bool inflated = inflate_zlib(idat, raw.data(), need);
#endif
  if (!inflated) return false;

  // Unfilter each row in place, then convert it to RGB.
  out.width = int(w);
  out.height = int(h);
  out.rgb.resize(size_t{w} * h * 3);
  const std::vector<uint8_t> zero_row(stride, 0);
  const uint8_t* prev = zero_row.data();
  for (uint32_t y = 0; y < h; ++y) {
    uint8_t* line = &raw[size_t{y} * (stride + 1)];
    uint8_t* row = line + 1;
    if (!unfilter_row(line[0], row, prev, stride, channels)) return false;
    prev = row;
    uint8_t* o = &out.rgb[size_t{y} * w * 3];
    switch (color_type) {
      case 2:
        std::memcpy(o, row, stride);
        break;
      case 6:
        for (uint32_t x = 0; x < w; ++x) std::memcpy(o + 3 * x, row + 4 * x, 3);
        break;
      case 0:
      case 4:
        for (uint32_t x = 0; x < w; ++x) o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = row[channels * x];
        break;
      case 3:
        for (uint32_t x = 0; x < w; ++x) {
          if (row[x] >= palette_entries) return false;  // stb and PIL disagree on these; stb's path decides
          std::memcpy(o + 3 * x, palette + 3 * size_t{row[x]}, 3);
        }
        break;
    }
  }
  return true;
}

}  // namespace vislang::detail
