// train/checkpoint.h — save and resume a training run as ONE .safetensors file.
//
// Where it sits: the training loop calls save_checkpoint every so often; a resumed run builds the
// same model and optimizer (fresh tensors, same names and shapes) and calls load_checkpoint, which
// copies everything back into those tensors' storage. Resuming on the CPU is bit-for-bit: the run
// continues exactly as if it had never stopped (tests/test_train.cpp checks it with memcmp).
//
// File layout (weights/safetensors.h; written atomically: a temp file renamed over the old one):
//   tensors   "model.<name>"              each model parameter, its dtype
//             "optim.step.<name>"          i64 0-d, AdamW's per-parameter step count
//             "optim.exp_avg.<name>"       AdamW's first moment
//             "optim.exp_avg_sq.<name>"    AdamW's second moment
//   metadata  "vislang.checkpoint"  "1"   (the format version; marks the file as a checkpoint)
//             "vislang.step"        the training step, decimal
//             "vislang.rng_state"   Generator::state() as comma-separated 16-digit hex words (the
//                                   u64 words are exact in text; safetensors has no u64 tensor here)
//             anything in CheckpointState::metadata (config JSON, recipe name, data position, ...)
// A model checkpoint can also be read as weights: WeightScope(SafeTensorsFile::open(path)).sub("model").
#pragma once
#include <map>
#include <string>
#include <vector>

#include "nn/optim.h"
#include "weights/safetensors.h"

namespace vislang::train {

struct CheckpointState {
  int64_t step = 0;                             // optimizer steps completed
  std::vector<uint64_t> rng_state;              // Generator::state(); empty = none saved
  std::map<std::string, std::string> metadata;  // free-form; keys starting "vislang." are reserved
};

// Writes model parameters, the optimizer state (when `opt` is not null) and `state` to `path`.
void save_checkpoint(const std::string& path, const NamedTensors& model, const optim::AdamW* opt,
                     const CheckpointState& state);

// Reads `path` and copies every "model.<name>" into the matching tensor of `model` and the optimizer
// state into `opt` (when not null), in place under NoGradGuard. Every expected tensor must be present
// with the right shape, and the file may hold no model/optim tensor that was not expected; errors
// name the file, the tensor and both shapes. A file that is not a vislang checkpoint is an error.
// Returns the step, RNG state and metadata (restore the RNG with Generator::set_state).
CheckpointState load_checkpoint(const std::string& path, const NamedTensors& model, optim::AdamW* opt);

// Only the step/RNG/metadata of a checkpoint (e.g. to print what a file holds).
CheckpointState read_checkpoint_state(const std::string& path);

}  // namespace vislang::train
