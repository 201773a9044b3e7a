// cli/clip_common.h — what the model subcommands (cli/clip_commands.cpp, cli/bench_clip.cpp,
// cli/search_commands.cpp) share: the common model options, ONE loading path for both model families
// (CLIP and BLIP-2 retrieval, told apart from the files), their tokenizers, the shared data folder,
// image preprocessing from the model's config, batched encoding, BLIP-2's ITC/ITM scoring options,
// and the output formats (JSON lines, NumPy .npy, atomic files, a progress bar on stderr).
//
// Data flow of every command:
//   image paths → preprocess_files (image/clip_preprocess.h) → encode_image ┐  CLIP: (N, E)
//   texts → tokenize_texts (BPE or WordPiece) → encode_text                 ├→ output
//                                                                           ┘  BLIP-2: (N, Q, E), (N, E)
// Model family (detect_family): a folder whose config.json has model_type "blip-2" (architectures
// Blip2ForImageTextRetrieval), or a .safetensors whose vislang.config has model_type "blip2", is a
// BLIP-2 retrieval model (models/blip2/blip2.h); everything else is loaded as CLIP. --device, --dtype,
// --threads and --batch mean the same for both.
//
// Where the CLIP tokenizer comes from (first match wins):
//   1. --bpe PATH (a bpe_simple_vocab_16e6.txt.gz, or a folder with vocab.json + merges.txt)
//   2. the model folder's own vocab.json + merges.txt (a Hugging Face CLIP folder)
//   3. $VISLANG_BPE
//   4. <shared>/data/clip/bpe_simple_vocab_16e6.txt.gz, <shared> found by find_shared_dir()
// An explicit --bpe wins over the model folder (an explicit option should never be ignored).
// BLIP-2's BERT WordPiece tokenizer: --vocab PATH (a vocab.txt, or a folder with vocab.txt and
// optionally tokenizer_config.json), else the model folder's vocab.txt (a Hugging Face BLIP-2 folder
// has one; a converted .safetensors has none and needs --vocab).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <functional>
#include <memory>

#include "cli/args.h"
#include "image/clip_preprocess.h"
#include "models/blip2/blip2.h"
#include "models/clip/clip.h"
#include "tokenizer/clip_tokenizer.h"
#include "tokenizer/wordpiece.h"

namespace vislang::cli {

class Progress;

// ---- locations ----------------------------------------------------------------------------------
// Folder of the running executable (/proc/self/exe); "" when unknown.
std::string executable_dir();
// The shared data folder (the one holding data/clip/): $VISLANG_SHARED_DIR if set (it must then
// hold data/), else the first "<ancestor>/shared" of the executable's folder that holds
// data/clip/ (build/bin/vislang → <repo>/../shared). "" when none is found.
std::string find_shared_dir();
// Every place find_shared_dir() looked, for error messages.
std::string shared_dir_search_description();

// ---- common model options ----------------------------------------------------------------------
// --model, --device, --dtype, --threads (and --bpe, --vocab, --truncate for commands that tokenize).
void add_model_options(ArgParser& p, bool with_tokenizer);

struct Runtime {
  Device device;
  DType dtype = DType::F32;
  int threads = 0;  // the OpenMP thread count in effect
};
// Parses --device / --dtype / --threads, sets the OpenMP thread count and checks that the device
// exists (a CUDA request on a build or machine without CUDA fails here with the backend's message).
Runtime apply_runtime_options(const Parsed& a);
DType parse_dtype(const std::string& s);  // f32|f16|bf16 (and float32, fp16, half, bfloat16, ...)

// The --model value; UsageError when absent.
std::string model_path(const Parsed& a);
// ClipModel::load with a clear error for a path that does not exist.
clip::ClipModel load_model(const std::string& path, const Runtime& rt);

// ---- one loading path for CLIP and BLIP-2 ---------------------------------------------------------
enum class Family { CLIP, BLIP2 };
// From the files only (config.json / the vislang.config metadata), without loading weights.
Family detect_family(const std::string& path);

// A loaded model of either family: `clip` is set for CLIP, `blip2` for BLIP-2.
struct VlModel {
  Family family = Family::CLIP;
  std::string path;
  std::shared_ptr<const clip::ClipModel> clip;
  std::shared_ptr<const blip2::Blip2Retrieval> blip2;
  bool is_blip2() const { return family == Family::BLIP2; }
  // "CLIP model 'PATH'" / "BLIP-2 model 'PATH'", for messages.
  std::string describe() const;
  // CLIP: shorter side + center crop (OpenAI's rule); BLIP-2: resize to size x size, no crop.
  PreprocessConfig preprocess() const;
  int64_t embed_dim() const;  // E: CLIP's projection_dim, BLIP-2's image_text_hidden_size
};
// load_model (CLIP) or Blip2Retrieval::load, by detect_family, with the runtime's device and dtype.
VlModel load_vl_model(const std::string& path, const Runtime& rt);

// The text side of either family: CLIP's BPE or BLIP-2's WordPiece tokenizer.
struct TextTokenizer {
  std::shared_ptr<const ClipTokenizer> clip;
  std::shared_ptr<const WordPieceTokenizer> wordpiece;
  std::string source;  // where it was read from, for messages
};
// The tokenizer of the model at `model` (of family `family`, e.g. detect_family(model)): callers
// load it before the weights, so that a missing vocabulary fails fast. --bpe with a BLIP-2 model or
// --vocab with a CLIP model: UsageError.
TextTokenizer load_text_tokenizer(const Parsed& a, Family family, const std::string& model);
// BLIP-2's WordPiece tokenizer for `model` (see the order above); Error naming what is missing.
WordPieceTokenizer load_wordpiece(const Parsed& a, const std::string& model);

// The CLIP tokenizer for `model` (see the order above). `model` may be "" (vislang tokenize).
ClipTokenizer load_tokenizer(const Parsed& a, const std::string& model);
// Where load_tokenizer would read from, as "vocab.json + merges.txt in DIR" or a path.
std::string tokenizer_source(const Parsed& a, const std::string& model);

// Image preprocessing for a model: size/mean/std from config().preprocess, OpenAI crop rule.
PreprocessConfig preprocess_config(const clip::ClipConfig& c);

// ---- tokenizing and encoding -------------------------------------------------------------------
// The first 57 bytes of a long text (whole UTF-8 characters) + "...", for messages.
std::string text_preview(const std::string& t);
// clip.tokenize for each text, zero-padded to `context_length`: (N, context_length) i32. A text too
// long without `truncate`: vislang::Error naming the text (its number and beginning) and the counts.
Tensor tokenize_batch(const ClipTokenizer& tok, const std::vector<std::string>& texts, int context_length,
                      bool truncate);
// Tokenized texts of either family: CLIP ids (N, context_length) i32 and no mask; BLIP-2 ids and
// attention mask (N, T) i64, padded to the longest (Blip2Retrieval::tokenize). Every text is checked
// before any is encoded: one too long without `truncate` is an Error naming it.
struct TextBatch {
  Tensor ids, mask;  // mask undefined for CLIP
  int64_t size() const { return ids.defined() ? ids.size(0) : 0; }
  TextBatch rows(int64_t start, int64_t n) const;            // rows [start, start + n)
  TextBatch select(const std::vector<int64_t>& rows) const;  // the given rows, in that order
};
TextBatch tokenize_texts(const VlModel& m, const TextTokenizer& tok, const std::vector<std::string>& texts,
                         bool truncate);
// encode_text in batches of `batch`: (N, E) f32 on the CPU. CLIP: as the model returns them (not
// normalized); BLIP-2: L2-normalized (as HF's text_embeds).
Tensor encode_texts(const VlModel& m, const TextBatch& texts, int batch);
Tensor encode_texts(const VlModel& m, const TextTokenizer& tok, const std::vector<std::string>& texts, int batch,
                    bool truncate);

// Images encoded in batches; bad files are reported on stderr ("vislang CMD: skipped PATH: why")
// and left out. `ok_paths` receives the paths of the rows, in input order.
struct ImageEmbeddings {
  Tensor emb;       // CLIP (N_ok, E), BLIP-2 (N_ok, Q, E) L2-normalized; f32 cpu; undefined when none succeeded
  Tensor features;  // BLIP-2 with keep_features: the vision tower's output (N_ok, 1 + P, Cv), for ITM
  std::vector<std::string> ok_paths;
  std::vector<std::pair<std::string, std::string>> failed;  // path, reason
};
// Called after each batch with the paths of its good images, their embeddings, and how many inputs
// are done; when given, `emb` is not accumulated (streaming output).
using ImageBatchFn = std::function<void(const std::vector<std::string>& ok, const Tensor& emb, int64_t done)>;
ImageEmbeddings encode_images(const VlModel& m, const std::vector<std::string>& paths, int batch, int threads,
                              const std::string& command, bool keep_features = false,
                              const ImageBatchFn& on_batch = {}, const Progress* progress = nullptr);

// ---- BLIP-2 scoring: ITC, ITM, re-ranking ------------------------------------------------------
// --score itc|itm, --rerank K, --temperature T (zero-shot, similarity, search). `rerank_help` says
// what K counts for the command.
void add_blip2_score_options(ArgParser& p, const std::string& rerank_help, bool with_temperature = true);
struct Blip2Scoring {
  bool itm = false;         // --score itm, or --rerank
  int64_t rerank = 0;       // --rerank K: ITM on the ITC top K only; 0: ITM on every pair (--score itm)
  double temperature = 1;   // ITC probabilities = softmax(itc / T); see resolve_temperature
  bool temperature_given = false;
};
// UsageError: --score not itc/itm, --rerank < 1, --rerank with --score itc, and any of them (or
// --temperature) with a CLIP model ("--score itm needs a BLIP-2 model: ... has no ITM head").
Blip2Scoring parse_blip2_scoring(const Parsed& a, Family family, const std::string& model);
// --temperature T when given; else the model's own learned temperature (LAVIS files keep `temp`);
// else 1: HF's Blip2ForImageTextRetrieval example takes the softmax of the raw cosines.
void resolve_temperature(Blip2Scoring& s, const blip2::Blip2Retrieval& m);
// P(match) (ITM) of one image, features (1, 1 + P, Cv), with the texts `rows` of `texts`, in
// forward passes of at most `batch` pairs. Result[i] belongs to rows[i].
std::vector<float> itm_scores(const blip2::Blip2Retrieval& m, const Tensor& features, const TextBatch& texts,
                              const std::vector<int64_t>& rows, int batch);

// ---- inputs -------------------------------------------------------------------------------------
// Every image file under `dir`, recursively, sorted by path; extensions jpg, jpeg, png, bmp, gif
// (any case). Error when `dir` is not a folder.
std::vector<std::string> list_images(const std::string& dir);
// The lines of a text file, '\r' stripped; blank lines (only whitespace) skipped.
std::vector<std::string> read_lines(const std::string& path, const std::string& what);
// "a,b,c" → {"a", "b", "c"} (items trimmed, empty items dropped).
std::vector<std::string> split_commas(const std::string& s);

// ---- outputs ------------------------------------------------------------------------------------
// A JSON string literal (invalid UTF-8 replaced by U+FFFD).
std::string json_string(const std::string& s);
// "[v0, v1, ...]" with 9 significant digits (an f32 round-trips exactly); NaN/Inf print as null.
std::string json_floats(const float* v, int64_t n);
// NumPy .npy format 1.0: magic, version, header dict padded to a multiple of 64 bytes with '\n'.
std::string npy_header(const std::vector<int64_t>& shape);
std::string npy_header(int64_t rows, int64_t cols);
// Writes `content` to path + ".tmp.<pid>", fsyncs, renames over `path`: never a half-written file.
void write_file_atomic(const std::string& path, const std::string& content);
// An f32 little-endian C-order array of `shape` as .npy, atomically.
void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);
void write_npy_f32(const std::string& path, const float* data, int64_t rows, int64_t cols);

// A progress line on stderr: "[=====>    ]  64/200 images  12.3 images/s  ETA 0:11". On a TTY
// the line is redrawn in place; otherwise (--progress into a log) one line per update.
class Progress {
 public:
  Progress(int64_t total, std::string unit, bool enabled);
  void update(int64_t done);
  void finish();
  bool enabled() const { return enabled_; }

 private:
  int64_t total_;
  std::string unit_;
  bool enabled_, tty_;
  std::chrono::steady_clock::time_point t0_;
};
bool stderr_is_tty();

}  // namespace vislang::cli
