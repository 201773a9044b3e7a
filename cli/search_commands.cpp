// cli/search_commands.cpp — the image search engine's commands: `vislang index build|add|prune|info`,
// `vislang search`, `vislang recommend`, `vislang demo`. (`vislang serve` is in cli/serve.cpp,
// `vislang bench search` in cli/bench_search.cpp.)
//
//   vislang index build --model M --images photos/ --db photos.db     walk, embed, store (Faiss + SQLite)
//   vislang index add --images photos/ --db photos.db                 only new / changed files
//   vislang index prune --db photos.db                                forget deleted files
//   vislang search --db photos.db --text "a red circle" -k 5          cosine scores, JSON lines or a table
//   vislang search --db photos.db --image query.jpg
//   vislang recommend --db photos.db --liked 3 17 --disliked 5 --text "on a white background"
//   vislang demo [--model M] [--no-serve]                             generated images → DB → web page
//
// Each command is a thin layer over search/ (search/index_db.h, indexer.h, engine.h); the shared model
// handling is in cli/search_common.h.
#include <omp.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>

#include <nlohmann/json.hpp>

#include "cli/clip_common.h"
#include "cli/commands.h"
#include "cli/search_common.h"
#include "search/indexer.h"
#include "search/toy_folder.h"

using namespace vislang;
using namespace vislang::cli;
namespace fs = std::filesystem;

// ---- shared helpers (cli/search_common.h) ----------------------------------------------------------
namespace vislang::cli {

std::string find_default_model() {
  std::error_code ec;
  if (fs::exists(kDefaultModel, ec)) return kDefaultModel;
  const std::string exe = executable_dir();
  if (!exe.empty())
    for (fs::path d = exe; !d.empty(); d = d.parent_path()) {
      fs::path cand = d / kDefaultModel;
      if (fs::exists(cand, ec)) return cand.string();
      if (d == d.parent_path()) break;
    }
  return "";
}

clip::ClipConfig tiny_clip_config() {
  clip::ClipConfig c;
  c.name = "tiny-random";
  c.vision.type = "vit";
  c.vision.image_size = 64;
  c.vision.patch_size = 16;
  c.vision.width = 32;
  c.vision.layers = 2;
  c.vision.heads = 2;
  c.vision.mlp_dim = 128;
  c.text.width = 32;
  c.text.layers = 2;
  c.text.heads = 2;
  c.text.mlp_dim = 128;
  c.projection_dim = 32;
  c.preprocess.size = 64;
  return c;
}

void add_search_model_options(ArgParser& p) { add_model_options(p, true); }

std::shared_ptr<search::Embedder> load_embedder(const Parsed& a, const std::string& model, Tokenizer tokenizer,
                                                const std::string& command) {
  Runtime rt = apply_runtime_options(a);
  const Family family = detect_family(model);
  TextTokenizer tok;  // before the weights: a missing vocabulary fails fast
  if (tokenizer != Tokenizer::NONE) {
    try {
      tok = load_text_tokenizer(a, family, model);
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      if (tokenizer == Tokenizer::REQUIRED) throw;
      std::cerr << "vislang " << command << ": note: no tokenizer, text queries are disabled (" << e.what() << ")\n";
    }
  }
  VlModel m = load_vl_model(model, rt);
  if (m.is_blip2()) return std::make_shared<search::Embedder>(*m.blip2, tok.wordpiece, model);
  return std::make_shared<search::Embedder>(*m.clip, tok.clip, model);
}

std::shared_ptr<search::SearchEngine> open_engine(const Parsed& a, Tokenizer tokenizer, const std::string& command,
                                                  search::IndexDb::Mode mode) {
  const std::string db_path = a.get("--db");
  if (db_path.empty()) throw UsageError("--db PATH is required");
  std::shared_ptr<search::IndexDb> db = search::IndexDb::open(db_path, mode);
  if (db->open_info().rebuilt)
    std::cerr << "vislang " << command << ": note: the vector index was rebuilt from the DB rows ("
              << db->open_info().why << "; an interrupted build or add leaves this, nothing is lost)\n";
  std::string model = a.get("--model");
  if (model.empty()) {
    model = db->model().path;
    std::error_code ec;
    VL_CHECK(fs::exists(model, ec), "the DB ", db_path, " was built with model ", model,
             ", which no longer exists; pass --model with the same model");
  }
  return std::make_shared<search::SearchEngine>(db, load_embedder(a, model, tokenizer, command));
}

}  // namespace vislang::cli

namespace {

// ---- result output -------------------------------------------------------------------------------
// `with_itm`: the results were re-ranked by BLIP-2's ITM head (SearchResult::itm: P(match), NaN where not
// computed); the score column is then P(match) and the ITC cosine gets its own.
void print_results(const std::vector<search::SearchResult>& rs, const std::string& format, bool with_itm = false) {
  if (format == "jsonl") {
    int rank = 0;
    for (const search::SearchResult& r : rs) {
      nlohmann::json j = {{"rank", ++rank},     {"id", r.id},           {"path", r.row.path},
                          {"label", r.row.label}, {"caption", r.row.caption}};
      search::put_scores(j, r, with_itm);
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
    return;
  }
  if (with_itm) std::printf("%4s  %8s  %7s  %6s  %-18s  %s\n", "rank", "P(match)", "itc", "id", "label", "path");
  else std::printf("%4s  %7s  %6s  %-18s  %s\n", "rank", "score", "id", "label", "path");
  int rank = 0;
  for (const search::SearchResult& r : rs) {
    const char* label = r.row.label.empty() ? "-" : r.row.label.c_str();
    if (!with_itm) {
      std::printf("%4d  %7.4f  %6lld  %-18s  %s\n", ++rank, r.score, static_cast<long long>(r.id), label, r.row.path.c_str());
      continue;
    }
    char p[16] = "       -";
    if (!std::isnan(r.itm)) std::snprintf(p, sizeof p, "%8.4f", r.itm);
    std::printf("%4d  %s  %7.4f  %6lld  %-18s  %s\n", ++rank, p, r.score, static_cast<long long>(r.id), label,
                r.row.path.c_str());
  }
  if (rs.empty()) std::printf("(no results)\n");
}

std::string format_of(const Parsed& a) {
  std::string f = a.get("--format", "table");
  if (f != "jsonl" && f != "table") throw UsageError(str("--format must be jsonl or table, got '", f, "'"));
  return f;
}

// A floating-point option, `def` when absent; UsageError naming the option when it is not a number.
double number_option(const Parsed& a, const std::string& name, double def) {
  const std::string s = a.get(name);
  if (s.empty()) return def;
  try {
    size_t pos = 0;
    const double v = std::stod(s, &pos);
    if (pos == s.size()) return v;
  } catch (const std::exception&) {
  }
  throw UsageError(str(name, " must be a number, got '", s, "'"));
}

float min_score_of(const Parsed& a) { return float(number_option(a, "--min-score", -2.0)); }

// An item of the DB given as an id or as a path that is in the DB.
int64_t item_id(const search::IndexDb& db, const std::string& s, const char* option) {
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) {
    const int64_t id = std::stoll(s);
    VL_CHECK(db.row(id).has_value(), option, " ", s, ": no image with that id in the DB");
    return id;
  }
  std::error_code ec;
  std::string p = fs::weakly_canonical(s, ec).string();
  std::optional<search::ImageRow> r = db.row_by_path(ec ? s : p);
  VL_CHECK(r.has_value(), option, " ", s, ": neither an id nor the path of an indexed image");
  return r->id;
}

// ---- index -------------------------------------------------------------------------------------------
ArgParser index_parser(const std::string& sub) {
  if (sub == "build" || sub == "add") {
    const bool build = sub == "build";
    ArgParser p("index " + sub,
                build ? "--images DIR --db PATH [--model M] [--index flat|hnsw|ivf] [--batch N] [--progress]"
                      : "--images DIR --db PATH [--model M] [--batch N] [--rehash] [--progress]",
                build ? "Creates the index DB at PATH from every image under DIR (recursively: jpg, jpeg, png, bmp,\n"
                        "gif; webp is recognised but this decoder does not read it): decodes and embeds them in\n"
                        "batches, stores the vectors in a Faiss index and the metadata (path, size, mtime, content\n"
                        "hash, label, caption; model name and dimension) in SQLite. Files that cannot be decoded are\n"
                        "reported with the reason and skipped. Every finished batch is committed: a killed build\n"
                        "keeps them, and 'vislang index add' continues it."
                      : "Adds the images under DIR that are new or changed since they were indexed (same path and\n"
                        "size and mtime: not read; same content hash: not re-embedded). Files that disappeared are\n"
                        "removed by 'vislang index prune'.");
    add_model_options(p, /*with_tokenizer=*/false);  // images only
    p.value("--images", "DIR", "the folder to index (recursively)", "inputs");
    p.value("--db", "PATH", "the index DB folder", "inputs");
    if (build) {
      p.value("--index", "KIND", "flat (exact, default), hnsw or ivf (approximate, for large collections)", "index");
      p.flag("--overwrite", "replace an existing DB at PATH", "index");
    }
    p.flag("--rehash", "hash every file, even those whose size and mtime did not change", "index");
    p.flag("--overlap", "decode the next batch on a helper thread while this one is embedded (default: in turn; "
           "slower on few cores)", "run");
    p.value("--batch", "N", "images per forward pass and per commit (default 32)", "run");
    p.flag("--progress", "show the progress bar even when stderr is not a terminal", "output");
    p.flag("--no-progress", "never show the progress bar", "output");
    p.flag("--quiet", "do not list skipped files", "output");
    if (build)
      p.epilog(str("Without --model the default model is used: ", kDefaultModel, "."));
    return p;
  }
  if (sub == "prune") {
    ArgParser p("index prune", "--db PATH", "Removes the rows of files that no longer exist (or now resolve outside the folder\n"
                                           "they were indexed from).");
    p.value("--db", "PATH", "the index DB folder", "inputs");
    return p;
  }
  ArgParser p("index info", "--db PATH [--check] [--format table|json]",
              "Prints the DB's model, index kind, counts and the files that failed; --check also verifies\n"
              "that the Faiss index holds exactly the SQLite rows (exit 1 when not).");
  p.value("--db", "PATH", "the index DB folder", "inputs");
  p.flag("--check", "verify the vector index against the rows", "output");
  p.value("--format", "F", "table (default) or json", "output");
  return p;
}

// "512-d" (CLIP), "BLIP-2, 32 x 256-d per image" (one vector per query embedding).
std::string vectors_description(const search::ModelInfo& m) {
  if (m.vectors_per_item == 1) return str(m.dim, "-d");
  return str(m.family == "blip2" ? "BLIP-2, " : "", m.vectors_per_item, " x ", m.dim, "-d per image");
}

void print_stats(const search::IndexStats& s, const search::IndexDb& db) {
  const int64_t processed = s.added + s.updated;
  std::printf("indexed %s: %lld new, %lld updated, %lld unchanged, %lld failed; %lld other files and %lld links skipped\n",
              db.dir().c_str(), (long long)s.added, (long long)s.updated, (long long)s.unchanged, (long long)s.failed,
              (long long)s.other_files, (long long)s.rejected);
  std::printf("%lld images in the DB (model %s, %s, %s index); %.2f s", (long long)db.size(), db.model().name.c_str(),
              vectors_description(db.model()).c_str(), search::index_kind_name(db.kind()), s.seconds);
  if (processed > 0 && s.seconds > 0)
    std::printf(", %.1f images/s (of the time: waiting for read+decode+preprocess %.0f%%, embed %.0f%%, DB %.0f%%)",
                processed / s.seconds, 100 * s.decode_wait_s / s.seconds, 100 * s.embed_s / s.seconds,
                100 * s.commit_s / s.seconds);
  std::printf("\n");
}

int index_build_or_add(const Parsed& a, bool build) {
  const std::string cmd = build ? "index build" : "index add";
  const std::string images = a.get("--images"), db_path = a.get("--db");
  if (images.empty()) throw UsageError("--images DIR is required");
  if (db_path.empty()) throw UsageError("--db PATH is required");
  const int batch = int(a.get_int("--batch", 32, 1, 4096));
  std::string model = a.get("--model");
  std::shared_ptr<search::IndexDb> db;
  std::shared_ptr<search::Embedder> emb;
  // Walk first: a missing folder fails before the model is loaded.
  (void)search::walk_images(images);
  if (build) {
    search::IndexKind kind = search::IndexKind::FLAT;
    try {
      kind = search::parse_index_kind(a.get("--index", "flat"));
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
    if (model.empty()) model = find_default_model();
    VL_CHECK(!model.empty(), "no --model given and the default model ", kDefaultModel,
             " does not exist (yet); pass --model PATH");
    if (search::IndexDb::exists(db_path)) {
      VL_CHECK(a.has("--overwrite"), "the index DB ", db_path,
               " already exists: 'vislang index add' updates it, --overwrite replaces it");
      fs::remove_all(db_path);
    }
    emb = load_embedder(a, model, Tokenizer::NONE, cmd);
    search::IndexDb::create(db_path, emb->info(), kind);
    db = search::IndexDb::open(db_path, search::IndexDb::Mode::READ_WRITE);
  } else {
    db = search::IndexDb::open(db_path, search::IndexDb::Mode::READ_WRITE);
    if (model.empty()) model = db->model().path;
    emb = load_embedder(a, model, Tokenizer::NONE, cmd);
  }
  const bool show = !a.has("--no-progress") && (a.has("--progress") || stderr_is_tty());
  std::unique_ptr<Progress> progress;
  search::IndexOptions opt;
  opt.batch = batch;
  opt.threads = omp_get_max_threads();
  opt.rehash = a.has("--rehash");
  opt.overlap = a.has("--overlap");
  opt.log = a.has("--quiet") ? nullptr : &std::cerr;
  opt.on_progress = [&](int64_t done, int64_t total) {
    if (!show) return;
    if (!progress) progress = std::make_unique<Progress>(total, "images", true);
    else progress->update(done);
  };
  search::IndexStats s = search::index_folder(*db, *emb, images, opt);
  if (progress) progress->finish();
  print_stats(s, *db);
  return 0;
}

int index_prune(const Parsed& a) {
  const std::string db_path = a.get("--db");
  if (db_path.empty()) throw UsageError("--db PATH is required");
  auto db = search::IndexDb::open(db_path, search::IndexDb::Mode::READ_WRITE);
  search::IndexStats s = search::prune_missing(*db, &std::cerr);
  std::printf("pruned %s: %lld rows removed, %lld remain\n", db_path.c_str(), (long long)s.removed, (long long)db->size());
  return 0;
}

int index_info(const Parsed& a) {
  const std::string db_path = a.get("--db");
  if (db_path.empty()) throw UsageError("--db PATH is required");
  const std::string format = a.get("--format", "table");
  if (format != "table" && format != "json") throw UsageError("--format must be table or json");
  auto db = search::IndexDb::open(db_path, search::IndexDb::Mode::READ_ONLY);
  std::vector<search::Failure> fails = db->failures();
  search::Consistency c;
  if (a.has("--check")) c = db->check();
  if (format == "json") {
    nlohmann::json j = {{"db", db_path},
                        {"images", db->size()},
                        {"model", db->model().name},
                        {"model_path", db->model().path},
                        {"dim", db->model().dim},
                        {"family", db->model().family},
                        {"vectors_per_image", db->model().vectors_per_item},
                        {"index", search::index_kind_name(db->kind())},
                        {"generation", db->generation()},
                        {"rebuilt_on_open", db->open_info().rebuilt},
                        {"failures", nlohmann::json::array()}};
    for (const search::Failure& f : fails) j["failures"].push_back({{"path", f.path}, {"reason", f.reason}});
    if (a.has("--check")) j["check"] = {{"ok", c.ok}, {"rows", c.rows}, {"vectors", c.vectors}, {"detail", c.detail}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("db:         %s\nimages:     %lld\nmodel:      %s (%s), %s\nindex:      %s, generation %lld%s\n",
                db_path.c_str(), (long long)db->size(), db->model().name.c_str(), db->model().path.c_str(),
                vectors_description(db->model()).c_str(), search::index_kind_name(db->kind()), (long long)db->generation(),
                db->open_info().rebuilt ? " (vector file rebuilt on open)" : "");
    std::printf("failures:   %zu\n", fails.size());
    for (const search::Failure& f : fails) std::printf("  %s: %s\n", f.path.c_str(), f.reason.c_str());
    if (a.has("--check"))
      std::printf("check:      %s (%lld rows, %lld vectors)%s%s\n", c.ok ? "ok" : "FAILED", (long long)c.rows,
                  (long long)c.vectors, c.ok ? "" : ": ", c.detail.c_str());
  }
  return c.ok ? 0 : 1;
}

// ---- search ------------------------------------------------------------------------------------------
ArgParser search_parser() {
  ArgParser p("search", "--db PATH (--text T | --image FILE | --id N) [-k 10] [--min-score S] [--score itc|itm]\n"
              "                     [--rerank N] [--format jsonl|table]",
              "The k indexed images most similar to a text, an image file, or an indexed image (--id: more like\n"
              "this), with cosine scores. The model is the one the DB was built with (--model must be the same).\n"
              "BLIP-2 DBs: a text ranks the images exactly by ITC (the best cosine over each image's query\n"
              "embeddings); --score itm re-ranks the ITC top k by the ITM head's P(match) (the image files are\n"
              "read again), --rerank N re-ranks the ITC top N and shows the k best. Image and --id queries use\n"
              "the unit mean of the query image's embeddings.");
  add_search_model_options(p);
  add_blip2_score_options(p, "BLIP-2 text queries: ITM re-scores the ITC top N (default k; implies --score itm)",
                          /*with_temperature=*/false);
  p.value("--db", "PATH", "the index DB folder", "inputs");
  p.value("--text", "T", "query text", "query");
  p.value("--image", "FILE", "query image", "query");
  p.value("--id", "N", "query by an indexed image (it is left out of the results)", "query");
  p.value("--k", "K", "number of results (default 10)", "output");
  p.alias("-k");
  p.value("--min-score", "S", "leave out results below this cosine similarity", "output");
  p.value("--format", "F", "table (default) or jsonl", "output");
  p.value("--batch", "N", "images per ITM forward pass when re-ranking (default 32)", "run");
  return p;
}

int search_main(const Parsed& a) {
  const int given = int(a.has("--text")) + int(a.has("--image")) + int(a.has("--id"));
  if (given != 1) throw UsageError("give exactly one of --text, --image, --id");
  const int k = int(a.get_int("--k", 10, 1, 10000));
  const float min_score = min_score_of(a);
  const std::string format = format_of(a);
  const int batch = int(a.get_int("--batch", 32, 1, 4096));
  Blip2Scoring sc = parse_blip2_scoring(a, Family::BLIP2, "");  // the syntax now; the family once the model is known
  if (sc.itm && !a.has("--text"))
    throw UsageError("--score itm / --rerank re-rank text queries (ITM scores an image against a text)");
  Image query;
  if (a.has("--image")) query = load_image(a.get("--image"));  // fails before the model loads
  auto engine = open_engine(a, a.has("--text") ? Tokenizer::REQUIRED : Tokenizer::NONE, "search");
  const search::Embedder& emb = engine->embedder();
  if (!emb.is_blip2()) (void)parse_blip2_scoring(a, Family::CLIP, emb.info().path);  // UsageError for --score itm
  std::vector<search::SearchResult> rs;
  if (a.has("--text") && sc.itm) {
    // ITM on the ITC top n (search/engine.h); --score itm alone re-scores the k shown.
    const int n = sc.rerank > 0 ? int(std::min<int64_t>(sc.rerank, std::numeric_limits<int>::max())) : k;
    search::ItmOptions opt;
    opt.batch = batch;
    opt.threads = omp_get_max_threads();
    search::ItmSearch r = engine->search_by_text_itm(a.get("--text"), n, k, min_score, opt);
    for (const search::ItmSkip& u : r.unreadable)
      std::cerr << "vislang search: note: cannot re-rank " << u.path << ": " << u.reason << "\n";
    rs = std::move(r.results);
  } else if (a.has("--text")) {
    rs = engine->search_by_text(a.get("--text"), k, min_score);
  } else if (a.has("--image")) {
    rs = engine->search_by_image(query, k, min_score);
  } else {
    rs = engine->search_by_id(item_id(engine->db(), a.get("--id"), "--id"), k, min_score);
  }
  print_results(rs, format, sc.itm && !rs.empty());  // an empty table keeps the plain header
  return 0;
}

// ---- recommend ---------------------------------------------------------------------------------------
ArgParser recommend_parser() {
  ArgParser p("recommend", "--db PATH --liked ID... [--disliked ID...] [--text T] [-k 10] [--format jsonl|table]",
              "Ranks the indexed images by similarity to a preference vector built from liked and disliked\n"
              "items (ids or indexed paths) and an optional text intent:\n"
              "  e_i = n(v_i + λ t(caption_i)),  u = α n(mean liked e) − β n(mean disliked e) + γ t(text),\n"
              "  score(x) = cos(u, v_x), liked and disliked items left out (docs/search.md).");
  add_search_model_options(p);
  p.value("--db", "PATH", "the index DB folder", "inputs");
  p.list("--liked", "ID", "liked items: DB ids or paths of indexed images", "preferences");
  p.list("--disliked", "ID", "disliked items", "preferences");
  p.value("--text", "T", "a text intent (\"but in blue\")", "preferences");
  p.value("--liked-weight", "A", "α (default 1)", "preferences");
  p.value("--disliked-weight", "B", "β (default 0.5)", "preferences");
  p.value("--text-weight", "G", "γ (default 1)", "preferences");
  p.value("--caption-weight", "L", "λ: weight of an item's caption embedding (default 0.5; 0: images only)", "preferences");
  p.value("--k", "K", "number of results (default 10)", "output");
  p.alias("-k");
  p.value("--min-score", "S", "leave out results below this score", "output");
  p.value("--format", "F", "table (default) or jsonl", "output");
  return p;
}

int recommend_main(const Parsed& a) {
  if (!a.has("--liked") && !a.has("--disliked") && !a.has("--text"))
    throw UsageError("give --liked ID... (and/or --disliked ID..., --text T)");
  search::RecommendRequest r;
  r.k = int(a.get_int("--k", 10, 1, 10000));
  r.min_score = min_score_of(a);
  r.text = a.get("--text");
  r.liked_weight = number_option(a, "--liked-weight", r.liked_weight);
  r.disliked_weight = number_option(a, "--disliked-weight", r.disliked_weight);
  r.text_weight = number_option(a, "--text-weight", r.text_weight);
  r.caption_weight = number_option(a, "--caption-weight", r.caption_weight);
  const std::string format = format_of(a);
  const bool need_text = !r.text.empty() || r.caption_weight != 0;
  auto engine = open_engine(a, !r.text.empty() ? Tokenizer::REQUIRED : need_text ? Tokenizer::OPTIONAL : Tokenizer::NONE,
                            "recommend");
  for (const std::string& s : a.list("--liked")) r.liked.push_back(item_id(engine->db(), s, "--liked"));
  for (const std::string& s : a.list("--disliked")) r.disliked.push_back(item_id(engine->db(), s, "--disliked"));
  print_results(engine->recommend(r), format);
  return 0;
}

// ---- demo --------------------------------------------------------------------------------------------
ArgParser demo_parser() {
  ArgParser p("demo", "[--model M] [--dir DIR] [--images N] [--no-serve] [--host H] [--port P]",
              "The search engine end to end: generates a folder of toy-world images (datasets/toy_world.h) with\n"
              "captions and labels,\n"
              "indexes it (incrementally when DIR already holds it), then serves the search page and prints\n"
              "its URL — or, with --no-serve, prints the results of sample text queries and a recommendation.");
  add_search_model_options(p);
  p.value("--dir", "DIR", "where the images and the DB go (default: <build>/demo next to the binary)", "demo");
  p.value("--images", "N", "number of generated toy-world images (default 400)", "demo");
  p.flag("--no-serve", "print sample query results instead of serving the page", "demo");
  p.value("--host", "H", "address to serve on (default 127.0.0.1)", "serve");
  p.value("--port", "P", "port (default 8080; 0: any free port)", "serve");
  p.epilog(str("Without --model the default model ", kDefaultModel,
               " is used; while it does not exist a small random-weight CLIP is written to DIR (the pipeline\n"
               "works, but its rankings are not meaningful)."));
  return p;
}

int demo_main(const Parsed& a) {
  const int64_t n = a.get_int("--images", 400, 1, 1000000);
  std::string dir = a.get("--dir");
  if (dir.empty()) {
    const std::string exe = executable_dir();
    dir = exe.empty() ? std::string("vislang-demo") : (fs::path(exe).parent_path() / "demo").string();
  }
  fs::create_directories(dir);
  std::string model = a.get("--model");
  if (model.empty()) model = find_default_model();
  if (model.empty()) {
    model = (fs::path(dir) / "random_tiny_clip.safetensors").string();
    std::cerr << "vislang demo: note: the default model " << kDefaultModel
              << " does not exist yet; using random weights (" << model << "): rankings are not meaningful\n";
    if (!fs::exists(model)) write_random_clip(tiny_clip_config(), model, 0);
  }
  // Images: regenerated only when the folder does not hold n of them.
  const fs::path images = fs::path(dir) / "images";
  {
    int64_t have = 0;
    std::error_code ec;
    if (fs::is_directory(images, ec))
      for (const auto& e : fs::directory_iterator(images, ec)) have += e.path().extension() == ".png";
    if (have != n) {
      fs::remove_all(images, ec);
      std::cerr << "vislang demo: generating " << n << " images in " << images.string() << "\n";
      search::write_toy_folder(toy::ToyWorld(), images.string(), n, toy::Split::TEST);
    }
  }
  // DB: incremental when it exists and was built with this model; rebuilt otherwise.
  const std::string db_path = (fs::path(dir) / "db").string();
  auto emb = load_embedder(a, model, Tokenizer::OPTIONAL, "demo");
  std::shared_ptr<search::IndexDb> db;
  if (search::IndexDb::exists(db_path)) {
    db = search::IndexDb::open(db_path, search::IndexDb::Mode::READ_WRITE);
    try {
      search::check_same_model(db->model(), emb->info());
    } catch (const Error&) {
      db.reset();
      fs::remove_all(db_path);
    }
  }
  if (!db) {
    search::IndexDb::create(db_path, emb->info(), search::IndexKind::FLAT);
    db = search::IndexDb::open(db_path, search::IndexDb::Mode::READ_WRITE);
  }
  search::IndexOptions opt;
  opt.log = &std::cerr;
  search::IndexStats s = search::index_folder(*db, *emb, images.string(), opt);
  print_stats(s, *db);
  auto engine = std::make_shared<search::SearchEngine>(db, emb);

  if (a.has("--no-serve")) {
    if (emb->has_tokenizer())
      for (const char* q : {"a photo of a red circle.", "a photo of a blue square.", "a photo of a green triangle.",
                            "a photo of a yellow star."}) {
        std::printf("\nsearch \"%s\":\n", q);
        print_results(engine->search_by_text(q, 5), "table");
      }
    std::vector<search::ImageRow> rows = db->all_rows();
    auto red = std::find_if(rows.begin(), rows.end(), [](const search::ImageRow& r) { return r.label.rfind("red", 0) == 0; });
    if (red != rows.end()) {
      search::RecommendRequest r;
      r.liked = {red->id};
      r.k = 5;
      std::printf("\nrecommend --liked %lld (%s):\n", static_cast<long long>(red->id), red->label.c_str());
      print_results(engine->recommend(r), "table");
    }
    return 0;
  }
  search::ServerOptions so;
  so.host = a.get("--host", "127.0.0.1");
  so.port = int(a.get_int("--port", 8080, 0, 65535));
  return serve_until_signal(engine, so, "demo");
}

int dispatch_index(int argc, char** argv) {
  const std::string sub = argc >= 2 ? argv[1] : "";
  if (sub != "build" && sub != "add" && sub != "prune" && sub != "info") {
    std::cerr << "vislang index: expected a subcommand: build, add, prune, info\n"
                 "  vislang index build --model M --images DIR --db PATH\n"
                 "  vislang index add --images DIR --db PATH\n"
                 "  vislang index prune --db PATH\n"
                 "  vislang index info --db PATH [--check]\n";
    return sub == "--help" || sub == "-h" ? 0 : 2;
  }
  ArgParser p = index_parser(sub);
  return run_command(p, argc - 1, argv + 1, [&](const Parsed& a) {
    if (sub == "build") return index_build_or_add(a, true);
    if (sub == "add") return index_build_or_add(a, false);
    if (sub == "prune") return index_prune(a);
    return index_info(a);
  });
}

}  // namespace

int run_index(int argc, char** argv) { return dispatch_index(argc, argv); }

int run_search(int argc, char** argv) {
  ArgParser p = search_parser();
  return run_command(p, argc, argv, search_main);
}

int run_recommend(int argc, char** argv) {
  ArgParser p = recommend_parser();
  return run_command(p, argc, argv, recommend_main);
}

int run_demo(int argc, char** argv) {
  ArgParser p = demo_parser();
  return run_command(p, argc, argv, demo_main);
}
