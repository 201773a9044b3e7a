// search/index_db.h — the persistent image index: one folder holding a SQLite database (the rows and
// the durable copy of every vector) and a Faiss index file (what queries search).
//
// Where it sits: image files → indexer (search/indexer.h) → **IndexDb** ← engine (search/engine.h) ← CLI,
// web server.
//
// Layout of a DB folder (`--db PATH`):
//   PATH/index.sqlite   tables `meta` (model, dimension, index kind, generation), `images` (one row per
//                       indexed file: path, root, size, mtime, content hash, label, caption, width,
//                       height, and its L2-normalized embedding as a float32 BLOB) and `failures`
//                       (files that could not be read, with the reason).
//   PATH/vectors.faiss  the Faiss index over those embeddings (ids = images.id), behind a small header:
//                       magic, the generation it was built at, vector count, dimension, payload checksum.
//
// Multi-vector models (BLIP-2): an image is stored as its Q query embeddings (ModelInfo::
// vectors_per_item = Q; the BLOB holds Q · dim floats) and Faiss holds all of them, vector q of row id
// under the Faiss id id · Q + q. A query q scores an item by its BEST vector, max_j v_j · q — for a
// BLIP-2 text query exactly the ITC score. search() asks Faiss for (k + excluded) · Q vectors and keeps
// the first (= best) hit of each item: every item has at most Q vectors in that list, so it holds at
// least k + excluded distinct items, and they are exactly the best ones (exact for FLAT). With Q = 1
// (CLIP) Faiss ids are the row ids and nothing changes.
//   PATH/lock           flock()ed by the one process allowed to write.
//
// Crash safety — why the two files can never disagree:
//   * Every change (a batch of new images, removals) is one SQLite transaction that also increments
//     meta.generation. SQLite (WAL journal) guarantees that a killed process leaves every committed
//     transaction and none of the uncommitted one.
//   * vectors.faiss is only ever replaced whole (write a temporary file, rename it over the old one) and
//     is tagged with the generation of the rows it was built from and a checksum of its payload.
//   * open() accepts the Faiss file only when its tag equals meta.generation, its row count equals the
//     row count, and its checksum holds; otherwise (a build killed before it saved the file, a torn
//     file) it rebuilds the Faiss index from the vectors stored in SQLite — the SQLite rows are the
//     single source of truth — and, when opened for writing, saves it.
//
// Index kinds: FLAT (faiss::IndexFlatIP, exact; the default), HNSW (faiss::IndexHNSWFlat, M = 32,
// approximate, for large collections) and IVF (faiss::IndexIVFFlat over a flat quantizer, trained on
// the stored vectors, nlist ≈ 4·√N). All use inner product on L2-normalized vectors = cosine.
//
// Thread safety: const methods may be called from many threads at once (queries of the web server);
// writes need the one READ_WRITE handle and must not run concurrently with each other.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

namespace vislang::search {

enum class IndexKind { FLAT, HNSW, IVF };
const char* index_kind_name(IndexKind k);       // "flat", "hnsw", "ivf"
IndexKind parse_index_kind(const std::string&);  // Error naming the accepted values

// The model an index was built with. `probe` identifies the weights: the L2-normalized image
// embedding of a fixed synthetic image (search/embedder.h), so that a different checkpoint of the
// same shape is recognised too.
struct ModelInfo {
  std::string name;         // "toy_clip", the folder or file name
  std::string path;         // as an absolute path when the index was built
  int64_t dim = 0;          // embedding dimension (of one vector, and of a query)
  std::string config_json;  // ClipConfig::to_json() / Blip2Config::to_json()
  std::vector<float> probe;  // (item_size()) unit vector
  std::string family = "clip";   // "clip" or "blip2"
  int64_t vectors_per_item = 1;  // BLIP-2: the Q query embeddings of an image (see the file header)
  int64_t item_size() const { return dim * vectors_per_item; }
};

// The unit mean of an item's `vectors` unit vectors (dim each): a multi-vector item's summary vector
// (IndexDb::vector, Embedder::embed_image), for image-to-image search and recommendations.
std::vector<float> pool_item(const float* item, int64_t vectors, int64_t dim);

struct ImageRow {
  int64_t id = 0;            // stable: never reused (SQLite AUTOINCREMENT), also the Faiss id
  std::string path;          // absolute, as found under `root`
  std::string root;          // the canonical folder it was indexed from (files are served only inside it)
  int64_t size = 0;          // bytes
  int64_t mtime_ns = 0;      // modification time, ns since the epoch
  std::string hash;          // XXH64 of the bytes (search/content_hash.h)
  std::string label;         // from captions.csv's label column, else the first sub-folder under root
  std::string caption;       // from captions.csv, else ""
  int width = 0, height = 0;
};

struct NewImage {
  ImageRow row;             // row.id is ignored (assigned on insert)
  std::vector<float> vec;   // (item_size) = vectors_per_item unit vectors of (dim)
};

struct Failure {
  std::string path, reason;
  int64_t size = 0, mtime_ns = 0;
};

struct Hit {
  int64_t id;
  float score;  // cosine similarity (multi-vector items: the best over the item's vectors)
};

// What open() found and what check() verifies.
struct Consistency {
  bool ok = true;
  int64_t rows = 0, vectors = 0;  // SQLite rows, Faiss vectors (rows · vectors_per_item when ok)
  std::string detail;             // what is wrong, or "" when ok
};

class IndexDb {
 public:
  enum class Mode { READ_ONLY, READ_WRITE };
  struct OpenInfo {
    bool rebuilt = false;  // the Faiss file was missing, stale or torn and was rebuilt from SQLite
    std::string why;       // why it was rebuilt
  };

  // Creates PATH (must not exist, or be an empty folder) with an empty index for `model`.
  static void create(const std::string& dir, const ModelInfo& model, IndexKind kind);
  static bool exists(const std::string& dir);  // PATH/index.sqlite exists
  // Opens an existing DB. READ_WRITE takes the folder's lock (Error when another process holds it).
  static std::unique_ptr<IndexDb> open(const std::string& dir, Mode mode);
  ~IndexDb();
  IndexDb(const IndexDb&) = delete;
  IndexDb& operator=(const IndexDb&) = delete;

  const std::string& dir() const { return dir_; }
  const ModelInfo& model() const { return model_; }
  IndexKind kind() const { return kind_; }
  int64_t generation() const;
  int64_t size() const;  // rows
  const OpenInfo& open_info() const { return open_info_; }

  // ---- writes (READ_WRITE) -----------------------------------------------------------------------
  // One transaction: deletes the rows `remove_ids`, inserts `add`, updates size/mtime of `touch`
  // (files whose bytes did not change), records `failures` and forgets failures of added paths,
  // increments the generation. Returns the new ids in the order of `add`. The in-memory Faiss index
  // follows (FLAT incrementally; HNSW/IVF are rebuilt on the next query or save_index()).
  std::vector<int64_t> commit(const std::vector<NewImage>& add, const std::vector<int64_t>& remove_ids,
                              const std::vector<ImageRow>& touch = {}, const std::vector<Failure>& failures = {});
  // Writes vectors.faiss for the current generation (atomic replace). Cheap to call when up to date.
  void save_index();
  // Removes failure records (e.g. of files that no longer exist).
  void forget_failures(const std::vector<std::string>& paths);

  // ---- reads -------------------------------------------------------------------------------------
  // The k best rows by inner product with the unit vector `q` (dim) — for a multi-vector model the
  // best inner product over the row's vectors — score >= min_score, ids in `exclude` left out.
  // Ordered by score, then id.
  std::vector<Hit> search(const float* q, int k, float min_score = -2.0f,
                          const std::unordered_set<int64_t>& exclude = {}) const;
  std::optional<ImageRow> row(int64_t id) const;
  std::optional<ImageRow> row_by_path(const std::string& path) const;
  std::vector<ImageRow> all_rows() const;  // by id
  std::vector<Failure> failures() const;
  // The stored vector of a row (dim) — for a multi-vector model pool_item of its vectors — or empty
  // when there is no such row.
  std::vector<float> vector(int64_t id) const;
  // Every stored vector of a row (item_size), or empty when there is no such row.
  std::vector<float> vectors(int64_t id) const;
  // Verifies that the Faiss index holds exactly the SQLite rows' ids and (FLAT) the same vectors.
  Consistency check() const;
  // ANN search parameters: IVF nprobe (default max(1, nlist / 8)), HNSW efSearch (default 64).
  void set_search_params(int ivf_nprobe, int hnsw_ef);

 private:
  IndexDb() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string dir_;
  ModelInfo model_;
  IndexKind kind_ = IndexKind::FLAT;
  OpenInfo open_info_;
  friend struct IndexDbAccess;
};

}  // namespace vislang::search
