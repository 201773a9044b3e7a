// search/embedder.cpp — see search/embedder.h.
#include "search/embedder.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <filesystem>

#include "core/error.h"

namespace fs = std::filesystem;

namespace vislang::search {

namespace {
constexpr double kSameModelCosine = 0.99;  // probes of one model on different devices/dtypes agree to ~1e-3
}

void normalize_rows(float* v, int64_t rows, int64_t dim) {
  for (int64_t r = 0; r < rows; ++r) {
    float* x = v + r * dim;
    double s = 0;
    for (int64_t c = 0; c < dim; ++c) s += double(x[c]) * x[c];
    const double inv = 1.0 / std::max(std::sqrt(s), 1e-12);
    for (int64_t c = 0; c < dim; ++c) x[c] = float(x[c] * inv);
  }
}

Tensor probe_pixels(int64_t S) {
  std::vector<float> px(size_t(3 * S * S));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < S; ++y)
      for (int64_t x = 0; x < S; ++x)
        px[size_t((c * S + y) * S + x)] =
            float(1.5 * std::sin(0.37 * double(x) + 1.3 * double(c)) * std::cos(0.23 * double(y) - 0.7 * double(c)));
  return Tensor::from_vector(px, {1, 3, S, S});
}

Embedder::Embedder(clip::ClipModel model, std::shared_ptr<const ClipTokenizer> tok, const std::string& model_path)
    : clip_(std::make_shared<const clip::ClipModel>(std::move(model))), tok_(std::move(tok)) {
  const clip::ClipConfig& c = clip_->config();
  pc_.size = int(c.preprocess.size);
  pc_.mean = c.preprocess.mean;
  pc_.std = c.preprocess.std;
  pc_.mode = PreprocessConfig::Mode::OPENAI;
  info_.dim = c.projection_dim;
  info_.config_json = c.to_json().dump();
  init(model_path);
}

Embedder::Embedder(blip2::Blip2Retrieval model, std::shared_ptr<const WordPieceTokenizer> tok,
                   const std::string& model_path)
    : blip2_(std::make_shared<const blip2::Blip2Retrieval>(std::move(model))), wordpiece_(std::move(tok)) {
  const blip2::Blip2Config& c = blip2_->config();
  pc_ = c.image_preprocess();
  info_.dim = c.image_text_hidden_size;
  info_.vectors_per_item = c.num_query_tokens;
  info_.family = "blip2";
  info_.config_json = c.to_json().dump();
  init(model_path);
}

void Embedder::init(const std::string& model_path) {
  std::error_code ec;
  fs::path p = fs::absolute(model_path, ec);
  info_.path = ec ? model_path : p.lexically_normal().string();
  fs::path name = fs::path(info_.path);
  if (name.filename().empty()) name = name.parent_path();
  info_.name = name.filename().string();
  info_.probe = embed_pixels(probe_pixels(pc_.size));
  if (info_.vectors_per_item > 1) normalize_rows(info_.probe.data(), 1, item_size());  // BLIP-2: Q queries as one unit vector
}

const clip::ClipModel& Embedder::model() const {
  VL_CHECK(clip_ != nullptr, "Embedder::model(): '", info_.name, "' is a BLIP-2 model, not CLIP");
  return *clip_;
}

const blip2::Blip2Retrieval& Embedder::blip2_model() const {
  VL_CHECK(blip2_ != nullptr, "Embedder::blip2_model(): '", info_.name, "' is a CLIP model, not BLIP-2");
  return *blip2_;
}

double Embedder::logit_scale() const {
  if (clip_) return clip_->logit_scale();
  const double t = blip2_->temperature();
  return std::isfinite(t) && t > 0 ? -std::log(t) : 0.0;
}

std::vector<float> Embedder::embed_pixels(const Tensor& pixels) const {
  VL_CHECK(pixels.dim() == 4 && pixels.size(1) == 3, "embed_pixels: expected (N, 3, S, S) pixels");
  Tensor e;
  {
    std::lock_guard<std::mutex> g(forward_mu_);
    e = (clip_ ? clip_->encode_image(pixels) : blip2_->encode_image(pixels)).to(Device::cpu());  // (N, E) / (N, Q, E)
  }
  std::vector<float> v = e.to_vector<float>();
  const int64_t D = info_.dim > 0 ? info_.dim : e.size(-1);
  normalize_rows(v.data(), int64_t(v.size()) / D, D);  // each vector (BLIP-2's already are: a no-op up to rounding)
  return v;
}

std::vector<float> Embedder::embed_image(const Image& img) const {
  Tensor px = preprocess(img, pc_);  // (3, S, S)
  std::vector<float> v = embed_pixels(px.reshape({1, px.size(0), px.size(1), px.size(2)}));
  return info_.vectors_per_item == 1 ? v : pool_item(v.data(), info_.vectors_per_item, info_.dim);
}

Tensor Embedder::encode_texts_locked(const std::vector<std::string>& texts) const {
  VL_CHECK(has_tokenizer(), "text queries need the model's tokenizer, and none was loaded");
  if (blip2_) {
    WordPieceTokenizer::Batch b = blip2_->tokenize(*wordpiece_, texts, /*truncate=*/true);
    std::lock_guard<std::mutex> g(forward_mu_);
    return blip2_->encode_text(b.ids, b.attention_mask).to(Device::cpu());
  }
  const int64_t N = int64_t(texts.size()), T = clip_->config().text.context_length;
  std::vector<int32_t> ids;
  ids.reserve(size_t(N * T));
  for (const std::string& t : texts) {
    std::vector<int32_t> row = tok_->tokenize(t, int(T), /*truncate=*/true);
    ids.insert(ids.end(), row.begin(), row.end());
  }
  std::lock_guard<std::mutex> g(forward_mu_);
  return clip_->encode_text(Tensor::from_vector(ids, {N, T}, DType::I32)).to(Device::cpu());
}

std::vector<float> Embedder::embed_texts(const std::vector<std::string>& texts) const {
  VL_CHECK(has_tokenizer(), "text queries need the model's tokenizer, and none was loaded");
  if (texts.empty()) return {};
  std::vector<float> v = encode_texts_locked(texts).to_vector<float>();
  normalize_rows(v.data(), int64_t(texts.size()), info_.dim);
  return v;
}

std::vector<float> Embedder::image_text_scores(const Image& img, const std::vector<std::string>& texts) const {
  const std::vector<float> t = embed_texts(texts);  // (T, dim) unit rows
  Tensor px = preprocess(img, pc_);
  const std::vector<float> v = embed_pixels(px.reshape({1, px.size(0), px.size(1), px.size(2)}));  // (Q, dim)
  const int64_t D = info_.dim, Q = info_.vectors_per_item;
  std::vector<float> out(texts.size());
  for (size_t j = 0; j < texts.size(); ++j) {
    double best = -1e300;  // CLIP: Q = 1, the cosine; BLIP-2: ITC, the best query
    for (int64_t q = 0; q < Q; ++q) {
      double s = 0;
      for (int64_t c = 0; c < D; ++c) s += double(v[size_t(q * D + c)]) * t[j * size_t(D) + size_t(c)];
      best = std::max(best, s);
    }
    out[j] = float(best);
  }
  return out;
}

std::vector<float> Embedder::itm_probabilities(const Tensor& pixels, const std::string& text) const {
  VL_CHECK(blip2_ != nullptr, "ITM re-ranking needs a BLIP-2 model (an ITM head); '", info_.name, "' is a CLIP model");
  VL_CHECK(wordpiece_ != nullptr, "ITM re-ranking needs the model's tokenizer, and none was loaded");
  WordPieceTokenizer::Batch b = blip2_->tokenize(*wordpiece_, {text}, /*truncate=*/true);  // (1, T)
  std::lock_guard<std::mutex> g(forward_mu_);
  return blip2_->itm_probabilities(blip2_->vision_features(pixels), b.ids, b.attention_mask).to_vector<float>();  // (N, 1)
}

std::vector<float> Embedder::embed_text(const std::string& text) const {
  {
    std::lock_guard<std::mutex> g(cache_mu_);
    auto it = cache_.find(text);
    if (it != cache_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  std::vector<float> v = text_batches_.run(text, [&](const std::vector<const std::string*>& batch) {
    std::vector<std::string> texts;
    for (const std::string* t : batch) texts.push_back(*t);
    const std::vector<float> all = embed_texts(texts);
    std::vector<std::vector<float>> out;
    for (size_t i = 0; i < batch.size(); ++i)
      out.emplace_back(all.begin() + long(i * size_t(info_.dim)), all.begin() + long((i + 1) * size_t(info_.dim)));
    return out;
  });
  std::lock_guard<std::mutex> g(cache_mu_);
  if (cache_cap_ > 0 && !cache_.count(text)) {
    lru_.emplace_front(text, v);
    cache_[text] = lru_.begin();
    while (lru_.size() > cache_cap_) {
      cache_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }
  return v;
}

void Embedder::set_text_cache_size(size_t n) {
  std::lock_guard<std::mutex> g(cache_mu_);
  cache_cap_ = n;
  while (lru_.size() > cache_cap_) {
    cache_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

void check_same_model(const ModelInfo& db, const ModelInfo& q) {
  const std::string hint = str(" Query with the model the DB was built with (--model ", db.path,
                               ") or rebuild the DB with this one ('vislang index build --model ", q.path, " ...').");
  auto family = [](const ModelInfo& m) { return m.family == "blip2" ? "BLIP-2" : m.family == "clip" ? "CLIP" : m.family.c_str(); };
  VL_CHECK(db.family == q.family && db.vectors_per_item == q.vectors_per_item, "this index DB was built with the ",
           family(db), " model '", db.name, "' (", db.vectors_per_item, " vector(s) of ", db.dim, " per image); '", q.name,
           "' is a ", family(q), " model (", q.vectors_per_item, " vector(s) of ", q.dim, "), so scores would be meaningless.",
           hint);
  VL_CHECK(db.dim == q.dim, "this index DB was built with model '", db.name, "' (", db.dim,
           "-dimensional embeddings); model '", q.name, "' gives ", q.dim, "-dimensional embeddings.", hint);
  double dot = 0;
  if (db.probe.size() == q.probe.size())
    for (size_t i = 0; i < db.probe.size(); ++i) dot += double(db.probe[i]) * q.probe[i];
  VL_CHECK(dot >= kSameModelCosine, "this index DB was built with model '", db.name, "' (", db.path, "); model '",
           q.name, "' (", q.path, ") is a different model: its embeddings disagree with the DB's (probe cosine ",
           dot, " < ", kSameModelCosine, "), so scores would be meaningless.", hint);
}

}  // namespace vislang::search
