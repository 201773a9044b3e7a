// train/finetune.h — `vislang train --init MODEL --data captions.csv|folder`: fine-tunes a pretrained
// CLIP (any ViT model ClipModel::load reads: a Hugging Face folder or a converted .safetensors) on a
// user's image–caption pairs with the contrastive loss, optionally with one tower locked (LiT-style
// --lock-image, or --lock-text).
//
// Data: a CSV with a header row naming the columns `path` (or `image`/`file`/`filepath`) and
// `caption` (or `text`/`title`), RFC 4180 quoting, paths relative to the CSV's folder; or a folder
// holding captions.csv, or image files each with a same-named .txt caption beside it. Images that
// cannot be read are reported (file and reason) and left out; a missing column, an empty caption or
// no usable pair at all is an error naming the file and line.
//
// Writes to `out`: model/ (HF folder, the init model's tokenizer files copied when it has them),
// checkpoint.safetensors, metrics.csv, loss.png, and prints the loss before and after.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/clip_tokenizer.h"
#include "train/training_options.h"

namespace vislang::train {

// steps, batch, seed, out, lr, min_lr, warmup, weight_decay, grad_clip, save_dtype, progress:
// TrainingOptions (train/training_options.h), with fine-tuning's defaults (the cosine decays to 0).
struct FinetuneOptions : TrainingOptions {
  FinetuneOptions()
      : TrainingOptions(/*steps=*/100, /*batch=*/32, /*out=*/"runs/finetune", /*lr=*/1e-5, /*min_lr=*/0,
                        /*warmup=*/10, /*weight_decay=*/0.1) {}
  std::string init;   // model path
  std::string data;   // CSV or folder
  bool lock_image = false, lock_text = false;
};

struct FinetuneResult {
  int64_t pairs = 0, skipped = 0;  // usable pairs, unreadable images left out
  double first_loss = 0, last_loss = 0;
  double eval_loss_before = 0, eval_loss_after = 0;  // mean loss over the whole set, in batches
  int64_t trainable_params = 0, frozen_params = 0;
};

// (absolute image path, caption) pairs of a CSV or folder, as described above.
std::vector<std::pair<std::string, std::string>> read_caption_pairs(const std::string& data);

FinetuneResult run_finetune(const FinetuneOptions& o, const ClipTokenizer& tok);

}  // namespace vislang::train
