// search/indexer.cpp — walk, hash, decode, embed, commit; see search/indexer.h.
#include "search/indexer.h"

#include <omp.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "image/clip_preprocess.h"
#include "kernels/ops.h"
#include "search/content_hash.h"
#include "search/file_util.h"

namespace fs = std::filesystem;

namespace vislang::search {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

bool image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".gif" || ext == ".webp";
}

// RFC 4180 CSV: fields separated by ',', optionally quoted with '"' ("" inside quotes is one quote),
// quoted fields may span lines. Returns the rows.
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field += c;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) {
        row.push_back(std::move(field));
        rows.push_back(std::move(row));
      }
      row.clear();
      field.clear();
      any = false;
    } else {
      field += c;
      any = true;
    }
  }
  if (any || !field.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

struct Annotation {
  std::string caption, label;
};

// captions.csv / labels.csv of one folder, keyed by canonical image path.
void read_annotations(const fs::path& folder, std::map<std::string, Annotation>& out, std::ostream* log) {
  for (const char* name : {"captions.csv", "labels.csv"}) {
    const fs::path f = folder / name;
    std::error_code ec;
    if (!fs::is_regular_file(f, ec)) continue;
    std::ifstream in(f, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::vector<std::vector<std::string>> rows = parse_csv(ss.str());
    if (rows.empty()) continue;
    int path_col = -1, caption_col = -1, label_col = -1;
    for (size_t c = 0; c < rows[0].size(); ++c) {
      std::string h = rows[0][c];
      std::transform(h.begin(), h.end(), h.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
      if (h == "path" || h == "file" || h == "filename" || h == "image") path_col = int(c);
      else if (h == "caption" || h == "text") caption_col = int(c);
      else if (h == "label" || h == "class") label_col = int(c);
    }
    if (path_col < 0 || (caption_col < 0 && label_col < 0)) {
      if (log) *log << "note: " << f.string() << " has no path/caption/label header; ignored\n";
      continue;
    }
    for (size_t r = 1; r < rows.size(); ++r) {
      const std::vector<std::string>& row = rows[r];
      if (int(row.size()) <= path_col) continue;
      fs::path p = fs::weakly_canonical(folder / row[size_t(path_col)], ec);
      if (ec) continue;
      Annotation& a = out[p.string()];
      if (caption_col >= 0 && int(row.size()) > caption_col) a.caption = row[size_t(caption_col)];
      if (label_col >= 0 && int(row.size()) > label_col) a.label = row[size_t(label_col)];
    }
  }
}

// One file of a batch, filled in by the parallel read/decode step.
struct Item {
  std::string path;
  int64_t size = 0, mtime_ns = 0;
  const ImageRow* existing = nullptr;
  bool ok = false, same_hash = false;
  std::string error, hash;
  Tensor pixels;  // (3, S, S)
  int width = 0, height = 0;
  double cpu_s = 0;  // CPU time of reading + hashing + decoding + preprocessing it
};

}  // namespace

WalkResult walk_images(const std::string& dir) {
  std::error_code ec;
  VL_CHECK(fs::exists(dir, ec), "--images ", dir, " does not exist");
  VL_CHECK(fs::is_directory(dir, ec), "--images ", dir, " is not a folder");
  WalkResult w;
  w.root = fs::canonical(dir, ec).string();
  VL_CHECK(!ec, "--images ", dir, ": ", ec.message());
  // Folder symlinks are not followed (no loops, no escapes); file symlinks must resolve inside root.
  fs::recursive_directory_iterator it(w.root, fs::directory_options::skip_permission_denied, ec), end;
  VL_CHECK(!ec, "--images ", dir, ": ", ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) {
      w.rejected.emplace_back(dir, ec.message());
      break;
    }
    std::error_code e2;
    const fs::directory_entry& de = *it;
    if (de.is_directory(e2)) continue;
    if (!image_extension(de.path())) {
      if (de.is_regular_file(e2) && de.path().filename() != "captions.csv" && de.path().filename() != "labels.csv")
        ++w.other_files;
      continue;
    }
    if (de.is_symlink(e2)) {
      if (!inside_root(de.path().string(), w.root)) {
        w.rejected.emplace_back(de.path().string(), "symbolic link to a file outside the indexed folder");
        continue;
      }
      fs::path target = fs::canonical(de.path(), e2);
      if (e2 || !fs::is_regular_file(target, e2)) {
        w.rejected.emplace_back(de.path().string(), "symbolic link to something that is not a regular file");
        continue;
      }
      w.images.push_back(target.string());
      continue;
    }
    if (!de.is_regular_file(e2)) continue;
    w.images.push_back(de.path().string());
  }
  std::sort(w.images.begin(), w.images.end());
  w.images.erase(std::unique(w.images.begin(), w.images.end()), w.images.end());
  return w;
}

IndexStats index_folder(IndexDb& db, const Embedder& emb, const std::string& dir, const IndexOptions& opt) {
  const auto t_start = Clock::now();
  check_same_model(db.model(), emb.info());
  IndexStats st;
  WalkResult w = walk_images(dir);
  st.found = int64_t(w.images.size());
  st.other_files = w.other_files;
  st.rejected = int64_t(w.rejected.size());
  if (opt.log)
    for (const auto& [p, why] : w.rejected) *opt.log << "skipped " << p << ": " << why << "\n";

  // What is already in the DB.
  std::vector<ImageRow> rows = db.all_rows();
  std::map<std::string, const ImageRow*> by_path;
  for (const ImageRow& r : rows) by_path[r.path] = &r;
  std::map<std::string, Failure> failed_before;
  for (Failure& f : db.failures()) failed_before[f.path] = f;

  // Captions / labels of every folder that holds images.
  std::map<std::string, Annotation> notes;
  {
    std::set<std::string> folders;
    for (const std::string& p : w.images) folders.insert(fs::path(p).parent_path().string());
    for (const std::string& f : folders) read_annotations(f, notes, opt.log);
  }
  auto annotate = [&](ImageRow& r) {
    auto it = notes.find(r.path);
    if (it != notes.end()) {
      r.caption = it->second.caption;
      r.label = it->second.label;
    }
    if (r.label.empty()) {
      fs::path rel = fs::path(r.path).lexically_relative(w.root);
      if (std::distance(rel.begin(), rel.end()) >= 2) r.label = rel.begin()->string();
    }
  };

  // Which files need reading: new, or size/mtime changed (or --rehash).
  std::vector<Item> todo;
  for (const std::string& p : w.images) {
    Item it;
    it.path = p;
    if (!file_stat(p, it.size, it.mtime_ns)) {
      it.error = str("cannot stat: ", std::strerror(errno));
    }
    auto ex = by_path.find(p);
    if (ex != by_path.end()) {
      it.existing = ex->second;
      if (!opt.rehash && it.existing->size == it.size && it.existing->mtime_ns == it.mtime_ns) {
        ++st.unchanged;
        continue;
      }
    } else if (auto fb = failed_before.find(p); fb != failed_before.end() && !opt.rehash &&
                                                fb->second.size == it.size && fb->second.mtime_ns == it.mtime_ns) {
      ++st.failed;  // failed before and unchanged since: not retried
      if (opt.log) *opt.log << "skipped " << p << ": " << fb->second.reason << " (unchanged since it failed)\n";
      continue;
    }
    todo.push_back(std::move(it));
  }

  const PreprocessConfig& pc = emb.preprocess_config();
  const int64_t total = int64_t(todo.size());
  const int B = std::max(1, opt.batch);
  if (opt.on_progress) opt.on_progress(0, total);
  // 1. read + hash + decode + preprocess of items [b0, b1), in parallel over the batch. With
  // opt.overlap it runs on a helper thread for batch i+1 while batch i is embedded and committed.
  const int nt = opt.threads > 0 ? opt.threads : omp_get_max_threads();
  auto prepare = [&](int64_t b0, int64_t b1) {
    const auto t0 = Clock::now();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int64_t i = b0; i < b1; ++i) {
      Item& it = todo[size_t(i)];
      if (!it.error.empty()) continue;
      const double cpu0 = thread_cpu_seconds();
      struct CpuTime {  // charged however the item ends
        Item& it;
        double t0;
        ~CpuTime() { it.cpu_s = thread_cpu_seconds() - t0; }
      } cpu{it, cpu0};
      try {
        std::string bytes;
        if (!read_file_bytes(it.path, bytes, it.error)) continue;
        it.size = int64_t(bytes.size());
        it.hash = hash_hex(xxh64(bytes.data(), bytes.size()));
        if (it.existing && it.existing->hash == it.hash) {
          it.same_hash = true;
          continue;
        }
        Image img = decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), it.path);
        it.width = img.width;
        it.height = img.height;
        it.pixels = preprocess(img, pc);
        it.ok = true;
      } catch (const std::exception& e) {
        it.error = e.what();
      }
    }
    return since(t0);
  };
  auto launch = [&](int64_t b0) {
    return std::async(opt.overlap ? std::launch::async : std::launch::deferred, prepare, b0,
                      std::min<int64_t>(total, b0 + B));
  };
  std::future<double> next;
  if (total > 0) next = launch(0);
  for (int64_t b0 = 0; b0 < total; b0 += B) {
    const int64_t b1 = std::min<int64_t>(total, b0 + B);
    auto t0 = Clock::now();
    st.read_decode_s += next.get();
    st.decode_wait_s += since(t0);
    for (int64_t i = b0; i < b1; ++i) st.read_decode_cpu_s += todo[size_t(i)].cpu_s;
    if (b1 < total) next = launch(b1);

    // 2. embed the decoded ones.
    t0 = Clock::now();
    std::vector<Tensor> px;
    std::vector<size_t> which;
    for (int64_t i = b0; i < b1; ++i)
      if (todo[size_t(i)].ok) {
        px.push_back(todo[size_t(i)].pixels);
        which.push_back(size_t(i));
      }
    std::vector<float> vecs;
    if (!px.empty()) vecs = emb.embed_pixels(ops::stack(px, 0));
    st.embed_s += since(t0);

    // 3. one transaction for the batch.
    t0 = Clock::now();
    std::vector<NewImage> add;
    std::vector<ImageRow> touch;
    std::vector<Failure> fails;
    const size_t D = size_t(emb.item_size());  // floats per image (BLIP-2: its Q query embeddings)
    for (size_t j = 0; j < which.size(); ++j) {
      Item& it = todo[which[j]];
      NewImage n;
      n.row.path = it.path;
      n.row.root = w.root;
      n.row.size = it.size;
      n.row.mtime_ns = it.mtime_ns;
      n.row.hash = it.hash;
      n.row.width = it.width;
      n.row.height = it.height;
      annotate(n.row);
      n.vec.assign(vecs.begin() + long(j * D), vecs.begin() + long((j + 1) * D));
      if (it.existing) ++st.updated;
      else ++st.added;
      add.push_back(std::move(n));
      it.pixels = Tensor();
    }
    for (int64_t i = b0; i < b1; ++i) {
      Item& it = todo[size_t(i)];
      if (it.same_hash) {
        ImageRow r = *it.existing;
        r.size = it.size;
        r.mtime_ns = it.mtime_ns;
        touch.push_back(r);
        ++st.unchanged;
      } else if (!it.ok) {
        ++st.failed;
        if (opt.log) {
          // decode errors already name the file; others do not.
          if (it.error.find(it.path) != std::string::npos) *opt.log << "skipped: " << it.error << "\n";
          else *opt.log << "skipped " << it.path << ": " << it.error << "\n";
        }
        fails.push_back({it.path, it.error, it.size, it.mtime_ns});
      }
    }
    db.commit(add, {}, touch, fails);
    st.commit_s += since(t0);
    if (opt.on_progress) opt.on_progress(b1, total);
  }
  const auto t_save = Clock::now();
  db.save_index();
  st.commit_s += since(t_save);
  st.seconds = since(t_start);
  return st;
}

IndexStats prune_missing(IndexDb& db, std::ostream* log) {
  const auto t0 = Clock::now();
  IndexStats st;
  std::vector<int64_t> gone;
  for (const ImageRow& r : db.all_rows()) {
    std::error_code ec;
    std::string why;
    if (!fs::exists(r.path, ec)) why = "no longer exists";
    else if (!fs::is_regular_file(r.path, ec)) why = "is no longer a regular file";
    else if (!inside_root(r.path, r.root)) why = str("now resolves outside ", r.root);
    if (why.empty()) continue;
    gone.push_back(r.id);
    if (log) *log << "removed " << r.path << " (id " << r.id << "): " << why << "\n";
  }
  std::vector<std::string> stale_failures;
  for (const Failure& f : db.failures()) {
    std::error_code ec;
    if (!fs::exists(f.path, ec)) stale_failures.push_back(f.path);
  }
  if (!gone.empty()) db.commit({}, gone);
  if (!stale_failures.empty()) db.forget_failures(stale_failures);
  db.save_index();
  st.removed = int64_t(gone.size());
  st.seconds = since(t0);
  return st;
}

}  // namespace vislang::search
