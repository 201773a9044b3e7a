// tests/test_util.h — helpers shared by the tests:
//   compare()      the op tests' check: NaN/Inf first, then a per-element bound
//                  |got - ref| <= atol * scale + rtol * |ref|, where scale = max(1, max |ref|); on
//                  failure the message names the worst element (flat index, got, expected);
//   error_of()     the message of the vislang::Error a call must throw;
//   random inputs, versioned fixtures, shared_dir() (../shared/data);
//   TempDir        a fresh scratch folder, removed with everything in it; slurp / spit read and write
//                  a whole file.
// Running the vislang binary and the examples: tests/test_process.h.
#pragma once
#include <doctest/doctest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "weights/safetensors.h"

namespace vislang::test {

struct Tol {
  double atol, rtol;
};

struct CompareResult {
  bool ok = true;
  std::string message;
  double worst = 0;  // worst |d| / bound
};

inline CompareResult compare(const Tensor& got_t, const Tensor& ref_t, Tol tol) {
  CompareResult r;
  if (got_t.shape() != ref_t.shape()) {
    r.ok = false;
    r.message = "shape " + shape_str(got_t.shape()) + " vs expected " + shape_str(ref_t.shape());
    return r;
  }
  std::vector<double> got = got_t.to_vector<double>(), ref = ref_t.to_vector<double>();
  double scale = 1.0;
  for (double v : ref)
    if (std::isfinite(v)) scale = std::max(scale, std::fabs(v));
  size_t worst_i = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double g = got[i], e = ref[i];
    if (std::isnan(e) || std::isinf(e) || std::isnan(g) || std::isinf(g)) {
      bool same = (std::isnan(e) && std::isnan(g)) || (std::isinf(e) && std::isinf(g) && (e > 0) == (g > 0));
      if (!same) {
        r.ok = false;
        r.message = str("non-finite mismatch at flat index ", i, ": got ", g, ", expected ", e);
        return r;
      }
      continue;
    }
    double bound = tol.atol * scale + tol.rtol * std::fabs(e);
    double q = std::fabs(g - e) / (bound > 0 ? bound : 1e-300);
    if (q > r.worst) { r.worst = q; worst_i = i; }
  }
  if (r.worst > 1.0) {
    r.ok = false;
    r.message = str("worst element at flat index ", worst_i, ": got ", got[worst_i], ", expected ", ref[worst_i],
                    " (|diff| = ", std::fabs(got[worst_i] - ref[worst_i]), ", bound atol ", tol.atol, " * scale ",
                    scale, " + rtol ", tol.rtol, " * |ref|)");
  }
  return r;
}

// Runs `fn`, requires a vislang::Error (a failed check otherwise), returns its message.
template <typename F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL_CHECK("expected a vislang::Error");
  return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// ---- random inputs for op tests (drawn in f32, then rounded to the dtype) --------------------------
inline constexpr DType kFloatTypes[] = {DType::F32, DType::F16, DType::BF16};

// Storage-dtype rounding added to a base f32 tolerance.
inline Tol for_dtype(Tol f32, DType t) {
  switch (t) {
    case DType::F16: return {std::max(f32.atol, 2e-3), std::max(f32.rtol, 2e-3)};
    case DType::BF16: return {std::max(f32.atol, 1.6e-2), std::max(f32.rtol, 1.6e-2)};
    default: return f32;
  }
}
inline Tensor rnd(const Shape& s, DType t, uint64_t seed, double lo = -2.0, double hi = 2.0) {
  Generator g(seed);
  return Tensor::rand(s, g, DType::F32, Device::cpu(), lo, hi).to(t);
}
// Indices uniform in [0, n).
inline Tensor ids(const Shape& s, int64_t n, uint64_t seed, DType t = DType::I64) {
  Generator g(seed);
  std::vector<int64_t> v(static_cast<size_t>(shape_numel(s)));
  for (auto& x : v) x = static_cast<int64_t>(g.next_u64() % static_cast<uint64_t>(n));
  return Tensor::from_vector(v, s, t);
}

// Opens tests/fixtures/<file> and requires its "format_version" metadata to be `version` (the
// FORMAT_VERSION of the script that wrote it). Failures name the file and end with `regenerate`,
// the command that rewrites the fixtures.
inline SafeTensorsFile open_versioned_fixture(const std::string& file, const std::string& version,
                                              const std::string& regenerate) {
  std::string path = std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/" + file;
  std::unique_ptr<SafeTensorsFile> f;
  std::string err;
  try {
    f = std::make_unique<SafeTensorsFile>(SafeTensorsFile::open(path));
  } catch (const std::exception& e) {
    err = e.what();
  }
  REQUIRE_MESSAGE(f != nullptr, "cannot read ", path, ": ", err, "; ", regenerate);
  auto it = f->metadata().find("format_version");
  std::string got = it == f->metadata().end() ? "(none)" : it->second;
  REQUIRE_MESSAGE(got == version, path, " has format_version ", got, " but the test expects ", version, ": ",
                  regenerate);
  return std::move(*f);
}

// Directory of ../shared/data (VISLANG_SHARED_DIR or <source>/../shared); empty when absent.
std::string shared_dir();

// ---- files ------------------------------------------------------------------------------------------
// The whole file as bytes ("" when it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
// Writes `bytes` as the whole file (replacing it).
inline void spit(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A fresh scratch folder <tmp>/<tag>_XXXXXX (mkdtemp: unique across processes and threads), removed
// with everything in it when the object goes.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "vislang_test") {
    std::string pattern = (std::filesystem::temp_directory_path() / (tag + "_XXXXXX")).string();
    REQUIRE_MESSAGE(::mkdtemp(pattern.data()) != nullptr, "cannot create a scratch folder ", pattern);
    dir_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  // <dir>/<name> (nothing is created).
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string operator/(const std::string& name) const { return path(name); }
  // Writes <dir>/<name> and returns its path.
  std::string write(const std::string& name, const std::string& bytes) const {
    spit(path(name), bytes);
    return path(name);
  }
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    return write(name, std::string(bytes.begin(), bytes.end()));
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace vislang::test
