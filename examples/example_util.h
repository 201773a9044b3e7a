// examples/example_util.h — the plumbing the examples share, kept here so that each example reads top to
// bottom as the model's data flow: finding the repository's files from the executable, `--key value`
// arguments, locating the CLIP tokenizer files, and the image preprocessing that matches a model.
//
// Not an example itself (CMake builds only examples/*.cpp). Nothing here is part of the library.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "image/clip_preprocess.h"
#include "models/clip/config.h"
#include "tokenizer/clip_tokenizer.h"
#include "weights/safetensors.h"

namespace example {

namespace fs = std::filesystem;

// `--key value` pairs and bare flags (`--help`), everything else positional.
struct Args {
  std::map<std::string, std::string> opts;
  std::vector<std::string> positional;
  Args(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) == 0) {
        bool has_value = i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0;
        opts[a.substr(2)] = has_value ? argv[++i] : "";
      } else {
        positional.push_back(a);
      }
    }
  }
  bool has(const std::string& k) const { return opts.count(k) != 0; }
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = opts.find(k);
    return it == opts.end() ? def : it->second;
  }
};

inline bool is_repo_root(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p / "models" / "clip" / "clip.h", ec) && fs::exists(p / "tests" / "fixtures", ec);
}

// The source tree: $VISLANG_SOURCE_DIR, else <build>/bin/../.. (the executable's grandparent, for a build
// folder directly inside the checkout), else the current directory or one of its parents. "" if none.
inline std::string repo_root() {
  if (const char* e = std::getenv("VISLANG_SOURCE_DIR"); e && *e && is_repo_root(e)) return e;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path cand = exe.parent_path().parent_path().parent_path();
    if (is_repo_root(cand)) return fs::canonical(cand, ec).string();
  }
  for (fs::path p = fs::current_path(ec); !ec && !p.empty(); p = p.parent_path()) {
    if (is_repo_root(p)) return p.string();
    if (p == p.parent_path()) break;
  }
  return "";
}

// The shared data folder (images, the BPE vocabulary): $VISLANG_SHARED_DIR/data, else <repo>/../shared/data.
inline std::string data_dir() {
  std::error_code ec;
  if (const char* e = std::getenv("VISLANG_SHARED_DIR"); e && *e && fs::is_directory(fs::path(e) / "data", ec))
    return (fs::path(e) / "data").string();
  std::string root = repo_root();
  if (!root.empty() && fs::is_directory(fs::path(root) / ".." / "shared" / "data", ec))
    return fs::canonical(fs::path(root) / ".." / "shared" / "data", ec).string();
  return "";
}

// Image files of a folder (jpg, jpeg, png, bmp, gif), sorted by name.
inline std::vector<std::string> list_images(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (e.is_regular_file() && (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".gif"))
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The CLIP tokenizer, from (in order) --vocab FILE (a bpe_simple_vocab_16e6.txt.gz), the model folder's
// vocab.json + merges.txt (Hugging Face), or <data>/clip/bpe_simple_vocab_16e6.txt.gz. `where` receives
// the file(s) used, or every place looked at when nothing is found (then the result is empty).
inline std::optional<vislang::ClipTokenizer> find_tokenizer(const Args& args, const std::string& model_path,
                                                            std::string& where) {
  std::error_code ec;
  if (args.has("vocab")) {
    where = args.get("vocab");
    return vislang::ClipTokenizer::from_bpe_gz(where);
  }
  std::vector<std::string> looked;
  if (fs::is_directory(model_path, ec)) {
    fs::path v = fs::path(model_path) / "vocab.json", m = fs::path(model_path) / "merges.txt";
    if (fs::exists(v, ec) && fs::exists(m, ec)) {
      where = v.string() + " + " + m.string();
      return vislang::ClipTokenizer::from_hf(v.string(), m.string());
    }
    looked.push_back(v.string() + " + merges.txt");
  }
  std::string d = data_dir();
  fs::path gz = fs::path(d.empty() ? "../shared/data" : d) / "clip" / "bpe_simple_vocab_16e6.txt.gz";
  if (fs::exists(gz, ec)) {
    where = gz.string();
    return vislang::ClipTokenizer::from_bpe_gz(where);
  }
  looked.push_back(gz.string());
  where.clear();
  for (const std::string& l : looked) where += "\n    " + l;
  return std::nullopt;
}

// The model's own preprocessing (size, mean, std from its config). Hugging Face folders crop like
// CLIPImageProcessor (offset d // 2), converted OpenAI/OpenCLIP files like torchvision (round(d / 2)).
inline vislang::PreprocessConfig preprocess_for(const vislang::clip::ClipConfig& c, const std::string& model_path) {
  vislang::PreprocessConfig p;
  p.size = static_cast<int>(c.preprocess.size);
  p.mean = c.preprocess.mean;
  p.std = c.preprocess.std;
  std::error_code ec;
  p.mode = fs::is_directory(model_path, ec) ? vislang::PreprocessConfig::Mode::HF : vislang::PreprocessConfig::Mode::OPENAI;
  return p;
}

// The config of a CLIP checkpoint without loading its weights: a Hugging Face folder's config.json, or
// the `vislang.config` metadata of a converted .safetensors (the two forms ClipModel::load accepts).
inline vislang::clip::ClipConfig read_clip_config(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::ifstream in(fs::path(path) / "config.json");
    VL_CHECK(in.good(), path, " has no config.json");
    nlohmann::json j;
    in >> j;
    return vislang::clip::ClipConfig::from_hf(j);
  }
  vislang::SafeTensorsFile f = vislang::SafeTensorsFile::open(path);
  auto it = f.metadata().find("vislang.config");
  VL_CHECK(it != f.metadata().end(), path, " has no vislang.config metadata (convert it with tools/convert.py)");
  return vislang::clip::ClipConfig::from_json(nlohmann::json::parse(it->second));
}

// The default CLIP model of the examples: the small random-weight Hugging Face fixture.
inline std::string fixture_model() {
  std::string root = repo_root();
  return root.empty() ? "tests/fixtures/clip/hf_vit" : root + "/tests/fixtures/clip/hf_vit";
}

}  // namespace example
