// models/clip/clip.h — CLIP (Radford et al. 2021): an image tower and a text tower trained so that
// matching image/caption pairs have a high cosine similarity.
//
//   pixels (B, 3, S, S) → vision tower → (B, E)  ┐
//                                                 ├ L2-normalize → logits = exp(logit_scale) · I Tᵀ
//   ids    (B, T)       → text tower   → (B, E)  ┘
//
// Module and weight names mirror Hugging Face's modeling_clip.py (CLIPModel) name for name,
// including its `pre_layrnorm` spelling; the ModifiedResNet tower (models/clip/resnet.h) mirrors
// OpenAI's clip/model.py under `visual.`. A converted .safetensors (tools/convert.py) uses exactly
// these names and carries the config as JSON in its `vislang.config` metadata.
#pragma once
#include <memory>
#include <string>

#include "models/clip/config.h"
#include "nn/modules.h"

namespace vislang::clip {

// HF CLIPEncoderLayer: pre-LN residual block.
//   x = x + out_proj(attn(layer_norm1(x)));  x = x + fc2(act(fc1(layer_norm2(x))))
struct EncoderLayer {
  nn::LayerNorm layer_norm1, layer_norm2;
  nn::MultiHeadAttention self_attn;
  nn::Linear fc1, fc2;  // mlp.fc1 (mlp_dim, width), mlp.fc2 (width, mlp_dim)
  Activation act = Activation::QUICK_GELU;
  void load(const WeightScope& s, int64_t width, int64_t heads, int64_t mlp_dim, Activation act_, double eps, DType dt);
  Tensor forward(const Tensor& x, const ops::AttentionOptions& opt) const;  // (B, T, C) -> (B, T, C)
};

struct Encoder {
  std::vector<EncoderLayer> layers;
  void load(const WeightScope& s, int64_t n, int64_t width, int64_t heads, int64_t mlp_dim, Activation act,
            double eps, DType dt);
  Tensor forward(Tensor x, const ops::AttentionOptions& opt) const;
};

// HF CLIPVisionTransformer (`vision_model.`): patch conv (no bias) → [CLS; patches] + positions →
// pre_layrnorm → encoder → post_layernorm on the CLS token.
struct VisionTransformer {
  Tensor class_embedding;       // (C)
  nn::Conv2d patch_embedding;   // (C, 3, P, P), stride P, no bias
  Tensor position_embedding;    // (N + 1, C), N = (S / P)²
  nn::LayerNorm pre_layrnorm, post_layernorm;
  Encoder encoder;
  void load(const WeightScope& s, const VisionConfig& c, DType dt);
  Tensor embed(const Tensor& pixels) const;            // (B, 3, S, S) -> (B, N + 1, C)
  Tensor forward(const Tensor& pixels) const;          // (B, 3, S, S) -> pooled (B, C)
};

// HF CLIPTextTransformer (`text_model.`): token + position embedding → causal encoder →
// final_layer_norm → the hidden state at the EOT token.
struct TextTransformer {
  Tensor token_embedding;     // (V, C)
  Tensor position_embedding;  // (L, C)
  Encoder encoder;
  nn::LayerNorm final_layer_norm;
  TextConfig cfg;
  void load(const WeightScope& s, const TextConfig& c, DType dt);
  Tensor forward(const Tensor& ids) const;  // (B, T) i32/i64 -> pooled (B, C)
};

// What an image tower gives the CLIP model: the projected image embedding.
class ImageTower {
 public:
  virtual ~ImageTower() = default;
  virtual Tensor encode(const Tensor& pixels) const = 0;  // (B, 3, S, S) -> (B, E)
};

// The config of the checkpoint at `path`, as ClipModel::load reads it, without the weights: a Hugging
// Face folder's config.json, or a converted file's vislang.config metadata.
ClipConfig read_checkpoint_config(const std::string& path);
// The vislang.config of an opened converted file (errors name the file).
ClipConfig converted_config(const SafeTensorsFile& f);

class ClipModel {
 public:
  // `path`: a Hugging Face CLIP folder (config.json + model.safetensors) or a converted
  // .safetensors file. Every tensor must be present with its expected shape and every tensor of the
  // file must be used; otherwise an error names the tensor path and both shapes.
  static ClipModel load(const std::string& path, Device device = Device::cpu(), DType dtype = DType::F32);
  // From an opened file with known config and naming (hf: HF names; else canonical — the same).
  static ClipModel from_weights(const SafeTensorsFile& f, const ClipConfig& cfg, Device device, DType dtype);
  // From any WeightScope — in particular the in-memory ones training uses (weights/safetensors.h):
  // WeightScope::with_initializer builds a randomly initialised model, from_params one on given
  // tensors. The modules then share those tensors (and their gradients) with the caller.
  static ClipModel from_scope(const WeightScope& root, const ClipConfig& cfg, Device device, DType dtype);

  Tensor encode_image(const Tensor& pixels) const;  // (B, 3, S, S) f32 -> (B, E) f32, not normalized
  Tensor encode_text(const Tensor& ids) const;      // (B, T) i64/i32 -> (B, E) f32, not normalized
  // The same forward passes for training: recorded by autograd when parameters require grad; results
  // in the model's dtype on its device (encode_* run under InferenceMode and return f32).
  Tensor image_features(const Tensor& pixels) const;  // (B, 3, S, S) -> (B, E)
  Tensor text_features(const Tensor& ids) const;      // (B, T) -> (B, E)
  // logits_per_image (Bi, Bt) = exp(logit_scale) · normalize(img) · normalize(txt)ᵀ
  Tensor logits_per_image(const Tensor& image_emb, const Tensor& text_emb) const;
  double logit_scale() const { return logit_scale_; }
  const ClipConfig& config() const { return cfg_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }

 private:
  ClipConfig cfg_;
  Device device_;
  DType dtype_ = DType::F32;
  std::shared_ptr<ImageTower> vision_;
  TextTransformer text_model_;
  nn::Linear text_projection_;  // (E, C), no bias
  double logit_scale_ = 0;      // ln of the temperature's inverse, as stored
};

}  // namespace vislang::clip
