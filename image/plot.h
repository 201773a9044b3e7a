// image/plot.h — a small line-chart renderer (loss / accuracy curves) to RGB images and PNG files.
//
// Where it sits: training and evaluation code collect (x, y) series → **plot_lines** → a PNG you can look
// at (image/png_write.h). No external plotting or font library: text uses a built-in 5x7 bitmap font
// (printable ASCII; scaled by whole pixels), lines are anti-aliased by distance-to-segment coverage.
//
// What it draws: a title, a frame with "nice" tick values (1/2/5 x 10^k; powers of ten on a log axis)
// and their labels, optional axis labels, one coloured polyline per series and a legend (top right).
// Robustness: NaN/Inf points (and y <= 0 on a log axis) are skipped and break the line there; a series
// with one valid point is drawn as a dot; a constant series gets a range around its value; an empty
// plot still draws its frame, title and legend.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "image/image.h"

namespace vislang {

struct Series {
  std::string name;       // legend entry ("" = not in the legend)
  std::vector<double> x;  // empty: x = 0, 1, 2, ... (the point index)
  std::vector<double> y;  // same length as x when x is given
  // Line colour; all zero (default) picks the next colour of a built-in palette.
  std::array<uint8_t, 3> color{0, 0, 0};
};

struct PlotOptions {
  int width = 800, height = 500;  // pixels (>= 120 x 90)
  bool log_y = false;             // log10 y axis (non-positive values are skipped)
  std::string x_label = "", y_label = "";
  // Axis ranges; NaN (default) = from the data.
  double x_min = NAN, x_max = NAN, y_min = NAN, y_max = NAN;
  double line_width = 2.0;  // pixels
  int text_scale = 0;       // font pixel size multiplier; 0 = automatic (1 below 400 px height, else 2)
  bool legend = true;
};

// Renders the chart into an RGB image of options.width x options.height.
Image render_lines(const std::string& title, const std::vector<Series>& series, const PlotOptions& options = {});

// render_lines + write_png (atomic; errors name the path).
void plot_lines(const std::string& png_path, const std::string& title, const std::vector<Series>& series,
                const PlotOptions& options = {});

// Draws `text` with the built-in 5x7 font at (x, y) = top-left of the first glyph, in cells of `scale`
// pixels: a glyph is 5 wide and 7 high (capitals, digits) plus 2 rows of descender (g j p q y , ;), with
// one column of spacing. Characters outside printable ASCII draw as '?'. Returns the width drawn in
// pixels. Clipped to the image.
int draw_text(Image& img, int x, int y, const std::string& text, std::array<uint8_t, 3> color, int scale = 1);
int text_width(const std::string& text, int scale = 1);  // = 6 * scale * text.size() - scale

}  // namespace vislang
