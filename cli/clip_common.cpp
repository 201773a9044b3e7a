// cli/clip_common.cpp — shared pieces of the CLIP subcommands (see cli/clip_common.h).
#include "cli/clip_common.h"

#include <fcntl.h>
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "kernels/backend.h"
#include "kernels/ops.h"

namespace fs = std::filesystem;

namespace vislang::cli {

namespace {
bool is_dir(const std::string& p) {
  struct stat st;
  return !p.empty() && stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_file(const std::string& p) {
  struct stat st;
  return !p.empty() && stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool exists(const std::string& p) {
  struct stat st;
  return !p.empty() && stat(p.c_str(), &st) == 0;
}
constexpr const char* kBpeRel = "/data/clip/bpe_simple_vocab_16e6.txt.gz";
}  // namespace

// ---- locations ----------------------------------------------------------------------------------
std::string executable_dir() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  return p.parent_path().string();
}

std::string find_shared_dir() {
  if (const char* env = std::getenv("VISLANG_SHARED_DIR"); env && *env) return is_dir(std::string(env) + "/data") ? env : "";
  // build/bin/vislang → <repo>/build/bin → ... : the first ancestor with a sibling "shared/data/clip".
  std::string exe = executable_dir();
  if (exe.empty()) return "";
  for (fs::path d = exe; !d.empty(); d = d.parent_path()) {
    fs::path cand = d / "shared";
    if (is_dir((cand / "data" / "clip").string())) return fs::weakly_canonical(cand).string();
    if (d == d.parent_path()) break;
  }
  return "";
}

std::string shared_dir_search_description() {
  if (const char* env = std::getenv("VISLANG_SHARED_DIR"); env && *env)
    return str("$VISLANG_SHARED_DIR=", env, " (it has no data/ folder)");
  std::string exe = executable_dir();
  return str("no $VISLANG_SHARED_DIR, and no 'shared/data/clip' next to any parent of ",
             exe.empty() ? std::string("the executable") : exe);
}

// ---- common model options ----------------------------------------------------------------------
void add_model_options(ArgParser& p, bool with_tokenizer) {
  p.value("--model", "M",
          "a Hugging Face CLIP or BLIP-2 retrieval folder (config.json + model.safetensors) or a\n"
          ".safetensors converted by tools/convert.py; the family is read from the files",
          "model");
  p.alias("-m");
  p.value("--device", "DEV", "cpu (default), cuda or cuda:N", "model");
  p.value("--dtype", "T", "f32 (default), f16 or bf16: the dtype the weights are run in", "model");
  p.value("--threads", "N", "OpenMP threads (default: $OMP_NUM_THREADS or every core)", "model");
  if (with_tokenizer) {
    p.value("--bpe", "PATH",
            "tokenizer: bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt\n"
            "(default: the model folder's vocab.json + merges.txt, $VISLANG_BPE, then\n"
            "<shared>/data/clip/bpe_simple_vocab_16e6.txt.gz)",
            "model");
    p.value("--vocab", "PATH",
            "BLIP-2 tokenizer: a BERT vocab.txt or a folder with vocab.txt (+ tokenizer_config.json)\n"
            "(default: the model folder's)",
            "model");
    p.flag("--truncate", "cut texts longer than the context length (keep the first tokens, end with EOT\n"
                         "or [SEP]) instead of failing", "model");
  }
}

DType parse_dtype(const std::string& s0) {
  std::string s = s0;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s == "f32" || s == "fp32" || s == "float32" || s == "float") return DType::F32;
  if (s == "f16" || s == "fp16" || s == "float16" || s == "half") return DType::F16;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  throw UsageError(str("--dtype must be f32, f16 or bf16, got '", s0, "'"));
}

Runtime apply_runtime_options(const Parsed& a) {
  Runtime rt;
  if (a.has("--threads")) omp_set_num_threads(static_cast<int>(a.get_int("--threads", 0, 1, 4096)));
  rt.threads = omp_get_max_threads();
  try {
    rt.device = Device::parse(a.get("--device", "cpu"));
  } catch (const Error&) {
    throw UsageError(str("--device must be cpu, cuda or cuda:N, got '", a.get("--device"), "'"));
  }
  rt.dtype = parse_dtype(a.get("--dtype", "f32"));
  // Built without CUDA: the backend's "vislang was built without CUDA ..."; with CUDA but no such
  // GPU: the runtime's message naming the index and the device count.
  if (rt.device.is_cuda()) (void)cuda_allocator(rt.device.index);
  return rt;
}

std::string model_path(const Parsed& a) {
  std::string m = a.get("--model");
  if (m.empty()) throw UsageError("--model M is required");
  return m;
}

namespace {
void check_model_exists(const std::string& path) {
  if (!exists(path)) {
    bool preset = false;
    try {
      (void)clip::ClipConfig::preset(path);
      preset = true;
    } catch (const Error&) {
    }
    VL_FAIL("model '", path, "' does not exist",
            preset ? " (preset names such as ViT-B/32 mean random weights and are accepted only by 'vislang bench clip')"
                   : " (expected a Hugging Face CLIP or BLIP-2 folder with config.json + model.safetensors, or a "
                     ".safetensors converted by tools/convert.py)");
  }
}
}  // namespace

clip::ClipModel load_model(const std::string& path, const Runtime& rt) {
  check_model_exists(path);
  return clip::ClipModel::load(path, rt.device, rt.dtype);
}

namespace {
struct TokSource {
  std::string gz;                  // bpe_simple_vocab_16e6.txt.gz
  std::string vocab, merges;       // HF files
  std::string description;
};

bool hf_tokenizer_files(const std::string& dir, TokSource& s, const std::string& why) {
  if (!is_dir(dir)) return false;
  std::string v = dir + "/vocab.json", m = dir + "/merges.txt";
  if (!is_file(v) || !is_file(m)) return false;
  s.vocab = v;
  s.merges = m;
  s.description = str("vocab.json + merges.txt in ", dir, " (", why, ")");
  return true;
}

TokSource resolve_tokenizer(const Parsed& a, const std::string& model) {
  TokSource s;
  if (a.has("--bpe")) {
    std::string p = a.get("--bpe");
    if (hf_tokenizer_files(p, s, "--bpe")) return s;
    VL_CHECK(!is_dir(p), "--bpe ", p, " is a folder without vocab.json + merges.txt");
    VL_CHECK(is_file(p), "--bpe ", p, " does not exist (expected bpe_simple_vocab_16e6.txt.gz or a folder with "
             "vocab.json + merges.txt)");
    s.gz = p;
    s.description = p + " (--bpe)";
    return s;
  }
  if (!model.empty() && hf_tokenizer_files(model, s, "the model folder")) return s;
  if (const char* env = std::getenv("VISLANG_BPE"); env && *env) {
    VL_CHECK(is_file(env) || is_dir(env), "$VISLANG_BPE=", env, " does not exist");
    if (hf_tokenizer_files(env, s, "$VISLANG_BPE")) return s;
    s.gz = env;
    s.description = str(env, " ($VISLANG_BPE)");
    return s;
  }
  std::string shared = find_shared_dir();
  if (!shared.empty() && is_file(shared + kBpeRel)) {
    s.gz = shared + kBpeRel;
    s.description = s.gz + " (shared data)";
    return s;
  }
  VL_FAIL("no tokenizer found: ",
          model.empty() ? std::string() : str("the model '", model, "' has no vocab.json + merges.txt, "),
          "no --bpe, no $VISLANG_BPE, and no shared data folder with data/clip/bpe_simple_vocab_16e6.txt.gz (",
          shared_dir_search_description(),
          "). Pass --bpe PATH/bpe_simple_vocab_16e6.txt.gz (from OpenAI's CLIP or open_clip) or set VISLANG_SHARED_DIR");
}
}  // namespace

ClipTokenizer load_tokenizer(const Parsed& a, const std::string& model) {
  TokSource s = resolve_tokenizer(a, model);
  if (!s.gz.empty()) return ClipTokenizer::from_bpe_gz(s.gz, ClipFlavor::kOpenAI);
  return ClipTokenizer::from_hf(s.vocab, s.merges);
}

std::string tokenizer_source(const Parsed& a, const std::string& model) { return resolve_tokenizer(a, model).description; }

// ---- one loading path for CLIP and BLIP-2 ---------------------------------------------------------
Family detect_family(const std::string& path) {
  return blip2::is_blip2_checkpoint(path) ? Family::BLIP2 : Family::CLIP;
}

std::string VlModel::describe() const { return str(is_blip2() ? "BLIP-2" : "CLIP", " model '", path, "'"); }

PreprocessConfig VlModel::preprocess() const {
  return is_blip2() ? blip2->config().image_preprocess() : preprocess_config(clip->config());
}

int64_t VlModel::embed_dim() const {
  return is_blip2() ? blip2->config().image_text_hidden_size : clip->config().projection_dim;
}

VlModel load_vl_model(const std::string& path, const Runtime& rt) {
  VlModel m;
  m.path = path;
  m.family = detect_family(path);
  if (m.is_blip2()) m.blip2 = std::make_shared<const blip2::Blip2Retrieval>(blip2::Blip2Retrieval::load(path, rt.device, rt.dtype));
  else m.clip = std::make_shared<const clip::ClipModel>(load_model(path, rt));
  return m;
}

WordPieceTokenizer load_wordpiece(const Parsed& a, const std::string& model) {
  if (a.has("--vocab")) {
    const std::string v = a.get("--vocab");
    VL_CHECK(exists(v), "--vocab ", v, " does not exist (expected a BERT vocab.txt or a folder with vocab.txt)");
    if (is_dir(v)) {
      VL_CHECK(is_file(v + "/vocab.txt"), "--vocab ", v, " is a folder without vocab.txt");
      return WordPieceTokenizer::from_folder(v);
    }
    return WordPieceTokenizer::from_vocab(v);
  }
  if (is_dir(model) && is_file(model + "/vocab.txt")) return WordPieceTokenizer::from_folder(model);
  VL_FAIL("no tokenizer for the BLIP-2 model '", model, "': ",
          is_dir(model) ? "the folder has no vocab.txt" : "a converted .safetensors carries no tokenizer",
          ". Pass --vocab PATH: the vocab.txt (or the folder with vocab.txt + tokenizer_config.json) of the "
          "model's BERT tokenizer, e.g. the Hugging Face Salesforce/blip2-itm-vit-g folder (bert-base-uncased's "
          "vocabulary)");
}

TextTokenizer load_text_tokenizer(const Parsed& a, Family family, const std::string& model) {
  check_model_exists(model);  // the more useful message first
  TextTokenizer t;
  if (family == Family::BLIP2) {
    if (a.has("--bpe"))
      throw UsageError(str("--bpe is CLIP's tokenizer; the BLIP-2 model '", model, "' uses BERT WordPiece: give --vocab PATH"));
    t.wordpiece = std::make_shared<const WordPieceTokenizer>(load_wordpiece(a, model));
    t.source = a.has("--vocab") ? a.get("--vocab") + " (--vocab)" : model + "/vocab.txt (the model folder)";
    return t;
  }
  if (a.has("--vocab"))
    throw UsageError(str("--vocab is BLIP-2's WordPiece vocabulary; the CLIP model '", model, "' uses BPE: give --bpe PATH"));
  t.clip = std::make_shared<const ClipTokenizer>(load_tokenizer(a, model));
  t.source = tokenizer_source(a, model);
  return t;
}

PreprocessConfig preprocess_config(const clip::ClipConfig& c) {
  PreprocessConfig p;
  p.size = static_cast<int>(c.preprocess.size);
  p.mean = c.preprocess.mean;
  p.std = c.preprocess.std;
  p.mode = PreprocessConfig::Mode::OPENAI;
  return p;
}

// ---- tokenizing and encoding -------------------------------------------------------------------
std::string text_preview(const std::string& t) {
  if (t.size() <= 60) return t;
  size_t n = 57;
  while (n > 0 && (static_cast<unsigned char>(t[n]) & 0xC0) == 0x80) --n;  // keep UTF-8 whole
  return t.substr(0, n) + "...";
}

Tensor tokenize_batch(const ClipTokenizer& tok, const std::vector<std::string>& texts, int context_length,
                      bool truncate) {
  const int64_t N = static_cast<int64_t>(texts.size()), T = context_length;
  std::vector<int32_t> ids(static_cast<size_t>(N * T), 0);
  for (int64_t i = 0; i < N; ++i) {
    if (!truncate) {
      size_t n = tok.encode(texts[i]).size() + 2;
      VL_CHECK(n <= size_t(T), "text ", i + 1, " of ", N, " (", json_string(text_preview(texts[i])), ") is ", n,
               " tokens long with SOT and EOT, more than the context length ", T,
               "; shorten it or pass --truncate (keeps the first ", T - 1, " tokens and ends with EOT)");
    }
    std::vector<int32_t> row = tok.tokenize(texts[i], context_length, true);
    std::copy(row.begin(), row.end(), ids.begin() + i * T);
  }
  return Tensor::from_vector(ids, {N, T}, DType::I32);
}

TextBatch TextBatch::rows(int64_t start, int64_t n) const {
  return {ids.narrow(0, start, n).contiguous(), mask.defined() ? mask.narrow(0, start, n).contiguous() : Tensor()};
}

TextBatch TextBatch::select(const std::vector<int64_t>& r) const {
  Tensor idx = Tensor::from_vector(r, {int64_t(r.size())});
  return {ops::index_select(ids, 0, idx), mask.defined() ? ops::index_select(mask, 0, idx) : Tensor()};
}

TextBatch tokenize_texts(const VlModel& m, const TextTokenizer& tok, const std::vector<std::string>& texts,
                         bool truncate) {
  if (m.is_blip2()) {
    VL_CHECK(tok.wordpiece != nullptr, m.describe(), " needs its WordPiece tokenizer");
    WordPieceTokenizer::Batch b = m.blip2->tokenize(*tok.wordpiece, texts, truncate);
    return {b.ids, b.attention_mask};
  }
  VL_CHECK(tok.clip != nullptr, m.describe(), " needs its BPE tokenizer");
  return {tokenize_batch(*tok.clip, texts, static_cast<int>(m.clip->config().text.context_length), truncate), Tensor()};
}

Tensor encode_texts(const VlModel& m, const TextBatch& texts, int batch) {
  std::vector<Tensor> parts;
  for (int64_t b = 0; b < texts.size(); b += batch) {
    const TextBatch t = texts.rows(b, std::min<int64_t>(batch, texts.size() - b));
    parts.push_back((m.is_blip2() ? m.blip2->encode_text(t.ids, t.mask) : m.clip->encode_text(t.ids)).to(Device::cpu()));
  }
  if (parts.empty()) return Tensor::zeros({0, m.embed_dim()});
  return parts.size() == 1 ? parts[0] : ops::concat(parts, 0);
}

Tensor encode_texts(const VlModel& m, const TextTokenizer& tok, const std::vector<std::string>& texts, int batch,
                    bool truncate) {
  return encode_texts(m, tokenize_texts(m, tok, texts, truncate), batch);  // all tokenized first: fails before any work
}

ImageEmbeddings encode_images(const VlModel& m, const std::vector<std::string>& paths, int batch, int threads,
                              const std::string& command, bool keep_features, const ImageBatchFn& on_batch,
                              const Progress* progress) {
  ImageEmbeddings out;
  const PreprocessConfig pc = m.preprocess();
  std::vector<Tensor> parts, feats;
  for (size_t b = 0; b < paths.size(); b += size_t(batch)) {
    const size_t end = std::min(paths.size(), b + size_t(batch));
    std::vector<std::string> chunk(paths.begin() + b, paths.begin() + end), ok;
    std::vector<PreprocessResult> res = preprocess_files(chunk, pc, threads);
    for (const PreprocessResult& r : res) {
      if (r.ok) {
        ok.push_back(r.path);
        continue;
      }
      out.failed.emplace_back(r.path, r.error);
      if (progress && progress->enabled() && stderr_is_tty()) std::cerr << "\r\033[K";  // clear the bar's line
      if (r.error.find(r.path) != std::string::npos) std::cerr << "vislang " << command << ": skipped: " << r.error << "\n";
      else std::cerr << "vislang " << command << ": skipped " << r.path << ": " << r.error << "\n";
    }
    Tensor emb;
    if (!ok.empty()) {
      Tensor px = stack_ok(res);  // (n, 3, S, S)
      if (m.is_blip2()) {
        Tensor f = m.blip2->vision_features(px);  // (n, 1 + P, Cv)
        emb = m.blip2->image_embeds(m.blip2->query_features(f)).to(Device::cpu());  // (n, Q, E)
        if (keep_features) feats.push_back(f.to(Device::cpu()));
      } else {
        emb = m.clip->encode_image(px).to(Device::cpu());  // (n, E)
      }
    }
    if (on_batch) {
      on_batch(ok, emb, int64_t(end));  // emb undefined when no image of the batch could be read
    } else if (emb.defined()) {
      parts.push_back(emb);
    }
    out.ok_paths.insert(out.ok_paths.end(), ok.begin(), ok.end());
  }
  if (!parts.empty()) out.emb = parts.size() == 1 ? parts[0] : ops::concat(parts, 0);
  if (!feats.empty()) out.features = feats.size() == 1 ? feats[0] : ops::concat(feats, 0);
  return out;
}

// ---- BLIP-2 scoring -----------------------------------------------------------------------------
void add_blip2_score_options(ArgParser& p, const std::string& rerank_help, bool with_temperature) {
  p.value("--score", "S",
          "BLIP-2 only. itc (default): the image-text contrastive score, the best cosine over the\n"
          "32 query embeddings; itm: the image-text matching head's P(match) (a Q-Former pass per pair)",
          "scoring");
  p.value("--rerank", "K", rerank_help, "scoring");
  if (with_temperature)
    p.value("--temperature", "T",
            "BLIP-2 only: ITC probabilities are softmax(itc / T) (default: the model's learned\n"
            "temperature when the file has one (LAVIS), else 1, as HF's example softmaxes the cosines)",
            "scoring");
}

Blip2Scoring parse_blip2_scoring(const Parsed& a, Family family, const std::string& model) {
  Blip2Scoring s;
  const std::string score = a.get("--score", "itc");
  if (score != "itc" && score != "itm") throw UsageError(str("--score must be itc or itm, got '", score, "'"));
  s.itm = score == "itm" || a.has("--rerank");
  if (a.has("--rerank")) {
    if (a.has("--score") && score == "itc")
      throw UsageError("--rerank re-scores the ITC top K with ITM; it cannot go with --score itc");
    s.rerank = a.get_int("--rerank", 0, 0, 1 << 30);
    if (s.rerank == 0)
      throw UsageError("--rerank K re-scores the ITC top K with ITM, so K must be at least 1 (got 0); "
                       "for ITC alone leave --rerank out");
  }
  if (a.has("--temperature")) {
    const std::string t = a.get("--temperature");
    try {
      size_t pos = 0;
      s.temperature = std::stod(t, &pos);
      if (pos != t.size()) throw std::invalid_argument(t);
    } catch (const std::exception&) {
      throw UsageError(str("--temperature must be a number, got '", t, "'"));
    }
    if (!(s.temperature > 0) || !std::isfinite(s.temperature))
      throw UsageError(str("--temperature must be > 0, got '", t, "'"));
    s.temperature_given = true;
  }
  if (family == Family::CLIP) {
    const char* opt = score == "itm" ? "--score itm" : a.has("--rerank") ? "--rerank" : a.has("--temperature") ? "--temperature" : nullptr;
    if (opt)
      throw UsageError(str(opt, " needs a BLIP-2 retrieval model (an ITM head and ITC query embeddings); '", model,
                           "' is a CLIP model, which scores by its cosine logits only"));
  }
  return s;
}

void resolve_temperature(Blip2Scoring& s, const blip2::Blip2Retrieval& m) {
  if (!s.temperature_given) s.temperature = std::isfinite(m.temperature()) && m.temperature() > 0 ? m.temperature() : 1.0;
}

std::vector<float> itm_scores(const blip2::Blip2Retrieval& m, const Tensor& features, const TextBatch& texts,
                              const std::vector<int64_t>& rows, int batch) {
  VL_CHECK(features.dim() == 3 && features.size(0) == 1, "itm_scores: expected the features of one image, got ",
           features.describe());
  std::vector<float> out;
  out.reserve(rows.size());
  for (size_t b = 0; b < rows.size(); b += size_t(batch)) {
    std::vector<int64_t> part(rows.begin() + long(b), rows.begin() + long(std::min(rows.size(), b + size_t(batch))));
    const TextBatch t = texts.select(part);
    std::vector<float> p = m.itm_probabilities(features, t.ids, t.mask).to_vector<float>();  // (1, n)
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

// ---- inputs -------------------------------------------------------------------------------------
std::vector<std::string> list_images(const std::string& dir) {
  VL_CHECK(exists(dir), "--images-dir ", dir, " does not exist");
  VL_CHECK(is_dir(dir), "--images-dir ", dir, " is not a folder");
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::follow_directory_symlink, ec), end;
  VL_CHECK(!ec, "--images-dir ", dir, ": ", ec.message());
  for (; it != end; it.increment(ec)) {
    VL_CHECK(!ec, "--images-dir ", dir, ": ", ec.message());
    std::error_code ec2;
    if (!it->is_regular_file(ec2)) continue;
    std::string ext = it->path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    if (ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".gif") out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> read_lines(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  VL_CHECK(is_file(path) && in.good(), what, " ", path, ": cannot open (", exists(path) ? "not a readable file" : "does not exist", ")");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t\v\f") == std::string::npos) continue;
    out.push_back(line);
  }
  return out;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t e = s.find(',', start);
    if (e == std::string::npos) e = s.size();
    std::string item = s.substr(start, e - start);
    size_t a = item.find_first_not_of(" \t"), b = item.find_last_not_of(" \t");
    if (a != std::string::npos) out.push_back(item.substr(a, b - a + 1));
    start = e + 1;
  }
  return out;
}

// ---- outputs ------------------------------------------------------------------------------------
std::string json_string(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string json_floats(const float* v, int64_t n) {
  std::string out = "[";
  char buf[32];
  for (int64_t i = 0; i < n; ++i) {
    if (std::isfinite(v[i])) std::snprintf(buf, sizeof buf, i ? ", %.9g" : "%.9g", static_cast<double>(v[i]));
    else std::snprintf(buf, sizeof buf, i ? ", null" : "null");  // JSON has no NaN: "not computed"
    out += buf;
  }
  return out + "]";
}

std::string npy_header(int64_t rows, int64_t cols) { return npy_header(std::vector<int64_t>{rows, cols}); }

std::string npy_header(const std::vector<int64_t>& shape) {
  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += str(i ? ", " : "", shape[i]);
  if (shape.size() == 1) dims += ",";  // Python's one-element tuple
  std::string dict = str("{'descr': '<f4', 'fortran_order': False, 'shape': (", dims, "), }");
  // magic (6) + version (2) + header length (2) + dict + padding + '\n' ≡ 0 mod 64 (numpy's alignment).
  size_t total = 10 + dict.size() + 1;
  size_t pad = (64 - total % 64) % 64;
  dict += std::string(pad, ' ') + "\n";
  VL_CHECK(dict.size() <= 65535, "npy: header too long");
  std::string h = "\x93NUMPY";
  h += static_cast<char>(1);
  h += static_cast<char>(0);
  h += static_cast<char>(dict.size() & 0xff);
  h += static_cast<char>((dict.size() >> 8) & 0xff);
  return h + dict;
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = str(path, ".tmp.", ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  VL_CHECK(fd >= 0, "cannot write ", path, ": cannot create ", tmp, ": ", std::strerror(errno));
  size_t off = 0;
  while (off < content.size()) {
    ssize_t w = ::write(fd, content.data() + off, content.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      VL_FAIL("cannot write ", path, ": writing ", tmp, " failed: ", std::strerror(err));
    }
    off += size_t(w);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    VL_FAIL("cannot write ", path, ": ", std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    VL_FAIL("cannot write ", path, ": rename from ", tmp, " failed: ", std::strerror(err));
  }
}

void write_npy_f32(const std::string& path, const float* data, int64_t rows, int64_t cols) {
  write_npy_f32(path, data, std::vector<int64_t>{rows, cols});
}

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  static_assert(sizeof(float) == 4, "f32");
  const uint16_t probe = 1;
  VL_CHECK(*reinterpret_cast<const uint8_t*>(&probe) == 1, "npy: big-endian hosts are not supported");
  std::string content = npy_header(shape);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  content.append(reinterpret_cast<const char*>(data), size_t(n) * sizeof(float));
  write_file_atomic(path, content);
}

// ---- progress -----------------------------------------------------------------------------------
bool stderr_is_tty() { return ::isatty(STDERR_FILENO) == 1; }

Progress::Progress(int64_t total, std::string unit, bool enabled)
    : total_(total), unit_(std::move(unit)), enabled_(enabled), tty_(stderr_is_tty()),
      t0_(std::chrono::steady_clock::now()) {
  if (enabled_) update(0);
}

void Progress::update(int64_t done) {
  if (!enabled_) return;
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  double rate = s > 0 && done > 0 ? done / s : 0;
  const int W = 24;
  int filled = total_ > 0 ? static_cast<int>(W * done / total_) : W;
  std::string bar(size_t(filled), '=');
  if (filled < W) bar += '>' + std::string(size_t(W - filled - 1), ' ');
  char eta[32] = "--:--";
  if (rate > 0) {
    long r = std::lround((total_ - done) / rate);
    if (r >= 3600) std::snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", r / 3600, (r / 60) % 60, r % 60);
    else std::snprintf(eta, sizeof eta, "%ld:%02ld", r / 60, r % 60);
  }
  char line[256];
  std::snprintf(line, sizeof line, "[%s] %lld/%lld %s  %.1f %s/s  ETA %s", bar.c_str(), static_cast<long long>(done),
                static_cast<long long>(total_), unit_.c_str(), rate, unit_.c_str(), eta);
  if (tty_) std::cerr << "\r" << line << "\033[K" << std::flush;
  else std::cerr << line << "\n" << std::flush;
}

void Progress::finish() {
  if (enabled_ && tty_) std::cerr << "\n" << std::flush;
}

}  // namespace vislang::cli
