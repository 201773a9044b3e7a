// train/vqa_recipe.h — `vislang train --recipe toy-vqa --fusion early|late|late-product|hybrid`: a small
// VQA model trained from scratch on the toy world's questions (datasets/toy_world.h: 8 question types,
// a fixed answer vocabulary, answers by classification), to compare fusion strategies under ONE budget
// (same data, steps, batch, learning-rate schedule; similar parameter counts). docs/fusion.md.
//
// Read train/vqa_recipe.cpp top to bottom: 1. data (a pool of rendered TRAIN images with all their
// questions, a BPE learned from the training questions, two evaluation sets), 2. model and optimiser,
// 3. the loop (progress, metrics.csv), 4. outputs (model.safetensors, curves), 5. evaluation: accuracy
// per question type on held-out images of seen colour×shape combinations (Split::TEST) and on the
// held-out combinations (Split::HELDOUT_COMBOS), against the majority-answer baseline.
//
// What a run writes to `out` (one folder per strategy when several run: out/<fusion>/):
//   metrics.csv  step,loss,lr,batch_acc,grad_norm,samples_per_s,elapsed_s
//   loss.png, accuracy.png   the curves
//   model.safetensors        the parameters in save_dtype (metadata: the config), vocab.json + merges.txt
//   eval.json                the evaluation
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "datasets/toy_world.h"
#include "models/fusion/common.h"
#include "train/bpe_trainer.h"
#include "train/training_options.h"

namespace vislang::train {

// steps, batch (questions per step), seed, out, lr, min_lr, warmup, weight_decay, grad_clip,
// save_dtype, progress: TrainingOptions (train/training_options.h), with this recipe's defaults.
struct VqaRecipeOptions : TrainingOptions {
  VqaRecipeOptions()
      : TrainingOptions(/*steps=*/4000, /*batch=*/64, /*out=*/"runs/vqa", /*lr=*/3e-3, /*min_lr=*/1e-5,
                        /*warmup=*/100, /*weight_decay=*/0.05) {}
  std::string fusion = "early";    // early | late | late-product | hybrid
  int64_t image_size = 32, patch_size = 8;
  int64_t width = 32, heads = 4;   // the depth per strategy comes from fusion::preset
  int64_t train_images = 4000;     // the training pool: these TRAIN images with all their questions
  int64_t eval_images = 400;       // per evaluation split (every question of each image)
  double two_object_prob = 0.5;
  std::vector<int> types;          // question types to train and evaluate on (QuestionType values); empty = all
  bool write_files = true;         // metrics.csv, curves, model, eval.json
};

// The data every strategy shares (make it once, pass it to several runs).
struct VqaSet {
  Tensor pixels;                    // (n_images, 3, S, S) f32
  Tensor ids;                       // (Q, T) i64: each question, SOT … EOT, zero padded
  std::vector<int64_t> image_of;    // (Q): its image (row of pixels)
  std::vector<int64_t> answer;      // (Q): index in toy::answer_vocab()
  std::vector<int> type;            // (Q): QuestionType
};
struct VqaData {
  BpeVocab vocab;
  int64_t context_length = 0;
  VqaSet train, test, heldout;
  std::array<int64_t, toy::kNumQuestionTypes> majority{};  // most frequent TRAIN answer per type (-1: none)
  int64_t global_majority = -1;                            // most frequent TRAIN answer overall
};
VqaData make_vqa_data(const VqaRecipeOptions& o);

// Accuracy on one evaluation set, per question type and over all its questions.
struct VqaAccuracy {
  std::array<double, toy::kNumQuestionTypes> per_type{};  // NaN where the set has no such question
  std::array<int64_t, toy::kNumQuestionTypes> count{};
  double overall = 0;                                     // over every question of the set
};

struct VqaResult {
  std::string fusion;
  fusion::FusionConfig config;
  int64_t params = 0;
  int64_t flops_per_example = 0;  // forward, analytic (models/fusion/*.h)
  double train_seconds = 0;       // wall clock of the loop
  double train_cpu_seconds = 0;   // process CPU time of the loop (all threads)
  double final_loss = 0;          // mean of the last 20 steps
  VqaAccuracy test, heldout;      // Split::TEST (seen combinations), Split::HELDOUT_COMBOS
};

// The majority-answer baselines on a set: per type (answer = that type's majority) and the single
// global majority answer.
VqaAccuracy majority_accuracy(const VqaData& d, const VqaSet& s);
double global_majority_accuracy(const VqaData& d, const VqaSet& s);

// Trains o.fusion on `data` (made from `o` when null) and evaluates it.
VqaResult run_vqa_recipe(const VqaRecipeOptions& o, const VqaData* data = nullptr);

// The comparison as text: one accuracy table per split (rows: strategies, then the majority baseline;
// columns: question types, overall) and a cost table (parameters, training time, FLOPs). `markdown`
// writes GitHub tables (docs/fusion.md), otherwise aligned plain text.
std::string vqa_table(const std::vector<VqaResult>& results, const VqaData& data, bool markdown);

}  // namespace vislang::train
