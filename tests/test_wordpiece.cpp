// tests/test_wordpiece.cpp — the BERT WordPiece tokenizer against Hugging Face, id for id.
//
// Fixtures (tests/fixtures/wordpiece/, written by tools/reference/make_wordpiece_fixtures.py):
//   uncased/, cased/, blip2/   tokenizer folders as transformers' save_pretrained writes them (small
//                              trained vocabularies; blip2/ adds the "[DEC]" bos token)
//   strings.json.gz            >= 10,000 generated strings with their category
//   ids_<variant>.json.gz      the slow BertTokenizer's ids for every string (what we must match) and,
//                              where it differs, BertTokenizerFast's (reported, not required)
//   cases.json.gz              batches (padding, truncation, pairs), decode, tokenize, invalid UTF-8
//   unicode.json.gz            NFD/NFC and general categories from Python's unicodedata
// VISLANG_WORDPIECE_FULL=<dir> adds the --full check (a 30,522-token vocabulary, not committed).
#include <doctest/doctest.h>

#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tests/test_util.h"
#include "tokenizer/text_clean.h"
#include "tokenizer/unicode.h"
#include "tokenizer/wordpiece.h"

using namespace vislang;
using nlohmann::json;
using vislang::test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr int kFixtureFormat = 1;
const char* const kRegenerate = "re-run: python tools/reference/make_wordpiece_fixtures.py";

std::string fixture_dir() { return std::string(VISLANG_SOURCE_DIR) + "/tests/fixtures/wordpiece"; }

// A gzip'd JSON fixture, with its format checked.
json load_gz_json(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error(str("cannot open fixture '", path, "' (", kRegenerate, ")"));
  std::string text;
  std::vector<char> chunk(1 << 16);
  for (int got; (got = gzread(f, chunk.data(), unsigned(chunk.size()))) > 0;) text.append(chunk.data(), size_t(got));
  gzclose(f);
  json j = json::parse(text);
  if (j.value("format", -1) != kFixtureFormat)
    throw Error(str("fixture '", path, "' has format ", j.value("format", -1), ", expected ", kFixtureFormat, " (",
                    kRegenerate, ")"));
  return j;
}

std::string show(const std::vector<int64_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

std::string quoted(const std::string& s) { return json(s).dump(-1, ' ', true, json::error_handler_t::replace); }

std::vector<int64_t> row(const Tensor& t, int64_t i) {
  std::vector<int64_t> all = t.to_vector<int64_t>();
  const int64_t T = t.shape()[1];
  return std::vector<int64_t>(all.begin() + i * T, all.begin() + (i + 1) * T);
}

// The tokenizer of a fixture variant: its folder, with the options the generator passed to
// from_pretrained on top of the folder's config.
WordPieceTokenizer variant_tokenizer(const std::string& root, const json& spec) {
  const std::string folder = root + "/" + spec["folder"].get<std::string>();
  WordPieceTokenizer base = WordPieceTokenizer::from_folder(folder);
  const json& o = spec["options"];
  if (o.empty()) return base;
  WordPieceOptions opt = base.options();
  if (o.contains("strip_accents")) opt.strip_accents = o["strip_accents"].get<bool>();
  if (o.contains("tokenize_chinese_chars")) opt.tokenize_chinese_chars = o["tokenize_chinese_chars"].get<bool>();
  return WordPieceTokenizer::from_vocab(folder + "/vocab.txt", opt);
}

struct CorpusResult {
  size_t total = 0, identical = 0, fast_differs = 0, fast_identical = 0;
};

// Every string through `variant`; mismatches are printed (the first 10) with the reference ids.
CorpusResult run_corpus(const std::string& root, const json& strings, const std::string& variant) {
  const json spec = load_gz_json(root + "/ids_" + variant + ".json.gz");
  const WordPieceTokenizer tok = variant_tokenizer(root, spec);
  const json& texts = strings["strings"];
  const json& ids = spec["ids"];
  const json& fast = spec["fast_diff"];
  REQUIRE(texts.size() == ids.size());
  CorpusResult r;
  std::map<std::string, int> bad_by_category;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    const std::vector<int64_t> want = ids[i].get<std::vector<int64_t>>();
    const std::vector<int64_t> got = tok.encode(text, false);
    ++r.total;
    const auto f = fast.find(std::to_string(i));
    if (f != fast.end()) {
      ++r.fast_differs;
      if (f->get<std::vector<int64_t>>() == got) ++r.fast_identical;
    }
    if (got == want) {
      ++r.identical;
      continue;
    }
    const std::string cat = strings["categories"][i].get<std::string>();
    if (bad_by_category[cat]++ < 3 && r.total - r.identical <= 10)
      MESSAGE(variant, " string ", i, " (", cat, ") ", quoted(text), "\n  got      ", show(got), "\n  expected ",
              show(want));
  }
  for (const auto& [cat, n] : bad_by_category) MESSAGE(variant, ": ", n, " mismatches in category ", cat);
  return r;
}

json cases() { return load_gz_json(fixture_dir() + "/cases.json.gz"); }

std::map<std::string, WordPieceTokenizer> case_tokenizers() {
  std::map<std::string, WordPieceTokenizer> m;
  for (const char* v : {"uncased", "cased", "blip2"})
    m.emplace(v, WordPieceTokenizer::from_folder(fixture_dir() + "/" + v));
  return m;
}

// `fn` throws a vislang::Error whose message contains `part`.
template <typename F>
void expect_error(F fn, const std::string& part) {
  const std::string message = test::error_of(fn);
  CHECK_MESSAGE(test::contains(message, part), "message: ", message, "\n  lacks: ", part);
}

}  // namespace

TEST_SUITE("wordpiece") {
  TEST_CASE("every fixture string gives the slow BertTokenizer's ids, in every variant") {
    const json strings = load_gz_json(fixture_dir() + "/strings.json.gz");
    REQUIRE(strings["strings"].size() >= 10000);
    for (const std::string v : {"uncased", "cased", "uncased_keep_accents", "cased_strip_no_cjk", "blip2"}) {
      CAPTURE(v);
      const CorpusResult r = run_corpus(fixture_dir(), strings, v);
      MESSAGE(v, ": ", r.identical, "/", r.total, " identical to BertTokenizer (slow); BertTokenizerFast differs from ",
              "it on ", r.fast_differs, " strings (we agree with fast on ", r.fast_identical, " of those)");
      CHECK(r.identical == r.total);
    }
  }

  TEST_CASE("encode adds [CLS] and [SEP]; tokenize gives the slow tokenizer's tokens") {
    auto toks = case_tokenizers();
    const WordPieceTokenizer& t = toks.at("uncased");
    CHECK(t.encode("") == std::vector<int64_t>{t.cls_id(), t.sep_id()});
    std::vector<int64_t> inner = t.encode("Hello, world!", false), outer = t.encode("Hello, world!");
    inner.insert(inner.begin(), t.cls_id());
    inner.push_back(t.sep_id());
    CHECK(inner == outer);
    int n = 0;
    const json all = cases();
    for (const json& c : all["tokenize"]) {
      const std::vector<std::string> want = c["tokens"].get<std::vector<std::string>>();
      const std::vector<std::string> got = toks.at(c["variant"].get<std::string>()).tokenize(c["text"].get<std::string>());
      CHECK_MESSAGE(got == want, c["variant"].get<std::string>(), " ", quoted(c["text"].get<std::string>()));
      ++n;
    }
    CHECK(n >= 100);
  }

  TEST_CASE("batches: padding, truncation, masks and pairs as tokenizer(...) gives them") {
    auto toks = case_tokenizers();
    int n = 0, pairs = 0, left = 0;
    const json all = cases();
    for (const json& c : all["batch"]) {
      const WordPieceTokenizer& base = toks.at(c["variant"].get<std::string>());
      WordPieceOptions sided = base.options();
      sided.truncate_left = sided.pad_left = c.value("side", "right") == "left";
      left += sided.pad_left;
      const WordPieceTokenizer t = WordPieceTokenizer::from_vocab(
          fixture_dir() + "/" + c["variant"].get<std::string>() + "/vocab.txt", sided);
      const auto texts = c["texts"].get<std::vector<std::string>>();
      const int64_t max_length = c["max_length"].get<int64_t>();
      const bool pad_to_max = c["padding"] == "max_length";
      const bool truncate = c.value("truncation", true);
      WordPieceTokenizer::Batch b =
          c["pairs"].is_null() ? t.batch(texts, max_length, pad_to_max, truncate)
                               : t.batch_pairs(texts, c["pairs"].get<std::vector<std::string>>(), max_length,
                                               pad_to_max, truncate);
      pairs += !c["pairs"].is_null();
      const auto ids = c["ids"].get<std::vector<std::vector<int64_t>>>();
      const auto mask = c["attention_mask"].get<std::vector<std::vector<int64_t>>>();
      const auto types = c["token_type_ids"].get<std::vector<std::vector<int64_t>>>();
      REQUIRE(b.ids.shape() == Shape{int64_t(ids.size()), int64_t(ids[0].size())});
      CHECK(b.ids.dtype() == DType::I64);
      for (size_t i = 0; i < ids.size(); ++i) {
        CAPTURE(i);
        CHECK_MESSAGE(row(b.ids, i) == ids[i], "batch ", n, " ", quoted(texts[i]), " got ", show(row(b.ids, i)),
                      " expected ", show(ids[i]));
        CHECK(row(b.attention_mask, i) == mask[i]);
        CHECK(row(b.token_type_ids, i) == types[i]);
      }
      ++n;
    }
    CHECK(n >= 100);
    CHECK(pairs >= 50);
    CHECK(left >= 20);
  }

  TEST_CASE("decode joins pieces, drops special tokens and cleans up spaces as Python does") {
    auto toks = case_tokenizers();
    int n = 0;
    const json all = cases();
    for (const json& c : all["decode"]) {
      const WordPieceTokenizer& t = toks.at(c["variant"].get<std::string>());
      const auto ids = c["ids"].get<std::vector<int64_t>>();
      CHECK_MESSAGE(t.decode(ids, c["skip_special"].get<bool>()) == c["text"].get<std::string>(), show(ids));
      ++n;
    }
    CHECK(n >= 300);
    const WordPieceTokenizer& t = toks.at("uncased");
    expect_error([&] { t.decode({t.vocab_size()}); }, "outside the vocabulary");
  }

  TEST_CASE("invalid UTF-8 reads as U+FFFD, as bytes.decode(errors='replace')") {
    auto toks = case_tokenizers();
    const json all = cases();
    for (const json& c : all["invalid_utf8"]) {
      const std::string hex = c["hex"].get<std::string>();
      std::string bytes;
      for (size_t i = 0; i + 1 < hex.size(); i += 2) bytes += char(std::stoi(hex.substr(i, 2), nullptr, 16));
      CHECK_MESSAGE(toks.at(c["variant"].get<std::string>()).encode(bytes, false) == c["ids"].get<std::vector<int64_t>>(),
                    hex);
    }
  }

  TEST_CASE("tokenizer folders: special tokens, BLIP-2's [DEC], config fields") {
    const WordPieceTokenizer u = WordPieceTokenizer::from_folder(fixture_dir() + "/uncased");
    CHECK(u.pad_id() == 0);
    CHECK(u.unk_id() == 1);
    CHECK(u.cls_id() == 2);
    CHECK(u.sep_id() == 3);
    CHECK(u.mask_id() == 4);
    CHECK(u.options().do_lower_case);
    CHECK(u.options().model_max_length == 64);
    CHECK_FALSE(WordPieceTokenizer::from_folder(fixture_dir() + "/cased").options().do_lower_case);
    const WordPieceTokenizer b = WordPieceTokenizer::from_folder(fixture_dir() + "/blip2");
    CHECK(b.vocab_size() == u.vocab_size() + 1);
    CHECK(b.token_to_id("[DEC]") == u.vocab_size());
    CHECK(b.id_to_token(b.token_to_id("[DEC]")) == "[DEC]");
    const std::vector<int64_t> ids = b.encode("a [DEC] b", false);
    CHECK(std::count(ids.begin(), ids.end(), b.token_to_id("[DEC]")) == 1);
    CHECK(b.decode({b.cls_id(), b.token_to_id("[DEC]"), b.sep_id()}) == "");
    CHECK(b.decode({b.cls_id(), b.token_to_id("[DEC]"), b.sep_id()}, false) == "[CLS] [DEC] [SEP]");
  }

  TEST_CASE("never_split words are kept whole and looked up as they are") {
    // Expected values from BertTokenizerLegacy.from_pretrained(dir, never_split=["Hello!", "zzzz"]).
    TempDir d;
    const std::string folder = d.dir().string();
    d.write("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nsay\nnow\nhello\n!\nHello!\n");
    d.write("tokenizer_config.json", "{\"do_lower_case\": false, \"never_split\": [\"Hello!\", \"zzzz\"]}");
    const WordPieceTokenizer t = WordPieceTokenizer::from_folder(folder);
    using Strings = std::vector<std::string>;
    using Ids = std::vector<int64_t>;
    CHECK(t.tokenize("say Hello! now zzzz") == Strings{"say", "Hello!", "now", "zzzz"});
    CHECK(t.encode("say Hello! now zzzz", false) == Ids{5, 9, 6, 1});
    CHECK(t.tokenize("say hello!") == Strings{"say", "hello", "!"});
    CHECK(t.encode("SAY HELLO!", false) == Ids{1, 1, 8});
  }

  TEST_CASE("batch arguments are checked") {
    const WordPieceTokenizer t = WordPieceTokenizer::from_folder(fixture_dir() + "/uncased");
    expect_error([&] { t.batch({"a b c d e f"}, 4, true, false); }, "more than max_length 4");
    expect_error([&] { t.batch({"a"}, 1); }, "no room");
    expect_error([&] { t.batch_pairs({"a"}, {}, 8); }, "1 first texts but 0 second texts");
    const WordPieceTokenizer::Batch b = t.batch({"a", "a b c"}, 0, false);
    CHECK(b.ids.shape() == Shape{2, 5});
    CHECK(t.batch({"a"}).ids.shape() == Shape{1, 64});  // model_max_length
  }

  TEST_CASE("load errors name the file and the line or field") {
    TempDir d;
    const std::string folder = d.dir().string();
    expect_error([&] { WordPieceTokenizer::from_folder(folder); }, folder + "/vocab.txt");
    const std::string vocab = d.write("vocab.txt", "");
    expect_error([&] { WordPieceTokenizer::from_folder(folder); }, "vocab.txt' is empty");
    d.write("vocab.txt", "[PAD]\nhello\n");
    expect_error([&] { WordPieceTokenizer::from_folder(folder); }, "no unknown token \"[UNK]\"");
    expect_error([&] { WordPieceTokenizer::from_vocab(vocab); }, vocab);
    d.write("vocab.txt", "[PAD]\n[UNK]\nok\nbad\xff\n");
    expect_error([&] { WordPieceTokenizer::from_folder(folder); }, "vocab.txt' line 4 is not valid UTF-8");
    d.write("vocab.txt", "[PAD]\r\n[UNK]\r\n[CLS]\r[SEP]\nhello\n");
    const std::string config = d.write("tokenizer_config.json", "{\"do_lower_case\": tru");
    expect_error([&] { WordPieceTokenizer::from_folder(folder); }, "'" + config + "' is not valid JSON");
    d.write("tokenizer_config.json", "{\"do_lower_case\": \"yes\"}");
    expect_error([&] { WordPieceTokenizer::from_folder(folder); }, "'" + config + "': field \"do_lower_case\" must be true or false");
    d.write("tokenizer_config.json", "{\"unk_token\": 3}");
    expect_error([&] { WordPieceTokenizer::from_folder(folder); }, "field \"unk_token\"");
    d.write("tokenizer_config.json", "{\"unk_token\": \"<unk>\"}");
    expect_error([&] { WordPieceTokenizer::from_folder(folder); }, "'" + config + "' has no unknown token \"<unk>\"");
    d.write("tokenizer_config.json", "{\"added_tokens_decoder\": {\"7\": {\"content\": \"[NEW]\", \"special\": true}}}");
    expect_error([&] { WordPieceTokenizer::from_folder(folder); }, "added_tokens_decoder");
    d.write("tokenizer_config.json", "{\"model_max_length\": 1000000000000000019884624838656, \"do_lower_case\": false}");
    const WordPieceTokenizer t = WordPieceTokenizer::from_folder(folder);
    CHECK(t.options().model_max_length == INT64_MAX);
    // \r\n, \r and \n all end lines; [MASK], missing from vocab.txt, is added after it (as HF does).
    CHECK(t.vocab_size() == 6);
    CHECK(t.sep_id() == 3);
    CHECK(t.mask_id() == 5);
    CHECK(t.encode("hello") == std::vector<int64_t>{2, 4, 3});
  }

  TEST_CASE("NFD, NFC and general categories agree with Python's unicodedata") {
    const json u = load_gz_json(fixture_dir() + "/unicode.json.gz");
    CHECK(std::string(unicode::unidata_version()) == u["versions"]["unicodedata"].get<std::string>());
    size_t n = 0, bad = 0;
    for (const json& c : u["normalization"]) {
      const std::u32string s = text::utf8_decode(c[0].get<std::string>());
      const std::u32string want_d = c[1].is_null() ? s : text::utf8_decode(c[1].get<std::string>());
      const std::u32string want_c = c[2].is_null() ? s : text::utf8_decode(c[2].get<std::string>());
      const bool ok = unicode::nfd(s) == want_d && unicode::nfc(s) == want_c;
      if (!ok && bad++ < 10) MESSAGE("normalization of ", quoted(c[0].get<std::string>()));
      ++n;
    }
    CHECK(n > 5000);
    CHECK(bad == 0);
    size_t cats = 0;
    for (const json& c : u["categories"]) {
      const char32_t cp = c[0].get<char32_t>();
      CHECK_MESSAGE(unicode::category_name(unicode::category(cp)) == c[1].get<std::string>(), "U+", std::hex, uint32_t(cp));
      ++cats;
    }
    CHECK(cats > 5000);
  }

  TEST_CASE("--full: a 30,522-token vocabulary (VISLANG_WORDPIECE_FULL)") {
    const char* dir = std::getenv("VISLANG_WORDPIECE_FULL");
    if (!dir || !*dir) {
      MESSAGE("skipped: set VISLANG_WORDPIECE_FULL to the folder make_wordpiece_fixtures.py --full writes");
      return;
    }
    const json strings = load_gz_json(std::string(dir) + "/strings.json.gz");
    const CorpusResult r = run_corpus(dir, strings, "uncased");
    MESSAGE("--full: ", r.identical, "/", r.total, " identical to BertTokenizer (slow); fast differs on ", r.fast_differs);
    CHECK(r.identical == r.total);
  }
}
