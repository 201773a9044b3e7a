// search/embedder.cpp — see search/embedder.h.
#include "search/embedder.h"

#include <algorithm>
#include <cmath>
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

Embedder::Embedder(clip::ClipModel model, std::unique_ptr<ClipTokenizer> tok, const std::string& model_path)
    : model_(std::move(model)), tok_(std::move(tok)) {
  const clip::ClipConfig& c = model_.config();
  pc_.size = int(c.preprocess.size);
  pc_.mean = c.preprocess.mean;
  pc_.std = c.preprocess.std;
  pc_.mode = PreprocessConfig::Mode::OPENAI;
  std::error_code ec;
  fs::path p = fs::absolute(model_path, ec);
  info_.path = ec ? model_path : p.lexically_normal().string();
  fs::path name = fs::path(info_.path);
  if (name.filename().empty()) name = name.parent_path();
  info_.name = name.filename().string();
  info_.dim = c.projection_dim;
  info_.config_json = c.to_json().dump();
  info_.probe = embed_pixels(probe_pixels(c.preprocess.size));
}

std::vector<float> Embedder::embed_pixels(const Tensor& pixels) const {
  VL_CHECK(pixels.dim() == 4 && pixels.size(1) == 3, "embed_pixels: expected (N, 3, S, S) pixels");
  Tensor e;
  {
    std::lock_guard<std::mutex> g(forward_mu_);
    e = model_.encode_image(pixels).to(Device::cpu());
  }
  std::vector<float> v = e.to_vector<float>();
  normalize_rows(v.data(), pixels.size(0), info_.dim > 0 ? info_.dim : e.size(1));
  return v;
}

std::vector<float> Embedder::embed_image(const Image& img) const {
  Tensor px = preprocess(img, pc_);  // (3, S, S)
  return embed_pixels(px.reshape({1, px.size(0), px.size(1), px.size(2)}));
}

std::vector<float> Embedder::embed_texts(const std::vector<std::string>& texts) const {
  VL_CHECK(tok_ != nullptr, "text queries need the model's tokenizer, and none was loaded");
  const int64_t N = int64_t(texts.size()), T = model_.config().text.context_length;
  if (N == 0) return {};
  std::vector<int32_t> ids;
  ids.reserve(size_t(N * T));
  for (const std::string& t : texts) {
    std::vector<int32_t> row = tok_->tokenize(t, int(T), /*truncate=*/true);
    ids.insert(ids.end(), row.begin(), row.end());
  }
  Tensor e;
  {
    std::lock_guard<std::mutex> g(forward_mu_);
    e = model_.encode_text(Tensor::from_vector(ids, {N, T}, DType::I32)).to(Device::cpu());
  }
  std::vector<float> v = e.to_vector<float>();
  normalize_rows(v.data(), N, info_.dim);
  return v;
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
