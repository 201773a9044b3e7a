// image/plot.cpp — line charts: layout (margins from the text sizes), "nice" ticks, the built-in 5x7
// font, anti-aliased polylines (per-series coverage = max over segments of a distance ramp, composited
// once so joints are not drawn twice) and the legend.
#include "image/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "image/png_write.h"

namespace vislang {

namespace {

// 5x7 glyphs for ASCII 32..126: rows top to bottom, bit 4 = leftmost column. Rows 0-6 are the 5x7 cell
// (capitals and digits fill it, lowercase letters use rows 2-6); rows 7-8 hold the descenders of
// g j p q y , ;
const uint8_t kFont[95][9] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00}, {0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // ' ' '!' '"'
    {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00, 0x00}, {0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00, 0x00}, {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00},  // '#' '$' '%'
    {0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00, 0x00}, {0x04, 0x04, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00},  // '&' "'" '('
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00}, {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00, 0x00}, {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00, 0x00},  // ')' '*' '+'
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x04, 0x08}, {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00, 0x00},  // ',' '-' '.'
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00}, {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00, 0x00}, {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00},  // '/' '0' '1'
    {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00}, {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00, 0x00}, {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00, 0x00},  // '2' '3' '4'
    {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00, 0x00}, {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00, 0x00}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00},  // '5' '6' '7'
    {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00, 0x00}, {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00, 0x00}, {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00, 0x00},  // '8' '9' ':'
    {0x00, 0x0C, 0x0C, 0x00, 0x00, 0x0C, 0x0C, 0x04, 0x08}, {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00}, {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00},  // ';' '<' '='
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00}, {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00}, {0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00, 0x00},  // '>' '?' '@'
    {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00, 0x00}, {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00, 0x00}, {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00},  // 'A' 'B' 'C'
    {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00, 0x00}, {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00, 0x00}, {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00, 0x00},  // 'D' 'E' 'F'
    {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00, 0x00}, {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00, 0x00}, {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00},  // 'G' 'H' 'I'
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00, 0x00}, {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00}, {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00, 0x00},  // 'J' 'K' 'L'
    {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00}, {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00}, {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00},  // 'M' 'N' 'O'
    {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00, 0x00}, {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00, 0x00}, {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00, 0x00},  // 'P' 'Q' 'R'
    {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00, 0x00}, {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00}, {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00},  // 'S' 'T' 'U'
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00}, {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00, 0x00}, {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00, 0x00},  // 'V' 'W' 'X'
    {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x00, 0x00}, {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00, 0x00}, {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00, 0x00},  // 'Y' 'Z' '['
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00, 0x00}, {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00, 0x00}, {0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},  // '\\' ']' '^'
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00, 0x00}, {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00, 0x00},  // '_' '`' 'a'
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00, 0x00}, {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00, 0x00}, {0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00, 0x00},  // 'b' 'c' 'd'
    {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00, 0x00}, {0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00, 0x00}, {0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // 'e' 'f' 'g'
    {0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00}, {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C},  // 'h' 'i' 'j'
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00}, {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00, 0x00}, {0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00, 0x00},  // 'k' 'l' 'm'
    {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00, 0x00}, {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00, 0x00}, {0x00, 0x00, 0x1E, 0x11, 0x11, 0x11, 0x1E, 0x10, 0x10},  // 'n' 'o' 'p'
    {0x00, 0x00, 0x0F, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x01}, {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00}, {0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E, 0x00, 0x00},  // 'q' 'r' 's'
    {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00}, {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00, 0x00}, {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00, 0x00},  // 't' 'u' 'v'
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00, 0x00}, {0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00, 0x00}, {0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E},  // 'w' 'x' 'y'
    {0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00, 0x00}, {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00, 0x00}, {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00},  // 'z' '{' '|'
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00, 0x00}, {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00},  // '}' '~'
};

void blend(Image& img, int x, int y, const std::array<uint8_t, 3>& c, double a) {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height || a <= 0) return;
  a = std::min(a, 1.0);
  uint8_t* p = img.pixel(x, y);
  for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(std::lround(p[k] * (1 - a) + c[k] * a));
}

void fill_rect(Image& img, int x0, int y0, int x1, int y1, const std::array<uint8_t, 3>& c, double a = 1.0) {
  x0 = std::max(x0, 0), y0 = std::max(y0, 0), x1 = std::min(x1, img.width), y1 = std::min(y1, img.height);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) blend(img, x, y, c, a);
}

const uint8_t* glyph(char ch) {
  const unsigned char u = static_cast<unsigned char>(ch);
  return kFont[(u >= 32 && u <= 126 ? u : '?') - 32];
}

// Text rotated 90 degrees counter-clockwise (reads bottom to top); (x, y) is the bottom-left corner.
void draw_text_up(Image& img, int x, int y, const std::string& text, const std::array<uint8_t, 3>& color, int s) {
  for (size_t i = 0; i < text.size(); ++i) {
    const uint8_t* g = glyph(text[i]);
    const int base = y - static_cast<int>(i) * 6 * s;  // the glyph's left edge, now at the bottom
    for (int row = 0; row < 9; ++row)
      for (int col = 0; col < 5; ++col)
        if (g[row] & (0x10 >> col)) fill_rect(img, x + row * s, base - (col + 1) * s, x + (row + 1) * s, base - col * s, color);
  }
}

// "Nice" tick step for a range: 1, 2 or 5 times a power of ten, about `target` ticks.
double nice_step(double range, int target) {
  const double raw = range / std::max(target, 1);
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  const double m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

std::vector<double> linear_ticks(double lo, double hi, int target, double* step_out) {
  const double step = nice_step(hi - lo, target);
  *step_out = step;
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

std::string format_tick(double v, double step) {
  char buf[48];
  const double a = std::fabs(v);
  if (v == 0) return "0";
  if (a >= 1e6 || a < 1e-4) {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  } else {
    const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
    std::snprintf(buf, sizeof buf, "%.*f", std::min(decimals, 8), v);
  }
  return buf;
}

// Ticks of one axis in axis space (log10(value) on a log axis) with their labels.
struct Ticks {
  std::vector<double> pos;
  std::vector<std::string> labels;
};

Ticks make_ticks(double lo, double hi, bool log_axis, int target) {
  Ticks t;
  double step = 0;
  if (!log_axis) {
    for (double v : linear_ticks(lo, hi, target, &step)) t.pos.push_back(v), t.labels.push_back(format_tick(v, step));
    return t;
  }
  const double span = hi - lo;
  if (span > 0.3) {
    // Decades (every k-th) over wide ranges; 1-2-5 or 1..9 per decade over narrower ones.
    std::vector<int> mult = span > 3.0 ? std::vector<int>{1} : span > 1.0 ? std::vector<int>{1, 2, 5}
                                                                          : std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9};
    const int k = span > 3.0 ? std::max(1, static_cast<int>(std::ceil(span / std::max(target, 1)))) : 1;
    for (int e = static_cast<int>(std::floor(lo)) - 1; e <= static_cast<int>(std::ceil(hi)); ++e) {
      if (e % k != 0) continue;
      for (int m : mult) {
        const double v = m * std::pow(10.0, e), lv = std::log10(v);
        if (lv < lo - 1e-9 || lv > hi + 1e-9) continue;
        t.pos.push_back(lv);
        t.labels.push_back(format_tick(v, std::pow(10.0, e)));
      }
    }
    if (t.pos.size() >= 2) return t;
    t = Ticks{};
  }
  // A narrow range: linear ticks in value space, placed at their logarithms.
  for (double v : linear_ticks(std::pow(10.0, lo), std::pow(10.0, hi), target, &step))
    if (v > 0) t.pos.push_back(std::log10(v)), t.labels.push_back(format_tick(v, step));
  return t;
}

const std::array<uint8_t, 3> kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},
                                           {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127},
                                           {188, 189, 34}, {23, 190, 207}};

}  // namespace

int text_width(const std::string& text, int scale) {
  return text.empty() ? 0 : (6 * static_cast<int>(text.size()) - 1) * scale;
}

int draw_text(Image& img, int x, int y, const std::string& text, std::array<uint8_t, 3> color, int scale) {
  VL_CHECK(scale >= 1, "draw_text: scale must be >= 1, got ", scale);
  for (size_t i = 0; i < text.size(); ++i) {
    const uint8_t* g = glyph(text[i]);
    const int gx = x + static_cast<int>(i) * 6 * scale;
    for (int row = 0; row < 9; ++row)
      for (int col = 0; col < 5; ++col)
        if (g[row] & (0x10 >> col))
          fill_rect(img, gx + col * scale, y + row * scale, gx + (col + 1) * scale, y + (row + 1) * scale, color);
  }
  return text_width(text, scale);
}

Image render_lines(const std::string& title, const std::vector<Series>& series, const PlotOptions& opt) {
  VL_CHECK(opt.width >= 120 && opt.height >= 90 && opt.width <= 16384 && opt.height <= 16384,
           "plot: size must be between 120 x 90 and 16384 x 16384, got ", opt.width, " x ", opt.height);
  VL_CHECK(opt.text_scale >= 0, "plot: text_scale must be >= 0, got ", opt.text_scale);
  VL_CHECK(std::isfinite(opt.line_width) && opt.line_width > 0, "plot: line_width must be > 0, got ", opt.line_width);
  for (size_t i = 0; i < series.size(); ++i)
    VL_CHECK(series[i].x.empty() || series[i].x.size() == series[i].y.size(), "plot: series ", i, " ('",
             series[i].name, "') has ", series[i].x.size(), " x values but ", series[i].y.size(), " y values");

  const std::array<uint8_t, 3> kBlack{0, 0, 0}, kGrid{225, 225, 225}, kText{40, 40, 40};
  Image img;
  img.width = opt.width, img.height = opt.height;
  img.rgb.assign(static_cast<size_t>(img.width) * img.height * 3, 255);
  const int s = opt.text_scale > 0 ? opt.text_scale : (opt.height >= 400 ? 2 : 1);
  const int ch = 7 * s, gap = 4 * s;

  // Points in axis space (y: log10 on a log axis); NaN marks a skipped point (a break in the line).
  auto axis_y = [&](double y) { return opt.log_y ? (y > 0 ? std::log10(y) : NAN) : y; };
  std::vector<std::vector<std::array<double, 2>>> pts(series.size());
  double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
  for (size_t i = 0; i < series.size(); ++i) {
    for (size_t j = 0; j < series[i].y.size(); ++j) {
      const double x = series[i].x.empty() ? static_cast<double>(j) : series[i].x[j];
      const double y = axis_y(series[i].y[j]);
      const bool ok = std::isfinite(x) && std::isfinite(y);
      pts[i].push_back({ok ? x : NAN, ok ? y : NAN});
      if (ok) xlo = std::min(xlo, x), xhi = std::max(xhi, x), ylo = std::min(ylo, y), yhi = std::max(yhi, y);
    }
  }
  if (!(xlo <= xhi)) xlo = 0, xhi = 1;
  if (!(ylo <= yhi)) ylo = 0, yhi = 1;
  auto widen = [](double& lo, double& hi) {  // a constant series: a range around the value
    if (hi - lo > 1e-12 * std::max(std::fabs(lo), std::fabs(hi))) return;
    const double d = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= d, hi += d;
  };
  widen(xlo, xhi);
  widen(ylo, yhi);
  const double pad = 0.05 * (yhi - ylo);
  ylo -= pad, yhi += pad;
  if (std::isfinite(opt.x_min)) xlo = opt.x_min;
  if (std::isfinite(opt.x_max)) xhi = opt.x_max;
  if (std::isfinite(opt.y_min)) ylo = axis_y(opt.y_min);
  if (std::isfinite(opt.y_max)) yhi = axis_y(opt.y_max);
  VL_CHECK(xlo < xhi && ylo < yhi, "plot: empty axis range x [", xlo, ", ", xhi, "], y [", ylo, ", ", yhi,
           "] (log_y: y_min/y_max must be > 0)");

  // Layout: title on top, y tick labels (and the rotated y label) left, x tick labels (and x label) below.
  const int top = title.empty() ? 2 * gap : 7 * (s + 1) + 3 * gap;
  int bottom = opt.height - (gap + ch + gap + (opt.x_label.empty() ? 0 : ch + gap) + gap);
  const Ticks yt = make_ticks(ylo, yhi, opt.log_y, std::max(2, (bottom - top) / (ch * 5)));
  int ylab_w = 0;
  for (const auto& l : yt.labels) ylab_w = std::max(ylab_w, text_width(l, s));
  const int left = gap + (opt.y_label.empty() ? 0 : ch + gap) + ylab_w + gap + 2 * s;
  const int right = opt.width - (gap * 2 + 3 * 6 * s);
  VL_CHECK(right - left >= 20 && bottom - top >= 20, "plot: ", opt.width, " x ", opt.height,
           " is too small for its labels at text scale ", s);
  double xstep = 0;
  std::vector<double> xt = linear_ticks(xlo, xhi, std::max(2, (right - left) / (12 * 6 * s)), &xstep);
  auto px = [&](double x) { return left + (x - xlo) / (xhi - xlo) * (right - left); };
  auto py = [&](double y) { return bottom - (y - ylo) / (yhi - ylo) * (bottom - top); };

  // Grid, frame, ticks and their labels.
  for (double v : xt) {
    const int x = static_cast<int>(std::lround(px(v)));
    fill_rect(img, x, top, x + 1, bottom, kGrid);
    fill_rect(img, x, bottom, x + 1, bottom + 2 * s, kBlack);
    const std::string l = format_tick(v, xstep);
    draw_text(img, x - text_width(l, s) / 2, bottom + 2 * s + gap, l, kText, s);
  }
  for (size_t i = 0; i < yt.pos.size(); ++i) {
    const int y = static_cast<int>(std::lround(py(yt.pos[i])));
    fill_rect(img, left, y, right, y + 1, kGrid);
    fill_rect(img, left - 2 * s, y, left, y + 1, kBlack);
    draw_text(img, left - 2 * s - gap - text_width(yt.labels[i], s), y - ch / 2, yt.labels[i], kText, s);
  }
  fill_rect(img, left, top, right + 1, top + 1, kBlack);
  fill_rect(img, left, bottom, right + 1, bottom + 1, kBlack);
  fill_rect(img, left, top, left + 1, bottom + 1, kBlack);
  fill_rect(img, right, top, right + 1, bottom + 1, kBlack);
  if (!title.empty()) draw_text(img, (opt.width - text_width(title, s + 1)) / 2, gap, title, kBlack, s + 1);
  if (!opt.x_label.empty())
    draw_text(img, (left + right - text_width(opt.x_label, s)) / 2, bottom + 2 * s + 2 * gap + ch, opt.x_label, kText, s);
  if (!opt.y_label.empty())
    draw_text_up(img, gap, (top + bottom + text_width(opt.y_label, s)) / 2, opt.y_label, kText, s);

  // Series: coverage of the polyline (max over segments and dots), then one blend per pixel.
  const int W = opt.width;
  std::vector<float> cov(static_cast<size_t>(W) * opt.height);
  const double hw = opt.line_width / 2;
  auto clampc = [](double v) { return std::clamp(v, -1e6, 1e6); };
  auto stamp = [&](double ax, double ay, double bx, double by, double radius) {  // segment (a, b), pixel units
    ax = clampc(ax), ay = clampc(ay), bx = clampc(bx), by = clampc(by);
    const int x0 = std::max(left + 1, static_cast<int>(std::floor(std::min(ax, bx) - radius - 1)));
    const int x1 = std::min(right, static_cast<int>(std::ceil(std::max(ax, bx) + radius + 1)));
    const int y0 = std::max(top + 1, static_cast<int>(std::floor(std::min(ay, by) - radius - 1)));
    const int y1 = std::min(bottom, static_cast<int>(std::ceil(std::max(ay, by) + radius + 1)));
    const double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) {
        const double cx = x + 0.5 - ax, cy = y + 0.5 - ay;
        const double t = len2 > 0 ? std::clamp((cx * dx + cy * dy) / len2, 0.0, 1.0) : 0.0;
        const double d = std::hypot(cx - t * dx, cy - t * dy);
        const float c = static_cast<float>(std::clamp(radius + 0.5 - d, 0.0, 1.0));
        float& dst = cov[static_cast<size_t>(y) * W + x];
        dst = std::max(dst, c);
      }
  };
  std::vector<std::array<uint8_t, 3>> colors(series.size());
  std::vector<float> ink(cov.size(), 0.0f);  // all series' coverage, for placing the legend
  for (size_t i = 0, auto_i = 0; i < series.size(); ++i) {
    const auto& c = series[i].color;
    colors[i] = (c[0] | c[1] | c[2]) ? c : kPalette[auto_i++ % (sizeof kPalette / sizeof kPalette[0])];
    std::fill(cov.begin(), cov.end(), 0.0f);
    const auto& p = pts[i];
    for (size_t j = 0; j < p.size(); ++j) {
      if (std::isnan(p[j][0])) continue;
      const bool prev = j > 0 && !std::isnan(p[j - 1][0]), next = j + 1 < p.size() && !std::isnan(p[j + 1][0]);
      if (next) stamp(px(p[j][0]), py(p[j][1]), px(p[j + 1][0]), py(p[j + 1][1]), hw);
      if (!prev && !next) stamp(px(p[j][0]), py(p[j][1]), px(p[j][0]), py(p[j][1]), std::max(2.5 * s, 1.5 * hw + 1));
    }
    for (int y = top + 1; y < bottom; ++y)
      for (int x = left + 1; x < right; ++x) {
        const size_t at = static_cast<size_t>(y) * W + x;
        blend(img, x, y, colors[i], cov[at]);
        ink[at] += cov[at];
      }
  }

  // Legend: top right inside the frame, on a translucent white box.
  std::vector<size_t> named;
  for (size_t i = 0; i < series.size(); ++i)
    if (!series[i].name.empty()) named.push_back(i);
  if (opt.legend && !named.empty()) {
    int tw = 0;
    for (size_t i : named) tw = std::max(tw, text_width(series[i].name, s));
    const int swatch = 6 * 3 * s, row_h = ch + gap;
    const int bw = gap + swatch + gap + tw + gap, bh = gap + row_h * static_cast<int>(named.size());
    // The corner (top right, top left, bottom right, bottom left) whose box covers the least ink.
    int bx = right - gap - bw, by = top + gap;
    double least = INFINITY;
    for (int corner = 0; corner < 4; ++corner) {
      const int cx = corner % 2 == 0 ? right - gap - bw : left + gap;
      const int cy = corner < 2 ? top + gap : bottom - gap - bh;
      double sum = 0;
      for (int y = std::max(cy, 0); y < std::min(cy + bh, opt.height); ++y)
        for (int x = std::max(cx, 0); x < std::min(cx + bw, W); ++x) sum += ink[static_cast<size_t>(y) * W + x];
      if (sum < least - 1e-6) least = sum, bx = cx, by = cy;
    }
    fill_rect(img, bx, by, bx + bw, by + bh, {255, 255, 255}, 0.85);
    fill_rect(img, bx, by, bx + bw, by + 1, {160, 160, 160});
    fill_rect(img, bx, by + bh - 1, bx + bw, by + bh, {160, 160, 160});
    fill_rect(img, bx, by, bx + 1, by + bh, {160, 160, 160});
    fill_rect(img, bx + bw - 1, by, bx + bw, by + bh, {160, 160, 160});
    for (size_t k = 0; k < named.size(); ++k) {
      const int ry = by + gap + static_cast<int>(k) * row_h;
      const int lw = std::max(2 * s, static_cast<int>(std::lround(opt.line_width)));
      fill_rect(img, bx + gap, ry + ch / 2 - lw / 2, bx + gap + swatch, ry + ch / 2 - lw / 2 + lw, colors[named[k]]);
      draw_text(img, bx + gap + swatch + gap, ry, series[named[k]].name, kText, s);
    }
  }
  return img;
}

void plot_lines(const std::string& png_path, const std::string& title, const std::vector<Series>& series,
                const PlotOptions& options) {
  Image img;
  try {
    img = render_lines(title, series, options);
  } catch (const Error& e) {
    VL_FAIL("plot_lines '", png_path, "': ", e.what());
  }
  write_png(png_path, img);
}

}  // namespace vislang
