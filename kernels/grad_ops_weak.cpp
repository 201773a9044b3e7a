// TEMPORARY (not to be committed): weak placeholders so the tree links while kernels/grad_ops.cpp is
// being written. The strong definitions in grad_ops.cpp win; delete this file once it lands.
#include "kernels/grad_ops.h"

namespace vislang::ops {
#define VL_WEAK __attribute__((weak))
VL_WEAK Tensor unary_backward(UnaryKind, const Tensor&, const Tensor&) { VL_FAIL("unary_backward: not built yet"); }
VL_WEAK Tensor clamp_backward(const Tensor&, const Tensor&, std::optional<double>, std::optional<double>) {
  VL_FAIL("clamp_backward: not built yet");
}
VL_WEAK Tensor softmax_backward(const Tensor&, const Tensor&, int64_t, bool) { VL_FAIL("softmax_backward: not built yet"); }
VL_WEAK LayerNormGrads layer_norm_backward(const Tensor&, const Tensor&, const Tensor&, double) {
  VL_FAIL("layer_norm_backward: not built yet");
}
VL_WEAK Conv2dGrads conv2d_backward(const Tensor&, const Tensor&, const Tensor&, const Conv2dOptions&, bool, bool) {
  VL_FAIL("conv2d_backward: not built yet");
}
VL_WEAK Tensor scatter_add(const Shape&, int64_t, const Tensor&, const Tensor&) { VL_FAIL("scatter_add: not built yet"); }
}  // namespace vislang::ops
