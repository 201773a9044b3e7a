// tokenizer/wordpiece.cpp — BERT's WordPiece tokenizer (see wordpiece.h).
//
// Mirrors, function for function, Hugging Face transformers 5:
//   models/bert/tokenization_bert_legacy.py   BasicTokenizer (_clean_text, _tokenize_chinese_chars,
//                                             _run_strip_accents, _run_split_on_punc), WordpieceTokenizer,
//                                             load_vocab, build_inputs_with_special_tokens
//   tokenization_python.py                    PreTrainedTokenizer.tokenize (special tokens split off
//                                             first), truncate_sequences, _decode
//   tokenization_utils_base.py                clean_up_tokenization, padding
// https://github.com/huggingface/transformers/blob/main/src/transformers/models/bert/tokenization_bert_legacy.py
#include "tokenizer/wordpiece.h"

#include <algorithm>
#include <climits>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/text_clean.h"
#include "tokenizer/unicode.h"

namespace vislang {
namespace {

using nlohmann::json;
using unicode::Category;

constexpr const char* kWho = "WordPieceTokenizer";

// ---- BERT's character classes (tokenization_bert_legacy.py) -----------------------------------------
// _is_control: \t \n \r count as whitespace; everything else in category C*.
bool is_control(char32_t c) {
  if (c == U'\t' || c == U'\n' || c == U'\r') return false;
  return unicode::is_other(unicode::category(c));
}

// _is_whitespace: ' ', \t, \n, \r and category Zs.
bool is_whitespace(char32_t c) {
  if (c == U' ' || c == U'\t' || c == U'\n' || c == U'\r') return true;
  return unicode::category(c) == Category::Zs;
}

// _is_punctuation: every non-alphanumeric ASCII symbol ("^$`" are not P* but count), and P*.
bool is_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
  return unicode::is_punctuation(unicode::category(c));
}

// _is_chinese_char: the CJK Unified Ideographs blocks (not Hangul, Hiragana or Katakana).
bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Python's str.split(): the maximal runs of non-whitespace.
void split_py_whitespace(std::u32string_view s, std::vector<std::u32string>& out) {
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && text::py_isspace(s[i])) ++i;
    const size_t b = i;
    while (i < s.size() && !text::py_isspace(s[i])) ++i;
    if (i > b) out.emplace_back(s.substr(b, i - b));
  }
}

// _run_strip_accents: NFD, then drop category Mn.
std::u32string strip_accents(std::u32string_view s) {
  std::u32string d = unicode::nfd(s);
  d.erase(std::remove_if(d.begin(), d.end(), [](char32_t c) { return unicode::category(c) == Category::Mn; }),
          d.end());
  return d;
}

bool contains(const std::vector<std::u32string>& v, std::u32string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) s.replace(pos, from.size(), to);
}

bool is_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  VL_CHECK(f.good(), kWho, ": cannot open '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json read_json(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    throw Error(str(kWho, ": '", path, "' is not valid JSON: ", e.what()));
  }
}

// ---- tokenizer_config.json fields ----------------------------------------------------------------
struct ConfigReader {
  const json& j;
  const std::string& path;

  bool has(const char* field) const { return j.contains(field); }
  [[noreturn]] void fail(const std::string& field, const std::string& want) const {
    throw Error(str(kWho, ": '", path, "': field \"", field, "\" must be ", want, ", got ", j.at(field).dump()));
  }
  void get_bool(const char* field, bool& out) const {
    if (!has(field)) return;
    if (!j[field].is_boolean()) fail(field, "true or false");
    out = j[field].get<bool>();
  }
  // A special token: "text", {"content": "text", ...} (a serialized AddedToken) or null (none).
  static bool token_of(const json& v, std::string& out) {
    if (v.is_null()) { out.clear(); return true; }
    if (v.is_string()) { out = v.get<std::string>(); return true; }
    if (v.is_object() && v.contains("content") && v["content"].is_string()) {
      out = v["content"].get<std::string>();
      return true;
    }
    return false;
  }
  void get_token(const char* field, std::string& out) const {
    if (has(field) && !token_of(j[field], out)) fail(field, "a string, {\"content\": string} or null");
  }
  void get_token_list(const char* field, std::vector<std::string>& out) const {
    if (!has(field) || j[field].is_null()) return;
    if (!j[field].is_array()) fail(field, "a list of tokens");
    for (const json& v : j[field]) {
      std::string t;
      if (!token_of(v, t)) fail(field, "a list of strings or {\"content\": string}");
      if (!t.empty()) out.push_back(t);
    }
  }
  void get_side(const char* field, bool& left) const {
    if (!has(field)) return;
    const json& v = j[field];
    if (!v.is_string() || (v != "left" && v != "right")) fail(field, "\"left\" or \"right\"");
    left = v == "left";
  }
};

void push_unique(std::vector<std::string>& v, const std::string& s) {
  if (!s.empty() && std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

}  // namespace

// ---- loading -------------------------------------------------------------------------------------
void WordPieceTokenizer::load_vocab(const std::string& path) {
  VL_CHECK(is_file(path), kWho, ": no vocabulary file '", path, "'");
  const std::string data = read_file(path);
  // Python: open(path, encoding="utf-8").readlines(); universal newlines end a line at \n, \r\n, \r.
  size_t i = 0, line = 0;
  while (i < data.size()) {
    size_t e = i;
    while (e < data.size() && data[e] != '\n' && data[e] != '\r') ++e;
    const std::string token = data.substr(i, e - i);
    ++line;
    VL_CHECK(text::utf8_encode(text::utf8_decode(token)) == token, kWho, ": '", path, "' line ", line,
             " is not valid UTF-8");
    const int64_t id = static_cast<int64_t>(id_to_token_.size());
    auto [it, inserted] = vocab_.emplace(token, id);
    if (!inserted) {  // Python's dict keeps the last id; ids_to_tokens loses the earlier one
      id_to_token_[it->second].clear();
      it->second = id;
    }
    id_to_token_.push_back(token);
    if (e < data.size() && data[e] == '\r' && e + 1 < data.size() && data[e + 1] == '\n') ++e;
    i = e + 1;
  }
  VL_CHECK(!vocab_.empty(), kWho, ": '", path, "' is empty (expected one token per line)");
  for (const auto& [token, id] : vocab_) {
    const size_t n = text::utf8_decode(token).size();
    max_piece_cps_ = std::max(max_piece_cps_, n);
    if (token.compare(0, 2, "##") == 0) max_cont_piece_cps_ = std::max(max_cont_piece_cps_, n - 2);
  }
}

void WordPieceTokenizer::add_tokens(const std::string& where) {
  auto unk = vocab_.find(opt_.unk_token);
  VL_CHECK(!opt_.unk_token.empty() && unk != vocab_.end(), kWho, ": '", where, "' has no unknown token \"",
           opt_.unk_token, "\" (every word that WordPiece cannot cover becomes it)");
  unk_id_ = unk->second;
  VL_CHECK(opt_.max_input_chars_per_word > 0, kWho, ": max_input_chars_per_word must be positive, got ",
           opt_.max_input_chars_per_word);

  std::vector<std::string> special;
  for (const std::string* s : {&opt_.unk_token, &opt_.sep_token, &opt_.pad_token, &opt_.cls_token, &opt_.mask_token})
    push_unique(special, *s);
  for (const std::string& s : opt_.extra_special_tokens) push_unique(special, s);
  std::vector<std::string> plain;
  for (const std::string& s : opt_.added_tokens)
    if (std::find(special.begin(), special.end(), s) == special.end()) push_unique(plain, s);

  // HF adds the special tokens (and then the others) as added tokens: one already in the vocabulary
  // keeps its id; a new one gets the next free id.
  is_special_.assign(id_to_token_.size(), false);
  auto add = [&](const std::string& token, bool is_special) {
    auto it = vocab_.find(token);
    int64_t id;
    if (it != vocab_.end()) {
      id = it->second;
    } else {
      id = static_cast<int64_t>(id_to_token_.size());
      id_to_token_.push_back(token);
      is_special_.push_back(false);
    }
    added_.emplace(token, id);
    if (is_special) is_special_[id] = true;
    const std::u32string t = text::utf8_decode(token);
    split_off_.push_back(t);
    if (is_special) never_split_.push_back(t);
  };
  for (const std::string& s : special) add(s, true);
  for (const std::string& s : plain) add(s, false);
  for (const std::string& s : opt_.never_split) {
    keep_whole_.push_back(text::utf8_decode(s));
    never_split_.push_back(keep_whole_.back());
  }
  std::stable_sort(split_off_.begin(), split_off_.end(),
                   [](const std::u32string& a, const std::u32string& b) { return a.size() > b.size(); });
}

WordPieceTokenizer WordPieceTokenizer::from_vocab(const std::string& vocab_txt_path, const WordPieceOptions& options) {
  WordPieceTokenizer tok;
  tok.opt_ = options;
  tok.load_vocab(vocab_txt_path);
  tok.add_tokens(vocab_txt_path);
  return tok;
}

WordPieceTokenizer WordPieceTokenizer::from_folder(const std::string& dir) {
  const std::string vocab_path = dir + "/vocab.txt";
  VL_CHECK(is_file(vocab_path), kWho, ": no vocabulary file '", vocab_path, "' (a BERT tokenizer folder holds ",
           "vocab.txt and tokenizer_config.json)");
  WordPieceOptions opt;
  // Added tokens with the ids the folder says they have, checked after loading.
  std::vector<std::pair<int64_t, std::string>> expect_ids;
  std::string expect_where;

  const std::string config_path = dir + "/tokenizer_config.json";
  const std::string map_path = dir + "/special_tokens_map.json";
  json config = is_file(config_path) ? read_json(config_path) : json::object();
  VL_CHECK(config.is_object(), kWho, ": '", config_path, "' must hold a JSON object");
  // special_tokens_map.json fills in special tokens the config does not name.
  if (is_file(map_path)) {
    json map = read_json(map_path);
    VL_CHECK(map.is_object(), kWho, ": '", map_path, "' must hold a JSON object");
    for (auto it = map.begin(); it != map.end(); ++it)
      if (!config.contains(it.key())) config[it.key()] = it.value();
  }
  const ConfigReader r{config, config_path};
  r.get_bool("do_lower_case", opt.do_lower_case);
  if (r.has("strip_accents") && !config["strip_accents"].is_null()) {
    if (!config["strip_accents"].is_boolean()) r.fail("strip_accents", "true, false or null");
    opt.strip_accents = config["strip_accents"].get<bool>();
  }
  r.get_bool("tokenize_chinese_chars", opt.tokenize_chinese_chars);
  r.get_bool("clean_up_tokenization_spaces", opt.clean_up_tokenization_spaces);
  bool basic = true;
  r.get_bool("do_basic_tokenize", basic);
  VL_CHECK(basic, kWho, ": '", config_path, "': field \"do_basic_tokenize\": false is not supported");
  if (r.has("model_max_length")) {
    const json& v = config["model_max_length"];
    if (v.is_number_integer() && v.get<int64_t>() > 0) opt.model_max_length = v.get<int64_t>();
    else if (v.is_number() && v.get<double>() >= 9.2e18) opt.model_max_length = INT64_MAX;  // "no limit"
    else r.fail("model_max_length", "a positive integer");
  }
  r.get_token("unk_token", opt.unk_token);
  r.get_token("sep_token", opt.sep_token);
  r.get_token("pad_token", opt.pad_token);
  r.get_token("cls_token", opt.cls_token);
  r.get_token("mask_token", opt.mask_token);
  for (const char* f : {"bos_token", "eos_token"}) {
    std::string t;
    r.get_token(f, t);
    push_unique(opt.extra_special_tokens, t);
  }
  r.get_token_list("additional_special_tokens", opt.extra_special_tokens);
  r.get_token_list("extra_special_tokens", opt.extra_special_tokens);
  r.get_token_list("never_split", opt.never_split);
  r.get_side("truncation_side", opt.truncate_left);
  r.get_side("padding_side", opt.pad_left);
  if (r.has("added_tokens_decoder")) {
    const json& dec = config["added_tokens_decoder"];
    if (!dec.is_object()) r.fail("added_tokens_decoder", "an object {id: {\"content\": ...}}");
    for (auto it = dec.begin(); it != dec.end(); ++it) {
      std::string content;
      int64_t id = -1;
      try {
        id = std::stoll(it.key());
      } catch (const std::exception&) {
      }
      const json& v = it.value();
      if (id < 0 || !v.is_object() || !ConfigReader::token_of(v, content) || content.empty())
        throw Error(str(kWho, ": '", config_path, "': field \"added_tokens_decoder\" entry \"", it.key(),
                        "\" must be id: {\"content\": string, \"special\": bool}"));
      const bool special = v.value("special", false);
      push_unique(special ? opt.extra_special_tokens : opt.added_tokens, content);
      expect_ids.emplace_back(id, content);
    }
    expect_where = config_path + "': field \"added_tokens_decoder";
  }
  const std::string added_path = dir + "/added_tokens.json";
  if (is_file(added_path)) {
    const json added = read_json(added_path);
    VL_CHECK(added.is_object(), kWho, ": '", added_path, "' must hold an object {token: id}");
    std::vector<std::pair<int64_t, std::string>> by_id;
    for (auto it = added.begin(); it != added.end(); ++it) {
      VL_CHECK(it.value().is_number_integer(), kWho, ": '", added_path, "': the id of \"", it.key(),
               "\" must be an integer");
      by_id.emplace_back(it.value().get<int64_t>(), it.key());
    }
    std::sort(by_id.begin(), by_id.end());
    for (const auto& [id, token] : by_id) {
      if (std::find(opt.extra_special_tokens.begin(), opt.extra_special_tokens.end(), token) ==
          opt.extra_special_tokens.end())
        push_unique(opt.added_tokens, token);
    }
    if (expect_ids.empty()) {
      expect_ids = by_id;
      expect_where = added_path;
    }
  }
  // Added tokens are numbered in id order.
  std::sort(expect_ids.begin(), expect_ids.end());
  auto order = [&](std::vector<std::string>& list) {
    std::stable_sort(list.begin(), list.end(), [&](const std::string& a, const std::string& b) {
      auto rank = [&](const std::string& s) {
        for (const auto& [id, t] : expect_ids)
          if (t == s) return id;
        return int64_t(INT64_MAX);
      };
      return rank(a) < rank(b);
    });
  };
  order(opt.extra_special_tokens);
  order(opt.added_tokens);

  WordPieceTokenizer tok;
  tok.opt_ = opt;
  tok.load_vocab(vocab_path);
  tok.add_tokens(is_file(config_path) ? config_path : vocab_path);
  for (const auto& [id, token] : expect_ids) {
    VL_CHECK(tok.token_to_id(token) == id, kWho, ": '", expect_where, "' gives \"", token, "\" id ", id,
             ", but vocab.txt and the earlier added tokens give it id ", tok.token_to_id(token));
  }
  return tok;
}

// ---- ids and tokens ------------------------------------------------------------------------------
int64_t WordPieceTokenizer::token_to_id(const std::string& token) const {
  auto a = added_.find(token);
  if (a != added_.end()) return a->second;
  auto v = vocab_.find(token);
  return v != vocab_.end() ? v->second : -1;
}

const std::string& WordPieceTokenizer::id_to_token(int64_t id) const {
  VL_CHECK(id >= 0 && id < vocab_size(), kWho, ": id ", id, " is outside the vocabulary (", vocab_size(), " tokens)");
  // A line that a later duplicate took the token from decodes to [UNK] (Python's ids_to_tokens).
  if (id_to_token_[id].empty()) {
    auto e = vocab_.find("");
    if (e == vocab_.end() || e->second != id) return opt_.unk_token;
  }
  return id_to_token_[id];
}

int64_t WordPieceTokenizer::special_id(const std::string& token, const char* what) const {
  const int64_t id = token.empty() ? -1 : token_to_id(token);
  VL_CHECK(id >= 0, kWho, ": this vocabulary has no ", what, " token",
           token.empty() ? std::string() : str(" \"", token, "\""));
  return id;
}

int64_t WordPieceTokenizer::cls_id() const { return special_id(opt_.cls_token, "cls"); }
int64_t WordPieceTokenizer::sep_id() const { return special_id(opt_.sep_token, "sep"); }
int64_t WordPieceTokenizer::pad_id() const { return special_id(opt_.pad_token, "pad"); }
int64_t WordPieceTokenizer::unk_id() const { return unk_id_; }
int64_t WordPieceTokenizer::mask_id() const { return special_id(opt_.mask_token, "mask"); }

// ---- tokenization --------------------------------------------------------------------------------
// WordpieceTokenizer.tokenize for one word: greedy longest-match-first.
void WordPieceTokenizer::wordpiece(std::u32string_view word, std::vector<int64_t>& ids,
                                   std::vector<std::string>* toks) const {
  const size_t n = word.size();
  auto unknown = [&] {
    ids.push_back(unk_id_);
    if (toks) toks->push_back(opt_.unk_token);
  };
  if (n > static_cast<size_t>(opt_.max_input_chars_per_word)) return unknown();
  // UTF-8 of the word and the byte offset of each codepoint, so pieces are substrings.
  std::string bytes;
  std::vector<size_t> off(n + 1);
  for (size_t i = 0; i < n; ++i) {
    off[i] = bytes.size();
    text::utf8_append(bytes, word[i]);
  }
  off[n] = bytes.size();
  const size_t first_ids = ids.size(), first_toks = toks ? toks->size() : 0;
  std::string key;
  size_t start = 0;
  while (start < n) {
    // No vocabulary token is longer than max_*_cps_, so longer candidates are skipped unlooked.
    size_t end = std::min(n, start + (start == 0 ? max_piece_cps_ : max_cont_piece_cps_));
    const std::unordered_map<std::string, int64_t>::const_iterator none = vocab_.end();
    auto found = none;
    for (; end > start; --end) {
      key.assign(start > 0 ? "##" : "");
      key.append(bytes, off[start], off[end] - off[start]);
      found = vocab_.find(key);
      if (found != none) break;
    }
    if (found == none) {  // is_bad: the whole word is [UNK]
      ids.resize(first_ids);
      if (toks) toks->resize(first_toks);
      return unknown();
    }
    // Python converts the token with the added tokens first; an added token in vocab.txt has its id.
    auto a = added_.find(key);
    ids.push_back(a != added_.end() ? a->second : found->second);
    if (toks) toks->push_back(key);
    start = end;
  }
}

// BasicTokenizer.tokenize then WordPiece, for text with no special tokens in it.
void WordPieceTokenizer::encode_piece(std::u32string_view text, std::vector<int64_t>& ids,
                                      std::vector<std::string>* toks) const {
  // 1. _clean_text, 2. _tokenize_chinese_chars.
  std::u32string clean;
  clean.reserve(text.size());
  for (char32_t c : text) {
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_whitespace(c)) {
      clean += U' ';
    } else if (opt_.tokenize_chinese_chars && is_cjk(c)) {
      clean += U' ';
      clean += c;
      clean += U' ';
    } else {
      clean += c;
    }
  }
  // 3. NFC, whitespace_tokenize.
  std::vector<std::u32string> words;
  split_py_whitespace(unicode::nfc(clean), words);
  const bool strip = opt_.do_lower_case ? opt_.strip_accents.value_or(true) : opt_.strip_accents.value_or(false);
  std::u32string pieces;  // the split tokens joined by ' ', as Python joins them before re-splitting
  for (std::u32string& w : words) {
    if (!contains(never_split_, w)) {
      // 4. lower case and accents.
      if (opt_.do_lower_case) w = text::py_lower(w);
      if (strip) w = strip_accents(w);
    }
    // 5. _run_split_on_punc.
    if (contains(never_split_, w)) {
      pieces += w;
      pieces += U' ';
      continue;
    }
    for (char32_t c : w) {
      if (is_punctuation(c)) {
        pieces += U' ';
        pieces += c;
        pieces += U' ';
      } else {
        pieces += c;
      }
    }
    pieces += U' ';
  }
  words.clear();
  split_py_whitespace(pieces, words);
  // 6. WordPiece per word (BertTokenizer._tokenize).
  for (const std::u32string& w : words) {
    if (!keep_whole_.empty() && contains(keep_whole_, w)) {
      const std::string w8 = text::utf8_encode(w);
      const int64_t id = token_to_id(w8);
      ids.push_back(id >= 0 ? id : unk_id_);
      if (toks) toks->push_back(w8);  // Python's tokenize() shows the word; its id is [UNK]
      continue;
    }
    wordpiece(w, ids, toks);
  }
}

// PreTrainedTokenizer.tokenize: special and added tokens, as spelled, are split off the text first
// (leftmost match, the longest at that position), the rest goes through encode_piece.
void WordPieceTokenizer::encode_into(const std::string& text, std::vector<int64_t>& ids,
                                     std::vector<std::string>* toks) const {
  const std::u32string s = text::utf8_decode(text);
  size_t begin = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    for (const std::u32string& t : split_off_) {
      if (s.compare(i, t.size(), t) != 0) continue;
      if (i > begin) encode_piece(std::u32string_view(s).substr(begin, i - begin), ids, toks);
      const std::string t8 = text::utf8_encode(t);
      ids.push_back(added_.at(t8));
      if (toks) toks->push_back(t8);
      begin = i + t.size();
      i = begin - 1;
      break;
    }
  }
  if (begin < s.size()) encode_piece(std::u32string_view(s).substr(begin), ids, toks);
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text) const {
  std::vector<int64_t> ids;
  std::vector<std::string> toks;
  encode_into(text, ids, &toks);
  return toks;
}

std::vector<int64_t> WordPieceTokenizer::encode(const std::string& text, bool add_special) const {
  std::vector<int64_t> ids;
  if (add_special) ids.push_back(cls_id());
  encode_into(text, ids, nullptr);
  if (add_special) ids.push_back(sep_id());
  return ids;
}

std::vector<int64_t> WordPieceTokenizer::encode_pair(const std::string& a, const std::string& b, bool add_special,
                                                     std::vector<int64_t>* token_type_ids) const {
  std::vector<int64_t> ids = encode(a, add_special);
  const size_t first = ids.size();
  encode_into(b, ids, nullptr);
  if (add_special) ids.push_back(sep_id());
  if (token_type_ids) {
    token_type_ids->assign(ids.size(), 1);
    std::fill(token_type_ids->begin(), token_type_ids->begin() + first, 0);
  }
  return ids;
}

// ---- batches -------------------------------------------------------------------------------------
WordPieceTokenizer::Batch WordPieceTokenizer::make_batch(const std::vector<std::string>& a,
                                                         const std::vector<std::string>* b, int64_t max_length,
                                                         bool pad_to_max, bool truncate) const {
  const char* who = b ? "WordPieceTokenizer::batch_pairs" : "WordPieceTokenizer::batch";
  VL_CHECK(!b || b->size() == a.size(), who, ": ", a.size(), " first texts but ", b->size(), " second texts");
  if (max_length <= 0) max_length = opt_.model_max_length;
  const int64_t n_special = b ? 3 : 2;
  VL_CHECK(max_length >= n_special || !truncate, who, ": max_length ", max_length, " leaves no room for the ",
           n_special, " special tokens");
  VL_CHECK(max_length < INT64_MAX || !pad_to_max, who,
           ": pad_to_max needs a max_length (the tokenizer config sets no model_max_length)");
  const int64_t cls = cls_id(), sep = sep_id(), pad = pad_id();

  std::vector<std::vector<int64_t>> rows(a.size()), types(a.size());
  int64_t longest = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    std::vector<int64_t> x, y;
    encode_into(a[i], x, nullptr);
    if (b) encode_into((*b)[i], y, nullptr);
    const int64_t total = static_cast<int64_t>(x.size() + y.size()) + n_special;
    if (total > max_length) {
      VL_CHECK(truncate, who, ": text ", i, " is ", total, " tokens with the special tokens, more than max_length ",
               max_length, " (pass truncate=true)");
      // truncate_sequences: "longest_first" (only_first for a single text).
      const int64_t remove = total - max_length;
      int64_t rx = remove, ry = 0;
      if (b) {
        const int64_t lx = x.size(), ly = y.size();
        const int64_t first_remove = std::min(std::abs(ly - lx), remove), second_remove = remove - first_remove;
        if (lx > ly) {
          rx = first_remove + second_remove / 2;
          ry = second_remove - second_remove / 2;
        } else {
          rx = second_remove / 2;
          ry = first_remove + second_remove - second_remove / 2;
        }
      }
      auto cut = [&](std::vector<int64_t>& v, int64_t k) {
        if (opt_.truncate_left) v.erase(v.begin(), v.begin() + k);
        else v.resize(v.size() - k);
      };
      cut(x, rx);
      cut(y, ry);
    }
    std::vector<int64_t>& row = rows[i];
    row.push_back(cls);
    row.insert(row.end(), x.begin(), x.end());
    row.push_back(sep);
    types[i].assign(row.size(), 0);
    if (b) {
      row.insert(row.end(), y.begin(), y.end());
      row.push_back(sep);
      types[i].resize(row.size(), 1);
    }
    longest = std::max(longest, static_cast<int64_t>(row.size()));
  }
  const int64_t T = pad_to_max ? std::max(max_length, longest) : longest;
  const int64_t B = static_cast<int64_t>(a.size());
  std::vector<int64_t> ids(B * T, pad), mask(B * T, 0), tt(B * T, 0);
  for (int64_t i = 0; i < B; ++i) {
    const int64_t n = static_cast<int64_t>(rows[i].size());
    const int64_t o = i * T + (opt_.pad_left ? T - n : 0);
    std::copy(rows[i].begin(), rows[i].end(), ids.begin() + o);
    std::fill(mask.begin() + o, mask.begin() + o + n, 1);
    std::copy(types[i].begin(), types[i].end(), tt.begin() + o);
  }
  Batch out;
  out.ids = Tensor::from_vector(ids, {B, T});
  out.attention_mask = Tensor::from_vector(mask, {B, T});
  out.token_type_ids = Tensor::from_vector(tt, {B, T});
  return out;
}

WordPieceTokenizer::Batch WordPieceTokenizer::batch(const std::vector<std::string>& texts, int64_t max_length,
                                                    bool pad_to_max, bool truncate) const {
  return make_batch(texts, nullptr, max_length, pad_to_max, truncate);
}

WordPieceTokenizer::Batch WordPieceTokenizer::batch_pairs(const std::vector<std::string>& texts_a,
                                                          const std::vector<std::string>& texts_b,
                                                          int64_t max_length, bool pad_to_max, bool truncate) const {
  return make_batch(texts_a, &texts_b, max_length, pad_to_max, truncate);
}

// ---- decoding ------------------------------------------------------------------------------------
std::string WordPieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  // convert_ids_to_tokens, then convert_tokens_to_string: " ".join(tokens).replace(" ##", "").strip().
  std::string joined;
  bool first = true;
  for (int64_t id : ids) {
    const std::string& t = id_to_token(id);
    if (skip_special && is_special_[id]) continue;
    if (!first) joined += ' ';
    joined += t;
    first = false;
  }
  replace_all(joined, " ##", "");
  std::string out = text::utf8_encode(text::py_strip(text::utf8_decode(joined)));
  if (opt_.clean_up_tokenization_spaces) {
    // clean_up_tokenization, in its order.
    static const char* const kPairs[][2] = {{" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},
                                            {" ' ", "'"},  {" n't", "n't"}, {" 'm", "'m"},   {" 's", "'s"},
                                            {" 've", "'ve"}, {" 're", "'re"}};
    for (const auto& p : kPairs) replace_all(out, p[0], p[1]);
  }
  return out;
}

}  // namespace vislang
