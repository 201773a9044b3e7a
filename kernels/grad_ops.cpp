// kernels/grad_ops.cpp — front-ends of the backward kernels declared in kernels/grad_ops.h: validate,
// allocate the gradients, fill an OpCall (Op::UNARY_BACKWARD ... Op::SCATTER_ADD) and dispatch.
//
// Where it sits: core/autograd.cpp (and tests) call these; the kernels are kernels/ref/ref_grad.cpp
// (the definitions of record), kernels/cpu/cpu_grad.cpp and kernels/cuda/grad.cu. Every check names
// the op and describes the offending tensors (kernels/op_checks.h), e.g.
//   "softmax_backward: grad f32 (2, 5) cpu [5, 1] must have the shape of y f32 (2, 4) cpu [4, 1]".
// Empty tensors never reach a kernel: their gradients are made here (zeros where a sum is empty).
#include "kernels/grad_ops.h"

#include <limits>

#include "kernels/op_checks.h"

namespace vislang::ops {

namespace {

// The checks every backward op starts with: both tensors floating, on one device, of one dtype, and
// `grad` of the shape of `saved` (the forward value the gradient is taken at).
void check_grad_pair(const Tensor& saved, const char* saved_name, const Tensor& grad, const char* op) {
  check_float(saved, op, saved_name);
  check_float(grad, op, "grad");
  check_same_device(saved, grad, op);
  check_same_dtype(saved, grad, op);
  VL_CHECK(saved.shape() == grad.shape(), op, ": grad ", grad.describe(), " must have the shape of ", saved_name, " ",
           saved.describe());
}

Tensor elementwise_backward(const Tensor& x, const Tensor& grad, int64_t kind, double lo, double hi, const char* op) {
  check_grad_pair(x, "x", grad, op);
  OpCall c;
  c.op = Op::UNARY_BACKWARD;
  c.i[0] = kind;
  c.f[0] = static_cast<float>(lo);
  c.f[1] = static_cast<float>(hi);
  c.in = {x, grad};
  c.out = {Tensor::empty(x.shape(), grad.dtype(), grad.device())};
  return run1(c);
}

}  // namespace

Tensor unary_backward(UnaryKind k, const Tensor& x, const Tensor& grad) {
  VL_CHECK(kind_in_range<UnaryKind>(static_cast<int64_t>(k)), "unary_backward: unknown unary kind ",
           static_cast<int64_t>(k));
  const std::string op = str("unary_backward (", unary_name(k), ")");
  return elementwise_backward(x, grad, static_cast<int64_t>(k), 0, 0, op.c_str());
}

Tensor clamp_backward(const Tensor& x, const Tensor& grad, std::optional<double> lo, std::optional<double> hi) {
  if (lo && hi) VL_CHECK(*lo <= *hi, "clamp_backward: min ", *lo, " > max ", *hi);
  const double inf = std::numeric_limits<double>::infinity();
  return elementwise_backward(x, grad, -1, lo.value_or(-inf), hi.value_or(inf), "clamp_backward");
}

Tensor softmax_backward(const Tensor& y, const Tensor& grad, int64_t dim, bool log) {
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  check_grad_pair(y, "y", grad, op);
  VL_CHECK(y.dim() > 0, op, ": needs at least one dim, got ", y.describe());
  OpCall c;
  c.op = Op::SOFTMAX_BACKWARD;
  c.i[0] = y.wrap_dim(dim, op);
  c.i[1] = log ? 1 : 0;
  c.in = {y.contiguous(), grad.contiguous()};
  c.out = {Tensor::empty(y.shape(), grad.dtype(), grad.device())};
  return run1(c);
}

LayerNormGrads layer_norm_backward(const Tensor& x, const Tensor& weight, const Tensor& grad, double eps) {
  const char* op = "layer_norm_backward";
  check_grad_pair(x, "x", grad, op);
  VL_CHECK(x.dim() >= 1, op, ": needs at least one dim, got ", x.describe());
  const int64_t C = x.size(-1);
  check_param(weight, C, x, op, "weight");
  LayerNormGrads r;
  r.dx = Tensor::empty(x.shape(), grad.dtype(), grad.device());
  if (weight.defined()) {
    r.dweight = Tensor::empty({C}, grad.dtype(), grad.device());
    r.dbias = Tensor::empty({C}, grad.dtype(), grad.device());
  }
  if (x.numel() == 0) {  // no rows: the parameter gradients are empty sums
    if (weight.defined()) r.dweight.fill_(0.0), r.dbias.fill_(0.0);
    return r;
  }
  OpCall c;
  c.op = Op::LAYER_NORM_BACKWARD;
  c.f[0] = static_cast<float>(eps);
  c.in = {x.contiguous(), maybe_contig(weight), grad.contiguous()};
  c.out = {r.dx, r.dweight, r.dbias};
  dispatch(c);
  return r;
}

Conv2dGrads conv2d_backward(const Tensor& x, const Tensor& w, const Tensor& grad, const Conv2dOptions& o,
                            bool need_dx, bool need_dw) {
  const char* op = "conv2d_backward";
  check_float(x, op, "x");
  check_float(w, op, "weight");
  check_float(grad, op, "grad");
  check_same_device(x, w, op);
  check_same_device(x, grad, op);
  check_same_dtype(x, w, op);
  check_same_dtype(x, grad, op);
  VL_CHECK(x.dim() == 4 && w.dim() == 4, op, ": x must be (N, C, H, W) and weight (O, C, kh, kw), got x ",
           x.describe(), ", weight ", w.describe());
  VL_CHECK(w.size(1) == x.size(1), op, ": weight ", w.describe(), " expects ", w.size(1), " input channels but x ",
           x.describe(), " has ", x.size(1), " (groups=1 only)");
  VL_CHECK(o.stride_h > 0 && o.stride_w > 0 && o.dil_h > 0 && o.dil_w > 0 && o.pad_h >= 0 && o.pad_w >= 0, op,
           ": stride/dilation must be > 0 and padding >= 0");
  const int64_t Ho = (x.size(2) + 2 * o.pad_h - o.dil_h * (w.size(2) - 1) - 1) / o.stride_h + 1;
  const int64_t Wo = (x.size(3) + 2 * o.pad_w - o.dil_w * (w.size(3) - 1) - 1) / o.stride_w + 1;
  const Shape out_shape{x.size(0), w.size(0), Ho, Wo};
  VL_CHECK(Ho > 0 && Wo > 0 && grad.shape() == out_shape, op, ": grad ", grad.describe(),
           " must have conv2d's output shape ", shape_str(out_shape), " for x ", x.describe(), " and weight ",
           w.describe());
  Conv2dGrads r;
  const bool empty = x.numel() == 0 || w.numel() == 0 || grad.numel() == 0;
  auto run = [&](int64_t which, const Shape& s) {
    Tensor g = Tensor::empty(s, grad.dtype(), grad.device());
    if (empty) {  // nothing to sum: a zero gradient (or an empty one)
      if (g.numel() > 0) g.fill_(0.0);
      return g;
    }
    OpCall c;
    c.op = Op::CONV2D_BACKWARD;
    const int64_t p[6] = {o.stride_h, o.stride_w, o.pad_h, o.pad_w, o.dil_h, o.dil_w};
    for (int j = 0; j < 6; ++j) c.i[j] = p[j];
    c.i[6] = which;
    c.in = {x.contiguous(), w.contiguous(), grad.contiguous()};
    c.out = {g};
    dispatch(c);
    return g;
  };
  if (need_dx) r.dx = run(0, x.shape());
  if (need_dw) r.dw = run(1, w.shape());
  return r;
}

Tensor scatter_add(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  const char* op = "scatter_add";
  check_index(index, op, "index");
  check_float(src, op, "src");
  check_same_device(index, src, op);
  const int64_t rank = static_cast<int64_t>(shape.size());
  VL_CHECK(rank >= 1 && index.dim() == rank, op, ": index ", index.describe(), " must have the rank of the output ",
           shape_str(shape), " (at least 1)");
  VL_CHECK(src.shape() == index.shape(), op, ": src ", src.describe(), " must have the shape of index ",
           index.describe());
  VL_CHECK(dim >= -rank && dim < rank, op, ": dim ", dim, " out of range for the output ", shape_str(shape));
  if (dim < 0) dim += rank;
  for (int64_t d = 0; d < rank; ++d)
    VL_CHECK(d == dim || index.size(d) <= shape[d], op, ": index ", index.describe(), " is larger than the output ",
             shape_str(shape), " at dim ", d);
  check_index_range(index, shape[dim], op, "index");
  OpCall c;
  c.op = Op::SCATTER_ADD;
  c.i[0] = dim;
  c.in = {index.to(DType::I64).contiguous(), src.contiguous()};
  c.out = {Tensor::empty(shape, src.dtype(), src.device())};  // the kernel zero-fills it
  return run1(c);
}

}  // namespace vislang::ops
