// nn/optim.cpp — AdamW, gradient clipping and the cosine schedule (formulas in nn/optim.h).
//
// The update mirrors torch.optim.AdamW's single-tensor path (torch/optim/adam.py, _single_tensor_adam
// with decoupled_weight_decay=True) operation for operation, with the scalars computed in double and
// rounded once to the parameter's dtype as torch does, so 10 steps agree with torch to ~1e-7.
#include "nn/optim.h"

#include <cmath>
#include <set>
#include <sstream>

#include "core/autograd.h"
#include "kernels/ops.h"

namespace vislang::optim {

// ---- the no-decay rule ----------------------------------------------------------------------------
bool default_no_decay(const std::string& name, const Tensor& param) {
  if (param.dim() < 2) return true;  // biases, norm gains, logit_scale, class embedding
  const size_t dot = name.rfind('.');
  const std::string last = dot == std::string::npos ? name : name.substr(dot + 1);
  auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
  return last.find("bias") != std::string::npos || has("norm") || has("ln_") || has("layrnorm") ||
         has("embedding") || has("logit_scale");
}

// ---- AdamW --------------------------------------------------------------------------------------
AdamW::AdamW(NamedTensors params, AdamWOptions opt, NoDecayRule no_decay)
    : params_(std::move(params)), opt_(opt) {
  VL_CHECK(opt_.lr >= 0 && opt_.eps >= 0 && opt_.weight_decay >= 0, "AdamW: lr, eps and weight_decay must be >= 0");
  VL_CHECK(opt_.beta1 >= 0 && opt_.beta1 < 1 && opt_.beta2 >= 0 && opt_.beta2 < 1,
           "AdamW: betas must be in [0, 1), got (", opt_.beta1, ", ", opt_.beta2, ")");
  if (!no_decay) no_decay = default_no_decay;
  groups_ = {ParamGroup{"decay", opt_.weight_decay, {}, 0}, ParamGroup{"no_decay", 0.0, {}, 0}};
  std::set<std::string> seen;
  std::set<const void*> seen_storage;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    VL_CHECK(p.defined(), "AdamW: parameter '", name, "' is undefined");
    VL_CHECK(is_floating(p.dtype()), "AdamW: parameter '", name, "' must be floating, got ", p.describe());
    VL_CHECK(seen.insert(name).second, "AdamW: parameter name '", name, "' is given twice");
    VL_CHECK(p.is_contiguous(), "AdamW: parameter '", name, "' must be contiguous (it is updated in place), got ",
             p.describe(), " with strides ", shape_str(p.strides()));
    VL_CHECK(seen_storage.insert(p.data_ptr()).second || p.numel() == 0, "AdamW: parameter '", name,
             "' shares its memory with another parameter (it would be updated twice)");
    ParamGroup& g = groups_[no_decay(name, p) ? 1 : 0];
    g.indices.push_back(i);
    g.numel += p.numel();
    decay_.push_back(g.weight_decay);
    State s;
    s.exp_avg = Tensor::zeros(p.shape(), p.dtype(), p.device());
    s.exp_avg_sq = Tensor::zeros(p.shape(), p.dtype(), p.device());
    state_.push_back(std::move(s));
  }
}

std::string AdamW::param_groups_report() const {
  std::ostringstream os;
  for (const ParamGroup& g : groups_) {
    os << g.name << ": weight_decay " << g.weight_decay << ", " << g.indices.size() << " tensors, " << g.numel
       << " elements\n";
    for (size_t i : g.indices) os << "  " << params_[i].first << " " << shape_str(params_[i].second.shape()) << "\n";
  }
  return os.str();
}

void AdamW::zero_grad() {
  for (auto& np : params_) np.second.set_grad(Tensor());
}

void AdamW::step() {
  autograd::NoGradGuard no_grad;  // the update itself is not part of any graph
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    Tensor g = p.grad();
    if (!g.defined()) continue;  // no gradient reached this parameter: leave it (and its step) alone
    VL_CHECK(g.shape() == p.shape(), "AdamW: gradient of '", name, "' is ", g.describe(), " but the parameter is ",
             p.describe());
    VL_CHECK(g.device() == p.device(), "AdamW: gradient of '", name, "' is on ", g.device().name(),
             " but the parameter on ", p.device().name());
    if (g.dtype() != p.dtype()) g = g.to(p.dtype());
    if (p.device().is_cpu() && p.dtype() == DType::F32)
      update_fused_cpu_f32(p, g.contiguous(), state_[i], decay_[i]);
    else
      update_composed(p, g, state_[i], decay_[i]);
  }
  ++steps_taken_;
}

// The scalars of one update at step t, each rounded to f32 once, as torch does when a Python float
// meets a float32 tensor.
namespace {
struct StepScalars {
  float decay;      // 1 − lr·wd
  float one_m_b1;   // 1 − β1 (the lerp weight)
  float b2, one_m_b2;
  float neg_step;   // −lr / (1 − β1^t)
  float bc2_sqrt;   // √(1 − β2^t)
  float eps;
};
StepScalars step_scalars(const AdamWOptions& o, double wd, int64_t t) {
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(t));
  return StepScalars{static_cast<float>(1.0 - o.lr * wd), static_cast<float>(1.0 - o.beta1),
                     static_cast<float>(o.beta2),          static_cast<float>(1.0 - o.beta2),
                     static_cast<float>(-(o.lr / bc1)),    static_cast<float>(std::sqrt(bc2)),
                     static_cast<float>(o.eps)};
}
}  // namespace

// One pass over memory: each element reads p, g, m, v once and writes p, m, v once. Elementwise, so
// the result does not depend on the thread count; the loop vectorizes (sqrt and div are exact IEEE
// operations in the vector units too).
void AdamW::update_fused_cpu_f32(const Tensor& p, const Tensor& g, State& s, double wd) {
  s.step += 1;
  const StepScalars k = step_scalars(opt_, wd, s.step);
  float* P = p.data<float>();                 // (n) parameter, updated in place
  float* M = s.exp_avg.data<float>();         // (n) first moment
  float* V = s.exp_avg_sq.data<float>();      // (n) second moment
  const float* G = g.data<float>();           // (n) gradient
  const int64_t n = p.numel();
#pragma omp parallel for simd schedule(static) if (n >= (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const float gi = G[i];
    const float pi = P[i] * k.decay;                      // p ← p·(1 − lr·wd)
    const float mi = M[i] + k.one_m_b1 * (gi - M[i]);     // m ← lerp(m, g, 1 − β1)
    const float vi = V[i] * k.b2 + k.one_m_b2 * gi * gi;  // v ← β2·v + (1 − β2)·g²
    const float denom = std::sqrt(vi) / k.bc2_sqrt + k.eps;  // √v̂ + ε = √v / √(1 − β2^t) + ε
    P[i] = pi + k.neg_step * mi / denom;                  // p ← p − lr/(1 − β1^t) · m / denom
    M[i] = mi;
    V[i] = vi;
  }
}

// The same formulas from ops:: (any device, any float dtype), written back with copy_ so the
// parameter's storage is updated in place.
void AdamW::update_composed(const Tensor& p, const Tensor& g, State& s, double wd) {
  s.step += 1;
  const StepScalars k = step_scalars(opt_, wd, s.step);
  Tensor m = ops::add(s.exp_avg, ops::mul(ops::sub(g, s.exp_avg), k.one_m_b1));
  Tensor v = ops::add(ops::mul(s.exp_avg_sq, k.b2), ops::mul(ops::mul(g, g), k.one_m_b2));
  Tensor denom = ops::add(ops::div(ops::sqrt(v), k.bc2_sqrt), k.eps);
  Tensor np = ops::add(ops::mul(p.detach(), k.decay), ops::div(ops::mul(m, k.neg_step), denom));
  s.exp_avg.copy_(m);
  s.exp_avg_sq.copy_(v);
  p.copy_(np);
}

NamedTensors AdamW::state_dict() const {
  NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = params_[i].first;
    out.emplace_back("step." + name, Tensor::full({}, static_cast<double>(state_[i].step), DType::I64));
    out.emplace_back("exp_avg." + name, state_[i].exp_avg);
    out.emplace_back("exp_avg_sq." + name, state_[i].exp_avg_sq);
  }
  return out;
}

void AdamW::load_state_dict(const NamedTensors& state, const std::string& source) {
  std::map<std::string, Tensor> by_name;
  for (const auto& [n, t] : state)
    VL_CHECK(by_name.emplace(n, t).second, "AdamW::load_state_dict: '", n, "' appears twice in ", source);
  auto take = [&](const std::string& name, const Shape& shape) {
    auto it = by_name.find(name);
    VL_CHECK(it != by_name.end(), "AdamW::load_state_dict: ", source, " has no optimizer tensor '", name, "'");
    VL_CHECK(it->second.shape() == shape, "AdamW::load_state_dict: ", source, ": '", name, "' has shape ",
             shape_str(it->second.shape()), ", expected ", shape_str(shape));
    Tensor t = it->second;
    by_name.erase(it);
    return t;
  };
  // Validate everything first, then copy: a failed load leaves the optimizer unchanged.
  std::vector<int64_t> steps(params_.size());
  std::vector<Tensor> ms(params_.size()), vs(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    Tensor st = take("step." + name, {});
    VL_CHECK(!is_floating(st.dtype()), "AdamW::load_state_dict: ", source, ": 'step.", name,
             "' must be an integer tensor, got ", st.describe());
    steps[i] = static_cast<int64_t>(st.item());
    VL_CHECK(steps[i] >= 0, "AdamW::load_state_dict: ", source, ": 'step.", name, "' is negative");
    ms[i] = take("exp_avg." + name, p.shape());
    vs[i] = take("exp_avg_sq." + name, p.shape());
    VL_CHECK(is_floating(ms[i].dtype()) && is_floating(vs[i].dtype()), "AdamW::load_state_dict: ", source,
             ": the moments of '", name, "' must be floating");
  }
  if (!by_name.empty())
    VL_FAIL("AdamW::load_state_dict: ", source, " has optimizer tensor '", by_name.begin()->first,
            "' for no parameter of this optimizer (", by_name.size(), " unexpected in all)");
  autograd::NoGradGuard no_grad;
  steps_taken_ = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    Device dev = state_[i].exp_avg.device();
    state_[i].step = steps[i];
    state_[i].exp_avg.copy_(ms[i].to(dev).to(state_[i].exp_avg.dtype()));
    state_[i].exp_avg_sq.copy_(vs[i].to(dev).to(state_[i].exp_avg_sq.dtype()));
    steps_taken_ = std::max(steps_taken_, steps[i]);
  }
}

// ---- gradient clipping --------------------------------------------------------------------------
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  autograd::NoGradGuard no_grad;
  // total = √(Σ_p Σ_i g_pi²), accumulated in double on the CPU (torch accumulates each ‖g_p‖ in the
  // gradient's dtype). Other devices sum on the device (f32, or f64 for f64 gradients) and copy one
  // number per device to the host at the end, not one per parameter.
  double sumsq = 0;
  std::vector<Tensor> device_sums;  // one running 0-d sum per (device, dtype)
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined() || g.numel() == 0) continue;
    if (g.device().is_cpu() && g.dtype() == DType::F32) {
      Tensor gc = g.contiguous();
      const float* G = gc.data<float>();  // (n)
      const int64_t n = gc.numel();
      double acc = 0;
#pragma omp parallel for reduction(+ : acc) schedule(static) if (n >= (1 << 16))
      for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(G[i]) * G[i];
      sumsq += acc;
      continue;
    }
    Tensor gf = g.dtype() == DType::F64 ? g : g.to(DType::F32);
    Tensor part = ops::sum_all(ops::mul(gf, gf));
    bool added = false;
    for (Tensor& ds : device_sums)
      if (ds.device() == part.device() && ds.dtype() == part.dtype()) {
        ds = ops::add(ds, part);
        added = true;
        break;
      }
    if (!added) device_sums.push_back(part);
  }
  for (const Tensor& ds : device_sums) sumsq += ds.item();
  const double total = std::sqrt(sumsq);
  // c = max_norm / (total + 1e-6), applied only when it shrinks the gradients (torch clamps c to ≤ 1
  // and always multiplies; multiplying by 1 changes nothing).
  // A non-finite total makes c NaN or 0, which (as in torch) poisons the gradients rather than hiding it.
  const double c = max_norm / (total + 1e-6);
  if (!(c >= 1.0)) {
    for (const Tensor& p : params) {
      Tensor g = p.grad();
      if (g.defined()) p.set_grad(ops::mul(g, c));  // a new tensor: a gradient may be shared
    }
  }
  return total;
}

double clip_grad_norm_(const NamedTensors& params, double max_norm) {
  std::vector<Tensor> ps;
  ps.reserve(params.size());
  for (const auto& np : params) ps.push_back(np.second);
  return clip_grad_norm_(ps, max_norm);
}

// ---- cosine schedule with warm-up -----------------------------------------------------------------
double CosineSchedule::lr_at(int64_t step) const {
  VL_CHECK(warmup_steps >= 0 && total_steps > 0, "CosineSchedule: warmup_steps (", warmup_steps,
           ") must be >= 0 and total_steps (", total_steps, ") > 0");
  VL_CHECK(step >= 0, "CosineSchedule::lr_at: negative step ", step);
  const double kPi = 3.14159265358979323846;
  if (step < warmup_steps) {
    // linear warm-up: base · (f + (1 − f)·(s + 1)/W), reaching base_lr at s = W − 1
    const double frac = static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    return base_lr * (warmup_start_factor + (1.0 - warmup_start_factor) * frac);
  }
  if (step >= total_steps) return min_lr;
  // cosine from base_lr (s = W) down towards min_lr (s = total): min + ½(1 + cos(π e / es))(base − min)
  const double e = static_cast<double>(step - warmup_steps);
  const double es = static_cast<double>(total_steps - warmup_steps);
  return min_lr + 0.5 * (1.0 + std::cos(kPi * e / es)) * (base_lr - min_lr);
}

}  // namespace vislang::optim
