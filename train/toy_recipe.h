// train/toy_recipe.h — `vislang train --recipe toy`: a small CLIP trained from scratch on the toy
// world (datasets/toy_world.h) in a few minutes on a CPU, with a progress bar, metrics.csv, a
// loss/accuracy curve (PNG) and an evaluation: zero-shot top-1 over the 80 colour×shape labels on
// held-out images of seen combinations and on the held-out combinations, and image↔text
// recall@1/@5 on 1,000 held-out pairs.
//
// What the run writes to `out`:
//   model/              a Hugging Face CLIP folder (config.json, model.safetensors, vocab.json,
//                       merges.txt) that every vislang command loads with --model out/model
//   checkpoint.safetensors  weights + AdamW state + step + RNG (resume with --resume)
//   metrics.csv         one row per step (loss, lr, in-batch accuracy, logit scale, grad norm,
//                       samples/s) plus zero-shot accuracy at evaluation steps
//   curves.png          loss and accuracy curves
//   eval.json           the final evaluation
#pragma once
#include <cstdint>
#include <ostream>
#include <string>

#include "models/clip/config.h"
#include "train/training_options.h"

namespace vislang::train {

// steps, batch, seed, out, lr, min_lr, warmup, weight_decay, grad_clip, save_dtype, progress:
// TrainingOptions (train/training_options.h), with this recipe's defaults.
struct ToyRecipeOptions : TrainingOptions {
  ToyRecipeOptions()
      : TrainingOptions(/*steps=*/1500, /*batch=*/128, /*out=*/"runs/toy", /*lr=*/1e-3, /*min_lr=*/1e-5,
                        /*warmup=*/50, /*weight_decay=*/0.1) {}
  int64_t eval_every = 100;       // quick zero-shot evaluation (256 images) every N steps; 0 = never
  int64_t eval_images = 1000;     // final evaluation sizes
  int64_t image_size = 72;
  int64_t patch_size = 24;
  int64_t width = 128;            // both towers
  int64_t layers = 3;             // both towers
  int64_t heads = 4;
  double two_object_prob = 0.35;  // share of two-object scenes in training
  // Half of each batch are counterfactuals of the other half: the same scene with the main object's
  // shape changed (ToyWorld::sample_with_shape). Without them a batch is solved by colour, size and
  // position alone (180 combinations for 128 pairs) and the towers barely learn shape.
  bool hard_negatives = true;
  std::string resume;             // a checkpoint.safetensors to continue from
  int64_t stop_after = 0;         // stop (saving everything) after this step; 0 = at `steps`
};

struct ToyResult {
  double zero_shot_seen = 0;      // top-1 on held-out images of seen combinations
  double zero_shot_heldout = 0;   // top-1 on the held-out combinations
  double i2t_r1 = 0, i2t_r5 = 0, t2i_r1 = 0, t2i_r5 = 0;
  double final_loss = 0;
  double train_seconds = 0;
  int64_t params = 0;
};

// The config of the toy CLIP for these options (vocab size from the learned BPE).
clip::ClipConfig toy_clip_config(const ToyRecipeOptions& o, int64_t vocab_size, int64_t context_length);

ToyResult run_toy_recipe(const ToyRecipeOptions& o);

// Evaluates a saved model (a folder with its tokenizer) on the toy world exactly as the recipe's
// final evaluation does: the README demo and the tests use it.
ToyResult evaluate_toy_model(const std::string& model_dir, int64_t images = 1000, uint64_t seed = 0);
// Prints a few held-out test images' captions with the model's top-3 zero-shot labels, and the
// top-3 images (by caption) for a few text queries.
void print_toy_examples(const std::string& model_dir, uint64_t seed, std::ostream& os);

}  // namespace vislang::train
