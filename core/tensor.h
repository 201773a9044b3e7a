// core/tensor.h — the Tensor: dtype + shape + strides + offset into shared Storage + device.
//
// Where it sits: everything in vislang (kernels, models, weights) passes Tensors. A Tensor is a
// cheap handle (a shared_ptr to Storage plus metadata). View operations — view/reshape (when the
// strides allow), transpose/permute, narrow/slice/select, expand, squeeze/unsqueeze — return new
// handles on the same Storage and copy nothing; `contiguous()`, `to(...)` and `clone()` copy.
// Strides and offset are in elements, not bytes. A 0-d tensor (shape {}) holds one element.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"

namespace vislang {

namespace autograd { struct Meta; }

template <typename T> DType dtype_of();
template <> inline DType dtype_of<float>() { return DType::F32; }
template <> inline DType dtype_of<double>() { return DType::F64; }
template <> inline DType dtype_of<int32_t>() { return DType::I32; }
template <> inline DType dtype_of<int64_t>() { return DType::I64; }
template <> inline DType dtype_of<uint8_t>() { return DType::U8; }

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "(2, 3, 4)"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

// Deterministic, seedable random numbers (xoshiro256** seeded by splitmix64). The same seed gives
// the same tensors on every machine and every backend (values are drawn on the CPU, then copied).
class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5EEDu) { seed_(seed); }
  void seed_(uint64_t seed);
  uint64_t next_u64();
  double uniform();  // [0, 1) with 53 random bits
  double normal();   // standard normal (Box-Muller, both values used)
  // Full state, for checkpoints (resume bit-for-bit).
  std::vector<uint64_t> state() const;
  void set_state(const std::vector<uint64_t>& st);

 private:
  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0;
};
Generator& default_generator();

class Tensor {
 public:
  Tensor() = default;  // undefined tensor (an absent optional argument)

  // ---- named constructors -------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device dev = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device dev = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device dev = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device dev = Device::cpu());
  // [start, end) by step, like torch.arange.
  static Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::I64,
                       Device dev = Device::cpu());
  static Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::F32, Device dev = Device::cpu(),
                     double lo = 0.0, double hi = 1.0);
  static Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::F32, Device dev = Device::cpu(),
                      double mean = 0.0, double stddev = 1.0);
  // Copies `values` (converted to dtype; default: the dtype of T) into a new CPU tensor of `shape`.
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape, DType dtype = dtype_of<T>());
  // Wraps external memory without copying; `keep_alive` owns it (may be null if caller guarantees it).
  static Tensor from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> keep_alive = {},
                          Device dev = Device::cpu());

  // ---- metadata ------------------------------------------------------------------------------
  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const;
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t offset() const { return offset_; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  size_t element_size() const { return dtype_size(dtype_); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  void* data_ptr() const;  // address of element 0 (storage base + offset)
  template <typename T> T* data() const { return static_cast<T*>(data_ptr()); }
  // "f32 (2, 3) cpu" — used in every error message.
  std::string describe() const;
  int64_t wrap_dim(int64_t d, const char* op) const;  // checks range, maps negatives

  // ---- views (no copy) -----------------------------------------------------------------------
  Tensor view(Shape shape) const;      // one -1 allowed; throws if strides cannot express it
  Tensor reshape(Shape shape) const;   // view when possible, else contiguous copy
  Tensor flatten(int64_t start = 0, int64_t end = -1) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const { return transpose(-2, -1); }
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor narrow(int64_t d, int64_t start, int64_t length) const;
  Tensor slice(int64_t d, int64_t start, int64_t end, int64_t step = 1) const;  // python-style clamps
  Tensor select(int64_t d, int64_t index) const;  // removes dim d
  Tensor expand(Shape shape) const;  // -1 keeps a size; size-1 dims broadcast with stride 0
  Tensor squeeze(int64_t d) const;
  Tensor unsqueeze(int64_t d) const;
  // Raw view on the same storage. Not recorded by autograd: the result is detached.
  Tensor as_strided(Shape shape, Shape strides, int64_t offset) const;

  // ---- copies --------------------------------------------------------------------------------
  Tensor contiguous() const;  // returns *this when already contiguous
  Tensor clone() const;
  Tensor to(Device dev) const;
  Tensor to(DType dtype) const;
  Tensor to(Device dev, DType dtype) const;
  // Copies src (any dtype/strides, same device; broadcast allowed) into this tensor's elements.
  void copy_(const Tensor& src) const;
  void fill_(double value) const;

  // ---- autograd (core/autograd.h) -------------------------------------------------------------
  bool requires_grad() const;
  // Marks this leaf as needing a gradient (floating dtypes only). Copies of the handle made after
  // this call share the flag and the .grad.
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const;                  // accumulated by backward(); undefined before
  void set_grad(const Tensor& g) const; // e.g. set_grad(Tensor()) to clear
  bool is_leaf() const;                 // not produced by a recorded op
  void retain_grad() const;             // keep .grad on a non-leaf too
  Tensor detach() const;                // same storage and view, no autograd history
  // Backpropagates from this tensor; `grad` defaults to 1 for a one-element tensor.
  void backward() const;
  void backward(const Tensor& grad, bool retain_graph = false) const;
  const std::shared_ptr<autograd::Meta>& autograd_meta() const { return ag_; }
  void set_autograd_meta(std::shared_ptr<autograd::Meta> m) { ag_ = std::move(m); }

  // ---- host access ---------------------------------------------------------------------------
  template <typename T> std::vector<T> to_vector() const;  // any dtype/device, converted to T
  double item() const;                                     // numel must be 1

 private:
  std::shared_ptr<Storage> storage_;
  DType dtype_ = DType::F32;
  Shape shape_, strides_;
  int64_t offset_ = 0;
  std::shared_ptr<autograd::Meta> ag_;  // null: no autograd state
};

// RAII: while alive on this thread, no autograd graph is recorded (see core/autograd.h).
class InferenceMode {
 public:
  InferenceMode();
  ~InferenceMode();
  static bool enabled();

 private:
  bool prev_;
};

// Broadcast two shapes (numpy rules); throws with `op` in the message when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace vislang
