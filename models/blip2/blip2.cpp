// models/blip2/blip2.cpp — BLIP-2 forward passes and loading. Mirrors transformers'
// models/blip_2/modeling_blip_2.py: Blip2Attention, Blip2EncoderLayer, Blip2VisionModel,
// Blip2QFormerLayer, Blip2QFormerModel, Blip2TextEmbeddings and Blip2ForImageTextRetrieval.forward.
// Shapes use B batch, S image size, P patch, N = (S/P)² patches, Cv vision width, Q queries,
// T text length, C Q-Former width, E embedding width (ViT-g/blip2-itm-vit-g: 224, 14, 256, 1408, 32,
// -, 768, 256).
#include "models/blip2/blip2.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

namespace vislang::blip2 {

// ---- vision tower ---------------------------------------------------------------------------------
void VisionAttention::load(const WeightScope& s, int64_t width, int64_t heads_, DType dt) {
  VL_CHECK(heads_ > 0 && width % heads_ == 0, "attention ", s.path("qkv"), ": width ", width,
           " is not divisible by ", heads_, " heads");
  heads = heads_;
  const int64_t C = width;
  WeightScope q = s.sub("qkv");
  if (!q.has("bias") && s.has("q_bias")) {
    // Legacy layout: q_bias (C), v_bias (C) and no key bias → the fused bias [q_bias; 0; v_bias].
    qkv.load(q, C, 3 * C, /*has_bias=*/false, dt);
    Tensor qb = s.get("q_bias", {C}, dt), vb = s.get("v_bias", {C}, dt);
    qkv.bias = ops::concat({qb, Tensor::zeros({C}, dt, qb.device()), vb}, 0);  // (3C)
  } else {
    qkv.load(q, C, 3 * C, true, dt);
  }
  projection.load(s.sub("projection"), C, C, true, dt);
}

Tensor VisionAttention::forward(const Tensor& x) const {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), D = C / heads;
  Tensor qkv_out = qkv.forward(x);                                           // (B, T, 3C)
  Tensor t = qkv_out.view({B, T, 3, heads, D}).permute({2, 0, 3, 1, 4});    // (3, B, H, T, D) view
  Tensor o = ops::scaled_dot_product_attention(t.select(0, 0), t.select(0, 1), t.select(0, 2));  // (B, H, T, D)
  return projection.forward(nn::merge_heads(o));                             // (B, T, C)
}

void VisionEncoderLayer::load(const WeightScope& s, const VisionConfig& c, DType dt) {
  layer_norm1.load(s.sub("layer_norm1"), c.width, c.eps, dt);
  self_attn.load(s.sub("self_attn"), c.width, c.heads, dt);
  layer_norm2.load(s.sub("layer_norm2"), c.width, c.eps, dt);
  fc1.load(s.sub("mlp").sub("fc1"), c.width, c.mlp_dim, true, dt);
  fc2.load(s.sub("mlp").sub("fc2"), c.mlp_dim, c.width, true, dt);
  act = c.act;
}

Tensor VisionEncoderLayer::forward(const Tensor& x) const {
  Tensor x1 = ops::add(x, self_attn.forward(layer_norm1.forward(x)));     // (B, T, C)
  Tensor m = fc2.forward(fc1.forward(layer_norm2.forward(x1), act));      // gelu fused into fc1
  return ops::add(x1, m);
}

void VisionModel::load(const WeightScope& s, const VisionConfig& c, DType dt) {
  cfg = c;
  const int64_t C = c.width, P = c.patch_size, N = c.num_patches();
  WeightScope e = s.sub("embeddings");
  patch_embedding.load(e.sub("patch_embedding"), 3, C, P, P, 0, /*has_bias=*/true, dt);
  class_embedding = e.get("class_embedding", {1, 1, C}, dt);
  position_embedding = e.get("position_embedding", {1, N + 1, C}, dt);
  layers.resize(static_cast<size_t>(c.layers));
  WeightScope ls = s.sub("encoder").sub("layers");
  for (int64_t i = 0; i < c.layers; ++i) layers[i].load(ls.sub(std::to_string(i)), c, dt);
  post_layernorm.load(s.sub("post_layernorm"), C, c.eps, dt);
}

Tensor VisionModel::embed(const Tensor& pixels) const {
  const int64_t B = pixels.size(0), C = cfg.width;
  Tensor p = patch_embedding.forward(pixels);               // (B, C, S/P, S/P), + bias
  p = p.flatten(2).transpose(1, 2);                         // (B, N, C) view
  Tensor cls = class_embedding.expand({B, 1, C});           // (B, 1, C) view
  return ops::add(ops::concat({cls, p}, 1), position_embedding);  // (B, 1 + N, C) + (1, 1 + N, C)
}

Tensor VisionModel::forward(const Tensor& pixels) const {
  const int64_t S = cfg.image_size;
  VL_CHECK(pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == S && pixels.size(3) == S,
           "blip2 vision tower: pixels must be (B, 3, ", S, ", ", S, "), got ", pixels.describe());
  Tensor x = embed(pixels);                       // (B, 1 + N, Cv)
  for (const VisionEncoderLayer& l : layers) x = l.forward(x);
  return post_layernorm.forward(x);               // every token normalized, not just the class token
}

// ---- Q-Former -------------------------------------------------------------------------------------
void QFormerLayer::load(const WeightScope& s, const QFormerConfig& c, int64_t index, DType dt) {
  attention.load(s.sub("attention"), c.width, c.width, c.heads, c.eps, dt);
  has_cross_attention = c.has_cross_attention(index);
  if (has_cross_attention)
    crossattention.load(s.sub("crossattention"), c.width, c.encoder_width, c.heads, c.eps, dt);
  ffn_query.load(s.sub("intermediate_query"), s.sub("output_query"), c.width, c.mlp_dim, c.act, c.eps, dt);
  has_text_ffn = c.use_text_input;
  if (has_text_ffn) ffn_text.load(s.sub("intermediate"), s.sub("output"), c.width, c.mlp_dim, c.act, c.eps, dt);
}

Tensor QFormerLayer::forward(const Tensor& h, int64_t Q, const Tensor& key_padding_mask, const Tensor& image) const {
  const int64_t L = h.size(1);  // Q + T
  ops::AttentionOptions self_opt;
  self_opt.key_padding_mask = key_padding_mask;  // padded text tokens are never attended to
  Tensor a = attention.forward(h, h, self_opt);  // (B, Q + T, C): queries and text see each other
  Tensor out_q, out_t;
  if (Q > 0) {
    Tensor aq = a.narrow(1, 0, Q);  // (B, Q, C)
    if (has_cross_attention) {
      VL_CHECK(image.defined(), "blip2 qformer: a layer with cross-attention needs the image features");
      aq = crossattention.forward(aq, image);  // (B, Q, C): queries read the (B, 1 + N, Cv) image tokens
    }
    out_q = ffn_query.forward(aq);  // (B, Q, C)
  }
  if (L > Q) {
    VL_CHECK(has_text_ffn, "blip2 qformer: this model has no text feed-forward (use_qformer_text_input is false)");
    out_t = ffn_text.forward(a.narrow(1, Q, L - Q));  // (B, T, C); text never reads the image directly
  }
  if (!out_t.defined()) return out_q;
  if (!out_q.defined()) return out_t;
  return ops::concat({out_q, out_t}, 1);  // (B, Q + T, C)
}

void QFormerModel::load(const WeightScope& s, const QFormerConfig& c, DType dt) {
  layernorm.load(s.sub("layernorm"), c.width, c.eps, dt);
  layers.resize(static_cast<size_t>(c.layers));
  WeightScope ls = s.sub("encoder").sub("layer");
  for (int64_t i = 0; i < c.layers; ++i) layers[i].load(ls.sub(std::to_string(i)), c, i, dt);
}

Tensor QFormerModel::forward(const Tensor& embeds, int64_t Q, const Tensor& key_padding_mask,
                             const Tensor& image) const {
  Tensor x = layernorm.forward(embeds);  // (B, Q + T, C)
  for (const QFormerLayer& l : layers) x = l.forward(x, Q, key_padding_mask, image);
  return x;
}

void TextEmbeddings::load(const WeightScope& s, const QFormerConfig& c, DType dt) {
  word_embeddings = s.sub("word_embeddings").get("weight", {c.vocab_size, c.width}, dt);
  position_embeddings = s.sub("position_embeddings").get("weight", {c.max_position_embeddings, c.width}, dt);
  // A buffer (arange) some checkpoints carry; positions are always 0..T-1 here.
  if (s.has("position_ids")) (void)s.get("position_ids", {1, c.max_position_embeddings}, DType::I64);
}

Tensor TextEmbeddings::forward(const Tensor& ids) const {
  VL_CHECK(ids.dim() == 2, "blip2 text: ids must be (B, T), got ", ids.describe());
  const int64_t T = ids.size(1), P = position_embeddings.size(0);
  VL_CHECK(T >= 1 && T <= P, "blip2 text: sequence length ", T, " outside [1, ", P, "]");
  Tensor x = ops::embedding(word_embeddings, ids.to(DType::I64));  // (B, T, C)
  return ops::add(x, position_embeddings.narrow(0, 0, T));         // + (T, C)
}

// ---- the retrieval model --------------------------------------------------------------------------
Blip2Retrieval Blip2Retrieval::from_weights(const SafeTensorsFile& f, const Blip2Config& cfg, Device device,
                                            DType dtype) {
  VL_CHECK(is_floating(dtype) && dtype != DType::F64, "blip2: model dtype must be f32, f16 or bf16");
  cfg.validate();
  Blip2Retrieval m;
  m.cfg_ = cfg;
  m.device_ = device;
  m.dtype_ = dtype;
  WeightScope root(f, device);
  const int64_t C = cfg.qformer.width, E = cfg.image_text_hidden_size;
  m.vision_model_.load(root.sub("vision_model"), cfg.vision, dtype);
  m.query_tokens_ = root.get("query_tokens", {1, cfg.num_query_tokens, C}, dtype);
  m.embeddings_.load(root.sub("embeddings"), cfg.qformer, dtype);
  m.qformer_.load(root.sub("qformer"), cfg.qformer, dtype);
  m.vision_projection_.load(root.sub("vision_projection"), C, E, true, dtype);
  m.text_projection_.load(root.sub("text_projection"), C, E, true, dtype);
  m.itm_head_.load(root.sub("itm_head"), C, 2, true, dtype);
  m.temperature_ = root.has("temp") ? root.get("temp", {}, DType::F32).item() : std::numeric_limits<double>::quiet_NaN();
  root.check_all_used();
  return m;
}

namespace {
nlohmann::json parse_json(const std::string& text, const std::string& what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    VL_FAIL("blip2: ", what, " is not valid JSON: ", e.what());
  }
}
}  // namespace

Blip2Config read_checkpoint_config(const std::string& path) {
  if (std::filesystem::is_directory(path)) {  // Hugging Face folder
    const std::string cfg_path = path + "/config.json";
    std::ifstream in(cfg_path);
    VL_CHECK(in.good(), "blip2: ", path, " is a folder without a readable config.json (expected a Hugging Face "
             "BLIP-2 folder: config.json + model.safetensors)");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Blip2Config cfg;
    try {
      cfg = Blip2Config::from_hf(parse_json(text, cfg_path));
    } catch (const Error& e) {
      VL_FAIL(cfg_path, ": ", e.what());
    }
    const std::string pre_path = path + "/preprocessor_config.json";
    if (std::filesystem::exists(pre_path)) {
      std::ifstream pin(pre_path);
      std::string pre((std::istreambuf_iterator<char>(pin)), std::istreambuf_iterator<char>());
      try {
        cfg.apply_hf_preprocessor(parse_json(pre, pre_path));
      } catch (const Error& e) {
        VL_FAIL(pre_path, ": ", e.what());
      }
    }
    return cfg;
  }
  return converted_config(SafeTensorsFile::open(path));  // converted single file: the header only
}

Blip2Config converted_config(const SafeTensorsFile& f) {
  const std::string& path = f.path();
  auto it = f.metadata().find("vislang.config");
  VL_CHECK(it != f.metadata().end(), "blip2: ", path, " has no 'vislang.config' metadata: not a converted vislang "
           "model (python3 tools/convert.py SRC ", path, ")");
  try {
    return Blip2Config::from_json(parse_json(it->second, path + " metadata vislang.config"));
  } catch (const Error& e) {
    VL_FAIL(path, ": ", e.what());
  }
}

Blip2Retrieval Blip2Retrieval::load(const std::string& path, Device device, DType dtype) {
  if (std::filesystem::is_directory(path)) {
    const Blip2Config cfg = read_checkpoint_config(path);
    const std::string st_path = path + "/model.safetensors";
    VL_CHECK(std::filesystem::is_regular_file(st_path), "blip2: ", path, " has no model.safetensors (sharded or pytorch_model.bin "
             "checkpoints are not read directly: python3 tools/convert.py ", path, " OUT.safetensors)");
    return from_weights(SafeTensorsFile::open(st_path), cfg, device, dtype);
  }
  const SafeTensorsFile f = SafeTensorsFile::open(path);  // opened once: its config, then its weights
  return from_weights(f, converted_config(f), device, dtype);
}

// (B, Q + T) u8, 1 = padded key; undefined when nothing is padded. The mask (B, T) has 1 for tokens.
Tensor Blip2Retrieval::padding_mask(const Tensor& ids, const Tensor& attention_mask, int64_t Q) const {
  if (!attention_mask.defined()) return Tensor();
  VL_CHECK(attention_mask.shape() == ids.shape(), "blip2: attention_mask ", attention_mask.describe(),
           " must have the shape of ids ", ids.describe());
  const int64_t B = ids.size(0), T = ids.size(1);
  std::vector<int64_t> m = attention_mask.to_vector<int64_t>();  // small: B x T on the host
  std::vector<uint8_t> pad(static_cast<size_t>(B * (Q + T)), 0);
  bool any = false;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      if (m[b * T + t] == 0) pad[b * (Q + T) + Q + t] = 1, any = true;
  if (!any) return Tensor();
  return Tensor::from_vector(pad, {B, Q + T}, DType::U8).to(device_);
}

Tensor Blip2Retrieval::vision_features(const Tensor& pixels) const {
  InferenceMode guard;
  return vision_model_.forward(pixels.to(device_, dtype_)).to(DType::F32);  // (B, 1 + N, Cv)
}

Tensor Blip2Retrieval::query_features(const Tensor& image_features) const {
  InferenceMode guard;
  Tensor image = image_features.to(device_, dtype_);  // (B, 1 + N, Cv)
  const int64_t B = image.size(0), Q = cfg_.num_query_tokens, C = cfg_.qformer.width;
  Tensor queries = query_tokens_.expand({B, Q, C});   // the same learned queries for every image
  return qformer_.forward(queries, Q, Tensor(), image).to(DType::F32);  // (B, Q, C)
}

Tensor Blip2Retrieval::image_embeds(const Tensor& query_features) const {
  InferenceMode guard;
  Tensor e = vision_projection_.forward(query_features.to(device_, dtype_));  // (B, Q, E)
  return ops::l2_normalize(e.to(DType::F32), -1);
}

Tensor Blip2Retrieval::text_features(const Tensor& ids, const Tensor& attention_mask) const {
  InferenceMode guard;
  Tensor x = embeddings_.forward(ids.to(device_));  // (B, T, C), no queries
  return qformer_.forward(x, 0, padding_mask(ids, attention_mask, 0), Tensor()).to(DType::F32);
}

Tensor Blip2Retrieval::encode_image(const Tensor& pixels) const {
  return image_embeds(query_features(vision_features(pixels)));  // (B, Q, E)
}

Tensor Blip2Retrieval::encode_text(const Tensor& ids, const Tensor& attention_mask) const {
  InferenceMode guard;
  Tensor cls = text_features(ids, attention_mask).select(1, 0);  // (B, C): the [CLS] position
  Tensor e = text_projection_.forward(cls.to(dtype_));           // (B, E)
  return ops::l2_normalize(e.to(DType::F32), -1);
}

Tensor Blip2Retrieval::itc_scores(const Tensor& image_embeds, const Tensor& text_embeds) const {
  InferenceMode guard;
  VL_CHECK(image_embeds.dim() == 3 && text_embeds.dim() == 2 && image_embeds.size(2) == text_embeds.size(1),
           "blip2 itc: expected image embeds (Bi, Q, E) and text embeds (Bt, E), got ", image_embeds.describe(),
           " and ", text_embeds.describe());
  const int64_t Bi = image_embeds.size(0), Q = image_embeds.size(1), E = image_embeds.size(2);
  Tensor t = text_embeds.to(image_embeds.device());
  Tensor sims = ops::matmul(image_embeds.reshape({Bi * Q, E}), t, false, true);  // (Bi·Q, Bt) cosines
  return ops::max(sims.view({Bi, Q, t.size(0)}), 1);                              // best query: (Bi, Bt)
}

Tensor Blip2Retrieval::itm_logits(const Tensor& image_features, const Tensor& ids, const Tensor& attention_mask) const {
  InferenceMode guard;
  VL_CHECK(image_features.dim() == 3 && ids.dim() == 2 && image_features.size(0) == ids.size(0),
           "blip2 itm: expected image features (B, 1 + N, Cv) and ids (B, T) with the same B, got ",
           image_features.describe(), " and ", ids.describe());
  const int64_t B = ids.size(0), Q = cfg_.num_query_tokens, C = cfg_.qformer.width;
  Tensor image = image_features.to(device_, dtype_);
  Tensor queries = query_tokens_.expand({B, Q, C});                              // (B, Q, C)
  Tensor x = ops::concat({queries, embeddings_.forward(ids.to(device_))}, 1);    // (B, Q + T, C)
  Tensor h = qformer_.forward(x, Q, padding_mask(ids, attention_mask, Q), image);  // (B, Q + T, C)
  Tensor logits = itm_head_.forward(h.narrow(1, 0, Q));                          // (B, Q, 2) per query
  return ops::mean(logits.to(DType::F32), 1);                                    // (B, 2)
}

Tensor Blip2Retrieval::itm_probabilities(const Tensor& image_features, const Tensor& ids,
                                         const Tensor& attention_mask) const {
  InferenceMode guard;
  VL_CHECK(image_features.dim() == 3 && ids.dim() == 2, "blip2 itm: expected image features (Bi, 1 + N, Cv) and ids "
           "(Bt, T), got ", image_features.describe(), " and ", ids.describe());
  const int64_t Bi = image_features.size(0), Bt = ids.size(0), N1 = image_features.size(1),
                Cv = image_features.size(2), T = ids.size(1);
  // Pair image i with text j at row i·Bt + j.
  Tensor img = image_features.unsqueeze(1).expand({Bi, Bt, N1, Cv}).reshape({Bi * Bt, N1, Cv});
  Tensor tid = ids.unsqueeze(0).expand({Bi, Bt, T}).reshape({Bi * Bt, T});
  Tensor tmask = attention_mask.defined() ? attention_mask.unsqueeze(0).expand({Bi, Bt, T}).reshape({Bi * Bt, T})
                                          : Tensor();
  Tensor p = ops::softmax(itm_logits(img, tid, tmask), -1);  // (Bi·Bt, 2)
  return p.select(1, 1).reshape({Bi, Bt});                   // P(match)
}

int64_t max_text_length(const Blip2Config& cfg, const WordPieceTokenizer& tok) {
  return std::min<int64_t>(tok.options().model_max_length, cfg.qformer.max_position_embeddings);
}

WordPieceTokenizer::Batch tokenize_texts(const WordPieceTokenizer& tok, const std::vector<std::string>& texts,
                                         int64_t L, int64_t vocab_size, bool truncate) {
  VL_CHECK(!texts.empty(), "blip2: no texts to tokenize");
  if (!truncate)  // all first: a bad text fails before any work, with a message naming it
    for (size_t i = 0; i < texts.size(); ++i) {
      const size_t n = tok.encode(texts[i]).size();  // with [CLS] and [SEP]
      if (int64_t(n) <= L) continue;
      std::string head = texts[i].substr(0, 57);
      while (!head.empty() && (static_cast<unsigned char>(head.back()) & 0xC0) == 0x80) head.pop_back();
      VL_FAIL("text ", i + 1, " of ", texts.size(), " (\"", head, head.size() < texts[i].size() ? "..." : "", "\") is ", n,
              " tokens long with [CLS] and [SEP], more than the ", L, " the model takes; shorten it or truncate "
              "(--truncate keeps the first ", L - 1, " tokens and ends with [SEP])");
    }
  // Padding to the longest row (HF's padding="longest"); ids of vocab.txt must fit the embedding table.
  WordPieceTokenizer::Batch b = tok.batch(texts, L, /*pad_to_max=*/false, /*truncate=*/true);
  if (vocab_size > 0)
    for (int64_t id : b.ids.to_vector<int64_t>())
      VL_CHECK(id >= 0 && id < vocab_size, "blip2: the tokenizer gives id ", id, " (", tok.id_to_token(id),
               "), outside the model's vocabulary of ", vocab_size, ": is this the model's own vocab.txt?");
  return b;
}

int64_t Blip2Retrieval::max_text_length(const WordPieceTokenizer& tok) const { return blip2::max_text_length(cfg_, tok); }

WordPieceTokenizer::Batch Blip2Retrieval::tokenize(const WordPieceTokenizer& tok, const std::vector<std::string>& texts,
                                                   bool truncate) const {
  return tokenize_texts(tok, texts, max_text_length(tok), cfg_.qformer.vocab_size, truncate);
}

ImageFlops image_flops(const Blip2Config& c, bool as_written) {
  ImageFlops f;
  const VisionConfig& v = c.vision;
  const double T = double(v.num_patches() + 1), Cv = double(v.width), P2 = double(v.patch_size * v.patch_size);
  f.vision = 2 * double(v.num_patches()) * 3 * P2 * Cv;  // patch embedding
  // per layer: qkv, attention (scores + weighted sum), projection, fc1, fc2
  f.vision += double(v.layers) * (2 * T * Cv * 3 * Cv + 4 * T * T * Cv + 2 * T * Cv * Cv + 4 * T * Cv * double(v.mlp_dim));
  const QFormerConfig& q = c.qformer;
  const double Q = double(c.num_query_tokens), C = double(q.width);
  for (int64_t i = 0; i < q.layers; ++i) {
    f.qformer += 2 * Q * C * 3 * C + 4 * Q * Q * C + 2 * Q * C * C + 4 * Q * C * double(q.mlp_dim);  // self-attn + ffn_query
    if (q.has_cross_attention(i)) {  // the queries read the T image tokens
      const int64_t Tq = c.num_query_tokens, Tk = v.num_patches() + 1;
      const bool moved = !as_written && nn::reassociation_pays(Tq, Tk, q.width, q.encoder_width, q.heads);
      f.qformer += nn::cross_attention_flops(Tq, Tk, q.width, q.encoder_width, q.heads, moved);
    }
  }
  f.qformer += 2 * Q * C * double(c.image_text_hidden_size);  // vision_projection
  return f;
}

bool is_blip2_checkpoint(const std::string& path) {
  try {
    if (std::filesystem::is_directory(path)) {
      std::ifstream in(path + "/config.json");
      if (!in.good()) return false;
      nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object()) return false;
      if (j.value("model_type", std::string()) == "blip-2") return true;
      if (j.contains("architectures") && j["architectures"].is_array())
        for (const nlohmann::json& a : j["architectures"])
          if (a.is_string() && a.get<std::string>().rfind("Blip2", 0) == 0) return true;
      return false;
    }
    if (!std::filesystem::is_regular_file(path)) return false;
    SafeTensorsFile f = SafeTensorsFile::open(path);
    auto it = f.metadata().find("vislang.config");
    if (it == f.metadata().end()) return false;
    nlohmann::json j = nlohmann::json::parse(it->second, nullptr, false);
    return j.is_object() && j.value("model_type", std::string()) == "blip2";
  } catch (const std::exception&) {
    return false;
  }
}

// ---- random weights -------------------------------------------------------------------------------
void write_random_blip2(const Blip2Config& c, const std::string& path, uint64_t seed) {
  c.validate();
  Generator gen(seed);
  std::vector<std::pair<std::string, Tensor>> t;
  auto normal = [&](const std::string& n, const Shape& s, double sd) {
    t.emplace_back(n, Tensor::randn(s, gen, DType::F32, Device::cpu(), 0.0, sd));
  };
  auto fill = [&](const std::string& n, const Shape& s, double v) { t.emplace_back(n, Tensor::full(s, v)); };
  auto linear = [&](const std::string& p, int64_t in, int64_t out) {
    normal(p + ".weight", {out, in}, 1.0 / std::sqrt(double(in)));
    fill(p + ".bias", {out}, 0.0);
  };
  auto norm = [&](const std::string& p, int64_t d) {
    fill(p + ".weight", {d}, 1.0);
    fill(p + ".bias", {d}, 0.0);
  };
  const VisionConfig& v = c.vision;
  const int64_t Cv = v.width, P = v.patch_size, N = v.num_patches();
  normal("vision_model.embeddings.class_embedding", {1, 1, Cv}, 0.02);
  normal("vision_model.embeddings.position_embedding", {1, N + 1, Cv}, 0.02);
  normal("vision_model.embeddings.patch_embedding.weight", {Cv, 3, P, P}, 1.0 / std::sqrt(3.0 * P * P));
  fill("vision_model.embeddings.patch_embedding.bias", {Cv}, 0.0);
  for (int64_t i = 0; i < v.layers; ++i) {
    const std::string l = "vision_model.encoder.layers." + std::to_string(i);
    norm(l + ".layer_norm1", Cv);
    linear(l + ".self_attn.qkv", Cv, 3 * Cv);
    linear(l + ".self_attn.projection", Cv, Cv);
    norm(l + ".layer_norm2", Cv);
    linear(l + ".mlp.fc1", Cv, v.mlp_dim);
    linear(l + ".mlp.fc2", v.mlp_dim, Cv);
  }
  norm("vision_model.post_layernorm", Cv);
  const QFormerConfig& q = c.qformer;
  const int64_t C = q.width;
  normal("query_tokens", {1, c.num_query_tokens, C}, 0.02);
  normal("embeddings.word_embeddings.weight", {q.vocab_size, C}, 0.02);
  normal("embeddings.position_embeddings.weight", {q.max_position_embeddings, C}, 0.02);
  norm("qformer.layernorm", C);
  auto block = [&](const std::string& p, int64_t kv_dim) {  // PostNormAttention
    linear(p + ".attention.query", C, C);
    linear(p + ".attention.key", kv_dim, C);
    linear(p + ".attention.value", kv_dim, C);
    linear(p + ".output.dense", C, C);
    norm(p + ".output.LayerNorm", C);
  };
  auto ffn = [&](const std::string& inter, const std::string& out) {  // PostNormFeedForward
    linear(inter + ".dense", C, q.mlp_dim);
    linear(out + ".dense", q.mlp_dim, C);
    norm(out + ".LayerNorm", C);
  };
  for (int64_t i = 0; i < q.layers; ++i) {
    const std::string l = "qformer.encoder.layer." + std::to_string(i);
    block(l + ".attention", C);
    if (q.has_cross_attention(i)) block(l + ".crossattention", q.encoder_width);
    ffn(l + ".intermediate_query", l + ".output_query");
    if (q.use_text_input) ffn(l + ".intermediate", l + ".output");
  }
  linear("vision_projection", C, c.image_text_hidden_size);
  linear("text_projection", C, c.image_text_hidden_size);
  linear("itm_head", C, 2);
  save_safetensors(path, t,
                   {{"format", "vislang-blip2-1"},
                    {"vislang.config", c.to_json().dump()},
                    {"vislang.random_seed", std::to_string(seed)}});
}

}  // namespace vislang::blip2
