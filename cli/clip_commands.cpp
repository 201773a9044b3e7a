// cli/clip_commands.cpp — the vision-language applications of the `vislang` binary: tokenize, embed,
// zero-shot, similarity, for CLIP and BLIP-2 retrieval models alike. (The benchmarks, `vislang bench
// clip|blip2`, are in cli/bench_clip.cpp and cli/bench_blip2.cpp.)
//
//   vislang tokenize "a photo of a cat"                        → 49406 320 1125 539 320 2368 49407
//   vislang tokenize --model M --tokens "a cat"                → M's own ids, a tab, the token strings
//   vislang embed --model M --images-dir photos/ --out e.npy   → CLIP (N, E), BLIP-2 (N, Q, E) f32
//   vislang zero-shot --model M --image cat.jpg --labels cat,dog --templates imagenet [--score itm]
//   vislang similarity --model M --image a.jpg b.jpg --text "a cat" "a dog" [--rerank 1]
//
// Each command is a thin layer over the library, through cli/clip_common.h's one loading path
// (load_vl_model: CLIP or BLIP-2 from the files): preprocess_files (image/clip_preprocess.h) →
// encode_image; tokenize (BPE or WordPiece) → encode_text; then the model's own scoring:
//   CLIP    logits = exp(logit_scale) · cos(image, text)          (ClipModel::logits_per_image)
//   BLIP-2  itc    = max over the Q query embeddings of cos(query_q, text)   (Blip2Retrieval::itc_scores,
//                    HF's logits_per_image with use_image_text_matching_head=False); probabilities =
//                    softmax(itc / T) (T: --temperature, the model's own, or 1 as in HF's example)
//           itm    = softmax(itm_head logits)[match] on [queries; text] (Blip2Retrieval::itm_logits);
//                    --score itm scores every pair, --rerank K only the ITC top K (ITM costs one
//                    Q-Former pass per pair; the image's vision features are computed once and reused).
// Option parsing, tokenizer lookup and the output formats live in cli/args.h and cli/clip_common.h.
//
// Zero-shot follows OpenAI's ImageNet notebook (Prompt_Engineering_for_ImageNet.ipynb,
// zeroshot_classifier): for each class, embed template.format(classname) for every template,
// L2-normalize each, average, renormalize; CLIP: probs = softmax(exp(logit_scale) · img · classesᵀ);
// BLIP-2: the same class embeddings give the ITC scores, and ITM averages P(match) over the templates.
// Default template: "a photo of a {}." (the single prompt of the CLIP paper's README example);
// "none" uses the bare label, "imagenet" / "cifar" the 80 / 18 templates of the notebooks.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
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
  ArgParser p("tokenize", "[--model M | --vocab PATH | --bpe PATH] [--context-length N] [--truncate] [--tokens] TEXT...",
              "Prints the token ids of each TEXT on one line, space-separated, as the text tower receives\n"
              "them but without the padding:\n"
              "  CLIP (BPE):         SOT, the BPE tokens, EOT (what clip.tokenize puts before its zeros)\n"
              "  BLIP-2 (WordPiece): [CLS], the WordPiece tokens, [SEP] (input_ids where attention_mask is 1)\n"
              "One tokenizer: --model M tokenizes exactly as M's text path does (the family and the length\n"
              "limit from M's files: CLIP's context length, BLIP-2's min(model_max_length,\n"
              "max_position_embeddings); the tokenizer as for embed: M's own files, or --bpe / --vocab for\n"
              "that family). Without --model: --vocab (WordPiece), --bpe, or the shared CLIP BPE. A text\n"
              "longer than the limit is an error (exit 1) unless --truncate is given.");
  p.positionals("TEXT...", "texts to tokenize (use -- before a text that starts with '-')");
  p.value("--texts-file", "F", "also tokenize every non-blank line of F");
  p.value("--model", "M",
          "a Hugging Face CLIP or BLIP-2 retrieval folder or a converted .safetensors: its tokenizer\n"
          "and length limit (the model is loaded on the CPU for its config and vocabulary checks)");
  p.alias("-m");
  p.value("--bpe", "PATH",
          "CLIP BPE: bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json + merges.txt\n"
          "(default: --model's own files, $VISLANG_BPE, then <shared>/data/clip/bpe_simple_vocab_16e6.txt.gz)");
  p.value("--vocab", "PATH",
          "BERT WordPiece (BLIP-2): a vocab.txt or a folder with vocab.txt (+ tokenizer_config.json);\n"
          "the limit is its model_max_length (512 without a config) unless --context-length is given");
  p.value("--context-length", "N",
          "the limit including SOT/EOT or [CLS]/[SEP] (default 77 for BPE; not with --model: its config decides)");
  p.flag("--truncate", "keep the first N-1 tokens and end with EOT / [SEP] instead of failing");
  p.flag("--tokens", "after the ids, a tab and the token strings, as HF's convert_ids_to_tokens:\n"
                     "'<|startoftext|> photo</w> ...' (BPE), '[CLS] photo ##s ...' (WordPiece)");
  return p;
}

// One text's ids (no padding) and, with --tokens, its token strings.
struct TokenizedText {
  std::vector<int64_t> ids;
  std::vector<std::string> tokens;
};

// The rows of a WordPiece batch without their padding (the positions where attention_mask is 1).
std::vector<TokenizedText> unpadded_rows(const WordPieceTokenizer& tok, const WordPieceTokenizer::Batch& b,
                                         bool with_tokens) {
  const int64_t B = b.ids.size(0), T = b.ids.size(1);
  const std::vector<int64_t> ids = b.ids.to_vector<int64_t>(), mask = b.attention_mask.to_vector<int64_t>();  // (B, T)
  std::vector<TokenizedText> rows(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < T; ++j) {
      if (mask[size_t(i * T + j)] == 0) continue;
      rows[size_t(i)].ids.push_back(ids[size_t(i * T + j)]);
      if (with_tokens) rows[size_t(i)].tokens.push_back(tok.id_to_token(ids[size_t(i * T + j)]));
    }
  return rows;
}

// WordPiece: [CLS] ... [SEP], at most `max_len` tokens, ids below vocab_size when > 0 (the model's
// rule: blip2::tokenize_texts), printed without the padding.
std::vector<TokenizedText> tokenize_wordpiece(const WordPieceTokenizer& tok, const std::vector<std::string>& texts,
                                              int64_t max_len, int64_t vocab_size, bool truncate, bool with_tokens) {
  return unpadded_rows(tok, blip2::tokenize_texts(tok, texts, max_len, vocab_size, truncate), with_tokens);
}

// CLIP BPE: SOT ... EOT, at most `ctx` tokens (tokenize_batch's rule, without the padding).
std::vector<TokenizedText> tokenize_bpe(const ClipTokenizer& tok, const std::vector<std::string>& texts, int ctx,
                                        bool truncate, bool with_tokens) {
  std::vector<TokenizedText> rows;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> ids = tok.encode(texts[i]);
    if (ids.size() + 2 > size_t(ctx) && !truncate) {
      (void)tokenize_batch(tok, {texts[i]}, ctx, false);  // throws the message naming the text and counts
    }
    ids.resize(std::min(ids.size(), size_t(ctx) - 2));
    ids.insert(ids.begin(), tok.sot_id());
    ids.push_back(tok.eot_id());
    TokenizedText t;
    t.ids.assign(ids.begin(), ids.end());
    if (with_tokens)
      for (int32_t id : ids) t.tokens.push_back(tok.id_to_token(id));
    rows.push_back(std::move(t));
  }
  return rows;
}

int tokenize_main(const Parsed& a) {
  std::vector<std::string> texts = a.positionals();
  if (a.has("--texts-file")) {
    std::vector<std::string> more = read_lines(a.get("--texts-file"), "--texts-file");
    texts.insert(texts.end(), more.begin(), more.end());
  }
  if (texts.empty()) throw UsageError("no TEXT given");
  // One tokenizer: --bpe and --vocab are two; with --model, the model decides the length and
  // load_text_tokenizer refuses the other family's option.
  if (a.has("--bpe") && a.has("--vocab"))
    throw UsageError(str("--bpe (CLIP BPE, '", a.get("--bpe"), "') and --vocab (BERT WordPiece, '", a.get("--vocab"),
                         "') are two tokenizers; give one"));
  if (a.has("--model") && a.has("--context-length"))
    throw UsageError(str("--context-length and --model: the model '", a.get("--model"),
                         "' sets the length from its config; leave --context-length out"));
  const bool truncate = a.has("--truncate"), with_tokens = a.has("--tokens");
  std::vector<TokenizedText> rows;
  if (a.has("--model")) {
    const std::string model = a.get("--model");
    // The config only (length limit, vocabulary size): the weights are not read.
    const Family family = detect_family(model);
    const TextTokenizer tok = load_text_tokenizer(a, family, model);
    if (family == Family::BLIP2) {
      const blip2::Blip2Config cfg = blip2::read_checkpoint_config(model);
      rows = tokenize_wordpiece(*tok.wordpiece, texts, blip2::max_text_length(cfg, *tok.wordpiece), cfg.qformer.vocab_size,
                                truncate, with_tokens);
    } else {
      const int ctx = static_cast<int>(clip::read_checkpoint_config(model).text.context_length);
      rows = tokenize_bpe(*tok.clip, texts, ctx, truncate, with_tokens);
    }
  } else if (a.has("--vocab")) {
    const WordPieceTokenizer tok = load_wordpiece(a, "");
    const int64_t L = a.get_int("--context-length", tok.options().model_max_length, 2, INT64_MAX);
    rows = tokenize_wordpiece(tok, texts, L, /*vocab_size=*/0, truncate, with_tokens);
  } else {
    const int ctx = static_cast<int>(a.get_int("--context-length", ClipTokenizer::kDefaultContextLength, 2, 1 << 20));
    rows = tokenize_bpe(load_tokenizer(a, ""), texts, ctx, truncate, with_tokens);
  }
  std::string out;
  for (const TokenizedText& row : rows) {
    for (size_t j = 0; j < row.ids.size(); ++j) out += (j ? " " : "") + std::to_string(row.ids[j]);
    for (size_t j = 0; j < row.tokens.size(); ++j) out += (j ? " " : "\t") + row.tokens[j];
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
              "Writes one embedding per input: JSON lines {\"input\": ..., \"embedding\": [...]} (default,\n"
              "to stdout or --out FILE), or a float32 NumPy array with --out FILE.npy, rows in input order.\n"
              "CLIP: (E) per image or text, an (N, E) .npy. BLIP-2: an image is its Q query embeddings\n"
              "(\"embedding\": Q lists of E, an (N, Q, E) .npy; 32 x 256 for blip2-itm-vit-g), a text one (E);\n"
              "all L2-normalized as HF returns them (ITC = max over the queries of query . text).\n"
              "Images that cannot be read (missing, truncated, corrupt, unsupported) are reported on stderr\n"
              "and skipped; the command then prints 'N embedded, M failed' and exits 0 when at least one\n"
              "input succeeded.");
  add_model_options(p, true);
  add_image_inputs(p, true);
  p.list("--text", "T", "texts", "inputs");
  p.value("--texts-file", "F", "one text per line (blank lines skipped)", "inputs");
  p.value("--batch", "N", "inputs per forward pass (default 32)", "run");
  p.flag("--normalize", "L2-normalize each embedding (cosine similarity = dot product; BLIP-2's always are)", "output");
  p.value("--out", "FILE", "write to FILE (atomically) instead of stdout; FILE.npy means --format npy", "output");
  p.value("--format", "F", "jsonl (default) or npy (needs --out)", "output");
  p.flag("--progress", "show the progress bar on stderr even when it is not a terminal (default:\n"
                       "shown for --images-dir when stderr is a terminal)", "output");
  p.flag("--no-progress", "never show the progress bar", "output");
  p.epilog(
      "Images are preprocessed as the model family's reference does. CLIP: OpenAI's bicubic resize of the\n"
      "shorter side and center crop (size/mean/std from the model config); Hugging Face's\n"
      "CLIPImageProcessor differs only in the crop offset when the resized long side minus the size is\n"
      "3 mod 4 (one pixel), see image/clip_preprocess.h. BLIP-2: HF's BlipImageProcessor (PIL backend):\n"
      "bicubic resize to size x size without a crop, CLIP's mean/std (preprocessor_config.json when the\n"
      "model folder has one).");
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

  TextTokenizer tok;
  if (has_texts) tok = load_text_tokenizer(a, detect_family(model), model);
  VlModel m = load_vl_model(model, rt);
  const int64_t E = m.embed_dim();
  // Vectors per input: BLIP-2 images are their Q query embeddings.
  const int64_t Q = m.is_blip2() && has_images ? m.blip2->config().num_query_tokens : 1;
  TextBatch tb;
  if (has_texts) tb = tokenize_texts(m, tok, texts, a.has("--truncate"));

  const bool stream = format == "jsonl" && out_path.empty();
  std::string jsonl;        // --out FILE.jsonl
  std::vector<float> rows;  // npy
  int64_t n_ok = 0;
  auto emit = [&](const std::vector<std::string>& inputs, const Tensor& emb_t) {
    std::vector<float> emb = emb_t.to_vector<float>();  // (n, E) or (n, Q, E)
    if (normalize) l2_normalize_rows(emb, E);
    n_ok += static_cast<int64_t>(inputs.size());
    if (format == "npy") {
      rows.insert(rows.end(), emb.begin(), emb.end());
      return;
    }
    std::string chunk;
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::string v;
      if (Q == 1) {
        v = json_floats(&emb[i * E], E);
      } else {
        for (int64_t q = 0; q < Q; ++q) v += (q ? ", " : "[") + json_floats(&emb[(i * Q + q) * E], E);
        v += "]";
      }
      chunk += "{\"input\": " + json_string(inputs[i]) + ", \"embedding\": " + v + "}\n";
    }
    if (stream) std::cout << chunk << std::flush;
    else jsonl += chunk;
  };

  const int64_t total = has_images ? static_cast<int64_t>(paths.size()) : static_cast<int64_t>(texts.size());
  const bool progress_on = !a.has("--no-progress") && (a.has("--progress") || (a.has("--images-dir") && stderr_is_tty()));
  Progress progress(total, has_images ? "images" : "texts", progress_on);
  int64_t n_failed = 0;
  if (has_images) {
    ImageEmbeddings r = encode_images(
        m, paths, batch, rt.threads, "embed", false,
        [&](const std::vector<std::string>& ok, const Tensor& emb, int64_t done) {
          if (!ok.empty()) emit(ok, emb);
          progress.update(done);
        },
        &progress);
    n_failed = static_cast<int64_t>(r.failed.size());
  } else {
    for (int64_t b = 0; b < tb.size(); b += batch) {
      const int64_t n = std::min<int64_t>(batch, tb.size() - b);
      emit(std::vector<std::string>(texts.begin() + b, texts.begin() + b + n), encode_texts(m, tb.rows(b, n), batch));
      progress.update(b + n);
    }
  }
  progress.finish();
  if (n_ok == 0) VL_FAIL("none of the ", total, " images could be embedded (", n_failed, " failed); nothing written");
  if (format == "npy") write_npy_f32(out_path, rows.data(), Q == 1 ? std::vector<int64_t>{n_ok, E} : std::vector<int64_t>{n_ok, Q, E});
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
              "average, renormalize). CLIP: probs = softmax(exp(logit_scale) * image . labels^T).\n"
              "BLIP-2: itc = the best cosine over the image's query embeddings, probs = softmax(itc / T);\n"
              "--score itm ranks by the ITM head's P(match) (averaged over the templates), --rerank K\n"
              "re-scores only the ITC top K labels with ITM (they come first, by P(match)).");
  add_model_options(p, true);
  add_blip2_score_options(p, "BLIP-2 only: ITC ranks the labels, ITM re-scores the top K of each image\n"
                             "(implies --score itm)");
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
  p.value("--format", "F", "table (default) or jsonl: {\"input\", \"labels\", \"probs\"} per image (BLIP-2:\n"
                          "also \"itc\", and \"itm\" with --score itm / --rerank, null where not computed)", "output");
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

// BLIP-2 label scores of one image: ITC for every label; ITM (averaged over the templates) for every
// label (rerank 0) or for the ITC top `rerank`. Returns the label order: ITM-scored labels by
// P(match), then the rest by ITC.
struct LabelScores {
  std::vector<float> itc, probs, itm;  // (C); itm NaN where not computed
  std::vector<int64_t> order;
};

std::vector<int64_t> argsort_desc(const float* v, int64_t n) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t x, int64_t y) { return v[x] > v[y]; });
  return idx;
}

LabelScores blip2_label_scores(const blip2::Blip2Retrieval& m, const Blip2Scoring& sc, const float* itc, const float* probs,
                               int64_t C, int64_t T, const Tensor& features, const TextBatch& prompts, int batch) {
  LabelScores r;
  r.itc.assign(itc, itc + C);
  r.probs.assign(probs, probs + C);
  r.itm.assign(size_t(C), std::numeric_limits<float>::quiet_NaN());
  std::vector<int64_t> by_itc = argsort_desc(itc, C);
  if (!sc.itm) {
    r.order = by_itc;
    return r;
  }
  const int64_t K = sc.rerank > 0 ? std::min<int64_t>(sc.rerank, C) : C;
  std::vector<int64_t> rows;  // the prompts (label c: rows c·T .. c·T + T-1) of the labels to score
  for (int64_t k = 0; k < K; ++k)
    for (int64_t t = 0; t < T; ++t) rows.push_back(by_itc[size_t(k)] * T + t);
  std::vector<float> p = itm_scores(m, features, prompts, rows, batch);
  for (int64_t k = 0; k < K; ++k) {
    double sum = 0;
    for (int64_t t = 0; t < T; ++t) sum += p[size_t(k * T + t)];
    r.itm[size_t(by_itc[size_t(k)])] = float(sum / double(T));
  }
  r.order.assign(by_itc.begin(), by_itc.begin() + K);
  std::stable_sort(r.order.begin(), r.order.end(), [&](int64_t x, int64_t y) { return r.itm[size_t(x)] > r.itm[size_t(y)]; });
  r.order.insert(r.order.end(), by_itc.begin() + K, by_itc.end());
  return r;
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
  const Family family = detect_family(model);
  Blip2Scoring sc = parse_blip2_scoring(a, family, model);
  const std::vector<std::string> templates = resolve_templates(a);

  Runtime rt = apply_runtime_options(a);
  std::vector<std::string> paths = image_inputs(a);
  TextTokenizer tok = load_text_tokenizer(a, family, model);
  VlModel m = load_vl_model(model, rt);

  // Class embeddings: (C·T) prompts → (C, T, E) → normalize → mean over T → (C, E); renormalized below.
  const int64_t C = static_cast<int64_t>(labels.size()), T = static_cast<int64_t>(templates.size());
  std::vector<std::string> prompts;
  for (const std::string& l : labels)
    for (const std::string& t : templates) prompts.push_back(format_template(t, l));
  const TextBatch tb = tokenize_texts(m, tok, prompts, a.has("--truncate"));  // all first: fails before any work
  Tensor txt = encode_texts(m, tb, batch);  // (C·T, E)
  const int64_t E = txt.size(1);
  Tensor classes = ops::mean(ops::l2_normalize(txt.view({C, T, E}), -1), 1);  // (C, E)

  ImageEmbeddings img = encode_images(m, paths, batch, rt.threads, "zero-shot", /*keep_features=*/sc.itm);
  VL_CHECK(img.emb.defined(), "none of the ", paths.size(), " images could be read");
  const size_t N = img.ok_paths.size();
  std::vector<LabelScores> scores(N);
  if (m.is_blip2()) {
    resolve_temperature(sc, *m.blip2);
    Tensor itc = m.blip2->itc_scores(img.emb, ops::l2_normalize(classes, -1));  // (N, C) cosines
    Tensor probs = ops::softmax(ops::mul(itc, 1.0 / sc.temperature), -1);
    std::vector<float> iv = itc.to_vector<float>(), pv = probs.to_vector<float>();
    for (size_t i = 0; i < N; ++i)
      scores[i] = blip2_label_scores(*m.blip2, sc, &iv[i * C], &pv[i * C], C, T,
                                     sc.itm ? img.features.narrow(0, int64_t(i), 1) : Tensor(), tb, batch);
  } else {
    // logits_per_image L2-normalizes both sides (the renormalization of the class means).
    std::vector<float> pv = ops::softmax(m.clip->logits_per_image(img.emb, classes), -1).to_vector<float>();  // (N, C)
    for (size_t i = 0; i < N; ++i) {
      scores[i].probs.assign(&pv[i * C], &pv[i * C] + C);
      scores[i].order = argsort_desc(&pv[i * C], C);
    }
  }

  std::string out;
  if (format == "table" && m.is_blip2()) {
    char t[32];
    std::snprintf(t, sizeof t, "%.4g", sc.temperature);
    out += str("BLIP-2: itc = the best query cosine; % = softmax over the labels of itc / ", t,
               !sc.itm ? std::string() : sc.rerank > 0 ? str("; ITM P(match) for the ITC top ", sc.rerank)
                                                      : std::string("; ranked by ITM P(match)"), "\n");
  }
  for (size_t i = 0; i < N; ++i) {
    const LabelScores& r = scores[i];
    if (format == "jsonl") {
      std::vector<float> p, itc, itm;
      std::string ls = "[";
      for (int k = 0; k < top_k; ++k) {
        const size_t c = size_t(r.order[size_t(k)]);
        ls += (k ? ", " : "") + json_string(labels[c]);
        p.push_back(r.probs[c]);
        if (m.is_blip2()) itc.push_back(r.itc[c]), itm.push_back(r.itm[c]);
      }
      out += "{\"input\": " + json_string(img.ok_paths[i]) + ", \"labels\": " + ls + "], \"probs\": " + json_floats(p.data(), top_k);
      if (m.is_blip2()) {
        out += ", \"itc\": " + json_floats(itc.data(), top_k);
        if (sc.itm) out += ", \"itm\": " + json_floats(itm.data(), top_k);
        char t[64];
        std::snprintf(t, sizeof t, ", \"score\": \"%s\", \"temperature\": %.9g", sc.itm ? "itm" : "itc", sc.temperature);
        out += t;
      }
      out += "}\n";
      continue;
    }
    out += (i ? "\n" : "") + img.ok_paths[i] + "\n";
    for (int k = 0; k < top_k; ++k) {
      const size_t c = size_t(r.order[size_t(k)]);
      char buf[128];
      if (!m.is_blip2()) {
        std::snprintf(buf, sizeof buf, "  %2d. %6.2f%%  ", k + 1, 100.0 * r.probs[c]);
        out += buf + labels[c] + "\n";
      } else if (sc.itm) {
        if (std::isnan(r.itm[c])) std::snprintf(buf, sizeof buf, "  %2d. P(match)      -  %6.2f%%  itc %.4f  ", k + 1, 100.0 * r.probs[c], r.itc[c]);
        else std::snprintf(buf, sizeof buf, "  %2d. P(match) %.4f  %6.2f%%  itc %.4f  ", k + 1, r.itm[c], 100.0 * r.probs[c], r.itc[c]);
        out += buf + labels[c] + "\n";
      } else {
        std::snprintf(buf, sizeof buf, "  %2d. %6.2f%%  itc %.4f  ", k + 1, 100.0 * r.probs[c], r.itc[c]);
        out += buf + labels[c] + "\n";
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
  ArgParser p("similarity", "--model M --image PATH... --text T... [--probs] [--score itc|itm] [--format table|jsonl]",
              "Prints a matrix, rows images and columns texts. CLIP: the logits\n"
              "  logits[i][t] = exp(logit_scale) * cos(image_i, text_t)   (CLIP's logits_per_image)\n"
              "BLIP-2: the ITC scores, itc[i][t] = max over the image's query embeddings q of cos(q, text_t)\n"
              "(HF's logits_per_image); --score itm: the ITM head's P(match); --rerank K: P(match) for the\n"
              "K best texts of each image by ITC ('-' for the others).\n"
              "With --probs, the softmax of each row (which text fits each image best) of the logits, or\n"
              "of itc / T for BLIP-2.");
  add_model_options(p, true);
  add_image_inputs(p, true);
  p.list("--text", "T", "texts", "inputs");
  p.value("--texts-file", "F", "one text per line (blank lines skipped)", "inputs");
  add_blip2_score_options(p, "BLIP-2 only: ITM P(match) for each image's ITC top K texts only (implies --score itm)");
  p.flag("--probs", "print softmax over the texts of each row instead of logits / ITC scores", "output");
  p.value("--format", "F", "table (default) or jsonl: {\"input\", \"texts\", \"logits\"} per image (BLIP-2:\n"
                          "\"itc\", \"probs\" with --probs, \"itm\" with --score itm / --rerank, null where not computed)",
          "output");
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
  const Family family = detect_family(model);
  Blip2Scoring sc = parse_blip2_scoring(a, family, model);

  Runtime rt = apply_runtime_options(a);
  std::vector<std::string> paths = image_inputs(a), texts = text_inputs(a);
  TextTokenizer tok = load_text_tokenizer(a, family, model);
  VlModel m = load_vl_model(model, rt);
  const TextBatch tb = tokenize_texts(m, tok, texts, a.has("--truncate"));
  Tensor txt = encode_texts(m, tb, batch);
  ImageEmbeddings img = encode_images(m, paths, batch, rt.threads, "similarity", /*keep_features=*/sc.itm);
  VL_CHECK(img.emb.defined(), "none of the ", paths.size(), " images could be read");
  const size_t N = img.ok_paths.size(), T = texts.size();

  // What the table shows (`v`), and for BLIP-2 JSON lines every score that was computed.
  std::vector<float> v, itc, itm, pr;
  std::string what;
  if (m.is_blip2()) {
    resolve_temperature(sc, *m.blip2);
    Tensor s = m.blip2->itc_scores(img.emb, txt);  // (N, T)
    itc = s.to_vector<float>();
    if (probs) pr = ops::softmax(ops::mul(s, 1.0 / sc.temperature), -1).to_vector<float>();
    if (sc.itm) {
      itm.assign(N * T, std::numeric_limits<float>::quiet_NaN());
      for (size_t i = 0; i < N; ++i) {
        std::vector<int64_t> rows = argsort_desc(&itc[i * T], int64_t(T));
        if (sc.rerank > 0 && size_t(sc.rerank) < T) rows.resize(size_t(sc.rerank));
        std::vector<float> p = itm_scores(*m.blip2, img.features.narrow(0, int64_t(i), 1), tb, rows, batch);
        for (size_t k = 0; k < rows.size(); ++k) itm[i * T + size_t(rows[k])] = p[k];
      }
    }
    char t[32];
    std::snprintf(t, sizeof t, "%.4g", sc.temperature);
    what = sc.itm ? (sc.rerank > 0 ? str("BLIP-2 ITM P(match) of each image's ITC top ", sc.rerank, " texts")
                                   : std::string("BLIP-2 ITM P(match)"))
                  : probs ? str("softmax over texts of BLIP-2 itc / ", t)
                          : std::string("BLIP-2 itc: the best cosine over the query embeddings");
    v = sc.itm ? itm : probs ? pr : itc;
  } else {
    Tensor logits = m.clip->logits_per_image(img.emb, txt);  // (N, T)
    if (probs) logits = ops::softmax(logits, -1);
    v = logits.to_vector<float>();
    char t[96];
    std::snprintf(t, sizeof t, "%s, exp(logit_scale) = %.4g", probs ? "softmax over texts of the logits" : "logits",
                  std::exp(m.clip->logit_scale()));
    what = t;
  }

  std::string out;
  if (format == "jsonl") {
    std::string ts = "[";
    for (size_t t = 0; t < T; ++t) ts += (t ? ", " : "") + json_string(texts[t]);
    ts += "]";
    for (size_t i = 0; i < N; ++i) {
      out += "{\"input\": " + json_string(img.ok_paths[i]) + ", \"texts\": " + ts;
      if (!m.is_blip2()) {
        out += str(", \"", probs ? "probs" : "logits", "\": ") + json_floats(&v[i * T], int64_t(T));
      } else {
        out += ", \"itc\": " + json_floats(&itc[i * T], int64_t(T));
        if (probs) out += ", \"probs\": " + json_floats(&pr[i * T], int64_t(T));
        if (sc.itm) out += ", \"itm\": " + json_floats(&itm[i * T], int64_t(T));
      }
      out += "}\n";
    }
    std::cout << out;
    return 0;
  }
  out += what + "\n";
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
  const bool four = probs || m.is_blip2();  // probabilities and cosines: 4 decimals; CLIP logits: 3
  char buf[96];
  for (size_t i = 0; i < N; ++i) {
    std::string name = img.ok_paths[i].size() > 40 ? "..." + img.ok_paths[i].substr(img.ok_paths[i].size() - 37) : img.ok_paths[i];
    out += name + std::string(w0 > name.size() ? w0 - name.size() : 0, ' ');
    for (size_t t = 0; t < T; ++t) {
      if (std::isnan(v[i * T + t])) std::snprintf(buf, sizeof buf, "%*s", int(widths[t]), "-");
      else std::snprintf(buf, sizeof buf, four ? "%*.4f" : "%*.3f", int(widths[t]), double(v[i * T + t]));
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
