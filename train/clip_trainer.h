// train/clip_trainer.h — the pieces every CLIP training run shares: trainable parameters (random
// initialisation or loaded from a model), the model built on them, saving a model folder that every
// vislang command (and Hugging Face transformers) loads, and the evaluations (zero-shot top-1,
// image<->text recall@k).
//
// Data flow of one training step (train/toy_recipe.cpp, train/finetune.cpp):
//   pixels (B, 3, S, S) ─ model.image_features ─ (B, E) ┐
//                                                      ├ clip_contrastive_loss (nn/loss.h) → loss
//   ids    (B, T)       ─ model.text_features  ─ (B, E) ┘      ↓ loss.backward()
//   AdamW (nn/optim.h) updates params in place; logit_scale is clamped to ln(100).
#pragma once
#include <chrono>
#include <string>
#include <vector>

#include "models/clip/clip.h"
#include "nn/optim.h"
#include "tokenizer/clip_tokenizer.h"
#include "weights/safetensors.h"

namespace vislang::train {

// Which towers learn. A locked tower's parameters do not require grad (and get no optimizer state).
struct Locks {
  bool image = false, text = false;
};
bool is_image_param(const std::string& name);  // vision_model.*, visual_projection.*, visual.*
bool is_text_param(const std::string& name);   // text_model.*, text_projection.*

// A CLIP model whose parameters are plain f32 tensors in memory, shared with the modules.
struct TrainableClip {
  clip::ClipConfig cfg;
  NamedTensors params;  // every tensor of the model, in load order (HF names), incl. logit_scale
  Tensor logit_scale;   // 0-d, ln(1 / temperature); one of params
  clip::ClipModel model;
  NamedTensors trainable() const;  // the params that require grad
  int64_t num_params(bool only_trainable = false) const;
};

// OpenAI CLIP's initialisation (clip/model.py initialize_parameters), keyed by HF names:
// token embedding N(0, 0.02²), text positions N(0, 0.01²), class/vision positions and projections
// N(0, width⁻¹), attention q/k/v N(0, width⁻¹), out_proj and fc2 N(0, width⁻¹·(2·layers)⁻¹),
// fc1 N(0, (2·width)⁻¹), patch conv N(0, 0.02²), norms 1/0, biases 0, logit_scale ln(1/0.07).
TrainableClip init_clip(const clip::ClipConfig& cfg, uint64_t seed, Locks locks = {});
// The parameters of a saved model (HF folder or converted .safetensors), as trainable f32 copies.
TrainableClip load_trainable_clip(const std::string& path, Locks locks = {});
// Builds the model on `params` (names/shapes checked against cfg), marking them trainable per locks.
TrainableClip make_trainable(const clip::ClipConfig& cfg, NamedTensors params, Locks locks = {});

// mkdir -p; an error names the folder that could not be created.
void make_dirs(const std::string& dir);

// Writes a Hugging Face CLIP folder: config.json, model.safetensors (in `dtype`), and the
// tokenizer files when given (vocab.json + merges.txt copied from `tokenizer_dir`). Atomic per
// file; the folder is created when missing.
void save_model_folder(const std::string& dir, const TrainableClip& m, DType dtype = DType::F32,
                       const std::string& tokenizer_dir = "");

// ---- one training step ----------------------------------------------------------------------------
struct StepStats {
  double loss = 0, acc_i2t = 0, acc_t2i = 0, grad_norm = 0;
};
// forward both towers → clip_contrastive_loss → backward → clip_grad_norm_(grad_clip) → AdamW step
// (at the optimizer's current lr) → zero_grad → clamp logit_scale to ln(100).
StepStats contrastive_step(TrainableClip& m, optim::AdamW& opt, const Tensor& pixels, const Tensor& ids,
                           double grad_clip);

// The progress line of a training run on stderr:
//   [=========>      ] step 120/700  loss 1.2345  lr 8.1e-04  acc 0.81  312 samples/s  ETA 2:10
// redrawn in place on a terminal, one line every 10 steps otherwise (logs). `note` is appended.
class TrainProgress {
 public:
  TrainProgress(int64_t total_steps, int64_t first_step, int64_t batch, bool enabled);
  void update(int64_t step_done, const StepStats& s, double lr, const std::string& note = "");
  void finish();
  double elapsed() const;          // seconds since construction
  double samples_per_second() const { return sps_; }

 private:
  int64_t total_, first_, batch_;
  bool enabled_, tty_;
  double sps_ = 0;
  std::chrono::steady_clock::time_point t0_;
};

// ---- evaluation (no gradients) --------------------------------------------------------------------
// Token ids (N, context_length) i64, zero padded; texts longer than the context are truncated
// (keeping EOT last).
Tensor tokenize(const ClipTokenizer& tok, const std::vector<std::string>& texts, int64_t context_length);
// L2-normalized embeddings of texts / images, computed in batches under InferenceMode.
Tensor embed_texts(const clip::ClipModel& m, const ClipTokenizer& tok, const std::vector<std::string>& texts,
                   int64_t batch = 256);
Tensor embed_images(const clip::ClipModel& m, const Tensor& pixels, int64_t batch = 256);
// Class embeddings by prompt ensembling: mean of the normalized embeddings of each class's prompts,
// renormalized. prompts[c] = the prompts of class c.
Tensor class_embeddings(const clip::ClipModel& m, const ClipTokenizer& tok,
                        const std::vector<std::vector<std::string>>& prompts);
// Top-1 accuracy of argmax(image_emb · class_embᵀ) against labels.
double zero_shot_top1(const Tensor& image_emb, const Tensor& class_emb, const std::vector<int>& labels);
// Recall@k of paired embeddings (row i of each is a pair): image→text and text→image.
struct Recall {
  double i2t_r1 = 0, i2t_r5 = 0, t2i_r1 = 0, t2i_r5 = 0;
};
Recall retrieval_recall(const Tensor& image_emb, const Tensor& text_emb);
// The same from a score matrix (images, texts), row i's pair being text i (any score: e.g. BLIP-2's
// best-query ITC cosine, train/qformer_recipe.h).
Recall retrieval_recall_scores(const Tensor& scores);

}  // namespace vislang::train
