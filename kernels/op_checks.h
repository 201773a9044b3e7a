// kernels/op_checks.h — the argument checks the op front-ends share (kernels/ops.cpp and
// kernels/grad_ops.cpp), and the two small steps after them (dispatching a one-output call, making an
// optional input contiguous). Internal to kernels/: the public API is ops.h / grad_ops.h.
//
// Every failed check throws a vislang::Error that names the op and describes the offending tensors
// (dtype, shape, device, strides) via Tensor::describe(), e.g.
//   "layer_norm: weight must have shape (768,), got f32 (512) cpu [1] for input f32 (2, 768) cpu [768, 1]".
#pragma once
#include <vector>

#include "kernels/backend.h"

namespace vislang::ops {

inline void check_defined(const Tensor& t, const char* op, const char* what) {
  VL_CHECK(t.defined(), op, ": ", what, " is an undefined tensor");
}
inline void check_float(const Tensor& t, const char* op, const char* what) {
  check_defined(t, op, what);
  VL_CHECK(is_floating(t.dtype()), op, ": ", what, " must be a floating tensor (f32/f16/bf16/f64), got ",
           t.describe());
}
inline void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  if (a.defined() && b.defined())
    VL_CHECK(a.device() == b.device(), op, ": tensors on different devices: ", a.describe(), " vs ", b.describe());
}
inline void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  if (a.defined() && b.defined())
    VL_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", a.describe(), " vs ", b.describe(),
             " (cast one with to(dtype))");
}
inline void check_index(const Tensor& t, const char* op, const char* what) {
  check_defined(t, op, what);
  VL_CHECK(t.dtype() == DType::I64 || t.dtype() == DType::I32, op, ": ", what, " must be i32 or i64, got ",
           t.describe());
}
// A 1-D per-channel parameter of length C, or undefined.
inline void check_param(const Tensor& p, int64_t c, const Tensor& x, const char* op, const char* what) {
  if (!p.defined()) return;
  check_same_device(p, x, op);
  check_same_dtype(p, x, op);
  VL_CHECK(p.dim() == 1 && p.size(0) == c, op, ": ", what, " must have shape (", c, ",), got ", p.describe(),
           " for input ", x.describe());
}
// Host-side check that all indices lie in [0, n) (ids are usually small; copying is cheap next to the op).
inline void check_index_range(const Tensor& idx, int64_t n, const char* op, const char* what) {
  if (idx.numel() == 0) return;
  std::vector<int64_t> v = idx.to_vector<int64_t>();
  for (size_t i = 0; i < v.size(); ++i)
    VL_CHECK(v[i] >= 0 && v[i] < n, op, ": ", what, " value ", v[i], " at flat position ", i,
             " is out of range [0, ", n, ")");
}

// Dispatches a call with one output unless that output is empty; returns the output.
inline Tensor run1(OpCall& c) {
  if (c.out[0].numel() > 0) dispatch(c);
  return c.out[0];
}
inline Tensor maybe_contig(const Tensor& t) { return t.defined() ? t.contiguous() : t; }

}  // namespace vislang::ops
