// models/blip2/config.cpp — BLIP-2 configuration: the canonical JSON form (what tools/convert.py
// writes as `vislang.config`), Hugging Face's config.json, and presets.
#include "models/blip2/config.h"

#include <cmath>

#include "core/error.h"

namespace vislang::blip2 {

using json = nlohmann::json;

namespace {

// Reads typed fields of one JSON object; errors name "<where>.<key>".
struct Reader {
  const json& j;
  std::string where;

  template <typename T>
  T get(const char* key, const T& def) const {
    if (!j.contains(key) || j[key].is_null()) return def;
    try {
      return j[key].get<T>();
    } catch (const std::exception& e) {
      VL_FAIL("config: field ", where, ".", key, " has the wrong type (", j[key].dump(), "): ", e.what());
    }
  }
  template <typename T>
  T need(const char* key) const {
    VL_CHECK(j.contains(key) && !j[key].is_null(), "config: missing field ", where, ".", key);
    return get<T>(key, T());
  }
  Activation act(const char* key, const std::string& def) const {
    return clip::parse_activation(get<std::string>(key, def), where + "." + key);
  }
  // HF allows image_size / patch_size as [h, w]; vislang handles square images only.
  int64_t square(const char* key, int64_t def) const {
    if (j.contains(key) && j[key].is_array()) {
      auto v = j[key].get<std::vector<int64_t>>();
      VL_CHECK(v.size() == 2 && v[0] == v[1], "config: ", where, ".", key, " = ", j[key].dump(),
               " is not square; only square images are supported");
      return v[0];
    }
    return get<int64_t>(key, def);
  }
};

const json& object_at(const json& j, const char* key, const std::string& where) {
  static const json empty = json::object();
  if (!j.contains(key) || j[key].is_null()) return empty;
  VL_CHECK(j[key].is_object(), "config: ", where, key, " must be an object, got ", j[key].dump());
  return j[key];
}

void positive(int64_t v, const char* name) { VL_CHECK(v > 0, "config: ", name, " must be > 0, got ", v); }

}  // namespace

void Blip2Config::validate() const {
  const VisionConfig& v = vision;
  positive(v.image_size, "vision.image_size");
  positive(v.patch_size, "vision.patch_size");
  positive(v.width, "vision.width");
  positive(v.layers, "vision.layers");
  positive(v.heads, "vision.heads");
  positive(v.mlp_dim, "vision.mlp_dim");
  VL_CHECK(v.image_size % v.patch_size == 0, "config: vision.image_size ", v.image_size,
           " is not a multiple of vision.patch_size ", v.patch_size);
  VL_CHECK(v.width % v.heads == 0, "config: vision.width ", v.width, " not divisible by vision.heads ", v.heads);
  const QFormerConfig& q = qformer;
  positive(q.vocab_size, "qformer.vocab_size");
  positive(q.max_position_embeddings, "qformer.max_position_embeddings");
  positive(q.width, "qformer.width");
  positive(q.layers, "qformer.layers");
  positive(q.heads, "qformer.heads");
  positive(q.mlp_dim, "qformer.mlp_dim");
  positive(q.cross_attention_frequency, "qformer.cross_attention_frequency");
  VL_CHECK(q.width % q.heads == 0, "config: qformer.width ", q.width, " not divisible by qformer.heads ", q.heads);
  VL_CHECK(q.encoder_width == v.width, "config: qformer.encoder_width ", q.encoder_width,
           " must equal vision.width ", v.width, " (the Q-Former cross-attends to the vision tower's output)");
  positive(num_query_tokens, "num_query_tokens");
  positive(image_text_hidden_size, "image_text_hidden_size");
  positive(preprocess.size, "preprocess.size");
}

json Blip2Config::to_json() const {
  json j;
  j["model_type"] = "blip2";
  j["name"] = name;
  j["num_query_tokens"] = num_query_tokens;
  j["image_text_hidden_size"] = image_text_hidden_size;
  j["vision"] = {{"image_size", vision.image_size}, {"patch_size", vision.patch_size}, {"width", vision.width},
                 {"layers", vision.layers},         {"heads", vision.heads},           {"mlp_dim", vision.mlp_dim},
                 {"act", activation_name(vision.act)}, {"eps", vision.eps}};
  j["qformer"] = {{"vocab_size", qformer.vocab_size},
                  {"max_position_embeddings", qformer.max_position_embeddings},
                  {"width", qformer.width},
                  {"layers", qformer.layers},
                  {"heads", qformer.heads},
                  {"mlp_dim", qformer.mlp_dim},
                  {"act", activation_name(qformer.act)},
                  {"eps", qformer.eps},
                  {"cross_attention_frequency", qformer.cross_attention_frequency},
                  {"encoder_width", qformer.encoder_width},
                  {"use_text_input", qformer.use_text_input},
                  {"pad_token_id", qformer.pad_token_id}};
  j["preprocess"] = {{"size", preprocess.size}, {"mean", preprocess.mean}, {"std", preprocess.std}};
  return j;
}

Blip2Config Blip2Config::from_json(const json& j) {
  VL_CHECK(j.is_object(), "config: expected a JSON object");
  Reader top{j, "config"};
  std::string mt = top.get<std::string>("model_type", "blip2");
  VL_CHECK(mt == "blip2", "config: model_type is '", mt, "', expected 'blip2' (is this a CLIP file?)");
  Blip2Config c;
  c.name = top.get<std::string>("name", c.name);
  c.num_query_tokens = top.need<int64_t>("num_query_tokens");
  c.image_text_hidden_size = top.need<int64_t>("image_text_hidden_size");
  VL_CHECK(j.contains("vision") && j["vision"].is_object(), "config: missing object 'vision'");
  VL_CHECK(j.contains("qformer") && j["qformer"].is_object(), "config: missing object 'qformer'");
  Reader v{j["vision"], "vision"};
  c.vision.image_size = v.need<int64_t>("image_size");
  c.vision.patch_size = v.need<int64_t>("patch_size");
  c.vision.width = v.need<int64_t>("width");
  c.vision.layers = v.need<int64_t>("layers");
  c.vision.heads = v.need<int64_t>("heads");
  c.vision.mlp_dim = v.need<int64_t>("mlp_dim");
  c.vision.act = v.act("act", "gelu");
  c.vision.eps = v.get<double>("eps", 1e-6);
  Reader q{j["qformer"], "qformer"};
  c.qformer.vocab_size = q.need<int64_t>("vocab_size");
  c.qformer.max_position_embeddings = q.need<int64_t>("max_position_embeddings");
  c.qformer.width = q.need<int64_t>("width");
  c.qformer.layers = q.need<int64_t>("layers");
  c.qformer.heads = q.need<int64_t>("heads");
  c.qformer.mlp_dim = q.need<int64_t>("mlp_dim");
  c.qformer.act = q.act("act", "gelu");
  c.qformer.eps = q.get<double>("eps", 1e-12);
  c.qformer.cross_attention_frequency = q.need<int64_t>("cross_attention_frequency");
  c.qformer.encoder_width = q.get<int64_t>("encoder_width", c.vision.width);
  c.qformer.use_text_input = q.get<bool>("use_text_input", true);
  c.qformer.pad_token_id = q.get<int64_t>("pad_token_id", 0);
  c.preprocess.size = c.vision.image_size;
  if (j.contains("preprocess")) {
    Reader p{j["preprocess"], "preprocess"};
    c.preprocess.size = p.get<int64_t>("size", c.preprocess.size);
    c.preprocess.mean = p.get<std::array<float, 3>>("mean", c.preprocess.mean);
    c.preprocess.std = p.get<std::array<float, 3>>("std", c.preprocess.std);
  }
  c.validate();
  return c;
}

Blip2Config Blip2Config::from_hf(const json& j) {
  VL_CHECK(j.is_object(), "config.json: expected a JSON object");
  Reader top{j, "config.json"};
  std::string mt = top.get<std::string>("model_type", "");
  VL_CHECK(mt == "blip-2", "config.json: model_type is '", mt, "', expected 'blip-2'");
  // A model whose text ids embed the query positions (image_token_index set, as in some
  // Blip2ForConditionalGeneration exports) strips them first; retrieval checkpoints do not.
  VL_CHECK(!j.contains("image_token_index") || j["image_token_index"].is_null(),
           "config.json: image_token_index = ", j.value("image_token_index", json()).dump(),
           " is not supported (vislang reads BLIP-2 retrieval models, whose text has no image tokens)");
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty()) {
    bool retrieval = false;
    for (const json& a : j["architectures"]) retrieval |= a.is_string() && a.get<std::string>() == "Blip2ForImageTextRetrieval";
    VL_CHECK(retrieval, "config.json: architectures = ", j["architectures"].dump(),
             ": vislang reads BLIP-2 retrieval models (Blip2ForImageTextRetrieval, e.g. Salesforce/blip2-itm-vit-g), "
             "which have the ITC projections and the ITM head");
  }
  Blip2Config c;
  c.name = top.get<std::string>("_name_or_path", "blip2");
  if (c.name.empty()) c.name = "blip2";
  c.num_query_tokens = top.get<int64_t>("num_query_tokens", 32);
  c.image_text_hidden_size = top.get<int64_t>("image_text_hidden_size", 256);
  // HF defaults (Blip2VisionConfig, Blip2QFormerConfig) for absent fields.
  Reader v{object_at(j, "vision_config", "config.json."), "vision_config"};
  c.vision.width = v.get<int64_t>("hidden_size", 1408);
  c.vision.mlp_dim = v.get<int64_t>("intermediate_size", 6144);
  c.vision.layers = v.get<int64_t>("num_hidden_layers", 39);
  c.vision.heads = v.get<int64_t>("num_attention_heads", 16);
  c.vision.image_size = v.square("image_size", 224);
  c.vision.patch_size = v.square("patch_size", 14);
  c.vision.act = v.act("hidden_act", "gelu");
  c.vision.eps = v.get<double>("layer_norm_eps", 1e-6);
  VL_CHECK(v.get<bool>("qkv_bias", true), "config.json: vision_config.qkv_bias = false is not supported");
  Reader q{object_at(j, "qformer_config", "config.json."), "qformer_config"};
  c.qformer.vocab_size = q.get<int64_t>("vocab_size", 30522);
  c.qformer.max_position_embeddings = q.get<int64_t>("max_position_embeddings", 512);
  c.qformer.width = q.get<int64_t>("hidden_size", 768);
  c.qformer.layers = q.get<int64_t>("num_hidden_layers", 12);
  c.qformer.heads = q.get<int64_t>("num_attention_heads", 12);
  c.qformer.mlp_dim = q.get<int64_t>("intermediate_size", 3072);
  c.qformer.act = q.act("hidden_act", "gelu");
  c.qformer.eps = q.get<double>("layer_norm_eps", 1e-12);
  c.qformer.cross_attention_frequency = q.get<int64_t>("cross_attention_frequency", 2);
  // Blip2Config.__post_init__ overwrites encoder_hidden_size with the vision width.
  c.qformer.encoder_width = c.vision.width;
  c.qformer.use_text_input = q.get<bool>("use_qformer_text_input", false);
  c.qformer.pad_token_id = q.get<int64_t>("pad_token_id", 0);
  c.preprocess.size = c.vision.image_size;
  c.validate();
  return c;
}

void Blip2Config::apply_hf_preprocessor(const json& j) {
  VL_CHECK(j.is_object(), "preprocessor_config.json: expected a JSON object");
  Reader r{j, "preprocessor_config.json"};
  auto unsupported = [&](const char* key, const std::string& why) {
    VL_FAIL("preprocessor_config.json: ", key, " = ", j[key].dump(), " is not supported (", why, ")");
  };
  if (!r.get<bool>("do_resize", true)) unsupported("do_resize", "BLIP-2 resizes to its image size");
  if (r.get<bool>("do_center_crop", false)) unsupported("do_center_crop", "BLIP-2 resizes without a crop");
  if (r.get<int64_t>("resample", 3) != 3) unsupported("resample", "only bicubic, 3, is implemented");
  if (!r.get<bool>("do_rescale", true)) unsupported("do_rescale", "pixels are always scaled by 1/255");
  if (std::abs(r.get<double>("rescale_factor", 1.0 / 255) * 255 - 1) > 1e-9) unsupported("rescale_factor", "only 1/255");
  if (!r.get<bool>("do_normalize", true)) unsupported("do_normalize", "pixels are always normalized");
  if (j.contains("size") && j["size"].is_object()) {
    Reader sz{j["size"], "preprocessor_config.json.size"};
    VL_CHECK(j["size"].contains("height") && j["size"].contains("width"), "preprocessor_config.json: size = ",
             j["size"].dump(), " must have height and width (BLIP-2 resizes to a fixed square)");
    const int64_t h = sz.get<int64_t>("height", 0), w = sz.get<int64_t>("width", 0);
    VL_CHECK(h == w && h > 0, "preprocessor_config.json: size = ", j["size"].dump(), " is not a positive square");
    VL_CHECK(h == vision.image_size, "preprocessor_config.json: size ", h, " differs from the vision tower's image size ",
             vision.image_size, " (its position embeddings are for ", vision.image_size, " x ", vision.image_size, ")");
    preprocess.size = h;
  }
  preprocess.mean = r.get<std::array<float, 3>>("image_mean", preprocess.mean);
  preprocess.std = r.get<std::array<float, 3>>("image_std", preprocess.std);
  for (int c = 0; c < 3; ++c)
    VL_CHECK(preprocess.std[c] > 0, "preprocessor_config.json: image_std[", c, "] must be > 0");
  validate();
}

::vislang::PreprocessConfig Blip2Config::image_preprocess() const {
  ::vislang::PreprocessConfig p;
  p.size = static_cast<int>(preprocess.size);
  p.mean = preprocess.mean;
  p.std = preprocess.std;
  p.mode = ::vislang::PreprocessConfig::Mode::SQUARE;
  return p;
}

Blip2Config Blip2Config::preset(const std::string& name) {
  Blip2Config c;  // the defaults are blip2-itm-vit-g
  c.name = name;
  if (name == "blip2-itm-vit-g") {
  } else if (name == "blip2-itm-vit-g-coco") {
    c.vision.image_size = 364;
  } else if (name == "blip2-tiny") {
    // Vision and Q-Former widths differ on purpose, so that mixing them up cannot go unnoticed.
    c.vision = {56, 14, 48, 2, 4, 96, Activation::GELU, 1e-6};
    c.qformer.vocab_size = 512;
    c.qformer.max_position_embeddings = 32;
    c.qformer.width = 64;
    c.qformer.layers = 3;
    c.qformer.heads = 4;
    c.qformer.mlp_dim = 128;
    c.qformer.encoder_width = 48;
    c.num_query_tokens = 8;
    c.image_text_hidden_size = 32;
  } else {
    VL_FAIL("config: unknown BLIP-2 preset '", name, "' (blip2-itm-vit-g, blip2-itm-vit-g-coco, blip2-tiny)");
  }
  c.preprocess.size = c.vision.image_size;
  c.validate();
  return c;
}

}  // namespace vislang::blip2
