// nn/optim.h — AdamW (decoupled weight decay), the cosine learning-rate schedule with linear warm-up,
// and global-norm gradient clipping: the optimiser side of a training loop.
//
// Where it sits:  loss.backward() → (clip_grad_norm_) → opt.set_lr(schedule.lr_at(step)) → opt.step()
//                 → opt.zero_grad() → next batch.
//
// Parameters are shared by handle: the optimiser holds the same Tensor handles as the modules (e.g.
// from WeightScope::params()), reads their .grad (core/autograd.h) and writes the new values into
// their existing storage, so the model sees the update without being told. It never replaces a
// parameter Tensor.
//
// Gradient accumulation (a large batch as K micro-batches): backward() adds into .grad, so
//     opt.zero_grad();
//     for (k = 0; k < K; ++k) ops::div(loss(micro_batch[k]), K).backward();   // each loss ÷ K
//     clip_grad_norm_(params, max_norm);  opt.step();
// gives the gradient of the mean loss over the K micro-batches. (For the contrastive loss this is
// NOT the same as one batch of K·B pairs: each micro-batch only sees its own B − 1 negatives.)
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "weights/safetensors.h"  // NamedTensors

namespace vislang::optim {

// ---- AdamW --------------------------------------------------------------------------------------
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // applied to the "decay" group only (see default_no_decay)
};

// The default name rule for which parameters get no weight decay: biases (the last name component
// contains "bias"), normalisation weights (the name contains "norm", "ln_" or "layrnorm" — HF's
// pre_layrnorm spelling), embeddings (the name contains "embedding"), "logit_scale", and any tensor
// with fewer than 2 dims (gains, scales). Everything else (linear and conv weights) is decayed.
// Note: HF CLIP's patch-embedding conv weight "…patch_embedding.weight" falls under the embedding
// rule; pass your own predicate to decay it.
bool default_no_decay(const std::string& name, const Tensor& param);
using NoDecayRule = std::function<bool(const std::string& name, const Tensor& param)>;

// One parameter group: the parameters that share a weight decay.
struct ParamGroup {
  std::string name;            // "decay" or "no_decay"
  double weight_decay = 0;
  std::vector<size_t> indices; // into AdamW::params()
  int64_t numel = 0;
};

// torch.optim.AdamW (amsgrad=False, maximize=False), one step for a parameter p with gradient g, at
// this parameter's step count t (1 on its first update), learning rate lr, weight decay wd:
//     p  ← p · (1 − lr·wd)                              decoupled decay (not added to g)
//     m  ← m + (1 − β1)·(g − m)                         exp_avg    (= β1·m + (1 − β1)·g)
//     v  ← β2·v + (1 − β2)·g²                           exp_avg_sq
//     m̂ = m / (1 − β1^t),   v̂ = v / (1 − β2^t)          bias correction
//     p  ← p − lr · m̂ / (√v̂ + ε)                        ε outside the square root
// computed like torch's single-tensor path: step_size = lr / (1 − β1^t) and
// denom = √v / √(1 − β2^t) + ε in the parameter's dtype. Parameters whose .grad is undefined are
// skipped (their step count does not advance), as in torch.
// CPU f32 contiguous parameters use one fused OpenMP loop per parameter (read g, m, v, p once, write
// m, v, p once). Other dtypes and CUDA parameters use a composed path built from ops:: (same
// formulas; several passes over memory).
class AdamW {
 public:
  AdamW(NamedTensors params, AdamWOptions opt = {}, NoDecayRule no_decay = default_no_decay);

  // One update of every parameter that has a gradient, with the current lr().
  void step();
  // Clears every parameter's .grad (set_grad(Tensor())): the next backward() starts from zero.
  void zero_grad();

  double lr() const { return opt_.lr; }
  void set_lr(double lr) { opt_.lr = lr; }  // e.g. set_lr(schedule.lr_at(step)) before step()
  const AdamWOptions& options() const { return opt_; }
  const NamedTensors& params() const { return params_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // Human-readable: each group with its weight decay, tensor count, element count and names.
  std::string param_groups_report() const;
  // Number of step() calls made (restored by load_state_dict: the largest per-parameter step).
  int64_t steps_taken() const { return steps_taken_; }

  // Optimizer state, for checkpoints. Names (per parameter <name>):
  //   "step.<name>"        i64 0-d: how many updates this parameter has received
  //   "exp_avg.<name>"     m, the parameter's shape and dtype
  //   "exp_avg_sq.<name>"  v, the parameter's shape and dtype
  // The tensors are the live state (not copies); save them before the next step().
  NamedTensors state_dict() const;
  // Copies `state` into this optimizer's state. Every name above must be present with the right shape
  // (errors name `source`, e.g. the checkpoint path, and the tensor, with both shapes); extra names
  // are an error too. Tensors may be on any device and of any float dtype (converted).
  void load_state_dict(const NamedTensors& state, const std::string& source = "state_dict");

 private:
  struct State {
    int64_t step = 0;
    Tensor exp_avg, exp_avg_sq;  // zeros like the parameter
  };
  void update_fused_cpu_f32(const Tensor& p, const Tensor& g, State& s, double wd);
  void update_composed(const Tensor& p, const Tensor& g, State& s, double wd);

  NamedTensors params_;
  std::vector<State> state_;
  std::vector<double> decay_;  // per parameter: its group's weight decay
  std::vector<ParamGroup> groups_;
  AdamWOptions opt_;
  int64_t steps_taken_ = 0;
};

// ---- gradient clipping --------------------------------------------------------------------------
// torch.nn.utils.clip_grad_norm_(params, max_norm) with norm_type 2:
//     total = √( Σ_params ‖g‖² )                  (the norm of all gradients as one vector)
//     c = max_norm / (total + 1e-6);  if c < 1: every g ← c · g
// Returns total (before clipping). Parameters without a gradient are skipped. The scaled gradient
// is a new tensor set with set_grad (a gradient tensor may be shared between parameters, so it is
// never scaled in place). The norm is accumulated in double.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);
double clip_grad_norm_(const NamedTensors& params, double max_norm);

// ---- learning-rate schedule ---------------------------------------------------------------------
// Cosine decay with linear warm-up, as OpenCLIP's cosine_lr (open_clip_train/scheduler.py), plus an
// optional floor min_lr and warm-up start factor (both 0 reproduces OpenCLIP exactly). For the step
// about to be taken, s = 0, 1, ..., total_steps − 1, with W = warmup_steps:
//     s < W:   lr = base_lr · ( f + (1 − f) · (s + 1) / W )          f = warmup_start_factor
//     s ≥ W:   lr = min_lr + ½ (1 + cos(π · (s − W) / (total_steps − W))) · (base_lr − min_lr)
//     s ≥ total_steps: lr = min_lr (OpenCLIP would let the cosine rise again)
// So the warm-up reaches base_lr at s = W − 1 and the cosine starts from base_lr at s = W.
struct CosineSchedule {
  double base_lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double min_lr = 0;
  double warmup_start_factor = 0;
  double lr_at(int64_t step) const;
};

}  // namespace vislang::optim
