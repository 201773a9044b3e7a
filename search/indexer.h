// search/indexer.h — filling an IndexDb from a folder of images: walk, hash, decode, preprocess,
// embed in batches, commit each batch.
//
// Where it sits: DIR → walk_images → per batch: read bytes + XXH64 + decode + preprocess (OpenMP over the
// batch) → Embedder::embed_pixels → IndexDb::commit (one SQLite transaction) → … → IndexDb::save_index.
// The two halves take turns, each with every core: overlapping them (IndexOptions::overlap, decoding the
// next batch on a helper thread) runs two OpenMP teams on the same cores — on 2 cores as fast when the
// machine is idle, 1.65x slower once other work runs (docs/search.md).
//
// Incremental by construction (`vislang index build` is `add` into a new DB):
//   * a path already indexed with the same size and mtime is unchanged and not read at all (--rehash:
//     read and hash it anyway);
//   * otherwise its bytes are hashed; the same hash as the stored row: unchanged (size/mtime updated);
//     a different hash: re-embedded, the row replaced (new id);
//   * a file that cannot be decoded (corrupt, truncated, unreadable, unsupported such as WebP with this
//     decoder) is logged with the reason, recorded in the DB's `failures` table, and skipped; a failure is
//     retried only when the file's size or mtime changes;
//   * prune_missing() removes rows whose file is gone or escapes its root.
// Each batch is committed before the next starts, so a killed process keeps every finished batch
// (search/index_db.h explains why the vector file cannot disagree with the rows).
//
// Files: extensions jpg, jpeg, png, bmp, gif, webp (any case); other files are counted and skipped.
// Symbolic links are followed only when their target stays inside the root folder (canonical paths),
// so an index never points outside the folder it was built from.
// Captions and labels: a `captions.csv` in any folder (header with `path` or `file`, `caption`, and
// optionally `label` columns, paths relative to that folder; datasets/toy_world.h writes one) and a
// `labels.csv` (`path,label`) give the caption and label of its images; without a label, an image in a
// sub-folder of the root gets the sub-folder's name (the ImageFolder convention).
#pragma once
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "search/embedder.h"
#include "search/index_db.h"

namespace vislang::search {

struct WalkResult {
  std::string root;                 // canonical root folder
  std::vector<std::string> images;  // canonical paths of image files inside root, sorted
  int64_t other_files = 0;          // files with other extensions (skipped)
  std::vector<std::pair<std::string, std::string>> rejected;  // (path, why): links leaving the root, ...
};
WalkResult walk_images(const std::string& dir);

struct IndexOptions {
  int batch = 32;
  int threads = 0;      // decode threads (0: OpenMP's default)
  bool rehash = false;  // hash files even when size and mtime are unchanged
  bool overlap = false;  // decode batch i+1 on a helper thread while batch i is embedded (see the header)
  // Called after each committed batch: (files processed, files to process).
  std::function<void(int64_t, int64_t)> on_progress;
  std::ostream* log = nullptr;  // one line per skipped file ("skipped PATH: reason"); null: silent
};

struct IndexStats {
  int64_t found = 0;      // image files found under the folder
  int64_t added = 0;      // new rows
  int64_t updated = 0;    // changed files re-embedded
  int64_t unchanged = 0;  // skipped: same size+mtime or same hash
  int64_t failed = 0;     // could not be decoded (see IndexDb::failures)
  int64_t other_files = 0, rejected = 0;
  int64_t removed = 0;    // prune
  double seconds = 0;        // wall time of the whole call
  double read_decode_s = 0;  // time spent reading + hashing + decoding + preprocessing (per batch, summed)
  double read_decode_cpu_s = 0;  // CPU time of that work, summed over the threads that did it
  double decode_wait_s = 0;  // of which embedding had to wait for (all of it without overlap)
  double embed_s = 0, commit_s = 0;
};

// Adds/updates every image under `dir` (see the file header). The DB must be open READ_WRITE with the
// same model as `emb` (checked). Saves the Faiss index at the end.
IndexStats index_folder(IndexDb& db, const Embedder& emb, const std::string& dir, const IndexOptions& opt);

// Removes the rows whose file no longer exists, is no longer a regular file, or now resolves outside its
// root; forgets failures of files that are gone. Saves the Faiss index.
IndexStats prune_missing(IndexDb& db, std::ostream* log = nullptr);

}  // namespace vislang::search
