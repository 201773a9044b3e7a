// search/index_db.cpp — IndexDb: SQLite rows (the source of truth) + a Faiss index file tagged with the
// generation of the rows it was built from. See search/index_db.h for the layout and the crash-safety
// argument.
#include "search/index_db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <faiss/utils/distances.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <shared_mutex>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "image/png_write.h"
#include "search/coalescer.h"
#include "search/content_hash.h"
#include "search/file_util.h"

namespace fs = std::filesystem;

namespace vislang::search {

const char* index_kind_name(IndexKind k) {
  switch (k) {
    case IndexKind::FLAT: return "flat";
    case IndexKind::HNSW: return "hnsw";
    case IndexKind::IVF: return "ivf";
  }
  return "?";
}

IndexKind parse_index_kind(const std::string& s) {
  if (s == "flat") return IndexKind::FLAT;
  if (s == "hnsw") return IndexKind::HNSW;
  if (s == "ivf") return IndexKind::IVF;
  VL_FAIL("index kind must be flat, hnsw or ivf, got '", s, "'");
}

namespace {

constexpr int kSchemaVersion = 1;
constexpr const char* kSqliteName = "index.sqlite";
constexpr const char* kFaissName = "vectors.faiss";
constexpr const char* kLockName = "lock";
constexpr char kFaissMagic[8] = {'V', 'L', 'F', 'A', 'I', 'S', 'S', '1'};
constexpr size_t kFaissHeader = 48;  // magic, generation, ntotal, dim, payload bytes, payload XXH64

// ---- SQLite, minimally wrapped ------------------------------------------------------------------
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK)
      VL_FAIL("index DB: cannot prepare '", sql, "': ", sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, int64_t v) { return check(sqlite3_bind_int64(s_, i, v)); }
  Stmt& bind(int i, const std::string& v) { return check(sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT)); }
  Stmt& bind_blob(int i, const void* p, size_t n) { return check(sqlite3_bind_blob(s_, i, p, int(n), SQLITE_TRANSIENT)); }
  // true: a row is available; false: done.
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    VL_FAIL("index DB: ", sqlite3_errmsg(db_), " (", sqlite3_sql(s_), ")");
  }
  void run() {
    while (step()) {
    }
    sqlite3_reset(s_);
  }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  int64_t i64(int c) const { return sqlite3_column_int64(s_, c); }
  std::string text(int c) const {
    const unsigned char* t = sqlite3_column_text(s_, c);
    return t ? std::string(reinterpret_cast<const char*>(t), size_t(sqlite3_column_bytes(s_, c))) : std::string();
  }
  const void* blob(int c, size_t& n) const {
    const void* p = sqlite3_column_blob(s_, c);
    n = size_t(sqlite3_column_bytes(s_, c));
    return p;
  }

 private:
  Stmt& check(int rc) {
    if (rc != SQLITE_OK) VL_FAIL("index DB: bind failed: ", sqlite3_errmsg(db_));
    return *this;
  }
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string e = err ? err : "?";
    sqlite3_free(err);
    VL_FAIL("index DB: ", e, " (", sql, ")");
  }
}

sqlite3* open_sqlite(const std::string& path, bool create) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
  if (!create && ::access(path.c_str(), W_OK) != 0) flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string e = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    VL_FAIL("cannot open the index database ", path, ": ", e);
  }
  sqlite3_busy_timeout(db, 10000);
  return db;
}

const char* kSchema =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE images(id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL UNIQUE, root TEXT NOT NULL,"
    " size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, hash TEXT NOT NULL, label TEXT NOT NULL DEFAULT '',"
    " caption TEXT NOT NULL DEFAULT '', width INTEGER NOT NULL DEFAULT 0, height INTEGER NOT NULL DEFAULT 0,"
    " vector BLOB NOT NULL);"
    "CREATE TABLE failures(path TEXT PRIMARY KEY, reason TEXT NOT NULL, size INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL);";

constexpr const char* kRowColumns = "id, path, root, size, mtime_ns, hash, label, caption, width, height";

ImageRow read_row(const Stmt& s) {
  ImageRow r;
  r.id = s.i64(0);
  r.path = s.text(1);
  r.root = s.text(2);
  r.size = s.i64(3);
  r.mtime_ns = s.i64(4);
  r.hash = s.text(5);
  r.label = s.text(6);
  r.caption = s.text(7);
  r.width = int(s.i64(8));
  r.height = int(s.i64(9));
  return r;
}

void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += char((v >> (8 * i)) & 0xff);
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

int ivf_nlist(int64_t n) {
  // ≈ 4·√N lists, and at least 39 training points per list (Faiss' k-means warns below that).
  int64_t nl = std::min<int64_t>(int64_t(4 * std::sqrt(double(n))), n / 39);
  return int(std::max<int64_t>(1, nl));
}

}  // namespace

// ---- the implementation state ---------------------------------------------------------------------
struct IndexDb::Impl {
  sqlite3* db = nullptr;
  int lock_fd = -1;
  Mode mode = Mode::READ_ONLY;
  mutable std::mutex db_mu;                // one statement at a time on the connection
  mutable std::shared_mutex index_mu;      // shared: search; exclusive: modify / rebuild
  mutable std::unique_ptr<faiss::IndexIDMap2> index;
  mutable int64_t index_generation = -1;   // the rows' generation the in-memory index reflects
  int64_t saved_generation = -1;           // the generation of vectors.faiss on disk
  int nprobe = 0, ef_search = 64;
  mutable std::atomic<int64_t> last_refresh_ms{0};  // READ_ONLY: when the generation was last polled

  // Concurrent searches are coalesced (search/coalescer.h): one Faiss call runs every query queued
  // while the previous one ran — for a flat index one pass over the vectors serves them all.
  struct Query {
    const float* q;
    int64_t want;
  };
  struct Answer {
    std::vector<float> D;
    std::vector<faiss::Index::idx_t> I;
  };
  mutable Coalescer<Query, Answer> searches;

  ~Impl() {
    if (db) sqlite3_close(db);
    if (lock_fd >= 0) ::close(lock_fd);  // releases the flock
  }
};

struct IndexDbAccess {
  // Every stored vector with its Faiss id (row id · Q + q, see the header), ordered by id.
  static void load_vectors(const IndexDb& d, std::vector<int64_t>& ids, std::vector<float>& vecs) {
    std::lock_guard<std::mutex> g(d.impl_->db_mu);
    const int64_t item = d.model_.item_size(), Q = d.model_.vectors_per_item;
    Stmt s(d.impl_->db, "SELECT id, vector FROM images ORDER BY id");
    while (s.step()) {
      size_t n = 0;
      const void* p = s.blob(1, n);
      VL_CHECK(n == size_t(item) * sizeof(float), "index DB ", d.dir_, ": row ", s.i64(0), " has a vector of ", n,
               " bytes, expected ", item * 4, " (", Q, " x dimension ", d.model_.dim, ")");
      for (int64_t q = 0; q < Q; ++q) ids.push_back(s.i64(0) * Q + q);
      const float* f = static_cast<const float*>(p);
      vecs.insert(vecs.end(), f, f + item);
    }
  }

  // Faiss ids of rows `rows`: id · Q + q for q < Q.
  static std::vector<int64_t> faiss_ids(const IndexDb& d, const std::vector<int64_t>& rows) {
    const int64_t Q = d.model_.vectors_per_item;
    std::vector<int64_t> out;
    out.reserve(rows.size() * size_t(Q));
    for (int64_t id : rows)
      for (int64_t q = 0; q < Q; ++q) out.push_back(id * Q + q);
    return out;
  }

  static std::unique_ptr<faiss::IndexIDMap2> build(const IndexDb& d, const std::vector<int64_t>& ids,
                                                   const std::vector<float>& vecs) {
    const int dim = int(d.model_.dim);
    const int64_t n = int64_t(ids.size());
    faiss::Index* base = nullptr;
    try {
      if (d.kind_ == IndexKind::FLAT || n == 0) {
        base = new faiss::IndexFlatIP(dim);
      } else if (d.kind_ == IndexKind::HNSW) {
        auto* h = new faiss::IndexHNSWFlat(dim, 32, faiss::METRIC_INNER_PRODUCT);
        h->hnsw.efConstruction = 80;
        h->hnsw.efSearch = d.impl_->ef_search;
        base = h;
      } else {
        auto* q = new faiss::IndexFlatIP(dim);
        const int nlist = ivf_nlist(n);
        auto* ivf = new faiss::IndexIVFFlat(q, dim, size_t(nlist), faiss::METRIC_INNER_PRODUCT);
        ivf->own_fields = true;
        ivf->cp.verbose = false;
        ivf->train(n, vecs.data());
        ivf->nprobe = size_t(d.impl_->nprobe > 0 ? std::min(d.impl_->nprobe, nlist) : std::max(1, nlist / 8));
        base = ivf;
      }
      auto idx = std::make_unique<faiss::IndexIDMap2>(base);
      idx->own_fields = true;
      if (n > 0) idx->add_with_ids(n, vecs.data(), ids.data());
      return idx;
    } catch (const faiss::FaissException& e) {
      VL_FAIL("index DB ", d.dir_, ": building the ", index_kind_name(d.kind_), " Faiss index failed: ", e.what());
    }
  }

  // Rebuilds the in-memory index from SQLite. Caller holds index_mu exclusively.
  static void rebuild(const IndexDb& d) {
    const int64_t gen = d.generation();
    std::vector<int64_t> ids;
    std::vector<float> vecs;
    load_vectors(d, ids, vecs);
    d.impl_->index = build(d, ids, vecs);
    d.impl_->index_generation = gen;
  }

  // Makes the in-memory index match the rows (HNSW/IVF after a commit). Caller holds nothing.
  static void ensure_current(const IndexDb& d) {
    {
      std::shared_lock<std::shared_mutex> g(d.impl_->index_mu);
      if (d.impl_->index && d.impl_->index_generation == d.generation()) return;
    }
    std::unique_lock<std::shared_mutex> g(d.impl_->index_mu);
    if (!d.impl_->index || d.impl_->index_generation != d.generation()) rebuild(d);
  }

  // READ_ONLY handles follow a writer in another process: at most every 2 s, when the generation moved,
  // reload vectors.faiss (or rebuild from SQLite if the writer has not saved it yet).
  static void refresh_read_only(const IndexDb& d) {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch()).count();
    int64_t last = d.impl_->last_refresh_ms.load();
    if (now - last < 2000 || !d.impl_->last_refresh_ms.compare_exchange_strong(last, now)) return;
    const int64_t gen = d.generation();
    {
      std::shared_lock<std::shared_mutex> g(d.impl_->index_mu);
      if (d.impl_->index && d.impl_->index_generation == gen) return;
    }
    std::unique_lock<std::shared_mutex> g(d.impl_->index_mu);
    if (!try_load(d, gen, d.size()).empty()) rebuild(d);
  }

  // Loads vectors.faiss when it is valid for generation `gen` and `rows` rows; "" on success, else why not.
  static std::string try_load(const IndexDb& d, int64_t gen, int64_t rows) {
    std::string file, err;
    const std::string path = d.dir_ + "/" + kFaissName;
    if (!read_file_bytes(path, file, err)) return "no vectors.faiss";
    const uint8_t* buf = reinterpret_cast<const uint8_t*>(file.data());
    if (file.size() < kFaissHeader || std::memcmp(buf, kFaissMagic, 8) != 0) return "vectors.faiss has no valid header";
    const uint64_t fgen = get_u64(&buf[8]), fn = get_u64(&buf[16]), fdim = get_u64(&buf[24]), plen = get_u64(&buf[32]),
                   phash = get_u64(&buf[40]);
    if (int64_t(fgen) != gen) return str("vectors.faiss is from generation ", fgen, ", the rows are at ", gen);
    if (int64_t(fn) != rows * d.model_.vectors_per_item)
      return str("vectors.faiss holds ", fn, " vectors, the DB ", rows, " rows of ", d.model_.vectors_per_item);
    if (int64_t(fdim) != d.model_.dim) return str("vectors.faiss has dimension ", fdim);
    if (file.size() != kFaissHeader + plen) return "vectors.faiss is truncated";
    if (xxh64(buf + kFaissHeader, size_t(plen)) != phash) return "vectors.faiss fails its checksum";
    try {
      faiss::VectorIOReader r;
      r.data.assign(buf + kFaissHeader, buf + file.size());
      std::unique_ptr<faiss::Index> idx(faiss::read_index(&r));
      auto* map = dynamic_cast<faiss::IndexIDMap2*>(idx.get());
      if (!map || map->ntotal != rows * d.model_.vectors_per_item)
        return "vectors.faiss does not hold an id-mapped index of the rows";
      idx.release();
      d.impl_->index.reset(map);
      d.impl_->index_generation = gen;
      apply_params(d);
      return "";
    } catch (const faiss::FaissException& e) {
      return str("vectors.faiss cannot be read: ", e.what());
    }
  }

  static void apply_params(const IndexDb& d) {
    faiss::Index* base = d.impl_->index ? d.impl_->index->index : nullptr;
    if (auto* h = dynamic_cast<faiss::IndexHNSW*>(base)) h->hnsw.efSearch = d.impl_->ef_search;
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(base)) {
      const int nlist = int(ivf->nlist);
      ivf->nprobe = size_t(d.impl_->nprobe > 0 ? std::min(d.impl_->nprobe, nlist) : std::max(1, nlist / 8));
    }
  }
};

// ---- create / open ------------------------------------------------------------------------------
bool IndexDb::exists(const std::string& dir) { return fs::is_regular_file(fs::path(dir) / kSqliteName); }

void IndexDb::create(const std::string& dir, const ModelInfo& model, IndexKind kind) {
  VL_CHECK(model.dim > 0, "index DB: the model's embedding dimension is unknown");
  VL_CHECK(model.vectors_per_item >= 1, "index DB: vectors_per_item must be >= 1");
  VL_CHECK(int64_t(model.probe.size()) == model.item_size(), "index DB: the model probe has ", model.probe.size(),
           " values, expected ", model.item_size());
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    VL_CHECK(fs::is_directory(dir, ec) && fs::is_empty(dir, ec), "cannot create the index DB ", dir,
             ": it already exists (use 'vislang index add' to update it, or remove it first)");
    fs::remove(dir, ec);
  }
  // Built in a temporary sibling folder and renamed into place: a killed create leaves no half DB.
  const fs::path final_dir = fs::absolute(dir);
  const fs::path tmp = final_dir.parent_path() / str(".", final_dir.filename().string(), ".creating.", ::getpid());
  fs::create_directories(final_dir.parent_path(), ec);
  fs::remove_all(tmp, ec);
  VL_CHECK(fs::create_directories(tmp, ec), "cannot create the index DB folder ", tmp.string(), ": ", ec.message());
  try {
    sqlite3* db = open_sqlite((tmp / kSqliteName).string(), true);
    struct Closer {
      sqlite3* db;
      ~Closer() { sqlite3_close(db); }
    } closer{db};
    exec(db, "PRAGMA journal_mode=WAL");
    exec(db, "BEGIN");
    exec(db, kSchema);
    Stmt put(db, "INSERT INTO meta(key, value) VALUES(?, ?)");
    nlohmann::json probe = model.probe;
    const std::vector<std::pair<std::string, std::string>> meta = {
        {"schema", std::to_string(kSchemaVersion)},
        {"generation", "0"},
        {"model_name", model.name},
        {"model_path", model.path},
        {"dim", std::to_string(model.dim)},
        {"model_config", model.config_json},
        {"model_probe", probe.dump()},
        {"model_family", model.family},
        {"vectors_per_item", std::to_string(model.vectors_per_item)},
        {"index_kind", index_kind_name(kind)},
    };
    for (const auto& [k, v] : meta) {
      put.bind(1, k).bind(2, v).run();
      put.reset();
    }
    exec(db, "COMMIT");
    exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  VL_CHECK(::rename(tmp.c_str(), final_dir.c_str()) == 0, "cannot create the index DB ", dir, ": rename failed: ",
           std::strerror(errno));
}

std::unique_ptr<IndexDb> IndexDb::open(const std::string& dir, Mode mode) {
  const std::string sq = (fs::path(dir) / kSqliteName).string();
  VL_CHECK(fs::is_regular_file(sq), "no index DB at ", dir, " (", sq,
           " does not exist; create one with 'vislang index build --images DIR --db ", dir, "')");
  // Flat search through BLAS (sgemm over blocks of the vectors) even for a single query: Faiss' default
  // switches only at 20 queries and scans the vectors once per query below that. Measured on 100k
  // 512-d vectors, 2 cores: 44 ms instead of 76 ms per single query, and a coalesced batch of queries
  // (see IndexDb::search) reads the vectors once. (A process-wide Faiss setting.)
  faiss::distance_compute_blas_threshold = 1;
  std::unique_ptr<IndexDb> d(new IndexDb());
  d->impl_ = std::make_unique<Impl>();
  d->dir_ = dir;
  d->impl_->mode = mode;
  if (mode == Mode::READ_WRITE) {
    const std::string lock = (fs::path(dir) / kLockName).string();
    d->impl_->lock_fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    VL_CHECK(d->impl_->lock_fd >= 0, "cannot open ", lock, ": ", std::strerror(errno));
    VL_CHECK(::flock(d->impl_->lock_fd, LOCK_EX | LOCK_NB) == 0, "the index DB ", dir,
             " is being written by another process (", lock, " is locked); wait for it to finish");
  }
  d->impl_->db = open_sqlite(sq, false);
  sqlite3* db = d->impl_->db;
  if (mode == Mode::READ_WRITE) {
    exec(db, "PRAGMA journal_mode=WAL");
    // NORMAL in WAL mode: a killed process loses nothing committed; a power cut may lose the last
    // transactions but never leaves a torn database.
    exec(db, "PRAGMA synchronous=NORMAL");
  }
  std::map<std::string, std::string> meta;
  try {
    Stmt s(db, "SELECT key, value FROM meta");
    while (s.step()) meta[s.text(0)] = s.text(1);
  } catch (const Error& e) {
    VL_FAIL("", dir, " is not a vislang index DB (", e.what(), ")");
  }
  auto need = [&](const char* k) -> const std::string& {
    auto it = meta.find(k);
    VL_CHECK(it != meta.end(), "index DB ", dir, ": meta.", k, " is missing");
    return it->second;
  };
  VL_CHECK(need("schema") == std::to_string(kSchemaVersion), "index DB ", dir, " has schema version ", need("schema"),
           "; this vislang reads version ", kSchemaVersion, " (rebuild it with 'vislang index build')");
  d->model_.name = need("model_name");
  d->model_.path = need("model_path");
  d->model_.dim = std::stoll(need("dim"));
  d->model_.config_json = need("model_config");
  d->model_.probe = nlohmann::json::parse(need("model_probe")).get<std::vector<float>>();
  // Absent in DBs written before BLIP-2 support: CLIP, one vector per image.
  if (auto it = meta.find("model_family"); it != meta.end()) d->model_.family = it->second;
  if (auto it = meta.find("vectors_per_item"); it != meta.end()) d->model_.vectors_per_item = std::stoll(it->second);
  VL_CHECK(d->model_.vectors_per_item >= 1 && d->model_.dim >= 1, "index DB ", dir, ": meta.vectors_per_item ",
           d->model_.vectors_per_item, " / meta.dim ", d->model_.dim, " must be >= 1");
  d->kind_ = parse_index_kind(need("index_kind"));

  std::unique_lock<std::shared_mutex> g(d->impl_->index_mu);
  const int64_t gen = d->generation(), rows = d->size();
  std::string why = IndexDbAccess::try_load(*d, gen, rows);
  if (!why.empty()) {
    IndexDbAccess::rebuild(*d);
    d->open_info_.rebuilt = true;
    d->open_info_.why = why;
    if (mode == Mode::READ_WRITE) {
      g.unlock();
      d->save_index();
    }
  } else {
    d->impl_->saved_generation = gen;
  }
  return d;
}

IndexDb::~IndexDb() = default;

int64_t IndexDb::generation() const {
  std::lock_guard<std::mutex> g(impl_->db_mu);
  Stmt s(impl_->db, "SELECT value FROM meta WHERE key = 'generation'");
  VL_CHECK(s.step(), "index DB ", dir_, ": meta.generation is missing");
  return std::stoll(s.text(0));
}

int64_t IndexDb::size() const {
  std::lock_guard<std::mutex> g(impl_->db_mu);
  Stmt s(impl_->db, "SELECT COUNT(*) FROM images");
  s.step();
  return s.i64(0);
}

// ---- writes -------------------------------------------------------------------------------------
std::vector<int64_t> IndexDb::commit(const std::vector<NewImage>& add, const std::vector<int64_t>& remove_ids,
                                     const std::vector<ImageRow>& touch, const std::vector<Failure>& failures) {
  VL_CHECK(impl_->mode == Mode::READ_WRITE, "index DB ", dir_, " was opened read-only");
  for (const NewImage& a : add)
    VL_CHECK(int64_t(a.vec.size()) == model_.item_size(), "index DB: a vector of ", a.vec.size(), " values for ",
             a.row.path, ", expected ", model_.item_size());
  std::vector<int64_t> new_ids, removed = remove_ids;
  {
    std::lock_guard<std::mutex> g(impl_->db_mu);
    sqlite3* db = impl_->db;
    exec(db, "BEGIN IMMEDIATE");
    try {
      Stmt del(db, "DELETE FROM images WHERE id = ?");
      for (int64_t id : remove_ids) {
        del.bind(1, id).run();
        del.reset();
      }
      Stmt find(db, "SELECT id FROM images WHERE path = ?");
      Stmt ins(db,
               "INSERT INTO images(path, root, size, mtime_ns, hash, label, caption, width, height, vector)"
               " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      Stmt unfail(db, "DELETE FROM failures WHERE path = ?");
      for (const NewImage& a : add) {
        // A path already present (re-embedded after a change) is replaced: its old id goes away.
        find.bind(1, a.row.path);
        if (find.step()) {
          const int64_t old = find.i64(0);
          removed.push_back(old);
          del.bind(1, old).run();
          del.reset();
        }
        find.reset();
        const ImageRow& r = a.row;
        ins.bind(1, r.path).bind(2, r.root).bind(3, r.size).bind(4, r.mtime_ns).bind(5, r.hash).bind(6, r.label);
        ins.bind(7, r.caption).bind(8, int64_t(r.width)).bind(9, int64_t(r.height));
        ins.bind_blob(10, a.vec.data(), a.vec.size() * sizeof(float));
        ins.run();
        ins.reset();
        new_ids.push_back(sqlite3_last_insert_rowid(db));
        unfail.bind(1, r.path).run();
        unfail.reset();
      }
      Stmt upd(db, "UPDATE images SET size = ?, mtime_ns = ? WHERE id = ?");
      for (const ImageRow& r : touch) {
        upd.bind(1, r.size).bind(2, r.mtime_ns).bind(3, r.id).run();
        upd.reset();
      }
      Stmt fail(db, "INSERT OR REPLACE INTO failures(path, reason, size, mtime_ns) VALUES(?, ?, ?, ?)");
      for (const Failure& f : failures) {
        fail.bind(1, f.path).bind(2, f.reason).bind(3, f.size).bind(4, f.mtime_ns).run();
        fail.reset();
      }
      exec(db, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'");
      exec(db, "COMMIT");
    } catch (...) {
      sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  // The in-memory index follows the rows: FLAT incrementally, the others on their next use.
  const int64_t gen = generation();
  std::unique_lock<std::shared_mutex> g(impl_->index_mu);
  if (kind_ == IndexKind::FLAT && impl_->index && impl_->index_generation + 1 == gen &&
      dynamic_cast<faiss::IndexFlat*>(impl_->index->index)) {
    try {
      if (!removed.empty()) {
        const std::vector<int64_t> fids = IndexDbAccess::faiss_ids(*this, removed);
        faiss::IDSelectorBatch sel(fids.size(), fids.data());
        impl_->index->remove_ids(sel);
      }
      std::vector<float> vecs;
      vecs.reserve(add.size() * size_t(model_.item_size()));
      for (const NewImage& a : add) vecs.insert(vecs.end(), a.vec.begin(), a.vec.end());
      const std::vector<int64_t> fids = IndexDbAccess::faiss_ids(*this, new_ids);
      if (!add.empty()) impl_->index->add_with_ids(int64_t(fids.size()), vecs.data(), fids.data());
      impl_->index_generation = gen;
    } catch (const faiss::FaissException&) {
      impl_->index.reset();  // rebuilt from SQLite on next use
    }
  }
  return new_ids;
}

void IndexDb::save_index() {
  VL_CHECK(impl_->mode == Mode::READ_WRITE, "index DB ", dir_, " was opened read-only");
  IndexDbAccess::ensure_current(*this);
  std::shared_lock<std::shared_mutex> g(impl_->index_mu);
  if (impl_->saved_generation == impl_->index_generation) return;
  faiss::VectorIOWriter w;
  w.data.resize(kFaissHeader);  // the header goes in front once the payload is known
  try {
    faiss::write_index(impl_->index.get(), &w);
  } catch (const faiss::FaissException& e) {
    VL_FAIL("index DB ", dir_, ": serializing the Faiss index failed: ", e.what());
  }
  const size_t plen = w.data.size() - kFaissHeader;
  std::string head(kFaissMagic, 8);
  put_u64(head, uint64_t(impl_->index_generation));
  put_u64(head, uint64_t(impl_->index->ntotal));
  put_u64(head, uint64_t(model_.dim));
  put_u64(head, uint64_t(plen));
  put_u64(head, xxh64(w.data.data() + kFaissHeader, plen));
  std::memcpy(w.data.data(), head.data(), kFaissHeader);
  // Temporary file + rename: a reader (or a killed writer) sees the old file or the new one, never a
  // mix. No fsync: after a power cut a torn file fails its checksum and is rebuilt from SQLite.
  write_file_atomic(dir_ + "/" + kFaissName, w.data.data(), w.data.size());
  impl_->saved_generation = impl_->index_generation;
}

void IndexDb::forget_failures(const std::vector<std::string>& paths) {
  VL_CHECK(impl_->mode == Mode::READ_WRITE, "index DB ", dir_, " was opened read-only");
  std::lock_guard<std::mutex> g(impl_->db_mu);
  exec(impl_->db, "BEGIN IMMEDIATE");
  try {
    Stmt del(impl_->db, "DELETE FROM failures WHERE path = ?");
    for (const std::string& p : paths) {
      del.bind(1, p).run();
      del.reset();
    }
    exec(impl_->db, "COMMIT");
  } catch (...) {
    sqlite3_exec(impl_->db, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

// ---- reads --------------------------------------------------------------------------------------
std::vector<Hit> IndexDb::search(const float* q, int k, float min_score,
                                 const std::unordered_set<int64_t>& exclude) const {
  std::vector<Hit> out;
  if (k <= 0) return out;
  if (impl_->mode == Mode::READ_WRITE) IndexDbAccess::ensure_current(*this);
  else IndexDbAccess::refresh_read_only(*this);
  std::shared_lock<std::shared_mutex> g(impl_->index_mu);
  const faiss::IndexIDMap2* idx = impl_->index.get();
  if (!idx || idx->ntotal == 0) return out;
  // Q vectors per item: (k + excluded) · Q hits hold at least k + excluded items (file header).
  const int64_t Q = model_.vectors_per_item;
  const int64_t want = std::min<int64_t>(idx->ntotal, (int64_t(k) + int64_t(exclude.size())) * Q);
  const int64_t d = model_.dim;
  const Impl::Answer ans = impl_->searches.run(Impl::Query{q, want}, [&](const std::vector<const Impl::Query*>& batch) {
    const int64_t n = int64_t(batch.size());
    int64_t kmax = 0;
    std::vector<float> X(static_cast<size_t>(n * d));
    for (int64_t b = 0; b < n; ++b) {
      kmax = std::max(kmax, batch[size_t(b)]->want);
      std::memcpy(&X[size_t(b * d)], batch[size_t(b)]->q, size_t(d) * sizeof(float));
    }
    std::vector<float> D(static_cast<size_t>(n * kmax));
    std::vector<faiss::Index::idx_t> I(static_cast<size_t>(n * kmax));
    try {
      idx->search(n, X.data(), kmax, D.data(), I.data());
    } catch (const faiss::FaissException& e) {
      VL_FAIL("index DB ", dir_, ": search failed: ", e.what());
    }
    std::vector<Impl::Answer> out(batch.size());
    for (int64_t b = 0; b < n; ++b) {
      const int64_t w = batch[size_t(b)]->want;
      out[size_t(b)].D.assign(D.begin() + b * kmax, D.begin() + b * kmax + w);
      out[size_t(b)].I.assign(I.begin() + b * kmax, I.begin() + b * kmax + w);
    }
    return out;
  });
  const std::vector<float>& D = ans.D;
  const std::vector<faiss::Index::idx_t>& I = ans.I;
  std::unordered_set<int64_t> seen;  // items already hit: hits come best first, so the first is the max
  for (int64_t i = 0; i < want; ++i) {
    if (I[size_t(i)] < 0) continue;
    const int64_t item = I[size_t(i)] / Q;
    if (Q > 1 && !seen.insert(item).second) continue;
    if (exclude.count(item) || D[size_t(i)] < min_score) continue;
    out.push_back({item, D[size_t(i)]});
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Hit& a, const Hit& b) { return a.score != b.score ? a.score > b.score : a.id < b.id; });
  if (int64_t(out.size()) > k) out.resize(size_t(k));
  return out;
}

std::optional<ImageRow> IndexDb::row(int64_t id) const {
  std::lock_guard<std::mutex> g(impl_->db_mu);
  Stmt s(impl_->db, (std::string("SELECT ") + kRowColumns + " FROM images WHERE id = ?").c_str());
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_row(s);
}

std::optional<ImageRow> IndexDb::row_by_path(const std::string& path) const {
  std::lock_guard<std::mutex> g(impl_->db_mu);
  Stmt s(impl_->db, (std::string("SELECT ") + kRowColumns + " FROM images WHERE path = ?").c_str());
  s.bind(1, path);
  if (!s.step()) return std::nullopt;
  return read_row(s);
}

std::vector<ImageRow> IndexDb::all_rows() const {
  std::lock_guard<std::mutex> g(impl_->db_mu);
  Stmt s(impl_->db, (std::string("SELECT ") + kRowColumns + " FROM images ORDER BY id").c_str());
  std::vector<ImageRow> out;
  while (s.step()) out.push_back(read_row(s));
  return out;
}

std::vector<Failure> IndexDb::failures() const {
  std::lock_guard<std::mutex> g(impl_->db_mu);
  Stmt s(impl_->db, "SELECT path, reason, size, mtime_ns FROM failures ORDER BY path");
  std::vector<Failure> out;
  while (s.step()) out.push_back({s.text(0), s.text(1), s.i64(2), s.i64(3)});
  return out;
}

std::vector<float> IndexDb::vectors(int64_t id) const {
  std::lock_guard<std::mutex> g(impl_->db_mu);
  Stmt s(impl_->db, "SELECT vector FROM images WHERE id = ?");
  s.bind(1, id);
  if (!s.step()) return {};
  size_t n = 0;
  const float* p = static_cast<const float*>(s.blob(0, n));
  VL_CHECK(n == size_t(model_.item_size()) * 4, "index DB ", dir_, ": row ", id, " has a vector of ", n, " bytes");
  return std::vector<float>(p, p + model_.item_size());
}

std::vector<float> IndexDb::vector(int64_t id) const {
  std::vector<float> v = vectors(id);
  if (v.empty() || model_.vectors_per_item == 1) return v;
  return pool_item(v.data(), model_.vectors_per_item, model_.dim);
}

std::vector<float> pool_item(const float* item, int64_t vectors, int64_t dim) {
  std::vector<double> m(size_t(dim), 0.0);
  for (int64_t q = 0; q < vectors; ++q)
    for (int64_t c = 0; c < dim; ++c) m[size_t(c)] += item[q * dim + c];
  double s = 0;
  for (double x : m) s += x * x;
  const double inv = 1.0 / std::max(std::sqrt(s), 1e-12);  // torch F.normalize's eps
  std::vector<float> out(static_cast<size_t>(dim));
  for (int64_t c = 0; c < dim; ++c) out[size_t(c)] = float(m[size_t(c)] * inv);
  return out;
}

Consistency IndexDb::check() const {
  Consistency c;
  std::vector<int64_t> ids;
  std::vector<float> vecs;
  IndexDbAccess::load_vectors(*this, ids, vecs);
  c.rows = int64_t(ids.size());
  std::shared_lock<std::shared_mutex> g(impl_->index_mu);
  const faiss::IndexIDMap2* idx = impl_->index.get();
  c.vectors = idx ? idx->ntotal : 0;
  auto fail = [&](const std::string& why) {
    c.ok = false;
    c.detail = why;
    return c;
  };
  if (!idx) return fail("no Faiss index in memory");
  if (impl_->index_generation != generation())
    return fail(str("the Faiss index reflects generation ", impl_->index_generation, ", the rows are at ", generation()));
  const int64_t Q = model_.vectors_per_item;
  c.rows /= Q;  // ids holds Q Faiss ids per row
  if (c.vectors != c.rows * Q)
    return fail(str("the Faiss index holds ", c.vectors, " vectors, SQLite ", c.rows, " rows of ", Q));
  std::vector<int64_t> fids(idx->id_map.begin(), idx->id_map.end());
  std::sort(fids.begin(), fids.end());
  if (fids != ids) return fail("the Faiss ids differ from the SQLite row ids");
  if (dynamic_cast<const faiss::IndexFlat*>(idx->index)) {
    std::vector<float> v(size_t(model_.dim));
    for (size_t i = 0; i < ids.size(); ++i) {
      idx->reconstruct(ids[i], v.data());
      if (std::memcmp(v.data(), &vecs[i * size_t(model_.dim)], v.size() * sizeof(float)) != 0)
        return fail(str("the Faiss vector of id ", ids[i] / Q, Q > 1 ? str(" (query ", ids[i] % Q, ")") : std::string(),
                        " differs from the one stored in SQLite"));
    }
  }
  return c;
}

void IndexDb::set_search_params(int ivf_nprobe, int hnsw_ef) {
  std::unique_lock<std::shared_mutex> g(impl_->index_mu);
  impl_->nprobe = ivf_nprobe;
  impl_->ef_search = hnsw_ef > 0 ? hnsw_ef : 64;
  IndexDbAccess::apply_params(*this);
}

}  // namespace vislang::search
