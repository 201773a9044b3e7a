// train/checkpoint.cpp — one-file training checkpoints (layout in train/checkpoint.h).
#include "train/checkpoint.h"

#include <cstdio>
#include <cstdlib>
#include <set>

#include "core/autograd.h"

namespace vislang::train {

namespace {

constexpr const char* kFormatKey = "vislang.checkpoint";
constexpr const char* kFormatVersion = "1";
constexpr const char* kStepKey = "vislang.step";
constexpr const char* kRngKey = "vislang.rng_state";

std::string rng_to_text(const std::vector<uint64_t>& words) {
  std::string s;
  char buf[24];
  for (size_t i = 0; i < words.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(words[i]));
    if (i) s += ',';
    s += buf;
  }
  return s;
}

std::vector<uint64_t> rng_from_text(const std::string& text, const std::string& path) {
  std::vector<uint64_t> words;
  if (text.empty()) return words;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string w = text.substr(pos, comma - pos);
    VL_CHECK(w.size() == 16 && w.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos, "checkpoint ",
             path, ": metadata '", kRngKey, "' is not comma-separated 16-digit hex words: '", text, "'");
    words.push_back(std::strtoull(w.c_str(), nullptr, 16));
    pos = comma + 1;
  }
  return words;
}

// Checks the format marker and parses the reserved keys; everything else is user metadata.
CheckpointState parse_state(const SafeTensorsFile& f) {
  const auto& md = f.metadata();
  auto it = md.find(kFormatKey);
  VL_CHECK(it != md.end(), f.path(), " is not a vislang training checkpoint (no '", kFormatKey,
           "' in its metadata; it holds ", f.size(), " tensors)");
  VL_CHECK(it->second == kFormatVersion, "checkpoint ", f.path(), " has format version ", it->second,
           ", this build reads version ", kFormatVersion);
  CheckpointState st;
  auto step = md.find(kStepKey);
  VL_CHECK(step != md.end(), "checkpoint ", f.path(), " has no '", kStepKey, "' metadata");
  char* end = nullptr;
  st.step = std::strtoll(step->second.c_str(), &end, 10);
  VL_CHECK(!step->second.empty() && *end == '\0' && st.step >= 0, "checkpoint ", f.path(), ": '", kStepKey,
           "' is not a step count: '", step->second, "'");
  auto rng = md.find(kRngKey);
  if (rng != md.end()) st.rng_state = rng_from_text(rng->second, f.path());
  for (const auto& [k, v] : md)
    if (k.rfind("vislang.", 0) != 0) st.metadata[k] = v;
  return st;
}

}  // namespace

void save_checkpoint(const std::string& path, const NamedTensors& model, const optim::AdamW* opt,
                     const CheckpointState& state) {
  NamedTensors tensors;
  for (const auto& [name, t] : model) tensors.emplace_back("model." + name, t.detach());
  if (opt)
    for (const auto& [name, t] : opt->state_dict()) tensors.emplace_back("optim." + name, t);
  std::set<std::string> names;
  for (const auto& nt : tensors)
    VL_CHECK(names.insert(nt.first).second, "save_checkpoint: tensor '", nt.first, "' given twice (", path, ")");
  std::map<std::string, std::string> md;
  for (const auto& [k, v] : state.metadata) {
    VL_CHECK(k.rfind("vislang.", 0) != 0, "save_checkpoint: metadata key '", k,
             "' is reserved (keys starting with 'vislang.' are written by the checkpoint itself)");
    md[k] = v;
  }
  md[kFormatKey] = kFormatVersion;
  md[kStepKey] = std::to_string(state.step);
  if (!state.rng_state.empty()) md[kRngKey] = rng_to_text(state.rng_state);
  save_safetensors(path, tensors, md);  // atomic: temp file + fsync + rename
}

CheckpointState read_checkpoint_state(const std::string& path) {
  return parse_state(SafeTensorsFile::open(path));
}

CheckpointState load_checkpoint(const std::string& path, const NamedTensors& model, optim::AdamW* opt) {
  SafeTensorsFile f = SafeTensorsFile::open(path);
  CheckpointState st = parse_state(f);

  // 1. Check every model tensor (presence, shape, dtype) before writing anything.
  std::set<std::string> expected;
  for (const auto& [name, p] : model) {
    const std::string key = "model." + name;
    expected.insert(key);
    VL_CHECK(f.has(key), "checkpoint ", path, " has no tensor '", key, "' (expected ", p.describe(), ")");
    const TensorInfo& info = f.info(key);
    VL_CHECK(info.shape == p.shape(), "checkpoint ", path, ": tensor '", key, "' has shape ",
             shape_str(info.shape), ", expected ", shape_str(p.shape()));
    VL_CHECK(info.supported && info.dtype == p.dtype(), "checkpoint ", path, ": tensor '", key, "' is ",
             info.dtype_str, ", expected ", dtype_name(p.dtype()));
  }
  NamedTensors optim_state;
  for (const std::string& n : f.names()) {
    if (n.rfind("model.", 0) == 0) {
      VL_CHECK(expected.count(n), "checkpoint ", path, " has tensor '", n, "' for no parameter of this model (",
               f.info(n).dtype_str, " ", shape_str(f.info(n).shape), ")");
    } else if (n.rfind("optim.", 0) == 0) {
      if (opt) optim_state.emplace_back(n.substr(6), f.get(n));
    } else {
      VL_FAIL("checkpoint ", path, " has unexpected tensor '", n, "' (neither 'model.' nor 'optim.')");
    }
  }
  // 2. The optimizer validates all of its state, then copies it.
  if (opt) opt->load_state_dict(optim_state, "checkpoint " + path + " (names under 'optim.')");
  // 3. Copy the weights into the existing storage (modules and optimizer hold the same handles).
  autograd::NoGradGuard no_grad;
  for (const auto& [name, p] : model) p.copy_(f.get("model." + name).to(p.device()));
  return st;
}

}  // namespace vislang::train
