// search/embedder.h — a CLIP model (and its tokenizer) as the search engine uses it: images and texts
// in, L2-normalized embeddings out, so that inner product = cosine similarity.
//
// Where it sits: pixels / query text → **Embedder** → unit vectors → IndexDb (search/index_db.h).
//
// It also identifies the model: ModelInfo carries a `probe`, the unit image embedding of a fixed
// synthetic picture (a deterministic sine pattern, no file needed). Two models agree on the probe only
// when they compute the same function, whatever their file names, so an index built with one model
// refuses queries embedded by another (check_same_model) — comparing embeddings from different models
// would give meaningless scores without any error otherwise.
//
// Thread safety: every method may be called concurrently. Forward passes are serialized by a mutex
// (each already uses every core through OpenMP); single texts that miss the LRU cache while another
// is being encoded are encoded together as one batch (search/coalescer.h), and a repeated query costs
// only the vector search.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "image/clip_preprocess.h"
#include "models/clip/clip.h"
#include "search/coalescer.h"
#include "search/index_db.h"
#include "tokenizer/clip_tokenizer.h"

namespace vislang::search {

class Embedder {
 public:
  // `tok` may be null: image-only use (building an index); text methods then fail with a clear error.
  // `model_path` is recorded in the index (ModelInfo::path, made absolute) and names the model.
  Embedder(clip::ClipModel model, std::unique_ptr<ClipTokenizer> tok, const std::string& model_path);

  int64_t dim() const { return info_.dim; }
  const ModelInfo& info() const { return info_; }
  const clip::ClipModel& model() const { return model_; }
  bool has_tokenizer() const { return tok_ != nullptr; }
  // The model's preprocessing: size, mean and std from its config, OpenAI's crop rule.
  const PreprocessConfig& preprocess_config() const { return pc_; }

  // f32 (N, 3, S, S) preprocessed pixels → N unit vectors, row-major (N · dim).
  std::vector<float> embed_pixels(const Tensor& pixels) const;
  // One decoded image → (dim).
  std::vector<float> embed_image(const Image& img) const;
  // Texts → N unit vectors (N · dim). Texts longer than the context are truncated (queries are free text).
  std::vector<float> embed_texts(const std::vector<std::string>& texts) const;
  // One text → (dim), through the LRU cache; concurrent cache misses are encoded as one batch.
  std::vector<float> embed_text(const std::string& text) const;
  // Entries of the text cache (default 1024; 0 disables it).
  void set_text_cache_size(size_t n);
  double logit_scale() const { return model_.logit_scale(); }

 private:
  clip::ClipModel model_;
  std::unique_ptr<ClipTokenizer> tok_;
  PreprocessConfig pc_;
  ModelInfo info_;
  mutable std::mutex forward_mu_;
  mutable Coalescer<std::string, std::vector<float>> text_batches_;
  mutable std::mutex cache_mu_;
  size_t cache_cap_ = 1024;
  mutable std::list<std::pair<std::string, std::vector<float>>> lru_;  // most recent first
  mutable std::unordered_map<std::string, std::list<std::pair<std::string, std::vector<float>>>::iterator> cache_;
};

// The fixed probe input for a model config: f32 (1, 3, S, S).
Tensor probe_pixels(int64_t image_size);
// Throws vislang::Error when `query` is not the model `db` was built with (dimension or probe differ),
// naming both models and what to do.
void check_same_model(const ModelInfo& db, const ModelInfo& query);
// L2-normalizes each row of (rows · dim) values in place (torch F.normalize's eps = 1e-12).
void normalize_rows(float* v, int64_t rows, int64_t dim);

}  // namespace vislang::search
