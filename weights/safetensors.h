// weights/safetensors.h — read and write .safetensors files, and the name-scoped weight loader.
//
// Where it sits: checkpoint file → SafeTensorsFile (mmap, validated header) → WeightScope (names
// joined with '.', shapes and dtypes checked) → each module's load(scope, config) in models/.
// The test fixtures written by tools/reference/*.py are read through the same path.
//
// Format (https://github.com/huggingface/safetensors): 8 bytes little-endian u64 N, then N bytes of
// UTF-8 JSON {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
// "__metadata__": {"key": "value"}}, then the data section; offsets are relative to its start.
// Validation follows the reference Rust implementation (safetensors crate, used by the python
// package): the tensors, sorted by offset, must tile the data section exactly — no holes, no
// overlaps, no trailing bytes — and each byte range must equal numel * element size. Two rules are
// stricter than the reference, which accepts such files although no official writer produces them:
// a JSON key given twice (the reference keeps the last) and a range whose offset is not a multiple
// of its element size are errors. Sub-byte dtypes (F4, F6_*) are rejected as unsupported.
// Tensors returned by get() are zero-copy views of a private copy-on-write mapping: the file is
// opened read-only and never modified, and writing into a returned tensor stays in this process
// (if the kernel refuses a writable private mapping, the mapping is read-only instead).
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace vislang {

struct TensorInfo {
  std::string dtype_str;  // as written in the file: "F32", "BF16", "BOOL", "I8", ...
  bool supported = true;  // false for spec dtypes vislang has no DType for (I8, U16, F8_E4M3, ...)
  DType dtype = DType::F32;  // BOOL is read as U8; meaningless when !supported
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range in the data section
};

class SafeTensorsFile {
 public:
  // Maps and validates the whole header; throws vislang::Error naming `path` and the problem.
  static SafeTensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  std::vector<std::string> names() const;  // sorted
  size_t size() const { return tensors_.size(); }
  const TensorInfo& info(const std::string& name) const;  // throws if missing
  // Zero-copy view into the mapping (kept alive by the tensor). Throws naming the tensor and the
  // file if it is missing or its dtype is not supported by vislang. If the data section itself is
  // misaligned in memory (a header not padded to 8 bytes, from old writers) the tensor is copied.
  Tensor get(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::string path_;
  std::shared_ptr<void> mapping_;    // munmap on last release (shared with returned tensors)
  const uint8_t* data_ = nullptr;    // start of the data section inside the mapping
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (any device/strides; written contiguous, little endian) like the python library:
// sorted by descending dtype alignment then by name, header padded with spaces to a multiple of 8,
// "__metadata__" first when non-empty. Atomic: writes path + ".tmp", fsyncs it, renames it over
// `path` (and fsyncs the directory), so an existing file is never lost or half-written on error.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// STYLE.md practice 9: name-scoped loading. scope.sub("vision_model").sub("encoder").get("x", shape)
// reads "vision_model.encoder.x", checks its shape (error: full path and both shapes), converts it to
// the wanted dtype and device, and records the name; check_all_used() then reports tensors of the
// file that no module asked for. Subscopes share the record.
//
// Training uses the same module code with the weights held in memory instead of a file:
//  * WeightScope::from_params(named) hands out exactly the given tensors (shape and dtype checked,
//    never converted or copied), so modules share them — and their autograd state — with the caller.
//  * WeightScope::with_initializer(init) creates every tensor a model asks for with init(name, shape,
//    dtype): a model built through it is randomly initialised, and params() lists its parameters.
// Both report trainable() == true, and modules then skip inference-only optimisations (prepacking).
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class WeightScope {
 public:
  explicit WeightScope(SafeTensorsFile file, Device device = Device::cpu());
  using Initializer = std::function<Tensor(const std::string& name, const Shape& shape, DType dtype)>;
  static WeightScope from_params(const NamedTensors& params, Device device = Device::cpu());
  static WeightScope with_initializer(Initializer init, Device device = Device::cpu());
  bool trainable() const { return !state_->file.has_value(); }
  // In-memory scopes: every tensor handed out by get(), in first-use order (the parameter list).
  NamedTensors params() const;
  WeightScope sub(const std::string& name) const;
  std::string path(const std::string& name) const;  // prefix + "." + name
  bool has(const std::string& name) const;
  Tensor get(const std::string& name, const Shape& expected, DType want = DType::F32) const;
  // Throws listing the tensors under this scope's prefix that get() was never called for.
  void check_all_used() const;
  std::vector<std::string> unused() const;
  const SafeTensorsFile& file() const;  // file-backed scopes only

 private:
  struct State {
    std::optional<SafeTensorsFile> file;    // file-backed scope
    std::map<std::string, Tensor> tensors;  // in-memory scope: name -> tensor
    Initializer init;                       // with_initializer: makes missing tensors
    NamedTensors created;                   // in-memory: handed-out tensors in first-use order
    Device device;
    std::set<std::string> used;
  };
  WeightScope(std::shared_ptr<State> st, std::string prefix) : state_(std::move(st)), prefix_(std::move(prefix)) {}
  std::shared_ptr<State> state_;
  std::string prefix_;
};

}  // namespace vislang
