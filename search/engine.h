// search/engine.h — queries over an IndexDb: by text, by image, "more like this", recommendations
// from liked/disliked items, and zero-shot labelling of an image. What the CLI (`vislang search`,
// `vislang recommend`) and the web server (search/server.h) call.
//
// Where it sits: query → Embedder (search/embedder.h) → unit vector q → IndexDb::search (Faiss, inner
// product = cosine) → rows (SQLite) → results with scores. BLIP-2 text queries can then be re-ranked by
// the ITM head (search_by_text_itm), which reads the candidates' image files again.
//
// Recommendations (docs/search.md has the worked example). With v_i the stored unit image embedding of
// item i, t(s) the unit text embedding of string s, and n(x) = x / |x|:
//   e_i = n(v_i + λ · t(caption_i))          λ = caption_weight; e_i = v_i when i has no caption or λ = 0
//   u   = α · n(mean_{i ∈ liked} e_i) − β · n(mean_{j ∈ disliked} e_j) + γ · t(text)
//   score(x) = cos(u, v_x) = n(u) · v_x, for every x not liked or disliked; the k best are returned.
// Defaults α = 1 (liked_weight), β = 0.5 (disliked_weight), γ = 1 (text_weight), λ = 0.5. A term whose set
// is empty (no dislikes, no text) is left out. This is Rocchio relevance feedback (Rocchio 1971) in
// CLIP's joint space: likes pull the query toward what they share, dislikes push away from theirs,
// and a text intent ("but in blue") steers it across modalities.
#pragma once
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "image/image.h"
#include "search/embedder.h"
#include "search/index_db.h"

namespace vislang::search {

struct SearchResult {
  int64_t id = 0;
  float score = 0;  // cosine similarity (BLIP-2: the ITC score, the best cosine over the image's queries)
  ImageRow row;
  float itm = std::numeric_limits<float>::quiet_NaN();  // BLIP-2 ITM P(match) when re-scored, else NaN
};

// How search_by_text_itm reads the candidates' image files again.
struct ItmOptions {
  int batch = 32;         // images per ITM forward pass
  int threads = 0;        // decode threads (0: OpenMP's default)
  bool confined = false;  // only files whose real path is still inside the folder they were indexed from
                          // (the web server's rule for the files it touches)
};

// A candidate search_by_text_itm could not re-score: its file is gone, unreadable, or (confined) outside.
struct ItmSkip {
  int64_t id = 0;
  std::string path, reason;
};

// The score fields of one result in JSON, as `vislang search --format jsonl` and the server's
// /api/search write them: "score" the cosine; with `with_itm` (an ITM re-ranking) also "itc" (the
// cosine) and "itm" (P(match), null where not computed), and "score" is then P(match) where computed.
void put_scores(nlohmann::json& j, const SearchResult& r, bool with_itm);

struct ItmSearch {
  std::vector<SearchResult> results;  // at most k; SearchResult::itm set on the re-scored ones
  std::vector<ItmSkip> unreadable;    // in ITC order
};

struct RecommendRequest {
  std::vector<int64_t> liked, disliked;
  std::string text;  // optional intent
  int k = 10;
  float min_score = -2.0f;
  double liked_weight = 1.0, disliked_weight = 0.5, text_weight = 1.0, caption_weight = 0.5;
};

struct LabelScore {
  std::string label;
  double prob = 0;   // softmax over the labels
  double score = 0;  // cosine similarity of the image with the prompt
};

class SearchEngine {
 public:
  // Throws when `emb` is not the model the DB was built with (check_same_model).
  SearchEngine(std::shared_ptr<IndexDb> db, std::shared_ptr<Embedder> emb);

  const IndexDb& db() const { return *db_; }
  const Embedder& embedder() const { return *emb_; }

  std::vector<SearchResult> search_by_text(const std::string& text, int k, float min_score = -2.0f) const;
  // BLIP-2 ITM re-ranking (`vislang search --rerank N`, /api/search?rerank=N): the ITC top max(n, k) of
  // `text` (search_by_text), of which the first n get ITM P(match) from their image files, read again (the
  // DB keeps embeddings, not pixels), and are sorted by it; a candidate whose file cannot be read keeps
  // NaN and goes after the re-scored ones; the rest keep their ITC order after them. The first k are
  // returned. n >= 1 (at most max(n, k) <= 10000 candidates); Error for a CLIP model.
  ItmSearch search_by_text_itm(const std::string& text, int n, int k, float min_score = -2.0f,
                               const ItmOptions& opt = {}) const;
  std::vector<SearchResult> search_by_image(const Image& img, int k, float min_score = -2.0f) const;
  // "More like this": the nearest items to item `id`'s stored vector, without the item itself.
  std::vector<SearchResult> search_by_id(int64_t id, int k, float min_score = -2.0f) const;
  std::vector<SearchResult> search_by_vector(const std::vector<float>& q, int k, float min_score = -2.0f,
                                             const std::unordered_set<int64_t>& exclude = {}) const;
  // The preference vector n(u) of the formula above (exposed for tests and docs).
  std::vector<float> preference_vector(const RecommendRequest& r) const;
  std::vector<SearchResult> recommend(const RecommendRequest& r) const;
  // Zero-shot: softmax(exp(logit_scale) · cos(image, t(template with label))) over `labels` (BLIP-2: the
  // ITC score for cos, Embedder::image_text_scores, and ln(1 / temperature) for logit_scale), sorted by
  // probability. `templ` contains "{}" where the label goes (default "a photo of a {}.").
  std::vector<LabelScore> zero_shot(const Image& img, const std::vector<std::string>& labels,
                                    const std::string& templ = "a photo of a {}.") const;

 private:
  std::vector<SearchResult> with_rows(const std::vector<Hit>& hits) const;
  std::shared_ptr<IndexDb> db_;
  std::shared_ptr<Embedder> emb_;
};

}  // namespace vislang::search
