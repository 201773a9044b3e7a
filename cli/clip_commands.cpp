// cli/clip_commands.cpp — the CLIP applications of the `vislang` binary: tokenize, embed, zero-shot,
// similarity. (The benchmark, `vislang bench clip`, is in cli/bench_clip.cpp.)
//
//   vislang tokenize "a photo of a cat"                        → 49406 320 1125 539 320 2368 49407
//   vislang embed --model M --images-dir photos/ --out e.npy   → (N, E) f32 matrix, bad files skipped
//   vislang zero-shot --model M --image cat.jpg --labels cat,dog --templates imagenet
//   vislang similarity --model M --image a.jpg b.jpg --text "a cat" "a dog"
//
// Each command is a thin layer over the library: preprocess_files (image/clip_preprocess.h) →
// ClipModel::encode_image; ClipTokenizer::tokenize → ClipModel::encode_text; then the same
// normalization and scaling as ClipModel::logits_per_image. Option parsing, tokenizer lookup and the
// output formats live in cli/args.h and cli/clip_common.h.
//
// Zero-shot follows OpenAI's ImageNet notebook (Prompt_Engineering_for_ImageNet.ipynb,
// zeroshot_classifier): for each class, embed template.format(classname) for every template,
// L2-normalize each, average, renormalize; probs = softmax(exp(logit_scale) · img · classesᵀ).
// Default template: "a photo of a {}." (the single prompt of the CLIP paper's README example);
// "none" uses the bare label, "imagenet" / "cifar" the 80 / 18 templates of the notebooks.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "cli/clip_common.h"
#include "cli/commands.h"
#include "kernels/ops.h"

using namespace vislang;
using namespace vislang::cli;

namespace {

constexpr int kDefaultBatch = 32;
constexpr const char* kDefaultTemplate = "a photo of a {}.";

// ---- tokenize -----------------------------------------------------------------------------------
ArgParser tokenize_parser() {
  ArgParser p("tokenize", "[--context-length N] [--truncate] [--bpe PATH] TEXT...",
              "Prints the CLIP token ids of each TEXT on one line, space-separated: SOT, the BPE tokens,\n"
              "EOT, no padding (what clip.tokenize puts before its zeros). A text longer than the context\n"
              "length is an error (exit 1) unless --truncate is given.");
  p.positionals("TEXT...", "texts to tokenize (use -- before a text that starts with '-')");
  p.value("--texts-file", "F", "also tokenize every non-blank line of F");
  p.value("--context-length", "N", "context length including SOT and EOT (default 77)");
  p.flag("--truncate", "keep the first N-1 tokens and end with EOT instead of failing");
  p.value("--bpe", "PATH",
          "bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt\n"
          "(default: $VISLANG_BPE, then <shared>/data/clip/bpe_simple_vocab_16e6.txt.gz)");
  return p;
}

int tokenize_main(const Parsed& a) {
  std::vector<std::string> texts = a.positionals();
  if (a.has("--texts-file")) {
    std::vector<std::string> more = read_lines(a.get("--texts-file"), "--texts-file");
    texts.insert(texts.end(), more.begin(), more.end());
  }
  if (texts.empty()) throw UsageError("no TEXT given");
  const int ctx = static_cast<int>(a.get_int("--context-length", ClipTokenizer::kDefaultContextLength, 2, 1 << 20));
  const bool truncate = a.has("--truncate");
  ClipTokenizer tok = load_tokenizer(a, "");
  std::vector<std::vector<int32_t>> rows;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> ids = tok.encode(texts[i]);
    const size_t n = ids.size() + 2;
    if (n > size_t(ctx) && !truncate) {
      // Validate every text before printing any line: a failure leaves no partial output.
      (void)tokenize_batch(tok, {texts[i]}, ctx, false);  // throws the message naming the text and counts
    }
    const size_t keep = std::min(ids.size(), size_t(ctx) - 2);
    std::vector<int32_t> row;
    row.reserve(keep + 2);
    row.push_back(tok.sot_id());
    row.insert(row.end(), ids.begin(), ids.begin() + keep);
    row.push_back(tok.eot_id());
    rows.push_back(std::move(row));
  }
  std::string out;
  for (const auto& row : rows) {
    for (size_t j = 0; j < row.size(); ++j) out += (j ? " " : "") + std::to_string(row[j]);
    out += "\n";
  }
  std::cout << out;
  return 0;
}

// ---- shared: image and text inputs --------------------------------------------------------------
void add_image_inputs(ArgParser& p, bool with_dir) {
  p.list("--image", "PATH", "image files (jpg, png, bmp, gif)", "inputs");
  if (with_dir)
    p.value("--images-dir", "DIR", "every jpg/jpeg/png/bmp/gif under DIR, recursively, sorted by path", "inputs");
}

std::vector<std::string> image_inputs(const Parsed& a) {
  std::vector<std::string> paths = a.list("--image");
  if (a.has("--images-dir")) {
    std::string dir = a.get("--images-dir");
    std::vector<std::string> found = list_images(dir);
    VL_CHECK(!found.empty(), "--images-dir ", dir, " holds no image files (jpg, jpeg, png, bmp, gif)");
    paths.insert(paths.end(), found.begin(), found.end());
  }
  return paths;
}

std::vector<std::string> text_inputs(const Parsed& a) {
  std::vector<std::string> texts = a.list("--text");
  if (a.has("--texts-file")) {
    std::vector<std::string> more = read_lines(a.get("--texts-file"), "--texts-file");
    VL_CHECK(!more.empty(), "--texts-file ", a.get("--texts-file"), " holds no text (blank lines are skipped)");
    texts.insert(texts.end(), more.begin(), more.end());
  }
  return texts;
}

void l2_normalize_rows(std::vector<float>& v, int64_t cols) {
  for (size_t r = 0; r * cols < v.size(); ++r) {
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) s += double(v[r * cols + c]) * v[r * cols + c];
    const double inv = 1.0 / std::max(std::sqrt(s), 1e-12);  // torch F.normalize's eps
    for (int64_t c = 0; c < cols; ++c) v[r * cols + c] = static_cast<float>(v[r * cols + c] * inv);
  }
}

// ---- embed --------------------------------------------------------------------------------------
ArgParser embed_parser() {
  ArgParser p("embed",
              "--model M (--image PATH... | --images-dir DIR | --text T... | --texts-file F)\n"
              "                     [--batch N] [--normalize] [--out FILE.npy | --format jsonl] [--progress]",
              "Writes one CLIP embedding per input: JSON lines {\"input\": ..., \"embedding\": [...]} (default,\n"
              "to stdout or --out FILE), or an (N, E) float32 NumPy matrix with --out FILE.npy, rows in\n"
              "input order. Images that cannot be read (missing, truncated, corrupt, unsupported) are\n"
              "reported on stderr and skipped; the command then prints 'N embedded, M failed' and exits 0\n"
              "when at least one input succeeded.");
  add_model_options(p, true);
  add_image_inputs(p, true);
  p.list("--text", "T", "texts", "inputs");
  p.value("--texts-file", "F", "one text per line (blank lines skipped)", "inputs");
  p.value("--batch", "N", "inputs per forward pass (default 32)", "run");
  p.flag("--normalize", "L2-normalize each embedding (cosine similarity = dot product)", "output");
  p.value("--out", "FILE", "write to FILE (atomically) instead of stdout; FILE.npy means --format npy", "output");
  p.value("--format", "F", "jsonl (default) or npy (needs --out)", "output");
  p.flag("--progress", "show the progress bar on stderr even when it is not a terminal (default:\n"
                       "shown for --images-dir when stderr is a terminal)", "output");
  p.flag("--no-progress", "never show the progress bar", "output");
  p.epilog(
      "Images are preprocessed as OpenAI's CLIP does (bicubic resize of the shorter side, center crop,\n"
      "size/mean/std from the model config); Hugging Face's CLIPImageProcessor differs only in the crop\n"
      "offset when the resized long side minus the size is 3 mod 4 (one pixel), see image/clip_preprocess.h.");
  return p;
}

int embed_main(const Parsed& a) {
  const std::string model = model_path(a);
  const bool has_images = a.has("--image") || a.has("--images-dir");
  const bool has_texts = a.has("--text") || a.has("--texts-file");
  if (!has_images && !has_texts) throw UsageError("no input: give --image, --images-dir, --text or --texts-file");
  if (has_images && has_texts) throw UsageError("give images (--image/--images-dir) or texts (--text/--texts-file), not both");
  const int batch = static_cast<int>(a.get_int("--batch", kDefaultBatch, 1, 1 << 20));
  const std::string out_path = a.get("--out");
  std::string format = a.get("--format");
  if (format.empty()) format = (out_path.size() >= 4 && out_path.compare(out_path.size() - 4, 4, ".npy") == 0) ? "npy" : "jsonl";
  if (format != "jsonl" && format != "npy") throw UsageError(str("--format must be jsonl or npy, got '", format, "'"));
  if (format == "npy" && out_path.empty()) throw UsageError("--format npy writes a binary file: give --out FILE.npy");
  const bool normalize = a.has("--normalize");

  Runtime rt = apply_runtime_options(a);
  // Inputs first: a missing folder or texts file fails before the model is loaded.
  std::vector<std::string> paths, texts;
  if (has_images) paths = image_inputs(a);
  else texts = text_inputs(a);

  clip::ClipModel m = load_model(model, rt);
  const int64_t E = m.config().projection_dim;
  std::unique_ptr<ClipTokenizer> tok;
  Tensor ids;
  if (has_texts) {
    tok = std::make_unique<ClipTokenizer>(load_tokenizer(a, model));
    ids = tokenize_batch(*tok, texts, static_cast<int>(m.config().text.context_length), a.has("--truncate"));
  }

  const bool stream = format == "jsonl" && out_path.empty();
  std::string jsonl;        // --out FILE.jsonl
  std::vector<float> rows;  // npy
  int64_t n_ok = 0, n_failed = 0;
  auto emit = [&](const std::vector<std::string>& inputs, const Tensor& emb_t) {
    std::vector<float> emb = emb_t.to_vector<float>();  // (n, E)
    if (normalize) l2_normalize_rows(emb, E);
    n_ok += static_cast<int64_t>(inputs.size());
    if (format == "npy") {
      rows.insert(rows.end(), emb.begin(), emb.end());
      return;
    }
    std::string chunk;
    for (size_t i = 0; i < inputs.size(); ++i)
      chunk += "{\"input\": " + json_string(inputs[i]) + ", \"embedding\": " + json_floats(&emb[i * E], E) + "}\n";
    if (stream) std::cout << chunk << std::flush;
    else jsonl += chunk;
  };

  const int64_t total = has_images ? static_cast<int64_t>(paths.size()) : static_cast<int64_t>(texts.size());
  const bool progress_on = !a.has("--no-progress") && (a.has("--progress") || (a.has("--images-dir") && stderr_is_tty()));
  Progress progress(total, has_images ? "images" : "texts", progress_on);
  if (has_images) {
    PreprocessConfig pc = preprocess_config(m.config());
    for (size_t b = 0; b < paths.size(); b += size_t(batch)) {
      std::vector<std::string> chunk(paths.begin() + b, paths.begin() + std::min(paths.size(), b + size_t(batch)));
      std::vector<PreprocessResult> res = preprocess_files(chunk, pc, rt.threads);
      std::vector<std::string> ok;
      for (const PreprocessResult& r : res) {
        if (r.ok) {
          ok.push_back(r.path);
          continue;
        }
        ++n_failed;
        if (progress.enabled() && stderr_is_tty()) std::cerr << "\r\033[K";
        if (r.error.find(r.path) != std::string::npos) std::cerr << "vislang embed: skipped: " << r.error << "\n";
        else std::cerr << "vislang embed: skipped " << r.path << ": " << r.error << "\n";
      }
      if (!ok.empty()) emit(ok, m.encode_image(stack_ok(res)).to(Device::cpu()));
      progress.update(static_cast<int64_t>(std::min(paths.size(), b + size_t(batch))));
    }
  } else {
    for (int64_t b = 0; b < ids.size(0); b += batch) {
      int64_t n = std::min<int64_t>(batch, ids.size(0) - b);
      std::vector<std::string> chunk(texts.begin() + b, texts.begin() + b + n);
      emit(chunk, m.encode_text(ids.narrow(0, b, n).contiguous()).to(Device::cpu()));
      progress.update(b + n);
    }
  }
  progress.finish();
  if (n_ok == 0) VL_FAIL("none of the ", total, " images could be embedded (", n_failed, " failed); nothing written");
  if (format == "npy") write_npy_f32(out_path, rows.data(), n_ok, E);
  else if (!stream) write_file_atomic(out_path, jsonl);
  if (n_failed > 0 || progress.enabled())
    std::cerr << "vislang embed: " << n_ok << " embedded, " << n_failed << " failed"
              << (out_path.empty() ? "" : "; wrote " + out_path) << "\n";
  return 0;
}

// ---- zero-shot ----------------------------------------------------------------------------------
ArgParser zero_shot_parser() {
  ArgParser p("zero-shot",
              "--model M --image PATH... (--labels a,b,c | --labels-file F)\n"
              "                         [--templates FILE|imagenet|cifar|none|TEMPLATE] [--top-k 5] [--format table|jsonl]",
              "Zero-shot classification: the top-k labels of each image with their probabilities.\n"
              "Each label is embedded with every template (OpenAI's prompt ensembling: normalize each,\n"
              "average, renormalize); probs = softmax(exp(logit_scale) * image . labels^T).");
  add_model_options(p, true);
  add_image_inputs(p, true);
  p.list("--labels", "a,b,c", "class names, comma-separated (may be repeated)", "classes");
  p.value("--labels-file", "F", "one class name per line", "classes");
  p.value("--templates", "T",
          "FILE: one template per line, each containing {}; imagenet / cifar: the 80 / 18\n"
          "templates of OpenAI's notebooks (or any dataset name of zero_shot_prompts.json);\n"
          "none: the bare label; or one literal template such as \"a sketch of a {}.\"\n"
          "(default: \"a photo of a {}.\")",
          "classes");
  p.value("--prompts", "PATH", "zero_shot_prompts.json for imagenet/cifar (default: <shared>/data/clip/)", "classes");
  p.value("--top-k", "K", "labels shown per image (default 5; at most the number of labels)", "output");
  p.value("--format", "F", "table (default) or jsonl: {\"input\", \"labels\", \"probs\"} per image", "output");
  p.value("--batch", "N", "images or prompts per forward pass (default 32)", "run");
  return p;
}

// Python's str.format with one positional argument, for the templates: "{}" → label, "{{" → "{", "}}" → "}".
std::string format_template(const std::string& t, const std::string& label) {
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t.compare(i, 2, "{}") == 0) { out += label; ++i; }
    else if (t.compare(i, 2, "{{") == 0 || t.compare(i, 2, "}}") == 0) { out += t[i]; ++i; }
    else out += t[i];
  }
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

nlohmann::json load_prompts(const Parsed& a, const std::string& which) {
  std::string path = a.get("--prompts");
  if (path.empty()) {
    std::string shared = find_shared_dir();
    if (!shared.empty()) path = shared + "/data/clip/zero_shot_prompts.json";
    VL_CHECK(!shared.empty() && std::ifstream(path).good(), "--templates ", which,
             ": the templates come from zero_shot_prompts.json, which was not found (",
             shared.empty() ? shared_dir_search_description() : str(path, " does not exist"),
             "). Pass --prompts PATH/zero_shot_prompts.json, set VISLANG_SHARED_DIR, or give --templates FILE "
             "with one template per line containing {}");
  }
  std::ifstream in(path);
  VL_CHECK(in.good(), "--prompts ", path, ": cannot open");
  try {
    nlohmann::json j;
    in >> j;
    VL_CHECK(j.is_object(), "--prompts ", path, ": expected a JSON object {dataset: {classes, templates}}");
    return j;
  } catch (const nlohmann::json::exception& e) {
    VL_FAIL("--prompts ", path, " is not valid JSON: ", e.what());
  }
}

std::vector<std::string> resolve_templates(const Parsed& a) {
  const std::string t = a.get("--templates", kDefaultTemplate);
  const std::string tl = lower(t);
  if (tl == "none") return {"{}"};
  std::vector<std::string> out;
  std::ifstream f(t);
  if (tl != "imagenet" && tl != "cifar" && f.good()) {
    out = read_lines(t, "--templates");
    for (size_t i = 0; i < out.size(); ++i)
      VL_CHECK(out[i].find("{}") != std::string::npos, "--templates ", t, " line ", i + 1, " (\"", out[i],
               "\") has no {} where the label goes");
    VL_CHECK(!out.empty(), "--templates ", t, " holds no template");
    return out;
  }
  if (t.find("{}") != std::string::npos) return {t};
  nlohmann::json j = load_prompts(a, t);
  std::string key = tl == "imagenet" ? "ImageNet" : tl == "cifar" ? "CIFAR10" : "";
  std::vector<std::string> names;
  for (auto it = j.begin(); it != j.end(); ++it) {
    names.push_back(it.key());
    if (key.empty() && lower(it.key()) == tl) key = it.key();
  }
  if (key.empty() || !j.contains(key)) {
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "" : ", ") + n;
    throw UsageError(str("--templates '", t, "' is not a file, not a template containing {}, and not none, imagenet, "
                         "cifar or a dataset of the prompts file (", list, ")"));
  }
  const nlohmann::json& tj = j[key]["templates"];
  VL_CHECK(tj.is_array() && !tj.empty(), "prompts file: ", key, ".templates is not a non-empty list");
  for (const auto& s : tj) out.push_back(s.get<std::string>());
  return out;
}

int zero_shot_main(const Parsed& a) {
  const std::string model = model_path(a);
  if (!a.has("--image") && !a.has("--images-dir")) throw UsageError("no image: give --image PATH... or --images-dir DIR");
  std::vector<std::string> labels;
  for (const std::string& l : a.list("--labels")) {
    std::vector<std::string> part = split_commas(l);
    labels.insert(labels.end(), part.begin(), part.end());
  }
  if (a.has("--labels-file")) {
    std::vector<std::string> more = read_lines(a.get("--labels-file"), "--labels-file");
    labels.insert(labels.end(), more.begin(), more.end());
  }
  if (labels.empty()) throw UsageError("no labels: give --labels a,b,c or --labels-file F");
  const int top_k = static_cast<int>(std::min<long long>(a.get_int("--top-k", 5, 1, 1LL << 30), (long long)labels.size()));
  const std::string format = a.get("--format", "table");
  if (format != "table" && format != "jsonl") throw UsageError(str("--format must be table or jsonl, got '", format, "'"));
  const int batch = static_cast<int>(a.get_int("--batch", kDefaultBatch, 1, 1 << 20));
  const std::vector<std::string> templates = resolve_templates(a);

  Runtime rt = apply_runtime_options(a);
  std::vector<std::string> paths = image_inputs(a);
  clip::ClipModel m = load_model(model, rt);
  ClipTokenizer tok = load_tokenizer(a, model);

  // Class embeddings: (C·T) prompts → (C, T, E) → normalize → mean over T → (C, E).
  const int64_t C = static_cast<int64_t>(labels.size()), T = static_cast<int64_t>(templates.size());
  std::vector<std::string> prompts;
  for (const std::string& l : labels)
    for (const std::string& t : templates) prompts.push_back(format_template(t, l));
  Tensor txt = encode_texts(m, tok, prompts, batch, a.has("--truncate"));  // (C·T, E)
  const int64_t E = txt.size(1);
  Tensor classes = ops::mean(ops::l2_normalize(txt.view({C, T, E}), -1), 1);  // (C, E); renormalized below

  ImageEmbeddings img = encode_images(m, paths, batch, rt.threads, "zero-shot");
  VL_CHECK(img.emb.defined(), "none of the ", paths.size(), " images could be read");
  // logits_per_image L2-normalizes both sides (the renormalization of the class means).
  Tensor probs = ops::softmax(m.logits_per_image(img.emb, classes), -1);  // (N, C)
  ops::TopK top = ops::topk(probs, top_k, -1);
  std::vector<float> pv = top.values.to_vector<float>();
  std::vector<int64_t> pi = top.indices.to_vector<int64_t>();

  std::string out;
  for (size_t i = 0; i < img.ok_paths.size(); ++i) {
    if (format == "jsonl") {
      std::string ls = "[", ps = "[";
      for (int k = 0; k < top_k; ++k) {
        ls += (k ? ", " : "") + json_string(labels[pi[i * top_k + k]]);
        char buf[32];
        std::snprintf(buf, sizeof buf, k ? ", %.9g" : "%.9g", double(pv[i * top_k + k]));
        ps += buf;
      }
      out += "{\"input\": " + json_string(img.ok_paths[i]) + ", \"labels\": " + ls + "], \"probs\": " + ps + "]}\n";
    } else {
      out += (i ? "\n" : "") + img.ok_paths[i] + "\n";
      for (int k = 0; k < top_k; ++k) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "  %2d. %6.2f%%  ", k + 1, 100.0 * pv[i * top_k + k]);
        out += buf + labels[pi[i * top_k + k]] + "\n";
      }
    }
  }
  std::cout << out;
  if (!img.failed.empty())
    std::cerr << "vislang zero-shot: " << img.ok_paths.size() << " classified, " << img.failed.size() << " failed\n";
  return 0;
}

// ---- similarity ---------------------------------------------------------------------------------
ArgParser similarity_parser() {
  ArgParser p("similarity", "--model M --image PATH... --text T... [--probs] [--format table|jsonl]",
              "Prints the logits matrix, rows images and columns texts:\n"
              "  logits[i][t] = exp(logit_scale) * cos(image_i, text_t)   (CLIP's logits_per_image)\n"
              "With --probs, the softmax of each row (which text fits each image best).");
  add_model_options(p, true);
  add_image_inputs(p, true);
  p.list("--text", "T", "texts", "inputs");
  p.value("--texts-file", "F", "one text per line (blank lines skipped)", "inputs");
  p.flag("--probs", "print softmax over the texts of each row instead of logits", "output");
  p.value("--format", "F", "table (default) or jsonl: {\"input\", \"texts\", \"logits\"} per image", "output");
  p.value("--batch", "N", "inputs per forward pass (default 32)", "run");
  return p;
}

std::string clip_utf8(const std::string& s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t n = max_bytes - 1;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n) + "~";
}

int similarity_main(const Parsed& a) {
  const std::string model = model_path(a);
  if (!a.has("--image") && !a.has("--images-dir")) throw UsageError("no image: give --image PATH...");
  if (!a.has("--text") && !a.has("--texts-file")) throw UsageError("no text: give --text T... or --texts-file F");
  const std::string format = a.get("--format", "table");
  if (format != "table" && format != "jsonl") throw UsageError(str("--format must be table or jsonl, got '", format, "'"));
  const int batch = static_cast<int>(a.get_int("--batch", kDefaultBatch, 1, 1 << 20));
  const bool probs = a.has("--probs");

  Runtime rt = apply_runtime_options(a);
  std::vector<std::string> paths = image_inputs(a), texts = text_inputs(a);
  clip::ClipModel m = load_model(model, rt);
  ClipTokenizer tok = load_tokenizer(a, model);
  Tensor txt = encode_texts(m, tok, texts, batch, a.has("--truncate"));
  ImageEmbeddings img = encode_images(m, paths, batch, rt.threads, "similarity");
  VL_CHECK(img.emb.defined(), "none of the ", paths.size(), " images could be read");
  Tensor logits = m.logits_per_image(img.emb, txt);  // (N, T)
  if (probs) logits = ops::softmax(logits, -1);
  std::vector<float> v = logits.to_vector<float>();
  const size_t N = img.ok_paths.size(), T = texts.size();

  std::string out;
  if (format == "jsonl") {
    std::string ts = "[";
    for (size_t t = 0; t < T; ++t) ts += (t ? ", " : "") + json_string(texts[t]);
    ts += "]";
    for (size_t i = 0; i < N; ++i)
      out += "{\"input\": " + json_string(img.ok_paths[i]) + ", \"texts\": " + ts + ", \"" +
             (probs ? "probs" : "logits") + "\": " + json_floats(&v[i * T], int64_t(T)) + "}\n";
    std::cout << out;
    return 0;
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s, exp(logit_scale) = %.4g\n", probs ? "softmax over texts of the logits" : "logits",
                std::exp(m.logit_scale()));
  out += buf;
  size_t w0 = 5;
  for (const std::string& p : img.ok_paths) w0 = std::max(w0, std::min<size_t>(p.size(), 40));
  std::vector<std::string> heads;
  std::vector<size_t> widths;
  for (const std::string& t : texts) {
    heads.push_back(clip_utf8(t, 24));
    widths.push_back(std::max<size_t>(9, heads.back().size()));
  }
  out += std::string(w0, ' ');
  for (size_t t = 0; t < T; ++t) out += "  " + std::string(widths[t] - heads[t].size(), ' ') + heads[t];
  out += "\n";
  for (size_t i = 0; i < N; ++i) {
    std::string name = img.ok_paths[i].size() > 40 ? "..." + img.ok_paths[i].substr(img.ok_paths[i].size() - 37) : img.ok_paths[i];
    out += name + std::string(w0 > name.size() ? w0 - name.size() : 0, ' ');
    for (size_t t = 0; t < T; ++t) {
      std::snprintf(buf, sizeof buf, probs ? "%*.4f" : "%*.3f", int(widths[t]), double(v[i * T + t]));
      out += "  " + std::string(buf);
    }
    out += "\n";
  }
  std::cout << out;
  return 0;
}

}  // namespace

int run_tokenize(int argc, char** argv) {
  ArgParser p = tokenize_parser();
  return run_command(p, argc, argv, tokenize_main);
}
int run_embed(int argc, char** argv) {
  ArgParser p = embed_parser();
  return run_command(p, argc, argv, embed_main);
}
int run_zero_shot(int argc, char** argv) {
  ArgParser p = zero_shot_parser();
  return run_command(p, argc, argv, zero_shot_main);
}
int run_similarity(int argc, char** argv) {
  ArgParser p = similarity_parser();
  return run_command(p, argc, argv, similarity_main);
}
