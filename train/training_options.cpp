// train/training_options.cpp — the optimiser, schedule and save dtype of a TrainingOptions.
#include "train/training_options.h"

#include "core/error.h"

namespace vislang::train {

optim::AdamWOptions TrainingOptions::adamw() const {
  optim::AdamWOptions ao;
  ao.lr = lr;
  ao.beta1 = 0.9;
  ao.beta2 = 0.98;  // CLIP's β2 for transformers
  ao.eps = 1e-6;
  ao.weight_decay = weight_decay;
  return ao;
}

optim::CosineSchedule TrainingOptions::schedule() const {
  optim::CosineSchedule s;
  s.base_lr = lr;
  s.warmup_steps = warmup;
  s.total_steps = steps;
  s.min_lr = min_lr;
  s.warmup_start_factor = 0.0;
  return s;
}

DType TrainingOptions::saved_dtype() const {
  if (save_dtype == "f32") return DType::F32;
  if (save_dtype == "f16") return DType::F16;
  if (save_dtype == "bf16") return DType::BF16;
  VL_FAIL("train: --save-dtype must be f32, f16 or bf16, got '", save_dtype, "'");
}

}  // namespace vislang::train
