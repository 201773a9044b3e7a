// tests/test_blip2_cli.cpp — BLIP-2 retrieval models through the `vislang` binary and the search
// engine (suite "blip2_cli"): what the commands print must equal the library calls in-process and the
// Hugging Face reference.
//
//   embed       image (Q, E) / text (E) embeddings == Blip2Retrieval in-process (<= 1e-6) and HF's
//               image_embeds / text_embeds (<= 1e-5); the .npy is (N, Q, E)
//   similarity  itc == HF's logits_per_image (ITC), itm == softmax(ITM logits)[match] (<= 1e-5);
//               --probs == softmax(itc / T); --rerank K: ITM exactly on each image's ITC top K
//   zero-shot   itc and probs per label == HF; --score itm == HF's ITM; --rerank K; prompt ensembling
//               == the in-process computation; a LAVIS-converted file + --vocab gives the same ITC, and
//               its learned temperature is the default T
//   search      index build with a BLIP-2 folder; text search ranks every image exactly by the
//               in-process ITC (max over queries), --score itm re-ranks by in-process ITM; a CLIP model
//               on a BLIP-2 DB (and the reverse) is refused; IndexDb's multi-vector max-over-queries
//               search == brute force (flat), before and after reopening and removals
//   serve       /api/search?rerank=N / score=itm: the same order, ITC and P(match) as `vislang search`;
//               re-ranked by P(match); each bad score / rerank / k gets 400 naming the field; a file that
//               left its folder (symlink out) is not re-scored by the server
//   errors      --score itm / --rerank on a CLIP model, --rerank 0, a converted file without --vocab,
//               --bpe on a BLIP-2 model: non-zero exit naming the problem
// Fixtures (tools/reference/make_blip2_fixtures.py): tests/fixtures/blip2/hf (tiny random model with a
// WordPiece vocabulary and preprocessor_config.json), cli_reference.safetensors (HF outputs for the
// committed images tests/fixtures/image/inputs/{odd_223x225_rgb.png, odd_230x700_rgb.png, bmp_rgb.bmp}
// through BlipImageProcessorPil). Nothing here needs ../shared.
// The binary runs through tests/test_process.h (<build>/bin/vislang).
#include <doctest/doctest.h>

#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "image/clip_preprocess.h"
#include "kernels/ops.h"
#include "models/blip2/blip2.h"
#include "search/embedder.h"
#include "search/engine.h"
#include "search/index_db.h"
#include "search/server.h"
#include "tests/test_process.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

using namespace vislang;
using namespace vislang::test;  // contains, TempDir, run_vislang, ... (tests/test_util.h, test_process.h)
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kRegen = "re-run: python3 tools/reference/make_blip2_fixtures.py";
constexpr double kHfTol = 1e-5;   // CLI vs transformers (float32 both; different summation order)
constexpr double kLibTol = 1e-6;  // CLI vs the same library calls in-process (printed with %.9g)

std::string src(const std::string& rel) { return std::string(VISLANG_SOURCE_DIR) + "/" + rel; }
std::string hf_model() { return src("tests/fixtures/blip2/hf"); }
std::string lavis_model() { return src("tests/fixtures/blip2/lavis.safetensors"); }
// A CLIP model that carries its own tokenizer (vocab.json + merges.txt), so these cases need no ../shared.
std::string clip_model() { return src("weights/toy_clip"); }

const SafeTensorsFile& reference() {
  static SafeTensorsFile f = test::open_versioned_fixture("blip2/cli_reference.safetensors", "1", kRegen);
  return f;
}
std::vector<std::string> meta_list(const char* key) {
  return json::parse(reference().metadata().at(key)).get<std::vector<std::string>>();
}
std::vector<std::string> images() {
  std::vector<std::string> out;
  for (const std::string& n : meta_list("images")) out.push_back(src("tests/fixtures/image/inputs/" + n));
  return out;
}

std::vector<float> floats(const json& j) {
  std::vector<float> v;
  for (const json& x : j) v.push_back(x.is_null() ? std::nanf("") : x.get<float>());
  return v;
}

// max |a - b| over equal-length vectors; NaN in exactly one of them counts as infinite.
double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) {
      if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
      continue;
    }
    d = std::max(d, std::fabs(double(a[i]) - b[i]));
  }
  return d;
}

// Row `r` of a 2-D fixture tensor.
std::vector<float> row(const std::string& name, int64_t r) {
  Tensor t = reference().get(name);
  return t.narrow(0, r, 1).contiguous().to_vector<float>();
}

std::vector<float> softmax(const std::vector<float>& x, double t) {
  double m = *std::max_element(x.begin(), x.end()), z = 0;
  std::vector<float> p(x.size());
  for (size_t i = 0; i < x.size(); ++i) z += std::exp((x[i] - m) / t);
  for (size_t i = 0; i < x.size(); ++i) p[i] = float(std::exp((x[i] - m) / t) / z);
  return p;
}

// The in-process computations the CLI must reproduce.
struct Library {
  blip2::Blip2Retrieval m = blip2::Blip2Retrieval::load(hf_model());
  WordPieceTokenizer tok = WordPieceTokenizer::from_folder(hf_model());
  Tensor pixels(const std::vector<std::string>& paths) const {
    std::vector<Tensor> px;
    for (const std::string& p : paths) px.push_back(preprocess(load_image(p), m.config().image_preprocess()));
    return ops::stack(px, 0);  // (N, 3, S, S)
  }
  Tensor text_embeds(const std::vector<std::string>& texts) const {
    WordPieceTokenizer::Batch b = m.tokenize(tok, texts, false);
    return m.encode_text(b.ids, b.attention_mask);  // (T, E)
  }
  Tensor itm(const std::vector<std::string>& paths, const std::vector<std::string>& texts) const {
    WordPieceTokenizer::Batch b = m.tokenize(tok, texts, false);
    return m.itm_probabilities(m.vision_features(pixels(paths)), b.ids, b.attention_mask);  // (N, T)
  }
};
const Library& lib() {
  static Library l;
  return l;
}

// `vislang index build` with the fixture model over a folder of 7 committed images (copied to s/images).
struct Blip2Db {
  std::string dir, db;
  std::vector<std::string> paths;  // canonical, in the order of the names below
};
Blip2Db build_blip2_db(const TempDir& s) {
  Blip2Db out{s / "images", s / "db", {}};
  fs::create_directories(out.dir);
  const std::vector<std::string> names = {"odd_223x225_rgb.png", "odd_230x700_rgb.png", "bmp_rgb.bmp", "png16_rgb.png",
                                          "odd_224x224_p.png", "odd_225x223_l.png", "gif_pil.gif"};
  for (const std::string& n : names) {
    fs::copy_file(src("tests/fixtures/image/inputs/" + n), out.dir + "/" + n);
    out.paths.push_back(fs::canonical(out.dir + "/" + n).string());
  }
  RunResult b = run_vislang({"index", "build", "--model", hf_model(), "--images", out.dir, "--db", out.db});
  REQUIRE_MESSAGE(b.status == 0, b.describe());
  CHECK_MESSAGE(contains(b.out, "BLIP-2, 8 x 32-d per image"), b.out);
  return out;
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_SUITE("blip2_cli") {
  TEST_CASE("blip2 cli: the preprocessed pixels are BlipImageProcessorPil's, bit for bit") {
    Tensor got = lib().pixels(images()), ref = reference().get("pixels");
    REQUIRE(got.shape() == ref.shape());
    CHECK(got.to_vector<float>() == ref.to_vector<float>());
  }

  TEST_CASE("blip2 cli: embed prints the library's and HF's embeddings") {
    const std::vector<std::string> imgs = images(), texts = meta_list("texts");
    RunResult r = run_vislang(with({"embed", "--model", hf_model(), "--image"}, imgs));
    REQUIRE_MESSAGE(r.status == 0, r.describe());
    std::vector<json> rows = r.jsonl();
    REQUIRE(rows.size() == imgs.size());
    Tensor mine = lib().m.encode_image(lib().pixels(imgs));  // (N, Q, E)
    const Tensor hf = reference().get("image_embeds");
    REQUIRE(mine.shape() == hf.shape());
    double d_lib = 0, d_hf = 0;
    for (size_t i = 0; i < imgs.size(); ++i) {
      CHECK(rows[i]["input"] == imgs[i]);
      REQUIRE(rows[i]["embedding"].size() == size_t(hf.size(1)));  // Q lists of E
      std::vector<float> got;
      for (const json& q : rows[i]["embedding"]) {
        std::vector<float> v = floats(q);
        REQUIRE(int64_t(v.size()) == hf.size(2));
        got.insert(got.end(), v.begin(), v.end());
      }
      d_lib = std::max(d_lib, max_diff(got, mine.narrow(0, int64_t(i), 1).contiguous().to_vector<float>()));
      d_hf = std::max(d_hf, max_diff(got, hf.narrow(0, int64_t(i), 1).contiguous().to_vector<float>()));
    }
    CHECK_MESSAGE(d_lib <= kLibTol, "image embeds vs library: ", d_lib);
    CHECK_MESSAGE(d_hf <= kHfTol, "image embeds vs HF: ", d_hf);

    RunResult t = run_vislang(with({"embed", "--model", hf_model(), "--format", "jsonl", "--text"}, texts));
    REQUIRE_MESSAGE(t.status == 0, t.describe());
    rows = t.jsonl();
    REQUIRE(rows.size() == texts.size());
    Tensor tl = lib().text_embeds(texts);
    double dt_lib = 0, dt_hf = 0;
    for (size_t j = 0; j < texts.size(); ++j) {
      std::vector<float> got = floats(rows[j]["embedding"]);
      dt_lib = std::max(dt_lib, max_diff(got, tl.narrow(0, int64_t(j), 1).contiguous().to_vector<float>()));
      dt_hf = std::max(dt_hf, max_diff(got, row("text_embeds", int64_t(j))));
    }
    CHECK_MESSAGE(dt_lib <= kLibTol, "text embeds vs library: ", dt_lib);
    CHECK_MESSAGE(dt_hf <= kHfTol, "text embeds vs HF: ", dt_hf);

    TempDir s;
    RunResult npy = run_vislang(with({"embed", "--model", hf_model(), "--out", s / "e.npy", "--image"}, imgs));
    REQUIRE_MESSAGE(npy.status == 0, npy.describe());
    const std::string bytes = test::slurp(s / "e.npy");
    CHECK_MESSAGE(contains(bytes.substr(0, 128), "'shape': (3, 8, 32)"), bytes.substr(0, 128));
    const size_t header = 10 + size_t(uint8_t(bytes[8])) + 256 * size_t(uint8_t(bytes[9]));
    REQUIRE(bytes.size() == header + 3 * 8 * 32 * 4);
    std::vector<float> data(3 * 8 * 32);
    std::memcpy(data.data(), bytes.data() + header, data.size() * 4);
    CHECK(max_diff(data, mine.to_vector<float>()) <= kLibTol);
    MESSAGE("embed: image |CLI - library| ", d_lib, ", |CLI - HF| ", d_hf, "; text ", dt_lib, ", ", dt_hf);
  }

  TEST_CASE("blip2 cli: similarity ITC and ITM equal HF's; --probs and --rerank") {
    const std::vector<std::string> imgs = images(), texts = meta_list("texts");
    const std::vector<std::string> base = with(with({"similarity", "--model", hf_model(), "--format", "jsonl", "--image"}, imgs),
                                               with({"--text"}, texts));
    RunResult itc = run_vislang(with(base, {"--probs"}));
    REQUIRE_MESSAGE(itc.status == 0, itc.describe());
    RunResult itm = run_vislang(with(base, {"--score", "itm"}));
    REQUIRE_MESSAGE(itm.status == 0, itm.describe());
    RunResult rr = run_vislang(with(base, {"--rerank", "2"}));
    REQUIRE_MESSAGE(rr.status == 0, rr.describe());
    std::vector<json> a = itc.jsonl(), b = itm.jsonl(), c = rr.jsonl();
    REQUIRE(a.size() == imgs.size());
    double d_itc = 0, d_itm = 0;
    for (size_t i = 0; i < imgs.size(); ++i) {
      const std::vector<float> ref_itc = row("itc_scores", int64_t(i)), ref_itm = row("itm_probabilities", int64_t(i));
      const std::vector<float> got = floats(a[i]["itc"]);
      d_itc = std::max(d_itc, max_diff(got, ref_itc));
      CHECK(max_diff(floats(a[i]["probs"]), softmax(got, 1.0)) <= 1e-6);
      CHECK_FALSE(a[i].contains("itm"));
      d_itm = std::max(d_itm, max_diff(floats(b[i]["itm"]), ref_itm));
      // --rerank 2: ITM exactly on the two best texts by ITC, null elsewhere.
      std::vector<size_t> order(texts.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return got[x] > got[y]; });
      std::vector<float> expect(texts.size(), std::nanf(""));
      for (size_t k = 0; k < 2; ++k) expect[order[k]] = ref_itm[order[k]];
      CHECK_MESSAGE(max_diff(floats(c[i]["itm"]), expect) <= kHfTol, c[i].dump());
    }
    CHECK_MESSAGE(d_itc <= kHfTol, "itc vs HF: ", d_itc);
    CHECK_MESSAGE(d_itm <= kHfTol, "itm vs HF: ", d_itm);
    MESSAGE("similarity: |itc - HF| ", d_itc, ", |itm - HF| ", d_itm);
  }

  TEST_CASE("blip2 cli: zero-shot ITC, ITM and re-ranking; prompt ensembling; the LAVIS file") {
    const std::vector<std::string> imgs = images(), labels = meta_list("labels");
    const size_t C = labels.size();
    std::string label_arg;
    for (const std::string& l : labels) label_arg += (label_arg.empty() ? "" : ",") + l;
    const std::vector<std::string> base = with({"zero-shot", "--model", hf_model(), "--format", "jsonl", "--labels",
                                                label_arg, "--templates", reference().metadata().at("template"),
                                                "--top-k", std::to_string(C), "--image"}, imgs);
    RunResult itc = run_vislang(base), itm = run_vislang(with(base, {"--score", "itm"})), rr = run_vislang(with(base, {"--rerank", "2"}));
    for (const RunResult* r : {&itc, &itm, &rr}) REQUIRE_MESSAGE(r->status == 0, r->describe());
    // The label prompts are the first C fixture texts.
    auto by_label = [&](const json& j, const char* key) {
      std::vector<float> v(C, std::nanf(""));
      for (size_t k = 0; k < C; ++k) {
        const size_t c = size_t(std::find(labels.begin(), labels.end(), j["labels"][k].get<std::string>()) - labels.begin());
        REQUIRE(c < C);
        v[c] = j[key][k].is_null() ? std::nanf("") : j[key][k].get<float>();
      }
      return v;
    };
    const std::vector<json> itc_rows = itc.jsonl(), itm_rows = itm.jsonl(), rr_rows = rr.jsonl();
    REQUIRE(itc_rows.size() == imgs.size());
    REQUIRE(itm_rows.size() == imgs.size());
    REQUIRE(rr_rows.size() == imgs.size());
    double d_itc = 0, d_itm = 0;
    for (size_t i = 0; i < imgs.size(); ++i) {
      std::vector<float> ref_itc = row("itc_scores", int64_t(i)), ref_itm = row("itm_probabilities", int64_t(i));
      ref_itc.resize(C), ref_itm.resize(C);
      const json &a = itc_rows[i], &b = itm_rows[i], &c = rr_rows[i];
      CHECK(a["score"] == "itc");
      CHECK(a["temperature"] == 1.0);
      d_itc = std::max(d_itc, max_diff(by_label(a, "itc"), ref_itc));
      CHECK(max_diff(by_label(a, "probs"), softmax(ref_itc, 1.0)) <= kHfTol);
      std::vector<float> p = floats(a["probs"]);
      CHECK(std::is_sorted(p.rbegin(), p.rend()));
      d_itm = std::max(d_itm, max_diff(by_label(b, "itm"), ref_itm));
      std::vector<float> bi = floats(b["itm"]);
      CHECK(std::is_sorted(bi.rbegin(), bi.rend()));  // --score itm ranks by P(match)
      // --rerank 2: the first two are the ITC top 2, by P(match); the rest follow in ITC order, no ITM.
      std::vector<float> ci = floats(c["itm"]), cc = floats(c["itc"]);
      CHECK(ci[0] >= ci[1]);
      for (size_t k = 2; k < C; ++k) CHECK(std::isnan(ci[k]));
      for (size_t k = 3; k < C; ++k) CHECK(cc[k - 1] >= cc[k]);
      CHECK(std::min(cc[0], cc[1]) >= cc[2]);
    }
    CHECK_MESSAGE(d_itc <= kHfTol, "zero-shot itc vs HF: ", d_itc);
    CHECK_MESSAGE(d_itm <= kHfTol, "zero-shot itm vs HF: ", d_itm);

    // Two templates: the class embedding is the renormalized mean of the normalized prompt embeddings.
    const std::vector<std::string> templates = {"a photo of a {}.", "a drawing of the {}"};
    TempDir s;
    std::ofstream(s / "templates.txt") << templates[0] << "\n" << templates[1] << "\n";
    RunResult ens = run_vislang({"zero-shot", "--model", hf_model(), "--format", "jsonl", "--labels", label_arg, "--templates",
                          s / "templates.txt", "--top-k", std::to_string(C), "--image", imgs[0]});
    REQUIRE_MESSAGE(ens.status == 0, ens.describe());
    std::vector<std::string> prompts;
    for (const std::string& l : labels)
      for (const std::string& t : templates) prompts.push_back(t.substr(0, t.find("{}")) + l + t.substr(t.find("{}") + 2));
    Tensor txt = lib().text_embeds(prompts).view({int64_t(C), 2, -1});
    Tensor cls = ops::l2_normalize(ops::mean(ops::l2_normalize(txt, -1), 1), -1);  // (C, E)
    std::vector<float> want = lib().m.itc_scores(lib().m.encode_image(lib().pixels({imgs[0]})), cls).to_vector<float>();
    const double d_ens = max_diff(by_label(ens.jsonl()[0], "itc"), want);
    CHECK_MESSAGE(d_ens <= kLibTol, "ensembled itc vs library: ", d_ens);

    // The LAVIS-converted file: the same weights, no tokenizer (--vocab), its own temperature (0.07).
    RunResult lav = run_vislang({"zero-shot", "--model", lavis_model(), "--vocab", hf_model(), "--format", "jsonl", "--labels",
                          label_arg, "--templates", reference().metadata().at("template"), "--top-k",
                          std::to_string(C), "--image", imgs[0]});
    REQUIRE_MESSAGE(lav.status == 0, lav.describe());
    const json l0 = lav.jsonl()[0];
    CHECK(l0["temperature"].get<double>() == doctest::Approx(0.07).epsilon(1e-6));
    std::vector<float> ref_itc = row("itc_scores", 0);
    ref_itc.resize(C);
    CHECK(max_diff(by_label(l0, "itc"), ref_itc) <= kHfTol);
    CHECK(max_diff(by_label(l0, "probs"), softmax(ref_itc, l0["temperature"].get<double>())) <= 1e-4);
    MESSAGE("zero-shot: |itc - HF| ", d_itc, ", |itm - HF| ", d_itm, ", ensembled |itc - library| ", d_ens);
  }

  TEST_CASE("blip2 cli: bad inputs give clear errors") {
    const std::string img = images()[0];
    RunResult r = run_vislang({"zero-shot", "--model", clip_model(), "--image", img, "--labels", "a,b", "--score", "itm"});
    CHECK_MESSAGE(r.status == 2, r.describe());
    CHECK_MESSAGE(contains(r.err, "--score itm needs a BLIP-2"), r.err);
    r = run_vislang({"similarity", "--model", clip_model(), "--image", img, "--text", "a", "--rerank", "1"});
    CHECK_MESSAGE((r.status == 2 && contains(r.err, "--rerank needs a BLIP-2")), r.describe());
    r = run_vislang({"similarity", "--model", hf_model(), "--image", img, "--text", "a", "--rerank", "0"});
    CHECK_MESSAGE((r.status == 2 && contains(r.err, "at least 1")), r.describe());
    r = run_vislang({"similarity", "--model", hf_model(), "--image", img, "--text", "a", "--score", "best"});
    CHECK_MESSAGE((r.status == 2 && contains(r.err, "itc or itm")), r.describe());
    r = run_vislang({"zero-shot", "--model", lavis_model(), "--image", img, "--labels", "a,b"});
    CHECK_MESSAGE(r.status == 1, r.describe());
    CHECK_MESSAGE((contains(r.err, "no tokenizer for the BLIP-2 model") && contains(r.err, "--vocab")), r.err);
    r = run_vislang({"embed", "--model", lavis_model(), "--vocab", "/nonexistent/vocab.txt", "--text", "a"});
    CHECK_MESSAGE((r.status == 1 && contains(r.err, "/nonexistent/vocab.txt")), r.describe());
    r = run_vislang({"embed", "--model", hf_model(), "--bpe", "/x.gz", "--text", "a"});
    CHECK_MESSAGE((r.status == 2 && contains(r.err, "--bpe is CLIP's tokenizer")), r.describe());
    std::string long_text;
    for (int i = 0; i < 40; ++i) long_text += "cat ";
    r = run_vislang({"embed", "--model", hf_model(), "--text", "a dog", long_text});
    CHECK_MESSAGE((r.status == 1 && contains(r.err, "text 2 of 2") && contains(r.err, "--truncate")), r.describe());
    r = run_vislang({"embed", "--model", hf_model(), "--truncate", "--text", long_text});
    CHECK_MESSAGE(r.status == 0, r.describe());
    r = run_vislang({"embed", "--model", hf_model(), "--image", src("tests/fixtures/image/inputs/gif_pil.gif"), "/nonexistent.png"});
    CHECK_MESSAGE((r.status == 0 && contains(r.err, "1 embedded, 1 failed") && contains(r.err, "/nonexistent.png")), r.describe());
  }

  TEST_CASE("blip2 cli: index build + text search rank exactly by ITC; --score itm; other models refused") {
    TempDir s;
    const Blip2Db built = build_blip2_db(s);
    const std::string &dir = built.dir, &db = built.db;
    const std::vector<std::string>& paths = built.paths;
    RunResult info = run_vislang({"index", "info", "--db", db, "--check"});
    CHECK_MESSAGE((info.status == 0 && contains(info.out, "ok (7 rows, 56 vectors)")), info.describe());

    const std::string query = "a photo of a red square.";
    RunResult q = run_vislang({"search", "--db", db, "--text", query, "-k", "7", "--format", "jsonl"});
    REQUIRE_MESSAGE(q.status == 0, q.describe());
    std::vector<float> itc = lib().m.itc_scores(lib().m.encode_image(lib().pixels(paths)), lib().text_embeds({query}))
                                 .to_vector<float>();  // (7, 1)
    std::vector<json> rows = q.jsonl();
    REQUIRE(rows.size() == paths.size());
    double d = 0;
    for (size_t r = 0; r < rows.size(); ++r) {
      const size_t i = size_t(std::find(paths.begin(), paths.end(), rows[r]["path"].get<std::string>()) - paths.begin());
      REQUIRE(i < paths.size());
      d = std::max(d, std::fabs(rows[r]["score"].get<double>() - itc[i]));
      if (r > 0) CHECK(rows[r - 1]["score"].get<double>() >= rows[r]["score"].get<double>());
    }
    std::vector<float> sorted = itc;
    std::sort(sorted.rbegin(), sorted.rend());
    for (size_t r = 0; r < rows.size(); ++r) CHECK(std::fabs(rows[r]["score"].get<double>() - sorted[r]) <= kLibTol);
    CHECK_MESSAGE(d <= kLibTol, "search scores vs in-process ITC: ", d);

    // --rerank 4 -k 3: the ITC top 4 re-scored by ITM, the best 3 shown.
    RunResult m = run_vislang({"search", "--db", db, "--text", query, "-k", "3", "--rerank", "4", "--format", "jsonl"});
    REQUIRE_MESSAGE(m.status == 0, m.describe());
    std::vector<float> itm = lib().itm(paths, {query}).to_vector<float>();  // (7, 1)
    std::vector<size_t> by_itc(paths.size());
    std::iota(by_itc.begin(), by_itc.end(), 0);
    std::stable_sort(by_itc.begin(), by_itc.end(), [&](size_t x, size_t y) { return itc[x] > itc[y]; });
    std::vector<size_t> top4(by_itc.begin(), by_itc.begin() + 4);
    std::stable_sort(top4.begin(), top4.end(), [&](size_t x, size_t y) { return itm[x] > itm[y]; });
    rows = m.jsonl();
    REQUIRE(rows.size() == 3);
    double dm = 0;
    for (size_t r = 0; r < 3; ++r) {
      CHECK(rows[r]["path"] == paths[top4[r]]);
      dm = std::max(dm, std::fabs(rows[r]["itm"].get<double>() - itm[top4[r]]));
      CHECK(rows[r]["score"] == rows[r]["itm"]);
    }
    CHECK_MESSAGE(dm <= kLibTol, "search ITM vs in-process: ", dm);

    // A CLIP model on this DB, and this model on a CLIP DB: refused with both names.
    RunResult wrong = run_vislang({"search", "--db", db, "--model", clip_model(), "--text", query});
    CHECK_MESSAGE((wrong.status == 1 && contains(wrong.err, "BLIP-2 model 'hf'") && contains(wrong.err, "CLIP model")),
                  wrong.describe());
    RunResult cb = run_vislang({"index", "build", "--model", clip_model(), "--images", dir, "--db", s / "clipdb"});
    REQUIRE_MESSAGE(cb.status == 0, cb.describe());
    RunResult back = run_vislang({"search", "--db", s / "clipdb", "--model", hf_model(), "--text", query});
    CHECK_MESSAGE((back.status == 1 && contains(back.err, "CLIP model 'toy_clip'") && contains(back.err, "BLIP-2 model")),
                  back.describe());
    RunResult itm_clip = run_vislang({"search", "--db", s / "clipdb", "--text", query, "--score", "itm"});
    CHECK_MESSAGE((itm_clip.status == 2 && contains(itm_clip.err, "needs a BLIP-2")), itm_clip.describe());
    // Another BLIP-2 checkpoint of the same shape is refused (the probe differs); the same weights
    // converted from LAVIS's layout are accepted and rank the same way.
    blip2::write_random_blip2(blip2::Blip2Config::preset("blip2-tiny"), s / "other.safetensors", 3);
    RunResult other = run_vislang({"search", "--db", db, "--model", s / "other.safetensors", "--image", paths[0]});
    CHECK_MESSAGE((other.status == 1 && contains(other.err, "is a different model")), other.describe());
    RunResult lav = run_vislang({"search", "--db", db, "--model", lavis_model(), "--vocab", hf_model(), "--text", query,
                              "-k", "7", "--format", "jsonl"});
    REQUIRE_MESSAGE(lav.status == 0, lav.describe());
    for (size_t r = 0; r < 7; ++r) CHECK(lav.jsonl()[r]["path"] == q.jsonl()[r]["path"]);
    // A candidate whose file has gone is left unranked, with a note.
    fs::remove(paths[top4[0]]);
    RunResult gone = run_vislang({"search", "--db", db, "--text", query, "-k", "4", "--rerank", "4", "--format", "jsonl"});
    REQUIRE_MESSAGE(gone.status == 0, gone.describe());
    CHECK_MESSAGE(contains(gone.err, "cannot re-rank " + paths[top4[0]]), gone.err);
    const std::vector<json> g = gone.jsonl();
    REQUIRE(g.size() == 4);
    CHECK(g[3]["path"] == paths[top4[0]]);
    CHECK(g[3]["itm"].is_null());
    CHECK(g[0]["path"] == paths[top4[1]]);
    MESSAGE("search: |score - in-process ITC| ", d, ", |P(match) - in-process ITM| ", dm);
  }

  TEST_CASE("blip2 cli: the web server's ITM re-ranking equals `vislang search --rerank`; bad parameters get 400") {
    TempDir s;
    const Blip2Db built = build_blip2_db(s);
    const std::string query = "a photo of a red square.";
    auto engine = std::make_shared<search::SearchEngine>(
        search::IndexDb::open(built.db, search::IndexDb::Mode::READ_ONLY),
        std::make_shared<search::Embedder>(blip2::Blip2Retrieval::load(hf_model()),
                                           std::make_shared<WordPieceTokenizer>(WordPieceTokenizer::from_folder(hf_model())),
                                           hf_model()));
    search::ServerOptions opt;
    opt.port = 0;
    opt.max_rerank = 5;
    search::SearchServer server(engine, opt);
    const int port = server.start();
    REQUIRE(port > 0);
    httplib::Client http("127.0.0.1", port);
    http.set_read_timeout(60, 0);
    auto check_json = [](const httplib::Result& res, const std::string& what, int want_status) {
      REQUIRE_MESSAGE(res, what);
      CHECK_MESSAGE(res->status == want_status, what, " -> ", res->status, " ", res->body);
      return json::parse(res->body);
    };
    auto get = [&](const std::string& path, int want_status) { return check_json(http.Get(path.c_str()), path, want_status); };
    const std::string q = "/api/search?q=" + httplib::detail::encode_query_param(query);

    json h = get("/api/health", 200);
    CHECK(h["family"] == "blip2");
    CHECK(h["itm"] == true);
    CHECK(h["max_rerank"] == 5);

    // The same re-rankings through the CLI and the API: ids, ITC and P(match) (<= 1e-6), in P(match) order.
    struct Case {
      std::vector<std::string> cli;
      std::string api;
      size_t rescored;
    };
    for (const Case& c : {Case{{"-k", "3", "--rerank", "4"}, "&k=3&rerank=4", 3},
                          Case{{"-k", "6", "--rerank", "2"}, "&k=6&rerank=2", 2},  // the other 4 in ITC order
                          Case{{"-k", "3", "--score", "itm"}, "&k=3&score=itm", 3}}) {
      RunResult cli = run_vislang(with({"search", "--db", built.db, "--text", query, "--format", "jsonl"}, c.cli));
      REQUIRE_MESSAGE(cli.status == 0, cli.describe());
      const std::vector<json> want = cli.jsonl();
      const json got = get(q + c.api, 200);
      CHECK(got["score"] == "itm");
      REQUIRE_MESSAGE(got["results"].size() == want.size(), c.api, ": ", got.dump());
      double d = 0;
      size_t rescored = 0;
      for (size_t r = 0; r < want.size(); ++r) {
        const json &g = got["results"][r], &w = want[r];
        CHECK_MESSAGE(g["id"] == w["id"], c.api, " rank ", r + 1);
        CHECK(g["path"] == w["path"]);
        d = std::max(d, std::fabs(g["itc"].get<double>() - w["itc"].get<double>()));
        d = std::max(d, std::fabs(g["score"].get<double>() - w["score"].get<double>()));
        REQUIRE(g["itm"].is_null() == w["itm"].is_null());
        if (g["itm"].is_null()) continue;
        ++rescored;
        d = std::max(d, std::fabs(g["itm"].get<double>() - w["itm"].get<double>()));
        CHECK(r + 1 == rescored);  // the re-scored come first,
        if (r > 0) CHECK(got["results"][r - 1]["itm"].get<double>() >= g["itm"].get<double>());  // by P(match)
      }
      CHECK(rescored == c.rescored);
      for (size_t r = rescored + 1; r < want.size(); ++r)  // the rest in ITC order
        CHECK(got["results"][r - 1]["itc"].get<double>() >= got["results"][r]["itc"].get<double>());
      CHECK_MESSAGE(d <= kLibTol, c.api, ": |server - CLI| ", d);
      MESSAGE("serve ", c.api, ": ", rescored, " re-scored, |server - CLI| ", d);
    }
    // POST with a JSON body: the same answer.
    const json post = check_json(http.Post("/api/search", json{{"q", query}, {"k", 3}, {"rerank", 4}}.dump(), "application/json"),
                                 "POST /api/search", 200);
    const json get34 = get(q + "&k=3&rerank=4", 200);
    REQUIRE(post["results"].size() == 3);
    for (size_t r = 0; r < 3; ++r) CHECK(post["results"][r]["itm"] == get34["results"][r]["itm"]);
    CHECK(post["rerank"] == 4);
    CHECK(get(q + "&k=3", 200)["score"] == "itc");
    CHECK_FALSE(get(q + "&k=3&score=itc", 200)["results"][0].contains("itm"));

    // Bad parameters: 400 with a message naming the field and what was expected.
    struct Bad {
      std::string path, field, expected;
    };
    for (const Bad& b : {Bad{q + "&score=best", "'score'", "itc or itm"}, Bad{q + "&rerank=0", "'rerank'", "from 1 to 5"},
                         Bad{q + "&rerank=-2", "'rerank'", "from 1 to 5"}, Bad{q + "&rerank=abc", "'rerank'", "from 1 to 5"},
                         Bad{q + "&rerank=2.5", "'rerank'", "from 1 to 5"}, Bad{q + "&rerank=6", "'rerank'", "from 1 to 5"},
                         Bad{q + "&score=itc&rerank=3", "'rerank'", "score=itc"}, Bad{q + "&score=itm&k=6", "'k'", "at most 5"},
                         Bad{"/api/search_image?id=1&rerank=3", "'rerank'", "text queries"},
                         Bad{"/api/search_image?id=1&score=itm", "'score'", "text queries"},
                         Bad{"/api/recommend?liked=1&rerank=2", "'rerank'", "text queries"}}) {
      const json e = get(b.path, 400);
      const std::string msg = e.value("error", "");
      CHECK_MESSAGE((contains(msg, b.field) && contains(msg, b.expected)), b.path, " -> ", msg);
    }
    const json pe = check_json(http.Post("/api/search", json{{"q", query}, {"rerank", true}}.dump(), "application/json"),
                               "POST rerank: true", 400);
    CHECK(contains(pe.value("error", ""), "'rerank'"));

    // The ITC top candidate's file replaced by a symlink to a copy outside the folder: the server does not
    // read it (the rule of /image and /thumb); it is listed as unreadable and goes after the re-scored ones.
    const json itc = get(q + "&k=4", 200);
    const int64_t top = itc["results"][0]["id"].get<int64_t>();
    const std::string top_path = itc["results"][0]["path"].get<std::string>();
    const std::string outside = s / ("outside" + fs::path(top_path).extension().string());
    fs::copy_file(top_path, outside);
    fs::remove(top_path);
    fs::create_symlink(outside, top_path);
    const json conf = get(q + "&k=4&rerank=4", 200);
    REQUIRE(conf["results"].size() == 4);
    CHECK(conf["results"][3]["id"] == top);
    CHECK(conf["results"][3]["itm"].is_null());
    for (size_t r = 0; r < 3; ++r) CHECK_FALSE(conf["results"][r]["itm"].is_null());
    REQUIRE(conf["unreadable"].size() == 1);
    CHECK(conf["unreadable"][0]["id"] == top);
    CHECK(contains(conf["unreadable"][0]["reason"].get<std::string>(), "inside the indexed folder"));
    server.stop();
  }

  TEST_CASE("blip2 cli: IndexDb multi-vector search is the exact max over an item's vectors") {
    // Random unit vectors, Q = 4 per item, dim 8; brute force vs IndexDb::search, with exclusions and a
    // floor, then after reopening (vectors.faiss) and after removing rows.
    const int64_t Q = 4, D = 8, N = 60;
    Generator gen(11);
    auto unit = [&](int64_t rows) {
      std::vector<float> v = Tensor::randn({rows, D}, gen).to_vector<float>();
      search::normalize_rows(v.data(), rows, D);
      return v;
    };
    search::ModelInfo mi;
    mi.name = "random";
    mi.path = "/random";
    mi.dim = D;
    mi.vectors_per_item = Q;
    mi.family = "blip2";
    mi.config_json = "{}";
    mi.probe = unit(1);
    mi.probe.resize(size_t(Q * D), 0.0f);
    TempDir s;
    search::IndexDb::create(s / "db", mi, search::IndexKind::FLAT);
    std::vector<std::vector<float>> items;
    std::vector<int64_t> ids;
    {
      auto db = search::IndexDb::open(s / "db", search::IndexDb::Mode::READ_WRITE);
      std::vector<search::NewImage> add;
      for (int64_t i = 0; i < N; ++i) {
        search::NewImage n;
        n.row.path = str("/img/", i, ".png");
        n.row.root = "/img";
        n.row.hash = str(i);
        n.vec = unit(Q);
        items.push_back(n.vec);
        add.push_back(n);
      }
      ids = db->commit(add, {});
      db->save_index();
      CHECK(db->check().ok);
    }
    auto brute = [&](const std::vector<float>& q, const std::set<int64_t>& gone, const std::unordered_set<int64_t>& ex,
                     float floor, int k) {
      std::vector<search::Hit> all;
      for (size_t i = 0; i < items.size(); ++i) {
        if (gone.count(ids[i]) || ex.count(ids[i])) continue;
        double best = -2;
        for (int64_t j = 0; j < Q; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < D; ++c) dot += double(items[i][size_t(j * D + c)]) * q[size_t(c)];
          best = std::max(best, dot);
        }
        if (best >= floor) all.push_back({ids[i], float(best)});
      }
      std::stable_sort(all.begin(), all.end(), [](const search::Hit& a, const search::Hit& b) { return a.score > b.score; });
      if (all.size() > size_t(k)) all.resize(size_t(k));
      return all;
    };
    auto same = [&](const std::vector<search::Hit>& got, const std::vector<search::Hit>& want) {
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i].id == want[i].id);
        CHECK(std::fabs(got[i].score - want[i].score) <= 1e-5);
      }
    };
    std::set<int64_t> gone;
    for (int pass = 0; pass < 2; ++pass) {
      auto db = search::IndexDb::open(s / "db", search::IndexDb::Mode::READ_WRITE);
      CHECK_FALSE(db->open_info().rebuilt);  // the saved vectors.faiss holds N·Q vectors
      for (int t = 0; t < 5; ++t) {
        std::vector<float> q = unit(1);
        same(db->search(q.data(), 7), brute(q, gone, {}, -2, 7));
        std::unordered_set<int64_t> ex = {ids[size_t(t)], ids[size_t(t + 10)]};
        same(db->search(q.data(), 5, 0.1f, ex), brute(q, gone, ex, 0.1f, 5));
      }
      // vector(): the unit mean of the item's vectors; vectors(): all of them.
      const int64_t probe_id = ids[30];
      CHECK(db->vectors(probe_id) == items[30]);
      CHECK(db->vector(probe_id) == search::pool_item(items[30].data(), Q, D));
      if (pass == 0) {  // remove some rows, then reopen
        std::vector<int64_t> rm = {ids[1], ids[2], ids[40]};
        db->commit({}, rm);
        gone.insert(rm.begin(), rm.end());
        CHECK(db->check().ok);
        db->save_index();
      }
    }
  }
}
