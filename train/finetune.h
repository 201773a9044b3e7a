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

namespace vislang::train {

struct FinetuneOptions {
  std::string init;   // model path
  std::string data;   // CSV or folder
  std::string out = "runs/finetune";
  int64_t steps = 100;
  int64_t batch = 32;
  double lr = 1e-5;
  int64_t warmup = 10;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  bool lock_image = false, lock_text = false;
  uint64_t seed = 0;
  std::string save_dtype = "f32";
  bool progress = true;
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
