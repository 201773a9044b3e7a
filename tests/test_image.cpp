// tests/test_image.cpp — image decoding, PIL-exact bicubic resize, center crop and CLIP preprocessing
// against golden files written by tools/reference/make_image_fixtures.py (PIL, torchvision,
// transformers, open_clip).
//
// Data flow: image file → load_image (image/image.h) → resize + center crop (image/resize.h) →
// to_normalized_tensor / preprocess (image/clip_preprocess.h). Fixtures: tests/fixtures/image/
// (manifest.json + generated inputs + PIL outputs) and the shared photos in ../shared/data/images.
//
// Bounds (per pixel, uint8, before normalization): <= 1 level (1/255) against PIL everywhere; we expect
// and print 0. Exception: a build without libjpeg decodes JPEG with stb_image, which differs from
// libjpeg-turbo (measured 2 levels after resize on rocket.jpg, 3 raw; up to ~100 raw on 4:2:2 chroma),
// so JPEG inputs then get a bound of 3 levels after resize and their exact-decode checks are skipped
// with a message. Normalized tensors: |diff| <= 1e-5 + L / 255 / std[c], L the pixel bound above.
#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "image/clip_preprocess.h"
#include "image/codecs.h"
#include "image/png_write.h"
#include "tests/test_util.h"

using namespace vislang;
using vislang::test::contains;
using vislang::test::error_of;
using vislang::test::TempDir;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Must match FORMAT_VERSION in tools/reference/make_image_fixtures.py.
const int kFormatVersion = 1;
const std::string kRegenerate = "re-run `python3 tools/reference/make_image_fixtures.py` (needs Pillow, torch, "
                                "torchvision, transformers, open_clip)";

std::string fixture_dir() { return std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/image"; }

const json& manifest() {
  static json m;
  static bool loaded = false;
  if (!loaded) {
    std::ifstream f(fixture_dir() + "/manifest.json");
    REQUIRE_MESSAGE(f.good(), str("cannot read ", fixture_dir(), "/manifest.json; ", kRegenerate));
    m = json::parse(f);
    loaded = true;
  }
  int v = m.value("format_version", -1);
  REQUIRE_MESSAGE(v == kFormatVersion, str("image fixtures have format_version ", v, " but this test expects ",
                                           kFormatVersion, "; ", kRegenerate));
  return m;
}

// "shared:images/x.jpg" -> <shared>/data/images/x.jpg ("" when ../shared is absent); else fixture-relative.
std::string resolve(const std::string& p) {
  if (p.rfind("shared:", 0) == 0) {
    std::string s = test::shared_dir();
    return s.empty() ? std::string() : s + "/data/" + p.substr(7);
  }
  return fixture_dir() + "/" + p;
}

bool skip_if_no_shared(const std::string& what) {  // (std::string: doctest prints char* as an address)
  if (!test::shared_dir().empty()) return false;
  MESSAGE("SKIPPED ", what, " on the shared photos: ../shared not found (set VISLANG_SHARED_DIR)");
  return true;
}

uint32_t crc_of(const Image& im) {
  return static_cast<uint32_t>(crc32(0L, im.rgb.data(), static_cast<uInt>(im.rgb.size())));
}

int max_abs_diff(const Image& a, const Image& b) {
  REQUIRE(a.width == b.width);
  REQUIRE(a.height == b.height);
  int worst = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) worst = std::max(worst, std::abs(int(a.rgb[i]) - int(b.rgb[i])));
  return worst;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), str("cannot read ", path, "; ", kRegenerate));
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

bool is_jpeg(const std::string& path) {
  std::string e = fs::path(path).extension().string();
  return e == ".jpg" || e == ".jpeg";
}

// Allowed uint8 difference from PIL for an input file (see the header comment).
int pixel_bound(const std::string& input_path) { return (is_jpeg(input_path) && !jpeg_matches_pil()) ? 3 : 1; }

PassOrder order_of(const json& e) {
  return e.value("pass_order", "PILLOW") == "HORIZONTAL_FIRST" ? PassOrder::HORIZONTAL_FIRST : PassOrder::PILLOW;
}

PreprocessConfig config_of(const json& e) {
  PreprocessConfig cfg;
  cfg.size = e.at("size").get<int>();
  cfg.mode = e.at("mode").get<std::string>() == "HF" ? PreprocessConfig::Mode::HF : PreprocessConfig::Mode::OPENAI;
  cfg.pass_order = order_of(e);
  return cfg;
}

std::string short_name(const std::string& p) { return fs::path(p).filename().string(); }


// ---- PNGs written here, for the fast PNG path's tests --------------------------------------------

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(v >> s));
}

void put_chunk(std::vector<uint8_t>& png, const char* type, const std::vector<uint8_t>& data) {
  put_be32(png, uint32_t(data.size()));
  const size_t at = png.size();
  png.insert(png.end(), type, type + 4);
  png.insert(png.end(), data.begin(), data.end());
  put_be32(png, uint32_t(crc32(0L, &png[at], uInt(png.size() - at))));
}

// An 8-bit PNG of `samples` (h rows of w * channels bytes; channels from the colour type), row y filtered
// with filters[y % filters.size()] (the encoder side of PNG's filters, written plainly), the zlib stream
// split into IDAT chunks of at most `idat_size` bytes.
std::vector<uint8_t> make_png(int w, int h, int color_type, const std::vector<uint8_t>& samples,
                              const std::vector<int>& filters, const std::vector<uint8_t>& palette = {},
                              size_t idat_size = 1 << 20) {
  const int ch = color_type == 0 || color_type == 3 ? 1 : color_type == 4 ? 2 : color_type == 2 ? 3 : 4;
  const size_t stride = size_t(w) * ch;
  std::vector<uint8_t> raw;
  for (int y = 0; y < h; ++y) {
    const int f = filters[size_t(y) % filters.size()];
    raw.push_back(uint8_t(f));
    const uint8_t* cur = &samples[size_t(y) * stride];
    for (size_t i = 0; i < stride; ++i) {
      const int a = i >= size_t(ch) ? cur[i - ch] : 0, b = y > 0 ? cur[i - stride] : 0;
      const int c = (i >= size_t(ch) && y > 0) ? cur[i - stride - ch] : 0;
      int pred = 0;
      if (f == 1) pred = a;
      else if (f == 2) pred = b;
      else if (f == 3) pred = (a + b) / 2;
      else if (f == 4) {
        const int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
        pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
      }
      raw.push_back(uint8_t(cur[i] - pred));
    }
  }
  std::vector<uint8_t> z(compressBound(uLong(raw.size())));
  uLongf zn = uLongf(z.size());
  REQUIRE(compress(z.data(), &zn, raw.data(), uLong(raw.size())) == Z_OK);
  z.resize(zn);
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, uint32_t(w));
  put_be32(ihdr, uint32_t(h));
  for (uint8_t b : {uint8_t(8), uint8_t(color_type), uint8_t(0), uint8_t(0), uint8_t(0)}) ihdr.push_back(b);
  put_chunk(png, "IHDR", ihdr);
  put_chunk(png, "tEXt", {'C', 'o', 'm', 'm', 'e', 'n', 't', 0, 'x'});  // an ancillary chunk to skip
  if (!palette.empty()) put_chunk(png, "PLTE", palette);
  for (size_t at = 0; at < z.size(); at += idat_size)
    put_chunk(png, "IDAT", std::vector<uint8_t>(z.begin() + long(at), z.begin() + long(std::min(z.size(), at + idat_size))));
  put_chunk(png, "IEND", {});
  return png;
}

// What decode_image gives (the fast path first, then stb_image) and what the stb_image path alone gives
// must be the same outcome: the same pixels, or the same error.
void check_same_outcome(const std::vector<uint8_t>& png, const std::string& what) {
  Image ref;
  const std::string ref_err = detail::decode_png_stb(png.data(), png.size(), ref);
  std::string err;
  Image got;
  try {
    got = decode_image(png.data(), png.size(), "x.png");
  } catch (const Error& e) {
    err = e.what();
  }
  CAPTURE(what);
  CAPTURE(err);
  CAPTURE(ref_err);
  CHECK(err.empty() == ref_err.empty());
  if (err.empty() && ref_err.empty()) {
    CHECK(got.width == ref.width);
    CHECK(got.height == ref.height);
    CHECK(got.rgb == ref.rgb);
  } else if (!err.empty() && !ref_err.empty()) {
    CHECK(contains(err, ref_err));
  }
}

}  // namespace

TEST_SUITE("image") {
  TEST_CASE("decoding matches PIL's Image.open(p).convert('RGB')") {
    const json& m = manifest();
    skip_if_no_shared("exact-decode checks");
    std::vector<std::string> skipped_jpeg;
    for (const json& e : m.at("decode")) {
      std::string in = e.at("input").get<std::string>();
      std::string path = resolve(in);
      if (path.empty()) continue;
      CAPTURE(in);
      Image im = load_image(path);
      CHECK(im.width == e.at("width").get<int>());
      CHECK(im.height == e.at("height").get<int>());
      if (e.value("jpeg", false) && !jpeg_matches_pil()) {
        skipped_jpeg.push_back(short_name(in));
        if (e.contains("reference")) {  // still bounded: stb's IDCT/upsampling differ from libjpeg's
          Image ref = load_image(resolve(e.at("reference").get<std::string>()));
          MESSAGE(short_name(in), ": stb_image vs PIL max |diff| = ", max_abs_diff(im, ref));
        }
        continue;
      }
      uint32_t want = e.at("crc32").get<uint32_t>();
      if (crc_of(im) != want && e.contains("reference")) {
        Image ref = load_image(resolve(e.at("reference").get<std::string>()));
        FAIL_CHECK(in, " (PIL mode ", e.at("pil_mode").get<std::string>(), ") differs from PIL: max |diff| = ",
                   max_abs_diff(im, ref));
      } else {
        CHECK_MESSAGE(crc_of(im) == want, in, " (PIL mode ", e.at("pil_mode").get<std::string>(),
                      ") differs from PIL's decode (crc32)");
      }
    }
    if (!skipped_jpeg.empty())
      MESSAGE("JPEG decoded with ", jpeg_decoder(), ", not bit-exact with PIL's libjpeg-turbo: exact-decode check "
              "skipped for ", skipped_jpeg.size(), " JPEGs (build with libjpeg for exact JPEG decoding)");
  }

  TEST_CASE("resize_bicubic reproduces Pillow's Image.resize(size, BICUBIC) bit for bit") {
    const json& m = manifest();
    for (const json& e : m.at("resize")) {
      std::string in = e.at("input").get<std::string>();
      int ow = e.at("out")[0].get<int>(), oh = e.at("out")[1].get<int>();
      PassOrder order = order_of(e);
      CAPTURE(in);
      CAPTURE(ow);
      CAPTURE(oh);
      CAPTURE(e.at("pass_order").get<std::string>());
      Image src = load_image(resolve(in));
      Image want = load_image(resolve(e.at("expected").get<std::string>()));
      Image got = resize_bicubic(src, ow, oh, order);
      int d = max_abs_diff(got, want);
      CHECK(d <= 1);
      CHECK_MESSAGE(d == 0, "expected an exact match with Pillow, worst |diff| = ", d);
      // Any window of the resize is the same as cropping the full resize.
      int x0 = ow / 3, y0 = oh / 4, w = std::max(1, ow / 2), h = std::max(1, oh / 2);
      Image win = resize_bicubic_region(src, ow, oh, x0, y0, w, h, order);
      Image cut = Image::blank(w, h);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          std::copy_n(got.pixel(x0 + x, y0 + y), 3, cut.pixel(x, y));
      CHECK(max_abs_diff(win, cut) == 0);
    }
  }

  TEST_CASE("resize pass order: Pillow >= 13 goes vertical first when the height shrinks much more") {
    CHECK_FALSE(resize_vertical_first(640, 427, 335, 224, PassOrder::PILLOW));   // landscape CLIP resize
    CHECK(resize_vertical_first(230, 700, 224, 681, PassOrder::PILLOW));         // > ~2:1 portrait
    CHECK_FALSE(resize_vertical_first(230, 700, 224, 681, PassOrder::HORIZONTAL_FIRST));
    CHECK_FALSE(resize_vertical_first(100, 100, 50, 100, PassOrder::PILLOW));    // height unchanged
    CHECK(resize_vertical_first(100, 100, 200, 99, PassOrder::PILLOW));          // width grows, height shrinks
    CHECK_FALSE(resize_vertical_first(100, 120, 90, 100, PassOrder::PILLOW));    // 20 == 2 * 10: horizontal
    CHECK(resize_vertical_first(100, 121, 90, 100, PassOrder::PILLOW));          // 21 > 20
  }

  TEST_CASE("CLIP resize + center crop matches PIL/torchvision (OPENAI) and transformers (HF)") {
    const json& m = manifest();
    skip_if_no_shared("preprocess checks");
    std::ostringstream report;
    for (const json& e : m.at("preprocess")) {
      std::string in = e.at("input").get<std::string>();
      std::string path = resolve(in);
      if (path.empty()) continue;
      PreprocessConfig cfg = config_of(e);
      CAPTURE(in);
      CAPTURE(e.at("mode").get<std::string>());
      CAPTURE(cfg.size);
      Image got = resize_and_crop(load_image(path), cfg);
      REQUIRE(got.width == cfg.size);
      REQUIRE(got.height == cfg.size);
      int bound = pixel_bound(path), d = 0;
      if (e.contains("expected")) {
        d = max_abs_diff(got, load_image(resolve(e.at("expected").get<std::string>())));
      } else {  // strided samples of the crop + crc32 of all of it
        std::vector<uint8_t> s = read_bytes(resolve(e.at("samples").get<std::string>()));
        size_t stride = e.at("sample_stride_pixels").get<size_t>();
        for (size_t i = 0; i * 3 < s.size(); ++i)
          for (int c = 0; c < 3; ++c) d = std::max(d, std::abs(int(got.rgb[i * stride * 3 + c]) - int(s[i * 3 + c])));
        if (bound == 1) CHECK_MESSAGE(crc_of(got) == e.at("crc32").get<uint32_t>(), "crc32 of the crop differs");
      }
      CHECK_MESSAGE(d <= bound, "worst |diff| ", d, " > ", bound);
      if (bound == 1) CHECK_MESSAGE(d == 0, "expected an exact match with PIL, worst |diff| = ", d);
      report << "\n  " << short_name(in) << " " << e.at("mode").get<std::string>() << " " << cfg.size
             << (cfg.pass_order == PassOrder::HORIZONTAL_FIRST ? " (Pillow<=12 order)" : "") << ": " << d;
    }
    MESSAGE("max |ours - PIL| (uint8 levels) after resize+crop, JPEG decoder ", jpeg_decoder(), ":", report.str());
  }

  TEST_CASE("normalized tensor matches open_clip and transformers CLIPImageProcessor") {
    const json& m = manifest();
    if (skip_if_no_shared("normalized-tensor checks")) return;
    std::ostringstream report;
    for (const json& e : m.at("normalized")) {
      std::string in = e.at("input").get<std::string>(), pipe = e.at("pipeline").get<std::string>();
      std::string path = resolve(in);
      CAPTURE(in);
      CAPTURE(pipe);
      PreprocessConfig cfg = config_of(e);
      Tensor t = preprocess(load_image(path), cfg);
      REQUIRE(t.shape() == Shape{3, cfg.size, cfg.size});
      REQUIRE(t.dtype() == DType::F32);
      const float* p = t.data<float>();
      std::vector<uint8_t> raw = read_bytes(resolve(e.at("samples").get<std::string>()));
      std::vector<float> ref(raw.size() / 4);
      std::memcpy(ref.data(), raw.data(), ref.size() * 4);
      size_t stride = e.at("stride").get<size_t>(), plane = size_t(cfg.size) * cfg.size;
      // transformers >= 5's default processor resizes with torch (not PIL): up to 1 level off.
      int levels = std::max(pixel_bound(path), 1);
      double worst = 0, worst_q = 0;
      for (size_t i = 0; i < ref.size(); ++i) {
        size_t k = i * stride;
        int c = static_cast<int>(k / plane);
        double bound = 1e-5 + levels / 255.0 / cfg.std[c];
        double d = std::fabs(double(p[k]) - ref[i]);
        worst = std::max(worst, d);
        worst_q = std::max(worst_q, d / bound);
      }
      CHECK_MESSAGE(worst_q <= 1.0, "worst |diff| ", worst, " exceeds 1e-5 + ", levels, "/255/std");
      // Whole-tensor statistics.
      double sum = 0, sumsq = 0;
      float mn = p[0], mx = p[0];
      for (int64_t i = 0; i < t.numel(); ++i) {
        sum += p[i];
        sumsq += double(p[i]) * p[i];
        mn = std::min(mn, p[i]);
        mx = std::max(mx, p[i]);
      }
      double n = double(t.numel());
      CHECK(std::fabs(sum / n - e.at("sum").get<double>() / n) < 1e-3);
      CHECK(std::fabs(sumsq / n - e.at("sumsq").get<double>() / n) < 1e-3);
      CHECK(std::fabs(mn - e.at("min").get<double>()) <= levels / 255.0 / 0.26 + 1e-5);
      CHECK(std::fabs(mx - e.at("max").get<double>()) <= levels / 255.0 / 0.26 + 1e-5);
      report << "\n  " << short_name(in) << " vs " << pipe << ": max |diff| " << worst;
    }
    MESSAGE("normalized f32 (3, 224, 224), sampled every 31st element:", report.str());
  }

  TEST_CASE("center crop offsets follow torchvision.CenterCrop and transformers center_crop") {
    const json& m = manifest();
    for (const json& e : m.at("crop_offsets")) {
      int size = e.at("size").get<int>(), crop = e.at("crop").get<int>();
      CAPTURE(size);
      CAPTURE(crop);
      CHECK(center_crop_offset(size, crop, CropRounding::TORCHVISION) == e.at("torchvision").get<int>());
      CHECK(center_crop_offset(size, crop, CropRounding::HF) == e.at("hf").get<int>());
    }
    // The odd differences that matter: 3 -> torchvision 2 (round half to even of 1.5), HF 1.
    CHECK(center_crop_offset(227, 224, CropRounding::TORCHVISION) == 2);
    CHECK(center_crop_offset(227, 224, CropRounding::HF) == 1);
    CHECK(center_crop_offset(229, 224, CropRounding::TORCHVISION) == 2);
    // Zero padding when the crop is larger: a 1x1 white image in a 4x3 crop.
    Image one = Image::blank(1, 1);
    std::fill(one.rgb.begin(), one.rgb.end(), 255);
    Image tv = center_crop(one, 4, 3, CropRounding::TORCHVISION), hf = center_crop(one, 4, 3, CropRounding::HF);
    CHECK(tv.pixel(1, 1)[0] == 255);  // torchvision pads floor((4-1)/2) = 1 before
    CHECK(hf.pixel(2, 1)[0] == 255);  // transformers pads ceil((4-1)/2) = 2 before
    CHECK(tv.pixel(0, 0)[0] == 0);
  }

  TEST_CASE("shorter side -> size uses int(size * long / short), like torchvision and transformers") {
    const json& m = manifest();
    for (const json& e : m.at("resize_sizes")) {
      int w = e.at("w").get<int>(), h = e.at("h").get<int>(), size = e.at("size").get<int>();
      CAPTURE(w);
      CAPTURE(h);
      CAPTURE(size);
      auto got = resize_shorter_side(w, h, size);
      CHECK(got[0] == e.at("out")[0].get<int>());
      CHECK(got[1] == e.at("out")[1].get<int>());
    }
  }

  TEST_CASE("to_normalized_tensor is (x / 255 - mean) / std in f32, channel-major") {
    Image im = Image::blank(2, 1);
    uint8_t px[6] = {0, 128, 255, 1, 2, 3};
    std::copy_n(px, 6, im.rgb.data());
    PreprocessConfig cfg;
    Tensor t = to_normalized_tensor(im, cfg.mean, cfg.std);
    REQUIRE(t.shape() == Shape{3, 1, 2});
    const float* p = t.data<float>();
    for (int c = 0; c < 3; ++c)
      for (int x = 0; x < 2; ++x) {
        float v = static_cast<float>(px[x * 3 + c]) / 255.0f;
        CHECK(p[c * 2 + x] == (v - cfg.mean[c]) / cfg.std[c]);  // same f32 operations as torchvision
      }
    CHECK_THROWS_AS(to_normalized_tensor(im, cfg.mean, {1.f, 0.f, 1.f}), Error);
  }

  TEST_CASE("errors name the file and the reason") {
    TempDir tmp;
    auto expect = [](const std::string& what, const std::function<void()>& fn, const std::string& name,
                     std::vector<std::string> reasons) {
      std::string msg = error_of(fn);
      CAPTURE(what);
      CAPTURE(msg);
      REQUIRE_MESSAGE(!msg.empty(), what, ": expected a vislang::Error");
      CHECK(contains(msg, name));
      bool any = false;
      for (const auto& r : reasons) any = any || contains(msg, r);
      CHECK_MESSAGE(any, what, ": the message does not give the reason");
    };
    std::string missing = tmp.path("no_such_image.png");
    expect("missing path", [&] { load_image(missing); }, missing, {"No such file"});
    expect("directory", [&] { load_image(tmp.dir().string()); }, tmp.dir().string(), {"directory"});
    std::string empty = tmp.write("empty.jpg", "");
    expect("empty file", [&] { load_image(empty); }, empty, {"empty"});
    std::string text = tmp.write("notes.png", "hello world");
    expect("not an image", [&] { load_image(text); }, text, {"unsupported", "unrecognised"});
    std::vector<uint8_t> webp = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', ' '};
    std::string wp = tmp.write("photo.webp", webp);
    expect("WebP", [&] { load_image(wp); }, wp, {"WebP"});
    expect("in-memory", [&] { decode_image(webp.data(), webp.size(), "upload#3"); }, "upload#3", {"WebP"});

    // Truncated files of every format: an error, never a partially decoded image (PIL raises too).
    struct Cut {
      const char* input;
      size_t keep_percent;
    };
    for (Cut c : {Cut{"inputs/jpeg_420.jpeg", 60}, Cut{"inputs/odd_223x225_rgb.png", 50}, Cut{"inputs/gif_pil.gif", 70},
                  Cut{"inputs/bmp_rgb.bmp", 90}, Cut{"inputs/jpeg_progressive.jpeg", 95}}) {
      std::vector<uint8_t> bytes = read_bytes(fixture_dir() + "/" + c.input);
      bytes.resize(bytes.size() * c.keep_percent / 100);
      std::string p = tmp.write(std::string("cut_") + short_name(c.input), bytes);
      expect(c.input, [&] { load_image(p); }, p, {"truncated"});
    }
    // A JPEG missing only its end-of-image marker is truncated for PIL; a PNG missing only IEND is not.
    std::vector<uint8_t> jpg = read_bytes(fixture_dir() + "/inputs/jpeg_444.jpeg");
    jpg.resize(jpg.size() - 2);
    std::string noeoi = tmp.write("no_eoi.jpg", jpg);
    expect("JPEG without EOI", [&] { load_image(noeoi); }, noeoi, {"truncated"});
    std::vector<uint8_t> png = read_bytes(fixture_dir() + "/inputs/odd_225x223_l.png");
    std::vector<uint8_t> no_iend(png.begin(), png.end() - 12);
    Image full = load_image(fixture_dir() + "/inputs/odd_225x223_l.png");
    Image cut = decode_image(no_iend.data(), no_iend.size(), "no_iend.png");
    CHECK(max_abs_diff(full, cut) == 0);

    if (skip_if_no_shared("the truncated.jpg check")) return;
    std::string trunc = test::shared_dir() + "/data/images/truncated.jpg";
    expect("shared truncated.jpg", [&] { load_image(trunc); }, "truncated.jpg", {"truncated"});
  }

  TEST_CASE("the batch helper reports a bad file and continues") {
    TempDir tmp;
    std::string good1 = fixture_dir() + "/inputs/odd_225x223_l.png", good2 = fixture_dir() + "/inputs/gif_pil.gif";
    std::string missing = tmp.path("missing.jpg");
    std::vector<uint8_t> bytes = read_bytes(fixture_dir() + "/inputs/jpeg_420.jpeg");
    bytes.resize(bytes.size() / 2);
    std::string cut = tmp.write("cut.jpg", bytes);
    std::vector<std::string> paths = {good1, missing, cut, tmp.dir().string(), good2};
    PreprocessConfig cfg;
    cfg.size = 64;
    auto results = preprocess_files(paths, cfg, 3);
    REQUIRE(results.size() == paths.size());
    for (size_t i = 0; i < paths.size(); ++i) CHECK(results[i].path == paths[i]);
    CHECK(results[0].ok);
    CHECK_FALSE(results[1].ok);
    CHECK(contains(results[1].error, missing));
    CHECK_FALSE(results[2].ok);
    CHECK(contains(results[2].error, "truncated"));
    CHECK_FALSE(results[3].ok);
    CHECK(contains(results[3].error, "directory"));
    CHECK(results[4].ok);
    std::vector<size_t> index;
    Tensor batch = stack_ok(results, &index);
    CHECK(batch.shape() == Shape{2, 3, 64, 64});
    CHECK(index == std::vector<size_t>{0, 4});
    Tensor one = preprocess(load_image(good2), cfg);
    CHECK(std::memcmp(batch.data<float>() + 3 * 64 * 64, one.data<float>(), 3 * 64 * 64 * sizeof(float)) == 0);
  }

  TEST_CASE("the fast PNG path gives the stb_image path's pixels, and declines what it does not handle") {
    // Every filter type on every row kind, every 8-bit colour type, split IDATs: exact pixels, and the
    // fast path (detail::decode_png_fast) must take them all.
    std::mt19937 rng(5);
    for (int ct : {0, 2, 3, 4, 6}) {
      const int ch = ct == 0 || ct == 3 ? 1 : ct == 4 ? 2 : ct == 2 ? 3 : 4;
      for (auto [w, h] : {std::pair{1, 1}, std::pair{7, 5}, std::pair{33, 17}}) {
        std::vector<uint8_t> samples(size_t(w) * h * ch), palette;
        for (auto& v : samples) v = uint8_t(rng());
        if (ct == 3) {
          for (int i = 0; i < 3 * 200; ++i) palette.push_back(uint8_t(rng()));
          for (auto& v : samples) v = uint8_t(v % 200);
        }
        // Expected RGB: grey replicated, alpha dropped, palette expanded.
        std::vector<uint8_t> rgb;
        for (size_t px = 0; px < size_t(w) * h; ++px)
          for (int c = 0; c < 3; ++c) {
            const uint8_t* s = &samples[px * ch];
            rgb.push_back(ct == 3 ? palette[size_t(s[0]) * 3 + c] : ch <= 2 ? s[0] : s[c]);
          }
        for (const std::vector<int>& filters :
             {std::vector<int>{0}, {1}, {2}, {3}, {4}, {4, 3, 2, 1, 0, 2, 4}}) {
          for (size_t idat_size : {size_t(1) << 20, size_t(7)}) {
            std::vector<uint8_t> png = make_png(w, h, ct, samples, filters, palette, idat_size);
            CAPTURE(ct);
            CAPTURE(w);
            CAPTURE(filters[0]);
            CAPTURE(idat_size);
            Image fast, fast_zlib;
            REQUIRE(detail::decode_png_fast(png.data(), png.size(), fast));
            CHECK(fast.width == w);
            CHECK(fast.height == h);
            CHECK(fast.rgb == rgb);
            REQUIRE(detail::decode_png_fast(png.data(), png.size(), fast_zlib, /*zlib_only=*/true));
            CHECK(fast_zlib.rgb == rgb);
            check_same_outcome(png, "generated PNG");
          }
        }
      }
    }
    // PIL's fixtures: where the fast path decodes, it agrees with stb_image (and so with PIL, checked
    // above); 16-bit, palette + tRNS and the like are left to stb_image.
    int fast_ok = 0;
    for (const auto& e : fs::directory_iterator(fixture_dir() + "/inputs")) {
      if (e.path().extension() != ".png") continue;
      std::vector<uint8_t> bytes = read_bytes(e.path().string());
      CAPTURE(e.path().filename().string());
      Image fast;
      if (detail::decode_png_fast(bytes.data(), bytes.size(), fast)) {
        ++fast_ok;
        Image ref;
        REQUIRE(detail::decode_png_stb(bytes.data(), bytes.size(), ref).empty());
        CHECK(fast.rgb == ref.rgb);
      }
      const std::string name = e.path().filename().string();
      if (contains(name, "png16") || contains(name, "_pt.png")) CHECK_FALSE(detail::decode_png_fast(bytes.data(), bytes.size(), fast));
    }
    CHECK(fast_ok >= 5);  // the 8-bit RGB, L, LA, RGBA and P inputs

    // Damaged files: the outcome (pixels or error) is the stb_image path's, whatever the fast path does.
    std::vector<uint8_t> samples(size_t(40) * 30 * 3);
    for (auto& v : samples) v = uint8_t(rng() % 7 * 40);
    const std::vector<uint8_t> good = make_png(40, 30, 2, samples, {4, 3, 2, 1, 0}, {}, 64);
    check_same_outcome(good, "intact");
    for (size_t keep = 8; keep < good.size(); keep += 13) {  // (shorter: no PNG signature, not sniffed as PNG)
      std::vector<uint8_t> cut(good.begin(), good.begin() + long(keep));
      check_same_outcome(cut, str("cut to ", keep, " bytes"));
    }
    for (size_t at = 33; at < good.size(); at += 11) {
      std::vector<uint8_t> bad = good;
      bad[at] ^= 0x5A;
      check_same_outcome(bad, str("byte ", at, " flipped"));
      Image a, b;  // both inflaters accept and decline the same damaged streams, with the same pixels
      const bool with_default = detail::decode_png_fast(bad.data(), bad.size(), a);
      CHECK(with_default == detail::decode_png_fast(bad.data(), bad.size(), b, /*zlib_only=*/true));
      if (with_default) CHECK(a.rgb == b.rgb);
    }
    std::vector<uint8_t> five = make_png(40, 30, 2, samples, {0});
    // Filter type 5 on row 0: rebuild the stream with a bad filter byte.
    {
      std::vector<uint8_t> raw;
      for (int y = 0; y < 30; ++y) {
        raw.push_back(y == 0 ? 5 : 0);
        raw.insert(raw.end(), samples.begin() + y * 120, samples.begin() + (y + 1) * 120);
      }
      std::vector<uint8_t> z(compressBound(uLong(raw.size())));
      uLongf zn = uLongf(z.size());
      REQUIRE(compress(z.data(), &zn, raw.data(), uLong(raw.size())) == Z_OK);
      z.resize(zn);
      std::vector<uint8_t> png(five.begin(), five.begin() + 33);
      put_chunk(png, "IDAT", z);
      put_chunk(png, "IEND", {});
      Image out;
      CHECK_FALSE(detail::decode_png_fast(png.data(), png.size(), out));
      check_same_outcome(png, "filter type 5");
    }
    // Palette index past a 4-entry palette: declined (stb_image reads its uninitialised palette there).
    std::vector<uint8_t> idx = {0, 1, 2, 3, 9, 0};
    std::vector<uint8_t> pal = make_png(3, 2, 3, idx, {0}, std::vector<uint8_t>(12, 100));
    Image out;
    CHECK_FALSE(detail::decode_png_fast(pal.data(), pal.size(), out));
  }

  TEST_CASE("resize: the transposed-block horizontal pass equals Pillow's plain loops") {
    // resize_bicubic_region vs resize_bicubic_region_ref (image/resize.h) on random images: down and up,
    // one pass or two, both pass orders, windows, sizes around the 32-row block and the 32-lane
    // accumulator, and one large enough for the OpenMP branch. Bit-exact: the same integer sums.
    std::mt19937 rng(11);
    struct Case {
      int in_w, in_h, out_w, out_h;
    };
    const Case cases[] = {{224, 224, 64, 64},  {640, 427, 96, 64},  {427, 640, 64, 96},  {1, 50, 7, 9},
                          {50, 1, 9, 7},       {33, 65, 33, 20},    {65, 33, 20, 33},    {31, 97, 300, 5},
                          {300, 31, 11, 120},  {100, 900, 30, 40},  {1000, 800, 300, 240}, {5, 5, 5, 5}};
    for (const Case& c : cases) {
      Image img = Image::blank(c.in_w, c.in_h);
      for (auto& v : img.rgb) v = uint8_t(rng() % 3 == 0 ? rng() : (rng() % 2) * 255);  // edges: clipping
      for (PassOrder order : {PassOrder::PILLOW, PassOrder::HORIZONTAL_FIRST}) {
        CAPTURE(c.in_w);
        CAPTURE(c.in_h);
        CAPTURE(c.out_w);
        CAPTURE(c.out_h);
        Image got = resize_bicubic(img, c.out_w, c.out_h, order);
        Image ref = resize_bicubic_region_ref(img, c.out_w, c.out_h, 0, 0, c.out_w, c.out_h, order);
        CHECK(max_abs_diff(got, ref) == 0);
        const int x0 = c.out_w / 3, y0 = c.out_h / 5, w = std::max(1, c.out_w / 2), h = std::max(1, c.out_h - y0 - 1);
        Image win = resize_bicubic_region(img, c.out_w, c.out_h, x0, y0, w, h, order);
        Image win_ref = resize_bicubic_region_ref(img, c.out_w, c.out_h, x0, y0, w, h, order);
        CHECK(max_abs_diff(win, win_ref) == 0);
      }
    }
  }

  TEST_CASE("encode_jpeg: decodes back to the image within JPEG's loss; bad arguments are errors") {
    // A smooth gradient with a few edges, 48 x 40 (not a multiple of the 16-pixel MCU).
    Image img = Image::blank(48, 40);
    for (int y = 0; y < 40; ++y)
      for (int x = 0; x < 48; ++x) {
        uint8_t* p = img.pixel(x, y);
        p[0] = uint8_t(x * 5);
        p[1] = uint8_t(y * 6);
        p[2] = uint8_t(x < 24 ? 40 : 200);
      }
    for (int q : {90, 95}) {
      std::vector<uint8_t> jpg = encode_jpeg(img, q);
      REQUIRE(sniff_image_format(jpg.data(), jpg.size()) == "JPEG");
      Image back = decode_image(jpg.data(), jpg.size(), "gradient.jpg");
      REQUIRE(back.width == 48);
      REQUIRE(back.height == 40);
      double sum = 0;
      for (size_t i = 0; i < img.rgb.size(); ++i) sum += std::abs(int(img.rgb[i]) - int(back.rgb[i]));
      const double mean = sum / double(img.rgb.size());
      MESSAGE("encode_jpeg quality ", q, ": mean |diff| ", mean, " levels");
      CHECK(mean < 4.0);  // a broken encoder is far off
    }
    CHECK(contains(error_of([&] { encode_jpeg(img, 0); }), "quality"));
    CHECK(contains(error_of([&] { encode_jpeg(Image(), 90); }), "bad image"));
  }
}
