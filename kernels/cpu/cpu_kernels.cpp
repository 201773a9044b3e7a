// kernels/cpu/cpu_kernels.cpp — the optimized CPU backend: cpu_backend() and its support table.
//
// Where it sits: dispatch() (kernels/backend.cpp) asks cpu_backend().find(call) first under
// CpuMode::OPTIMIZED and falls back to ref_backend() when it returns nullptr. This backend takes
// every op for f32 / f16 / bf16 data (f16 / bf16 are computed in f32 and rounded back to nearest
// even); f64, integer data and unusual cases (rank > 16, a mask of an unexpected dtype) go to the
// reference. Same-dtype COPY of any dtype is a bit copy and is taken too.
// The kernels: cpu_elementwise.cpp, cpu_reduce.cpp, cpu_index.cpp, cpu_matmul.cpp (sgemm in gemm.cpp),
// cpu_conv.cpp, cpu_attention.cpp; shared machinery in cpu_common.h, float math in cpu_math.h.
#include "kernels/cpu/cpu_common.h"

namespace vislang {
namespace cpu_kernels {

// The backward ops (cpu_grad.cpp).
void unary_backward_kernel(OpCall& c);
void softmax_backward_kernel(OpCall& c);
void layer_norm_backward_kernel(OpCall& c);
void conv2d_backward_kernel(OpCall& c);
void scatter_add_kernel(OpCall& c);

namespace {

bool rank_ok(const OpCall& c) {
  return all_tensors(c, [](const Tensor& t) { return t.dim() <= kMaxDims && t.device().is_cpu(); });
}

static_assert(static_cast<int>(Op::COUNT) == 28, "cpu find(): give the new op a kernel and a case below");

Kernel find(const OpCall& c) {
  if (c.out.empty() || !c.out[0].defined() || !rank_ok(c)) return nullptr;
  const Tensor& out = c.out[0];
  const Tensor& in0 = c.input(0);
  const Tensor& in1 = c.input(1);
  const Tensor& in2 = c.input(2);
  switch (c.op) {
    case Op::COPY:
      if (!in0.defined()) return nullptr;
      return (is_f3(out) && is_f3(in0)) || (out.dtype() == in0.dtype() && dtype_size(out.dtype()) != 0) ? &copy_kernel
                                                                                                        : nullptr;
    case Op::FILL:
      return is_f3(out) ? &fill_kernel : nullptr;
    case Op::BINARY:
      return kind_in_range<BinaryKind>(c.i[0]) && is_f3(out) && is_f3(in0) && is_f3(in1) ? &binary_kernel : nullptr;
    case Op::SCALAR:
      return kind_in_range<BinaryKind>(c.i[0]) && is_f3(out) && is_f3(in0) ? &scalar_kernel : nullptr;
    case Op::UNARY:
      return kind_in_range<UnaryKind>(c.i[0]) && is_f3(out) && is_f3(in0) ? &unary_kernel : nullptr;
    case Op::CLAMP:
      return is_f3(out) && is_f3(in0) ? &clamp_kernel : nullptr;
    case Op::WHERE:
      return is_f3(out) && in0.defined() && in0.dtype() == DType::U8 && is_f3(in1) && is_f3(in2) ? &where_kernel
                                                                                                 : nullptr;
    case Op::REDUCE:
      return kind_in_range<ReduceKind>(c.i[0]) && is_f3(out) && is_f3(in0) ? &reduce_kernel : nullptr;
    case Op::ARGMAX:
      return out.dtype() == DType::I64 && is_f3(in0) ? &argmax_kernel : nullptr;
    case Op::TOPK:
      return c.out.size() >= 2 && is_f3(out) && c.out[1].defined() && c.out[1].dtype() == DType::I64 && is_f3(in0)
                 ? &topk_kernel
                 : nullptr;
    case Op::SOFTMAX:
      return is_f3(out) && is_f3(in0) ? &softmax_kernel : nullptr;
    case Op::L2_NORMALIZE:
      return is_f3(out) && is_f3(in0) ? &l2_normalize_kernel : nullptr;
    case Op::CROSS_ENTROPY:
      return is_f3(out) && is_f3(in0) && is_index(in1) ? &cross_entropy_kernel : nullptr;
    case Op::LAYER_NORM:
      return is_f3(out) && is_f3(in0) && f3_or_absent(in1) && f3_or_absent(in2) ? &layer_norm_kernel : nullptr;
    case Op::RMS_NORM:
      return is_f3(out) && is_f3(in0) && f3_or_absent(in1) ? &rms_norm_kernel : nullptr;
    case Op::BATCH_NORM:
      return is_f3(out) && is_f3(in0) && is_f3(in1) && is_f3(in2) && f3_or_absent(c.input(3)) &&
                     f3_or_absent(c.input(4))
                 ? &batch_norm_kernel
                 : nullptr;
    case Op::MATMUL:
      return kind_in_range<Activation>(c.i[0]) && is_f3(out) && is_f3(in0) && is_f3(in1) && f3_or_absent(in2)
                 ? &matmul_kernel
                 : nullptr;
    case Op::ATTENTION: {
      const Tensor& kpm = c.input(4);
      const bool kpm_ok = !kpm.defined() || (kpm.dtype() == DType::U8 && kpm.is_contiguous());
      return is_f3(out) && is_f3(in0) && is_f3(in1) && is_f3(in2) && f3_or_absent(c.input(3)) && kpm_ok
                 ? &attention_kernel
                 : nullptr;
    }
    case Op::CONV2D:
      return is_f3(out) && is_f3(in0) && is_f3(in1) && f3_or_absent(in2) ? &conv2d_kernel : nullptr;
    case Op::AVG_POOL2D:
      return is_f3(out) && is_f3(in0) ? &avg_pool2d_kernel : nullptr;
    case Op::EMBEDDING:
      return is_f3(out) && is_f3(in0) && out.dtype() == in0.dtype() && is_index(in1) ? &embedding_kernel : nullptr;
    case Op::INDEX_SELECT:
      return is_f3(out) && is_f3(in0) && out.dtype() == in0.dtype() && is_index(in1) ? &index_select_kernel
                                                                                     : nullptr;
    case Op::GATHER:
      return is_f3(out) && is_f3(in0) && out.dtype() == in0.dtype() && is_index(in1) && out.dim() > 0
                 ? &gather_kernel
                 : nullptr;
    case Op::UNARY_BACKWARD:
      return (c.i[0] == -1 || kind_in_range<UnaryKind>(c.i[0])) && is_f3(out) && is_f3(in0) && is_f3(in1)
                 ? &unary_backward_kernel
                 : nullptr;
    case Op::SOFTMAX_BACKWARD:
      return is_f3(out) && is_f3(in0) && is_f3(in1) ? &softmax_backward_kernel : nullptr;
    case Op::LAYER_NORM_BACKWARD:
      return is_f3(out) && is_f3(in0) && f3_or_absent(in1) && is_f3(in2) &&
                     all_tensors(c, [](const Tensor& t) { return is_f3(t); })
                 ? &layer_norm_backward_kernel
                 : nullptr;
    case Op::CONV2D_BACKWARD:
      return is_f3(out) && is_f3(in0) && is_f3(in1) && is_f3(in2) ? &conv2d_backward_kernel : nullptr;
    case Op::SCATTER_ADD:
      return is_f3(out) && in0.defined() && in0.dtype() == DType::I64 && is_f3(in1) ? &scatter_add_kernel : nullptr;
    case Op::COUNT:
      return nullptr;
  }
  return nullptr;
}

}  // namespace
}  // namespace cpu_kernels

const Backend& cpu_backend() {
  static const Backend b{"cpu", &cpu_kernels::find};
  return b;
}

}  // namespace vislang
