// models/clip/clip.cpp — CLIP forward passes and loading. Mirrors transformers'
// models/clip/modeling_clip.py (CLIPEncoderLayer, CLIPVisionTransformer, CLIPTextTransformer,
// CLIPModel.get_image_features / get_text_features).
#include "models/clip/clip.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "models/clip/resnet.h"

namespace vislang::clip {

// ---- transformer blocks ---------------------------------------------------------------------------
void EncoderLayer::load(const WeightScope& s, int64_t width, int64_t heads, int64_t mlp_dim, Activation act_,
                        double eps, DType dt) {
  layer_norm1.load(s.sub("layer_norm1"), width, eps, dt);
  self_attn.load(s.sub("self_attn"), width, heads, dt);
  layer_norm2.load(s.sub("layer_norm2"), width, eps, dt);
  fc1.load(s.sub("mlp").sub("fc1"), width, mlp_dim, true, dt);
  fc2.load(s.sub("mlp").sub("fc2"), mlp_dim, width, true, dt);
  act = act_;
}

Tensor EncoderLayer::forward(const Tensor& x, const ops::AttentionOptions& opt) const {
  Tensor h = layer_norm1.forward(x);                  // (B, T, C)
  Tensor x1 = ops::add(x, self_attn.forward(h, h, opt));
  Tensor m = fc2.forward(fc1.forward(layer_norm2.forward(x1), act));  // activation fused into fc1
  return ops::add(x1, m);
}

void Encoder::load(const WeightScope& s, int64_t n, int64_t width, int64_t heads, int64_t mlp_dim, Activation act,
                   double eps, DType dt) {
  layers.resize(static_cast<size_t>(n));
  WeightScope ls = s.sub("layers");
  for (int64_t i = 0; i < n; ++i) layers[i].load(ls.sub(std::to_string(i)), width, heads, mlp_dim, act, eps, dt);
}

Tensor Encoder::forward(Tensor x, const ops::AttentionOptions& opt) const {
  for (const EncoderLayer& l : layers) x = l.forward(x, opt);
  return x;
}

// ---- vision transformer ---------------------------------------------------------------------------
void VisionTransformer::load(const WeightScope& s, const VisionConfig& c, DType dt) {
  WeightScope e = s.sub("embeddings");
  int64_t C = c.width, P = c.patch_size, N = (c.image_size / P) * (c.image_size / P);
  class_embedding = e.get("class_embedding", {C}, dt);
  patch_embedding.load(e.sub("patch_embedding"), 3, C, P, P, 0, false, dt);
  position_embedding = e.sub("position_embedding").get("weight", {N + 1, C}, dt);
  if (e.has("position_ids")) (void)e.get("position_ids", {1, N + 1}, DType::I64);  // buffer of old checkpoints
  pre_layrnorm.load(s.sub("pre_layrnorm"), C, c.eps, dt);
  encoder.load(s.sub("encoder"), c.layers, C, c.heads, c.mlp_dim, c.act, c.eps, dt);
  post_layernorm.load(s.sub("post_layernorm"), C, c.eps, dt);
}

Tensor VisionTransformer::embed(const Tensor& pixels) const {
  int64_t B = pixels.size(0), C = class_embedding.size(0);
  Tensor p = patch_embedding.forward(pixels);                 // (B, C, S/P, S/P)
  p = p.flatten(2).transpose(1, 2);                           // (B, N, C) view
  Tensor cls = class_embedding.view({1, 1, C}).expand({B, 1, C});
  Tensor x = ops::concat({cls, p}, 1);                        // (B, N + 1, C)
  return ops::add(x, position_embedding);                     // + (N + 1, C) broadcast
}

Tensor VisionTransformer::forward(const Tensor& pixels) const {
  VL_CHECK(pixels.dim() == 4 && pixels.size(1) == 3, "vision tower: pixels must be (B, 3, H, W), got ",
           pixels.describe());
  int64_t S = static_cast<int64_t>(std::lround(std::sqrt(double(position_embedding.size(0) - 1)))) *
              patch_embedding.weight.size(2);
  VL_CHECK(pixels.size(2) == S && pixels.size(3) == S, "vision tower: expected ", S, "x", S, " images, got ",
           pixels.describe());
  Tensor x = pre_layrnorm.forward(embed(pixels));  // (B, N + 1, C)
  x = encoder.forward(x, {});
  return post_layernorm.forward(x.select(1, 0));    // CLS token (B, C)
}

namespace {
// CLIP ViT image tower: vision_model + visual_projection.
class VitTower final : public ImageTower {
 public:
  VitTower(const WeightScope& root, const ClipConfig& c, DType dt) {
    vision_model_.load(root.sub("vision_model"), c.vision, dt);
    visual_projection_.load(root.sub("visual_projection"), c.vision.width, c.projection_dim, false, dt);
  }
  Tensor encode(const Tensor& pixels) const override {
    return visual_projection_.forward(vision_model_.forward(pixels));  // (B, E)
  }

 private:
  VisionTransformer vision_model_;
  nn::Linear visual_projection_;
};
}  // namespace

// ---- text transformer -----------------------------------------------------------------------------
void TextTransformer::load(const WeightScope& s, const TextConfig& c, DType dt) {
  cfg = c;
  WeightScope e = s.sub("embeddings");
  token_embedding = e.sub("token_embedding").get("weight", {c.vocab_size, c.width}, dt);
  position_embedding = e.sub("position_embedding").get("weight", {c.context_length, c.width}, dt);
  if (e.has("position_ids")) (void)e.get("position_ids", {1, c.context_length}, DType::I64);
  encoder.load(s.sub("encoder"), c.layers, c.width, c.heads, c.mlp_dim, c.act, c.eps, dt);
  final_layer_norm.load(s.sub("final_layer_norm"), c.width, c.eps, dt);
}

Tensor TextTransformer::forward(const Tensor& ids_in) const {
  VL_CHECK(ids_in.dim() == 2, "text tower: ids must be (B, T), got ", ids_in.describe());
  int64_t B = ids_in.size(0), T = ids_in.size(1);
  VL_CHECK(T >= 1 && T <= cfg.context_length, "text tower: sequence length ", T, " outside [1, ",
           cfg.context_length, "]");
  Tensor ids = ids_in.to(DType::I64);
  // EOT position per row, computed on the host (ids are small).
  std::vector<int64_t> h = ids.to_vector<int64_t>(), pool(static_cast<size_t>(B));
  int64_t used = 1;  // positions up to the last EOT of the batch
  for (int64_t b = 0; b < B; ++b) {
    int64_t best = 0;
    for (int64_t t = 0; t < T; ++t) {
      int64_t v = h[b * T + t];
      if (cfg.pool_argmax ? v > h[b * T + best] : (v == cfg.eos_token_id)) {
        best = t;
        if (!cfg.pool_argmax) break;
      }
    }
    pool[b] = best;
    used = std::max(used, best + 1);
  }
  // The attention is causal and only the EOT position is read, so the positions after the batch's
  // last EOT (the padding) cannot change the result: run the encoder on the first `used` only
  // (queries of ~10 tokens instead of 77). Same embeddings up to f32 rounding (tests/test_clip.cpp).
  if (used < T) {
    ids = ids.narrow(1, 0, used).contiguous();
    T = used;
  }
  std::vector<int64_t> flat(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) flat[b] = b * T + pool[b];
  Tensor x = ops::embedding(token_embedding, ids);                    // (B, T, C)
  x = ops::add(x, position_embedding.narrow(0, 0, T));               // + (T, C)
  ops::AttentionOptions opt;
  opt.causal = true;
  x = final_layer_norm.forward(encoder.forward(x, opt));             // (B, T, C)
  Tensor rows = Tensor::from_vector(flat, {B}, DType::I64).to(x.device());
  return ops::index_select(x.reshape({B * T, x.size(2)}), 0, rows);  // (B, C)
}

// ---- the model ------------------------------------------------------------------------------------
ClipModel ClipModel::from_weights(const SafeTensorsFile& f, const ClipConfig& cfg, Device device, DType dtype) {
  return from_scope(WeightScope(f, device), cfg, device, dtype);
}

ClipModel ClipModel::from_scope(const WeightScope& root, const ClipConfig& cfg, Device device, DType dtype) {
  VL_CHECK(is_floating(dtype) && dtype != DType::F64, "clip: model dtype must be f32, f16 or bf16");
  ClipModel m;
  m.cfg_ = cfg;
  m.device_ = device;
  m.dtype_ = dtype;
  if (cfg.vision.type == "vit") m.vision_ = std::make_shared<VitTower>(root, cfg, dtype);
  else m.vision_ = std::make_shared<ModifiedResNet>(root.sub("visual"), cfg, dtype);
  m.text_model_.load(root.sub("text_model"), cfg.text, dtype);
  m.text_projection_.load(root.sub("text_projection"), cfg.text.width, cfg.projection_dim, false, dtype);
  m.logit_scale_ = root.get("logit_scale", {}, DType::F32).item();
  root.check_all_used();
  return m;
}

static bool is_dir(const std::string& p) {
  struct stat st;
  return stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

ClipConfig read_checkpoint_config(const std::string& path) {
  if (is_dir(path)) {
    std::string cfg_path = path + "/config.json";
    std::ifstream in(cfg_path);
    VL_CHECK(in.good(), "clip: ", path, " is a folder but has no readable config.json (expected a Hugging Face CLIP "
             "folder: config.json + model.safetensors)");
    nlohmann::json j;
    try {
      in >> j;
    } catch (const std::exception& e) {
      VL_FAIL("clip: ", cfg_path, " is not valid JSON: ", e.what());
    }
    try {
      return ClipConfig::from_hf(j);
    } catch (const Error& e) {
      VL_FAIL(cfg_path, ": ", e.what());
    }
  }
  return converted_config(SafeTensorsFile::open(path));  // the header only
}

ClipConfig converted_config(const SafeTensorsFile& f) {
  const std::string& path = f.path();
  auto it = f.metadata().find("vislang.config");
  VL_CHECK(it != f.metadata().end(), "clip: ", path, " has no 'vislang.config' metadata: it is not a converted "
           "vislang model (convert it with python3 tools/convert.py ", path, " OUT.safetensors)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(it->second);
  } catch (const std::exception& e) {
    VL_FAIL("clip: ", path, ": metadata vislang.config is not valid JSON: ", e.what());
  }
  try {
    return ClipConfig::from_json(j);
  } catch (const Error& e) {
    VL_FAIL(path, ": ", e.what());
  }
}

ClipModel ClipModel::load(const std::string& path, Device device, DType dtype) {
  if (is_dir(path)) {
    const ClipConfig cfg = read_checkpoint_config(path);
    const std::string st_path = path + "/model.safetensors";
    struct stat st;
    VL_CHECK(stat(st_path.c_str(), &st) == 0, "clip: ", path, " has no model.safetensors (pytorch_model.bin is not "
             "read directly: convert it with python3 tools/convert.py ", path, " model.safetensors)");
    return from_weights(SafeTensorsFile::open(st_path), cfg, device, dtype);
  }
  const SafeTensorsFile f = SafeTensorsFile::open(path);  // opened once: its config, then its weights
  return from_weights(f, converted_config(f), device, dtype);
}

Tensor ClipModel::image_features(const Tensor& pixels) const { return vision_->encode(pixels.to(device_).to(dtype_)); }
Tensor ClipModel::text_features(const Tensor& ids) const {
  return text_projection_.forward(text_model_.forward(ids.to(device_)));
}
Tensor ClipModel::encode_image(const Tensor& pixels) const {
  InferenceMode guard;
  return image_features(pixels).to(DType::F32);
}
Tensor ClipModel::encode_text(const Tensor& ids) const {
  InferenceMode guard;
  return text_features(ids).to(DType::F32);
}

Tensor ClipModel::logits_per_image(const Tensor& image_emb, const Tensor& text_emb) const {
  Tensor i = ops::l2_normalize(image_emb, -1), t = ops::l2_normalize(text_emb.to(image_emb.device()), -1);
  return ops::matmul(i, t, false, true, Tensor(), Activation::NONE, std::exp(logit_scale_));
}

}  // namespace vislang::clip
