// weights/safetensors.cpp — the .safetensors reader (mmap + strict header validation), the atomic
// writer and the name-scoped WeightScope. See safetensors.h for the format and the rules enforced.
#include "weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace vislang {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little endian; so is this reader");

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100000000;  // the reference implementation's limit (100 MB)

[[noreturn]] void fail(const std::string& path, const std::string& msg) {
  VL_FAIL("safetensors file '", path, "': ", msg);
}

// The safetensors dtypes with a whole-byte element size. `ours` is the vislang DType, or COUNT when
// vislang cannot represent it (the file still validates; get() refuses that tensor).
struct SpecDType {
  const char* name;
  uint64_t size;
  DType ours;
  int rank;  // the reference's alignment order (writer sorts by descending rank)
};
constexpr SpecDType kSpecDTypes[] = {
    {"BOOL", 1, DType::U8, 0},        {"U8", 1, DType::U8, 1},          {"I8", 1, DType::COUNT, 2},
    {"F8_E5M2", 1, DType::COUNT, 3},  {"F8_E4M3", 1, DType::COUNT, 4},  {"F8_E8M0", 1, DType::COUNT, 5},
    {"I16", 2, DType::COUNT, 6},      {"U16", 2, DType::COUNT, 7},      {"F16", 2, DType::F16, 8},
    {"BF16", 2, DType::BF16, 9},      {"I32", 4, DType::I32, 10},       {"U32", 4, DType::COUNT, 11},
    {"F32", 4, DType::F32, 12},       {"F64", 8, DType::F64, 13},       {"I64", 8, DType::I64, 14},
    {"U64", 8, DType::COUNT, 15},
};
const SpecDType* find_spec(const std::string& s) {
  for (const auto& d : kSpecDTypes)
    if (s == d.name) return &d;
  return nullptr;
}
// The name the writer uses for a vislang dtype (U8 is written as U8, never BOOL).
const SpecDType& spec_for(DType t) {
  for (const auto& d : kSpecDTypes)
    if (d.ours == t && std::strcmp(d.name, "BOOL") != 0) return d;
  VL_FAIL("save_safetensors: invalid dtype");
}

// Returns the byte offset of the first invalid UTF-8 sequence, or -1 when `s` is valid UTF-8
// (no overlong forms, no surrogates, nothing above U+10FFFF).
int64_t utf8_error_at(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) { ++i; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return static_cast<int64_t>(i);
    if (i + len > n) return static_cast<int64_t>(i);
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return static_cast<int64_t>(i);
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return static_cast<int64_t>(i);
    i += len;
  }
  return -1;
}

std::string range_str(uint64_t b, uint64_t e) { return str("[", b, ", ", e, ")"); }

}  // namespace

// ---- reader ---------------------------------------------------------------------------------------
SafeTensorsFile SafeTensorsFile::open(const std::string& path) {
  SafeTensorsFile f;
  f.path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, str("cannot open: ", std::strerror(errno)));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail(path, str("file is ", size, " bytes, shorter than the 8-byte header length field"));
  }
  // Private copy-on-write mapping of a read-only descriptor: the file can never be modified, and a
  // stray write into a loaded tensor changes only this process's copy of the page instead of crashing.
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  // Strict overcommit (vm.overcommit_memory=2) may refuse to reserve the copy-on-write pages.
  if (base == MAP_FAILED && errno == ENOMEM) base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);
  if (base == MAP_FAILED) fail(path, str("mmap failed: ", std::strerror(map_errno)));
  f.mapping_ = std::shared_ptr<void>(base, [size](void* p) { ::munmap(p, size); });
  const uint8_t* bytes = static_cast<const uint8_t*>(base);

  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > kMaxHeaderBytes)
    fail(path, str("header length ", n, " is absurd (more than ", kMaxHeaderBytes, " bytes, the 100 MB limit)"));
  if (n > size - 8)
    fail(path, str("header length ", n, " exceeds the ", size - 8, " bytes that follow the length field (file size ",
                   size, ")"));
  const uint8_t* hdr = bytes + 8;
  int64_t bad = utf8_error_at(hdr, n);
  if (bad >= 0) fail(path, str("header is not valid UTF-8 (byte ", bad, " of the header)"));

  // nlohmann's lexer takes a NUL byte for the end of input; JSON never contains a raw NUL.
  if (const void* nul = std::memchr(hdr, 0, n))
    fail(path, str("header is not valid JSON: NUL byte at byte ", static_cast<const uint8_t*>(nul) - hdr,
                   " of the header"));
  // Parse, rejecting duplicate keys (the reference keeps the last one silently; a checkpoint with two
  // definitions of one tensor is broken, so say so).
  json h;
  std::vector<std::set<std::string>> keys;
  std::string dup;
  auto cb = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) keys.emplace_back();
    else if (ev == json::parse_event_t::object_end) keys.pop_back();
    else if (ev == json::parse_event_t::key && !keys.empty() && dup.empty() &&
             !keys.back().insert(parsed.get<std::string>()).second)
      dup = parsed.get<std::string>();
    return true;
  };
  try {
    h = json::parse(hdr, hdr + n, cb);
  } catch (const json::exception& e) {
    fail(path, str("header is not valid JSON: ", e.what()));
  }
  if (!dup.empty()) fail(path, str("header has the key \"", dup, "\" twice"));
  if (!h.is_object()) fail(path, str("header is not a JSON object but a JSON ", h.type_name()));

  const uint64_t data_size = size - 8 - n;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const json& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) fail(path, str("\"__metadata__\" must be an object of strings, got ", e.type_name()));
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string())
          fail(path, str("\"__metadata__\" value of \"", m.key(), "\" must be a string, got ", m.value().dump()));
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    std::string what = str("tensor '", name, "'");
    if (!e.is_object()) fail(path, str(what, ": entry must be a JSON object, got ", e.dump()));
    for (const char* field : {"dtype", "shape", "data_offsets"})
      if (!e.contains(field)) fail(path, str(what, ": missing \"", field, "\""));
    TensorInfo info;
    const json& jd = e["dtype"];
    if (!jd.is_string()) fail(path, str(what, ": \"dtype\" must be a string, got ", jd.dump()));
    info.dtype_str = jd.get<std::string>();
    const SpecDType* sd = find_spec(info.dtype_str);
    if (!sd) {
      std::string known;
      for (const auto& d : kSpecDTypes) known += str(known.empty() ? "" : ", ", d.name);
      fail(path, str(what, ": unknown or unsupported dtype \"", info.dtype_str, "\" (known: ", known, ")"));
    }
    info.supported = sd->ours != DType::COUNT;
    info.dtype = info.supported ? sd->ours : DType::U8;

    const json& js = e["shape"];
    if (!js.is_array()) fail(path, str(what, ": \"shape\" must be an array of integers, got ", js.dump()));
    uint64_t numel = 1;
    bool overflow = false;
    for (const json& d : js) {
      if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0)
        fail(path, str(what, ": negative dimension ", d.get<int64_t>(), " in shape ", js.dump()));
      if (!d.is_number_unsigned() && !d.is_number_integer())
        fail(path, str(what, ": \"shape\" must be an array of integers, got ", js.dump()));
      uint64_t v = d.get<uint64_t>();
      if (v > static_cast<uint64_t>(INT64_MAX)) overflow = true;
      info.shape.push_back(static_cast<int64_t>(v));
      overflow |= __builtin_mul_overflow(numel, v, &numel);
    }
    uint64_t nbytes = 0;
    overflow |= __builtin_mul_overflow(numel, sd->size, &nbytes);
    if (overflow) fail(path, str(what, ": shape ", js.dump(), " overflows 64-bit sizes"));

    const json& jo = e["data_offsets"];
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
      fail(path, str(what, ": \"data_offsets\" must be [begin, end] with non-negative integers, got ", jo.dump()));
    info.begin = jo[0].get<uint64_t>();
    info.end = jo[1].get<uint64_t>();
    if (info.begin > info.end)
      fail(path, str(what, ": data_offsets ", jo.dump(), " have begin > end"));
    if (info.end > data_size)
      fail(path, str(what, ": data_offsets ", jo.dump(), " end beyond the data section (", data_size, " bytes)"));
    if (info.end - info.begin != nbytes)
      fail(path, str(what, ": byte length ", info.end - info.begin, " of data_offsets ", jo.dump(), " != numel ",
                     numel, " * ", sd->size, " bytes (", info.dtype_str, ", shape ", js.dump(), ")"));
    if (info.begin % sd->size != 0)
      fail(path, str(what, ": data_offsets ", jo.dump(), " not aligned to the ", sd->size, "-byte element size of ",
                     info.dtype_str));
    f.tensors_.emplace(name, std::move(info));
  }

  // Coverage: sorted by offsets, the ranges must tile [0, data_size) exactly (reference behaviour).
  std::vector<std::pair<const std::string*, const TensorInfo*>> order;
  for (const auto& kv : f.tensors_) order.push_back({&kv.first, &kv.second});
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.second->begin, a.second->end) < std::make_pair(b.second->begin, b.second->end);
  });
  uint64_t covered = 0;
  const std::pair<const std::string*, const TensorInfo*>* owner = nullptr;  // the tensor ending at `covered`
  for (const auto& p : order) {
    const TensorInfo& ti = *p.second;
    if (ti.begin < covered)
      fail(path, str("tensors '", *owner->first, "' ", range_str(owner->second->begin, owner->second->end),
                     " and '", *p.first, "' ", range_str(ti.begin, ti.end), " overlap"));
    if (ti.begin > covered)
      fail(path, str("bytes ", range_str(covered, ti.begin), " of the data section belong to no tensor (a hole "
                     "before '", *p.first, "'; holes are not allowed)"));
    if (ti.end > ti.begin) owner = &p;
    covered = ti.end;
  }
  if (covered != data_size)
    fail(path, str("bytes ", range_str(covered, data_size), " at the end of the data section belong to no tensor "
                   "(trailing bytes are not allowed)"));
  f.data_ = bytes + 8 + n;
  return f;
}

std::vector<std::string> SafeTensorsFile::names() const {
  std::vector<std::string> v;
  v.reserve(tensors_.size());
  for (const auto& kv : tensors_) v.push_back(kv.first);
  return v;
}

const TensorInfo& SafeTensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  VL_CHECK(it != tensors_.end(), "safetensors: no tensor named '", name, "' in '", path_, "' (", tensors_.size(),
           " tensors)");
  return it->second;
}

Tensor SafeTensorsFile::get(const std::string& name) const {
  const TensorInfo& ti = info(name);
  VL_CHECK(ti.supported, "safetensors: tensor '", name, "' in '", path_, "' has dtype ", ti.dtype_str,
           ", which vislang cannot represent (supported: F32 F16 BF16 F64 I32 I64 U8 BOOL)");
  const uint8_t* p = data_ + ti.begin;
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(ti.dtype) == 0) {
    Tensor t = Tensor::from_blob(const_cast<uint8_t*>(p), ti.shape, ti.dtype, mapping_);
    t.storage()->set_file_backed(true);  // pages may be handed back after repacking (Storage::release_pages)
    return t;
  }
  // The data section is misaligned in memory (header not padded to 8 bytes): copy.
  Tensor t = Tensor::empty(ti.shape, ti.dtype);
  if (ti.end > ti.begin) std::memcpy(t.data_ptr(), p, ti.end - ti.begin);
  return t;
}

// ---- writer ---------------------------------------------------------------------------------------
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  struct Item {
    std::string name;
    Tensor t;  // contiguous, CPU
    const SpecDType* sd;
  };
  std::vector<Item> items;
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    VL_CHECK(t.defined(), "save_safetensors '", path, "': tensor '", name, "' is undefined");
    VL_CHECK(name != "__metadata__", "save_safetensors '", path, "': \"__metadata__\" is reserved, not a tensor name");
    VL_CHECK(seen.insert(name).second, "save_safetensors '", path, "': tensor name '", name, "' given twice");
    items.push_back({name, t.to(Device::cpu()).contiguous(), &spec_for(t.dtype())});
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.sd->rank != b.sd->rank ? a.sd->rank > b.sd->rank : a.name < b.name;
  });

  auto quote = [&](const std::string& s, const char* what) {
    try {
      return json(s).dump();
    } catch (const json::exception&) {
      VL_FAIL("save_safetensors '", path, "': ", what, " '", s, "' is not valid UTF-8");
    }
  };
  std::string hdr = "{";
  if (!metadata.empty()) {
    hdr += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [k, v] : metadata) {
      hdr += (first ? "" : ",") + quote(k, "metadata key") + ":" + quote(v, "metadata value");
      first = false;
    }
    hdr += "}";
  }
  uint64_t offset = 0;
  for (const Item& it : items) {
    if (hdr.size() > 1) hdr += ",";
    hdr += quote(it.name, "tensor name") + ":{\"dtype\":\"" + it.sd->name + "\",\"shape\":[";
    for (size_t i = 0; i < it.t.shape().size(); ++i) hdr += (i ? "," : "") + std::to_string(it.t.shape()[i]);
    uint64_t nb = it.t.nbytes();
    hdr += str("],\"data_offsets\":[", offset, ",", offset + nb, "]}");
    offset += nb;
  }
  hdr += "}";
  hdr.append((8 - hdr.size() % 8) % 8, ' ');

  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) VL_FAIL("save_safetensors '", path, "': cannot create '", tmp, "': ", std::strerror(errno));
  auto write_all = [&](const void* p, size_t len) {
    const char* c = static_cast<const char*>(p);
    while (len > 0) {
      ssize_t w = ::write(fd, c, len);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      c += w;
      len -= static_cast<size_t>(w);
    }
    return true;
  };
  uint8_t len8[8];
  for (int i = 0; i < 8; ++i) len8[i] = static_cast<uint8_t>(static_cast<uint64_t>(hdr.size()) >> (8 * i));
  bool ok = write_all(len8, 8) && write_all(hdr.data(), hdr.size());
  for (size_t i = 0; ok && i < items.size(); ++i)
    if (items[i].t.nbytes() > 0) ok = write_all(items[i].t.data_ptr(), items[i].t.nbytes());
  ok = ok && ::fsync(fd) == 0;
  int err = errno;
  if (::close(fd) != 0 && ok) { ok = false; err = errno; }
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) { ok = false; err = errno; }
  if (!ok) {
    ::unlink(tmp.c_str());
    VL_FAIL("save_safetensors '", path, "': writing failed: ", std::strerror(err), " (any existing file is unchanged)");
  }
  // Make the rename itself durable (best effort: some file systems cannot fsync a directory).
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// ---- WeightScope ----------------------------------------------------------------------------------
WeightScope::WeightScope(SafeTensorsFile file, Device device) : state_(std::make_shared<State>()) {
  state_->file.emplace(std::move(file));
  state_->device = device;
}
WeightScope WeightScope::from_params(const NamedTensors& params, Device device) {
  auto st = std::make_shared<State>();
  st->device = device;
  for (const auto& [name, t] : params) {
    VL_CHECK(t.defined(), "WeightScope::from_params: parameter '", name, "' is undefined");
    VL_CHECK(st->tensors.emplace(name, t).second, "WeightScope::from_params: parameter '", name, "' given twice");
  }
  return WeightScope(st, "");
}
WeightScope WeightScope::with_initializer(Initializer init, Device device) {
  VL_CHECK(init, "WeightScope::with_initializer: no initializer");
  auto st = std::make_shared<State>();
  st->device = device;
  st->init = std::move(init);
  return WeightScope(st, "");
}
NamedTensors WeightScope::params() const {
  VL_CHECK(trainable(), "WeightScope::params: only in-memory scopes list their parameters");
  return state_->created;
}
const SafeTensorsFile& WeightScope::file() const {
  VL_CHECK(state_->file, "WeightScope::file: this scope holds tensors in memory, not a file");
  return *state_->file;
}

std::string WeightScope::path(const std::string& name) const {
  return prefix_.empty() ? name : prefix_ + "." + name;
}
WeightScope WeightScope::sub(const std::string& name) const {
  VL_CHECK(!name.empty(), "WeightScope::sub: empty name under '", prefix_, "'");
  return WeightScope(state_, path(name));
}
bool WeightScope::has(const std::string& name) const {
  return state_->file ? state_->file->has(path(name)) : state_->tensors.count(path(name)) != 0;
}

Tensor WeightScope::get(const std::string& name, const Shape& expected, DType want) const {
  const std::string full = path(name);
  if (!state_->file) {  // in memory: hand out the tensor itself
    auto it = state_->tensors.find(full);
    if (it == state_->tensors.end()) {
      VL_CHECK(state_->init, "parameter '", full, "' is missing (the model expects shape ", shape_str(expected), ")");
      Tensor t = state_->init(full, expected, want);
      it = state_->tensors.emplace(full, t).first;
    }
    const Tensor& t = it->second;
    VL_CHECK(t.shape() == expected, "parameter '", full, "' has shape ", shape_str(t.shape()),
             " but the model expects ", shape_str(expected));
    VL_CHECK(t.dtype() == want && t.device() == state_->device, "parameter '", full, "' is ", t.describe(),
             " but the model wants ", dtype_name(want), " on ", state_->device.name(),
             " (in-memory parameters are never converted: convert them before building the model)");
    if (state_->used.insert(full).second) state_->created.emplace_back(full, t);
    return t;
  }
  const SafeTensorsFile& f = *state_->file;
  VL_CHECK(f.has(full), "weight '", full, "' is missing from '", f.path(), "' (the model expects shape ",
           shape_str(expected), ")");
  const TensorInfo& ti = f.info(full);
  VL_CHECK(ti.shape == expected, "weight '", full, "' in '", f.path(), "' has shape ", shape_str(ti.shape),
           " but the model expects ", shape_str(expected));
  Tensor t = f.get(full);
  // A converted or moved copy is all the model keeps: the mapped file pages it was read from go back
  // to the OS (Storage::release_pages), so a float32 checkpoint loaded as bf16 is not resident twice.
  auto replace = [](Tensor& src, Tensor copy) {
    src.storage()->release_pages(src.data_ptr(), src.nbytes());
    src = std::move(copy);
  };
  if (t.dtype() != want) replace(t, t.to(want));
  if (t.device() != state_->device) replace(t, t.to(state_->device));
  state_->used.insert(full);
  return t;
}

std::vector<std::string> WeightScope::unused() const {
  std::vector<std::string> out;
  const std::string pre = prefix_.empty() ? "" : prefix_ + ".";
  std::vector<std::string> names;
  if (state_->file) names = state_->file->names();
  else
    for (const auto& kv : state_->tensors) names.push_back(kv.first);
  for (const std::string& n : names)
    if (n.compare(0, pre.size(), pre) == 0 && !state_->used.count(n)) out.push_back(n);
  return out;
}

void WeightScope::check_all_used() const {
  std::vector<std::string> u = unused();
  if (u.empty()) return;
  std::string list;
  for (size_t i = 0; i < u.size() && i < 20; ++i) list += (i ? ", " : "") + u[i];
  if (u.size() > 20) list += str(", ... (", u.size() - 20, " more)");
  VL_FAIL(u.size(), " unexpected tensor", u.size() == 1 ? "" : "s", " in '",
          state_->file ? state_->file->path() : std::string("in-memory parameters"), "'",
          prefix_.empty() ? std::string() : " under '" + prefix_ + "'", " never loaded by the model: ", list);
}

}  // namespace vislang
