// kernels/backend.cpp — dispatch, the op/kind name tables and the scalar math of record.
#include "kernels/backend.h"

#include <cmath>

namespace vislang {

static const char* kBinaryNames[] = {"add", "sub", "mul", "div", "maximum", "minimum", "pow"};
static_assert(sizeof(kBinaryNames) / sizeof(*kBinaryNames) == size_t(BinaryKind::COUNT), "binary names");
static const char* kUnaryNames[] = {"neg",  "exp",       "log",        "sqrt", "rsqrt",  "tanh",       "sigmoid",
                                    "relu", "gelu",      "gelu_tanh",  "quick_gelu", "abs", "square", "reciprocal"};
static_assert(sizeof(kUnaryNames) / sizeof(*kUnaryNames) == size_t(UnaryKind::COUNT), "unary names");
static const char* kReduceNames[] = {"sum", "mean", "max", "min"};
static_assert(sizeof(kReduceNames) / sizeof(*kReduceNames) == size_t(ReduceKind::COUNT), "reduce names");
static const char* kActNames[] = {"none", "relu", "gelu", "gelu_tanh", "quick_gelu"};
static_assert(sizeof(kActNames) / sizeof(*kActNames) == size_t(Activation::COUNT), "activation names");

const char* binary_name(BinaryKind k) { return kBinaryNames[int(k)]; }
const char* unary_name(UnaryKind k) { return kUnaryNames[int(k)]; }
const char* reduce_name(ReduceKind k) { return kReduceNames[int(k)]; }
const char* activation_name(Activation a) { return kActNames[int(a)]; }

double apply_unary_ref(UnaryKind k, double x) {
  switch (k) {
    case UnaryKind::NEG: return -x;
    case UnaryKind::EXP: return std::exp(x);
    case UnaryKind::LOG: return std::log(x);
    case UnaryKind::SQRT: return std::sqrt(x);
    case UnaryKind::RSQRT: return 1.0 / std::sqrt(x);
    case UnaryKind::TANH: return std::tanh(x);
    case UnaryKind::SIGMOID: return 1.0 / (1.0 + std::exp(-x));
    case UnaryKind::RELU: return x > 0 ? x : 0.0;
    case UnaryKind::GELU: return 0.5 * x * (1.0 + std::erf(x * 0.70710678118654752440));
    case UnaryKind::GELU_TANH:
      return 0.5 * x * (1.0 + std::tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x)));
    case UnaryKind::QUICK_GELU: return x / (1.0 + std::exp(-1.702 * x));
    case UnaryKind::ABS: return std::fabs(x);
    case UnaryKind::SQUARE: return x * x;
    case UnaryKind::RECIPROCAL: return 1.0 / x;
    default: return x;
  }
}
double apply_binary_ref(BinaryKind k, double a, double b) {
  switch (k) {
    case BinaryKind::ADD: return a + b;
    case BinaryKind::SUB: return a - b;
    case BinaryKind::MUL: return a * b;
    case BinaryKind::DIV: return a / b;
    case BinaryKind::MAX: return (a != a || a > b) ? a : b;  // NaN propagates like torch.maximum
    case BinaryKind::MIN: return (a != a || a < b) ? a : b;
    case BinaryKind::POW: return std::pow(a, b);
    default: return a;
  }
}
double apply_activation_ref(Activation a, double x) {
  switch (a) {
    case Activation::NONE: return x;
    case Activation::RELU: return apply_unary_ref(UnaryKind::RELU, x);
    case Activation::GELU: return apply_unary_ref(UnaryKind::GELU, x);
    case Activation::GELU_TANH: return apply_unary_ref(UnaryKind::GELU_TANH, x);
    case Activation::QUICK_GELU: return apply_unary_ref(UnaryKind::QUICK_GELU, x);
    default: return x;
  }
}

const Tensor& OpCall::input(size_t k) const {
  static const Tensor kNone;
  return k < in.size() ? in[k] : kNone;
}

static thread_local CpuMode g_cpu_mode = CpuMode::OPTIMIZED;
CpuMode cpu_mode() { return g_cpu_mode; }
CpuModeGuard::CpuModeGuard(CpuMode m) : prev_(g_cpu_mode) { g_cpu_mode = m; }
CpuModeGuard::~CpuModeGuard() { g_cpu_mode = prev_; }

static std::string call_summary(const OpCall& c) {
  std::string s = std::string(op_name(c.op)) + " with inputs [";
  for (size_t k = 0; k < c.in.size(); ++k) s += (k ? ", " : "") + c.in[k].describe();
  return s + "] -> " + (c.out.empty() ? std::string("none") : c.out[0].describe());
}

DispatchCounts& dispatch_counts() {
  static thread_local DispatchCounts counts;
  return counts;
}

void dispatch(OpCall& c) {
  VL_CHECK(!c.out.empty() && c.out[0].defined(), "dispatch: ", op_name(c.op), " has no output");
  Device d = c.out[0].device();
  for (const Tensor& t : c.in)
    VL_CHECK(!t.defined() || t.device() == d, op_name(c.op), ": all tensors must be on one device; got ",
             call_summary(c));
  Kernel k = nullptr;
  BackendId id = BackendId::CUDA;
  if (d.is_cuda()) {
    k = cuda_backend().find(c);
    VL_CHECK(k, "cuda backend does not support ", call_summary(c));
  } else {
    id = BackendId::CPU;
    if (cpu_mode() == CpuMode::OPTIMIZED) k = cpu_backend().find(c);
    if (!k) k = ref_backend().find(c), id = BackendId::REF;
    VL_CHECK(k, "no CPU kernel for ", call_summary(c));
  }
  dispatch_counts().n[static_cast<int>(id)][static_cast<int>(c.op)]++;
  k(c);
}

}  // namespace vislang
