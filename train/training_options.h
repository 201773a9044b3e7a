// train/training_options.h — the options every training run shares: the toy CLIP
// (train/toy_recipe.h), the toy VQA fusion models (train/vqa_recipe.h), the toy Q-Former
// (train/qformer_recipe.h) and fine-tuning (train/finetune.h). Each recipe's options struct derives
// from TrainingOptions and sets its own defaults in its constructor; `vislang train`
// (cli/train_command.cpp) reads the matching flags into it in one place.
//
// Where it sits in a training step (nn/optim.h):
//   batch of `batch` examples → loss → backward → clip_grad_norm_(grad_clip)
//   → opt.set_lr(schedule().lr_at(step)) → AdamW step (adamw(): lr, weight_decay) → next step,
//   for `steps` steps; then the model is written to `out` in `save_dtype`.
#pragma once
#include <cstdint>
#include <string>
#include <utility>

#include "core/dtype.h"
#include "nn/optim.h"

namespace vislang::train {

// Every recipe states its own defaults through the constructor (e.g. ToyRecipeOptions()); the fields
// it does not take (seed, grad_clip, save_dtype, progress) are the same for all of them.
struct TrainingOptions {
  TrainingOptions(int64_t steps, int64_t batch, std::string out, double lr, double min_lr, int64_t warmup,
                  double weight_decay)
      : steps(steps), batch(batch), out(std::move(out)), lr(lr), min_lr(min_lr), warmup(warmup),
        weight_decay(weight_decay) {}

  int64_t steps;           // optimiser steps, one batch each; the learning-rate schedule spans them
  int64_t batch;           // examples per step (the contrastive recipes: pairs, each one's negatives
                           // being the other pairs of the batch; toy-vqa: questions)
  uint64_t seed = 0;       // the run's seed: data, initialisation and batch order all derive from it
  std::string out;         // output folder (created when missing)
  double lr;               // peak learning rate (AdamW step size), reached at the end of the warm-up
  double min_lr;           // the floor the cosine decays to at `steps` (0: to zero, as OpenCLIP)
  int64_t warmup;          // linear warm-up steps: lr · (s + 1) / warmup at steps s < warmup
  double weight_decay;     // AdamW's decoupled decay per step, p ← p · (1 − lr · weight_decay), on the
                           // "decay" group only (weight matrices: optim::default_no_decay)
  double grad_clip = 1.0;  // the largest global L2 norm of all gradients (clip_grad_norm_); the norm
                           // before clipping is what metrics.csv calls grad_norm
  std::string save_dtype = "f32";  // dtype of the saved model weights: f32 | f16 | bf16 (a training
                                   // checkpoint, where a recipe writes one, stays f32)
  bool progress = true;    // the progress line on stderr (TrainProgress, train/clip_trainer.h)

  // AdamW at `lr` with `weight_decay` and CLIP's settings for transformers: β1 0.9, β2 0.98, ε 1e-6.
  optim::AdamWOptions adamw() const;
  // Linear warm-up to `lr`, then cosine decay to `min_lr` at `steps` (optim::CosineSchedule).
  optim::CosineSchedule schedule() const;
  // save_dtype as a DType; an error names --save-dtype and the accepted values.
  DType saved_dtype() const;
};

}  // namespace vislang::train
