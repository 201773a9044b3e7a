// kernels/backend.h — the closed list of ops, the call record every kernel receives, and the
// backend interface (reference CPU, optimized CPU, CUDA).
//
// Data flow: a front-end function in kernels/ops.h validates its inputs (throwing a vislang::Error
// that names the op, shapes, dtypes and devices), allocates the outputs, fills an OpCall and calls
// dispatch(). dispatch() picks the backend from the device of the first output and, on the CPU, from
// the thread's CpuMode (tests flip it to compare the optimized kernels with the references). Kernels
// never validate user input: by the time they run, every shape/dtype/device rule below holds.
//
// Adding an op (the checklist, see docs/engine.md): enum entry + name below (the static_assert keeps
// them in step), front-end in ops.h/ops.cpp, reference kernel in ref/, optimized kernel in cpu/,
// CUDA kernel in cuda/, supports() of each backend, a test case in tests/test_backend_ops.cpp.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace vislang {

// Per-op contract. "strided" = any strides (views, zero-stride broadcasts); "contig" = contiguous.
// All outputs are freshly allocated, contiguous, on the same device as every input.
enum class Op : uint8_t {
  COPY,           // out = cast(in0). in0 strided with out's shape (broadcast by stride 0), any dtype -> out dtype.
                  //   out may be strided too (copy_ into a view). Floating -> f16/bf16 rounds to nearest even.
  FILL,           // out (may be strided) = f[0]
  BINARY,         // out = in0 ∘ in1; in0,in1 strided, already expanded to out's shape. i[0] = BinaryKind
  SCALAR,         // out = in0 ∘ f[0] (i[1] = 0) or f[0] ∘ in0 (i[1] = 1). in0 strided. i[0] = BinaryKind
  UNARY,          // out = g(in0); in0 strided. i[0] = UnaryKind
  CLAMP,          // out = min(max(in0, f[0]), f[1]); in0 strided (use ±inf for a missing bound)
  WHERE,          // out = in0 != 0 ? in1 : in2; all strided & expanded to out's shape; in0 is u8
  REDUCE,         // in0 contig (.., R, ..) reduced along i[1] -> out with that dim = 1. i[0] = ReduceKind
  ARGMAX,         // like REDUCE (i[1] = dim); out i64; first index of the maximum (NaN counts as max)
  TOPK,           // in0 contig; out0 values, out1 i64 indices, dim i[0] of size k = i[1]; i[2] = largest;
                  //   sorted (descending if largest); ties -> lower index first
  SOFTMAX,        // in0 contig; along dim i[0]; i[1] = 1 for log_softmax
  L2_NORMALIZE,   // in0 contig; out = x / max(||x||_2 along dim i[0], f[0])   (torch F.normalize)
  CROSS_ENTROPY,  // in0 logits contig (N, C) float, in1 targets contig (N) i64; out0 f32-like dtype of in0:
                  //   (N) per-sample loss (0 where target == i[0] ignore_index). Front-end reduces.
  LAYER_NORM,     // in0 contig (.., C); in1 weight (C) / in2 bias (C) optional (undefined); f[0] = eps
  RMS_NORM,       // in0 contig (.., C); in1 weight (C) optional; f[0] = eps.  y = x * rsqrt(mean(x²)+eps) * w
  MATMUL,         // out (B, M, N) = act(in0 (B, M, K) @ in1 (B, K, N) + in2 bias (N)); in0/in1 strided
                  //   (transposes are views; batch stride may be 0); in2 contig or undefined.
                  //   i[0] = Activation. f[0] = alpha scaling the product (before bias)
  ATTENTION,      // out (B, H, Tq, Dv) = softmax(scale·q kᵀ + mask) v. in0 q (B,H,Tq,D), in1 k (B,H,Tk,D),
                  //   in2 v (B,H,Tk,Dv) strided; in3 additive mask strided, expanded to (B,H,Tq,Tk), or
                  //   undefined; in4 key-padding mask u8 (B, Tk) contig (nonzero = ignore key) or undefined.
                  //   i[0] = causal (query i sees keys j <= i + Tk - Tq). f[0] = scale.
                  //   A query row with every key masked outputs zeros (not NaN).
  CONV2D,         // in0 x (N, C, H, W) contig, in1 w (O, C, kh, kw) contig, in2 bias (O) or undefined.
                  //   i[0..5] = stride h, w, padding h, w, dilation h, w (zero padding)
  AVG_POOL2D,     // in0 (N, C, H, W) contig. i[0..5] = kernel h, w, stride h, w, padding h, w;
                  //   i[6] = count_include_pad, i[7] = ceil_mode (torch semantics)
  BATCH_NORM,     // inference: in0 (N, C, ...) contig, in1 running_mean (C), in2 running_var (C),
                  //   in3 weight (C) or undefined, in4 bias (C) or undefined; f[0] = eps
  EMBEDDING,      // out (.., D) = in0 table (V, D) contig [ in1 ids contig (..) i32/i64 ]; ids in range
  INDEX_SELECT,   // out = in0 (strided) indexed along dim i[0] by in1 ids (n) contig i32/i64
  GATHER,         // out[..i..] = in0[.. in1[..i..] ..] along dim i[0]; in1 contig i64 with out's shape
  // ---- backward kernels (kernels/grad_ops.h); out has the dtype of the incoming gradient --------------
  UNARY_BACKWARD,       // out = in1 grad · g'(in0 x); in0, in1 strided with out's shape. i[0] = UnaryKind, or
                        //   -1 for clamp: out = grad where f[0] <= x <= f[1], else 0 (±inf for a missing bound)
  SOFTMAX_BACKWARD,     // in0 y, in1 grad contig, same shape; along dim i[0]; i[1] = 1 for log_softmax.
                        //   softmax: out = y·(g − Σ g·y);  log_softmax: out = g − exp(y)·Σ g
  LAYER_NORM_BACKWARD,  // in0 x contig (.., C), in1 weight (C) contig or undefined, in2 grad contig (x's shape);
                        //   out0 dx (x's shape), out1 dweight (C) or undefined, out2 dbias (C) or undefined
                        //   (Σ over rows of g·x̂ and of g); f[0] = eps. Statistics are recomputed from x.
  CONV2D_BACKWARD,      // in0 x (N, C, H, W), in1 w (O, C, kh, kw), in2 grad (N, O, Ho, Wo), all contig, one
                        //   dtype; i[0..5] as CONV2D; i[6] = 0: out0 = dx (x's shape), 1: out0 = dw (w's shape).
                        //   One gradient per call: dispatch() routes on a defined out[0], and the two products
                        //   share nothing but the read of grad.
  SCATTER_ADD,          // out (...) = 0, then out[.. in0[..i..] ..] += in1[..i..] along dim i[0]; in0 index contig
                        //   i64 in range, in1 src contig with in0's shape, same rank as out, every other dim <=
                        //   out's. The kernel zero-fills out (the front-end allocates it empty).
  COUNT
};
inline constexpr const char* kOpNames[] = {
    "copy",   "fill",          "binary",     "scalar",     "unary",      "clamp",  "where",
    "reduce", "argmax",        "topk",       "softmax",    "l2_normalize", "cross_entropy",
    "layer_norm", "rms_norm",  "matmul",     "attention",  "conv2d",     "avg_pool2d", "batch_norm",
    "embedding", "index_select", "gather",
    "unary_backward", "softmax_backward", "layer_norm_backward", "conv2d_backward", "scatter_add"};
static_assert(sizeof(kOpNames) / sizeof(kOpNames[0]) == static_cast<size_t>(Op::COUNT),
              "kOpNames must list every Op");
inline const char* op_name(Op op) { return kOpNames[static_cast<int>(op)]; }

enum class BinaryKind : int64_t { ADD = 0, SUB, MUL, DIV, MAX, MIN, POW, COUNT };
enum class UnaryKind : int64_t {
  NEG = 0, EXP, LOG, SQRT, RSQRT, TANH, SIGMOID, RELU, GELU, GELU_TANH, QUICK_GELU, ABS, SQUARE, RECIPROCAL, COUNT
};
enum class ReduceKind : int64_t { SUM = 0, MEAN, MAX, MIN, COUNT };
enum class Activation : int64_t { NONE = 0, RELU, GELU, GELU_TANH, QUICK_GELU, COUNT };
const char* binary_name(BinaryKind k);
const char* unary_name(UnaryKind k);
const char* reduce_name(ReduceKind k);
const char* activation_name(Activation a);

// Scalar math shared by every backend's kernels (the definitions of record; double precision).
double apply_unary_ref(UnaryKind k, double x);
double apply_binary_ref(BinaryKind k, double a, double b);
double apply_activation_ref(Activation a, double x);

struct OpCall {
  Op op = Op::COUNT;
  std::vector<Tensor> out;  // allocated by the front-end
  std::vector<Tensor> in;   // an undefined Tensor is an absent optional input
  int64_t i[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  float f[4] = {0, 0, 0, 0};
  const Tensor& input(size_t k) const;  // undefined if k >= in.size()
};

using Kernel = void (*)(OpCall&);

// ---- helpers for the backends' find() ----------------------------------------------------------
// A sub-kind parameter (BinaryKind, UnaryKind, ReduceKind, ...) within its enum.
template <typename Kind>
bool kind_in_range(int64_t k) { return k >= 0 && k < static_cast<int64_t>(Kind::COUNT); }
// The unary kinds defined (exactly) on integer tensors; the others need a floating tensor.
inline bool unary_allows_integer(UnaryKind k) {
  return k == UnaryKind::NEG || k == UnaryKind::ABS || k == UnaryKind::RELU || k == UnaryKind::SQUARE;
}
// True when every defined tensor of the call (outputs and inputs) satisfies pred.
template <typename Pred>
bool all_tensors(const OpCall& c, Pred pred) {
  for (const Tensor& t : c.out)
    if (t.defined() && !pred(t)) return false;
  for (const Tensor& t : c.in)
    if (t.defined() && !pred(t)) return false;
  return true;
}

struct Backend {
  const char* name;  // "ref", "cpu", "cuda"
  // Returns nullptr when this backend cannot run the call (op or dtype unsupported).
  Kernel (*find)(const OpCall& call);
};

const Backend& ref_backend();
const Backend& cpu_backend();
const Backend& cuda_backend();  // built without CUDA: find() throws "vislang was built without CUDA"

// Which CPU kernels dispatch() uses on this thread. OPTIMIZED falls back to the reference for
// calls the optimized backend does not support (e.g. f64).
enum class CpuMode { OPTIMIZED, REFERENCE };
CpuMode cpu_mode();
class CpuModeGuard {
 public:
  explicit CpuModeGuard(CpuMode m);
  ~CpuModeGuard();

 private:
  CpuMode prev_;
};

// Runs the call on the backend of out[0]'s device. Throws when no backend supports it.
void dispatch(OpCall& call);

// How many calls of each op each backend ran on this thread (tests use it to prove that the
// optimized backend, not the reference fallback, handled the cases they compare).
enum class BackendId { REF = 0, CPU = 1, CUDA = 2, COUNT };
struct DispatchCounts {
  int64_t n[static_cast<int>(BackendId::COUNT)][static_cast<int>(Op::COUNT)] = {};
};
DispatchCounts& dispatch_counts();

// ---- the device runtime, implemented by the CUDA backend (or by stubs without CUDA) -------------
bool cuda_built();
int cuda_device_count();  // 0 when not built or no GPU / driver
std::string cuda_device_name(int index);
void cuda_memcpy_h2d(void* dst, const void* src, size_t n);
void cuda_memcpy_d2h(void* dst, const void* src, size_t n);
void cuda_memcpy_d2d(void* dst, const void* src, size_t n);
void cuda_synchronize();
Allocator& cuda_allocator(int index);

}  // namespace vislang
