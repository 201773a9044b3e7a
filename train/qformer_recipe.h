// train/qformer_recipe.h — `vislang train --recipe toy-qformer`: a tiny BLIP-2 Q-Former trained in
// the spirit of BLIP-2's stage 1 on the toy world (datasets/toy_world.h), in about a minute on a CPU.
//
//   pixels (B, 3, 72, 72) → FROZEN toy CLIP vision tower (weights/toy_clip: 24 px patches), all 10
//                           token states (CLS + 3×3) after its last (3rd) layer, post_layernorm'd
//                           → (B, 10, 128)
//   query_tokens (1, 8, 64) → Q-Former (models/blip2: 4 post-LN layers, cross-attention in layers 0
//                           and 2) → (B, 8, 64) → vision_projection → L2-normalize → (B, 8, E)
//   caption → WordPiece (a vocab.txt of the toy world's words) → ids (B, T) → the same Q-Former,
//                           text only → [CLS] (B, 64) → text_projection → L2-normalize → (B, E)
//   ITC: score(image, text) = max over the 8 queries of the cosine; training loss = symmetric
//        InfoNCE over the batch with BLIP-2's learned temperature `temp`.
//
// The Q-Former IS models/blip2's (blip2::QFormerModel, blip2::TextEmbeddings, the config and the
// weight names of HF's Blip2ForImageTextRetrieval); only the vision tower differs: BLIP-2's EVA ViT-g
// is replaced by the toy CLIP's tower, so blip2::Blip2Retrieval (which owns a ViT-g) is not used and
// ToyQFormer below holds the Q-Former side. The Q-Former width (64) differs from the image tokens'
// width (128) on purpose, as in BLIP-2 (768 vs 1408): cross-attention's key/value maps 128 → 64.
// No ITM head and no captioning loss (BLIP-2's other two stage-1 losses) are trained.
//
// What a run writes to `out`:
//   model/model.safetensors  the Q-Former (metadata: vislang.config = the Blip2Config; the image
//                            encoder it was trained on, the XXH64 of its weights file, the layer it reads)
//   model/vocab.txt          the WordPiece vocabulary ([PAD] [UNK] [CLS] [SEP] [MASK], then the words)
//   metrics.csv, loss.png    per step: loss, lr, in-batch accuracy, temperature, grad norm
//   eval.json                the evaluation (evaluate_toy_qformer), next to the toy CLIP's
// weights/toy_qformer/ is `--save-dtype f16`'s model/ folder (docs/qformer.md, "Walkthrough").
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "datasets/toy_world.h"
#include "models/blip2/blip2.h"
#include "models/clip/clip.h"
#include "tokenizer/wordpiece.h"
#include "train/training_options.h"

namespace vislang::train {

// ---- the frozen image encoder ----------------------------------------------------------------------
// A CLIP ViT tower (HF `vision_model.`) read for its token states rather than its pooled vector:
//   pixels (B, 3, S, S) → embed + pre_layrnorm → `layer` encoder layers → post_layernorm on EVERY token
//   → (B, 1 + N, C).
// BLIP-2 reads its ViT-g's penultimate layer (of 40) and normalizes every token (LAVIS's ln_vision);
// here the tower's own post_layernorm plays that part, frozen. The recipe reads the LAST of the toy
// tower's 3 layers: post_layernorm was fitted to the last layer's statistics, and with so few layers
// the penultimate tokens are less finished (400 steps, 500 test images: zero-shot top-1 0.954 from
// layer 3 vs 0.900 from layer 2, text→image recall@5 0.968 vs 0.966; docs/qformer.md).
struct FrozenVisionTokens {
  clip::ClipConfig clip_cfg;
  clip::VisionTransformer tower;
  int64_t layer = 0;  // 1 .. clip_cfg.vision.layers
  std::string weights_xxh64;  // XXH64 of its model.safetensors: a Q-Former is tied to these exact weights
  // A Hugging Face CLIP folder (config.json + model.safetensors), e.g. weights/toy_clip.
  static FrozenVisionTokens load(const std::string& clip_dir, int64_t layer);
  // No gradients (InferenceMode), in chunks of `batch` images: (B, 3, S, S) → (B, 1 + N, C) f32.
  Tensor forward(const Tensor& pixels, int64_t batch = 256) const;
};

// ---- the Q-Former side of Blip2ForImageTextRetrieval ------------------------------------------------
// Weights (HF names): query_tokens (1, Q, C), embeddings.{word,position}_embeddings, qformer.*
// (blip2::QFormerModel), vision_projection / text_projection (E, C) + bias, temp (0-d).
// Built through a WeightScope: WeightScope::with_initializer to train (init_qformer_param), a file to
// use. The forward methods record autograd when the parameters require grad; wrap them in
// InferenceMode to use the model.
struct ToyQFormer {
  blip2::Blip2Config cfg;  // vision: the sizes of the frozen tower (its output width is encoder_width)
  Tensor query_tokens;     // (1, Q, C)
  blip2::TextEmbeddings embeddings;
  blip2::QFormerModel qformer;
  nn::Linear vision_projection, text_projection;  // (E, C) + bias each
  Tensor temp;             // 0-d: ITC logits = cosine / temp (BLIP-2 starts it at 0.07, clamps to [0.001, 0.5])

  void load(const WeightScope& root, const blip2::Blip2Config& c);
  // image tokens (B, 1 + N, Cv) → the query outputs (B, Q, C): the queries read the image.
  Tensor query_features(const Tensor& image_tokens) const;
  // (B, 1 + N, Cv) → L2-normalized (B, Q, E)
  Tensor image_embeds(const Tensor& image_tokens) const;
  // ids (B, T), attention_mask (B, T) 1 = token → L2-normalized [CLS] embedding (B, E)
  Tensor text_embeds(const Tensor& ids, const Tensor& attention_mask) const;
  // image embeds (Bi, Q, E), text embeds (Bt, E) → (Bi, Bt): the best cosine over the Q queries.
  // per_query (optional) receives all of them, (Bi, Q, Bt).
  static Tensor itc_scores(const Tensor& image_embeds, const Tensor& text_embeds, Tensor* per_query = nullptr);
};

// (B, T) attention mask (1 = token, 0 = padding; any integer dtype) → the (B, T) u8 key-padding mask
// attention takes (1 = padded key); undefined when nothing is padded.
Tensor key_padding_from_attention_mask(const Tensor& attention_mask);

// Initial value of parameter `name`: LayerNorm gains 1, biases 0, temp 0.07, everything else
// N(0, 0.02²) (BERT's initialisation, as BLIP-2's Q-Former). Requires grad.
Tensor init_qformer_param(const std::string& name, const Shape& shape, DType dt, Generator& gen);

// The WordPiece vocabulary of the toy world: the special tokens, then every word and punctuation mark
// of its captions and prompts, sorted. Deterministic (a pure function of the toy world's templates).
std::vector<std::string> toy_wordpiece_vocab();

// ---- a trained model, ready to use ----------------------------------------------------------------
struct ToyQFormerBundle {
  ToyQFormer model;
  WordPieceTokenizer tokenizer;
  FrozenVisionTokens vision;
  std::string image_encoder;  // what the metadata names (e.g. "weights/toy_clip")
  // Texts → (ids, attention_mask), (B, T) i64 each, T = the longest row.
  WordPieceTokenizer::Batch tokenize(const std::vector<std::string>& texts) const;
  Tensor embed_texts(const std::vector<std::string>& texts) const;  // (B, E), InferenceMode
  Tensor embed_images(const Tensor& pixels) const;                  // (B, Q, E), InferenceMode
};
// `dir`: a model folder written by the recipe (model.safetensors + vocab.txt). `clip_dir`: the frozen
// image encoder; "" = the one named in the metadata, resolved against the current directory, the
// model folder's ../.. and $VISLANG_SOURCE_DIR. Its weights must be the very file the Q-Former was
// trained on (XXH64 in the metadata): other tokens would make its outputs silently meaningless.
// Errors name the file and field.
ToyQFormerBundle load_toy_qformer(const std::string& dir, const std::string& clip_dir = "");

// ---- evaluation -------------------------------------------------------------------------------------
struct ToyRetrievalEval {
  int64_t images = 0;
  double zero_shot_top1 = 0;  // 80 colour × shape labels, one-object TEST images (prompt ensembling)
  double colour_acc = 0;      // the colour of that zero-shot label is right
  double shape_acc = 0;       // the shape of that zero-shot label is right
  double i2t_r1 = 0, i2t_r5 = 0, t2i_r1 = 0, t2i_r5 = 0;  // TEST pairs (images 0 .. n-1, their captions)
};
// The same sets and metrics for the Q-Former (ITC scores) and for the toy CLIP it reads (cosines of
// its pooled embeddings). Sets: toy world seed `seed`, Split::TEST samples 0 .. n-1 (one object for
// the zero-shot set, the default one-or-two for the pairs: the pairs of train::evaluate_toy_model).
ToyRetrievalEval evaluate_toy_qformer(const ToyQFormerBundle& m, int64_t n = 1000, uint64_t seed = 0);
ToyRetrievalEval evaluate_toy_clip_same_way(const std::string& clip_dir, int64_t n = 1000, uint64_t seed = 0);
// A two-column plain-text table of both evaluations.
std::string toy_eval_table(const ToyRetrievalEval& clip, const ToyRetrievalEval& qformer);

// ---- the recipe -------------------------------------------------------------------------------------
// steps, batch, seed, out, lr, min_lr, warmup, weight_decay, grad_clip, save_dtype, progress:
// TrainingOptions (train/training_options.h), with this recipe's defaults.
struct QFormerRecipeOptions : TrainingOptions {
  QFormerRecipeOptions()
      : TrainingOptions(/*steps=*/400, /*batch=*/96, /*out=*/"runs/toy-qformer", /*lr=*/3e-3, /*min_lr=*/1e-5,
                        /*warmup=*/50, /*weight_decay=*/0.05) {}
  std::string clip = "weights/toy_clip";  // the frozen image encoder (a CLIP folder)
  int64_t vision_layer = 3;               // read the tower's tokens after this many layers (of 3)
  int64_t train_images = 3000;  // the pool of TRAIN images whose tokens are computed once (frozen tower)
  int64_t eval_images = 1000;
  // The Q-Former: 8 queries, width 64, 4 layers (cross-attention every 2nd), 4 heads, MLP 256, E 64.
  int64_t queries = 8, width = 64, layers = 4, heads = 4, mlp_dim = 256, cross_every = 2, embed_dim = 64;
  bool write_files = true;  // metrics.csv, loss.png, model/, eval.json (tests switch it off)
};

struct QFormerRecipeResult {
  blip2::Blip2Config config;
  int64_t params = 0;
  double train_seconds = 0;
  double first_loss = 0, final_loss = 0;          // means of the first / last 20 steps
  double first_batch_acc = 0, final_batch_acc = 0;  // in-batch ITC accuracy, same windows
  ToyRetrievalEval qformer, clip;                 // eval_images each; clip = the frozen encoder's own
};

// The config of the recipe's Q-Former (vocab size from toy_wordpiece_vocab, vision sizes from the
// frozen tower).
blip2::Blip2Config toy_qformer_config(const QFormerRecipeOptions& o, const clip::ClipConfig& clip_cfg,
                                      int64_t vocab_size);

QFormerRecipeResult run_qformer_recipe(const QFormerRecipeOptions& o);

}  // namespace vislang::train
