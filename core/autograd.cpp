// core/autograd.cpp — the tape (record), the backward walk, grad mode, and the Tensor methods that
// expose them. The per-op backward closures live next to their forward ops (kernels/ops.cpp,
// core/tensor.cpp for views).
#include "core/autograd.h"

#include <unordered_map>

#include "kernels/ops.h"

namespace vislang {
namespace autograd {

static thread_local bool g_no_grad = false;

bool grad_enabled() { return !g_no_grad && !InferenceMode::enabled(); }

NoGradGuard::NoGradGuard() : prev_(g_no_grad) { g_no_grad = true; }
NoGradGuard::~NoGradGuard() { g_no_grad = prev_; }
EnableGradGuard::EnableGradGuard() : prev_(g_no_grad) { g_no_grad = false; }
EnableGradGuard::~EnableGradGuard() { g_no_grad = prev_; }

static bool wants(const Tensor& t) { return t.defined() && t.autograd_meta() && t.autograd_meta()->requires_grad; }

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor& t : inputs)
    if (wants(t)) return true;
  return false;
}
bool needs_grad(const Tensor& a, const Tensor& b, const Tensor& c) {
  return grad_enabled() && (wants(a) || wants(b) || wants(c));
}

Tensor record(Tensor out, const char* name, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!needs_grad(inputs)) return out;
  if (!is_floating(out.dtype())) return out;  // integer results carry no gradient
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    node->inputs.push_back(wants(t) ? t.autograd_meta() : nullptr);
    node->input_shapes.push_back(t.defined() ? t.shape() : Shape{});
  }
  node->fn = std::move(fn);
  auto meta = std::make_shared<Meta>();
  meta->requires_grad = true;
  meta->grad_fn = std::move(node);
  out.set_autograd_meta(std::move(meta));
  return out;
}

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  Tensor r = g;
  int64_t lead = r.dim() - static_cast<int64_t>(shape.size());
  VL_CHECK(lead >= 0, "sum_to: gradient ", g.describe(), " has fewer dims than ", shape_str(shape));
  for (int64_t i = 0; i < lead; ++i) r = ops::sum(r, 0, false);
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] == 1 && r.size(static_cast<int64_t>(d)) != 1) r = ops::sum(r, static_cast<int64_t>(d), true);
  VL_CHECK(r.shape() == shape, "sum_to: cannot reduce gradient ", g.describe(), " to ", shape_str(shape));
  return r;
}

// Adds `g` into `slot` (which may be undefined). Never modifies a tensor in place: a gradient
// returned by one closure can be the very tensor another closure received.
static void accumulate(Tensor& slot, const Tensor& g) { slot = slot.defined() ? ops::add(slot, g) : g; }

void backward(const Tensor& root, const Tensor& grad_in, bool retain_graph) {
  VL_CHECK(root.defined(), "backward: undefined tensor");
  VL_CHECK(wants(root), "backward: ", root.describe(), " does not require grad (no parameter that requires grad "
           "was used to compute it, or it was computed under NoGradGuard / InferenceMode)");
  Tensor grad = grad_in;
  if (!grad.defined()) {
    VL_CHECK(root.numel() == 1, "backward: grad must be given for a non-scalar output ", root.describe());
    grad = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  VL_CHECK(grad.shape() == root.shape() && grad.dtype() == root.dtype() && grad.device() == root.device(),
           "backward: grad ", grad.describe(), " does not match output ", root.describe(),
           " (shape, dtype and device must agree)");
  NoGradGuard no_grad;

  // 1. Count, for every Meta reachable from the root, how many recorded edges point at it.
  std::unordered_map<Meta*, int> deps;
  std::vector<Meta*> stack{root.autograd_meta().get()};
  std::unordered_map<Meta*, bool> seen{{root.autograd_meta().get(), true}};
  while (!stack.empty()) {
    Meta* m = stack.back();
    stack.pop_back();
    if (!m->grad_fn) continue;
    for (const auto& in : m->grad_fn->inputs) {
      if (!in) continue;
      ++deps[in.get()];
      if (!seen[in.get()]) {
        seen[in.get()] = true;
        stack.push_back(in.get());
      }
    }
  }

  // 2. Kahn's algorithm from the root: a tensor's gradient is complete once every consumer ran. A tensor
  //    that no gradient reached (every consumer returned an undefined one) is still visited, so that the
  //    counters of its inputs drop, but its closure does not run and nothing is stored: leaves reached
  //    only through it keep an undefined .grad, as in PyTorch.
  std::unordered_map<Meta*, Tensor> pending;
  pending[root.autograd_meta().get()] = grad;
  std::vector<Meta*> ready{root.autograd_meta().get()};
  while (!ready.empty()) {
    Meta* m = ready.back();
    ready.pop_back();
    Tensor g;
    if (auto it = pending.find(m); it != pending.end()) {
      g = std::move(it->second);
      pending.erase(it);
    }
    if (g.defined() && (!m->grad_fn || m->retains_grad) && m->requires_grad) {
      // Leaves own their .grad: store a private copy so optimizers may scale it in place.
      if (m->grad.defined()) m->grad = ops::add(m->grad, g);
      else m->grad = g.contiguous().clone();
    }
    if (!m->grad_fn) continue;
    Node& node = *m->grad_fn;
    std::vector<Tensor> grads;
    if (g.defined()) {
      VL_CHECK(node.fn, "backward: the graph through '", node.name, "' was already freed by an earlier backward() "
               "(pass retain_graph = true to backpropagate twice)");
      grads = node.fn(g);
      VL_CHECK(grads.size() == node.inputs.size(), "backward: '", node.name, "' returned ", grads.size(),
               " gradients for ", node.inputs.size(), " inputs");
    }
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      Meta* in = node.inputs[i].get();
      if (!in) continue;
      if (g.defined() && grads[i].defined()) {
        VL_CHECK(grads[i].shape() == node.input_shapes[i], "backward: '", node.name, "' returned gradient ",
                 grads[i].describe(), " for input ", i, " of shape ", shape_str(node.input_shapes[i]));
        accumulate(pending[in], grads[i]);
      }
      if (--deps[in] == 0) ready.push_back(in);
    }
    if (!retain_graph && g.defined()) node.fn = nullptr;
  }
}

Node::~Node() {
  // Inputs whose Meta dies with this node hand their own node to a list owned by the outermost ~Node
  // on the stack, which releases them in a loop (each release may append more): constant stack depth.
  // (A plain pointer, not a thread_local vector: nodes may die during static destruction.)
  thread_local std::vector<std::shared_ptr<Node>>* orphans = nullptr;
  std::vector<std::shared_ptr<Node>> mine;
  std::vector<std::shared_ptr<Node>>& list = orphans ? *orphans : mine;
  for (auto& in : inputs)
    if (in && in.use_count() == 1 && in->grad_fn) list.push_back(std::move(in->grad_fn));
  inputs.clear();
  if (orphans) return;
  orphans = &mine;
  while (!mine.empty()) {
    std::shared_ptr<Node> n = std::move(mine.back());
    mine.pop_back();
    n.reset();
  }
  orphans = nullptr;
}

}  // namespace autograd

// ---- Tensor methods -------------------------------------------------------------------------------
bool Tensor::requires_grad() const { return ag_ && ag_->requires_grad; }

Tensor& Tensor::requires_grad_(bool on) {
  VL_CHECK(defined(), "requires_grad_: undefined tensor");
  if (on) VL_CHECK(is_floating(dtype_), "requires_grad_: only floating tensors can require grad, got ", describe());
  if (!ag_) {
    if (!on) return *this;
    ag_ = std::make_shared<autograd::Meta>();
  }
  VL_CHECK(!ag_->grad_fn || on, "requires_grad_(false) on a non-leaf ", describe(), " (use detach())");
  ag_->requires_grad = on;
  return *this;
}
Tensor Tensor::grad() const { return ag_ ? ag_->grad : Tensor(); }
void Tensor::set_grad(const Tensor& g) const {
  VL_CHECK(ag_, "set_grad: ", describe(), " has no autograd state (call requires_grad_() first)");
  if (g.defined())
    VL_CHECK(g.shape() == shape_, "set_grad: gradient ", g.describe(), " does not match ", describe());
  ag_->grad = g;
}
bool Tensor::is_leaf() const { return !ag_ || !ag_->grad_fn; }
void Tensor::retain_grad() const {
  VL_CHECK(requires_grad(), "retain_grad: ", describe(), " does not require grad");
  ag_->retains_grad = true;
}
Tensor Tensor::detach() const {
  Tensor t = *this;
  t.ag_.reset();
  return t;
}
void Tensor::backward() const { autograd::backward(*this); }
void Tensor::backward(const Tensor& grad, bool retain_graph) const { autograd::backward(*this, grad, retain_graph); }

}  // namespace vislang
