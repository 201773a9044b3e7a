// core/tensor.cpp — Tensor metadata, views and copies. Element-wise copies and fills go through the
// COPY / FILL ops so they run on whichever backend owns the memory.
#include "core/tensor.h"

#include "core/autograd.h"

#include <cmath>
#include <sstream>

#include "kernels/backend.h"

namespace vislang {

// ---- shapes ---------------------------------------------------------------------------------------
std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}
int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}
Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    VL_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", shape_str(a), " and ", shape_str(b),
             " cannot be broadcast (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}


// ---- random numbers -------------------------------------------------------------------------------
static uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
void Generator::seed_(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = splitmix64(x);
  has_spare_ = false;
}
static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
uint64_t Generator::next_u64() {
  uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
  s_[2] ^= s_[0]; s_[3] ^= s_[1]; s_[1] ^= s_[2]; s_[0] ^= s_[3];
  s_[2] ^= t; s_[3] = rotl(s_[3], 45);
  return r;
}
double Generator::uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
double Generator::normal() {
  if (has_spare_) { has_spare_ = false; return spare_; }
  double u1 = 0;
  while (u1 <= 0) u1 = uniform();
  double u2 = uniform();
  double r = std::sqrt(-2.0 * std::log(u1)), th = 6.283185307179586 * u2;
  spare_ = r * std::sin(th);
  has_spare_ = true;
  return r * std::cos(th);
}
std::vector<uint64_t> Generator::state() const {
  uint64_t spare_bits;
  std::memcpy(&spare_bits, &spare_, 8);
  return {s_[0], s_[1], s_[2], s_[3], has_spare_ ? 1ull : 0ull, spare_bits};
}
void Generator::set_state(const std::vector<uint64_t>& st) {
  VL_CHECK(st.size() == 6, "Generator::set_state: expected 6 words, got ", st.size());
  for (int i = 0; i < 4; ++i) s_[i] = st[i];
  has_spare_ = st[4] != 0;
  std::memcpy(&spare_, &st[5], 8);
}
Generator& default_generator() {
  static thread_local Generator g(0x5EEDu);
  return g;
}

// ---- inference mode -------------------------------------------------------------------------------
static thread_local bool g_inference_mode = false;
InferenceMode::InferenceMode() : prev_(g_inference_mode) { g_inference_mode = true; }
InferenceMode::~InferenceMode() { g_inference_mode = prev_; }
bool InferenceMode::enabled() { return g_inference_mode; }

// ---- constructors ---------------------------------------------------------------------------------
Tensor Tensor::empty(const Shape& shape, DType dtype, Device dev) {
  for (int64_t d : shape) VL_CHECK(d >= 0, "Tensor::empty: negative size in shape ", shape_str(shape));
  VL_CHECK(dtype < DType::COUNT, "Tensor::empty: invalid dtype");
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.storage_ = std::make_shared<Storage>(dev, static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype));
  return t;
}
Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device dev) {
  Tensor t = empty(shape, dtype, dev);
  t.fill_(value);
  return t;
}
Tensor Tensor::zeros(const Shape& shape, DType dtype, Device dev) { return full(shape, 0.0, dtype, dev); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device dev) { return full(shape, 1.0, dtype, dev); }
Tensor Tensor::arange(double start, double end, double step, DType dtype, Device dev) {
  VL_CHECK(step != 0, "arange: step must be nonzero");
  int64_t n = static_cast<int64_t>(std::ceil((end - start) / step));
  if (n < 0) n = 0;
  Tensor t = empty({n}, dtype);
  char* p = static_cast<char*>(t.data_ptr());
  for (int64_t i = 0; i < n; ++i) store_from_f64(p + i * dtype_size(dtype), dtype, start + step * i);
  return t.to(dev);
}
Tensor Tensor::rand(const Shape& shape, Generator& gen, DType dtype, Device dev, double lo, double hi) {
  Tensor t = empty(shape, dtype);
  char* p = static_cast<char*>(t.data_ptr());
  for (int64_t i = 0, n = t.numel(); i < n; ++i)
    store_from_f64(p + i * dtype_size(dtype), dtype, lo + (hi - lo) * gen.uniform());
  return t.to(dev);
}
Tensor Tensor::randn(const Shape& shape, Generator& gen, DType dtype, Device dev, double mean, double stddev) {
  Tensor t = empty(shape, dtype);
  char* p = static_cast<char*>(t.data_ptr());
  for (int64_t i = 0, n = t.numel(); i < n; ++i)
    store_from_f64(p + i * dtype_size(dtype), dtype, mean + stddev * gen.normal());
  return t.to(dev);
}
template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape, DType dtype) {
  VL_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
           " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype);
  char* p = static_cast<char*>(t.data_ptr());
  for (size_t i = 0; i < values.size(); ++i)
    store_from_f64(p + i * dtype_size(dtype), dtype, static_cast<double>(values[i]));
  return t;
}
template Tensor Tensor::from_vector<float>(const std::vector<float>&, const Shape&, DType);
template Tensor Tensor::from_vector<double>(const std::vector<double>&, const Shape&, DType);
template Tensor Tensor::from_vector<int32_t>(const std::vector<int32_t>&, const Shape&, DType);
template Tensor Tensor::from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, DType);
template Tensor Tensor::from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, DType);

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> keep_alive, Device dev) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.storage_ = std::make_shared<Storage>(dev, data, static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype),
                                         std::move(keep_alive));
  return t;
}

// ---- metadata -------------------------------------------------------------------------------------
Device Tensor::device() const { return storage_ ? storage_->device() : Device::cpu(); }
int64_t Tensor::wrap_dim(int64_t d, const char* op) const {
  int64_t n = dim();
  VL_CHECK(d >= -n && d < n, op, ": dim ", d, " out of range for ", describe());
  return d < 0 ? d + n : d;
}
int64_t Tensor::size(int64_t d) const { return shape_[wrap_dim(d, "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides_[wrap_dim(d, "stride")]; }
bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[i] != acc) return false;
    acc *= shape_[i];
  }
  return true;
}
void* Tensor::data_ptr() const {
  VL_CHECK(defined(), "data_ptr: undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_ * static_cast<int64_t>(dtype_size(dtype_));
}
std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  std::string s = str(dtype_name(dtype_), " ", shape_str(shape_), " ", device().name());
  if (!is_contiguous()) s += " strides=" + shape_str(strides_);
  return s;
}

// ---- views ----------------------------------------------------------------------------------------
Tensor Tensor::as_strided(Shape shape, Shape strides, int64_t offset) const {
  VL_CHECK(shape.size() == strides.size(), "as_strided: shape ", shape_str(shape), " and strides ",
           shape_str(strides), " differ in rank");
  VL_CHECK(defined(), "as_strided: undefined tensor");
  VL_CHECK(offset >= 0, "as_strided: negative storage offset ", offset);
  int64_t last = offset;  // highest element index the view can touch
  bool empty = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    VL_CHECK(shape[i] >= 0 && strides[i] >= 0, "as_strided: negative size or stride in shape ", shape_str(shape),
             " strides ", shape_str(strides));
    if (shape[i] == 0) empty = true;
    else last += (shape[i] - 1) * strides[i];
  }
  VL_CHECK(empty || (last + 1) * static_cast<int64_t>(dtype_size(dtype_)) <=
                        static_cast<int64_t>(storage_->nbytes()),
           "as_strided: shape ", shape_str(shape), " strides ", shape_str(strides), " offset ", offset,
           " out of bounds for a storage of ", storage_->nbytes(), " bytes (", describe(), ")");
  Tensor t = detach();
  t.shape_ = std::move(shape);
  t.strides_ = std::move(strides);
  t.offset_ = offset;
  return t;
}

static Shape infer_shape(Shape shape, int64_t numel, const char* op, const std::string& what) {
  int64_t known = 1, neg = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      VL_CHECK(neg < 0, op, ": only one -1 allowed in ", shape_str(shape));
      neg = static_cast<int64_t>(i);
    } else {
      VL_CHECK(shape[i] >= 0, op, ": invalid size in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (neg >= 0) {
    VL_CHECK(known != 0 && numel % known == 0, op, ": cannot infer -1 in ", shape_str(shape), " for ", what);
    shape[neg] = numel / known;
  }
  VL_CHECK(shape_numel(shape) == numel, op, ": shape ", shape_str(shape), " is invalid for ", what, " (",
           numel, " elements)");
  return shape;
}

// Computes strides for viewing (old shape/strides) as new shape without copying, the PyTorch
// algorithm: each chunk of old dims that is contiguous with respect to itself can be re-split.
static bool compute_view_strides(const Shape& oshape, const Shape& ostride, const Shape& nshape, Shape& nstride) {
  nstride.assign(nshape.size(), 0);
  if (shape_numel(oshape) == 0 || oshape.empty()) { nstride = contiguous_strides(nshape); return true; }
  int64_t view_d = static_cast<int64_t>(nshape.size()) - 1;
  int64_t chunk_base_stride = ostride.empty() ? 1 : ostride.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t td = static_cast<int64_t>(oshape.size()) - 1; td >= 0; --td) {
    tensor_numel *= oshape[td];
    if (td == 0 || (oshape[td - 1] != 1 && ostride[td - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || nshape[view_d] == 1)) {
        nstride[view_d] = view_numel * chunk_base_stride;
        view_numel *= nshape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (td > 0) {
        chunk_base_stride = ostride[td - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Tensor Tensor::view(Shape shape) const {
  shape = infer_shape(std::move(shape), numel(), "view", describe());
  Shape st;
  VL_CHECK(compute_view_strides(shape_, strides_, shape, st), "view: cannot view ", describe(), " as ",
           shape_str(shape), " without a copy (use reshape)");
  return autograd::record(as_strided(shape, st, offset_), "view", {*this},
                          [s = shape_](const Tensor& g) -> std::vector<Tensor> { return {g.reshape(s)}; });
}
Tensor Tensor::reshape(Shape shape) const {
  shape = infer_shape(std::move(shape), numel(), "reshape", describe());
  Shape st;
  if (compute_view_strides(shape_, strides_, shape, st))
    return autograd::record(as_strided(shape, st, offset_), "reshape", {*this},
                            [s = shape_](const Tensor& g) -> std::vector<Tensor> { return {g.reshape(s)}; });
  return contiguous().view(shape);
}
Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start, "flatten");
  end = wrap_dim(end, "flatten");
  VL_CHECK(start <= end, "flatten: start ", start, " > end ", end);
  Shape s(shape_.begin(), shape_.begin() + start);
  int64_t m = 1;
  for (int64_t i = start; i <= end; ++i) m *= shape_[i];
  s.push_back(m);
  s.insert(s.end(), shape_.begin() + end + 1, shape_.end());
  return reshape(s);
}
Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  d0 = wrap_dim(d0, "transpose");
  d1 = wrap_dim(d1, "transpose");
  Tensor t = detach();
  std::swap(t.shape_[d0], t.shape_[d1]);
  std::swap(t.strides_[d0], t.strides_[d1]);
  return autograd::record(t, "transpose", {*this},
                          [d0, d1](const Tensor& g) -> std::vector<Tensor> { return {g.transpose(d0, d1)}; });
}
Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  VL_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: ", dims.size(), " dims given for ", describe());
  std::vector<bool> seen(dims.size(), false);
  std::vector<int64_t> inverse(dims.size());
  Tensor t = detach();
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], "permute");
    VL_CHECK(!seen[d], "permute: dim ", d, " repeated");
    seen[d] = true;
    inverse[d] = static_cast<int64_t>(i);
    t.shape_[i] = shape_[d];
    t.strides_[i] = strides_[d];
  }
  return autograd::record(t, "permute", {*this},
                          [inverse](const Tensor& g) -> std::vector<Tensor> { return {g.permute(inverse)}; });
}
Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, "narrow");
  if (start < 0) start += shape_[d];
  VL_CHECK(start >= 0 && length >= 0 && start + length <= shape_[d], "narrow: range [", start, ", ",
           start + length, ") out of bounds for dim ", d, " of ", describe());
  Tensor t = detach();
  t.shape_[d] = length;
  t.offset_ += start * strides_[d];
  return autograd::record(t, "narrow", {*this}, [s = shape_, dt = dtype_, dev = device(), d, start, length](
                                                    const Tensor& g) -> std::vector<Tensor> {
    Tensor z = Tensor::zeros(s, dt, dev);
    z.narrow(d, start, length).copy_(g);
    return {z};
  });
}
Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, "slice");
  VL_CHECK(step > 0, "slice: step must be positive, got ", step);
  int64_t n = shape_[d];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::min(std::max<int64_t>(start, 0), n);
  end = std::min(std::max<int64_t>(end, start), n);
  Tensor t = detach();
  t.shape_[d] = (end - start + step - 1) / step;
  t.strides_[d] = strides_[d] * step;
  t.offset_ += start * strides_[d];
  return autograd::record(t, "slice", {*this}, [s = shape_, dt = dtype_, dev = device(), d, start, end, step](
                                                   const Tensor& g) -> std::vector<Tensor> {
    Tensor z = Tensor::zeros(s, dt, dev);
    z.slice(d, start, end, step).copy_(g);
    return {z};
  });
}
Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, "select");
  if (index < 0) index += shape_[d];
  VL_CHECK(index >= 0 && index < shape_[d], "select: index ", index, " out of range for dim ", d, " of ", describe());
  Tensor t = detach();
  t.offset_ += index * strides_[d];
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return autograd::record(t, "select", {*this}, [s = shape_, dt = dtype_, dev = device(), d, index](
                                                    const Tensor& g) -> std::vector<Tensor> {
    Tensor z = Tensor::zeros(s, dt, dev);
    z.select(d, index).copy_(g);
    return {z};
  });
}
Tensor Tensor::expand(Shape shape) const {
  VL_CHECK(shape.size() >= shape_.size(), "expand: cannot expand ", describe(), " to fewer dims ", shape_str(shape));
  size_t lead = shape.size() - shape_.size();
  Shape st(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      VL_CHECK(shape[i] >= 0, "expand: -1 not allowed in new leading dim of ", shape_str(shape));
      continue;
    }
    int64_t cur = shape_[i - lead];
    if (shape[i] == -1) shape[i] = cur;
    VL_CHECK(shape[i] >= 0, "expand: invalid size in ", shape_str(shape));
    if (cur == shape[i]) st[i] = strides_[i - lead];
    else VL_CHECK(cur == 1, "expand: ", describe(), " cannot expand to ", shape_str(shape), " (dim ", i, ")");
  }
  if (shape == shape_) return *this;
  return autograd::record(as_strided(shape, st, offset_), "expand", {*this},
                          [s = shape_](const Tensor& g) -> std::vector<Tensor> { return {autograd::sum_to(g, s)}; });
}
Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, "squeeze");
  if (shape_[d] != 1) return *this;
  Tensor t = detach();
  t.shape_.erase(t.shape_.begin() + d);
  t.strides_.erase(t.strides_.begin() + d);
  return autograd::record(t, "squeeze", {*this},
                          [d](const Tensor& g) -> std::vector<Tensor> { return {g.unsqueeze(d)}; });
}
Tensor Tensor::unsqueeze(int64_t d) const {
  int64_t n = dim() + 1;
  VL_CHECK(d >= -n && d < n, "unsqueeze: dim ", d, " out of range for ", describe());
  if (d < 0) d += n;
  Tensor t = detach();
  int64_t st = d < dim() ? strides_[d] * shape_[d] : 1;
  t.shape_.insert(t.shape_.begin() + d, 1);
  t.strides_.insert(t.strides_.begin() + d, st);
  return autograd::record(t, "unsqueeze", {*this},
                          [d](const Tensor& g) -> std::vector<Tensor> { return {g.squeeze(d)}; });
}

// ---- copies ---------------------------------------------------------------------------------------
// In-place writes are not recorded: writing into a tensor that requires grad is an error while grad
// mode is on (autograd would silently compute wrong gradients).
static void check_inplace(const Tensor& t, const char* op) {
  VL_CHECK(!(t.requires_grad() && autograd::grad_enabled()), op, ": in-place write into ", t.describe(),
           ", which requires grad (update parameters under autograd::NoGradGuard)");
}
void Tensor::copy_(const Tensor& src) const {
  VL_CHECK(defined() && src.defined(), "copy_: undefined tensor");
  check_inplace(*this, "copy_");
  VL_CHECK(src.device() == device(), "copy_: source on ", src.device().name(), " but destination on ",
           device().name(), " (use to(device) first)");
  OpCall c;
  c.op = Op::COPY;
  c.out = {*this};
  c.in = {src.expand(shape_)};
  dispatch(c);
}
void Tensor::fill_(double value) const {
  check_inplace(*this, "fill_");
  OpCall c;
  c.op = Op::FILL;
  c.out = {*this};
  c.f[0] = static_cast<float>(value);
  if (numel() > 0) dispatch(c);
}
Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}
Tensor Tensor::clone() const {
  Tensor t = empty(shape_, dtype_, device());
  if (numel() > 0) t.copy_(*this);
  return autograd::record(t, "clone", {*this}, [](const Tensor& g) -> std::vector<Tensor> { return {g}; });
}
Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor t = empty(shape_, dtype, device());
  if (numel() > 0) t.copy_(*this);
  if (!is_floating(dtype)) return t;  // integer results carry no gradient
  return autograd::record(t, "to(dtype)", {*this},
                          [dt = dtype_](const Tensor& g) -> std::vector<Tensor> { return {g.to(dt)}; });
}
Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
  Tensor src = contiguous();
  Tensor t = empty(shape_, dtype_, dev);
  size_t n = nbytes();
  if (n == 0) return t;
  if (src.device().is_cpu() && dev.is_cuda()) cuda_memcpy_h2d(t.data_ptr(), src.data_ptr(), n);
  else if (src.device().is_cuda() && dev.is_cpu()) cuda_memcpy_d2h(t.data_ptr(), src.data_ptr(), n);
  else cuda_memcpy_d2d(t.data_ptr(), src.data_ptr(), n);
  return autograd::record(t, "to(device)", {*this},
                          [d = device()](const Tensor& g) -> std::vector<Tensor> { return {g.to(d)}; });
}
Tensor Tensor::to(Device dev, DType dtype) const { return to(dev).to(dtype); }

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor h = to(Device::cpu()).contiguous();
  std::vector<T> v(static_cast<size_t>(h.numel()));
  const char* p = static_cast<const char*>(h.data_ptr());
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(load_as_f64(p + i * h.element_size(), dtype_));
  return v;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

double Tensor::item() const {
  VL_CHECK(numel() == 1, "item: expected one element, got ", describe());
  return to_vector<double>()[0];
}

}  // namespace vislang
