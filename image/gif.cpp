// image/gif.cpp — the first frame of a GIF as PIL's Image.open(p).convert("RGB") returns it.
//
// Why our own decoder: stb_image paints transparent pixels and the area outside the first frame as
// black (RGBA 0,0,0,0), while PIL keeps them as palette indices, so after convert("RGB") a transparent
// pixel has its palette colour. Matching that needs the indices, which stb does not expose.
//
// What PIL does (PIL/GifImagePlugin.py, libImaging/GifDecode.c), and we follow:
//   - canvas = logical screen, grown to contain the first frame if the frame sticks out;
//   - canvas fill = the frame's transparent index (graphic control extension) if any, else index 0
//     (the background colour index is NOT used);
//   - colours = the local colour table, else the global one; a table that is the identity grey ramp
//     (entry i == (i, i, i)) is treated as "no palette" and pixels become grey = index; with a real
//     palette, indices past its end are black;
//   - LZW as in GifDecode.c: codes up to 12 bits, "KwKwK" (code == next) allowed, a code above the
//     next free entry or a first code after CLEAR above CLEAR is corrupt; sub-blocks are read blindly
//     (a 0-length block does not end the data); decoding stops as soon as the last pixel is written;
//   - the file ending (or an END code) before the last pixel -> "image file is truncated".
#include <algorithm>
#include <array>
#include <vector>

#include "core/error.h"
#include "image/codecs.h"

namespace vislang::detail {

namespace {

constexpr int kGifBits = 12;
constexpr int kGifTable = 1 << kGifBits;

uint16_t u16le(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// True when the colour table is not the identity grey ramp (GifImageFile._is_palette_needed).
bool palette_needed(const uint8_t* p, size_t bytes) {
  for (size_t i = 0; i + 2 < bytes; i += 3)
    if (!(i / 3 == p[i] && p[i] == p[i + 1] && p[i + 1] == p[i + 2])) return true;
  return false;
}

// The LZW stream: data sub-blocks read without regard to the 0-length terminator, as PIL does.
struct BitReader {
  const uint8_t* d;
  size_t n, pos;
  int blocksize = 0;
  uint32_t bitbuffer = 0;
  int bitcount = 0;
  // Reads one code of `codesize` bits; false when the file ends first.
  bool code(int codesize, int& out) {
    while (bitcount < codesize) {
      if (blocksize > 0) {
        bitbuffer |= static_cast<uint32_t>(d[pos++]) << bitcount;
        bitcount += 8;
        blocksize--;
      } else {
        if (pos >= n) return false;
        int c = d[pos];
        if (n - pos < static_cast<size_t>(c) + 1) return false;  // PIL waits for a whole block
        blocksize = c;
        pos++;
      }
    }
    out = static_cast<int>(bitbuffer & ((1u << codesize) - 1));
    bitbuffer >>= codesize;
    bitcount -= codesize;
    return true;
  }
};

// Writes decoded indices into the frame rectangle of `canvas` (width cw), row order per GifDecode.c's
// NEWLINE macro (interlaced: passes of step 8 from 0, 8 from 4, 4 from 2, 2 from 1).
struct RowWriter {
  std::vector<uint8_t>& canvas;
  int cw, xoff, yoff, xsize, ysize;
  int x = 0, y = 0, step = 1, interlace = 0;
  bool done = false;
  void newline() {
    x = 0;
    y += step;
    while (y >= ysize) {
      switch (interlace) {
        case 1: y = 4; interlace = 2; break;
        case 2: step = 4; y = 2; interlace = 3; break;
        case 3: step = 2; y = 1; interlace = 0; break;
        default: done = true; return;
      }
    }
  }
  void put(uint8_t v) {
    canvas[static_cast<size_t>(y + yoff) * cw + xoff + x] = v;
    if (++x >= xsize) newline();
  }
};

}  // namespace

std::string decode_gif_first_frame(const uint8_t* d, size_t n, Image& out) {
  if (n < 13) return "truncated: the GIF header is incomplete";
  int width = u16le(d + 6), height = u16le(d + 8);
  uint8_t flags = d[10];
  size_t pos = 13;
  const uint8_t* global = nullptr;
  size_t global_bytes = 0;
  if (flags & 0x80) {
    global_bytes = size_t{3} << ((flags & 7) + 1);
    if (pos + global_bytes > n) return "truncated: the file ends inside the GIF colour table";
    global = d + pos;
    pos += global_bytes;
    if (!palette_needed(global, global_bytes)) global = nullptr;
  }

  // Blocks up to the first image descriptor.
  int transparency = -1;
  auto skip_sub_blocks = [&](size_t& p) -> bool {
    while (true) {
      if (p >= n) return false;
      size_t len = d[p++];
      if (len == 0) return true;
      if (p + len > n) return false;
      p += len;
    }
  };
  while (true) {
    if (pos >= n || d[pos] == 0x3B) return "corrupt: the GIF contains no image";
    uint8_t b = d[pos++];
    if (b == 0x21) {  // extension
      if (pos >= n) return "truncated: the file ends inside a GIF extension";
      uint8_t label = d[pos++];
      if (label == 0xF9 && pos < n && d[pos] >= 4 && pos + 1 + d[pos] <= n) {  // graphic control
        const uint8_t* blk = d + pos + 1;
        transparency = (blk[0] & 1) ? blk[3] : -1;
      }
      if (!skip_sub_blocks(pos)) return "truncated: the file ends inside a GIF extension";
    } else if (b == 0x2C) {  // image descriptor
      break;
    }  // anything else: skipped, as PIL does
  }
  if (pos + 9 > n) return "truncated: the file ends inside the GIF image descriptor";
  int x0 = u16le(d + pos), y0 = u16le(d + pos + 2), fw = u16le(d + pos + 4), fh = u16le(d + pos + 6);
  uint8_t iflags = d[pos + 8];
  pos += 9;
  bool interlaced = (iflags & 0x40) != 0;
  const uint8_t* palette = global;
  size_t palette_bytes = global ? global_bytes : 0;
  if (iflags & 0x80) {
    size_t bytes = size_t{3} << ((iflags & 7) + 1);
    if (pos + bytes > n) return "truncated: the file ends inside the GIF local colour table";
    palette = palette_needed(d + pos, bytes) ? d + pos : nullptr;
    palette_bytes = palette ? bytes : 0;
    pos += bytes;
  }
  if (pos >= n) return "truncated: the file ends before the GIF image data";
  int bits = d[pos++];
  if (bits > kGifBits) return str("corrupt: GIF LZW code size ", bits, " > 12");

  // Canvas (grown to hold the frame), filled with the transparent index or 0.
  int cw = std::max(width, x0 + fw), chh = std::max(height, y0 + fh);
  if (fw <= 0 || fh <= 0) return "corrupt: the first GIF frame is empty (0 pixels)";
  if (static_cast<int64_t>(cw) * chh > kMaxImagePixels) return "image too large";
  std::vector<uint8_t> canvas(static_cast<size_t>(cw) * chh, static_cast<uint8_t>(transparency >= 0 ? transparency : 0));

  RowWriter w{canvas, cw, x0, y0, fw, fh};
  if (interlaced) {
    w.interlace = 1;
    w.step = 8;
  }
  BitReader br{d, n, pos};
  const int clear = 1 << bits, end = clear + 1;
  std::array<uint8_t, kGifTable> data{};
  std::array<uint16_t, kGifTable> link{};
  std::array<uint8_t, kGifTable + 1> stack{};  // one string, filled from the right
  constexpr int top = kGifTable + 1;
  int next = 0, codesize = 0, lastcode = 0;
  uint8_t lastdata = 0;
  int state = 1;  // 1: reset table, 2: first code after clear, 3: normal
  const char* truncated = "truncated: the GIF image data ends before the image is complete (PIL: \"image file is truncated\")";
  while (!w.done) {
    if (state == 1) {
      next = clear + 2;
      codesize = bits + 1;
      state = 2;
    }
    int c;
    if (!br.code(codesize, c)) return truncated;
    if (c == clear) {
      state = 1;
      continue;
    }
    if (c == end) return truncated;
    int len = 0;  // the string is stack[top - len, top)
    if (state == 2) {
      if (c > clear) return "corrupt: bad first GIF LZW code after CLEAR";
      lastdata = static_cast<uint8_t>(c);
      lastcode = c;
      state = 3;
      stack[top - 1] = lastdata;
      len = 1;
    } else {
      int thiscode = c;
      if (c > next) return "corrupt: GIF LZW code out of range";
      if (c == next) {  // KwKwK: previous string + its first byte
        stack[top - 1 - len++] = lastdata;
        c = lastcode;
      }
      while (c >= clear) {
        if (len >= kGifTable || c >= kGifTable) return "corrupt: GIF LZW string too long";
        stack[top - 1 - len++] = data[c];
        c = link[c];
      }
      lastdata = static_cast<uint8_t>(c);
      stack[top - 1 - len++] = lastdata;  // the root byte
      if (next < kGifTable) {
        data[next] = static_cast<uint8_t>(c);
        link[next] = static_cast<uint16_t>(lastcode);
        if (next == (1 << codesize) - 1 && codesize < kGifBits) codesize++;
        next++;
      }
      lastcode = thiscode;
    }
    for (int i = top - len; i < top && !w.done; ++i) w.put(stack[i]);
  }

  // Indices -> RGB: palette (entries past its end are black) or grey = index.
  std::array<uint8_t, 768> rgb{};
  if (palette) {
    for (size_t i = 0; i < palette_bytes && i < rgb.size(); ++i) rgb[i] = palette[i];
  } else {
    for (int i = 0; i < 256; ++i) rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = static_cast<uint8_t>(i);
  }
  out.width = cw;
  out.height = chh;
  out.rgb.resize(canvas.size() * 3);
  for (size_t i = 0; i < canvas.size(); ++i) {
    const uint8_t* col = &rgb[canvas[i] * 3];
    out.rgb[i * 3] = col[0];
    out.rgb[i * 3 + 1] = col[1];
    out.rgb[i * 3 + 2] = col[2];
  }
  return "";
}

}  // namespace vislang::detail
