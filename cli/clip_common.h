// cli/clip_common.h — what the CLIP subcommands (cli/clip_commands.cpp, cli/bench_clip.cpp) share:
// the common model options, finding the model's tokenizer and the shared data folder, turning a
// model's config into image preprocessing, batched encoding, and the output formats (JSON lines,
// NumPy .npy, atomic files, a progress bar on stderr).
//
// Data flow of every command:
//   image paths → preprocess_files (image/clip_preprocess.h) → ClipModel::encode_image ┐
//   texts → ClipTokenizer::tokenize → ClipModel::encode_text                            ├→ output
//
// Where the tokenizer comes from (first match wins):
//   1. --bpe PATH (a bpe_simple_vocab_16e6.txt.gz, or a folder with vocab.json + merges.txt)
//   2. the model folder's own vocab.json + merges.txt (a Hugging Face CLIP folder)
//   3. $VISLANG_BPE
//   4. <shared>/data/clip/bpe_simple_vocab_16e6.txt.gz, <shared> found by find_shared_dir()
// An explicit --bpe wins over the model folder (an explicit option should never be ignored).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "cli/args.h"
#include "image/clip_preprocess.h"
#include "models/clip/clip.h"
#include "tokenizer/clip_tokenizer.h"

namespace vislang::cli {

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
// --model, --device, --dtype, --threads (and --bpe, --truncate for commands that tokenize).
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

// The tokenizer for `model` (see the order above). `model` may be "" (vislang tokenize).
ClipTokenizer load_tokenizer(const Parsed& a, const std::string& model);
// Where load_tokenizer would read from, as "vocab.json + merges.txt in DIR" or a path.
std::string tokenizer_source(const Parsed& a, const std::string& model);

// Image preprocessing for a model: size/mean/std from config().preprocess, OpenAI crop rule.
PreprocessConfig preprocess_config(const clip::ClipConfig& c);

// ---- tokenizing and encoding -------------------------------------------------------------------
// clip.tokenize for each text, zero-padded to `context_length`: (N, context_length) i32. A text too
// long without `truncate`: vislang::Error naming the text (its number and beginning) and the counts.
Tensor tokenize_batch(const ClipTokenizer& tok, const std::vector<std::string>& texts, int context_length,
                      bool truncate);
// encode_text in batches of `batch`: (N, E) f32 on the CPU.
Tensor encode_texts(const clip::ClipModel& m, const ClipTokenizer& tok, const std::vector<std::string>& texts,
                    int batch, bool truncate);

// Images encoded in batches; bad files are reported on stderr ("vislang CMD: skipped PATH: why")
// and left out. `ok_paths` receives the paths of the rows, in input order.
struct ImageEmbeddings {
  Tensor emb;                       // (N_ok, E) f32 cpu; undefined when none succeeded
  std::vector<std::string> ok_paths;
  std::vector<std::pair<std::string, std::string>> failed;  // path, reason
};
ImageEmbeddings encode_images(const clip::ClipModel& m, const std::vector<std::string>& paths, int batch, int threads,
                              const std::string& command);

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
// "[v0, v1, ...]" with 9 significant digits (an f32 round-trips exactly).
std::string json_floats(const float* v, int64_t n);
// NumPy .npy format 1.0: magic, version, header dict padded to a multiple of 64 bytes with '\n'.
std::string npy_header(int64_t rows, int64_t cols);
// Writes `content` to path + ".tmp.<pid>", fsyncs, renames over `path`: never a half-written file.
void write_file_atomic(const std::string& path, const std::string& content);
// An (rows, cols) f32 little-endian matrix as .npy, atomically.
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
