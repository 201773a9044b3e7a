// models/clip/config.h — everything that sizes a CLIP model, read from a Hugging Face config.json,
// from the `vislang.config` metadata of a converted .safetensors, or from a named preset.
//
//   image → preprocess (size, mean, std) → vision tower (ViT or ModifiedResNet) → image embedding
//   text  → tokenizer (context_length)   → text transformer                    → text embedding
#pragma once
#include <array>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/backend.h"

namespace vislang::clip {

struct VisionConfig {
  std::string type = "vit";  // "vit" or "resnet" (OpenAI's ModifiedResNet)
  int64_t image_size = 224;
  int64_t patch_size = 32;   // vit
  int64_t width = 768;       // vit: hidden size; resnet: stem width (64 for RN50)
  int64_t layers = 12;       // vit: transformer blocks
  std::vector<int64_t> resnet_layers;  // resnet: blocks per stage, e.g. {3, 4, 6, 3}
  int64_t heads = 12;        // vit: width / 64; resnet attention pool: width * 32 / 64
  int64_t mlp_dim = 3072;    // vit
  Activation act = Activation::QUICK_GELU;
  double eps = 1e-5;
};

struct TextConfig {
  int64_t vocab_size = 49408;
  int64_t context_length = 77;
  int64_t width = 512;
  int64_t layers = 12;
  int64_t heads = 8;
  int64_t mlp_dim = 2048;
  Activation act = Activation::QUICK_GELU;
  double eps = 1e-5;
  // EOT pooling: OpenAI takes argmax(ids) (EOT has the largest id); HF configs with
  // eos_token_id != 2 take the first position holding eos_token_id.
  bool pool_argmax = true;
  int64_t eos_token_id = 49407;
};

struct PreprocessConfig {
  int64_t size = 224;
  std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
};

struct ClipConfig {
  std::string name = "clip";
  VisionConfig vision;
  TextConfig text;
  int64_t projection_dim = 512;
  PreprocessConfig preprocess;

  nlohmann::json to_json() const;                     // the canonical form (vislang.config)
  static ClipConfig from_json(const nlohmann::json&);  // inverse of to_json; errors name the field
  static ClipConfig from_hf(const nlohmann::json& config_json);  // HF CLIPConfig (config.json)
  nlohmann::json to_hf() const;  // the HF config.json of a ViT CLIP (from_hf reads it back)
  static ClipConfig preset(const std::string& name);  // "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14-336", "RN50"
};

Activation parse_activation(const std::string& s, const std::string& field);

}  // namespace vislang::clip
