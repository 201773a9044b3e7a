// search/engine.cpp — see search/engine.h (the recommendation formula is written out there).
#include "search/engine.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "search/file_util.h"

namespace vislang::search {

void put_scores(nlohmann::json& j, const SearchResult& r, bool with_itm) {
  j["score"] = r.score;
  if (!with_itm) return;
  j["itc"] = r.score;
  j["itm"] = std::isnan(r.itm) ? nlohmann::json() : nlohmann::json(r.itm);
  if (!std::isnan(r.itm)) j["score"] = r.itm;
}

namespace {
constexpr int kMaxK = 10000;

int clamp_k(int k) { return std::max(0, std::min(k, kMaxK)); }

// n(mean of rows), or empty when there are no rows.
std::vector<float> unit_mean(const std::vector<std::vector<float>>& rows, int64_t dim) {
  if (rows.empty()) return {};
  std::vector<float> m(size_t(dim), 0.0f);
  for (const auto& r : rows)
    for (int64_t c = 0; c < dim; ++c) m[size_t(c)] += r[size_t(c)];
  normalize_rows(m.data(), 1, dim);
  return m;
}
}  // namespace

SearchEngine::SearchEngine(std::shared_ptr<IndexDb> db, std::shared_ptr<Embedder> emb)
    : db_(std::move(db)), emb_(std::move(emb)) {
  VL_CHECK(db_ && emb_, "SearchEngine: a DB and a model are required");
  check_same_model(db_->model(), emb_->info());
}

std::vector<SearchResult> SearchEngine::with_rows(const std::vector<Hit>& hits) const {
  std::vector<SearchResult> out;
  out.reserve(hits.size());
  for (const Hit& h : hits) {
    std::optional<ImageRow> r = db_->row(h.id);
    if (!r) continue;  // removed by a concurrent writer since the index was loaded
    out.push_back({h.id, h.score, std::move(*r)});
  }
  return out;
}

std::vector<SearchResult> SearchEngine::search_by_vector(const std::vector<float>& q, int k, float min_score,
                                                         const std::unordered_set<int64_t>& exclude) const {
  VL_CHECK(int64_t(q.size()) == db_->model().dim, "search: query vector has ", q.size(), " values, expected ",
           db_->model().dim);
  return with_rows(db_->search(q.data(), clamp_k(k), min_score, exclude));
}

std::vector<SearchResult> SearchEngine::search_by_text(const std::string& text, int k, float min_score) const {
  VL_CHECK(!text.empty(), "search: the query text is empty");
  return search_by_vector(emb_->embed_text(text), k, min_score);
}

ItmSearch SearchEngine::search_by_text_itm(const std::string& text, int n, int k, float min_score,
                                           const ItmOptions& opt) const {
  VL_CHECK(emb_->is_blip2(), "ITM re-ranking needs a BLIP-2 model with an ITM head; '", emb_->info().name,
           "' is a CLIP model");
  VL_CHECK(n >= 1, "ITM re-ranking: the number of candidates to re-score must be at least 1, got ", n);
  VL_CHECK(opt.batch >= 1, "ITM re-ranking: the batch must be at least 1, got ", opt.batch);
  ItmSearch out;
  std::vector<SearchResult>& rs = out.results;
  rs = search_by_text(text, std::max(n, k), min_score);  // ITC order
  const size_t m = std::min(size_t(n), rs.size());      // candidates to re-score
  std::vector<std::string> why(m);  // why rs[i] could not be re-scored; empty when it was
  for (size_t b = 0; b < m; b += size_t(opt.batch)) {
    const size_t e = std::min(m, b + size_t(opt.batch));
    std::vector<std::string> paths;
    std::vector<size_t> at;  // paths[j] is rs[at[j]]
    for (size_t i = b; i < e; ++i) {
      if (opt.confined && !inside_root(rs[i].row.path, rs[i].row.root))
        why[i] = "the file is gone or no longer inside the indexed folder";
      else
        paths.push_back(rs[i].row.path), at.push_back(i);
    }
    std::vector<PreprocessResult> res = preprocess_files(paths, emb_->preprocess_config(), opt.threads);
    for (size_t j = 0; j < res.size(); ++j)
      if (!res[j].ok) why[at[j]] = res[j].error.empty() ? "cannot be read" : res[j].error;
    if (std::none_of(res.begin(), res.end(), [](const PreprocessResult& r) { return r.ok; })) continue;
    std::vector<size_t> ok;
    Tensor px = stack_ok(res, &ok);  // (n_ok, 3, S, S)
    const std::vector<float> p = emb_->itm_probabilities(px, text);  // (n_ok)
    for (size_t j = 0; j < ok.size(); ++j) rs[at[ok[j]]].itm = p[j];
  }
  for (size_t i = 0; i < m; ++i)
    if (!why[i].empty()) out.unreadable.push_back({rs[i].id, rs[i].row.path, why[i]});
  // Re-scored (by P(match), ties in ITC order), then unreadable candidates, then the rest (ITC order).
  auto group = [&](size_t i) { return i >= m ? 2 : why[i].empty() && !std::isnan(rs[i].itm) ? 0 : 1; };
  std::vector<size_t> order(rs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    if (group(x) != group(y)) return group(x) < group(y);
    return group(x) == 0 && rs[x].itm > rs[y].itm;
  });
  std::vector<SearchResult> sorted;
  for (size_t i = 0; i < order.size() && int(i) < k; ++i) sorted.push_back(std::move(rs[order[i]]));
  rs = std::move(sorted);
  return out;
}

std::vector<SearchResult> SearchEngine::search_by_image(const Image& img, int k, float min_score) const {
  return search_by_vector(emb_->embed_image(img), k, min_score);
}

std::vector<SearchResult> SearchEngine::search_by_id(int64_t id, int k, float min_score) const {
  std::vector<float> v = db_->vector(id);
  VL_CHECK(!v.empty(), "no image with id ", id, " in the index");
  return search_by_vector(v, k, min_score, {id});
}

std::vector<float> SearchEngine::preference_vector(const RecommendRequest& r) const {
  VL_CHECK(!r.liked.empty() || !r.disliked.empty() || !r.text.empty(),
           "recommend: give at least one liked or disliked item, or a text");
  const int64_t D = db_->model().dim;
  auto item_vectors = [&](const std::vector<int64_t>& ids, const char* what) {
    std::vector<std::vector<float>> out;
    std::vector<std::string> captions;
    std::vector<size_t> with_caption;
    for (int64_t id : ids) {
      std::vector<float> v = db_->vector(id);
      VL_CHECK(!v.empty(), "recommend: ", what, " item ", id, " is not in the index");
      std::optional<ImageRow> row = db_->row(id);
      if (r.caption_weight != 0 && row && !row->caption.empty() && emb_->has_tokenizer()) {
        captions.push_back(row->caption);
        with_caption.push_back(out.size());
      }
      out.push_back(std::move(v));
    }
    if (!captions.empty()) {  // e_i = n(v_i + λ t(caption_i))
      std::vector<float> t = emb_->embed_texts(captions);
      for (size_t j = 0; j < with_caption.size(); ++j) {
        std::vector<float>& e = out[with_caption[j]];
        for (int64_t c = 0; c < D; ++c) e[size_t(c)] += float(r.caption_weight) * t[j * size_t(D) + size_t(c)];
        normalize_rows(e.data(), 1, D);
      }
    }
    return out;
  };
  std::vector<float> u(size_t(D), 0.0f);
  auto accumulate = [&](const std::vector<float>& x, double w) {
    for (int64_t c = 0; c < D && !x.empty(); ++c) u[size_t(c)] += float(w * x[size_t(c)]);
  };
  accumulate(unit_mean(item_vectors(r.liked, "liked"), D), r.liked_weight);
  accumulate(unit_mean(item_vectors(r.disliked, "disliked"), D), -r.disliked_weight);
  if (!r.text.empty()) accumulate(emb_->embed_text(r.text), r.text_weight);
  normalize_rows(u.data(), 1, D);
  return u;
}

std::vector<SearchResult> SearchEngine::recommend(const RecommendRequest& r) const {
  std::vector<float> u = preference_vector(r);
  std::unordered_set<int64_t> exclude(r.liked.begin(), r.liked.end());
  exclude.insert(r.disliked.begin(), r.disliked.end());
  return search_by_vector(u, r.k, r.min_score, exclude);
}

std::vector<LabelScore> SearchEngine::zero_shot(const Image& img, const std::vector<std::string>& labels,
                                                const std::string& templ) const {
  VL_CHECK(!labels.empty(), "zero-shot: give at least one label");
  VL_CHECK(labels.size() <= 1000, "zero-shot: at most 1000 labels, got ", labels.size());
  const size_t at = templ.find("{}");
  VL_CHECK(at != std::string::npos, "zero-shot: the template must contain {} where the label goes, got '", templ, "'");
  std::vector<std::string> prompts;
  for (const std::string& l : labels) prompts.push_back(templ.substr(0, at) + l + templ.substr(at + 2));
  const std::vector<float> cos = emb_->image_text_scores(img, prompts);  // CLIP cosines; BLIP-2 ITC
  const double scale = std::exp(emb_->logit_scale());
  std::vector<LabelScore> out(labels.size());
  double mx = -1e300;
  for (size_t i = 0; i < labels.size(); ++i) {
    out[i].label = labels[i];
    out[i].score = cos[i];
    mx = std::max(mx, scale * cos[i]);
  }
  double z = 0;
  for (LabelScore& l : out) z += (l.prob = std::exp(scale * l.score - mx));
  for (LabelScore& l : out) l.prob /= z;
  std::stable_sort(out.begin(), out.end(), [](const LabelScore& a, const LabelScore& b) { return a.prob > b.prob; });
  return out;
}

}  // namespace vislang::search
