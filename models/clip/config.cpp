// models/clip/config.cpp — CLIP configuration: JSON forms and presets.
#include "models/clip/config.h"

#include "core/error.h"

namespace vislang::clip {

using json = nlohmann::json;

Activation parse_activation(const std::string& s, const std::string& field) {
  if (s == "quick_gelu") return Activation::QUICK_GELU;
  if (s == "gelu") return Activation::GELU;
  if (s == "gelu_new" || s == "gelu_pytorch_tanh" || s == "gelu_tanh") return Activation::GELU_TANH;
  if (s == "relu") return Activation::RELU;
  VL_FAIL("config: ", field, " = '", s, "' is not a supported activation (quick_gelu, gelu, gelu_tanh, relu)");
}

namespace {
// Typed field access with errors that name the field.
template <typename T>
T field(const json& j, const char* key, const std::string& where, const T& def, bool required = false) {
  if (!j.contains(key) || j[key].is_null()) {
    VL_CHECK(!required, "config: missing field ", where, ".", key);
    return def;
  }
  try {
    return j[key].get<T>();
  } catch (const std::exception& e) {
    VL_FAIL("config: field ", where, ".", key, " has the wrong type (", j[key].dump(), "): ", e.what());
  }
}
void check_positive(int64_t v, const std::string& name) {
  VL_CHECK(v > 0, "config: ", name, " must be > 0, got ", v);
}
void validate(const ClipConfig& c) {
  const auto& v = c.vision;
  check_positive(v.image_size, "vision.image_size");
  check_positive(v.width, "vision.width");
  check_positive(v.heads, "vision.heads");
  if (v.type == "vit") {
    check_positive(v.patch_size, "vision.patch_size");
    check_positive(v.layers, "vision.layers");
    check_positive(v.mlp_dim, "vision.mlp_dim");
    VL_CHECK(v.image_size % v.patch_size == 0, "config: vision.image_size ", v.image_size,
             " is not a multiple of vision.patch_size ", v.patch_size);
    VL_CHECK(v.width % v.heads == 0, "config: vision.width ", v.width, " not divisible by vision.heads ", v.heads);
  } else if (v.type == "resnet") {
    VL_CHECK(v.resnet_layers.size() == 4, "config: vision.resnet_layers must have 4 entries");
    VL_CHECK(v.image_size % 32 == 0, "config: vision.image_size must be a multiple of 32 for a ResNet tower");
  } else {
    VL_FAIL("config: vision.type must be 'vit' or 'resnet', got '", v.type, "'");
  }
  const auto& t = c.text;
  check_positive(t.vocab_size, "text.vocab_size");
  check_positive(t.context_length, "text.context_length");
  check_positive(t.width, "text.width");
  check_positive(t.layers, "text.layers");
  check_positive(t.heads, "text.heads");
  check_positive(t.mlp_dim, "text.mlp_dim");
  VL_CHECK(t.width % t.heads == 0, "config: text.width ", t.width, " not divisible by text.heads ", t.heads);
  check_positive(c.projection_dim, "projection_dim");
}
}  // namespace

json ClipConfig::to_json() const {
  json j;
  j["model_type"] = "clip";
  j["name"] = name;
  j["projection_dim"] = projection_dim;
  j["vision"] = {{"type", vision.type},       {"image_size", vision.image_size}, {"patch_size", vision.patch_size},
                 {"width", vision.width},     {"layers", vision.layers},         {"resnet_layers", vision.resnet_layers},
                 {"heads", vision.heads},     {"mlp_dim", vision.mlp_dim},       {"act", activation_name(vision.act)},
                 {"eps", vision.eps}};
  j["text"] = {{"vocab_size", text.vocab_size}, {"context_length", text.context_length}, {"width", text.width},
               {"layers", text.layers},         {"heads", text.heads},                   {"mlp_dim", text.mlp_dim},
               {"act", activation_name(text.act)}, {"eps", text.eps},                    {"pool_argmax", text.pool_argmax},
               {"eos_token_id", text.eos_token_id}};
  j["preprocess"] = {{"size", preprocess.size}, {"mean", preprocess.mean}, {"std", preprocess.std}};
  return j;
}

json ClipConfig::to_hf() const {
  VL_CHECK(vision.type == "vit", "config: to_hf: only ViT image towers have a Hugging Face CLIPConfig");
  json j;
  j["model_type"] = "clip";
  j["architectures"] = {"CLIPModel"};
  j["_name_or_path"] = name;
  j["projection_dim"] = projection_dim;
  j["vision_config"] = {{"hidden_size", vision.width},       {"intermediate_size", vision.mlp_dim},
                        {"num_hidden_layers", vision.layers}, {"num_attention_heads", vision.heads},
                        {"image_size", vision.image_size},    {"patch_size", vision.patch_size},
                        {"hidden_act", activation_name(vision.act)}, {"layer_norm_eps", vision.eps},
                        {"projection_dim", projection_dim},   {"num_channels", 3}};
  j["text_config"] = {{"vocab_size", text.vocab_size},        {"hidden_size", text.width},
                      {"intermediate_size", text.mlp_dim},    {"num_hidden_layers", text.layers},
                      {"num_attention_heads", text.heads},    {"max_position_embeddings", text.context_length},
                      {"hidden_act", activation_name(text.act)}, {"layer_norm_eps", text.eps},
                      {"eos_token_id", text.eos_token_id},    {"bos_token_id", text.eos_token_id - 1},
                      {"pad_token_id", 0},                    {"projection_dim", projection_dim}};
  return j;
}

ClipConfig ClipConfig::from_json(const json& j) {
  VL_CHECK(j.is_object(), "config: expected a JSON object");
  ClipConfig c;
  c.name = field<std::string>(j, "name", "", c.name);
  c.projection_dim = field<int64_t>(j, "projection_dim", "", 0, true);
  VL_CHECK(j.contains("vision") && j["vision"].is_object(), "config: missing object 'vision'");
  VL_CHECK(j.contains("text") && j["text"].is_object(), "config: missing object 'text'");
  const json& v = j["vision"];
  auto& cv = c.vision;
  cv.type = field<std::string>(v, "type", "vision", "vit");
  cv.image_size = field<int64_t>(v, "image_size", "vision", 0, true);
  cv.patch_size = field<int64_t>(v, "patch_size", "vision", cv.patch_size);
  cv.width = field<int64_t>(v, "width", "vision", 0, true);
  cv.layers = field<int64_t>(v, "layers", "vision", cv.layers);
  cv.resnet_layers = field<std::vector<int64_t>>(v, "resnet_layers", "vision", {});
  cv.heads = field<int64_t>(v, "heads", "vision", 0, true);
  cv.mlp_dim = field<int64_t>(v, "mlp_dim", "vision", cv.mlp_dim);
  cv.act = parse_activation(field<std::string>(v, "act", "vision", "quick_gelu"), "vision.act");
  cv.eps = field<double>(v, "eps", "vision", 1e-5);
  const json& t = j["text"];
  auto& ct = c.text;
  ct.vocab_size = field<int64_t>(t, "vocab_size", "text", 0, true);
  ct.context_length = field<int64_t>(t, "context_length", "text", 77);
  ct.width = field<int64_t>(t, "width", "text", 0, true);
  ct.layers = field<int64_t>(t, "layers", "text", 0, true);
  ct.heads = field<int64_t>(t, "heads", "text", 0, true);
  ct.mlp_dim = field<int64_t>(t, "mlp_dim", "text", 0, true);
  ct.act = parse_activation(field<std::string>(t, "act", "text", "quick_gelu"), "text.act");
  ct.eps = field<double>(t, "eps", "text", 1e-5);
  ct.pool_argmax = field<bool>(t, "pool_argmax", "text", true);
  ct.eos_token_id = field<int64_t>(t, "eos_token_id", "text", 49407);
  if (j.contains("preprocess")) {
    const json& p = j["preprocess"];
    c.preprocess.size = field<int64_t>(p, "size", "preprocess", cv.image_size);
    c.preprocess.mean = field<std::array<float, 3>>(p, "mean", "preprocess", c.preprocess.mean);
    c.preprocess.std = field<std::array<float, 3>>(p, "std", "preprocess", c.preprocess.std);
  } else {
    c.preprocess.size = cv.image_size;
  }
  validate(c);
  return c;
}

ClipConfig ClipConfig::from_hf(const json& j) {
  VL_CHECK(j.is_object(), "config.json: expected a JSON object");
  std::string mt = field<std::string>(j, "model_type", "config.json", "clip");
  VL_CHECK(mt == "clip", "config.json: model_type is '", mt, "', expected 'clip'");
  ClipConfig c;
  c.name = field<std::string>(j, "_name_or_path", "config.json", "clip");
  if (c.name.empty()) c.name = "clip";
  c.projection_dim = field<int64_t>(j, "projection_dim", "config.json", 512);
  json v = j.value("vision_config", json::object()), t = j.value("text_config", json::object());
  // HF defaults (CLIPVisionConfig / CLIPTextConfig) when a field is absent.
  auto& cv = c.vision;
  cv.type = "vit";
  cv.width = field<int64_t>(v, "hidden_size", "vision_config", 768);
  cv.mlp_dim = field<int64_t>(v, "intermediate_size", "vision_config", 3072);
  cv.layers = field<int64_t>(v, "num_hidden_layers", "vision_config", 12);
  cv.heads = field<int64_t>(v, "num_attention_heads", "vision_config", 12);
  cv.image_size = field<int64_t>(v, "image_size", "vision_config", 224);
  cv.patch_size = field<int64_t>(v, "patch_size", "vision_config", 32);
  cv.act = parse_activation(field<std::string>(v, "hidden_act", "vision_config", "quick_gelu"), "vision_config.hidden_act");
  cv.eps = field<double>(v, "layer_norm_eps", "vision_config", 1e-5);
  auto& ct = c.text;
  ct.vocab_size = field<int64_t>(t, "vocab_size", "text_config", 49408);
  ct.width = field<int64_t>(t, "hidden_size", "text_config", 512);
  ct.mlp_dim = field<int64_t>(t, "intermediate_size", "text_config", 2048);
  ct.layers = field<int64_t>(t, "num_hidden_layers", "text_config", 12);
  ct.heads = field<int64_t>(t, "num_attention_heads", "text_config", 8);
  ct.context_length = field<int64_t>(t, "max_position_embeddings", "text_config", 77);
  ct.act = parse_activation(field<std::string>(t, "hidden_act", "text_config", "quick_gelu"), "text_config.hidden_act");
  ct.eps = field<double>(t, "layer_norm_eps", "text_config", 1e-5);
  ct.eos_token_id = field<int64_t>(t, "eos_token_id", "text_config", 49407);
  ct.pool_argmax = ct.eos_token_id == 2;  // HF's legacy rule (modeling_clip.py)
  c.preprocess.size = cv.image_size;
  validate(c);
  return c;
}

ClipConfig ClipConfig::preset(const std::string& name) {
  ClipConfig c;
  c.name = name;
  auto vit = [&](int64_t patch, int64_t width, int64_t layers, int64_t image, int64_t tw, int64_t proj) {
    c.vision.type = "vit";
    c.vision.patch_size = patch;
    c.vision.width = width;
    c.vision.layers = layers;
    c.vision.heads = width / 64;
    c.vision.mlp_dim = width * 4;
    c.vision.image_size = image;
    c.text.width = tw;
    c.text.heads = tw / 64;
    c.text.mlp_dim = tw * 4;
    c.projection_dim = proj;
  };
  if (name == "ViT-B/32") vit(32, 768, 12, 224, 512, 512);
  else if (name == "ViT-B/16") vit(16, 768, 12, 224, 512, 512);
  else if (name == "ViT-L/14") vit(14, 1024, 24, 224, 768, 768);
  else if (name == "ViT-L/14-336") vit(14, 1024, 24, 336, 768, 768);
  else if (name == "RN50") {
    c.vision.type = "resnet";
    c.vision.resnet_layers = {3, 4, 6, 3};
    c.vision.width = 64;
    c.vision.heads = 32;
    c.vision.image_size = 224;
    c.projection_dim = 1024;
  } else {
    VL_FAIL("config: unknown preset '", name, "' (ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14-336, RN50)");
  }
  c.preprocess.size = c.vision.image_size;
  validate(c);
  return c;
}

}  // namespace vislang::clip
