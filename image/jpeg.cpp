// image/jpeg.cpp — JPEG decoding with libjpeg-turbo, set up exactly as PIL sets it up.
//
// PIL (libImaging/JpegDecode.c) decodes with libjpeg-turbo's defaults: the accurate integer IDCT
// (JDCT_ISLOW) and "fancy" (triangular) chroma upsampling, output colour space RGB for 3-component
// files, GRAYSCALE for 1, CMYK for 4 (then PIL assumes Adobe's inverted CMYK and converts with its own
// formula). We do the same, so pixels are identical to PIL's (measured: 0 difference on every test
// JPEG, including 4:2:0, 4:2:2, 4:4:4, progressive, greyscale and odd sizes; libjpeg-turbo 2.1 here vs
// the 3.x bundled in Pillow wheels).
//
// Truncation: PIL raises "image file is truncated" when the file ends before the decoder is done
// (even if only the EOI marker is missing). libjpeg instead warns (JWRN_JPEG_EOF), pads with an EOI and
// fills the rest with grey; we turn that warning into an error. Other warnings (e.g. extraneous bytes
// before a marker) are ignored, as PIL ignores them.
//
// Without VISLANG_WITH_LIBJPEG (CMake found no libjpeg) only jpeg_structure_error() is compiled in and
// image/image.cpp falls back to stb_image.
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"
#include "image/codecs.h"

#ifdef VISLANG_WITH_LIBJPEG
#include <jerror.h>
#include <jpeglib.h>
#endif

namespace vislang::detail {

void cmyk_inverted_to_rgb(const uint8_t* cmyk, size_t npixels, uint8_t* rgb) {
  auto muldiv255 = [](int a, int b) {  // libImaging/ImagingUtils.h MULDIV255
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  auto clip8 = [](int v) { return static_cast<uint8_t>(v <= 0 ? 0 : v < 256 ? v : 255); };
  for (size_t i = 0; i < npixels; ++i) {
    const uint8_t* in = cmyk + i * 4;
    // "CMYK;I" unpacker: every channel inverted.
    int c = 255 - in[0], m = 255 - in[1], y = 255 - in[2], k = 255 - in[3];
    int nk = 255 - k;
    rgb[i * 3 + 0] = clip8(nk - muldiv255(c, nk));
    rgb[i * 3 + 1] = clip8(nk - muldiv255(m, nk));
    rgb[i * 3 + 2] = clip8(nk - muldiv255(y, nk));
  }
}

std::string jpeg_structure_error(const uint8_t* d, size_t n) {
  if (n < 2 || d[0] != 0xFF || d[1] != 0xD8) return "corrupt: no JPEG SOI marker";
  size_t p = 2;
  bool seen_frame = false;
  while (true) {
    // Find the next marker: 0xFF (fill bytes allowed) then a non-0xFF, non-zero code.
    while (p < n && d[p] != 0xFF) ++p;  // tolerate garbage between segments, like libjpeg
    while (p < n && d[p] == 0xFF) ++p;
    if (p >= n) return "truncated: the file ends before the JPEG end-of-image marker";
    uint8_t m = d[p++];
    if (m == 0x00) continue;
    if (m == 0xD9) return seen_frame ? "" : "corrupt: no JPEG frame (SOF) before end-of-image";
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;  // TEM, RSTn, SOI: no length
    if (p + 2 > n) return "truncated: the file ends inside a JPEG marker segment";
    size_t len = (static_cast<size_t>(d[p]) << 8) | d[p + 1];
    if (len < 2) return "corrupt: bad JPEG segment length";
    if (p + len > n) return "truncated: the file ends inside a JPEG marker segment";
    if ((m >= 0xC0 && m <= 0xCF) && m != 0xC4 && m != 0xC8 && m != 0xCC) seen_frame = true;
    if (m == 0xC4) {  // DHT: stb_image 2.27 overruns a 257-byte array when a table lists > 256 codes
      size_t q = p + 2, end = p + len;
      while (q < end) {
        if (q + 17 > end) return "corrupt: bad JPEG Huffman table";
        size_t total = 0;
        for (int i = 1; i <= 16; ++i) total += d[q + i];
        if (total > 256 || q + 17 + total > end) return "corrupt: bad JPEG Huffman table";
        q += 17 + total;
      }
    }
    p += len;
    if (m == 0xDA) {  // SOS: entropy-coded data follows up to the next real marker
      while (true) {
        while (p < n && d[p] != 0xFF) ++p;
        if (p + 1 >= n) return "truncated: the file ends inside JPEG scan data";
        uint8_t nx = d[p + 1];
        if (nx == 0x00 || (nx >= 0xD0 && nx <= 0xD7) || nx == 0xFF) {  // stuffed byte, RSTn, fill
          p += (nx == 0xFF) ? 1 : 2;
          continue;
        }
        break;  // p points at the 0xFF of the next marker
      }
    }
  }
}

#ifdef VISLANG_WITH_LIBJPEG

bool have_libjpeg() { return true; }

std::string libjpeg_version() {
#ifdef LIBJPEG_TURBO_VERSION
#define VL_STR2(x) #x
#define VL_STR(x) VL_STR2(x)
  return std::string("libjpeg-turbo ") + VL_STR(LIBJPEG_TURBO_VERSION);
#else
  return str("libjpeg (API ", JPEG_LIB_VERSION, ")");
#endif
}

namespace {

// Everything the setjmp frame touches lives here (heap/outer frame), so nothing indeterminate is left
// after a longjmp (C++ objects are never skipped: libjpeg is C and longjmp returns into run()).
struct JpegJob {
  jpeg_decompress_struct cinfo;
  struct ErrMgr {
    jpeg_error_mgr pub;
    jmp_buf jump;
    bool eof_warning = false;
    char message[JMSG_LENGTH_MAX] = {0};
  } err;
  const uint8_t* data = nullptr;
  size_t n = 0;
  int width = 0, height = 0, components = 0;
  std::vector<uint8_t>* pixels = nullptr;  // out: width * height * components
};

void on_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegJob::ErrMgr*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

void on_emit_message(j_common_ptr cinfo, int msg_level) {
  auto* err = reinterpret_cast<JpegJob::ErrMgr*>(cinfo->err);
  if (msg_level < 0) {
    cinfo->err->num_warnings++;
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) err->eof_warning = true;
  }
}

void on_output_message(j_common_ptr) {}

// Returns 0 on success, 1 on a libjpeg error (message in job->err.message), 2 when the size check failed.
int run(JpegJob* job) {
  job->cinfo.err = jpeg_std_error(&job->err.pub);
  job->err.pub.error_exit = on_error_exit;
  job->err.pub.emit_message = on_emit_message;
  job->err.pub.output_message = on_output_message;
  jpeg_create_decompress(&job->cinfo);
  if (setjmp(job->err.jump)) {
    jpeg_destroy_decompress(&job->cinfo);
    return 1;
  }
  jpeg_mem_src(&job->cinfo, job->data, static_cast<unsigned long>(job->n));
  jpeg_read_header(&job->cinfo, TRUE);
  if (job->err.eof_warning) {  // header incomplete: nothing sensible to decode
    jpeg_destroy_decompress(&job->cinfo);
    return 0;
  }
  switch (job->cinfo.num_components) {
    case 1: job->cinfo.out_color_space = JCS_GRAYSCALE; break;
    case 3: job->cinfo.out_color_space = JCS_RGB; break;
    case 4: job->cinfo.out_color_space = JCS_CMYK; break;
    default:
      std::snprintf(job->err.message, sizeof job->err.message, "unsupported: %d-component JPEG (PIL: cannot handle %d-layer images)",
                    job->cinfo.num_components, job->cinfo.num_components);
      jpeg_destroy_decompress(&job->cinfo);
      return 2;
  }
  // PIL's defaults (no draft mode): accurate integer IDCT, fancy upsampling.
  job->cinfo.dct_method = JDCT_ISLOW;
  job->cinfo.do_fancy_upsampling = TRUE;
  if (static_cast<int64_t>(job->cinfo.image_width) * job->cinfo.image_height > kMaxImagePixels) {
    std::snprintf(job->err.message, sizeof job->err.message,
                  "image too large: %u x %u pixels exceeds the limit of %lld (PIL's decompression-bomb limit)",
                  job->cinfo.image_width, job->cinfo.image_height, static_cast<long long>(kMaxImagePixels));
    jpeg_destroy_decompress(&job->cinfo);
    return 2;
  }
  jpeg_start_decompress(&job->cinfo);
  job->width = static_cast<int>(job->cinfo.output_width);
  job->height = static_cast<int>(job->cinfo.output_height);
  job->components = job->cinfo.output_components;
  size_t row = static_cast<size_t>(job->width) * job->components;
  job->pixels->resize(row * job->height);
  while (job->cinfo.output_scanline < job->cinfo.output_height) {
    JSAMPROW r = job->pixels->data() + row * job->cinfo.output_scanline;
    jpeg_read_scanlines(&job->cinfo, &r, 1);
  }
  jpeg_finish_decompress(&job->cinfo);  // reads up to EOI: a missing EOI raises the EOF warning
  jpeg_destroy_decompress(&job->cinfo);
  return 0;
}

}  // namespace

std::string decode_jpeg_libjpeg(const uint8_t* data, size_t n, Image& out) {
  std::vector<uint8_t> pixels;
  auto job = std::make_unique<JpegJob>();
  job->data = data;
  job->n = n;
  job->pixels = &pixels;
  int rc = run(job.get());
  if (rc != 2 && job->err.eof_warning)  // checked first: a cut file also trips later errors
    return "truncated: the file ends before the JPEG data does (PIL: \"image file is truncated\")";
  if (rc == 1) return str("corrupt JPEG: ", job->err.message);
  if (rc == 2) return job->err.message;
  out.width = job->width;
  out.height = job->height;
  size_t np = static_cast<size_t>(out.width) * out.height;
  out.rgb.resize(np * 3);
  if (job->components == 1) {
    for (size_t i = 0; i < np; ++i) out.rgb[i * 3] = out.rgb[i * 3 + 1] = out.rgb[i * 3 + 2] = pixels[i];
  } else if (job->components == 3) {
    out.rgb = std::move(pixels);
  } else {
    cmyk_inverted_to_rgb(pixels.data(), np, out.rgb.data());
  }
  return "";
}

#else  // !VISLANG_WITH_LIBJPEG

bool have_libjpeg() { return false; }
std::string libjpeg_version() { return ""; }
std::string decode_jpeg_libjpeg(const uint8_t*, size_t, Image&) {
  return "unsupported: vislang was built without libjpeg";
}

#endif

}  // namespace vislang::detail
