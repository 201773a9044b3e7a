// tests/test_search.cpp — the image search engine (suite "search"): search/ and the `vislang index`,
// `search`, `recommend`, `serve` commands.
//   hash        XXH64 against values from the reference libxxhash
//   index       build on a toy-world folder with broken files (truncated, corrupt, WebP, a symlink out of
//               the folder): counts, failure reasons, metadata, scores = in-process cosine, incremental
//               add (unchanged / touched / changed / new), prune, hnsw and ivf kinds
//   safety      a stale or torn vectors.faiss is rebuilt from SQLite; another model is refused;
//               SIGKILL of `vislang index build|add` at random moments leaves a consistent DB that keeps
//               every committed batch
//   recommend   the formula of search/engine.h, and liking red items surfaces red items
//   server      every endpoint, path traversal and symlink escapes, 413, malformed requests (4xx JSON),
//               score=itm / rerank refused on a CLIP model (the BLIP-2 side: tests/test_blip2_cli.cpp),
//               200 concurrent requests from 8 threads, `vislang serve` start/stop
// Model: the committed fixture tests/fixtures/clip/hf_vit (random weights, 16-d); the tokenizer is the
// shared bpe_simple_vocab_16e6.txt.gz (text cases skip with a message when ../shared is absent).
#include <doctest/doctest.h>
#include <signal.h>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "datasets/toy_world.h"
#include "image/png_write.h"
#include "search/coalescer.h"
#include "search/content_hash.h"
#include "search/engine.h"
#include "search/indexer.h"
#include "search/server.h"
#include "search/toy_folder.h"
#include "tests/test_process.h"
#include "tests/test_util.h"

using namespace vislang;
using namespace vislang::search;
using namespace vislang::test;  // contains, TempDir, run_vislang, ... (tests/test_util.h, test_process.h)
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string fixture_model() { return std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/clip/hf_vit"; }
std::string other_model() { return std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/clip/openai_rn.safetensors"; }
std::string bpe_path() { return test::shared_dir() + "/data/clip/bpe_simple_vocab_16e6.txt.gz"; }
bool have_tokenizer() { return !test::shared_dir().empty() && fs::exists(bpe_path()); }

std::shared_ptr<Embedder> fixture_embedder(bool with_tokenizer = true) {
  std::unique_ptr<ClipTokenizer> tok;
  if (with_tokenizer && have_tokenizer()) tok = std::make_unique<ClipTokenizer>(ClipTokenizer::from_bpe_gz(bpe_path()));
  return std::make_shared<Embedder>(clip::ClipModel::load(fixture_model()), std::move(tok), fixture_model());
}

// A toy world with one object on a plain background: the image tower of a random-weight model then
// sees mostly the object's colour, which is what the recommendation test needs.
toy::ToyWorld plain_world(int image_size = 64) {
  toy::ToyWorldConfig c;
  c.image_size = image_size;
  c.max_objects = 1;
  c.gradient_bg_prob = 0;
  c.noise_bg_prob = 0;
  return toy::ToyWorld(c);
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

// ---- a folder with good and bad files ---------------------------------------------------------------
struct Folder {
  std::string dir;
  std::vector<ToyFolderItem> items;
};

Folder make_folder(const TempDir& s, int64_t n, int image_size = 64) {
  Folder f{s / "images", {}};
  f.items = write_toy_folder(plain_world(image_size), f.dir, n, toy::Split::TEST);
  return f;
}

// Toy-world objects cut out onto one neutral grey background and cropped to a square around them
// (pixels within 40 levels of the object's colour kept), with captions.csv and labels.csv. A
// random-weight image tower mostly sees an image's mean colour, which in the toy world is the random
// background's; here it is the object's.
Folder make_neutral_folder(const TempDir& s, int64_t n) {
  const toy::ToyWorld w = plain_world();
  Folder f{s / "neutral", {}};
  fs::create_directories(f.dir);
  std::string labels = "path,label\n", captions = "path,caption\n";
  for (int64_t i = 0; i < n; ++i) {
    const toy::ToySample smp = w.sample(uint64_t(i), toy::Split::TEST);
    const toy::ToyObject& o = smp.objects.at(0);
    const Image img = smp.image();
    const int side = std::max(8, int(1.3f * std::max(o.x1 - o.x0, o.y1 - o.y0)));
    const int cx = int(0.5f * (o.x0 + o.x1)), cy = int(0.5f * (o.y0 + o.y1));
    Image out = Image::blank(side, side);
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x) {
        const int sx = cx - side / 2 + x, sy = cy - side / 2 + y;
        uint8_t* q = out.pixel(x, y);
        q[0] = q[1] = q[2] = 230;
        if (sx < 0 || sy < 0 || sx >= img.width || sy >= img.height) continue;
        const uint8_t* p = img.pixel(sx, sy);
        int d = 0;
        for (int c = 0; c < 3; ++c) d = std::max(d, std::abs(int(p[c]) - int(o.rgb[size_t(c)])));
        if (d <= 40) std::copy(p, p + 3, q);
      }
    const std::string name = str("neutral_", 1000 + i, ".png");
    write_png(f.dir + "/" + name, out);
    f.items.push_back({name, smp.caption, toy::label_name(o.label()), o.color, o.shape});
    labels += name + "," + f.items.back().label + "\n";
    captions += name + "," + smp.caption + "\n";  // toy captions hold no ',' or '"'
  }
  spit(f.dir + "/labels.csv", labels);
  spit(f.dir + "/captions.csv", captions);
  return f;
}

void add_bad_files(const TempDir& s, const Folder& f) {
  const std::string good = slurp(f.dir + "/" + f.items[0].file);
  spit(f.dir + "/truncated.png", good.substr(0, good.size() / 2));
  spit(f.dir + "/corrupt.jpg", std::string("\xff\xd8\xff\xe0 this is not really a JPEG", 34));
  spit(f.dir + "/photo.webp", std::string("RIFF\x24\x00\x00\x00WEBPVP8 ", 16) + std::string(32, '\0'));
  spit(f.dir + "/notes.txt", "not an image");
  spit(s / "outside.png", good);
  fs::create_symlink(s / "outside.png", f.dir + "/escape.png");
  fs::create_directories(f.dir + "/dogs");
  spit(f.dir + "/dogs/rex.png", slurp(f.dir + "/" + f.items[1].file));
}

}  // namespace

TEST_SUITE("search") {

TEST_CASE("xxh64 matches the reference implementation") {
  // Values from libxxhash 0.8.1 (XXH64, seed 0 unless given).
  CHECK(hash_hex(xxh64("", 0)) == "ef46db3751d8e999");
  CHECK(hash_hex(xxh64("abc", 3)) == "44bc2cf5ad770999");
  CHECK(hash_hex(xxh64("abc", 3, 7)) == "9e755206156676d7");
  std::string s;
  for (int r = 0; r < 3; ++r)
    for (int i = 0; i < 256; ++i) s += char(i);
  s += "xyz12";
  CHECK(hash_hex(xxh64(s.data(), s.size())) == "9b7d50c047818b1b");
  std::string t;
  for (int r = 0; r < 4; ++r) t += "0123456789abcdef";
  t += "0123456";
  CHECK(hash_hex(xxh64(t.data(), t.size())) == "7beb22c5056f27ad");
}

TEST_CASE("coalescer: concurrent requests are batched and each caller gets its own result") {
  Coalescer<int, int> co;
  std::atomic<int> calls{0}, largest{0};
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const int x = t * 1000 + i;
        const int y = co.run(x, [&](const std::vector<const int*>& batch) {
          calls++;
          largest = std::max(largest.load(), int(batch.size()));
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          std::vector<int> out;
          for (const int* v : batch) out.push_back(*v * 2 + 1);
          return out;
        });
        wrong += y != x * 2 + 1;
      }
    });
  for (auto& th : threads) th.join();
  CHECK(wrong.load() == 0);
  CHECK(calls.load() < 400);  // some requests shared a batch
  CHECK(largest.load() > 1);
  // An exception reaches the caller (and the coalescer keeps working).
  CHECK_THROWS_AS(co.run(1, [](const std::vector<const int*>&) -> std::vector<int> { throw Error("boom"); }), Error);
  CHECK(co.run(3, [](const std::vector<const int*>& b) { return std::vector<int>(b.size(), 7); }) == 7);
}

TEST_CASE("index: build, metadata, failures, queries, incremental add, prune") {
  TempDir s;
  Folder f = make_folder(s, 40);
  add_bad_files(s, f);
  auto emb = fixture_embedder();
  const std::string db_path = s / "db";
  IndexDb::create(db_path, emb->info(), IndexKind::FLAT);
  CHECK(contains(error_of([&] { IndexDb::create(db_path, emb->info(), IndexKind::FLAT); }), "already exists"));
  std::shared_ptr<IndexDb> db = IndexDb::open(db_path, IndexDb::Mode::READ_WRITE);
  // A second writer is refused while this one holds the lock.
  CHECK(contains(error_of([&] { IndexDb::open(db_path, IndexDb::Mode::READ_WRITE); }), "another process"));

  std::ostringstream log;
  IndexOptions opt;
  opt.batch = 8;
  opt.log = &log;
  int64_t last_done = -1, progress_calls = 0;
  opt.on_progress = [&](int64_t done, int64_t total) {
    CHECK(done <= total);
    CHECK(done >= last_done);
    last_done = done;
    ++progress_calls;
  };
  IndexStats st = index_folder(*db, *emb, f.dir, opt);
  CHECK(st.found == 40 + 1 + 3);  // toy images, dogs/rex.png, truncated/corrupt/webp (escape.png rejected)
  CHECK(st.added == 41);
  CHECK(st.failed == 3);
  CHECK(st.other_files == 1);  // notes.txt (captions.csv and labels.csv are not counted)
  CHECK(st.rejected == 1);
  CHECK(progress_calls == 1 + (44 + 7) / 8);
  CHECK(db->size() == 41);
  const std::string l = log.str();
  CHECK(contains(l, "escape.png: symbolic link to a file outside the indexed folder"));
  CHECK(contains(l, "truncated.png"));
  std::vector<Failure> fails = db->failures();
  REQUIRE(fails.size() == 3);
  for (const Failure& x : fails) {
    if (contains(x.path, "truncated")) CHECK(contains(x.reason, "truncated"));
    if (contains(x.path, "webp")) CHECK(contains(x.reason, "WebP"));
  }
  Consistency c = db->check();
  CHECK_MESSAGE(c.ok, c.detail);

  // Metadata of one row.
  const std::string p0 = fs::canonical(f.dir + "/" + f.items[0].file).string();
  std::optional<ImageRow> r0 = db->row_by_path(p0);
  REQUIRE(r0.has_value());
  const std::string bytes0 = slurp(p0);
  CHECK(r0->hash == hash_hex(xxh64(bytes0.data(), bytes0.size())));
  CHECK(r0->size == int64_t(bytes0.size()));
  CHECK(r0->label == f.items[0].label);
  CHECK(r0->caption == f.items[0].caption);
  CHECK(r0->width == 64);
  CHECK(r0->height == 64);
  CHECK(r0->root == fs::canonical(f.dir).string());
  std::optional<ImageRow> dog = db->row_by_path(fs::canonical(f.dir + "/dogs/rex.png").string());
  REQUIRE(dog.has_value());
  CHECK(dog->label == "dogs");  // ImageFolder convention when no CSV names it

  // Queries: the image itself first with cosine ~1; scores = in-process cosine, sorted.
  SearchEngine engine(db, emb);
  std::vector<SearchResult> rs = engine.search_by_image(load_image(p0), 5);
  REQUIRE(rs.size() == 5);
  CHECK(rs[0].row.path == p0);
  CHECK(rs[0].score > 0.999f);
  for (size_t i = 1; i < rs.size(); ++i) CHECK(rs[i - 1].score >= rs[i].score);
  std::vector<float> q = emb->embed_image(load_image(p0));
  for (const SearchResult& r : rs) CHECK(std::fabs(dot(q, db->vector(r.id)) - r.score) < 1e-5);
  std::vector<SearchResult> more = engine.search_by_id(r0->id, 3);
  CHECK(std::none_of(more.begin(), more.end(), [&](const SearchResult& r) { return r.id == r0->id; }));
  CHECK(engine.search_by_image(load_image(p0), 100, rs[2].score).size() >= 3);
  for (const SearchResult& r : engine.search_by_image(load_image(p0), 100, rs[2].score)) CHECK(r.score >= rs[2].score);
  if (have_tokenizer()) {
    std::vector<SearchResult> t = engine.search_by_text("a photo of a red circle.", 41);
    CHECK(t.size() == 41);
    std::vector<float> tq = emb->embed_texts({"a photo of a red circle."});
    for (const SearchResult& r : t) CHECK(std::fabs(dot(tq, db->vector(r.id)) - r.score) < 1e-5);
  } else {
    MESSAGE("skipped text queries: no shared tokenizer");
  }

  // Incremental: nothing changed.
  st = index_folder(*db, *emb, f.dir, IndexOptions{});
  CHECK(st.added == 0);
  CHECK(st.updated == 0);
  CHECK(st.unchanged == 41);
  CHECK(st.failed == 3);  // not retried: unchanged since they failed
  // Touched (same bytes, new mtime): unchanged by hash. Changed bytes: re-embedded with a new id.
  // New file: added. Fixed file (the truncated one made whole): added, its failure forgotten.
  const std::string p1 = fs::canonical(f.dir + "/" + f.items[1].file).string();
  const std::string p2 = fs::canonical(f.dir + "/" + f.items[2].file).string();
  const int64_t id2 = db->row_by_path(p2)->id;
  fs::last_write_time(p1, fs::last_write_time(p1) + std::chrono::seconds(5));
  spit(p2, slurp(f.dir + "/" + f.items[3].file));
  spit(f.dir + "/new.png", slurp(f.dir + "/" + f.items[4].file));
  spit(f.dir + "/truncated.png", slurp(f.dir + "/" + f.items[5].file));
  st = index_folder(*db, *emb, f.dir, IndexOptions{});
  CHECK(st.added == 2);
  CHECK(st.updated == 1);
  CHECK(st.unchanged == 40);
  CHECK(st.failed == 2);
  CHECK(db->size() == 43);
  CHECK_FALSE(db->row(id2).has_value());
  CHECK(db->row_by_path(p2)->id > id2);
  CHECK(db->failures().size() == 2);
  c = db->check();
  CHECK_MESSAGE(c.ok, c.detail);

  // Prune: deleted files go, and a file replaced by a symlink leaving the folder goes too.
  fs::remove(f.dir + "/new.png");
  fs::remove(p1);
  fs::create_symlink(s / "outside.png", p1);
  fs::remove(f.dir + "/corrupt.jpg");
  std::ostringstream plog;
  st = prune_missing(*db, &plog);
  CHECK(st.removed == 2);
  CHECK(contains(plog.str(), "no longer exists"));
  CHECK(contains(plog.str(), "outside"));
  CHECK(db->size() == 41);
  CHECK(db->failures().size() == 1);  // corrupt.jpg is gone, photo.webp remains
  c = db->check();
  CHECK_MESSAGE(c.ok, c.detail);

  // Reopened read-only: the saved vector file is current, no rebuild.
  db.reset();
  auto ro = IndexDb::open(db_path, IndexDb::Mode::READ_ONLY);
  CHECK_FALSE(ro->open_info().rebuilt);
  CHECK(ro->size() == 41);
  c = ro->check();
  CHECK_MESSAGE(c.ok, c.detail);
}

TEST_CASE("index: hnsw and ivf kinds find an indexed image first") {
  TempDir s;
  Folder f = make_folder(s, 120);
  auto emb = fixture_embedder(false);
  for (IndexKind kind : {IndexKind::HNSW, IndexKind::IVF}) {
    CAPTURE(index_kind_name(kind));
    const std::string db_path = s / (std::string("db_") + index_kind_name(kind));
    IndexDb::create(db_path, emb->info(), kind);
    std::shared_ptr<IndexDb> db = IndexDb::open(db_path, IndexDb::Mode::READ_WRITE);
    index_folder(*db, *emb, f.dir, IndexOptions{});
    CHECK(db->size() == 120);
    Consistency c = db->check();
    CHECK_MESSAGE(c.ok, c.detail);
    db.reset();
    db = IndexDb::open(db_path, IndexDb::Mode::READ_ONLY);
    CHECK_FALSE(db->open_info().rebuilt);
    CHECK(db->kind() == kind);
    db->set_search_params(1000, 256);  // exhaustive enough to be exact on 120 vectors
    SearchEngine engine(db, emb);
    for (int i : {0, 17, 99}) {
      const std::string p = fs::canonical(f.dir + "/" + f.items[size_t(i)].file).string();
      std::vector<SearchResult> rs = engine.search_by_image(load_image(p), 3);
      REQUIRE(!rs.empty());
      CHECK(rs[0].row.path == p);
      CHECK(rs[0].score > 0.999f);
    }
  }
  CHECK(contains(error_of([] { parse_index_kind("annoy"); }), "flat, hnsw or ivf"));
}

TEST_CASE("index: a stale or torn vector file is rebuilt from the SQLite rows") {
  TempDir s;
  Folder f = make_folder(s, 24);
  auto emb = fixture_embedder(false);
  const std::string db_path = s / "db";
  IndexDb::create(db_path, emb->info(), IndexKind::FLAT);
  {
    auto db = IndexDb::open(db_path, IndexDb::Mode::READ_WRITE);
    index_folder(*db, *emb, f.dir, IndexOptions{});
  }
  const std::string faiss = db_path + "/vectors.faiss";
  const std::string good = slurp(faiss);
  struct Case {
    const char* name;
    std::string bytes;
    const char* why;
  };
  std::string flipped = good;
  flipped[flipped.size() - 3] ^= 0x40;
  for (const Case& k : {Case{"truncated", good.substr(0, good.size() - 100), "truncated"},
                        Case{"bit flip", flipped, "checksum"}, Case{"empty", "", "header"}}) {
    CAPTURE(k.name);
    spit(faiss, k.bytes);
    auto ro = IndexDb::open(db_path, IndexDb::Mode::READ_ONLY);
    CHECK(ro->open_info().rebuilt);
    CHECK(contains(ro->open_info().why, k.why));
    Consistency c = ro->check();
    CHECK_MESSAGE(c.ok, c.detail);
    CHECK(slurp(faiss) == k.bytes);  // a reader never writes
    auto rw = IndexDb::open(db_path, IndexDb::Mode::READ_WRITE);  // a writer repairs it
    CHECK(rw->open_info().rebuilt);
  }
  CHECK_FALSE(IndexDb::open(db_path, IndexDb::Mode::READ_ONLY)->open_info().rebuilt);
  // Rows committed after the file was saved (a writer killed before save_index): stale by generation.
  {
    auto db = IndexDb::open(db_path, IndexDb::Mode::READ_WRITE);
    NewImage extra;
    extra.row.path = "/nowhere/extra.png";
    extra.row.root = "/nowhere";
    extra.row.hash = "0";
    extra.vec = db->vector(1);
    db->commit({extra}, {});
    // No save_index(): the file stays at the previous generation.
  }
  auto ro = IndexDb::open(db_path, IndexDb::Mode::READ_ONLY);
  CHECK(ro->open_info().rebuilt);
  CHECK(contains(ro->open_info().why, "generation"));
  CHECK(ro->size() == 25);
  CHECK(ro->check().ok);
  CHECK(contains(error_of([&] { IndexDb::open(s / "missing", IndexDb::Mode::READ_ONLY); }), "no index DB"));
}

TEST_CASE("index: a DB built with one model refuses another") {
  TempDir s;
  auto emb = fixture_embedder(false);
  const std::string db_path = s / "db";
  IndexDb::create(db_path, emb->info(), IndexKind::FLAT);
  std::shared_ptr<IndexDb> db = IndexDb::open(db_path, IndexDb::Mode::READ_ONLY);
  auto other = std::make_shared<Embedder>(clip::ClipModel::load(other_model()), nullptr, other_model());
  const std::string e = error_of([&] { SearchEngine engine(db, other); });
  CHECK(contains(e, "built with model 'hf_vit'"));
  CHECK(contains(e, "openai_rn.safetensors"));
  // The same model loaded again (another path spelling) is accepted.
  auto again = std::make_shared<Embedder>(clip::ClipModel::load(fixture_model() + "/"), nullptr, fixture_model() + "/");
  SearchEngine ok(db, again);
  // And through the CLI: exit 1 with the message.
  Folder f = make_folder(s, 2);
  RunResult c = run_vislang({"search", "--db", db_path, "--model", other_model(), "--image", f.dir + "/" + f.items[0].file});
  CHECK(c.status == 1);
  CHECK(contains(c.err, "different model"));
}

TEST_CASE("index: SIGKILL during build/add keeps every committed batch and a consistent DB") {
  TempDir s;
  // 300 larger images in batches of 4: a build of ~75 commits that lasts long enough to be killed
  // at many different points (before the DB exists, between commits, inside one, while saving).
  Folder f = make_folder(s, 300, 256);
  const std::string db_path = s / "db";
  const std::vector<std::string> common = {"--model", fixture_model(), "--images", f.dir, "--db", db_path,
                                           "--batch", "4", "--progress", "--quiet", "--threads", "2"};
  auto args = [&](const char* sub) {
    std::vector<std::string> a = {"index", sub};
    a.insert(a.end(), common.begin(), common.end());
    return a;
  };
  // How long an uninterrupted build takes here (then removed).
  auto t0 = std::chrono::steady_clock::now();
  RunResult full = run_vislang(args("build"));
  REQUIRE_MESSAGE(full.status == 0, full.describe());
  const double full_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fs::remove_all(db_path);
  MESSAGE("an uninterrupted build of 300 images takes " << full_s << " s");
  std::vector<int64_t> committed_at_kill;

  const std::regex progress_re(R"((\d+)/(\d+) images)");
  auto last_committed = [&](const std::string& err) {
    int64_t n = 0;
    for (std::sregex_iterator it(err.begin(), err.end(), progress_re), end; it != end; ++it) n = std::stoll((*it)[1].str());
    return n;
  };
  std::mt19937 rng(12345);
  int64_t rows_before = 0;
  int kills = 0;
  // 8 kills; a trial whose process finished before its kill (a loaded machine makes the uninterrupted
  // timing above unreliable) does not count, up to 16 trials.
  for (int trial = 0; trial < 16 && kills < 8; ++trial) {
    if (IndexDb::exists(db_path) && IndexDb::open(db_path, IndexDb::Mode::READ_ONLY)->size() == 300) {
      fs::remove_all(db_path);  // complete: start a fresh build
      rows_before = 0;
    }
    const bool exists = IndexDb::exists(db_path);
    Process c = start_vislang(args(exists ? "add" : "build"));
    // Even trials: a random moment early on (loading the model, creating the DB, the first batches).
    // Odd trials: once a random number of images is reported committed, plus 0-3 ms (inside a batch).
    double at = 0;
    int64_t target = 0;
    if (trial % 2 == 0) at = std::uniform_real_distribution<double>(0.0, 0.3)(rng) * full_s;
    else target = std::uniform_int_distribution<int64_t>(1, 250 - rows_before > 1 ? 250 - rows_before : 1)(rng);
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      if (c.finished()) break;  // finished before the kill
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if ((target == 0 && t >= at) || (target > 0 && last_committed(c.err()) >= target) || t > 60) {
        if (target > 0) std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 3000)(rng)));
        c.kill(SIGKILL);
        kills += c.wait() == 128 + SIGKILL;
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    // The last progress line printed was printed after its batch was committed.
    const int64_t committed = last_committed(c.err());
    CAPTURE(trial);
    CAPTURE(at);
    CAPTURE(target);
    CAPTURE(committed);
    committed_at_kill.push_back(committed);
    if (!IndexDb::exists(db_path)) {
      CHECK(committed == 0);  // killed before the DB was created: nothing was committed
      continue;
    }
    auto db = IndexDb::open(db_path, IndexDb::Mode::READ_WRITE);  // the lock died with the process
    Consistency con = db->check();
    CHECK_MESSAGE(con.ok, con.detail);
    CHECK(db->size() >= rows_before + committed);
    // Every row is a real file, with its true hash and its vector.
    for (const ImageRow& r : db->all_rows()) {
      const std::string b = slurp(r.path);
      CHECK(r.hash == hash_hex(xxh64(b.data(), b.size())));
      CHECK(int64_t(db->vector(r.id).size()) == db->model().dim);
    }
    rows_before = db->size();
  }
  CHECK(kills >= 6);
  std::string seen;
  for (int64_t c : committed_at_kill) seen += " " + std::to_string(c);
  MESSAGE("images reported committed when each kill landed:" << seen);
  // Finishing with `index add` gives the complete index.
  RunResult fin = run_vislang(args(IndexDb::exists(db_path) ? "add" : "build"));
  REQUIRE_MESSAGE(fin.status == 0, fin.describe());
  auto db = IndexDb::open(db_path, IndexDb::Mode::READ_ONLY);
  CHECK(db->size() == 300);
  CHECK_FALSE(db->open_info().rebuilt);
  Consistency con = db->check();
  CHECK_MESSAGE(con.ok, con.detail);
}

TEST_CASE("recommend: the preference vector follows the formula; liking red items surfaces red items") {
  TempDir s;
  Folder f = make_neutral_folder(s, 160);
  auto emb = fixture_embedder();
  const std::string db_path = s / "db";
  IndexDb::create(db_path, emb->info(), IndexKind::FLAT);
  std::shared_ptr<IndexDb> db = IndexDb::open(db_path, IndexDb::Mode::READ_WRITE);
  index_folder(*db, *emb, f.dir, IndexOptions{});
  SearchEngine engine(db, emb);
  std::vector<ImageRow> rows = db->all_rows();
  auto is_red = [](const ImageRow& r) { return r.label.rfind("red ", 0) == 0; };
  std::vector<int64_t> red, other;
  for (const ImageRow& r : rows) (is_red(r) ? red : other).push_back(r.id);
  REQUIRE(red.size() >= 8);
  const int64_t D = emb->dim();

  // The formula, images only (λ = 0): u = α n(mean liked) − β n(mean disliked).
  RecommendRequest req;
  req.liked = {red[0], red[1], red[2]};
  req.disliked = {other[0]};
  req.caption_weight = 0;
  req.k = 10;
  std::vector<float> like(static_cast<size_t>(D), 0.0f), u(static_cast<size_t>(D));
  for (int64_t id : req.liked) {
    std::vector<float> v = db->vector(id);
    for (int64_t c = 0; c < D; ++c) like[size_t(c)] += v[size_t(c)];
  }
  normalize_rows(like.data(), 1, D);
  std::vector<float> dis = db->vector(other[0]);
  for (int64_t c = 0; c < D; ++c) u[size_t(c)] = 1.0f * like[size_t(c)] - 0.5f * dis[size_t(c)];
  normalize_rows(u.data(), 1, D);
  std::vector<float> got = engine.preference_vector(req);
  for (int64_t c = 0; c < D; ++c) CHECK(got[size_t(c)] == doctest::Approx(u[size_t(c)]).epsilon(1e-5));
  std::vector<SearchResult> rec = engine.recommend(req);
  REQUIRE(rec.size() == 10);
  for (const SearchResult& r : rec) {
    CHECK(std::find(req.liked.begin(), req.liked.end(), r.id) == req.liked.end());
    CHECK(r.id != other[0]);
    CHECK(std::fabs(dot(u, db->vector(r.id)) - r.score) < 1e-5);
  }
  // Liking red items surfaces red items: with this random-weight model the image embedding is dominated
  // by colour, so the red items must rank far above their share (about 1 in 10). (With a trained model
  // on the unmodified toy world: the next test case.)
  int red_top = 0;
  for (size_t i = 0; i < 5; ++i) red_top += is_red(rec[i].row);
  MESSAGE("red items among the top 5 after liking 3 red ones: " << red_top << " (base rate "
          << double(red.size()) / rows.size() << ")");
  CHECK(red_top >= 3);
  RecommendRequest all;
  all.liked = {red[0], red[1], red[2]};
  all.caption_weight = 0;
  all.k = int(rows.size());
  double red_mean = 0, other_mean = 0;
  int nr = 0, no = 0;
  for (const SearchResult& r : engine.recommend(all)) (is_red(r.row) ? (red_mean += r.score, ++nr) : (other_mean += r.score, ++no));
  CHECK(red_mean / nr > other_mean / no);

  if (have_tokenizer()) {
    // Captions and a text intent enter as the formula says: e_i = n(v_i + λ t(caption_i)), + γ t(text).
    RecommendRequest t;
    t.liked = {red[0]};
    t.text = "a photo of a blue star.";
    t.caption_weight = 0.5;
    std::vector<float> e = db->vector(red[0]);
    std::vector<float> cap = emb->embed_texts({db->row(red[0])->caption});
    for (int64_t c = 0; c < D; ++c) e[size_t(c)] += 0.5f * cap[size_t(c)];
    normalize_rows(e.data(), 1, D);
    std::vector<float> txt = emb->embed_texts({t.text});
    for (int64_t c = 0; c < D; ++c) u[size_t(c)] = e[size_t(c)] + txt[size_t(c)];
    normalize_rows(u.data(), 1, D);
    got = engine.preference_vector(t);
    for (int64_t c = 0; c < D; ++c) CHECK(got[size_t(c)] == doctest::Approx(u[size_t(c)]).epsilon(1e-4));
  }
  CHECK(contains(error_of([&] { engine.preference_vector(RecommendRequest{}); }), "at least one"));
  RecommendRequest bad;
  bad.liked = {999999};
  CHECK(contains(error_of([&] { engine.recommend(bad); }), "not in the index"));
}

TEST_CASE("recommend: on the toy world with the default (trained) model, liking red items surfaces red items") {
  const std::string model = std::string(VISLANG_SOURCE_DIR) + "/weights/toy_clip";
  if (!fs::exists(model)) {
    MESSAGE("skipped: " << model << " does not exist yet (the neutral-background case above covers the pipeline)");
    return;
  }
  TempDir s;
  const toy::ToyWorld world;
  Folder f{s / "toy", write_toy_folder(world, s / "toy", 240, toy::Split::TEST)};
  // The toy model carries its own tokenizer (vocab.json + merges.txt in its folder).
  auto tok = std::make_unique<ClipTokenizer>(ClipTokenizer::from_hf(model + "/vocab.json", model + "/merges.txt"));
  auto emb = std::make_shared<Embedder>(clip::ClipModel::load(model), std::move(tok), model);
  IndexDb::create(s / "db", emb->info(), IndexKind::FLAT);
  std::shared_ptr<IndexDb> db = IndexDb::open(s / "db", IndexDb::Mode::READ_WRITE);
  index_folder(*db, *emb, f.dir, IndexOptions{});
  SearchEngine engine(db, emb);
  std::vector<int64_t> red;
  for (const ImageRow& r : db->all_rows())
    if (r.label.rfind("red ", 0) == 0) red.push_back(r.id);
  REQUIRE(red.size() >= 3);
  RecommendRequest req;
  req.liked = {red[0], red[1], red[2]};
  req.k = 5;
  int red_top = 0;
  for (const SearchResult& r : engine.recommend(req)) red_top += r.row.label.rfind("red ", 0) == 0;
  MESSAGE("red items among the top 5 after liking 3 red ones: " << red_top);
  CHECK(red_top >= 3);
}

TEST_CASE("server: endpoints, security, malformed requests, 200 concurrent requests") {
  if (!have_tokenizer()) {
    MESSAGE("skipped: the server test needs the shared tokenizer");
    return;
  }
  TempDir s;
  Folder f = make_folder(s, 48);
  spit(s / "secret.txt", "top secret");
  auto emb = fixture_embedder();
  const std::string db_path = s / "db";
  IndexDb::create(db_path, emb->info(), IndexKind::FLAT);
  {
    auto w = IndexDb::open(db_path, IndexDb::Mode::READ_WRITE);
    index_folder(*w, *emb, f.dir, IndexOptions{});
  }
  std::shared_ptr<IndexDb> db = IndexDb::open(db_path, IndexDb::Mode::READ_ONLY);
  auto engine = std::make_shared<SearchEngine>(db, emb);
  ServerOptions opt;
  opt.port = 0;
  opt.max_upload_bytes = 1 << 20;
  CHECK(opt.host == "127.0.0.1");
  SearchServer server(engine, opt);
  const int port = server.start();
  REQUIRE(port > 0);
  CHECK(server.url() == "http://127.0.0.1:" + std::to_string(port) + "/");
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(30, 0);
  auto get_json = [&](const std::string& path, int want_status) {
    auto res = cli.Get(path.c_str());
    REQUIRE_MESSAGE(res, str(path));
    CHECK_MESSAGE(res->status == want_status, str(path, " -> ", res->status, " ", res->body));
    CHECK(res->get_header_value("Content-Type") == "application/json");
    return json::parse(res->body);
  };

  // The page and its files.
  auto page = cli.Get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(contains(page->body, "vislang"));
  CHECK(contains(page->get_header_value("Content-Type"), "text/html"));
  for (const char* asset : {"/app.js", "/style.css", "/index.html"}) {
    auto r = cli.Get(asset);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body.size() > 100);
  }
  json h = get_json("/api/health", 200);
  CHECK(h["images"] == 48);
  CHECK(h["model"] == "hf_vit");
  CHECK(h["text_queries"] == true);
  CHECK(h["family"] == "clip");
  CHECK(h["itm"] == false);  // the page hides its ITM re-ranking control

  // Text search: the same ranking as the engine.
  json sr = get_json("/api/search?q=a%20red%20circle&k=5", 200);
  std::vector<SearchResult> ref = engine->search_by_text("a red circle", 5);
  REQUIRE(sr["results"].size() == 5);
  for (size_t i = 0; i < 5; ++i) {
    CHECK(sr["results"][i]["id"] == ref[i].id);
    CHECK(sr["results"][i]["score"].get<double>() == doctest::Approx(ref[i].score));
    CHECK(sr["results"][i]["thumb"] == "/thumb/" + std::to_string(ref[i].id));
  }
  auto post = cli.Post("/api/search", R"({"q": "a red circle", "k": 5})", "application/json");
  REQUIRE(post);
  CHECK(post->status == 200);
  CHECK(json::parse(post->body)["results"][0]["id"] == ref[0].id);

  // Query by uploaded image: the indexed file itself comes first.
  const std::string p7 = fs::canonical(f.dir + "/" + f.items[7].file).string();
  const int64_t id7 = db->row_by_path(p7)->id;
  httplib::MultipartFormDataItems upload = {{"image", slurp(p7), "q.png", "image/png"}};
  auto up = cli.Post("/api/search_image?k=3", upload);
  REQUIRE(up);
  CHECK(up->status == 200);
  json uj = json::parse(up->body);
  CHECK(uj["results"][0]["id"] == id7);
  CHECK(uj["results"][0]["score"].get<double>() > 0.999);
  // More like this: the item is left out.
  json ml = get_json("/api/search_image?id=" + std::to_string(id7) + "&k=4", 200);
  CHECK(ml["results"].size() == 4);
  for (const json& r : ml["results"]) CHECK(r["id"] != id7);
  // Zero-shot on the upload.
  httplib::MultipartFormDataItems zs = {{"image", slurp(p7), "q.png", "image/png"},
                                        {"labels", "red circle, blue square,green star", "", ""}};
  auto z = cli.Post("/api/zero_shot", zs);
  REQUIRE(z);
  CHECK(z->status == 200);
  json zj = json::parse(z->body);
  REQUIRE(zj["labels"].size() == 3);
  double psum = 0;
  for (const json& l : zj["labels"]) psum += l["prob"].get<double>();
  CHECK(psum == doctest::Approx(1.0));
  std::vector<LabelScore> zref = engine->zero_shot(load_image(p7), {"red circle", "blue square", "green star"});
  CHECK(zj["labels"][0]["label"] == zref[0].label);
  // Recommend.
  auto rec = cli.Post("/api/recommend", json{{"liked", {id7}}, {"k", 5}}.dump(), "application/json");
  REQUIRE(rec);
  CHECK(rec->status == 200);
  CHECK(json::parse(rec->body)["results"].size() == 5);
  json rg = get_json("/api/recommend?liked=" + std::to_string(id7) + "&text=a%20red%20circle&k=3", 200);
  CHECK(rg["results"].size() == 3);

  // Files: the indexed bytes, thumbnails as JPEG.
  auto img = cli.Get(("/image/" + std::to_string(id7)).c_str());
  REQUIRE(img);
  CHECK(img->status == 200);
  CHECK(img->body == slurp(p7));
  CHECK(img->get_header_value("Content-Type") == "image/png");
  auto th = cli.Get(("/thumb/" + std::to_string(id7)).c_str());
  REQUIRE(th);
  CHECK(th->status == 200);
  CHECK(th->body.compare(0, 3, "\xff\xd8\xff") == 0);

  // Errors: 4xx with a JSON body, never a crash.
  get_json("/image/999999", 404);
  get_json("/thumb/0", 400);  // ids start at 1
  get_json("/image/abc", 404);
  get_json("/image/..%2f..%2fsecret.txt", 404);
  get_json("/image/../../etc/passwd", 404);
  get_json("/nothing/here", 404);
  get_json("/api/search", 400);
  get_json("/api/search?q=x&k=abc", 400);
  get_json("/api/search?q=x&k=-3", 400);
  get_json("/api/search?q=x&min_score=high", 400);
  // ITM re-ranking needs BLIP-2's ITM head (tests/test_blip2_cli.cpp checks it on a BLIP-2 server).
  for (const char* itm : {"/api/search?q=x&score=itm", "/api/search?q=x&rerank=3"}) {
    const std::string msg = get_json(itm, 400).value("error", "");
    CHECK_MESSAGE((contains(msg, "needs a BLIP-2 model with an itm_head") && contains(msg, "hf_vit")), msg);
  }
  CHECK(get_json("/api/search?q=x&score=itc&k=2", 200)["results"].size() == 2);
  get_json("/api/search_image?id=999999", 404);
  get_json("/api/search_image?id=1e3", 400);
  get_json("/api/recommend", 400);
  get_json("/api/recommend?liked=1,banana", 400);
  get_json("/api/recommend?liked=999999", 404);
  get_json("/api/zero_shot?id=1", 400);  // no labels
  auto bad_json = cli.Post("/api/search", "{\"q\": ", "application/json");
  REQUIRE(bad_json);
  CHECK(bad_json->status == 400);
  CHECK(contains(json::parse(bad_json->body)["error"].get<std::string>(), "malformed JSON"));
  auto not_obj = cli.Post("/api/recommend", "[1, 2]", "application/json");
  REQUIRE(not_obj);
  CHECK(not_obj->status == 400);
  auto garbage = cli.Post("/api/search_image", "definitely not an image", "image/png");
  REQUIRE(garbage);
  CHECK(garbage->status == 400);
  CHECK(contains(json::parse(garbage->body)["error"].get<std::string>(), "cannot decode"));
  auto empty = cli.Post("/api/search_image", "", "image/png");
  REQUIRE(empty);
  CHECK(empty->status == 400);
  // Above the upload limit (1 MiB here): 413 with a JSON body.
  auto big = cli.Post("/api/search_image", std::string(2 << 20, 'x'), "image/png");
  REQUIRE(big);
  CHECK(big->status == 413);
  CHECK(json::parse(big->body).contains("error"));
  // Files that left the folder are not served: replaced by a symlink to a file outside, or deleted.
  const std::string p9 = fs::canonical(f.dir + "/" + f.items[9].file).string();
  const int64_t id9 = db->row_by_path(p9)->id;
  fs::remove(p9);
  fs::create_symlink(s / "secret.txt", p9);
  auto esc = cli.Get(("/image/" + std::to_string(id9)).c_str());
  REQUIRE(esc);
  CHECK(esc->status == 404);
  CHECK_FALSE(contains(esc->body, "top secret"));
  const std::string p10 = fs::canonical(f.dir + "/" + f.items[10].file).string();
  fs::remove(p10);
  get_json("/image/" + std::to_string(db->row_by_path(p10)->id), 404);

  // 200 requests from 8 threads: all succeed, and every search answers as it does alone.
  std::vector<std::string> queries = {"a red circle", "a blue square", "a green star", "a yellow heart"};
  std::vector<std::vector<int64_t>> expected;
  for (const std::string& q : queries) {
    std::vector<int64_t> ids;
    for (const SearchResult& r : engine->search_by_text(q, 5)) ids.push_back(r.id);
    expected.push_back(ids);
  }
  std::atomic<int> ok{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(60, 0);
      for (int i = 0; i < 25; ++i) {
        const int kind = (t + i) % 5;
        auto request = [&]() -> httplib::Result {
          if (kind <= 1) {
            const size_t qi = size_t(t * 25 + i) % queries.size();
            httplib::Result r = c.Get(("/api/search?k=5&q=" + httplib::detail::encode_query_param(queries[qi])).c_str());
            if (r && r->status == 200) {
              json j = json::parse(r->body);
              for (size_t k = 0; k < 5; ++k)
                if (j["results"][k]["id"].get<int64_t>() != expected[qi][k]) wrong++;
            }
            return r;
          }
          if (kind == 2) return c.Post("/api/search_image?k=3", upload);
          if (kind == 3) return c.Get(("/thumb/" + std::to_string(1 + (t * 25 + i) % 8)).c_str());  // ids 10, 11 are gone
          return c.Get("/api/health");
        };
        httplib::Result res = request();
        if (res && res->status == 200) ok++;
      }
    });
  for (auto& th2 : threads) th2.join();
  CHECK(ok.load() == 200);
  CHECK(wrong.load() == 0);
  server.stop();
}

TEST_CASE("cli: index build, search, recommend, info, serve") {
  TempDir s;
  Folder f = make_folder(s, 30);
  const std::string db_path = s / "db";
  RunResult b = run_vislang({"index", "build", "--model", fixture_model(), "--images", f.dir, "--db", db_path});
  REQUIRE_MESSAGE(b.status == 0, b.describe());
  CHECK(contains(b.out, "30 new"));
  CHECK(contains(b.out, "images/s"));
  RunResult again = run_vislang({"index", "build", "--model", fixture_model(), "--images", f.dir, "--db", db_path});
  CHECK(again.status == 1);
  CHECK(contains(again.err, "already exists"));
  RunResult add = run_vislang({"index", "add", "--images", f.dir, "--db", db_path});
  REQUIRE_MESSAGE(add.status == 0, add.describe());
  CHECK(contains(add.out, "0 new, 0 updated, 30 unchanged"));

  const std::string q = f.dir + "/" + f.items[3].file;
  RunResult sr = run_vislang({"search", "--db", db_path, "--image", q, "-k", "3", "--format", "jsonl"});
  REQUIRE_MESSAGE(sr.status == 0, sr.describe());
  const std::vector<json> rows = sr.jsonl();
  REQUIRE(rows.size() == 3);
  CHECK(rows[0]["rank"] == 1);
  CHECK(rows[0]["path"] == fs::canonical(q).string());
  CHECK(rows[0]["score"].get<double>() > 0.999);
  CHECK(rows[0]["label"] == f.items[3].label);
  RunResult tab = run_vislang({"search", "--db", db_path, "--id", "1", "-k", "2"});
  REQUIRE_MESSAGE(tab.status == 0, tab.describe());
  CHECK(contains(tab.out, "rank"));
  RunResult rec = run_vislang({"recommend", "--db", db_path, "--liked", "1", q, "--disliked", "2", "-k", "4", "--caption-weight",
                     "0", "--format", "jsonl"});
  REQUIRE_MESSAGE(rec.status == 0, rec.describe());
  const std::string rec_out = rec.out;
  CHECK(std::count(rec_out.begin(), rec_out.end(), '\n') == 4);
  RunResult usage = run_vislang({"search", "--db", db_path});
  CHECK(usage.status == 2);
  CHECK(contains(usage.err, "exactly one of"));
  RunResult info = run_vislang({"index", "info", "--db", db_path, "--check", "--format", "json"});
  REQUIRE_MESSAGE(info.status == 0, info.describe());
  json ij = json::parse(info.out);
  CHECK(ij["images"] == 30);
  CHECK(ij["check"]["ok"] == true);
  fs::remove(f.dir + "/" + f.items[0].file);
  RunResult prune = run_vislang({"index", "prune", "--db", db_path});
  REQUIRE_MESSAGE(prune.status == 0, prune.describe());
  CHECK(contains(prune.out, "1 rows removed, 29 remain"));

  // serve: prints its URL, answers, stops on SIGTERM with status 0.
  Process sv = start_vislang({"serve", "--db", db_path, "--port", "0"});
  std::smatch m;
  std::string out;
  const std::regex url_re(R"(http://127\.0\.0\.1:(\d+)/)");
  for (int i = 0; i < 300 && !std::regex_search(out, m, url_re); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    out = sv.out();
  }
  REQUIRE_MESSAGE(std::regex_search(out, m, url_re), str(out, sv.err()));
  httplib::Client c("127.0.0.1", std::stoi(m[1].str()));
  auto h = c.Get("/api/health");
  REQUIRE(h);
  CHECK(h->status == 200);
  CHECK(json::parse(h->body)["images"] == 29);
  sv.kill(SIGTERM);
  CHECK(sv.wait() == 0);
  CHECK(contains(sv.out(), "stopped"));
}

}  // TEST_SUITE
