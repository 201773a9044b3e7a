// kernels/cuda/backend.cu — cuda_backend(): which CUDA kernel runs an OpCall, or nullptr when the
// op/dtype combination is not supported (dispatch() then throws "cuda backend does not support ...").
//
// Supported: every Op for f32, f16 and bf16. Integer dtypes (i32, i64, u8) for COPY, FILL, BINARY,
// SCALAR, UNARY (neg/abs/relu/square), CLAMP, WHERE, REDUCE, ARGMAX, TOPK and the indexing ops
// (EMBEDDING, INDEX_SELECT, GATHER move raw bits, so any dtype). f64 only for COPY, FILL, WHERE and
// the indexing ops (f64 math is reference-only, see kernels/ops.h). ATTENTION needs head dims <= 128.
// The backward ops (grad.cu) take f32, f16 and bf16 with every tensor of one dtype.
// Every kernel runs with the output's device made current (DeviceGuard), on its default stream.
#include "kernels/cuda/cuda_common.cuh"
#include "kernels/cuda/cuda_ops.h"

namespace vislang {

namespace cuda {  // the backward ops (grad.cu)
void unary_backward(OpCall& c);
void softmax_backward(OpCall& c);
void layer_norm_backward(OpCall& c);
void conv2d_backward(OpCall& c);
void scatter_add(OpCall& c);
}  // namespace cuda

namespace {

template <void (*F)(OpCall&)>
void on_device(OpCall& c) {
  cuda::DeviceGuard g(c.out[0].device().index);
  F(c);
}

bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
bool is_numeric(DType t) { return is_float(t) || t == DType::I32 || t == DType::I64 || t == DType::U8; }
bool is_any(DType t) { return is_numeric(t) || t == DType::F64; }
bool is_index(DType t) { return t == DType::I32 || t == DType::I64; }
bool opt_float(const Tensor& t) { return !t.defined() || is_float(t.dtype()) || t.dtype() == DType::F64; }

static_assert(static_cast<int>(Op::COUNT) == 28, "a new Op needs a case in cuda_find (and a CUDA kernel)");

Kernel cuda_find(const OpCall& c) {
  if (c.out.empty() || !c.out[0].defined()) return nullptr;
  const Tensor& o = c.out[0];
  const DType dt = o.dtype();
  auto in = [&](size_t k) -> const Tensor& { return c.input(k); };
  auto has = [&](size_t k) { return in(k).defined(); };
  switch (c.op) {
    case Op::COPY:
      return has(0) && is_any(dt) && is_any(in(0).dtype()) ? &on_device<cuda::copy> : nullptr;
    case Op::FILL:
      return is_any(dt) ? &on_device<cuda::fill> : nullptr;
    case Op::BINARY:
      return has(0) && has(1) && is_numeric(dt) && is_numeric(in(0).dtype()) && is_numeric(in(1).dtype()) &&
                     kind_in_range<BinaryKind>(c.i[0])
                 ? &on_device<cuda::binary>
                 : nullptr;
    case Op::SCALAR:
      return has(0) && is_numeric(dt) && is_numeric(in(0).dtype()) && kind_in_range<BinaryKind>(c.i[0])
                 ? &on_device<cuda::scalar>
                 : nullptr;
    case Op::UNARY: {
      if (!has(0) || !kind_in_range<UnaryKind>(c.i[0]) || in(0).dtype() != dt) return nullptr;
      const bool int_ok = unary_allows_integer(static_cast<UnaryKind>(c.i[0]));
      return (is_float(dt) || (is_numeric(dt) && int_ok)) ? &on_device<cuda::unary> : nullptr;
    }
    case Op::CLAMP:
      return has(0) && is_numeric(dt) && is_numeric(in(0).dtype()) ? &on_device<cuda::clamp>
                                                                                        : nullptr;
    case Op::WHERE:
      return has(0) && has(1) && has(2) && is_any(dt) && is_numeric(in(0).dtype()) && is_any(in(1).dtype()) &&
                     is_any(in(2).dtype())
                 ? &on_device<cuda::where>
                 : nullptr;
    case Op::REDUCE:
      return has(0) && is_numeric(dt) && in(0).dtype() == dt && kind_in_range<ReduceKind>(c.i[0])
                 ? &on_device<cuda::reduce>
                 : nullptr;
    case Op::ARGMAX:
      return has(0) && is_numeric(in(0).dtype()) && dt == DType::I64 ? &on_device<cuda::argmax> : nullptr;
    case Op::TOPK:
      return has(0) && c.out.size() >= 2 && is_numeric(dt) && in(0).dtype() == dt &&
                     c.out[1].dtype() == DType::I64
                 ? &on_device<cuda::topk>
                 : nullptr;
    case Op::SOFTMAX:
      return has(0) && is_float(dt) && in(0).dtype() == dt ? &on_device<cuda::softmax> : nullptr;
    case Op::L2_NORMALIZE:
      return has(0) && is_float(dt) && in(0).dtype() == dt ? &on_device<cuda::l2_normalize> : nullptr;
    case Op::CROSS_ENTROPY:
      return has(0) && has(1) && is_float(in(0).dtype()) && is_index(in(1).dtype()) &&
                     (is_float(dt) || dt == DType::F64)
                 ? &on_device<cuda::cross_entropy>
                 : nullptr;
    case Op::LAYER_NORM:
      return has(0) && is_float(dt) && in(0).dtype() == dt && opt_float(in(1)) && opt_float(in(2))
                 ? &on_device<cuda::layer_norm>
                 : nullptr;
    case Op::RMS_NORM:
      return has(0) && is_float(dt) && in(0).dtype() == dt && opt_float(in(1)) ? &on_device<cuda::rms_norm> : nullptr;
    case Op::MATMUL:
      return has(0) && has(1) && is_float(dt) && is_float(in(0).dtype()) && is_float(in(1).dtype()) &&
                     opt_float(in(2)) && o.dim() == 3 && in(0).dim() == 3 && in(1).dim() == 3
                 ? &on_device<cuda::matmul>
                 : nullptr;
    case Op::ATTENTION:
      return has(0) && has(1) && has(2) && is_float(dt) && is_float(in(0).dtype()) && is_float(in(1).dtype()) &&
                     is_float(in(2).dtype()) && opt_float(in(3)) && in(0).dim() == 4 && in(1).dim() == 4 &&
                     in(2).dim() == 4 && in(0).size(3) <= cuda::kAttentionMaxHeadDim &&
                     in(2).size(3) <= cuda::kAttentionMaxHeadDim && (!has(4) || in(4).dim() == 2)
                 ? &on_device<cuda::attention>
                 : nullptr;
    case Op::CONV2D:
      return has(0) && has(1) && is_float(dt) && in(0).dtype() == dt && is_float(in(1).dtype()) && opt_float(in(2)) &&
                     in(0).dim() == 4 && in(1).dim() == 4
                 ? &on_device<cuda::conv2d>
                 : nullptr;
    case Op::AVG_POOL2D:
      return has(0) && is_float(dt) && in(0).dtype() == dt && in(0).dim() == 4 ? &on_device<cuda::avg_pool2d> : nullptr;
    case Op::BATCH_NORM:
      return has(0) && has(1) && has(2) && is_float(dt) && in(0).dtype() == dt && opt_float(in(1)) &&
                     opt_float(in(2)) && opt_float(in(3)) && opt_float(in(4))
                 ? &on_device<cuda::batch_norm>
                 : nullptr;
    case Op::EMBEDDING:
      return has(0) && has(1) && is_any(dt) && in(0).dtype() == dt && in(0).dim() == 2 && is_index(in(1).dtype())
                 ? &on_device<cuda::embedding>
                 : nullptr;
    case Op::INDEX_SELECT:
      return has(0) && has(1) && is_any(dt) && in(0).dtype() == dt && is_index(in(1).dtype()) &&
                     o.dim() <= cuda::kMaxIndexDims && in(0).dim() == o.dim()
                 ? &on_device<cuda::index_select>
                 : nullptr;
    case Op::GATHER:
      return has(0) && has(1) && is_any(dt) && in(0).dtype() == dt && is_index(in(1).dtype()) &&
                     o.dim() <= cuda::kMaxIndexDims && in(0).dim() == o.dim()
                 ? &on_device<cuda::gather>
                 : nullptr;
    case Op::UNARY_BACKWARD:
      return has(0) && has(1) && is_float(dt) && in(0).dtype() == dt && in(1).dtype() == dt &&
                     (c.i[0] == -1 || kind_in_range<UnaryKind>(c.i[0]))
                 ? &on_device<cuda::unary_backward>
                 : nullptr;
    case Op::SOFTMAX_BACKWARD:
      return has(0) && has(1) && is_float(dt) && in(0).dtype() == dt && in(1).dtype() == dt
                 ? &on_device<cuda::softmax_backward>
                 : nullptr;
    case Op::LAYER_NORM_BACKWARD: {
      auto same_or_absent = [&](const Tensor& t) { return !t.defined() || t.dtype() == dt; };
      return has(0) && has(2) && is_float(dt) && in(0).dtype() == dt && in(2).dtype() == dt && opt_float(in(1)) &&
                     (c.out.size() < 2 || same_or_absent(c.out[1])) && (c.out.size() < 3 || same_or_absent(c.out[2]))
                 ? &on_device<cuda::layer_norm_backward>
                 : nullptr;
    }
    case Op::CONV2D_BACKWARD:
      return has(0) && has(1) && has(2) && is_float(dt) && in(0).dtype() == dt && in(1).dtype() == dt &&
                     in(2).dtype() == dt && in(0).dim() == 4 && in(1).dim() == 4 && in(2).dim() == 4
                 ? &on_device<cuda::conv2d_backward>
                 : nullptr;
    case Op::SCATTER_ADD:
      return has(0) && has(1) && is_float(dt) && in(1).dtype() == dt && in(0).dtype() == DType::I64 &&
                     o.dim() <= cuda::kMaxIndexDims
                 ? &on_device<cuda::scatter_add>
                 : nullptr;
    default:
      return nullptr;
  }
}

}  // namespace

const Backend& cuda_backend() {
  static const Backend b{"cuda", &cuda_find};
  return b;
}

}  // namespace vislang
