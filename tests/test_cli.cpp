// tests/test_cli.cpp — the `vislang` binary end to end (suite "cli"): each case runs the real
// executable (tests/test_process.h: stdout and stderr captured separately) and compares what it prints with
// the same computation done in-process through the library:
//   tokenize    ids == ClipTokenizer::tokenize without the padding; too long → exit 1 naming the counts;
//               --model (BLIP-2 fixture tests/fixtures/blip2/hf, weights/toy_clip with its own BPE) and
//               --vocab == Blip2Retrieval::tokenize / ClipTokenizer at the model's length, and the BLIP-2
//               ids == HF's (cli_reference.safetensors); --tokens; two tokenizers or a bad path → errors
//   embed       JSON lines == ClipModel::encode_image / encode_text (<= 1e-6); .npy header and shape;
//               an --images-dir run with a truncated JPEG reports and skips it, embeds the others
//   zero-shot   probabilities sum to 1 and equal the template-ensembled in-process computation
//   similarity  the logits matrix == ClipModel::logits_per_image
//   bench clip  JSON with positive rates on the fixture model, and a ViT-B/32 preset (random weights)
//   errors      missing model, unknown option, bad --device: non-zero exit naming the problem
// Model: the committed fixture tests/fixtures/clip/hf_vit (HF folder, no tokenizer files), so the
// tokenizer is the shared bpe_simple_vocab_16e6.txt.gz; the images are ../shared/data/images. Cases
// that need them skip with a MESSAGE when the shared folder is absent (the tokenize --model/--vocab
// cases need only committed files).
// The binary runs through tests/test_process.h (<build>/bin/vislang, VISLANG_SHARED_DIR set to the tests' own).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <nlohmann/json.hpp>

#include "image/clip_preprocess.h"
#include "kernels/ops.h"
#include "models/blip2/blip2.h"
#include "models/clip/clip.h"
#include "tests/test_process.h"
#include "tests/test_util.h"
#include "tokenizer/clip_tokenizer.h"
#include "tokenizer/wordpiece.h"
#include "weights/safetensors.h"

using namespace vislang;
using namespace vislang::test;  // contains, TempDir, run_vislang, ... (tests/test_util.h, test_process.h)
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string model_dir() { return std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/clip/hf_vit"; }
std::string images_dir() { return test::shared_dir() + "/data/images"; }
std::string bpe_path() { return test::shared_dir() + "/data/clip/bpe_simple_vocab_16e6.txt.gz"; }

std::string blip2_dir() { return std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/blip2/hf"; }

// Each row of ids (B, T) without its padding (mask 0), as "id id ...": what `vislang tokenize` prints.
std::vector<std::string> unpadded(const Tensor& ids, const Tensor& mask) {
  const int64_t B = ids.size(0), T = ids.size(1);
  const std::vector<int64_t> v = ids.to(DType::I64).to_vector<int64_t>(), m = mask.to(DType::I64).to_vector<int64_t>();
  std::vector<std::string> out;
  for (int64_t i = 0; i < B; ++i) {
    std::string row;
    for (int64_t j = 0; j < T; ++j)
      if (m[size_t(i * T + j)] != 0) row += (row.empty() ? "" : " ") + std::to_string(v[size_t(i * T + j)]);
    out.push_back(row);
  }
  return out;
}

// `out` (what `vislang tokenize --truncate` printed for one text) is n ids from `first` to `last`.
void check_truncated(const std::string& out, size_t n, int64_t first, int64_t last) {
  std::istringstream in(out);
  const std::vector<int64_t> v{std::istream_iterator<int64_t>(in), std::istream_iterator<int64_t>()};
  CHECK_MESSAGE(v.size() == n, out);
  CHECK(!v.empty());
  if (v.empty()) return;
  CHECK(v.front() == first);
  CHECK(v.back() == last);
}

bool need_shared() {
  if (!test::shared_dir().empty()) return true;
  MESSAGE("skipped: the shared data folder (../shared or $VISLANG_SHARED_DIR) is absent: no tokenizer, no images");
  return false;
}

// The model and its preprocessing, as the CLI sets them up.
struct InProcess {
  clip::ClipModel model = clip::ClipModel::load(model_dir());
  ClipTokenizer tok = ClipTokenizer::from_bpe_gz(bpe_path());
  PreprocessConfig pc() const {
    PreprocessConfig p;
    p.size = static_cast<int>(model.config().preprocess.size);
    p.mean = model.config().preprocess.mean;
    p.std = model.config().preprocess.std;
    p.mode = PreprocessConfig::Mode::OPENAI;
    return p;
  }
  Tensor images(const std::vector<std::string>& paths) const {  // (N, E)
    std::vector<Tensor> px;
    for (const std::string& p : paths) px.push_back(preprocess(load_image(p), pc()));
    return model.encode_image(ops::stack(px, 0));
  }
  Tensor texts(const std::vector<std::string>& ts) const {  // (N, E)
    const int64_t T = model.config().text.context_length;
    std::vector<int32_t> ids;
    for (const std::string& t : ts) {
      std::vector<int32_t> row = tok.tokenize(t, static_cast<int>(T));
      ids.insert(ids.end(), row.begin(), row.end());
    }
    return model.encode_text(Tensor::from_vector(ids, {static_cast<int64_t>(ts.size()), T}));
  }
};

// max |got - ref| over the rows of a JSON array-of-arrays vs a (N, E) tensor.
double max_diff(const std::vector<std::vector<float>>& got, const Tensor& ref) {
  REQUIRE(ref.dim() == 2);
  REQUIRE(static_cast<int64_t>(got.size()) == ref.size(0));
  std::vector<float> r = ref.to_vector<float>();
  double d = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    REQUIRE(static_cast<int64_t>(got[i].size()) == ref.size(1));
    for (size_t j = 0; j < got[i].size(); ++j) d = std::max(d, std::fabs(double(got[i][j]) - r[i * got[i].size() + j]));
  }
  return d;
}

// A .npy v1.0 f32 C-order 2-D file: header checked, data returned, shape in `rows`/`cols`.
std::vector<float> read_npy(const std::string& path, int64_t& rows, int64_t& cols) {
  std::string s = slurp(path);
  REQUIRE(s.size() >= 10);
  REQUIRE(s.compare(0, 6, "\x93NUMPY") == 0);
  CHECK(int(s[6]) == 1);
  CHECK(int(s[7]) == 0);
  const size_t hlen = static_cast<uint8_t>(s[8]) | (static_cast<uint8_t>(s[9]) << 8);
  CHECK((10 + hlen) % 64 == 0);
  const std::string header = s.substr(10, hlen);
  CHECK(header.back() == '\n');
  CHECK(contains(header, "'descr': '<f4'"));
  CHECK(contains(header, "'fortran_order': False"));
  const size_t p = header.find("'shape': (");
  REQUIRE(p != std::string::npos);
  REQUIRE(std::sscanf(header.c_str() + p, "'shape': (%lld, %lld)", reinterpret_cast<long long*>(&rows),
                      reinterpret_cast<long long*>(&cols)) == 2);
  const size_t data = 10 + hlen;
  REQUIRE(s.size() == data + size_t(rows * cols) * 4);
  std::vector<float> v(size_t(rows * cols));
  std::memcpy(v.data(), s.data() + data, v.size() * 4);
  return v;
}

}  // namespace

TEST_SUITE("cli") {
  TEST_CASE("cli: --help lists every command; unknown command and option are usage errors") {
    RunResult h = run_vislang({"--help"});
    CHECK_MESSAGE(h.status == 0, h.describe());
    for (const char* c : {"version", "bench ops", "bench clip", "tokenize", "embed", "zero-shot", "similarity"})
      CHECK_MESSAGE(contains(h.out, c), str("'", c, "' missing from vislang --help:\n", h.out));
    for (const char* c : {"tokenize", "embed", "zero-shot", "similarity"}) {
      RunResult r = run_vislang({c, "--help"});
      CHECK_MESSAGE(r.status == 0, r.describe());
      CHECK(contains(r.out, "usage: vislang " + std::string(c)));
    }
    RunResult u = run_vislang({"frobnicate"});
    CHECK(u.status == 2);
    CHECK(contains(u.err, "frobnicate"));
    RunResult o = run_vislang({"embed", "--model", model_dir(), "--image", "x.png", "--bogus-option", "3"});
    CHECK_MESSAGE(o.status == 2, o.describe());
    CHECK_MESSAGE(contains(o.err, "unknown option '--bogus-option'"), o.describe());
    CHECK(o.out.empty());
  }

  TEST_CASE("cli: a missing model, a bad --device and an unavailable GPU fail with a clear message") {
    RunResult m = run_vislang({"embed", "--model", "/nonexistent/clip_model", "--image", "x.png"});
    CHECK_MESSAGE(m.status == 1, m.describe());
    CHECK_MESSAGE(contains(m.err, "/nonexistent/clip_model"), m.describe());
    CHECK_MESSAGE(contains(m.err, "does not exist"), m.describe());
    RunResult d = run_vislang({"embed", "--model", model_dir(), "--image", "x.png", "--device", "tpu:0"});
    CHECK_MESSAGE(d.status == 2, d.describe());
    CHECK_MESSAGE((contains(d.err, "--device") && contains(d.err, "tpu:0")), d.describe());
    RunResult t = run_vislang({"embed", "--model", model_dir(), "--image", "x.png", "--dtype", "f8"});
    CHECK_MESSAGE(t.status == 2, t.describe());
    CHECK_MESSAGE((contains(t.err, "--dtype") && contains(t.err, "f8")), t.describe());
    if (cuda_device_count() == 0) {
      RunResult c = run_vislang({"embed", "--model", model_dir(), "--image", "x.png", "--device", "cuda:0"});
      CHECK_MESSAGE(c.status == 1, c.describe());
      CHECK_MESSAGE(contains(c.err, "CUDA"), c.describe());
    }
    RunResult n = run_vislang({"embed", "--model", model_dir()});
    CHECK_MESSAGE(n.status == 2, n.describe());
    CHECK_MESSAGE(contains(n.err, "no input"), n.describe());
  }

  TEST_CASE("cli: tokenize prints ClipTokenizer's ids without padding") {
    if (!need_shared()) return;
    ClipTokenizer tok = ClipTokenizer::from_bpe_gz(bpe_path());
    const std::vector<std::string> texts = {"a photo of a cat", "Hello, World! It's 2024 \xe2\x80\x94 na\xc3\xafve caf\xc3\xa9",
                                            "&amp; <|endoftext|>  spaced   out  "};
    std::vector<std::string> args = {"tokenize", "--bpe", bpe_path()};
    args.insert(args.end(), texts.begin(), texts.end());
    RunResult r = run_vislang(args);
    REQUIRE_MESSAGE(r.status == 0, r.describe());
    std::vector<std::string> got = r.lines();
    REQUIRE(got.size() == texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      std::vector<int32_t> ids = tok.tokenize(texts[i]);
      const size_t n = tok.encode(texts[i]).size() + 2;
      std::string want;
      for (size_t j = 0; j < n; ++j) want += (j ? " " : "") + std::to_string(ids[j]);
      CHECK_MESSAGE(got[i] == want, str("text ", i, ": got ", got[i], ", want ", want));
    }
    // The shared BPE is found without --bpe too (VISLANG_SHARED_DIR).
    RunResult d = run_vislang({"tokenize", "a photo of a cat"});
    CHECK_MESSAGE((d.status == 0 && d.lines().size() == 1 && d.lines()[0] == r.lines()[0]), d.describe());

    std::string long_text;
    for (int i = 0; i < 100; ++i) long_text += "cat ";
    RunResult l = run_vislang({"tokenize", "--bpe", bpe_path(), "short", long_text});
    CHECK_MESSAGE(l.status == 1, l.describe());
    CHECK_MESSAGE((contains(l.err, "102 tokens") && contains(l.err, "77") && contains(l.err, "cat cat")), l.describe());
    CHECK_MESSAGE(l.out.empty(), str("no partial output on error:\n", l.describe()));
    RunResult t = run_vislang({"tokenize", "--bpe", bpe_path(), "--truncate", long_text});
    REQUIRE_MESSAGE(t.status == 0, t.describe());
    check_truncated(t.out, 77, tok.sot_id(), tok.eot_id());
  }

  // ---- tokenize with a model's own tokenizer (no ../shared needed) -----------------------------
  TEST_CASE("cli: tokenize --model BLIP-2 and --vocab equal Blip2Retrieval::tokenize and HF's ids") {
    const std::string hf = blip2_dir();
    REQUIRE_MESSAGE(fs::is_regular_file(hf + "/vocab.txt"), hf, " has no vocab.txt");
    const SafeTensorsFile ref = test::open_versioned_fixture("blip2/cli_reference.safetensors", "1",
                                                             "re-run: python3 tools/reference/make_blip2_fixtures.py");
    const std::vector<std::string> texts = json::parse(ref.metadata().at("texts")).get<std::vector<std::string>>();
    REQUIRE(texts.size() >= 2);
    // In-process: the model's text path, then HF's slow BertTokenizer (padding="longest").
    const blip2::Blip2Retrieval m = blip2::Blip2Retrieval::load(hf);
    const WordPieceTokenizer w = WordPieceTokenizer::from_folder(hf);
    const WordPieceTokenizer::Batch b = m.tokenize(w, texts, false);
    const std::vector<std::string> want = unpadded(b.ids, b.attention_mask),
                                   hf_ids = unpadded(ref.get("input_ids"), ref.get("attention_mask"));
    REQUIRE(want.size() == texts.size());
    CHECK(want == hf_ids);
    std::vector<std::string> args = {"tokenize", "--model", hf};
    args.insert(args.end(), texts.begin(), texts.end());
    RunResult r = run_vislang(args);
    REQUIRE_MESSAGE(r.status == 0, r.describe());
    CHECK(r.lines() == want);
    // Only the config is read, not the weights: the same folder without model.safetensors gives the same.
    TempDir cfg_only;
    for (const char* f : {"config.json", "vocab.txt", "tokenizer_config.json"})
      if (fs::exists(hf + "/" + f)) fs::copy_file(hf + "/" + f, cfg_only.dir() / f);
    args[2] = cfg_only.dir().string();
    RunResult c = run_vislang(args);
    REQUIRE_MESSAGE(c.status == 0, c.describe());
    CHECK(c.lines() == want);
    args[2] = hf;
    // The same vocabulary without the model: its tokenizer_config.json's limit (32) is the model's here.
    args[1] = "--vocab";
    RunResult v = run_vislang(args);
    REQUIRE_MESSAGE(v.status == 0, v.describe());
    CHECK(v.lines() == want);

    // --tokens: the ids, a tab, the vocabulary strings ("##" pieces as they are).
    RunResult t = run_vislang({"tokenize", "--model", hf, "--tokens", "a zebra", texts[0]});
    REQUIRE_MESSAGE(t.status == 0, t.describe());
    const std::vector<std::string> tl = t.lines();
    REQUIRE(tl.size() == 2);
    for (const std::string& l : tl) {
      const size_t tab = l.find('\t');
      REQUIRE_MESSAGE(tab != std::string::npos, l);
      std::istringstream ids(l.substr(0, tab));
      std::string toks;
      for (int64_t id; ids >> id;) toks += (toks.empty() ? "" : " ") + w.id_to_token(id);
      CHECK(l.substr(tab + 1) == toks);
      CHECK(l.substr(tab + 1, 6) == "[CLS] ");
      CHECK(l.substr(l.size() - 6) == " [SEP]");
    }
    CHECK(tl[1].substr(0, tl[1].find('\t')) == want[0]);

    // Longer than the limit: exit 1 naming the text and both lengths, no partial output; --truncate cuts.
    std::string long_text;
    for (int i = 0; i < 40; ++i) long_text += "cat ";
    const size_t n = w.encode(long_text).size();
    REQUIRE(n > 32);
    RunResult l = run_vislang({"tokenize", "--model", hf, "short", long_text});
    CHECK_MESSAGE(l.status == 1, l.describe());
    CHECK_MESSAGE((contains(l.err, str(n, " tokens")) && contains(l.err, "32") && contains(l.err, "cat cat")),
                  l.describe());
    CHECK_MESSAGE(l.out.empty(), l.describe());
    RunResult lv = run_vislang({"tokenize", "--vocab", hf + "/vocab.txt", "--context-length", "20", long_text});
    CHECK_MESSAGE((lv.status == 1 && contains(lv.err, str(n, " tokens")) && contains(lv.err, "20")), lv.describe());
    RunResult tr = run_vislang({"tokenize", "--model", hf, "--truncate", long_text});
    REQUIRE_MESSAGE(tr.status == 0, tr.describe());
    const WordPieceTokenizer::Batch bt = m.tokenize(w, {long_text}, true);
    CHECK(tr.lines() == unpadded(bt.ids, bt.attention_mask));
    check_truncated(tr.out, 32, w.cls_id(), w.sep_id());
  }

  TEST_CASE("cli: tokenize --model with its own BPE files equals ClipTokenizer at the model's context length") {
    const std::string toy = std::string(VISLANG_SOURCE_DIR) + "/weights/toy_clip";
    const ClipTokenizer tok = ClipTokenizer::from_hf(toy + "/vocab.json", toy + "/merges.txt");
    const int ctx = static_cast<int>(clip::ClipModel::load(toy).config().text.context_length);
    REQUIRE(ctx < ClipTokenizer::kDefaultContextLength);  // so that the default 77 would show
    const std::vector<std::string> texts = {"a photo of a cat", "Hello, World! It's a red square."};
    std::vector<std::string> args = {"tokenize", "--model", toy, "--tokens"};
    args.insert(args.end(), texts.begin(), texts.end());
    RunResult r = run_vislang(args);
    REQUIRE_MESSAGE(r.status == 0, r.describe());
    const std::vector<std::string> got = r.lines();
    REQUIRE(got.size() == texts.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      const std::vector<int32_t> ids = tok.tokenize(texts[i], ctx);  // SOT ... EOT, zero padding
      const size_t len = tok.encode(texts[i]).size() + 2;
      std::string want_ids, want_toks;
      for (size_t j = 0; j < len; ++j) {
        want_ids += (j ? " " : "") + std::to_string(ids[j]);
        want_toks += (j ? " " : "") + tok.id_to_token(ids[j]);
      }
      CHECK_MESSAGE(got[i] == want_ids + "\t" + want_toks, str("text ", i, ": got ", got[i]));
    }
    std::string long_text;
    for (int i = 0; i < 30; ++i) long_text += "cat ";
    RunResult l = run_vislang({"tokenize", "--model", toy, long_text});
    CHECK_MESSAGE(l.status == 1, l.describe());
    CHECK_MESSAGE((contains(l.err, str(tok.encode(long_text).size() + 2, " tokens")) &&
                   contains(l.err, str("context length ", ctx))), l.describe());
    RunResult t = run_vislang({"tokenize", "--model", toy, "--truncate", long_text});
    REQUIRE_MESSAGE(t.status == 0, t.describe());
    check_truncated(t.out, size_t(ctx), tok.sot_id(), tok.eot_id());
  }

  TEST_CASE("cli: tokenize refuses two tokenizers and names a bad model or vocabulary path") {
    const std::string hf = blip2_dir(), toy = std::string(VISLANG_SOURCE_DIR) + "/weights/toy_clip";
    RunResult bv = run_vislang({"tokenize", "--bpe", toy, "--vocab", hf, "a cat"});
    CHECK_MESSAGE((bv.status == 2 && contains(bv.err, "--bpe") && contains(bv.err, "--vocab")), bv.describe());
    RunResult mc = run_vislang({"tokenize", "--model", toy, "--context-length", "10", "a cat"});
    CHECK_MESSAGE((mc.status == 2 && contains(mc.err, "--model") && contains(mc.err, "--context-length")), mc.describe());
    RunResult mb = run_vislang({"tokenize", "--model", hf, "--bpe", toy, "a cat"});  // BLIP-2 model, CLIP tokenizer
    CHECK_MESSAGE((mb.status == 2 && contains(mb.err, "--bpe") && contains(mb.err, hf)), mb.describe());
    RunResult mv = run_vislang({"tokenize", "--model", toy, "--vocab", hf, "a cat"});  // CLIP model, BERT vocabulary
    CHECK_MESSAGE((mv.status == 2 && contains(mv.err, "--vocab") && contains(mv.err, toy)), mv.describe());
    for (RunResult* x : {&bv, &mc, &mb, &mv}) CHECK(x->out.empty());

    RunResult nm = run_vislang({"tokenize", "--model", "/nonexistent/blip2_model", "a cat"});
    CHECK_MESSAGE((nm.status == 1 && contains(nm.err, "/nonexistent/blip2_model") && contains(nm.err, "expected")),
                  nm.describe());
    RunResult nv = run_vislang({"tokenize", "--vocab", "/nonexistent/vocab.txt", "a cat"});
    CHECK_MESSAGE((nv.status == 1 && contains(nv.err, "/nonexistent/vocab.txt") && contains(nv.err, "vocab.txt")),
                  nv.describe());
    const std::string no_vocab = std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/blip2";
    RunResult fv = run_vislang({"tokenize", "--vocab", no_vocab, "a cat"});
    CHECK_MESSAGE((fv.status == 1 && contains(fv.err, no_vocab) && contains(fv.err, "without vocab.txt")), fv.describe());
    RunResult nb = run_vislang({"tokenize", "--bpe", "/nonexistent/bpe.txt.gz", "a cat"});
    CHECK_MESSAGE((nb.status == 1 && contains(nb.err, "/nonexistent/bpe.txt.gz") && contains(nb.err, "expected")),
                  nb.describe());
  }

  TEST_CASE("cli: embed JSON lines equal encode_image / encode_text in-process") {
    if (!need_shared()) return;
    InProcess ip;
    const std::vector<std::string> imgs = {images_dir() + "/astronaut.png", images_dir() + "/coffee.png"};
    RunResult r = run_vislang({"embed", "--model", model_dir(), "--image", imgs[0], imgs[1]});
    REQUIRE_MESSAGE(r.status == 0, r.describe());
    CHECK_MESSAGE(r.err.empty(), str("stderr should be clean without --progress:\n", r.err));
    std::vector<json> rows = r.jsonl();
    REQUIRE(rows.size() == 2);
    std::vector<std::vector<float>> got;
    for (size_t i = 0; i < rows.size(); ++i) {
      CHECK(rows[i]["input"] == imgs[i]);
      got.push_back(rows[i]["embedding"].get<std::vector<float>>());
    }
    double d = max_diff(got, ip.images(imgs));
    CHECK_MESSAGE(d <= 1e-6, str("max |diff| image embeddings ", d));

    const std::vector<std::string> texts = {"a photo of an astronaut", "a cup of coffee", "dog"};
    RunResult t = run_vislang({"embed", "--model", model_dir(), "--text", texts[0], texts[1], texts[2], "--normalize", "--batch", "2"});
    REQUIRE_MESSAGE(t.status == 0, t.describe());
    std::vector<json> trows = t.jsonl();
    REQUIRE(trows.size() == 3);
    got.clear();
    for (size_t i = 0; i < trows.size(); ++i) {
      CHECK(trows[i]["input"] == texts[i]);
      got.push_back(trows[i]["embedding"].get<std::vector<float>>());
      double n2 = 0;
      for (float x : got.back()) n2 += double(x) * x;
      CHECK(std::sqrt(n2) == doctest::Approx(1.0).epsilon(1e-6));
    }
    d = max_diff(got, ops::l2_normalize(ip.texts(texts), -1));
    CHECK_MESSAGE(d <= 1e-6, str("max |diff| normalized text embeddings ", d));
  }

  TEST_CASE("cli: embed --images-dir skips a truncated JPEG, writes .npy atomically") {
    if (!need_shared()) return;
    InProcess ip;
    TempDir dir;
    fs::create_directories(dir.dir() / "photos" / "sub");
    fs::copy_file(images_dir() + "/astronaut.png", dir.path("photos/astronaut.png"));
    fs::copy_file(images_dir() + "/coffee.png", dir.path("photos/sub/coffee.png"));
    fs::copy_file(images_dir() + "/truncated.jpg", dir.path("photos/truncated.jpg"));
    std::ofstream(dir.path("photos/notes.txt")) << "not an image\n";
    const std::string out = dir.path("emb.npy");
    RunResult r = run_vislang({"embed", "--model", model_dir(), "--images-dir", dir.path("photos"), "--out", out, "--progress"});
    REQUIRE_MESSAGE(r.status == 0, r.describe());
    CHECK(r.out.empty());
    CHECK_MESSAGE((contains(r.err, "truncated.jpg") && contains(r.err, "truncated")), r.describe());
    CHECK_MESSAGE(contains(r.err, "2 embedded, 1 failed"), r.describe());
    CHECK_MESSAGE(contains(r.err, "3/3 images"), str("progress line expected with --progress:\n", r.err));
    int64_t rows = 0, cols = 0;
    std::vector<float> v = read_npy(out, rows, cols);
    CHECK(rows == 2);
    CHECK(cols == ip.model.config().projection_dim);
    std::vector<std::vector<float>> got = {{v.begin(), v.begin() + cols}, {v.begin() + cols, v.end()}};
    // Sorted walk: photos/astronaut.png, photos/sub/coffee.png (photos/truncated.jpg skipped).
    double d = max_diff(got, ip.images({dir.path("photos/astronaut.png"), dir.path("photos/sub/coffee.png")}));
    CHECK_MESSAGE(d <= 1e-6, str("max |diff| .npy rows ", d));
    for (const auto& e : fs::directory_iterator(dir.dir()))
      CHECK_MESSAGE(!contains(e.path().filename().string(), ".tmp"), str("temporary file left: ", e.path().string()));

    // Every input bad: exit 1, nothing written.
    const std::string none = dir.path("none.npy");
    RunResult bad = run_vislang({"embed", "--model", model_dir(), "--image", dir.path("photos/truncated.jpg"), "--out", none});
    CHECK_MESSAGE(bad.status == 1, bad.describe());
    CHECK(!fs::exists(none));
  }

  TEST_CASE("cli: zero-shot probabilities sum to 1 and match the in-process ensemble") {
    if (!need_shared()) return;
    InProcess ip;
    TempDir dir;
    const std::vector<std::string> labels = {"cat", "rocket", "astronaut", "cup of coffee"};
    const std::vector<std::string> templates = {"a photo of a {}.", "a blurry drawing of the {}."};
    {
      std::ofstream f(dir.path("templates.txt"));
      for (const std::string& t : templates) f << t << "\n";
    }
    const std::vector<std::string> imgs = {images_dir() + "/astronaut.png", images_dir() + "/rocket.jpg"};
    RunResult r = run_vislang({"zero-shot", "--model", model_dir(), "--image", imgs[0], imgs[1], "--labels", "cat, rocket,astronaut",
                 "--labels", "cup of coffee", "--templates", dir.path("templates.txt"), "--top-k", "10", "--format",
                 "jsonl"});
    REQUIRE_MESSAGE(r.status == 0, r.describe());
    std::vector<json> rows = r.jsonl();
    REQUIRE(rows.size() == 2);

    // In-process: per class, normalize each template's embedding, mean, renormalize.
    std::vector<Tensor> classes;
    for (const std::string& l : labels) {
      std::vector<std::string> prompts;
      for (const std::string& t : templates) prompts.push_back(t.substr(0, t.find("{}")) + l + t.substr(t.find("{}") + 2));
      Tensor e = ops::l2_normalize(ip.texts(prompts), -1);            // (T, E)
      classes.push_back(ops::l2_normalize(ops::mean(e, 0), -1));      // (E)
    }
    Tensor cls = ops::stack(classes, 0);                                // (C, E)
    Tensor img = ops::l2_normalize(ip.images(imgs), -1);                // (N, E)
    Tensor probs = ops::softmax(ops::mul(ops::matmul(img, cls, false, true), std::exp(ip.model.logit_scale())), -1);
    std::vector<float> p = probs.to_vector<float>();
    for (size_t i = 0; i < rows.size(); ++i) {
      CHECK(rows[i]["input"] == imgs[i]);
      auto got_labels = rows[i]["labels"].get<std::vector<std::string>>();
      auto got_probs = rows[i]["probs"].get<std::vector<double>>();
      REQUIRE(got_labels.size() == labels.size());  // top-k clipped to the number of labels
      double sum = 0;
      for (size_t k = 0; k < got_probs.size(); ++k) {
        sum += got_probs[k];
        if (k) CHECK(got_probs[k] <= got_probs[k - 1]);
        size_t c = std::find(labels.begin(), labels.end(), got_labels[k]) - labels.begin();
        REQUIRE(c < labels.size());
        CHECK_MESSAGE(std::fabs(got_probs[k] - p[i * labels.size() + c]) <= 1e-6,
                      str(imgs[i], " ", got_labels[k], ": got ", got_probs[k], ", in-process ", p[i * labels.size() + c]));
      }
      CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));
    }

    // The table format and the built-in template sets.
    RunResult t = run_vislang({"zero-shot", "--model", model_dir(), "--image", imgs[0], "--labels", "cat,dog", "--templates", "cifar"});
    REQUIRE_MESSAGE(t.status == 0, t.describe());
    CHECK(contains(t.out, imgs[0]));
    CHECK(contains(t.out, "%  cat"));
    RunResult bad = run_vislang({"zero-shot", "--model", model_dir(), "--image", imgs[0], "--labels", "cat", "--templates", "nonsense"});
    CHECK_MESSAGE(bad.status == 2, bad.describe());
    CHECK(contains(bad.err, "nonsense"));
  }

  TEST_CASE("cli: similarity prints logits_per_image") {
    if (!need_shared()) return;
    InProcess ip;
    const std::vector<std::string> imgs = {images_dir() + "/chelsea.png", images_dir() + "/camera.png"};
    const std::vector<std::string> texts = {"a cat", "a man with a camera", "a rocket"};
    RunResult r = run_vislang({"similarity", "--model", model_dir(), "--image", imgs[0], imgs[1], "--text", texts[0], texts[1], texts[2],
                 "--format", "jsonl"});
    REQUIRE_MESSAGE(r.status == 0, r.describe());
    std::vector<json> rows = r.jsonl();
    REQUIRE(rows.size() == 2);
    std::vector<std::vector<float>> got;
    for (const json& j : rows) {
      CHECK(j["texts"].get<std::vector<std::string>>() == texts);
      got.push_back(j["logits"].get<std::vector<float>>());
    }
    double d = max_diff(got, ip.model.logits_per_image(ip.images(imgs), ip.texts(texts)));
    CHECK_MESSAGE(d <= 1e-5, str("max |diff| logits ", d));
    RunResult t = run_vislang({"similarity", "--model", model_dir(), "--image", imgs[0], "--text", texts[0], texts[1]});
    REQUIRE_MESSAGE(t.status == 0, t.describe());
    CHECK(t.lines().size() == 3);  // caption, header, one row
  }

  TEST_CASE("cli: bench clip on the fixture model and on a random ViT-B/32 preset") {
    RunResult r = run_vislang({"bench", "clip", "--model", model_dir(), "--batch", "2", "--reps", "1", "--warmup", "0", "--format", "json"});
    REQUIRE_MESSAGE(r.status == 0, r.describe());
    json j = json::parse(r.out);
    CHECK(j["images_per_s"].get<double>() > 0);
    CHECK(j["texts_per_s"].get<double>() > 0);
    CHECK(j["peak_rss_mib"].get<double>() > 0);
    CHECK(j["random_weights"] == false);
    SafeTensorsFile f = SafeTensorsFile::open(model_dir() + "/model.safetensors");
    int64_t params = 0;
    for (const std::string& n : f.names()) params += shape_numel(f.info(n).shape);
    CHECK(j["params"].get<int64_t>() == params);

    // Random weights at ViT-B/32 shape: written by a child process, loaded with every name checked.
    RunResult p = run_vislang({"bench", "clip", "--model", "ViT-B/32", "--batch", "1", "--reps", "1", "--warmup", "0", "--tower",
                 "image", "--format", "json"});
    REQUIRE_MESSAGE(p.status == 0, p.describe());
    json pj = json::parse(p.out);
    CHECK(pj["random_weights"] == true);
    CHECK(pj["params"].get<int64_t>() == 151277313);  // OpenAI ViT-B/32: 151.28M parameters
    CHECK(pj["images_per_s"].get<double>() > 0);
    CHECK(pj["texts_per_s"].is_null());
  }
}
