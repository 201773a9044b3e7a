// examples/autograd_walkthrough.cpp — reverse-mode autograd on a 2-layer MLP, one step at a time:
// parameters that require grad → a recorded forward pass (the tape) → loss.backward() → the gradients
// checked against finite differences → an SGD step under NoGradGuard → a few more steps, loss falling.
//
//   build/bin/autograd_walkthrough            (no arguments; runs in well under a second)
//
// What it shows: the rules of docs/autograd.md in running code — requires_grad_() on the leaves before
// they are used, the tape the forward pass records (printed node by node), .grad() after backward(),
// in-place parameter updates only under NoGradGuard, clearing gradients between steps.
// What it leaves out: modules and WeightScope (models build their parameters through
// WeightScope::from_params / with_initializer, see weights/safetensors.h), optimizers other than plain
// SGD, batching, the GPU. The data is a toy problem: three classes by the sign pattern of two inputs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "kernels/ops.h"

using namespace vislang;

// A toy data set: x (N, 4) uniform in [-1, 1]; class 0 if x0 + x1 < 0, else 1 if x2 > 0, else 2.
static void make_data(int64_t n, Tensor& x, Tensor& y) {
  Generator g(7);
  x = Tensor::rand({n, 4}, g, DType::F32, Device::cpu(), -1.0, 1.0);
  std::vector<float> v = x.to_vector<float>();
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) labels[i] = v[i * 4] + v[i * 4 + 1] < 0 ? 0 : v[i * 4 + 2] > 0 ? 1 : 2;
  y = Tensor::from_vector(labels, {n});
}

struct Mlp {
  Tensor w1, b1, w2, b2;  // (16, 4), (16), (3, 16), (3)
  std::vector<Tensor*> params() { return {&w1, &b1, &w2, &b2}; }
  // x (N, 4) -> logits (N, 3). Every op records a node because the parameters require grad.
  Tensor forward(const Tensor& x) const { return ops::linear(ops::relu(ops::linear(x, w1, b1)), w2, b2); }
};

static Tensor loss_of(const Mlp& m, const Tensor& x, const Tensor& y) { return ops::cross_entropy(m.forward(x), y); }

int main() {
  Tensor x, y;
  make_data(64, x, y);

  // 1. Leaves: parameters made by the user, marked requires_grad_() BEFORE any op uses them.
  Generator g(1);
  Mlp m;
  m.w1 = Tensor::randn({16, 4}, g, DType::F32, Device::cpu(), 0.0, 0.5);
  m.b1 = Tensor::zeros({16});
  m.w2 = Tensor::randn({3, 16}, g, DType::F32, Device::cpu(), 0.0, 0.25);
  m.b2 = Tensor::zeros({3});
  for (Tensor* p : m.params()) p->requires_grad_();

  // 2. The forward pass records a tape: each result holds the node that made it.
  Tensor loss = loss_of(m, x, y);
  std::printf("loss %.6f, recorded; the tape from the loss back (first input of each node):\n", loss.item());
  for (auto meta = loss.autograd_meta(); meta && meta->grad_fn;) {
    const autograd::Node& node = *meta->grad_fn;
    std::printf("  %-14s inputs needing grad: %zu of %zu\n", node.name,
                static_cast<size_t>(std::count_if(node.inputs.begin(), node.inputs.end(), [](auto& p) { return p != nullptr; })),
                node.inputs.size());
    meta = node.inputs.empty() ? nullptr : node.inputs[0];
  }

  // 3. backward(): the tape is walked in reverse; gradients accumulate into the leaves' .grad.
  loss.backward();
  std::printf("after backward: w1.grad %s, b2.grad %s\n", shape_str(m.w1.grad().shape()).c_str(),
              shape_str(m.b2.grad().shape()).c_str());

  // 4. Check one gradient element by central differences (in f32, so h is large and agreement ~1e-3).
  {
    autograd::NoGradGuard no_grad;  // perturbing a parameter in place needs grad mode off
    const double h = 1e-2;
    float* w = m.w2.data<float>();
    float w0 = w[5];
    w[5] = w0 + static_cast<float>(h);
    double up = loss_of(m, x, y).item();
    w[5] = w0 - static_cast<float>(h);
    double dn = loss_of(m, x, y).item();
    w[5] = w0;
    std::printf("dL/dw2[0,5]: backward %.6f, finite differences %.6f\n", m.w2.grad().to_vector<float>()[5],
                (up - dn) / (2 * h));
  }

  // 5. SGD: update the parameters in place under NoGradGuard, then clear the gradients.
  const double lr = 0.5;
  for (int step = 0; step <= 100; ++step) {
    if (step > 0) {
      for (Tensor* p : m.params()) p->set_grad(Tensor());
      loss = loss_of(m, x, y);
      loss.backward();
    }
    {
      autograd::NoGradGuard no_grad;
      for (Tensor* p : m.params()) p->copy_(ops::sub(*p, ops::mul(p->grad(), lr)));
    }
    if (step % 20 == 0) std::printf("step %3d  loss %.4f\n", step, loss.item());
  }
  double final_loss = loss_of(m, x, y).item();
  std::printf("final loss %.4f\n", final_loss);
  return final_loss < 0.5 ? 0 : 1;
}
