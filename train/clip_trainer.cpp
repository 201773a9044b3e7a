// train/clip_trainer.cpp — see train/clip_trainer.h.
#include "train/clip_trainer.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "core/autograd.h"
#include "image/png_write.h"  // write_file_atomic
#include "nn/loss.h"

namespace vislang::train {

static bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
static bool contains(const std::string& s, const char* p) { return s.find(p) != std::string::npos; }
static bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

bool is_image_param(const std::string& n) {
  return starts_with(n, "vision_model.") || starts_with(n, "visual_projection.") || starts_with(n, "visual.");
}
bool is_text_param(const std::string& n) { return starts_with(n, "text_model.") || starts_with(n, "text_projection."); }

static bool locked(const std::string& name, const Locks& l) {
  return (l.image && is_image_param(name)) || (l.text && is_text_param(name));
}

NamedTensors TrainableClip::trainable() const {
  NamedTensors out;
  for (const auto& p : params)
    if (p.second.requires_grad()) out.push_back(p);
  return out;
}
int64_t TrainableClip::num_params(bool only_trainable) const {
  int64_t n = 0;
  for (const auto& p : params)
    if (!only_trainable || p.second.requires_grad()) n += p.second.numel();
  return n;
}

// The standard deviation OpenAI's initialize_parameters gives the tensor `name` of `shape`.
static double init_std(const clip::ClipConfig& c, const std::string& name, const Shape& shape) {
  bool vision = is_image_param(name);
  double width = static_cast<double>(vision ? c.vision.width : c.text.width);
  double layers = static_cast<double>(vision ? c.vision.layers : c.text.layers);
  double attn = std::pow(width, -0.5), proj = attn * std::pow(2.0 * layers, -0.5), fc = std::pow(2.0 * width, -0.5);
  if (contains(name, "token_embedding")) return 0.02;
  if (contains(name, "text_model.embeddings.position_embedding")) return 0.01;
  if (contains(name, "class_embedding") || contains(name, "position_embedding")) return attn;
  if (contains(name, "patch_embedding")) return 0.02;
  if (contains(name, "q_proj") || contains(name, "k_proj") || contains(name, "v_proj")) return attn;
  if (contains(name, "out_proj") || contains(name, "fc2")) return proj;
  if (contains(name, "fc1")) return fc;
  if (starts_with(name, "visual_projection") || starts_with(name, "text_projection"))
    return std::pow(static_cast<double>(shape.back()), -0.5);  // (E, width)
  return 0.02;
}

TrainableClip init_clip(const clip::ClipConfig& cfg, uint64_t seed, Locks locks) {
  VL_CHECK(cfg.vision.type == "vit", "init_clip: only ViT image towers can be trained (ResNet towers use "
           "inference-only batch norm and pooling)");
  Generator gen(seed);
  auto init = [&](const std::string& name, const Shape& shape, DType dt) {
    Tensor t;
    if (name == "logit_scale") t = Tensor::full(shape, std::log(1.0 / 0.07), dt);
    else if (ends_with(name, ".bias")) t = Tensor::zeros(shape, dt);
    else if (contains(name, "norm") && ends_with(name, ".weight")) t = Tensor::ones(shape, dt);  // *layer_norm*, *layrnorm
    else t = Tensor::randn(shape, gen, dt, Device::cpu(), 0.0, init_std(cfg, name, shape));
    if (is_floating(dt) && !locked(name, locks)) t.requires_grad_();
    return t;
  };
  WeightScope scope = WeightScope::with_initializer(init);
  TrainableClip m;
  m.cfg = cfg;
  m.model = clip::ClipModel::from_scope(scope, cfg, Device::cpu(), DType::F32);
  m.params = scope.params();
  for (const auto& p : m.params)
    if (p.first == "logit_scale") m.logit_scale = p.second;
  return m;
}

TrainableClip make_trainable(const clip::ClipConfig& cfg, NamedTensors params, Locks locks) {
  for (auto& p : params) {
    // Private, writable, contiguous f32 copies (a mapped file's tensors must never be updated in place).
    Tensor t = p.second.detach();
    if (is_floating(t.dtype())) t = t.to(DType::F32).clone().detach();
    else t = t.clone();
    if (is_floating(t.dtype()) && !locked(p.first, locks)) t.requires_grad_();
    p.second = t;
  }
  WeightScope scope = WeightScope::from_params(params);
  TrainableClip m;
  m.cfg = cfg;
  m.model = clip::ClipModel::from_scope(scope, cfg, Device::cpu(), DType::F32);
  scope.check_all_used();
  m.params = scope.params();
  for (const auto& p : m.params)
    if (p.first == "logit_scale") m.logit_scale = p.second;
  VL_CHECK(m.logit_scale.defined(), "make_trainable: the model has no logit_scale");
  return m;
}

static bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

TrainableClip load_trainable_clip(const std::string& path, Locks locks) {
  // ClipModel::load reads and checks the config; the tensors are then read again as named copies.
  clip::ClipModel probe = clip::ClipModel::load(path);
  std::string st_path = is_dir(path) ? path + "/model.safetensors" : path;
  SafeTensorsFile f = SafeTensorsFile::open(st_path);
  NamedTensors params;
  for (const std::string& n : f.names()) {
    if (ends_with(n, "position_ids")) continue;  // an HF buffer, not a parameter
    params.emplace_back(n, f.get(n));
  }
  return make_trainable(probe.config(), std::move(params), locks);
}

void make_dirs(const std::string& dir) {
  std::string cur;
  std::stringstream ss(dir);
  std::string part;
  if (!dir.empty() && dir[0] == '/') cur = "/";
  while (std::getline(ss, part, '/')) {
    if (part.empty()) continue;
    cur += part + "/";
    if (!is_dir(cur)) VL_CHECK(::mkdir(cur.c_str(), 0755) == 0 || is_dir(cur), "cannot create folder '", cur, "'");
  }
}

static std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  VL_CHECK(in.good(), "cannot read '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void save_model_folder(const std::string& dir, const TrainableClip& m, DType dtype, const std::string& tokenizer_dir) {
  make_dirs(dir);
  std::string cfg = m.cfg.to_hf().dump(2) + "\n";
  NamedTensors out;
  for (const auto& [n, t] : m.params) out.emplace_back(n, is_floating(t.dtype()) ? t.detach().to(dtype) : t);
  save_safetensors(dir + "/model.safetensors", out, {{"format", "pt"}});
  write_file_atomic(dir + "/config.json", cfg.data(), cfg.size());
  if (!tokenizer_dir.empty() && tokenizer_dir != dir)
    for (const char* f : {"vocab.json", "merges.txt"}) {
      std::string s = read_all(tokenizer_dir + "/" + f);
      write_file_atomic(dir + "/" + f, s.data(), s.size());
    }
}

// ---- one training step ----------------------------------------------------------------------------
StepStats contrastive_step(TrainableClip& m, optim::AdamW& opt, const Tensor& pixels, const Tensor& ids,
                           double grad_clip) {
  nn::ContrastiveStats cs;
  Tensor loss = nn::clip_contrastive_loss(m.model.image_features(pixels), m.model.text_features(ids), m.logit_scale, &cs);
  loss.backward();
  StepStats s;
  s.grad_norm = optim::clip_grad_norm_(opt.params(), grad_clip);
  opt.step();
  opt.zero_grad();
  if (m.logit_scale.requires_grad()) nn::clamp_logit_scale_(m.logit_scale);
  s.loss = cs.loss;
  s.acc_i2t = cs.acc_i2t;
  s.acc_t2i = cs.acc_t2i;
  return s;
}

TrainProgress::TrainProgress(int64_t total_steps, int64_t first_step, int64_t batch, bool enabled)
    : total_(total_steps), first_(first_step), batch_(batch), enabled_(enabled), tty_(::isatty(2) != 0),
      t0_(std::chrono::steady_clock::now()) {}

double TrainProgress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

void TrainProgress::update(int64_t done, const StepStats& s, double lr, const std::string& note) {
  double el = elapsed(), n = static_cast<double>(done - first_);
  sps_ = el > 0 ? n * static_cast<double>(batch_) / el : 0;
  if (!enabled_ || (!tty_ && done % 10 != 0 && done != total_ && note.empty())) return;
  int eta = static_cast<int>(n > 0 ? el / n * static_cast<double>(total_ - done) + 0.5 : 0);
  int bar = static_cast<int>(30.0 * static_cast<double>(done) / static_cast<double>(std::max<int64_t>(total_, 1)));
  char line[256];
  std::snprintf(line, sizeof line, "[%-30s] step %lld/%lld  loss %.4f  lr %.2e  acc %.2f  %.0f samples/s  ETA %d:%02d",
                std::string(static_cast<size_t>(bar), '=').c_str(), static_cast<long long>(done),
                static_cast<long long>(total_), s.loss, lr, 0.5 * (s.acc_i2t + s.acc_t2i), sps_, eta / 60, eta % 60);
  std::cerr << (tty_ ? "\r" : "") << line << note << (tty_ && note.empty() ? "" : "\n") << std::flush;
}

void TrainProgress::finish() {
  if (enabled_ && tty_) std::cerr << "\n";
}

// ---- evaluation -----------------------------------------------------------------------------------
Tensor tokenize(const ClipTokenizer& tok, const std::vector<std::string>& texts, int64_t context_length) {
  std::vector<int64_t> ids;
  ids.reserve(texts.size() * static_cast<size_t>(context_length));
  for (const std::string& t : texts)
    for (int32_t id : tok.tokenize(t, static_cast<int>(context_length), true)) ids.push_back(id);
  return Tensor::from_vector(ids, {static_cast<int64_t>(texts.size()), context_length});
}

Tensor embed_texts(const clip::ClipModel& m, const ClipTokenizer& tok, const std::vector<std::string>& texts,
                   int64_t batch) {
  std::vector<Tensor> parts;
  for (size_t i = 0; i < texts.size(); i += static_cast<size_t>(batch)) {
    std::vector<std::string> b(texts.begin() + i, texts.begin() + std::min(texts.size(), i + batch));
    parts.push_back(ops::l2_normalize(m.encode_text(tokenize(tok, b, m.config().text.context_length))));
  }
  return ops::concat(parts, 0);
}

Tensor embed_images(const clip::ClipModel& m, const Tensor& pixels, int64_t batch) {
  std::vector<Tensor> parts;
  for (int64_t i = 0; i < pixels.size(0); i += batch)
    parts.push_back(ops::l2_normalize(m.encode_image(pixels.narrow(0, i, std::min(batch, pixels.size(0) - i)))));
  return ops::concat(parts, 0);
}

Tensor class_embeddings(const clip::ClipModel& m, const ClipTokenizer& tok,
                        const std::vector<std::vector<std::string>>& prompts) {
  std::vector<Tensor> rows;
  for (const auto& ps : prompts) rows.push_back(ops::mean(embed_texts(m, tok, ps), 0, true));
  return ops::l2_normalize(ops::concat(rows, 0));
}

double zero_shot_top1(const Tensor& image_emb, const Tensor& class_emb, const std::vector<int>& labels) {
  VL_CHECK(image_emb.size(0) == static_cast<int64_t>(labels.size()), "zero_shot_top1: ", image_emb.size(0),
           " images but ", labels.size(), " labels");
  std::vector<int64_t> pred = ops::argmax(ops::matmul(image_emb, class_emb, false, true), 1).to_vector<int64_t>();
  int64_t hit = 0;
  for (size_t i = 0; i < labels.size(); ++i) hit += pred[i] == labels[i];
  return labels.empty() ? 0.0 : static_cast<double>(hit) / static_cast<double>(labels.size());
}

Recall retrieval_recall(const Tensor& image_emb, const Tensor& text_emb) {
  VL_CHECK(text_emb.size(0) == image_emb.size(0), "retrieval_recall: ", image_emb.size(0), " images but ",
           text_emb.size(0), " texts");
  return retrieval_recall_scores(ops::matmul(image_emb, text_emb, false, true));  // (images, texts) cosines
}

Recall retrieval_recall_scores(const Tensor& sim) {
  int64_t n = sim.size(0);
  VL_CHECK(sim.dim() == 2 && sim.size(1) == n, "retrieval_recall_scores: expected (n, n) scores, got ",
           sim.describe());
  Recall r;
  if (n == 0) return r;
  int64_t k = std::min<int64_t>(5, n);
  auto recall = [&](const Tensor& sim, double& r1, double& r5) {
    std::vector<int64_t> top = ops::topk(sim, k, 1).indices.to_vector<int64_t>();
    int64_t h1 = 0, h5 = 0;
    for (int64_t i = 0; i < n; ++i) {
      h1 += top[i * k] == i;
      for (int64_t j = 0; j < k; ++j) h5 += top[i * k + j] == i;
    }
    r1 = static_cast<double>(h1) / static_cast<double>(n);
    r5 = static_cast<double>(h5) / static_cast<double>(n);
  };
  recall(sim, r.i2t_r1, r.i2t_r5);
  recall(sim.t().contiguous(), r.t2i_r1, r.t2i_r5);
  return r;
}

}  // namespace vislang::train
