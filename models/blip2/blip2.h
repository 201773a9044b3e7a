// models/blip2/blip2.h — BLIP-2 (Li et al. 2023) for image-text retrieval: a frozen ViT-g image
// encoder, and the Q-Former, a small BERT whose 32 learned query tokens read the image through
// cross-attention and come out as 32 image embeddings; the same BERT encodes text.
//
//   pixels (B, 3, 224, 224) → vision_model (ViT-g/14, 39 layers)  → image features (B, 257, 1408)
//   query_tokens (32, 768) + image features → qformer              → query outputs  (B, 32, 768)
//        → vision_projection → L2-normalize                        → image embeds   (B, 32, 256)
//   ids (B, T) → embeddings + qformer (text only)                  → text states    (B, T, 768)
//        → [CLS] → text_projection → L2-normalize                  → text embed     (B, 256)
//   ITC score(image, text) = max over the 32 queries of  image_embeds[q] · text_embed
//   ITM: qformer([queries; text], image) → itm_head on the 32 query outputs → mean → (B, 2) logits,
//        softmax[:, 1] = the probability that the text matches the image.
//
// Module and weight names mirror transformers' models/blip_2/modeling_blip_2.py
// (Blip2ForImageTextRetrieval, the layout of Salesforce/blip2-itm-vit-g) name for name.
// tools/convert.py also writes this layout from LAVIS's blip2_feature_extractor /
// blip2_image_text_matching checkpoints. docs/qformer.md walks through it with shapes.
#pragma once
#include <string>
#include <vector>

#include "models/blip2/config.h"
#include "nn/modules.h"
#include "nn/visual_adapter.h"  // PostNormAttention, PostNormFeedForward (BERT-style blocks)
#include "tokenizer/wordpiece.h"

namespace vislang::blip2 {

// ---- vision tower (`vision_model.`) ----------------------------------------------------------------

// HF Blip2Attention: ONE fused `qkv` Linear (3C, C). Its bias is [q_bias; 0; v_bias] — EVA/BEiT have
// no key bias (a key bias adds the same q·b to every score of a row, which softmax ignores anyway).
// Older HF checkpoints and LAVIS store q_bias and v_bias separately; load() accepts both.
struct VisionAttention {
  nn::Linear qkv, projection;  // qkv (3C, C) + bias (3C); projection (C, C) + bias
  int64_t heads = 1;
  void load(const WeightScope& s, int64_t width, int64_t heads_, DType dt);
  Tensor forward(const Tensor& x) const;  // (B, T, C) -> (B, T, C)
};

// HF Blip2EncoderLayer: pre-LN residual block, like CLIP's.
//   x = x + self_attn(layer_norm1(x));  x = x + fc2(gelu(fc1(layer_norm2(x))))
struct VisionEncoderLayer {
  nn::LayerNorm layer_norm1, layer_norm2;
  VisionAttention self_attn;
  nn::Linear fc1, fc2;  // mlp.fc1 (mlp_dim, C), mlp.fc2 (C, mlp_dim)
  Activation act = Activation::GELU;
  void load(const WeightScope& s, const VisionConfig& c, DType dt);
  Tensor forward(const Tensor& x) const;  // (B, T, C) -> (B, T, C)
};

// HF Blip2VisionModel: patch conv (WITH bias, unlike CLIP) → [class; patches] + positions → encoder →
// post_layernorm over every token (no pre-norm: EVA has none). Returns all tokens: the Q-Former
// reads the whole grid, not a pooled vector.
struct VisionModel {
  nn::Conv2d patch_embedding;  // embeddings.patch_embedding (C, 3, P, P) + bias (C)
  Tensor class_embedding;      // embeddings.class_embedding (1, 1, C)
  Tensor position_embedding;   // embeddings.position_embedding (1, 1 + N, C): a Parameter, not an Embedding
  std::vector<VisionEncoderLayer> layers;  // encoder.layers.i
  nn::LayerNorm post_layernorm;
  VisionConfig cfg;
  void load(const WeightScope& s, const VisionConfig& c, DType dt);
  Tensor embed(const Tensor& pixels) const;    // (B, 3, S, S) -> (B, 1 + N, C)
  Tensor forward(const Tensor& pixels) const;  // (B, 3, S, S) -> last_hidden_state (B, 1 + N, C)
};

// ---- Q-Former (`qformer.`) -------------------------------------------------------------------------

// HF Blip2QFormerLayer, BERT-style POST-LN. The sequence is [Q queries; T text tokens] (either part
// may be absent). Self-attention runs over all of it; then the query positions alone cross-attend to
// the image (layers with i % cross_attention_frequency == 0) and go through their own feed-forward
// (intermediate_query / output_query); text positions go through intermediate / output.
struct QFormerLayer {
  nn::PostNormAttention attention;       // self-attention over [queries; text]
  bool has_cross_attention = false;
  nn::PostNormAttention crossattention;  // queries → image features (key/value width = vision width)
  nn::PostNormFeedForward ffn_query;     // intermediate_query.dense, output_query.{dense, LayerNorm}
  bool has_text_ffn = false;
  nn::PostNormFeedForward ffn_text;      // intermediate.dense, output.{dense, LayerNorm}
  void load(const WeightScope& s, const QFormerConfig& c, int64_t index, DType dt);
  // h (B, Q + T, C); key_padding_mask (B, Q + T) u8 or undefined; image (B, 1 + N, Cv) or undefined
  // (needed when Q > 0 and the layer has cross-attention). -> (B, Q + T, C)
  Tensor forward(const Tensor& h, int64_t query_length, const Tensor& key_padding_mask, const Tensor& image) const;
};

// HF Blip2QFormerModel: layernorm (BERT's embedding LayerNorm, applied to queries and text alike;
// dropout is a no-op at inference) → layers.
struct QFormerModel {
  nn::LayerNorm layernorm;
  std::vector<QFormerLayer> layers;  // encoder.layer.i
  void load(const WeightScope& s, const QFormerConfig& c, DType dt);
  // embeds (B, Q + T, C): [query tokens; text embeddings]; see QFormerLayer::forward.
  Tensor forward(const Tensor& embeds, int64_t query_length, const Tensor& key_padding_mask,
                 const Tensor& image) const;
};

// HF Blip2TextEmbeddings (`embeddings.`): word + absolute position embeddings. No LayerNorm here:
// qformer.layernorm normalizes the text together with the queries.
struct TextEmbeddings {
  Tensor word_embeddings;      // word_embeddings.weight (V, C)
  Tensor position_embeddings;  // position_embeddings.weight (P, C)
  void load(const WeightScope& s, const QFormerConfig& c, DType dt);
  Tensor forward(const Tensor& ids) const;  // (B, T) i64/i32 -> (B, T, C), positions 0..T-1
};

// ---- the retrieval model ----------------------------------------------------------------------------
// Text inputs are BERT WordPiece ids ([CLS] ... [SEP], zero padded) and an attention mask (B, T)
// with 1 for tokens and 0 for padding (i64/i32/u8; an undefined mask means no padding).
// Every public method returns f32 on the model's device and runs in InferenceMode.
class Blip2Retrieval {
 public:
  // `path`: a Hugging Face folder (config.json with model_type "blip-2" + model.safetensors, and
  // optionally preprocessor_config.json, see Blip2Config::apply_hf_preprocessor) or a converted
  // .safetensors with `vislang.config` metadata. Every tensor must be present with its shape and
  // every tensor of the file used; otherwise the error names the tensor and both shapes.
  static Blip2Retrieval load(const std::string& path, Device device = Device::cpu(), DType dtype = DType::F32);
  static Blip2Retrieval from_weights(const SafeTensorsFile& f, const Blip2Config& cfg, Device device, DType dtype);

  // The stages, for tests and for reuse (e.g. ITM re-ranking reuses image features).
  Tensor vision_features(const Tensor& pixels) const;        // (B, 3, S, S) -> (B, 1 + N, Cv)
  Tensor query_features(const Tensor& image_features) const; // (B, 1 + N, Cv) -> (B, Q, C)
  Tensor image_embeds(const Tensor& query_features) const;   // (B, Q, C) -> L2-normalized (B, Q, E)
  Tensor text_features(const Tensor& ids, const Tensor& attention_mask = Tensor()) const;  // -> (B, T, C)

  Tensor encode_image(const Tensor& pixels) const;  // (B, 3, S, S) -> L2-normalized (B, Q, E)
  Tensor encode_text(const Tensor& ids, const Tensor& attention_mask = Tensor()) const;  // -> normalized (B, E)

  // ITC (HF use_image_text_matching_head=False): (Bi, Q, E) x (Bt, E) -> (Bi, Bt), the best cosine
  // over the Q queries. No temperature: these are cosines, as HF returns them.
  Tensor itc_scores(const Tensor& image_embeds, const Tensor& text_embeds) const;
  // ITM (use_image_text_matching_head=True) on pairs: image_features (B, 1 + N, Cv) with ids (B, T)
  // row by row -> logits (B, 2) [no match, match].
  Tensor itm_logits(const Tensor& image_features, const Tensor& ids, const Tensor& attention_mask = Tensor()) const;
  // Every image with every text: image_features (Bi, 1 + N, Cv), ids (Bt, T) -> P(match) (Bi, Bt).
  Tensor itm_probabilities(const Tensor& image_features, const Tensor& ids,
                           const Tensor& attention_mask = Tensor()) const;

  // Texts → the Q-Former's text inputs: tokenize_texts (below) at max_text_length(tok) tokens, ids
  // checked against the model's vocabulary.
  WordPieceTokenizer::Batch tokenize(const WordPieceTokenizer& tok, const std::vector<std::string>& texts,
                                     bool truncate) const;
  int64_t max_text_length(const WordPieceTokenizer& tok) const;  // blip2::max_text_length(config(), tok)

  // LAVIS's learned ITC temperature (`temp`, kept by tools/convert.py); NaN when the file has none
  // (HF checkpoints drop it). Training divides the cosines by it; retrieval ranking does not need it.
  double temperature() const { return temperature_; }
  const Blip2Config& config() const { return cfg_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }

 private:
  Tensor padding_mask(const Tensor& ids, const Tensor& attention_mask, int64_t query_length) const;
  Blip2Config cfg_;
  Device device_;
  DType dtype_ = DType::F32;
  VisionModel vision_model_;
  Tensor query_tokens_;  // (1, Q, C)
  TextEmbeddings embeddings_;
  QFormerModel qformer_;
  nn::Linear vision_projection_, text_projection_;  // (E, C) + bias each
  nn::Linear itm_head_;                             // (2, C) + bias
  double temperature_ = 0;
};

// The config of the checkpoint at `path`, as Blip2Retrieval::load reads it, without the weights: a
// Hugging Face folder's config.json (+ preprocessor_config.json), or a converted file's vislang.config.
Blip2Config read_checkpoint_config(const std::string& path);
// The vislang.config of an opened converted file (errors name the file).
Blip2Config converted_config(const SafeTensorsFile& f);
// min(the tokenizer's model_max_length, the Q-Former's max_position_embeddings).
int64_t max_text_length(const Blip2Config& cfg, const WordPieceTokenizer& tok);
// Texts → [CLS] WordPiece tokens [SEP], padded to the longest with [PAD] (mask 0), at most L tokens. A
// longer text is cut there (keeping [SEP]) with `truncate`, else an Error naming the text (its number
// and beginning) and both lengths. vocab_size > 0: every id must be below it (the model's table).
WordPieceTokenizer::Batch tokenize_texts(const WordPieceTokenizer& tok, const std::vector<std::string>& texts,
                                         int64_t L, int64_t vocab_size, bool truncate);

// Flops per image of the image side (matmuls and attention products, 2 per multiply-add; LayerNorms,
// softmax and GELU not counted): the vision tower (patch embedding + layers), and the Q-Former's image
// pass + vision_projection. `as_written`: the cross-attention as HF writes it (what PyTorch runs);
// otherwise as vislang runs it at inference (reassociated where it pays, nn::cross_attention_flops).
struct ImageFlops {
  double vision = 0, qformer = 0;
};
ImageFlops image_flops(const Blip2Config& c, bool as_written = false);

// True when `path` holds a BLIP-2 model: a folder whose config.json has model_type "blip-2" (or
// architectures naming a Blip2* class), or a .safetensors whose vislang.config has model_type "blip2".
// Only the config is read; anything unreadable is "not BLIP-2" (the CLIP loader then reports it).
bool is_blip2_checkpoint(const std::string& path);

// Random weights of `c` in this layout (Linear ~ N(0, 1/fan_in), embeddings ~ N(0, 0.02²), norms 1/0),
// written to `path` with the config as `vislang.config`: for benchmarks and tests at real shapes.
void write_random_blip2(const Blip2Config& c, const std::string& path, uint64_t seed);

}  // namespace vislang::blip2
