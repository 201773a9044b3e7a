// core/autograd.h — reverse-mode automatic differentiation (a tape of nodes, like PyTorch's).
//
// How it works, in one paragraph. A Tensor may carry an autograd Meta: `requires_grad`, the
// accumulated `.grad`, and (for results of ops) `grad_fn`, the Node that made it. When grad mode is
// on (the default; off inside InferenceMode and NoGradGuard) and any input of a differentiable op
// requires grad, the op calls autograd::record(out, name, inputs, backward_fn): a Node remembers the
// inputs' Metas and a closure that maps dL/d(out) to dL/d(input) for each input. Views (view,
// reshape, transpose, narrow, select, expand, ...) record nodes too. `loss.backward()` walks the
// graph from the loss in reverse topological order, summing the gradients that reach each tensor,
// and accumulates them into the `.grad` of the leaves (tensors made by the user with
// requires_grad_(), e.g. parameters). Backward closures run with grad mode off and are built from
// the forward ops plus the backward kernels of kernels/grad_ops.h, so they run on every backend.
//
// Rules worth knowing:
//  * requires_grad_() sets the flag on this handle's Meta; copies of a Tensor handle made AFTER the
//    call share the Meta (and so see the gradient). Make parameters require grad before handing
//    them to modules (weights/safetensors.h's WeightScope::from_params does it in that order).
//  * Saved tensors are detached handles (no Meta), so the graph holds no reference cycles; the graph
//    is freed after backward() unless retain_graph is true.
//  * In-place writes (copy_, fill_) into a tensor that requires grad while grad mode is on are
//    errors; optimizers update parameters under NoGradGuard. There are no version counters: do not
//    modify a tensor in place after an op saved it for backward.
//  * Only floating tensors can require grad. Integer outputs (argmax, topk indices) never do.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace vislang::autograd {

// dL/d(out) -> one gradient per recorded input (undefined = no gradient flows to that input).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;

struct Node {
  const char* name = "";                       // the op, for error messages and graph dumps
  std::vector<std::shared_ptr<Meta>> inputs;   // null where the input needs no gradient
  std::vector<Shape> input_shapes;             // to check what the closure returns
  BackwardFn fn;                               // released after backward (unless retain_graph)
  // Releases the chain of nodes only this node keeps alive iteratively: a graph of 10^5+ ops would
  // otherwise be freed by recursion, one set of stack frames per node, and overflow the stack.
  ~Node();
};

struct Meta {
  bool requires_grad = false;
  bool retains_grad = false;       // a non-leaf that keeps its .grad (Tensor::retain_grad)
  Tensor grad;                     // accumulated gradient (undefined until a backward reaches it)
  std::shared_ptr<Node> grad_fn;   // null for leaves
};

// True when grad mode is on for this thread (not inside InferenceMode or NoGradGuard).
bool grad_enabled();
// True when grad mode is on and one of `inputs` requires grad: the op should record.
bool needs_grad(const std::vector<Tensor>& inputs);
bool needs_grad(const Tensor& a, const Tensor& b = Tensor(), const Tensor& c = Tensor());

// Attaches a backward node to `out` when needs_grad(inputs), and returns `out` (with a fresh Meta
// in that case; otherwise unchanged). `fn` must return inputs.size() gradients, each undefined or
// with the shape of its input.
Tensor record(Tensor out, const char* name, const std::vector<Tensor>& inputs, BackwardFn fn);

// Runs backward from `root`; `grad` defaults to 1 for a one-element root.
void backward(const Tensor& root, const Tensor& grad = Tensor(), bool retain_graph = false);

// Sums `g` over the broadcast dims so that it has `shape` (the adjoint of expand).
Tensor sum_to(const Tensor& g, const Shape& shape);

// RAII: no graph is recorded on this thread while alive (gradients are not needed).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};
// RAII: grad mode on again inside a NoGradGuard (not inside InferenceMode).
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();

 private:
  bool prev_;
};

}  // namespace vislang::autograd
