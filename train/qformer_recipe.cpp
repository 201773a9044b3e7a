// train/qformer_recipe.cpp — see train/qformer_recipe.h. Read top to bottom: the frozen image
// encoder, the Q-Former side, the vocabulary, loading a trained model, evaluation, the recipe.
#include "train/qformer_recipe.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <iostream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/autograd.h"
#include "image/plot.h"
#include "image/png_write.h"
#include "kernels/ops.h"
#include "nn/optim.h"
#include "search/content_hash.h"  // xxh64
#include "train/clip_trainer.h"  // TrainProgress, make_dirs, embed_texts, embed_images, retrieval_recall*

namespace vislang::train {

namespace fs = std::filesystem;

// ---- 1. the frozen image encoder ------------------------------------------------------------------
FrozenVisionTokens FrozenVisionTokens::load(const std::string& clip_dir, int64_t layer) {
  VL_CHECK(fs::is_directory(clip_dir), "toy-qformer: image encoder '", clip_dir,
           "' is not a folder (expected a Hugging Face CLIP folder such as weights/toy_clip)");
  FrozenVisionTokens v;
  v.clip_cfg = clip::ClipModel::load(clip_dir).config();  // the whole (small) CLIP, for its checked config
  VL_CHECK(v.clip_cfg.vision.type == "vit", "toy-qformer: ", clip_dir, " has a '", v.clip_cfg.vision.type,
           "' image tower; the Q-Former reads a ViT's tokens");
  VL_CHECK(layer >= 1 && layer <= v.clip_cfg.vision.layers, "toy-qformer: vision layer ", layer, " outside [1, ",
           v.clip_cfg.vision.layers, "] for ", clip_dir);
  v.layer = layer;
  const std::string st_path = clip_dir + "/model.safetensors";
  WeightScope root(SafeTensorsFile::open(st_path));
  v.tower.load(root.sub("vision_model"), v.clip_cfg.vision, DType::F32);
  std::ifstream in(st_path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  v.weights_xxh64 = search::hash_hex(search::xxh64(bytes.data(), bytes.size()));
  return v;
}

Tensor FrozenVisionTokens::forward(const Tensor& pixels, int64_t batch) const {
  InferenceMode guard;  // frozen: no gradients, ever
  const int64_t S = clip_cfg.vision.image_size;
  VL_CHECK(pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == S && pixels.size(3) == S,
           "toy-qformer: pixels must be (B, 3, ", S, ", ", S, "), got ", pixels.describe());
  std::vector<Tensor> parts;
  for (int64_t b0 = 0; b0 < pixels.size(0); b0 += batch) {
    Tensor x = tower.pre_layrnorm.forward(tower.embed(pixels.narrow(0, b0, std::min(batch, pixels.size(0) - b0))));
    for (int64_t i = 0; i < layer; ++i) x = tower.encoder.layers[i].forward(x, {});  // (b, 1 + N, C)
    parts.push_back(tower.post_layernorm.forward(x));  // every token, like BLIP-2's ln_vision
  }
  return parts.size() == 1 ? parts[0] : ops::concat(parts, 0);  // (B, 1 + N, C)
}

// ---- 2. the Q-Former side -------------------------------------------------------------------------
void ToyQFormer::load(const WeightScope& root, const blip2::Blip2Config& c) {
  c.validate();
  cfg = c;
  const int64_t C = c.qformer.width, E = c.image_text_hidden_size;
  query_tokens = root.get("query_tokens", {1, c.num_query_tokens, C});
  embeddings.load(root.sub("embeddings"), c.qformer, DType::F32);
  qformer.load(root.sub("qformer"), c.qformer, DType::F32);
  vision_projection.load(root.sub("vision_projection"), C, E, true, DType::F32);
  text_projection.load(root.sub("text_projection"), C, E, true, DType::F32);
  temp = root.get("temp", {});
}

Tensor ToyQFormer::query_features(const Tensor& image_tokens) const {
  VL_CHECK(image_tokens.dim() == 3 && image_tokens.size(2) == cfg.qformer.encoder_width,
           "toy-qformer: image tokens must be (B, 1 + N, ", cfg.qformer.encoder_width, "), got ",
           image_tokens.describe());
  const int64_t B = image_tokens.size(0), Q = cfg.num_query_tokens, C = cfg.qformer.width;
  Tensor queries = query_tokens.expand({B, Q, C});               // the same learned queries for every image
  return qformer.forward(queries, Q, Tensor(), image_tokens);    // (B, Q, C)
}

Tensor ToyQFormer::image_embeds(const Tensor& image_tokens) const {
  return ops::l2_normalize(vision_projection.forward(query_features(image_tokens)), -1);  // (B, Q, E)
}

Tensor key_padding_from_attention_mask(const Tensor& attention_mask) {
  VL_CHECK(attention_mask.dim() == 2, "attention mask must be (B, T), got ", attention_mask.describe());
  std::vector<int64_t> m = attention_mask.to(DType::I64).to_vector<int64_t>();
  std::vector<uint8_t> pad(m.size());
  bool any = false;
  for (size_t i = 0; i < m.size(); ++i) any |= (pad[i] = m[i] == 0) != 0;
  if (!any) return Tensor();
  return Tensor::from_vector(pad, attention_mask.shape(), DType::U8).to(attention_mask.device());
}

Tensor ToyQFormer::text_embeds(const Tensor& ids, const Tensor& attention_mask) const {
  Tensor x = embeddings.forward(ids);  // (B, T, C): word + position
  Tensor pad = attention_mask.defined() ? key_padding_from_attention_mask(attention_mask) : Tensor();
  Tensor h = qformer.forward(x, 0, pad, Tensor());  // (B, T, C): text only, no image
  return ops::l2_normalize(text_projection.forward(h.select(1, 0)), -1);  // [CLS] → (B, E)
}

Tensor ToyQFormer::itc_scores(const Tensor& image_embeds, const Tensor& text_embeds, Tensor* per_query) {
  VL_CHECK(image_embeds.dim() == 3 && text_embeds.dim() == 2 && image_embeds.size(2) == text_embeds.size(1),
           "toy-qformer itc: expected (Bi, Q, E) and (Bt, E), got ", image_embeds.describe(), " and ",
           text_embeds.describe());
  const int64_t Bi = image_embeds.size(0), Q = image_embeds.size(1), E = image_embeds.size(2);
  Tensor sims = ops::matmul(image_embeds.reshape({Bi * Q, E}), text_embeds, false, true)  // (Bi·Q, Bt)
                    .view({Bi, Q, text_embeds.size(0)});                                  // (Bi, Q, Bt)
  if (per_query) *per_query = sims;
  return ops::max(sims, 1);  // (Bi, Bt): the best query decides
}

Tensor init_qformer_param(const std::string& name, const Shape& shape, DType dt, Generator& gen) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  Tensor t;
  if (name == "temp") t = Tensor::full(shape, 0.07, dt);
  else if (ends_with(".bias")) t = Tensor::zeros(shape, dt);
  else if (lower.find("layernorm") != std::string::npos) t = Tensor::ones(shape, dt);  // LayerNorm / layernorm gains
  else t = Tensor::randn(shape, gen, dt, Device::cpu(), 0.0, 0.02);
  t.requires_grad_();
  return t;
}

// ---- 3. the vocabulary ----------------------------------------------------------------------------
std::vector<std::string> toy_wordpiece_vocab() {
  toy::ToyWorldConfig wc;  // captions do not need pixels: small, unsupersampled images are enough
  wc.image_size = 32;
  wc.supersample = 1;
  toy::ToyWorld world(wc);
  std::set<std::string> words;  // sorted: the vocabulary does not depend on the order texts come in
  auto add = [&](const std::string& text) {  // BERT's basic split for ASCII: words, punctuation alone
    std::string w;
    for (char ch : text + " ") {
      if (std::isalnum(static_cast<unsigned char>(ch))) {
        w += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        continue;
      }
      if (!w.empty()) words.insert(w);
      w.clear();
      if (!std::isspace(static_cast<unsigned char>(ch))) words.insert(std::string(1, ch));
    }
  };
  for (toy::Split sp : {toy::Split::TRAIN, toy::Split::TEST, toy::Split::HELDOUT_COMBOS})
    for (uint64_t i = 0; i < 300; ++i)
      for (const std::string& c : toy::all_captions(world.sample(i, sp))) add(c);
  for (int l = 0; l < toy::kNumLabels; ++l)
    for (int t = 0; t < toy::num_prompt_templates(); ++t) add(toy::prompt(l, t));
  std::vector<std::string> vocab{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};  // [PAD] = 0 = pad_token_id
  vocab.insert(vocab.end(), words.begin(), words.end());
  return vocab;
}

// ---- 4. a trained model ---------------------------------------------------------------------------
WordPieceTokenizer::Batch ToyQFormerBundle::tokenize(const std::vector<std::string>& texts) const {
  return tokenizer.batch(texts, model.cfg.qformer.max_position_embeddings, /*pad_to_max=*/false);
}

Tensor ToyQFormerBundle::embed_texts(const std::vector<std::string>& texts) const {
  InferenceMode guard;
  std::vector<Tensor> parts;
  for (size_t b0 = 0; b0 < texts.size(); b0 += 256) {
    std::vector<std::string> chunk(texts.begin() + b0, texts.begin() + std::min(texts.size(), b0 + 256));
    WordPieceTokenizer::Batch t = tokenize(chunk);
    parts.push_back(model.text_embeds(t.ids, t.attention_mask));  // (b, E)
  }
  return parts.size() == 1 ? parts[0] : ops::concat(parts, 0);
}

Tensor ToyQFormerBundle::embed_images(const Tensor& pixels) const {
  InferenceMode guard;
  return model.image_embeds(vision.forward(pixels));  // (B, Q, E)
}

static std::string metadata_field(const SafeTensorsFile& f, const std::string& key) {
  auto it = f.metadata().find(key);
  VL_CHECK(it != f.metadata().end(), "toy-qformer: ", f.path(), " has no '", key,
           "' metadata (not a model written by vislang train --recipe toy-qformer)");
  return it->second;
}

ToyQFormerBundle load_toy_qformer(const std::string& dir, const std::string& clip_dir) {
  const std::string st_path = dir + "/model.safetensors", vocab_path = dir + "/vocab.txt";
  VL_CHECK(fs::is_regular_file(st_path) && fs::is_regular_file(vocab_path), "toy-qformer: ", dir,
           " must hold model.safetensors and vocab.txt (a folder written by vislang train --recipe toy-qformer)");
  SafeTensorsFile f = SafeTensorsFile::open(st_path);
  blip2::Blip2Config cfg;
  int64_t layer = 0;
  std::string encoder = metadata_field(f, "vislang.image_encoder");
  try {
    cfg = blip2::Blip2Config::from_json(nlohmann::json::parse(metadata_field(f, "vislang.config")));
    layer = std::stoll(metadata_field(f, "vislang.vision_layer"));
  } catch (const std::exception& e) {  // a vislang::Error names the field; JSON / number errors say what failed
    VL_FAIL("toy-qformer: ", st_path, ": metadata vislang.config / vislang.vision_layer: ", e.what());
  }
  // The image encoder: as given, else the metadata's name as is, under the repository (the model
  // folder's grandparent, for weights/toy_qformer) or under $VISLANG_SOURCE_DIR.
  std::string clip = clip_dir;
  if (clip.empty()) {
    std::vector<std::string> cands{encoder, dir + "/../../" + encoder};
    if (const char* e = std::getenv("VISLANG_SOURCE_DIR"); e && *e) cands.push_back(std::string(e) + "/" + encoder);
    for (const std::string& c : cands)
      if (fs::is_regular_file(c + "/model.safetensors")) {
        clip = c;
        break;
      }
    VL_CHECK(!clip.empty(), "toy-qformer: the image encoder '", encoder, "' named by ", st_path,
             " was not found (looked in the current folder, ", dir, "/../.. and $VISLANG_SOURCE_DIR); pass its folder");
  }
  FrozenVisionTokens vision = FrozenVisionTokens::load(clip, layer);
  const std::string trained_on = metadata_field(f, "vislang.image_encoder_xxh64");
  VL_CHECK(vision.weights_xxh64 == trained_on, "toy-qformer: ", st_path, " was trained on the image encoder whose "
           "model.safetensors has XXH64 ", trained_on, "; ", clip, "/model.safetensors has ", vision.weights_xxh64,
           " (retrain: vislang train --recipe toy-qformer, docs/qformer.md)");
  const clip::VisionConfig& v = vision.clip_cfg.vision;
  VL_CHECK(v.width == cfg.qformer.encoder_width && v.image_size == cfg.vision.image_size &&
               v.patch_size == cfg.vision.patch_size,
           "toy-qformer: ", st_path, " was trained on ", cfg.vision.image_size, " px images, patch ",
           cfg.vision.patch_size, ", tokens of width ", cfg.qformer.encoder_width, "; the encoder ", clip, " has ",
           v.image_size, " px, patch ", v.patch_size, ", width ", v.width);
  WeightScope root(f);
  ToyQFormer model;
  model.load(root, cfg);
  root.check_all_used();
  WordPieceTokenizer tok = WordPieceTokenizer::from_vocab(vocab_path);
  VL_CHECK(tok.vocab_size() == cfg.qformer.vocab_size, "toy-qformer: ", vocab_path, " has ", tok.vocab_size(),
           " tokens, the model's embeddings ", cfg.qformer.vocab_size);
  return ToyQFormerBundle{model, tok, vision, encoder};
}

// ---- 5. evaluation --------------------------------------------------------------------------------
namespace {
struct EvalSets {
  Tensor single_pixels, pair_pixels;  // (n, 3, S, S) each
  std::vector<int> labels;            // the one-object images' labels
  std::vector<std::string> captions;  // the pair images' captions
};
EvalSets eval_sets(int64_t image_size, int64_t n, uint64_t seed) {
  toy::ToyWorldConfig wc;
  wc.seed = seed;
  wc.image_size = static_cast<int>(image_size);
  std::vector<uint64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[i] = static_cast<uint64_t>(i);
  EvalSets e;
  std::vector<toy::ToySample> samples;
  e.pair_pixels = toy::ToyWorld(wc).batch(idx, toy::Split::TEST, &samples);
  for (const auto& s : samples) e.captions.push_back(s.caption);
  wc.max_objects = 1;
  e.single_pixels = toy::ToyWorld(wc).batch(idx, toy::Split::TEST, &samples);
  for (const auto& s : samples) e.labels.push_back(toy::label_of(s));
  return e;
}
// Every label's prompts, label after label: kNumLabels × num_prompt_templates() texts.
std::vector<std::string> label_prompts() {
  std::vector<std::string> p;
  for (int l = 0; l < toy::kNumLabels; ++l)
    for (int t = 0; t < toy::num_prompt_templates(); ++t) p.push_back(toy::prompt(l, t));
  return p;
}
// Prompt ensembling: the mean of each label's normalized prompt embeddings (80·P, E), renormalized → (80, E).
Tensor class_embeddings_of(const Tensor& prompt_emb) {
  return ops::l2_normalize(ops::mean(prompt_emb.view({toy::kNumLabels, toy::num_prompt_templates(), -1}), 1), -1);
}
// scores (n, 80 labels) → top-1, and whether the predicted label's colour / shape is right.
void zero_shot(const Tensor& scores, const std::vector<int>& labels, ToyRetrievalEval& r) {
  std::vector<int64_t> pred = ops::argmax(scores, 1).to_vector<int64_t>();
  int64_t top1 = 0, colour = 0, shape = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    auto [pc, ps] = toy::label_combo(static_cast<int>(pred[i]));
    auto [tc, ts] = toy::label_combo(labels[i]);
    top1 += pred[i] == labels[i];
    colour += pc == tc;
    shape += ps == ts;
  }
  const double n = static_cast<double>(std::max<size_t>(1, labels.size()));
  r.zero_shot_top1 = top1 / n;
  r.colour_acc = colour / n;
  r.shape_acc = shape / n;
}
void set_recall(ToyRetrievalEval& r, const Recall& rc) {
  r.i2t_r1 = rc.i2t_r1;
  r.i2t_r5 = rc.i2t_r5;
  r.t2i_r1 = rc.t2i_r1;
  r.t2i_r5 = rc.t2i_r5;
}
}  // namespace

ToyRetrievalEval evaluate_toy_qformer(const ToyQFormerBundle& m, int64_t n, uint64_t seed) {
  InferenceMode guard;
  EvalSets e = eval_sets(m.vision.clip_cfg.vision.image_size, n, seed);
  ToyRetrievalEval r;
  r.images = n;
  Tensor classes = class_embeddings_of(m.embed_texts(label_prompts()));  // (80, E)
  zero_shot(ToyQFormer::itc_scores(m.embed_images(e.single_pixels), classes), e.labels, r);
  set_recall(r, retrieval_recall_scores(ToyQFormer::itc_scores(m.embed_images(e.pair_pixels), m.embed_texts(e.captions))));
  return r;
}

ToyRetrievalEval evaluate_toy_clip_same_way(const std::string& clip_dir, int64_t n, uint64_t seed) {
  autograd::NoGradGuard no_grad;
  clip::ClipModel m = clip::ClipModel::load(clip_dir);
  ClipTokenizer tok = ClipTokenizer::from_hf(clip_dir + "/vocab.json", clip_dir + "/merges.txt");
  EvalSets e = eval_sets(m.config().vision.image_size, n, seed);
  ToyRetrievalEval r;
  r.images = n;
  Tensor classes = class_embeddings_of(embed_texts(m, tok, label_prompts()));  // (80, E)
  zero_shot(ops::matmul(embed_images(m, e.single_pixels), classes, false, true), e.labels, r);
  set_recall(r, retrieval_recall(embed_images(m, e.pair_pixels), embed_texts(m, tok, e.captions)));
  return r;
}

std::string toy_eval_table(const ToyRetrievalEval& c, const ToyRetrievalEval& q) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(3);
  auto row = [&](const std::string& name, double a, double b) {
    os << "  " << std::left << std::setw(58) << name << std::right << std::setw(9) << a << std::setw(11) << b << "\n";
  };
  os << "  " << std::left << std::setw(58) << "metric (toy world TEST split, seed 0)" << std::right << std::setw(9)
     << "toy CLIP" << std::setw(11) << "Q-Former" << "\n";
  const std::string n1 = std::to_string(q.images) + " one-object images", n2 = std::to_string(q.images) + " pairs";
  row("zero-shot top-1 over 80 labels, " + n1, c.zero_shot_top1, q.zero_shot_top1);
  row("  colour of that label right (chance 0.100)", c.colour_acc, q.colour_acc);
  row("  shape of that label right (chance 0.125)", c.shape_acc, q.shape_acc);
  row("text->image recall@1, " + n2, c.t2i_r1, q.t2i_r1);
  row("text->image recall@5", c.t2i_r5, q.t2i_r5);
  row("image->text recall@1", c.i2t_r1, q.i2t_r1);
  row("image->text recall@5", c.i2t_r5, q.i2t_r5);
  return os.str();
}

// ---- 6. the recipe --------------------------------------------------------------------------------
blip2::Blip2Config toy_qformer_config(const QFormerRecipeOptions& o, const clip::ClipConfig& clip_cfg,
                                      int64_t vocab_size) {
  blip2::Blip2Config c;
  c.name = "vislang-toy-qformer";
  const clip::VisionConfig& v = clip_cfg.vision;  // the frozen tower, described in BLIP-2's terms
  c.vision = {v.image_size, v.patch_size, v.width, v.layers, v.heads, v.mlp_dim, v.act, v.eps};
  c.qformer.vocab_size = vocab_size;
  c.qformer.max_position_embeddings = 32;  // the longest toy caption is 17 WordPiece tokens with [CLS], [SEP]
  c.qformer.width = o.width;
  c.qformer.layers = o.layers;
  c.qformer.heads = o.heads;
  c.qformer.mlp_dim = o.mlp_dim;
  c.qformer.cross_attention_frequency = o.cross_every;
  c.qformer.encoder_width = v.width;
  c.qformer.use_text_input = true;  // the text feed-forward branch: ITC encodes text with the Q-Former
  c.num_query_tokens = o.queries;
  c.image_text_hidden_size = o.embed_dim;
  c.preprocess = clip_cfg.preprocess;
  c.validate();
  return c;
}

namespace {
// The order the pool is visited in: every epoch a fresh Fisher–Yates shuffle drawn from the run's
// Generator, which also picks each slot's caption. Drawn in order on one thread, so a run is a pure
// function of its options.
struct BatchOrder {
  Generator& gen;
  std::vector<int64_t> perm;
  size_t next = 0;
  int64_t draw() {
    if (next == perm.size()) {
      for (size_t i = perm.size() - 1; i > 0; --i) std::swap(perm[i], perm[gen.next_u64() % (i + 1)]);
      next = 0;
    }
    return perm[next++];
  }
};
double mean_of(const std::vector<double>& v, size_t from, size_t to) {
  double s = 0;
  for (size_t i = from; i < to; ++i) s += v[i];
  return to > from ? s / static_cast<double>(to - from) : 0.0;
}
}  // namespace

QFormerRecipeResult run_qformer_recipe(const QFormerRecipeOptions& o) {
  VL_CHECK(o.steps > 0 && o.batch >= 2 && o.train_images >= o.batch, "train: toy-qformer needs --steps > 0, --batch "
           ">= 2 and at least --batch training images, got steps ", o.steps, ", batch ", o.batch, ", images ",
           o.train_images);
  const DType out_dtype = o.saved_dtype();
  const std::string model_dir = o.out + "/model";
  make_dirs(model_dir);

  // 1. the frozen image encoder and the tokens of the training pool, computed once
  FrozenVisionTokens vision = FrozenVisionTokens::load(o.clip, o.vision_layer);
  toy::ToyWorldConfig wc;
  wc.seed = o.seed;
  wc.image_size = static_cast<int>(vision.clip_cfg.vision.image_size);
  toy::ToyWorld world(wc);
  std::vector<uint64_t> idx(static_cast<size_t>(o.train_images));
  for (int64_t i = 0; i < o.train_images; ++i) idx[i] = static_cast<uint64_t>(i);
  std::vector<toy::ToySample> samples;
  Tensor pool = vision.forward(world.batch(idx, toy::Split::TRAIN, &samples));  // (n, 1 + N, Cv)
  std::vector<std::vector<std::string>> captions;  // every caption template of each image: text augmentation
  for (const auto& s : samples) captions.push_back(toy::all_captions(s));

  // 2. vocabulary, model, optimiser
  std::vector<std::string> vocab = toy_wordpiece_vocab();
  std::string vocab_text;
  for (const std::string& w : vocab) vocab_text += w + "\n";
  write_file_atomic(model_dir + "/vocab.txt", vocab_text.data(), vocab_text.size());
  WordPieceTokenizer tok = WordPieceTokenizer::from_vocab(model_dir + "/vocab.txt");
  blip2::Blip2Config cfg = toy_qformer_config(o, vision.clip_cfg, static_cast<int64_t>(vocab.size()));
  Generator gen(o.seed * 1000003 + 29);
  WeightScope scope = WeightScope::with_initializer(
      [&](const std::string& n, const Shape& sh, DType dt) { return init_qformer_param(n, sh, dt, gen); });
  ToyQFormer m;
  m.load(scope, cfg);
  NamedTensors params = scope.params();
  QFormerRecipeResult res;
  res.config = cfg;
  for (const auto& p : params) res.params += p.second.numel();
  optim::AdamW opt(params, o.adamw());
  const optim::CosineSchedule sched = o.schedule();
  if (o.progress)
    std::cerr << "toy Q-Former: " << res.params << " parameters (" << cfg.num_query_tokens << " queries, width "
              << cfg.qformer.width << ", " << cfg.qformer.layers << " layers, cross-attention every "
              << cfg.qformer.cross_attention_frequency << ", vocab " << cfg.qformer.vocab_size << "), frozen "
              << o.clip << " tokens after layer " << o.vision_layer << " of " << vision.clip_cfg.vision.layers << ", "
              << o.train_images << " training images; " << o.steps << " steps of " << o.batch << " pairs\n";

  // 3. the loop
  std::ofstream csv;
  if (o.write_files) {
    csv.open(o.out + "/metrics.csv");
    VL_CHECK(csv.good(), "train: cannot write '", o.out, "/metrics.csv'");
    csv << "step,loss,lr,batch_acc,temp,grad_norm,samples_per_s,elapsed_s\n";
  }
  Generator data_gen(o.seed * 7919 + 3);
  BatchOrder order{data_gen, std::vector<int64_t>(static_cast<size_t>(o.train_images)), 0};
  for (int64_t i = 0; i < o.train_images; ++i) order.perm[i] = i;
  order.next = order.perm.size();  // shuffle before the first draw
  const Tensor labels = Tensor::arange(0, static_cast<double>(o.batch), 1, DType::I64);  // the diagonal
  std::vector<double> xs, losses, accs;
  TrainProgress progress(o.steps, 0, o.batch, o.progress);
  for (int64_t step = 0; step < o.steps; ++step) {
    // a batch: B pool images, each with one of its captions, picked at random
    std::vector<int64_t> rows(static_cast<size_t>(o.batch));
    std::vector<std::string> caps;
    for (int64_t i = 0; i < o.batch; ++i) {
      const auto& all = captions[rows[i] = order.draw()];
      caps.push_back(all[data_gen.next_u64() % all.size()]);
    }
    Tensor image = ops::index_select(pool, 0, Tensor::from_vector(rows, {o.batch}));  // (B, 1 + N, Cv)
    WordPieceTokenizer::Batch text = tok.batch(caps, cfg.qformer.max_position_embeddings, false);  // (B, T)

    // ITC: image i must pick caption i among the batch's captions, and caption i image i
    Tensor img = m.image_embeds(image);                              // (B, Q, E)
    Tensor txt = m.text_embeds(text.ids, text.attention_mask);       // (B, E)
    Tensor logits = ops::div(ToyQFormer::itc_scores(img, txt), m.temp);  // (B, B): best-query cosine / temp
    Tensor loss = ops::div(ops::add(ops::cross_entropy(logits, labels), ops::cross_entropy(logits.t(), labels)), 2.0);
    loss.backward();
    StepStats st;
    st.grad_norm = optim::clip_grad_norm_(params, o.grad_clip);
    opt.set_lr(sched.lr_at(step));
    opt.step();
    opt.zero_grad();
    {
      autograd::NoGradGuard ng;  // BLIP-2: temp.clamp_(0.001, 0.5)
      float* t = m.temp.data<float>();
      *t = std::min(0.5f, std::max(0.001f, *t));
      st.loss = loss.item();
      std::vector<int64_t> best = ops::argmax(logits.detach(), 1).to_vector<int64_t>();
      for (int64_t i = 0; i < o.batch; ++i) st.acc_i2t += best[i] == i;
      st.acc_i2t /= static_cast<double>(o.batch);
      st.acc_t2i = st.acc_i2t;  // the progress line shows their mean; one direction is enough here
    }
    progress.update(step + 1, st, opt.lr());
    xs.push_back(static_cast<double>(step + 1));
    losses.push_back(st.loss);
    accs.push_back(st.acc_i2t);
    if (o.write_files)
      csv << step + 1 << "," << st.loss << "," << opt.lr() << "," << st.acc_i2t << "," << m.temp.item() << ","
          << st.grad_norm << "," << progress.samples_per_second() << "," << progress.elapsed() << "\n";
  }
  progress.finish();
  res.train_seconds = progress.elapsed();
  const size_t w = std::min<size_t>(20, losses.size());
  res.first_loss = mean_of(losses, 0, w);
  res.final_loss = mean_of(losses, losses.size() - w, losses.size());
  res.first_batch_acc = mean_of(accs, 0, w);
  res.final_batch_acc = mean_of(accs, accs.size() - w, accs.size());

  // 4. outputs, then 5. the evaluation of the saved model exactly as a user loads it
  ToyQFormerBundle trained{m, tok, vision, o.clip};
  if (o.write_files) {
    csv.close();
    NamedTensors out;
    for (const auto& [name, p] : params) out.emplace_back(name, p.detach().to(out_dtype));
    save_safetensors(model_dir + "/model.safetensors", out,
                     {{"format", "vislang-toy-qformer-1"},
                      {"vislang.config", cfg.to_json().dump()},
                      {"vislang.image_encoder", o.clip},
                      {"vislang.image_encoder_xxh64", vision.weights_xxh64},
                      {"vislang.vision_layer", std::to_string(o.vision_layer)},
                      {"vislang.recipe", "vislang train --recipe toy-qformer --steps " + std::to_string(o.steps) +
                                             " --batch " + std::to_string(o.batch) + " --seed " +
                                             std::to_string(o.seed) + " --save-dtype " + o.save_dtype}});
    PlotOptions po;
    po.x_label = "step";
    plot_lines(o.out + "/loss.png", "toy Q-Former: ITC loss and in-batch accuracy",
               {{"ITC loss", xs, losses}, {"in-batch accuracy", xs, accs}}, po);
    trained = load_toy_qformer(model_dir, o.clip);
  }
  res.qformer = evaluate_toy_qformer(trained, o.eval_images, o.seed);
  res.clip = evaluate_toy_clip_same_way(o.clip, o.eval_images, o.seed);
  if (o.write_files) {
    auto js = [](const ToyRetrievalEval& r) {
      return nlohmann::json{{"images", r.images},         {"zero_shot_top1", r.zero_shot_top1},
                            {"colour_accuracy", r.colour_acc}, {"shape_accuracy", r.shape_acc},
                            {"text_to_image_recall@1", r.t2i_r1}, {"text_to_image_recall@5", r.t2i_r5},
                            {"image_to_text_recall@1", r.i2t_r1}, {"image_to_text_recall@5", r.i2t_r5}};
    };
    nlohmann::json j{{"qformer", js(res.qformer)},         {"toy_clip", js(res.clip)},
                     {"parameters", res.params},           {"train_seconds", res.train_seconds},
                     {"first_loss", res.first_loss},       {"final_loss", res.final_loss},
                     {"final_batch_accuracy", res.final_batch_acc}};
    std::string text = j.dump(2) + "\n";
    write_file_atomic(o.out + "/eval.json", text.data(), text.size());
  }
  return res;
}

}  // namespace vislang::train
