// datasets/toy_world.cpp — the toy-world generator: per-index hashing, scene layout, integer
// supersampled rendering, caption templates, labels, tensors, folders and VQA questions.
//
// Everything random goes through Draws (a counter-based splitmix64 stream keyed by the sample), so a
// sample never depends on which samples were generated before it. All geometry is integer: object
// parameters are in units of 1/256 pixel (Q), shape outlines in units of 1/1024 of the object's scale r,
// and inside tests are exact int64 arithmetic — the pixels are the same on every machine and compiler.
#include "datasets/toy_world.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <filesystem>

#include "core/error.h"
#include "image/png_write.h"
#include "image/resize.h"

namespace vislang::toy {

namespace {

// ---- hashing -----------------------------------------------------------------------------------------
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t hash_combine(uint64_t h, uint64_t v) { return splitmix64(h ^ splitmix64(v + 0x632BE59BD9B4E019ull)); }

// The random stream of one sample (or one question set): draw n is splitmix64(key + n * golden), i.e.
// the splitmix64 sequence started at `key`. Only integer operations and exact double conversions.
class Draws {
 public:
  explicit Draws(uint64_t key) : state_(key) {}
  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1), exact
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }  // [0, n)
  int64_t between(int64_t lo, int64_t hi) {  // [lo, hi]
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool chance(double p) { return uniform() < p; }

 private:
  uint64_t state_;
};

constexpr int64_t kQ = 256;    // object coordinates: 1/256 pixel
constexpr int64_t kU = 1024;   // shape outlines: 1/1024 of the object's scale r

// ---- shape outlines ------------------------------------------------------------------------------------
// Each shape is a union of polygons (any simple polygon, crossing-number test) and circles, in units of
// r / 1024 around the object's centre (x right, y down). The centre (0, 0) is inside every shape.
struct P2 {
  int64_t x, y;
};
struct Circle {
  int64_t x, y, radius;
};
struct Outline {
  std::vector<std::vector<P2>> polygons;
  std::vector<Circle> circles;
  int64_t min_x, min_y, max_x, max_y;  // extent, same units
};

Outline make_outline(std::vector<std::vector<P2>> polys, std::vector<Circle> circles) {
  Outline o{std::move(polys), std::move(circles), INT64_MAX, INT64_MAX, INT64_MIN, INT64_MIN};
  auto grow = [&](int64_t x0, int64_t y0, int64_t x1, int64_t y1) {
    o.min_x = std::min(o.min_x, x0), o.min_y = std::min(o.min_y, y0);
    o.max_x = std::max(o.max_x, x1), o.max_y = std::max(o.max_y, y1);
  };
  for (const auto& poly : o.polygons)
    for (const P2& p : poly) grow(p.x, p.y, p.x, p.y);
  for (const Circle& c : o.circles) grow(c.x - c.radius, c.y - c.radius, c.x + c.radius, c.y + c.radius);
  return o;
}

const std::vector<Outline>& outlines() {
  static const std::vector<Outline> table = [] {
    std::vector<Outline> t(kNumShapes);
    t[CIRCLE] = make_outline({}, {{0, 0, 1024}});
    t[SQUARE] = make_outline({{{-870, -870}, {870, -870}, {870, 870}, {-870, 870}}}, {});
    t[TRIANGLE] = make_outline({{{0, -930}, {1040, 900}, {-1040, 900}}}, {});
    // Five points, outer radius 1, inner 0.42, shifted down so the extent is centred.
    t[STAR] = make_outline({{{0, -926}, {253, -250}, {974, -219}, {409, 231}, {602, 926}, {0, 528}, {-602, 926},
                             {-409, 231}, {-974, -219}, {-253, -250}}},
                           {});
    t[HEXAGON] = make_outline({{{1024, 0}, {512, 887}, {-512, 887}, {-1024, 0}, {-512, -887}, {512, -887}}}, {});
    const int64_t w = 330, l = 980;  // plus sign: arm half-width, arm length
    t[CROSS] = make_outline({{{-w, -l}, {w, -l}, {w, -w}, {l, -w}, {l, w}, {w, w}, {w, l}, {-w, l}, {-w, w},
                              {-l, w}, {-l, -w}, {-w, -w}}},
                            {});
    t[DIAMOND] = make_outline({{{0, -1024}, {820, 0}, {0, 1024}, {-820, 0}}}, {});
    // Two lobes (circles) and the tangent polygon down to the tip.
    t[HEART] = make_outline({{{0, 927}, {878, -14}, {481, -384}, {-481, -384}, {-878, -14}}},
                            {{-481, -384, 543}, {481, -384, 543}});
    return t;
  }();
  return table;
}

// ---- objects in integer form -------------------------------------------------------------------------
struct Placed {
  int shape, color, size, cell;
  int64_t cx, cy, r;  // Q units (1/256 pixel)
  std::array<uint8_t, 3> rgb;
};

// Is point (px, py) (Q units) inside the placed object?
bool inside(const Placed& o, const Outline& ol, int64_t px, int64_t py) {
  const int64_t X = (px - o.cx) * kU, Y = (py - o.cy) * kU;  // Q * 1024 units
  for (const Circle& c : ol.circles) {
    const int64_t dx = X - c.x * o.r, dy = Y - c.y * o.r, rr = c.radius * o.r;
    if (dx * dx + dy * dy <= rr * rr) return true;
  }
  for (const auto& poly : ol.polygons) {
    bool in = false;
    for (size_t i = 0, j = poly.size() - 1; i < poly.size(); j = i++) {
      const int64_t ax = poly[j].x * o.r, ay = poly[j].y * o.r, bx = poly[i].x * o.r, by = poly[i].y * o.r;
      if ((ay > Y) != (by > Y)) {
        const int64_t cross = (bx - ax) * (Y - ay) - (X - ax) * (by - ay);
        if (by > ay ? cross > 0 : cross < 0) in = !in;
      }
    }
    if (in) return true;
  }
  return false;
}

// Pixel bounds [x0, x1) x [y0, y1) that contain the object, clipped to the image.
struct PixRect {
  int x0, y0, x1, y1;
};
PixRect pixel_rect(const Placed& o, int S, int pad) {
  const Outline& ol = outlines()[o.shape];
  auto floor_div = [](int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  const int64_t d = kQ * kU;
  PixRect r;
  r.x0 = static_cast<int>(floor_div(o.cx * kU + ol.min_x * o.r, d)) - pad;
  r.y0 = static_cast<int>(floor_div(o.cy * kU + ol.min_y * o.r, d)) - pad;
  r.x1 = static_cast<int>(floor_div(o.cx * kU + ol.max_x * o.r, d)) + 1 + pad;
  r.y1 = static_cast<int>(floor_div(o.cy * kU + ol.max_y * o.r, d)) + 1 + pad;
  r.x0 = std::max(r.x0, 0), r.y0 = std::max(r.y0, 0), r.x1 = std::min(r.x1, S), r.y1 = std::min(r.y1, S);
  return r;
}

// Number of the k x k sub-samples of pixel (x, y) inside the object.
int coverage(const Placed& o, const Outline& ol, int x, int y, int k) {
  const int64_t step = kQ / k;  // k divides 256
  int n = 0;
  for (int j = 0; j < k; ++j)
    for (int i = 0; i < k; ++i)
      n += inside(o, ol, x * kQ + step * i + step / 2, y * kQ + step * j + step / 2);
  return n;
}

// True when the two objects touch or are less than one pixel apart (at pixel resolution).
bool too_close(const Placed& a, const Placed& b, int S, int k) {
  PixRect ra = pixel_rect(a, S, 1), rb = pixel_rect(b, S, 1);
  PixRect r{std::max(ra.x0, rb.x0), std::max(ra.y0, rb.y0), std::min(ra.x1, rb.x1), std::min(ra.y1, rb.y1)};
  if (r.x0 >= r.x1 || r.y0 >= r.y1) return false;
  const int w = r.x1 - r.x0, h = r.y1 - r.y0;
  std::vector<uint8_t> ma(static_cast<size_t>(w) * h);
  const Outline &oa = outlines()[a.shape], &ob = outlines()[b.shape];
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) ma[y * w + x] = coverage(a, oa, r.x0 + x, r.y0 + y, k) > 0;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      if (coverage(b, ob, r.x0 + x, r.y0 + y, k) == 0) continue;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int xx = x + dx, yy = y + dy;
          if (xx >= 0 && yy >= 0 && xx < w && yy < h && ma[yy * w + xx]) return true;
        }
    }
  return false;
}

// Draws the object over `rgb` (u8 (S, S, 3)), blending by sub-sample coverage in integer arithmetic.
void render(std::vector<uint8_t>& rgb, int S, const Placed& o, int k) {
  const Outline& ol = outlines()[o.shape];
  const PixRect r = pixel_rect(o, S, 0);
  const int K = k * k;
  for (int y = r.y0; y < r.y1; ++y)
    for (int x = r.x0; x < r.x1; ++x) {
      const int n = coverage(o, ol, x, y, k);
      if (n == 0) continue;
      uint8_t* p = &rgb[(static_cast<size_t>(y) * S + x) * 3];
      for (int c = 0; c < 3; ++c) p[c] = static_cast<uint8_t>((p[c] * (K - n) + o.rgb[c] * n + K / 2) / K);
    }
}

// The object grown by `w` Q units all around (the same shape scaled about its centre): its outline,
// drawn in dark gray under the object. w = 0 gives the object itself.
Placed outlined(const Placed& o, int64_t w) {
  if (w == 0) return o;
  Placed b = o;
  b.r = o.r + w;
  b.rgb = {20, 20, 20};
  return b;
}

ToyObject to_public(const Placed& o) {
  const Outline& ol = outlines()[o.shape];
  const double d = static_cast<double>(kQ * kU);
  ToyObject t;
  t.shape = o.shape, t.color = o.color, t.size = o.size, t.cell = o.cell;
  t.cx = static_cast<float>(o.cx / static_cast<double>(kQ));
  t.cy = static_cast<float>(o.cy / static_cast<double>(kQ));
  t.r = static_cast<float>(o.r / static_cast<double>(kQ));
  t.x0 = static_cast<float>((o.cx * kU + ol.min_x * o.r) / d);
  t.y0 = static_cast<float>((o.cy * kU + ol.min_y * o.r) / d);
  t.x1 = static_cast<float>((o.cx * kU + ol.max_x * o.r) / d);
  t.y1 = static_cast<float>((o.cy * kU + ol.max_y * o.r) / d);
  t.rgb = o.rgb;
  return t;
}

// ---- backgrounds -----------------------------------------------------------------------------------------
int64_t dist2(const std::array<uint8_t, 3>& a, const std::array<uint8_t, 3>& b) {
  int64_t s = 0;
  for (int c = 0; c < 3; ++c) s += (int64_t(a[c]) - b[c]) * (int64_t(a[c]) - b[c]);
  return s;
}

// A random colour at least ~100 levels (Euclidean) from every object colour.
std::array<uint8_t, 3> background_color(Draws& rng, const std::vector<Placed>& objs) {
  const int64_t kMin2 = 100 * 100;
  std::array<uint8_t, 3> best{}, cand{};
  int64_t best_d = -1;
  for (int attempt = 0; attempt < 64; ++attempt) {
    for (auto& v : cand) v = static_cast<uint8_t>(rng.below(256));
    int64_t d = INT64_MAX;
    for (const Placed& o : objs) d = std::min(d, dist2(cand, o.rgb));
    if (d >= kMin2) return cand;
    if (d > best_d) best_d = d, best = cand;
  }
  return best;
}

void fill_background(std::vector<uint8_t>& rgb, int S, Background kind, Draws& rng, const std::vector<Placed>& objs,
                     int noise_amplitude, uint64_t key) {
  const std::array<uint8_t, 3> c0 = background_color(rng, objs);
  if (kind == Background::UNIFORM) {
    for (size_t i = 0; i < rgb.size(); i += 3) std::memcpy(&rgb[i], c0.data(), 3);
  } else if (kind == Background::GRADIENT) {
    const std::array<uint8_t, 3> c1 = background_color(rng, objs);
    const int dir = rng.below(4);  // 0: left -> right, 1: top -> bottom, 2: diagonal, 3: anti-diagonal
    const int den = dir < 2 ? S - 1 : 2 * (S - 1);
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x) {
        const int t = dir == 0 ? x : dir == 1 ? y : dir == 2 ? x + y : (S - 1 - x) + y;
        uint8_t* p = &rgb[(static_cast<size_t>(y) * S + x) * 3];
        for (int c = 0; c < 3; ++c) p[c] = static_cast<uint8_t>((c0[c] * (den - t) + c1[c] * t + den / 2) / den);
      }
  } else {
    const uint64_t nkey = hash_combine(key, 0x4E4F495345ull);  // "NOISE": its own stream, per pixel
    const int span = 2 * noise_amplitude + 1;
    for (size_t i = 0; i < rgb.size(); ++i) {
      const int v = c0[i % 3] + static_cast<int>(splitmix64(nkey + i) % span) - noise_amplitude;
      rgb[i] = static_cast<uint8_t>(std::clamp(v, 0, 255));
    }
  }
}

// ---- text ----------------------------------------------------------------------------------------------
const char* article(const std::string& next_word) {
  return !next_word.empty() && std::strchr("aeiou", next_word[0]) ? "an" : "a";
}

const std::vector<std::string>& position_phrases() {
  static const std::vector<std::string> p = {"in the top left", "at the top",    "in the top right",
                                             "on the left",     "in the center", "on the right",
                                             "in the bottom left", "at the bottom", "in the bottom right"};
  return p;
}

// Caption templates. Tokens: {A}/{B} "a red circle", {SA}/{SB} "a small red circle", {PA}/{PB} the
// position phrase, {R} a relation that holds between objects[0] and objects[1], {BG} the background word.
const std::vector<std::string>& single_templates() {
  static const std::vector<std::string> t = {
      "{SA} {PA}", "a photo of {A}", "{A}", "{SA}", "{A} {PA}", "there is {SA} {PA}", "{A} on a {BG} background",
      "a picture of {SA}"};
  return t;
}
const std::vector<std::string>& pair_templates() {
  static const std::vector<std::string> t = {"{A} {R} {B}",   "{SA} {R} {SB}",          "{A} and {B}",
                                             "a photo of {A} and {B}", "{A} {PA} and {B} {PB}",
                                             "a photo of {A} {R} {B}"};
  return t;
}

std::string fill_template(const std::string& tpl, const ToySample& s, Relation rel) {
  const ToyObject& a = s.objects[0];
  const ToyObject* b = s.objects.size() > 1 ? &s.objects[1] : nullptr;
  std::string out;
  for (size_t i = 0; i < tpl.size();) {
    if (tpl[i] != '{') {
      out += tpl[i++];
      continue;
    }
    const size_t j = tpl.find('}', i);
    const std::string tok = tpl.substr(i + 1, j - i - 1);
    i = j + 1;
    if (tok == "A") out += describe(a, false);
    else if (tok == "SA") out += describe(a, true);
    else if (tok == "PA") out += position_phrases()[a.cell];
    else if (tok == "B") out += describe(*b, false);
    else if (tok == "SB") out += describe(*b, true);
    else if (tok == "PB") out += position_phrases()[b->cell];
    else if (tok == "R") out += relation_phrase(rel);
    else if (tok == "BG") out += background_name(s.background);
    else VL_FAIL("toy_world: unknown caption token {", tok, "}");
  }
  return out;
}

std::vector<Relation> true_relations(const ToyObject& a, const ToyObject& b) {
  std::vector<Relation> out;
  for (int r = 0; r < kNumRelations; ++r)
    if (holds(static_cast<Relation>(r), a, b)) out.push_back(static_cast<Relation>(r));
  return out;
}

}  // namespace

// ---- vocabulary ----------------------------------------------------------------------------------------
const std::vector<std::string>& shape_names() {
  static const std::vector<std::string> v = {"circle", "square", "triangle", "star",
                                             "hexagon", "cross", "diamond", "heart"};
  return v;
}
const std::vector<std::string>& shape_plurals() {
  static const std::vector<std::string> v = {"circles",  "squares", "triangles", "stars",
                                             "hexagons", "crosses", "diamonds",  "hearts"};
  return v;
}
const std::vector<std::string>& color_names() {
  static const std::vector<std::string> v = {"red",    "green", "blue", "yellow", "purple",
                                             "orange", "pink",  "white", "gray",  "black"};
  return v;
}
const std::vector<std::string>& size_names() {
  static const std::vector<std::string> v = {"small", "large"};
  return v;
}
const std::vector<std::string>& cell_names() {
  static const std::vector<std::string> v = {"top left",    "top",    "top right",    "left", "center", "right",
                                             "bottom left", "bottom", "bottom right"};
  return v;
}

std::array<uint8_t, 3> color_rgb(int color) {
  static const std::array<uint8_t, 3> table[kNumColors] = {
      {220, 30, 30},  {30, 160, 50},   {30, 70, 220},   {245, 215, 30}, {130, 50, 180},
      {245, 135, 20}, {245, 120, 190}, {245, 245, 245}, {128, 128, 128}, {15, 15, 15}};
  VL_CHECK(color >= 0 && color < kNumColors, "toy::color_rgb: colour ", color, " out of range [0, ", kNumColors, ")");
  return table[color];
}

const char* relation_phrase(Relation rel) {
  switch (rel) {
    case Relation::LEFT_OF: return "to the left of";
    case Relation::RIGHT_OF: return "to the right of";
    case Relation::ABOVE: return "above";
    case Relation::BELOW: return "below";
  }
  return "?";
}

bool holds(Relation rel, const ToyObject& a, const ToyObject& b) {
  switch (rel) {
    case Relation::LEFT_OF: return a.col() < b.col();
    case Relation::RIGHT_OF: return a.col() > b.col();
    case Relation::ABOVE: return a.row() < b.row();
    case Relation::BELOW: return a.row() > b.row();
  }
  return false;
}

const char* split_name(Split split) {
  switch (split) {
    case Split::TRAIN: return "train";
    case Split::TEST: return "test";
    case Split::HELDOUT_COMBOS: return "heldout_combos";
  }
  return "?";
}

const char* background_name(Background bg) {
  switch (bg) {
    case Background::UNIFORM: return "plain";
    case Background::GRADIENT: return "gradient";
    case Background::NOISE: return "noisy";
  }
  return "?";
}

Image ToySample::image() const {
  Image im;
  im.width = width, im.height = height, im.rgb = rgb;
  return im;
}

// ---- labels and text ------------------------------------------------------------------------------------
int label_of(int color, int shape) {
  VL_CHECK(color >= 0 && color < kNumColors && shape >= 0 && shape < kNumShapes, "toy::label_of: (color ", color,
           ", shape ", shape, ") out of range");
  return color * kNumShapes + shape;
}
int label_of(const ToySample& s) {
  VL_CHECK(!s.objects.empty(), "toy::label_of: sample has no objects");
  return s.objects[0].label();
}
std::pair<int, int> label_combo(int label) {
  VL_CHECK(label >= 0 && label < kNumLabels, "toy: label ", label, " out of range [0, ", kNumLabels, ")");
  return {label / kNumShapes, label % kNumShapes};
}
std::string label_name(int label) {
  auto [color, shape] = label_combo(label);
  return color_names()[color] + " " + shape_names()[shape];
}
std::vector<std::string> label_names() {
  std::vector<std::string> v;
  for (int l = 0; l < kNumLabels; ++l) v.push_back(label_name(l));
  return v;
}

namespace {
const std::vector<std::string>& prompt_templates() {
  static const std::vector<std::string> t = {"a photo of {}.", "a picture of {}.", "{}.", "an image of {}.",
                                             "a drawing of {}.", "a rendering of {}."};
  return t;
}
}  // namespace

std::string prompt(int label, int template_index) {
  VL_CHECK(template_index >= 0 && template_index < num_prompt_templates(), "toy::prompt: template ", template_index,
           " out of range [0, ", num_prompt_templates(), ")");
  const std::string name = label_name(label);
  std::string t = prompt_templates()[template_index];
  return t.replace(t.find("{}"), 2, std::string(article(name)) + " " + name);
}
int num_prompt_templates() { return static_cast<int>(prompt_templates().size()); }

std::string describe(const ToyObject& o, bool with_size) {
  std::string words = (with_size ? size_names().at(o.size) + " " : std::string()) + color_names().at(o.color) + " " +
                      shape_names().at(o.shape);
  return std::string(article(words)) + " " + words;
}

std::vector<std::string> all_captions(const ToySample& s) {
  VL_CHECK(!s.objects.empty(), "toy::all_captions: sample has no objects");
  std::vector<std::string> out;
  if (s.objects.size() == 1) {
    for (const auto& t : single_templates()) out.push_back(fill_template(t, s, Relation::LEFT_OF));
    return out;
  }
  const std::vector<Relation> rels = true_relations(s.objects[0], s.objects[1]);
  for (const auto& t : pair_templates()) {
    if (t.find("{R}") == std::string::npos) {
      out.push_back(fill_template(t, s, Relation::LEFT_OF));
    } else {
      for (Relation r : rels) out.push_back(fill_template(t, s, r));
    }
  }
  return out;
}

std::vector<std::pair<int, int>> default_held_out_combos() {
  // Colour c (red .. white) with shape (3c + 1) mod 8: red square, green hexagon, blue heart, yellow
  // triangle, purple cross, orange circle, pink star, white diamond. 3 is coprime with 8, so the
  // shapes are all different; gray and black keep every shape.
  std::vector<std::pair<int, int>> v;
  for (int c = 0; c < kNumShapes; ++c) v.push_back({c, (3 * c + 1) % kNumShapes});
  return v;
}

// ---- the generator ---------------------------------------------------------------------------------------
ToyWorld::ToyWorld(ToyWorldConfig config) : cfg_(std::move(config)) {
  const ToyWorldConfig& c = cfg_;
  VL_CHECK(c.image_size >= 16 && c.image_size <= 4096, "ToyWorld: image_size must be in [16, 4096], got ",
           c.image_size);
  VL_CHECK(c.max_objects == 1 || c.max_objects == 2, "ToyWorld: max_objects must be 1 or 2, got ", c.max_objects);
  auto prob = [](double p, const char* name) {
    VL_CHECK(p >= 0.0 && p <= 1.0, "ToyWorld: ", name, " must be in [0, 1], got ", p);
  };
  prob(c.two_object_prob, "two_object_prob");
  prob(c.gradient_bg_prob, "gradient_bg_prob");
  prob(c.noise_bg_prob, "noise_bg_prob");
  VL_CHECK(c.gradient_bg_prob + c.noise_bg_prob <= 1.0, "ToyWorld: gradient_bg_prob + noise_bg_prob must be <= 1, got ",
           c.gradient_bg_prob + c.noise_bg_prob);
  VL_CHECK(c.noise_amplitude >= 0 && c.noise_amplitude <= 127, "ToyWorld: noise_amplitude must be in [0, 127], got ",
           c.noise_amplitude);
  VL_CHECK(c.color_jitter >= 0 && c.color_jitter <= 64, "ToyWorld: color_jitter must be in [0, 64], got ",
           c.color_jitter);
  VL_CHECK(c.outline >= 0.0 && c.outline <= 0.05, "ToyWorld: outline must be in [0, 0.05] (a fraction of the side), got ",
           c.outline);
  outline_q_ = static_cast<int64_t>(std::llround(c.outline * c.image_size * kQ));
  VL_CHECK(c.supersample == 1 || c.supersample == 2 || c.supersample == 4 || c.supersample == 8 ||
               c.supersample == 16,
           "ToyWorld: supersample must be 1, 2, 4, 8 or 16, got ", c.supersample);
  held_out_.assign(kNumLabels, false);
  for (const auto& [color, shape] : c.held_out_combos) {
    VL_CHECK(color >= 0 && color < kNumColors && shape >= 0 && shape < kNumShapes,
             "ToyWorld: held_out_combos has (color ", color, ", shape ", shape, "), out of range");
    held_out_[label_of(color, shape)] = true;
  }
  for (int l = 0; l < kNumLabels; ++l) (held_out_[l] ? unseen_ : seen_).push_back(l);
  for (int color = 0; color < kNumColors; ++color) {
    bool any = false;
    for (int shape = 0; shape < kNumShapes; ++shape) any |= !held_out_[label_of(color, shape)];
    VL_CHECK(any, "ToyWorld: held_out_combos holds every shape of colour '", color_names()[color],
             "', so TRAIN would never show it");
  }
  for (int shape = 0; shape < kNumShapes; ++shape) {
    bool any = false;
    for (int color = 0; color < kNumColors; ++color) any |= !held_out_[label_of(color, shape)];
    VL_CHECK(any, "ToyWorld: held_out_combos holds every colour of shape '", shape_names()[shape],
             "', so TRAIN would never show it");
  }
}

bool ToyWorld::is_held_out(int color, int shape) const { return held_out_[label_of(color, shape)]; }
std::vector<int> ToyWorld::seen_labels() const { return seen_; }
std::vector<int> ToyWorld::held_out_labels() const { return unseen_; }

ToySample ToyWorld::sample(uint64_t index, Split split) const { return make(index, split, -1); }

ToySample ToyWorld::sample_with_shape(uint64_t index, Split split, int shape) const {
  VL_CHECK(shape >= 0 && shape < kNumShapes, "ToyWorld::sample_with_shape: shape ", shape, " out of range [0, ",
           kNumShapes, ")");
  return make(index, split, shape);
}

ToySample ToyWorld::make(uint64_t index, Split split, int main_shape) const {
  VL_CHECK(split != Split::HELDOUT_COMBOS || !unseen_.empty(),
           "ToyWorld::sample: split heldout_combos is empty because config.held_out_combos is empty");
  const int S = cfg_.image_size, k = cfg_.supersample;
  ToySample s;
  s.width = s.height = S;
  s.split = split;
  s.index = index;
  s.key = hash_combine(hash_combine(hash_combine(0x70795F776F726C64ull, cfg_.seed), static_cast<uint64_t>(split)),
                       index);
  Draws rng(s.key);

  const bool two = cfg_.max_objects >= 2 && rng.chance(cfg_.two_object_prob);
  // One object's layout, integer Q units throughout. CELL_ALIGNED: cell centres at 1/6, 1/2, 5/6 of the
  // side, +- 1.5% jitter, scale r in [7.5%, 9%] (small) or [10.5%, 12%] (large) of the side, so that
  // jitter + r + outline (<= 16.3%) stays within the cell's half side (16.67%). CLASSIC: centres at
  // 22% / 50% / 78%, +- 3.5% jitter, r in [7.5%, 9.5%] or [14.5%, 17%].
  const int64_t side = static_cast<int64_t>(S) * kQ;
  const bool aligned = cfg_.layout == Layout::CELL_ALIGNED;
  auto place = [&](int label) {
    Placed o;
    o.color = label / kNumShapes, o.shape = label % kNumShapes;
    o.size = rng.below(kNumSizes);
    o.cell = rng.below(kNumCells);
    const int64_t jitter = side * (aligned ? 15 : 35) / 1000;
    auto centre = [&](int i) {  // i = column or row, 0..2
      return aligned ? side * (1 + 2 * i) / 6 : side * (220 + 280 * i) / 1000;
    };
    o.cx = centre(o.cell % 3) + rng.between(-jitter, jitter);
    o.cy = centre(o.cell / 3) + rng.between(-jitter, jitter);
    if (aligned)
      o.r = o.size == SMALL ? rng.between(side * 75 / 1000, side * 90 / 1000)
                            : rng.between(side * 105 / 1000, side * 120 / 1000);
    else
      o.r = o.size == SMALL ? rng.between(side * 75 / 1000, side * 95 / 1000)
                            : rng.between(side * 145 / 1000, side * 170 / 1000);
    const std::array<uint8_t, 3> base = color_rgb(o.color);
    for (int c = 0; c < 3; ++c)
      o.rgb[c] = static_cast<uint8_t>(std::clamp<int64_t>(base[c] + rng.between(-cfg_.color_jitter, cfg_.color_jitter),
                                                          0, 255));
    return o;
  };
  const std::vector<int>& main_pool = split == Split::HELDOUT_COMBOS ? unseen_ : seen_;
  const int drawn_label = main_pool[rng.below(static_cast<int>(main_pool.size()))];
  int main_label = drawn_label;
  if (main_shape >= 0) {  // the counterfactual: same draws, another shape
    main_label = (main_label / kNumShapes) * kNumShapes + main_shape;
    VL_CHECK(split == Split::HELDOUT_COMBOS || !held_out_[main_label], "ToyWorld::sample_with_shape: ",
             label_name(main_label), " is a held-out combination; it cannot appear in split ", split_name(split));
  }
  std::vector<Placed> objs{place(main_label)};
  if (two) {
    // The second object: a different seen combination in a different cell, at least a pixel away.
    // 64 attempts; in the (rare) case that none fits, the sample keeps one object.
    for (int attempt = 0; attempt < 64; ++attempt) {
      int label = seen_[rng.below(static_cast<int>(seen_.size()))];
      // Compared with the drawn main label, not an overridden one, so that a counterfactual
      // (sample_with_shape) consumes the same draws and keeps the rest of the scene.
      if (label == drawn_label) continue;
      Placed b = place(label);
      if (b.cell == objs[0].cell || too_close(outlined(objs[0], outline_q_), outlined(b, outline_q_), S, k)) continue;
      objs.push_back(b);
      break;
    }
  }

  const double u = rng.uniform();
  s.background = u < cfg_.noise_bg_prob                         ? Background::NOISE
                 : u < cfg_.noise_bg_prob + cfg_.gradient_bg_prob ? Background::GRADIENT
                                                                  : Background::UNIFORM;
  s.rgb.resize(static_cast<size_t>(S) * S * 3);
  fill_background(s.rgb, S, s.background, rng, objs, cfg_.noise_amplitude, s.key);
  for (const Placed& o : objs) {
    if (outline_q_ > 0) render(s.rgb, S, outlined(o, outline_q_), k);  // the outline first, the fill over it
    render(s.rgb, S, o, k);
    s.objects.push_back(to_public(o));
  }

  // Caption: a random template; for two objects, a random relation among those that hold.
  if (objs.size() == 1) {
    const auto& t = single_templates();
    s.caption = fill_template(t[rng.below(static_cast<int>(t.size()))], s, Relation::LEFT_OF);
  } else {
    const auto& t = pair_templates();
    const std::string& tpl = t[rng.below(static_cast<int>(t.size()))];
    const std::vector<Relation> rels = true_relations(s.objects[0], s.objects[1]);
    s.caption = fill_template(tpl, s, rels[rng.below(static_cast<int>(rels.size()))]);
  }
  return s;
}

Tensor ToyWorld::batch(const std::vector<uint64_t>& indices, Split split, std::vector<ToySample>* samples,
                       const PixelNorm& norm) const {
  std::vector<ToySample> v(indices.size());
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t i = 0; i < static_cast<int64_t>(indices.size()); ++i) {
    try {
      v[i] = sample(indices[i], split);
    } catch (...) {
#pragma omp critical(vislang_toy_batch)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  Tensor out = to_tensor(v, norm);  // (B, 3, S, S)
  if (samples) *samples = std::move(v);
  return out;
}

std::vector<std::pair<std::string, std::string>> ToyWorld::write_folder(const std::string& dir, int64_t n,
                                                                        Split split, uint64_t first_index) const {
  VL_CHECK(n >= 0, "ToyWorld::write_folder: n must be >= 0, got ", n);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  VL_CHECK(!ec && std::filesystem::is_directory(dir), "ToyWorld::write_folder: cannot create directory '", dir,
           "': ", ec ? ec.message() : "not a directory");
  std::vector<std::pair<std::string, std::string>> rows(static_cast<size_t>(n));
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t i = 0; i < n; ++i) {
    try {
      const uint64_t index = first_index + static_cast<uint64_t>(i);
      std::string num = std::to_string(index);
      if (num.size() < 6) num.insert(0, 6 - num.size(), '0');
      const std::string name = str(split_name(split), "_", num, ".png");
      const ToySample s = sample(index, split);
      write_png(dir + "/" + name, s);
      rows[i] = {name, s.caption};
    } catch (...) {
#pragma omp critical(vislang_toy_folder)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  auto csv_field = [](const std::string& f) {
    if (f.find_first_of(",\"\n\r") == std::string::npos) return f;
    std::string q = "\"";
    for (char ch : f) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
    return q + "\"";
  };
  std::string csv = "path,caption\n";
  for (const auto& [path, caption] : rows) csv += csv_field(path) + "," + csv_field(caption) + "\n";
  write_file_atomic(dir + "/captions.csv", csv.data(), csv.size());
  return rows;
}

// ---- tensors and files -----------------------------------------------------------------------------------
Tensor to_tensor(const ToySample& s, const PixelNorm& norm) {
  return to_normalized_tensor(s.image(), norm.mean, norm.std);
}

Tensor to_tensor(const std::vector<ToySample>& batch, const PixelNorm& norm) {
  VL_CHECK(!batch.empty(), "toy::to_tensor: empty batch");
  const int W = batch[0].width, H = batch[0].height;
  for (size_t i = 0; i < batch.size(); ++i)
    VL_CHECK(batch[i].width == W && batch[i].height == H, "toy::to_tensor: sample ", i, " is ", batch[i].width, " x ",
             batch[i].height, " but sample 0 is ", W, " x ", H);
  Tensor out = Tensor::empty({static_cast<int64_t>(batch.size()), 3, H, W}, DType::F32);  // (B, 3, H, W)
  const size_t per = static_cast<size_t>(3) * H * W;
  float* o = out.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < static_cast<int64_t>(batch.size()); ++i) {
    Tensor t = to_tensor(batch[i], norm);  // (3, H, W)
    std::memcpy(o + i * per, t.data<float>(), per * sizeof(float));
  }
  return out;
}

void write_png(const std::string& path, const ToySample& s) {
  VL_CHECK(s.width > 0 && s.height > 0 && s.rgb.size() == static_cast<size_t>(s.width) * s.height * 3,
           "toy::write_png '", path, "': bad sample ", s.width, " x ", s.height, " with ", s.rgb.size(), " bytes");
  vislang::write_png(path, s.rgb.data(), s.width, s.height, 3);
}

// ---- VQA -------------------------------------------------------------------------------------------------
const char* question_type_name(QuestionType t) {
  static const char* names[kNumQuestionTypes] = {"color",          "shape",         "count", "exists",
                                                 "relation_yesno", "relation_what", "size",  "position"};
  const int i = static_cast<int>(t);
  return i >= 0 && i < kNumQuestionTypes ? names[i] : "?";
}

const std::vector<std::string>& answer_vocab() {
  static const std::vector<std::string> v = [] {
    std::vector<std::string> a = {"yes", "no"};
    for (const auto& c : color_names()) a.push_back(c);
    for (const auto& s : shape_names()) a.push_back(s);
    for (const char* n : {"zero", "one", "two"}) a.push_back(n);
    for (const auto& s : size_names()) a.push_back(s);
    for (const auto& c : cell_names()) a.push_back(c);
    a.push_back("nothing");
    return a;
  }();
  return v;
}

int answer_id(const std::string& answer) {
  const auto& v = answer_vocab();
  auto it = std::find(v.begin(), v.end(), answer);
  return it == v.end() ? -1 : static_cast<int>(it - v.begin());
}

std::vector<ToyQA> questions(const ToySample& s, uint64_t seed, const std::vector<std::pair<int, int>>& avoid) {
  VL_CHECK(!s.objects.empty(), "toy::questions: sample has no objects");
  const auto& objs = s.objects;
  Draws rng(hash_combine(hash_combine(s.key, 0x565141ull /* "VQA" */), seed));
  std::vector<ToyQA> out;
  auto add = [&](QuestionType type, std::string q, const std::string& a) {
    const int id = answer_id(a);
    VL_CHECK(id >= 0, "toy::questions: answer '", a, "' is not in answer_vocab()");
    out.push_back({type, std::move(q), a, id});
  };
  auto count_if = [&](auto pred) {
    int n = 0;
    for (const ToyObject& o : objs) n += pred(o);
    return n;
  };
  auto shape_unique = [&](const ToyObject& o) { return count_if([&](const ToyObject& p) { return p.shape == o.shape; }) == 1; };
  auto color_unique = [&](const ToyObject& o) { return count_if([&](const ToyObject& p) { return p.color == o.color; }) == 1; };
  // The shortest phrase that names exactly one object (two objects never share colour and shape).
  auto ref = [&](const ToyObject& o) {
    if (shape_unique(o)) return "the " + shape_names()[o.shape];
    if (color_unique(o)) return "the " + color_names()[o.color] + " object";
    return "the " + color_names()[o.color] + " " + shape_names()[o.shape];
  };
  const char* numbers[] = {"zero", "one", "two"};

  for (const ToyObject& o : objs)
    if (shape_unique(o)) add(QuestionType::COLOR, "what color is the " + shape_names()[o.shape] + "?", color_names()[o.color]);
  for (const ToyObject& o : objs)
    if (color_unique(o))
      add(QuestionType::SHAPE, "what shape is the " + color_names()[o.color] + " object?", shape_names()[o.shape]);

  add(QuestionType::COUNT, "how many objects are there?", numbers[objs.size()]);
  {  // a present shape half of the time, else any shape (often absent)
    const int shape = rng.chance(0.5) ? objs[rng.below(static_cast<int>(objs.size()))].shape : rng.below(kNumShapes);
    add(QuestionType::COUNT, "how many " + shape_plurals()[shape] + " are there?",
        numbers[count_if([&](const ToyObject& p) { return p.shape == shape; })]);
  }

  {  // one present object ("yes") and one absent combination ("no"), often sharing a word with an object
    const ToyObject& o = objs[rng.below(static_cast<int>(objs.size()))];
    add(QuestionType::EXISTS, "is there " + describe(o, false) + "?", "yes");
    auto present = [&](int color, int shape) {
      return count_if([&](const ToyObject& p) { return p.color == color && p.shape == shape; }) > 0;
    };
    auto avoided = [&](int color, int shape) {
      return std::find(avoid.begin(), avoid.end(), std::make_pair(color, shape)) != avoid.end();
    };
    for (int attempt = 0; attempt < 256; ++attempt) {
      int color = rng.below(kNumColors), shape = rng.below(kNumShapes);
      if (attempt < 128) {  // hard negative: keep one word of a present object
        const ToyObject& p = objs[rng.below(static_cast<int>(objs.size()))];
        if (rng.chance(0.5)) {
          color = p.color;
        } else {
          shape = p.shape;
        }
      }
      if (present(color, shape) || avoided(color, shape)) continue;
      ToyObject absent;
      absent.color = color, absent.shape = shape;
      add(QuestionType::EXISTS, "is there " + describe(absent, false) + "?", "no");
      break;
    }
  }

  if (objs.size() == 2) {  // yes/no relation, each direction; half the time a relation that holds
    for (int d = 0; d < 2; ++d) {
      const ToyObject &a = objs[d], &b = objs[1 - d];
      std::vector<Relation> yes = true_relations(a, b), no;
      for (int r = 0; r < kNumRelations; ++r)
        if (!holds(static_cast<Relation>(r), a, b)) no.push_back(static_cast<Relation>(r));
      const bool pick_yes = rng.chance(0.5);
      const std::vector<Relation>& pool = pick_yes ? yes : no;
      const Relation rel = pool[rng.below(static_cast<int>(pool.size()))];
      add(QuestionType::RELATION_YESNO, "is " + ref(a) + " " + relation_phrase(rel) + " " + ref(b) + "?",
          holds(rel, a, b) ? "yes" : "no");
    }
  }
  {  // "what is above the star?": the other object's shape, or "nothing"
    const int bi = rng.below(static_cast<int>(objs.size()));
    const ToyObject& b = objs[bi];
    const ToyObject* a = objs.size() == 2 ? &objs[1 - bi] : nullptr;
    std::vector<Relation> yes = a ? true_relations(*a, b) : std::vector<Relation>{};
    Relation rel = static_cast<Relation>(rng.below(kNumRelations));
    if (!yes.empty() && rng.chance(0.5)) rel = yes[rng.below(static_cast<int>(yes.size()))];
    add(QuestionType::RELATION_WHAT, std::string("what is ") + relation_phrase(rel) + " " + ref(b) + "?",
        a && holds(rel, *a, b) ? shape_names()[a->shape] : "nothing");
  }
  for (const ToyObject& o : objs) add(QuestionType::SIZE, "what size is " + ref(o) + "?", size_names()[o.size]);
  for (const ToyObject& o : objs) add(QuestionType::POSITION, "where is " + ref(o) + "?", cell_names()[o.cell]);
  return out;
}

}  // namespace vislang::toy
