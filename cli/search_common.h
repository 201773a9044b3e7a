// cli/search_common.h — what the search subcommands share (cli/search_commands.cpp: index, search,
// recommend, demo; cli/serve.cpp; cli/bench_search.cpp): the default model, loading the model and
// tokenizer as a search::Embedder, opening a DB with the model it was built with.
//
// Data flow: --model M (or the DB's own model, or kDefaultModel) → ClipModel + ClipTokenizer →
// search::Embedder → search::SearchEngine over search::IndexDb (--db PATH).
#pragma once
#include <memory>
#include <string>

#include "cli/args.h"
#include "models/clip/config.h"
#include "search/embedder.h"
#include "search/engine.h"
#include "search/index_db.h"
#include "search/server.h"

namespace vislang::cli {

// The model used when --model is not given (index build, demo, bench search). One constant: the
// embedded toy model once it is trained. Relative paths are looked up in the current folder, then in
// the source tree of this binary (<repo>/build/bin/vislang → <repo>/weights/...).
inline constexpr const char* kDefaultModel = "weights/toy_clip";  // HF folder with its own tokenizer

// kDefaultModel as an existing path, or "" when it is not there (yet).
std::string find_default_model();

// The config of the small random-weight CLIP that stands in for the default model while it does not
// exist (demo, bench): a ViT with 64x64 inputs, 16x16 patches, width 32, 2 layers; text width 32;
// 32-dimensional embeddings; the CLIP BPE vocabulary.
clip::ClipConfig tiny_clip_config();

// --model, --device, --dtype, --threads, --bpe (add_model_options) for commands that run a model.
void add_search_model_options(ArgParser& p);

// Loads `model` as an Embedder. The tokenizer is loaded when `tokenizer` is REQUIRED (an error when
// none is found) or OPTIONAL (a note on stderr and image-only use when none is found).
enum class Tokenizer { NONE, OPTIONAL, REQUIRED };
std::shared_ptr<search::Embedder> load_embedder(const Parsed& a, const std::string& model, Tokenizer tokenizer,
                                                const std::string& command);

// Opens --db and loads the model it was built with (or --model, which must be the same model), as a
// SearchEngine. Prints a note when the vector file had to be rebuilt (an interrupted build).
std::shared_ptr<search::SearchEngine> open_engine(const Parsed& a, Tokenizer tokenizer, const std::string& command,
                                                  search::IndexDb::Mode mode = search::IndexDb::Mode::READ_ONLY);

// Serves `engine` until SIGINT/SIGTERM (cli/serve.cpp); prints the URL on stdout first.
int serve_until_signal(std::shared_ptr<search::SearchEngine> engine, const search::ServerOptions& opt,
                       const std::string& command);

// Writes random weights of `cfg` to `path` (cli/bench_clip.cpp).
void write_random_clip(const clip::ClipConfig& cfg, const std::string& path, uint64_t seed);

}  // namespace vislang::cli
