// datasets/toy_world.h — "toy world": a deterministic generator of small RGB scenes (coloured shapes on
// plain, gradient or noisy backgrounds) with captions, structured labels and VQA questions.
//
// Where it sits: ToyWorld::sample(i, split) → ToySample (u8 pixels + caption + objects) → to_tensor /
// ToyWorld::batch (f32 (B, 3, S, S), CLIP-normalized) → vision tower; the caption → tokenizer → text tower.
// Training (contrastive), zero-shot evaluation (label_name / prompt), the search engine's demo folder
// (ToyWorld::write_folder) and VQA (questions) all draw from here.
//
// Determinism: sample i of a split is a pure function of (config, split, i). Every random choice comes
// from a counter-based hash (splitmix64) of (seed, split, index, draw number) — no shared sequential RNG
// and no std:: distributions — so a data loader may draw any index, in any order, on any thread or
// machine, and gets the same bytes. Geometry is integer (1/256-pixel fixed point), so pixels do not
// depend on floating-point contraction or libm either.
//
// Coordinates: pixels, x to the right, y down, (0, 0) the top-left corner of the top-left pixel; pixel
// (x, y) covers [x, x + 1) x [y, y + 1). The 3x3 position grid: cell = row * 3 + col, row 0 = top,
// col 0 = left, cell 4 = center.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "image/image.h"

namespace vislang::toy {

// ---- vocabulary ------------------------------------------------------------------------------------
// Index orders are part of the API (labels are color * kNumShapes + shape): append, never reorder.
enum ShapeId : int { CIRCLE, SQUARE, TRIANGLE, STAR, HEXAGON, CROSS, DIAMOND, HEART, kNumShapes };
enum ColorId : int { RED, GREEN, BLUE, YELLOW, PURPLE, ORANGE, PINK, WHITE, GRAY, BLACK, kNumColors };
enum SizeId : int { SMALL, LARGE, kNumSizes };
constexpr int kNumCells = 9;  // 3 x 3 position grid

const std::vector<std::string>& shape_names();   // "circle", "square", ..., "heart"     (kNumShapes)
const std::vector<std::string>& shape_plurals(); // "circles", ..., "crosses", ...        (kNumShapes)
const std::vector<std::string>& color_names();   // "red", "green", ..., "black"          (kNumColors)
const std::vector<std::string>& size_names();    // "small", "large"                      (kNumSizes)
const std::vector<std::string>& cell_names();    // "top left", "top", "top right", "left", "center",
                                                 // "right", "bottom left", "bottom", "bottom right"
// The nominal RGB of each colour (objects are drawn with this +- ToyWorldConfig::color_jitter).
std::array<uint8_t, 3> color_rgb(int color);

// Spatial relations between two objects, from their grid cells: LEFT_OF means col(a) < col(b), ABOVE
// means row(a) < row(b), etc. Two objects of one image are always in different cells, so at least one
// relation holds; a diagonal placement makes two hold (e.g. LEFT_OF and ABOVE).
enum class Relation : int { LEFT_OF, RIGHT_OF, ABOVE, BELOW };
constexpr int kNumRelations = 4;
const char* relation_phrase(Relation rel);  // "to the left of", "to the right of", "above", "below"

enum class Split : int {
  TRAIN,           // only colour x shape combinations not in held_out_combos (every object)
  TEST,            // the same distribution as TRAIN, different images (seen combinations)
  HELDOUT_COMBOS,  // the main object (objects[0]) is a held-out combination; others are seen ones
};
const char* split_name(Split split);  // "train", "test", "heldout_combos"

enum class Background : int { UNIFORM, GRADIENT, NOISE };
const char* background_name(Background bg);  // "plain", "gradient", "noisy"

// ---- samples ---------------------------------------------------------------------------------------
struct ToyObject {
  int shape = 0, color = 0, size = 0;  // ShapeId, ColorId, SizeId
  int cell = 4;                        // 0..8, row-major 3x3 grid (see top of file)
  float cx = 0, cy = 0;                // the shape's centre in pixels (always inside the shape)
  float r = 0;                         // the shape's scale in pixels: its half-extent, ~ half the bbox side
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // tight bounding box in pixels, [x0, x1) x [y0, y1)
  std::array<uint8_t, 3> rgb{};        // the colour actually drawn (nominal colour + jitter)

  int row() const { return cell / 3; }
  int col() const { return cell % 3; }
  int label() const { return color * kNumShapes + shape; }  // the zero-shot label, see label_name()
};

// True when `rel` holds for (a, b), e.g. holds(Relation::LEFT_OF, a, b): a is left of b.
bool holds(Relation rel, const ToyObject& a, const ToyObject& b);

struct ToySample {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;        // u8 (H, W, 3), rows top to bottom: rgb[(y * W + x) * 3 + c]
  std::vector<ToyObject> objects;  // 1 or 2; objects[0] is the main object (the one captions start with)
  std::string caption;             // one template, chosen per sample
  Background background = Background::UNIFORM;
  Split split = Split::TRAIN;
  uint64_t index = 0;  // sample index within its split
  uint64_t key = 0;    // hash of (seed, split, index): the root of this sample's randomness

  Image image() const;  // a copy as a vislang::Image (for image/ functions)
};

// ---- labels and prompts (zero-shot classification over all colour x shape pairs) -----------------
constexpr int kNumLabels = kNumColors * kNumShapes;
int label_of(int color, int shape);                  // color * kNumShapes + shape
int label_of(const ToySample& s);                    // the main object's label (objects[0])
std::pair<int, int> label_combo(int label);          // (color, shape); throws when out of range
std::string label_name(int label);                   // "red circle"
std::vector<std::string> label_names();              // all kNumLabels names, in label order
// Zero-shot prompt for a label: template 0 is "a photo of a red circle."; the others ("a picture of a
// red circle.", "a red circle.", ...) are for prompt ensembling. template_index in [0, num_prompt_templates()).
std::string prompt(int label, int template_index = 0);
int num_prompt_templates();
// "a small red circle" / "an orange star": article + optional size + colour + shape.
std::string describe(const ToyObject& o, bool with_size = true);
// Every caption template applied to this sample (the one in s.caption is among them), for retrieval
// ground truth and text augmentation.
std::vector<std::string> all_captions(const ToySample& s);

// The default held-out set: 8 of the 80 colour x shape pairs (10%), one per shape, each colour at most
// once, so every colour and every shape still appears in TRAIN. Pairs are (color, shape).
std::vector<std::pair<int, int>> default_held_out_combos();

// ---- the generator ---------------------------------------------------------------------------------
// Per-channel normalization (x / 255 - mean) / std; the default is CLIP's mean/std.
struct PixelNorm {
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
};

// Where objects sit. CELL_ALIGNED (the default): each object lies inside its own third x third cell of
// the image (centres at 1/6, 1/2, 5/6 of the side), so a ViT whose patch is a third of the image sees
// every object whole in one token. CLASSIC: the first layout (centres at 22% / 50% / 78%, larger
// "large" objects that may span cells); kept so that results measured with it stay reproducible
// (the VQA fusion recipe, docs/fusion.md).
enum class Layout : int { CELL_ALIGNED, CLASSIC };

struct ToyWorldConfig {
  int image_size = 72;           // S: images are S x S (>= 16; 72 for training, 224 for CLIP-sized)
  Layout layout = Layout::CELL_ALIGNED;
  // Every object is drawn with a dark (RGB 20, 20, 20) outline this fraction of the side wide (2.8% =
  // 2 px at 72 px), like clip art; 0 = none. The outline is the same for every colour, so the shape is
  // visible to a linear filter: without it a tiny ViT barely learns shape in minutes (docs/contrastive.md).
  double outline = 0.028;
  int max_objects = 2;           // 1 or 2 objects per image
  double two_object_prob = 0.5;  // P(two objects) when max_objects == 2
  double gradient_bg_prob = 0.2;  // P(gradient background)
  double noise_bg_prob = 0.2;     // P(noisy background); the rest are uniform (plain)
  int noise_amplitude = 40;       // noisy backgrounds: base colour +- this per channel (u8 levels)
  int color_jitter = 12;          // each object's colour is the nominal RGB +- this per channel
  int supersample = 4;            // anti-aliasing: k x k samples per pixel; 1, 2, 4, 8 or 16
  uint64_t seed = 0;
  std::vector<std::pair<int, int>> held_out_combos = default_held_out_combos();  // (color, shape)
};

class ToyWorld {
 public:
  // Validates the config (sizes, probabilities, held-out pairs; every colour and every shape must keep
  // at least one training combination); throws vislang::Error naming the bad field.
  explicit ToyWorld(ToyWorldConfig config = {});
  const ToyWorldConfig& config() const { return cfg_; }

  // Sample `index` of `split`: a pure function of (config, split, index). Thread-safe.
  ToySample sample(uint64_t index, Split split = Split::TRAIN) const;
  // The scene of sample(index, split) with the main object's shape replaced by `shape`: same main
  // object colour, size and position, same caption template; for one-object scenes also the same
  // background, so the two differ in shape only (contrastive training uses such pairs as hard
  // negatives). In two-object scenes the second object and the background may differ (their
  // placement depends on the main object's outline). Throws when (main colour, shape) is a held-out
  // combination and split is not HELDOUT_COMBOS.
  ToySample sample_with_shape(uint64_t index, Split split, int shape) const;

  bool is_held_out(int color, int shape) const;
  std::vector<int> seen_labels() const;      // labels allowed in TRAIN, ascending
  std::vector<int> held_out_labels() const;  // labels of held_out_combos, ascending

  // f32 (B, 3, S, S) on the CPU, normalized with `norm`, for the given indices of `split` (rendered in
  // parallel with OpenMP). `samples`, when given, receives the ToySamples (captions, objects), B of them.
  Tensor batch(const std::vector<uint64_t>& indices, Split split, std::vector<ToySample>* samples = nullptr,
               const PixelNorm& norm = {}) const;

  // Writes samples first_index .. first_index + n - 1 of `split` as <dir>/<split>_<index>.png (6+ digits,
  // zero padded) and <dir>/captions.csv ("path,caption" header, path relative to dir, RFC 4180
  // quoting). Creates `dir`. Returns the CSV rows (path relative to dir, caption).
  std::vector<std::pair<std::string, std::string>> write_folder(const std::string& dir, int64_t n,
                                                                Split split = Split::TRAIN,
                                                                uint64_t first_index = 0) const;

 private:
  ToySample make(uint64_t index, Split split, int main_shape) const;  // main_shape < 0: as drawn
  ToyWorldConfig cfg_;
  std::vector<bool> held_out_;       // (kNumLabels): label is held out
  std::vector<int> seen_, unseen_;   // labels
  int64_t outline_q_ = 0;            // outline width in 1/256 pixel (from config().outline)
};

// ---- tensors and files -----------------------------------------------------------------------------
Tensor to_tensor(const ToySample& s, const PixelNorm& norm = {});                  // f32 (3, S, S)
Tensor to_tensor(const std::vector<ToySample>& batch, const PixelNorm& norm = {});  // f32 (B, 3, S, S)
// The sample's pixels as an RGB PNG (atomic write; errors name the path).
void write_png(const std::string& path, const ToySample& s);

// ---- VQA -------------------------------------------------------------------------------------------
enum class QuestionType : int {
  COLOR,          // "what color is the circle?"                         -> a colour name
  SHAPE,          // "what shape is the red object?"                     -> a shape name
  COUNT,          // "how many objects are there?", "how many stars are there?" -> "zero"/"one"/"two"
  EXISTS,         // "is there a blue triangle?"                         -> "yes"/"no"
  RELATION_YESNO, // "is the circle to the left of the square?"          -> "yes"/"no"
  RELATION_WHAT,  // "what is above the star?"                           -> a shape name or "nothing"
  SIZE,           // "what size is the circle?"                          -> "small"/"large"
  POSITION,       // "where is the circle?"                              -> a cell name ("top left", ...)
};
constexpr int kNumQuestionTypes = 8;
const char* question_type_name(QuestionType t);  // "color", "shape", ...

struct ToyQA {
  QuestionType type = QuestionType::COLOR;
  std::string question;
  std::string answer;  // always an element of answer_vocab()
  int answer_id = -1;  // its index in answer_vocab()
};

// The fixed answer vocabulary: "yes", "no", the colour names, the shape names, "zero", "one", "two",
// the size names, the cell names, "nothing". Order is stable (append only).
const std::vector<std::string>& answer_vocab();
int answer_id(const std::string& answer);  // index in answer_vocab(), -1 when absent

// Every applicable question about `s`, in QuestionType order, with answers derived from s.objects.
// Objects are named by the shortest unambiguous phrase ("the circle", "the red object", "the red
// circle"). Random choices (which relation or shape to ask about, the absent combination in a "no"
// EXISTS question) are a pure function of (s.key, seed); yes/no questions are about half "yes".
// A 1-object sample yields 9 questions, a 2-object one 13 to 15.
// `avoid`: (color, shape) pairs never named in a question about an absent object — pass
// world.config().held_out_combos for TRAIN samples so held-out combinations stay out of training text.
std::vector<ToyQA> questions(const ToySample& s, uint64_t seed = 0,
                             const std::vector<std::pair<int, int>>& avoid = {});

}  // namespace vislang::toy
