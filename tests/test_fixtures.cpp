// tests/test_fixtures.cpp — every op of kernels/ops.h against PyTorch golden files (STYLE.md practice 7).
//
// Data flow: tools/reference/make_op_fixtures.py (torch, float64) → tests/fixtures/ops.safetensors →
// this test, which reads each case with weights/safetensors.h, runs it through vislang::ops with the
// reference CPU kernels (CpuMode::REFERENCE) and again with the optimized ones (CpuMode::OPTIMIZED),
// and compares every output after a NaN/Inf check, printing the worst element on failure.
// A case is "<name>.<role>" tensors plus a metadata entry "<name>" = JSON params with "op"; the
// runner for that op (kRunners below) turns the params into an ops call. Roles listed in
// "transposed" are stored transposed and passed as a .t() view (non-contiguous inputs).
//
// Tolerances (|got - want| <= atol * max(1, max|want|) + rtol * |want|, tests/test_util.h), per op,
// for f32 outputs; the expected values are the float64 results rounded once to f32:
//   elementwise, reductions, softmax family, pooling   atol 1e-6  rtol 1e-5
//   normalization, cross-entropy                       atol 1e-5  rtol 1e-4
//   matmul, linear, attention, conv2d                  atol 1e-5  rtol 1e-4
//   indexing, joining, splitting, casts, topk values   exact (casts bit for bit, NaN == NaN)
// f16 / bf16 outputs add one rounding of the storage dtype: at least 2e-3 (f16) or 1.6e-2 (bf16) for
// both atol and rtol, except for the exact ops. Integer outputs (argmax, topk indices) are exact.
#include <doctest/doctest.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "kernels/ops.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

using namespace vislang;
using json = nlohmann::json;
using test::Tol;

namespace {

// Must match FORMAT_VERSION in tools/reference/make_op_fixtures.py.
// (std::string, not const char*: doctest prints a char pointer as an address.)
const std::string kFormatVersion = "1";
const std::string kRegenerate = "re-run `python tools/reference/make_op_fixtures.py` (needs torch and safetensors)";
const std::set<std::string> kReservedKeys = {"format_version", "generator", "torch"};

const std::string& fixture_path() {
  static const std::string p = std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/ops.safetensors";
  return p;
}

// Opens the fixture file once and checks its format version (a failed REQUIRE stops the calling test).
const SafeTensorsFile& fixtures() {
  static std::unique_ptr<SafeTensorsFile> file;
  static std::string open_error;
  if (!file && open_error.empty()) {
    try {
      file = std::make_unique<SafeTensorsFile>(SafeTensorsFile::open(fixture_path()));
    } catch (const std::exception& e) {
      open_error = e.what();
    }
  }
  REQUIRE_MESSAGE(file != nullptr, str("cannot read the op fixtures: ", open_error, "; ", kRegenerate));
  auto it = file->metadata().find("format_version");
  std::string got = it == file->metadata().end() ? "(none)" : it->second;
  REQUIRE_MESSAGE(got == kFormatVersion, str(fixture_path(), " has format_version ", got, " but this test expects ",
                                             kFormatVersion, ": ", kRegenerate));
  return *file;
}

struct Case {
  const SafeTensorsFile& f;
  std::string name;
  json p;

  bool has(const std::string& role) const { return f.has(name + "." + role); }
  Tensor in(const std::string& role) const {
    std::string full = name + "." + role;
    if (!f.has(full)) VL_FAIL("fixture case '", name, "' has no tensor '", full, "': ", kRegenerate);
    Tensor t = f.get(full);
    if (p.contains("transposed"))
      for (const auto& r : p["transposed"])
        if (r.get<std::string>() == role) t = t.t();  // stored transposed: pass a non-contiguous view
    return t;
  }
  Tensor opt(const std::string& role) const { return has(role) ? in(role) : Tensor(); }
  template <typename T>
  T get(const char* key) const {
    if (!p.contains(key)) VL_FAIL("fixture case '", name, "' lacks parameter \"", key, "\": ", kRegenerate);
    return p[key].get<T>();
  }
  template <typename T>
  T get(const char* key, T def) const { return p.contains(key) ? p[key].get<T>() : def; }
};

using Outputs = std::vector<std::pair<std::string, Tensor>>;  // role -> tensor
struct Runner {
  const char* op;
  Tol tol;  // for f32 outputs
  std::function<Outputs(const Case&)> run;
};

template <typename E>
E kind_named(const char* (*namer)(E), const std::string& s) {
  for (int64_t k = 0; k < static_cast<int64_t>(E::COUNT); ++k)
    if (s == namer(static_cast<E>(k))) return static_cast<E>(k);
  VL_FAIL("unknown kind name '", s, "' in the op fixtures");
}
DType dtype_named(const std::string& s) {
  for (int k = 0; k < static_cast<int>(DType::COUNT); ++k)
    if (s == dtype_name(static_cast<DType>(k))) return static_cast<DType>(k);
  VL_FAIL("unknown dtype name '", s, "' in the op fixtures");
}
Outputs out(Tensor t) { return {{"out", std::move(t)}}; }
Outputs numbered(const std::vector<Tensor>& ts) {
  Outputs o;
  for (size_t i = 0; i < ts.size(); ++i) o.push_back({"out." + std::to_string(i), ts[i]});
  return o;
}
std::vector<Tensor> numbered_inputs(const Case& c) {
  std::vector<Tensor> xs;
  for (int64_t i = 0, n = c.get<int64_t>("n"); i < n; ++i) xs.push_back(c.in("x." + std::to_string(i)));
  return xs;
}

constexpr Tol kElementwise{1e-6, 1e-5}, kNorm{1e-5, 1e-4}, kProduct{1e-5, 1e-4}, kExact{0, 0};

const std::vector<Runner>& runners() {
  static const std::vector<Runner> r = {
      {"binary", kElementwise, [](const Case& c) {
         Tensor a = c.in("a"), b = c.in("b");
         std::string k = c.get<std::string>("kind");
         if (k == "add") return out(ops::add(a, b));
         if (k == "sub") return out(ops::sub(a, b));
         if (k == "mul") return out(ops::mul(a, b));
         if (k == "div") return out(ops::div(a, b));
         if (k == "maximum") return out(ops::maximum(a, b));
         if (k == "minimum") return out(ops::minimum(a, b));
         return out(ops::binary(kind_named(binary_name, k), a, b));
       }},
      {"scalar", kElementwise, [](const Case& c) {
         Tensor x = c.in("x");
         std::string k = c.get<std::string>("kind");
         double s = c.get<double>("s");
         if (c.get<bool>("reverse")) {
           if (k == "sub") return out(ops::rsub(s, x));
           if (k == "div") return out(ops::rdiv(s, x));
           return out(ops::scalar(kind_named(binary_name, k), x, s, true));
         }
         if (k == "add") return out(ops::add(x, s));
         if (k == "sub") return out(ops::sub(x, s));
         if (k == "mul") return out(ops::mul(x, s));
         if (k == "div") return out(ops::div(x, s));
         if (k == "pow") return out(ops::pow(x, s));
         return out(ops::scalar(kind_named(binary_name, k), x, s, false));
       }},
      {"unary", kElementwise, [](const Case& c) {
         static const std::map<std::string, Tensor (*)(const Tensor&)> named = {
             {"neg", ops::neg},   {"exp", ops::exp},         {"log", ops::log},
             {"sqrt", ops::sqrt}, {"rsqrt", ops::rsqrt},     {"tanh", ops::tanh},
             {"sigmoid", ops::sigmoid}, {"relu", ops::relu}, {"gelu", ops::gelu},
             {"gelu_tanh", ops::gelu_tanh}, {"quick_gelu", ops::quick_gelu}};
         Tensor x = c.in("x");
         std::string k = c.get<std::string>("kind");
         auto it = named.find(k);
         return out(it != named.end() ? it->second(x) : ops::unary(kind_named(unary_name, k), x));
       }},
      {"activation", kElementwise, [](const Case& c) {
         return out(ops::activation(kind_named(activation_name, c.get<std::string>("act")), c.in("x")));
       }},
      {"clamp", kElementwise, [](const Case& c) {
         std::optional<double> lo, hi;
         if (c.p.contains("lo")) lo = c.get<double>("lo");
         if (c.p.contains("hi")) hi = c.get<double>("hi");
         return out(ops::clamp(c.in("x"), lo, hi));
       }},
      {"where", kElementwise, [](const Case& c) { return out(ops::where(c.in("cond"), c.in("a"), c.in("b"))); }},
      {"reduce", kElementwise, [](const Case& c) {
         Tensor x = c.in("x");
         int64_t dim = c.get<int64_t>("dim");
         bool keep = c.get<bool>("keepdim");
         std::string k = c.get<std::string>("kind");
         if (k == "sum") return out(ops::sum(x, dim, keep));
         if (k == "mean") return out(ops::mean(x, dim, keep));
         if (k == "max") return out(ops::max(x, dim, keep));
         if (k == "min") return out(ops::min(x, dim, keep));
         return out(ops::reduce(kind_named(reduce_name, k), x, dim, keep));
       }},
      {"sum_all", kElementwise, [](const Case& c) { return out(ops::sum_all(c.in("x"))); }},
      {"argmax", kExact, [](const Case& c) {
         return out(ops::argmax(c.in("x"), c.get<int64_t>("dim"), c.get<bool>("keepdim")));
       }},
      {"topk", kExact, [](const Case& c) {
         ops::TopK r = ops::topk(c.in("x"), c.get<int64_t>("k"), c.get<int64_t>("dim"), c.get<bool>("largest"));
         return Outputs{{"values", r.values}, {"indices", r.indices}};
       }},
      {"softmax", kElementwise, [](const Case& c) { return out(ops::softmax(c.in("x"), c.get<int64_t>("dim"))); }},
      {"log_softmax", kElementwise,
       [](const Case& c) { return out(ops::log_softmax(c.in("x"), c.get<int64_t>("dim"))); }},
      {"l2_normalize", kElementwise, [](const Case& c) {
         return out(ops::l2_normalize(c.in("x"), c.get<int64_t>("dim"), c.get<double>("eps")));
       }},
      {"cross_entropy", kNorm, [](const Case& c) {
         std::string r = c.get<std::string>("reduction");
         ops::Reduction red = r == "mean" ? ops::Reduction::MEAN : r == "sum" ? ops::Reduction::SUM : ops::Reduction::NONE;
         return out(ops::cross_entropy(c.in("logits"), c.in("targets"), red, c.get<int64_t>("ignore_index", -100)));
       }},
      {"layer_norm", kNorm, [](const Case& c) {
         return out(ops::layer_norm(c.in("x"), c.opt("weight"), c.opt("bias"), c.get<double>("eps")));
       }},
      {"rms_norm", kNorm,
       [](const Case& c) { return out(ops::rms_norm(c.in("x"), c.opt("weight"), c.get<double>("eps"))); }},
      {"batch_norm", kNorm, [](const Case& c) {
         return out(ops::batch_norm(c.in("x"), c.in("running_mean"), c.in("running_var"), c.opt("weight"),
                                    c.opt("bias"), c.get<double>("eps")));
       }},
      {"matmul", kProduct, [](const Case& c) {
         return out(ops::matmul(c.in("a"), c.in("b"), c.get<bool>("trans_a"), c.get<bool>("trans_b"), c.opt("bias"),
                                kind_named(activation_name, c.get<std::string>("act")), c.get<double>("alpha")));
       }},
      {"linear", kProduct, [](const Case& c) {
         return out(ops::linear(c.in("x"), c.in("weight"), c.opt("bias"),
                                kind_named(activation_name, c.get<std::string>("act"))));
       }},
      {"sdpa", kProduct, [](const Case& c) {
         ops::AttentionOptions o;
         o.attn_mask = c.opt("attn_mask");
         o.key_padding_mask = c.opt("key_padding_mask");
         o.causal = c.get<bool>("causal");
         if (c.p.contains("scale")) o.scale = c.get<double>("scale");
         return out(ops::scaled_dot_product_attention(c.in("q"), c.in("k"), c.in("v"), o));
       }},
      {"conv2d", kProduct, [](const Case& c) {
         auto s = c.get<std::vector<int64_t>>("stride"), p = c.get<std::vector<int64_t>>("padding"),
              d = c.get<std::vector<int64_t>>("dilation");
         ops::Conv2dOptions o{s[0], s[1], p[0], p[1], d[0], d[1]};
         return out(ops::conv2d(c.in("x"), c.in("w"), c.opt("bias"), o));
       }},
      {"avg_pool2d", kElementwise, [](const Case& c) {
         auto k = c.get<std::vector<int64_t>>("kernel"), s = c.get<std::vector<int64_t>>("stride"),
              p = c.get<std::vector<int64_t>>("padding");
         ops::Pool2dOptions o;
         o.kernel_h = k[0], o.kernel_w = k[1], o.stride_h = s[0], o.stride_w = s[1], o.pad_h = p[0], o.pad_w = p[1];
         o.count_include_pad = c.get<bool>("count_include_pad");
         o.ceil_mode = c.get<bool>("ceil_mode");
         return out(ops::avg_pool2d(c.in("x"), o));
       }},
      {"embedding", kExact, [](const Case& c) { return out(ops::embedding(c.in("table"), c.in("ids"))); }},
      {"index_select", kExact,
       [](const Case& c) { return out(ops::index_select(c.in("x"), c.get<int64_t>("dim"), c.in("index"))); }},
      {"gather", kExact,
       [](const Case& c) { return out(ops::gather(c.in("x"), c.get<int64_t>("dim"), c.in("index"))); }},
      {"concat", kExact, [](const Case& c) { return out(ops::concat(numbered_inputs(c), c.get<int64_t>("dim"))); }},
      {"stack", kExact, [](const Case& c) { return out(ops::stack(numbered_inputs(c), c.get<int64_t>("dim"))); }},
      {"split", kExact, [](const Case& c) {
         return numbered(ops::split(c.in("x"), c.get<int64_t>("split_size"), c.get<int64_t>("dim")));
       }},
      {"chunk", kExact, [](const Case& c) {
         return numbered(ops::chunk(c.in("x"), c.get<int64_t>("chunks"), c.get<int64_t>("dim")));
       }},
      {"cast", kExact,
       [](const Case& c) { return out(ops::cast(c.in("x"), dtype_named(c.get<std::string>("dtype")))); }},
  };
  return r;
}

const Runner* find_runner(const std::string& op) {
  for (const Runner& r : runners())
    if (op == r.op) return &r;
  return nullptr;
}

Tol tolerance(Tol t, DType out) {
  if (t.atol == 0 && t.rtol == 0) return t;  // exact ops stay exact in every dtype
  if (out == DType::F16) return {std::max(t.atol, 2e-3), std::max(t.rtol, 2e-3)};
  if (out == DType::BF16) return {std::max(t.atol, 1.6e-2), std::max(t.rtol, 1.6e-2)};
  return t;
}

std::vector<Case> cases_of(const SafeTensorsFile& f, const std::string& op) {
  std::vector<Case> cs;
  for (const auto& [key, value] : f.metadata()) {
    if (kReservedKeys.count(key)) continue;
    json p = json::parse(value);
    if (p.value("op", "") == op) cs.push_back(Case{f, key, std::move(p)});
  }
  return cs;
}

// Runs every case of `op` under both CPU modes; one failed check per mismatching output.
void run_op(const std::string& op) {
  const SafeTensorsFile& f = fixtures();
  const Runner* r = find_runner(op);
  REQUIRE_MESSAGE(r != nullptr, str("no runner for op '", op, "'"));
  std::vector<Case> cs = cases_of(f, op);
  REQUIRE_MESSAGE(!cs.empty(), str("no fixture case for op '", op, "': ", kRegenerate));
  for (const Case& c : cs) {
    for (CpuMode mode : {CpuMode::REFERENCE, CpuMode::OPTIMIZED}) {
      const char* mode_name = mode == CpuMode::REFERENCE ? "reference" : "optimized";
      Outputs got;
      try {
        CpuModeGuard g(mode);
        got = r->run(c);
      } catch (const std::exception& e) {
        FAIL_CHECK(str("case '", c.name, "' (", mode_name, " CPU kernels) threw: ", e.what()));
        continue;
      }
      for (const auto& [role, t] : got) {
        std::string full = c.name + "." + role;
        if (!f.has(full)) {
          FAIL_CHECK(str("case '", c.name, "': output '", role, "' has no expected tensor '", full, "'"));
          continue;
        }
        Tensor want = f.get(full);
        std::string where = str("case '", c.name, "' output '", role, "' (", mode_name, " CPU kernels, ",
                                c.p.dump(), "): ");
        if (t.dtype() != want.dtype() || t.shape() != want.shape()) {
          FAIL_CHECK(str(where, "got ", t.describe(), ", expected ", want.describe()));
          continue;
        }
        Tol tol = is_floating(want.dtype()) ? tolerance(r->tol, want.dtype()) : kExact;
        test::CompareResult cr = test::compare(t, want, tol);
        if (!cr.ok) FAIL_CHECK(str(where, cr.message, " [shape ", shape_str(want.shape()), ", row-major flat index]"));
      }
    }
  }
}

}  // namespace

TEST_SUITE("fixtures") {

TEST_CASE("op fixtures: format version, and every case has a runner and every runner a case") {
  const SafeTensorsFile& f = fixtures();
  std::set<std::string> ops_seen;
  for (const auto& [key, value] : f.metadata()) {
    if (kReservedKeys.count(key)) continue;
    json p;
    CHECK_NOTHROW(p = json::parse(value));
    std::string op = p.value("op", "");
    CHECK_MESSAGE(find_runner(op) != nullptr, str("fixture case '", key, "' has op '", op, "' with no runner here"));
    ops_seen.insert(op);
  }
  for (const Runner& r : runners()) CHECK_MESSAGE(ops_seen.count(r.op), str("no fixture case for op '", r.op, "'"));
}

#define VL_FIXTURE_TEST(op) \
  TEST_CASE("op fixtures: " op) { run_op(op); }
VL_FIXTURE_TEST("binary")
VL_FIXTURE_TEST("scalar")
VL_FIXTURE_TEST("unary")
VL_FIXTURE_TEST("activation")
VL_FIXTURE_TEST("clamp")
VL_FIXTURE_TEST("where")
VL_FIXTURE_TEST("reduce")
VL_FIXTURE_TEST("sum_all")
VL_FIXTURE_TEST("argmax")
VL_FIXTURE_TEST("topk")
VL_FIXTURE_TEST("softmax")
VL_FIXTURE_TEST("log_softmax")
VL_FIXTURE_TEST("l2_normalize")
VL_FIXTURE_TEST("cross_entropy")
VL_FIXTURE_TEST("layer_norm")
VL_FIXTURE_TEST("rms_norm")
VL_FIXTURE_TEST("batch_norm")
VL_FIXTURE_TEST("matmul")
VL_FIXTURE_TEST("linear")
VL_FIXTURE_TEST("sdpa")
VL_FIXTURE_TEST("conv2d")
VL_FIXTURE_TEST("avg_pool2d")
VL_FIXTURE_TEST("embedding")
VL_FIXTURE_TEST("index_select")
VL_FIXTURE_TEST("gather")
VL_FIXTURE_TEST("concat")
VL_FIXTURE_TEST("stack")
VL_FIXTURE_TEST("split")
VL_FIXTURE_TEST("chunk")
VL_FIXTURE_TEST("cast")
#undef VL_FIXTURE_TEST

}  // TEST_SUITE
