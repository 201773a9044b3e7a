// models/blip2/config.h — everything that sizes a BLIP-2 image-text retrieval model
// (Hugging Face Blip2ForImageTextRetrieval, LAVIS blip2_feature_extractor / blip2_image_text_matching),
// read from a Hugging Face config.json, from the `vislang.config` metadata of a converted .safetensors
// (tools/convert.py), or from a named preset.
//
//   image (B, 3, S, S) → vision tower (ViT-g) → (B, 1 + (S/P)², Cv) ┐
//                                                                   ├→ Q-Former → (B, Q, C) queries
//   learned query tokens (Q, C) ────────────────────────────────────┘
//   text ids (B, T) → Q-Former (text only, or with the queries for ITM) → (B, T, C)
//
// Field names follow our CLIP config (width, layers, heads, mlp_dim); the comments give HF's names.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "image/clip_preprocess.h"  // vislang::PreprocessConfig (Mode::SQUARE)
#include "kernels/backend.h"
#include "models/clip/config.h"  // PreprocessConfig, parse_activation

namespace vislang::blip2 {

// HF Blip2VisionConfig (EVA ViT-g/14 in the released models).
struct VisionConfig {
  int64_t image_size = 224;  // image_size
  int64_t patch_size = 14;   // patch_size
  int64_t width = 1408;      // hidden_size
  int64_t layers = 39;       // num_hidden_layers
  int64_t heads = 16;        // num_attention_heads (head dim 88)
  int64_t mlp_dim = 6144;    // intermediate_size
  Activation act = Activation::GELU;  // hidden_act
  double eps = 1e-6;         // layer_norm_eps
  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
};

// HF Blip2QFormerConfig: a BERT-base encoder with cross-attention to the image every
// `cross_attention_frequency` layers and a second feed-forward branch for the query positions.
struct QFormerConfig {
  int64_t vocab_size = 30523;            // vocab_size (bert-base-uncased + "[DEC]")
  int64_t max_position_embeddings = 512; // max_position_embeddings
  int64_t width = 768;                   // hidden_size
  int64_t layers = 12;                   // num_hidden_layers
  int64_t heads = 12;                    // num_attention_heads
  int64_t mlp_dim = 3072;                // intermediate_size
  Activation act = Activation::GELU;     // hidden_act
  double eps = 1e-12;                    // layer_norm_eps
  int64_t cross_attention_frequency = 2; // layer i has crossattention iff i % frequency == 0
  int64_t encoder_width = 1408;          // encoder_hidden_size = vision width
  bool use_text_input = true;            // use_qformer_text_input: text feed-forward branch present
  int64_t pad_token_id = 0;              // pad_token_id
  bool has_cross_attention(int64_t layer) const { return layer % cross_attention_frequency == 0; }
};

// BLIP-2 resizes straight to size x size (bicubic, no crop: HF's BlipImageProcessor, LAVIS's
// blip_image_eval), then normalizes with CLIP's mean/std; size, mean and std are CLIP's fields.
using PreprocessConfig = clip::PreprocessConfig;

struct Blip2Config {
  std::string name = "blip2";
  VisionConfig vision;
  QFormerConfig qformer;
  int64_t num_query_tokens = 32;        // num_query_tokens
  int64_t image_text_hidden_size = 256; // image_text_hidden_size: the shared ITC embedding width
  PreprocessConfig preprocess;

  nlohmann::json to_json() const;                       // canonical form (vislang.config)
  static Blip2Config from_json(const nlohmann::json&);  // inverse of to_json; errors name the field
  // HF Blip2Config (config.json, model_type "blip-2"). A config whose `architectures` names no
  // Blip2ForImageTextRetrieval (e.g. Blip2ForConditionalGeneration) is refused: it has no ITC/ITM heads.
  static Blip2Config from_hf(const nlohmann::json&);
  // Reads an HF preprocessor_config.json (BlipImageProcessor) into `preprocess`: size {height, width}
  // (square only), image_mean, image_std. What vislang does not reproduce (a center crop, a resample
  // other than bicubic = 3, a rescale other than 1/255, no resize or no normalization) is an error
  // naming the field.
  void apply_hf_preprocessor(const nlohmann::json& preprocessor_config);
  // The image preprocessing the model expects: resize to preprocess.size squared (bicubic, PIL-exact,
  // no crop), /255, mean/std (image/clip_preprocess.h, Mode::SQUARE).
  ::vislang::PreprocessConfig image_preprocess() const;
  // "blip2-itm-vit-g" (Salesforce/blip2-itm-vit-g), "blip2-itm-vit-g-coco" (364 px),
  // "blip2-tiny" (the test fixture's shape: tools/reference/make_blip2_fixtures.py).
  static Blip2Config preset(const std::string& name);
  void validate() const;  // throws naming the first inconsistent field
};

}  // namespace vislang::blip2
