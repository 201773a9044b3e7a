// search/embedder.h — a model (and its tokenizer) as the search engine uses it: images and texts in,
// L2-normalized embeddings out, so that inner product = cosine similarity. Both model families:
//   CLIP    an image is one unit vector (E), a text one (E).
//   BLIP-2  an image is its Q unit query embeddings (Q · E floats; ModelInfo::vectors_per_item = Q),
//           a text one (E); IndexDb scores an image by its best query, which is exactly BLIP-2's ITC
//           score (Blip2Retrieval::itc_scores). Where one vector per image is needed (image queries,
//           "more like this", recommendations), the image stands for the unit mean of its queries
//           (pool_item). ITM re-ranking (itm_probabilities) needs the pixels again.
//
// Where it sits: pixels / query text → **Embedder** → unit vectors → IndexDb (search/index_db.h).
//
// It also identifies the model: ModelInfo carries a `probe`, the unit image embedding of a fixed
// synthetic picture (a deterministic sine pattern, no file needed; BLIP-2: its Q query embeddings as
// one unit vector). Two models agree on the probe only when they compute the same function, whatever
// their file names, so an index built with one model refuses queries embedded by another
// (check_same_model) — comparing embeddings from different models would give meaningless scores
// without any error otherwise.
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
#include "models/blip2/blip2.h"
#include "models/clip/clip.h"
#include "search/coalescer.h"
#include "search/index_db.h"
#include "tokenizer/clip_tokenizer.h"
#include "tokenizer/wordpiece.h"

namespace vislang::search {

class Embedder {
 public:
  // `tok` may be null: image-only use (building an index); text methods then fail with a clear error.
  // `model_path` is recorded in the index (ModelInfo::path, made absolute) and names the model.
  Embedder(clip::ClipModel model, std::shared_ptr<const ClipTokenizer> tok, const std::string& model_path);
  Embedder(blip2::Blip2Retrieval model, std::shared_ptr<const WordPieceTokenizer> tok, const std::string& model_path);

  // Floats of one vector: a text or image query (E).
  int64_t dim() const { return info_.dim; }
  // Floats per image in embed_pixels: dim() · vectors_per_item (CLIP: dim()).
  int64_t item_size() const { return info_.item_size(); }
  const ModelInfo& info() const { return info_; }
  bool is_blip2() const { return blip2_ != nullptr; }
  const clip::ClipModel& model() const;             // CLIP only (Error for BLIP-2)
  const blip2::Blip2Retrieval& blip2_model() const;  // BLIP-2 only (Error for CLIP)
  bool has_tokenizer() const { return tok_ != nullptr || wordpiece_ != nullptr; }
  // The model's preprocessing: size, mean and std from its config; CLIP: OpenAI's crop rule;
  // BLIP-2: resize to size x size without a crop.
  const PreprocessConfig& preprocess_config() const { return pc_; }

  // f32 (N, 3, S, S) preprocessed pixels → N items of unit vectors, row-major (N · item_size()).
  std::vector<float> embed_pixels(const Tensor& pixels) const;
  // One decoded image → (dim): CLIP its embedding; BLIP-2 pool_item of its query embeddings.
  std::vector<float> embed_image(const Image& img) const;
  // Texts → N unit vectors (N · dim). Texts longer than the context are truncated (queries are free text).
  std::vector<float> embed_texts(const std::vector<std::string>& texts) const;
  // One text → (dim), through the LRU cache; concurrent cache misses are encoded as one batch.
  std::vector<float> embed_text(const std::string& text) const;
  // The cosine of `img` with each text (CLIP), or BLIP-2's ITC score (the best query cosine): (texts).
  std::vector<float> image_text_scores(const Image& img, const std::vector<std::string>& texts) const;
  // BLIP-2 only: ITM P(match) of each image of `pixels` (N, 3, S, S) with `text` (truncated): (N).
  std::vector<float> itm_probabilities(const Tensor& pixels, const std::string& text) const;
  // Entries of the text cache (default 1024; 0 disables it).
  void set_text_cache_size(size_t n);
  // ln of the factor that turns the scores into softmax logits: CLIP's logit_scale; BLIP-2: ln(1 / T),
  // T the model's learned temperature (LAVIS files), else 1 (HF softmaxes the raw ITC cosines).
  double logit_scale() const;

 private:
  void init(const std::string& model_path);  // info_ (with the probe) and pc_, once the model is set
  // Tokenized texts through the text tower: (N, dim) f32 cpu, not yet normalized (CLIP).
  Tensor encode_texts_locked(const std::vector<std::string>& texts) const;
  std::shared_ptr<const clip::ClipModel> clip_;
  std::shared_ptr<const blip2::Blip2Retrieval> blip2_;
  std::shared_ptr<const ClipTokenizer> tok_;
  std::shared_ptr<const WordPieceTokenizer> wordpiece_;
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
// Throws vislang::Error when `query` is not the model `db` was built with (family, dimension, vectors
// per item or probe differ), naming both models and what to do.
void check_same_model(const ModelInfo& db, const ModelInfo& query);
// L2-normalizes each row of (rows · dim) values in place (torch F.normalize's eps = 1e-12).
void normalize_rows(float* v, int64_t rows, int64_t dim);

}  // namespace vislang::search
