// tokenizer/clip_tokenizer.cpp — CLIP's byte-level BPE tokenizer (see clip_tokenizer.h).
//
// Mirrors, function for function:
//   https://github.com/openai/CLIP/blob/main/clip/simple_tokenizer.py  (SimpleTokenizer, bytes_to_unicode)
//   https://github.com/openai/CLIP/blob/main/clip/clip.py              (tokenize, truncate=)
//   https://github.com/mlfoundations/open_clip/blob/main/src/open_clip/tokenizer.py
// Symbols are kept as vocabulary ids rather than strings: two strings are the same symbol exactly
// when they have the same id, because the id map is built from the strings (last duplicate wins, as
// in Python's dict), so the merge order and results are those of the string version.
#include "tokenizer/clip_tokenizer.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/text_clean.h"

namespace vislang {

// ---- per-word cache ------------------------------------------------------------------------------
struct ClipTokenizer::WordCache {
  mutable std::shared_mutex mu;
  std::unordered_map<std::string, std::vector<int32_t>> words;

  bool find(const std::string& word, std::vector<int32_t>& out) const {
    std::shared_lock<std::shared_mutex> lock(mu);
    auto it = words.find(word);
    if (it == words.end()) return false;
    out.insert(out.end(), it->second.begin(), it->second.end());
    return true;
  }
  void insert(const std::string& word, const int32_t* ids, size_t n) {
    if (word.size() > kCacheMaxWordBytes) return;
    std::unique_lock<std::shared_mutex> lock(mu);
    if (words.size() >= kCacheMaxEntries) words.clear();  // bounded: start over rather than grow
    words.emplace(word, std::vector<int32_t>(ids, ids + n));
  }
  size_t size() const {
    std::shared_lock<std::shared_mutex> lock(mu);
    return words.size();
  }
};

namespace {

constexpr int kMaxMerges = 49152 - 256 - 2;  // Python: merges[1 : 49152-256-2+1]
const char* const kEndOfWord = "</w>";

// bytes_to_unicode(): printable bytes map to themselves, the other 68 to U+0100.. in byte order.
// Returns the codepoint of each byte and the bytes in the order Python's dict lists them.
struct ByteSymbols {
  char32_t cp[256];
  int order[256];
  int byte_of[512];  // codepoint → byte, -1 where none (all symbols are below U+0144)
  ByteSymbols() {
    int k = 0;
    bool printable[256] = {};
    for (int b = '!'; b <= '~'; ++b) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
    for (int b = 0; b < 256; ++b)
      if (printable[b]) { cp[b] = char32_t(b); order[k++] = b; }
    int n = 0;
    for (int b = 0; b < 256; ++b)
      if (!printable[b]) { cp[b] = char32_t(256 + n++); order[k++] = b; }
    std::fill(std::begin(byte_of), std::end(byte_of), -1);
    for (int b = 0; b < 256; ++b) byte_of[cp[b]] = b;
  }
  std::string symbol(int b) const {
    std::string s;
    text::utf8_append(s, cp[b]);
    return s;
  }
};

const ByteSymbols& byte_symbols() {
  static const ByteSymbols table;
  return table;
}

// Python str.split() of one line (UTF-8), back to UTF-8 parts.
std::vector<std::string> split_ws(const std::string& line) {
  std::vector<std::string> parts;
  std::u32string u = text::utf8_decode(line);
  size_t i = 0;
  while (i < u.size()) {
    while (i < u.size() && text::py_isspace(u[i])) ++i;
    size_t j = i;
    while (j < u.size() && !text::py_isspace(u[j])) ++j;
    if (j > i) parts.push_back(text::utf8_encode(std::u32string_view(u).substr(i, j - i)));
    i = j;
  }
  return parts;
}

std::string read_gz(const std::string& path, const char* who) {
  gzFile f = gzopen(path.c_str(), "rb");
  VL_CHECK(f != nullptr, who, ": cannot open '", path, "'");
  std::string data;
  char buf[1 << 16];
  for (;;) {
    int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(f, &err);
      gzclose(f);
      VL_FAIL(who, ": reading '", path, "' failed: ", msg);
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  gzclose(f);
  return data;
}

std::string read_file(const std::string& path, const char* who) {
  std::ifstream f(path, std::ios::binary);
  VL_CHECK(f.good(), who, ": cannot open '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> split_lines(const std::string& data) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (;;) {
    size_t nl = data.find('\n', start);
    if (nl == std::string::npos) { lines.push_back(data.substr(start)); break; }
    lines.push_back(data.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

// The first `max_cp` codepoints of a UTF-8 text, with "..." when cut; for error messages.
std::string preview(const std::string& s, size_t max_cp = 40) {
  std::u32string u = text::utf8_decode(s);
  if (u.size() <= max_cp) return text::utf8_encode(u);
  return text::utf8_encode(std::u32string_view(u).substr(0, max_cp)) + "...";
}

// Does the ASCII pattern `pat` (lower case) match t at i under re.IGNORECASE?
bool match_ci(std::u32string_view t, size_t i, const std::string& pat) {
  if (pat.empty() || t.size() - i < pat.size()) return false;
  for (size_t k = 0; k < pat.size(); ++k)
    if (!text::ascii_ci_equal(t[i + k], pat[k])) return false;
  return true;
}

// Python's pre-tokenizer regex.findall over cleaned text: (begin, end) of each match.
void find_words(std::u32string_view t, const std::string& sot, const std::string& eot,
                std::vector<std::pair<size_t, size_t>>& spans) {
  static const char* const kContractions[] = {"s", "t", "re", "ve", "m", "ll", "d"};
  using text::TokenClass;
  const size_t n = t.size();
  size_t i = 0;
  while (i < n) {
    // Alternatives in the pattern's order; the first that matches at i wins.
    if (match_ci(t, i, sot)) { spans.emplace_back(i, i + sot.size()); i += sot.size(); continue; }
    if (match_ci(t, i, eot)) { spans.emplace_back(i, i + eot.size()); i += eot.size(); continue; }
    if (t[i] == U'\'') {
      bool matched = false;
      for (const char* c : kContractions) {
        std::string pat = c;
        if (match_ci(t, i + 1, pat)) {
          spans.emplace_back(i, i + 1 + pat.size());
          i += 1 + pat.size();
          matched = true;
          break;
        }
      }
      if (matched) continue;
    }
    const TokenClass cls = text::token_class(t[i]);
    if (cls == TokenClass::kLetter || cls == TokenClass::kOther) {  // [\p{L}]+ or [^\s\p{L}\p{N}]+
      size_t j = i + 1;
      while (j < n && text::token_class(t[j]) == cls) ++j;
      spans.emplace_back(i, j);
      i = j;
    } else if (cls == TokenClass::kNumber) {  // [\p{N}]: one digit per word
      spans.emplace_back(i, i + 1);
      ++i;
    } else {  // \s, or nothing matches here: findall moves on
      ++i;
    }
  }
}

}  // namespace

ClipTokenizer::ClipTokenizer() : cache_(std::make_unique<WordCache>()) {}
ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;
ClipTokenizer::~ClipTokenizer() = default;

// ---- loading -------------------------------------------------------------------------------------
ClipTokenizer ClipTokenizer::from_bpe_gz(const std::string& path, ClipFlavor flavor) {
  const char* who = "ClipTokenizer::from_bpe_gz";
  const std::vector<std::string> lines = split_lines(read_gz(path, who));
  std::vector<std::pair<std::string, std::string>> merges;
  for (size_t i = 1; i < lines.size() && merges.size() < size_t(kMaxMerges); ++i) {
    std::vector<std::string> parts = split_ws(lines[i]);
    VL_CHECK(parts.size() == 2, who, ": '", path, "' line ", i + 1, " is not a merge \"a b\": \"",
             preview(lines[i]), "\"");
    merges.emplace_back(std::move(parts[0]), std::move(parts[1]));
  }
  VL_CHECK(!merges.empty(), who, ": '", path, "' has no merges");

  ClipTokenizer tok;
  tok.flavor_ = flavor;
  tok.sot_text_ = flavor == ClipFlavor::kOpenAI ? "<|startoftext|>" : "<start_of_text>";
  tok.eot_text_ = flavor == ClipFlavor::kOpenAI ? "<|endoftext|>" : "<end_of_text>";
  // vocab = byte symbols + the same with "</w>" + one token per merge + SOT, EOT.
  const ByteSymbols& bs = byte_symbols();
  std::vector<std::string> vocab;
  vocab.reserve(512 + merges.size() + 2);
  for (int k = 0; k < 256; ++k) vocab.push_back(bs.symbol(bs.order[k]));
  for (int k = 0; k < 256; ++k) vocab.push_back(bs.symbol(bs.order[k]) + kEndOfWord);
  for (const auto& m : merges) vocab.push_back(m.first + m.second);
  vocab.push_back(tok.sot_text_);
  vocab.push_back(tok.eot_text_);
  tok.decoder_.assign(vocab.size(), std::string());
  for (size_t id = 0; id < vocab.size(); ++id) {
    auto [it, fresh] = tok.encoder_.emplace(vocab[id], int32_t(id));
    if (!fresh) {  // dict(zip(vocab, range(...))): the later id wins and the earlier one has no token
      tok.decoder_[it->second].clear();
      it->second = int32_t(id);
    }
    tok.decoder_[id] = vocab[id];
  }
  tok.sot_id_ = tok.encoder_.at(tok.sot_text_);
  tok.eot_id_ = tok.encoder_.at(tok.eot_text_);
  tok.build_bytes(path);
  tok.build_merges(merges, path);
  return tok;
}

ClipTokenizer ClipTokenizer::from_hf(const std::string& vocab_json_path, const std::string& merges_txt_path) {
  const char* who = "ClipTokenizer::from_hf";
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(read_file(vocab_json_path, who));
  } catch (const nlohmann::json::exception& e) {
    VL_FAIL(who, ": '", vocab_json_path, "' is not valid JSON: ", e.what());
  }
  VL_CHECK(vocab.is_object() && !vocab.empty(), who, ": '", vocab_json_path,
           "' must be a JSON object {token: id}");

  ClipTokenizer tok;
  tok.flavor_ = ClipFlavor::kOpenAI;
  tok.sot_text_ = "<|startoftext|>";
  tok.eot_text_ = "<|endoftext|>";
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    VL_CHECK(it.value().is_number_integer(), who, ": '", vocab_json_path, "': the id of token \"", it.key(),
             "\" is not an integer");
    const int64_t id = it.value().get<int64_t>();
    VL_CHECK(id >= 0 && id < INT32_MAX, who, ": '", vocab_json_path, "': token \"", it.key(), "\" has id ", id);
    tok.encoder_.emplace(it.key(), int32_t(id));
    max_id = std::max(max_id, id);
  }
  tok.decoder_.assign(size_t(max_id + 1), std::string());
  for (const auto& [token, id] : tok.encoder_) {
    VL_CHECK(tok.decoder_[id].empty(), who, ": '", vocab_json_path, "': id ", id, " is given to both \"",
             tok.decoder_[id], "\" and \"", token, "\"");
    tok.decoder_[id] = token;
  }
  for (const std::string* s : {&tok.sot_text_, &tok.eot_text_}) {
    auto it = tok.encoder_.find(*s);
    VL_CHECK(it != tok.encoder_.end(), who, ": '", vocab_json_path, "' has no special token \"", *s, "\"");
  }
  tok.sot_id_ = tok.encoder_.at(tok.sot_text_);
  tok.eot_id_ = tok.encoder_.at(tok.eot_text_);

  // merges.txt as HF's CLIPTokenizer reads it: read().strip().split("\n")[1 : 49152-256-2+1].
  std::string data = read_file(merges_txt_path, who);
  while (!data.empty() && static_cast<unsigned char>(data.back()) < 0x80 &&
         text::py_isspace(static_cast<unsigned char>(data.back())))
    data.pop_back();
  const std::vector<std::string> lines = split_lines(data);
  VL_CHECK(!lines.empty() && lines[0].rfind("#version", 0) == 0, who, ": '", merges_txt_path,
           "' does not start with a \"#version: ...\" line as Hugging Face merges.txt files do");
  std::vector<std::pair<std::string, std::string>> merges;
  for (size_t i = 1; i < lines.size() && merges.size() < size_t(kMaxMerges); ++i) {
    std::vector<std::string> parts = split_ws(lines[i]);
    VL_CHECK(parts.size() == 2, who, ": '", merges_txt_path, "' line ", i + 1, " is not a merge \"a b\": \"",
             preview(lines[i]), "\"");
    merges.emplace_back(std::move(parts[0]), std::move(parts[1]));
  }
  tok.build_bytes(vocab_json_path);
  tok.build_merges(merges, merges_txt_path);
  return tok;
}

void ClipTokenizer::build_bytes(const std::string& where) {
  const ByteSymbols& bs = byte_symbols();
  for (int b = 0; b < 256; ++b) {
    const std::string sym = bs.symbol(b);
    auto it = encoder_.find(sym);
    auto it_end = encoder_.find(sym + kEndOfWord);
    VL_CHECK(it != encoder_.end() && it_end != encoder_.end(), "ClipTokenizer: '", where,
             "': the vocabulary lacks the byte symbol \"", sym, "\" or \"", sym, kEndOfWord, "\" (byte ", b, ")");
    byte_id_[b] = it->second;
    byte_end_id_[b] = it_end->second;
  }
}

void ClipTokenizer::build_merges(const std::vector<std::pair<std::string, std::string>>& merges,
                                 const std::string& where) {
  merges_.reserve(merges.size() * 2);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = encoder_.find(a), ib = encoder_.find(b), iab = encoder_.find(a + b);
    VL_CHECK(iab != encoder_.end(), "ClipTokenizer: '", where, "': merge ", rank + 1, " \"", a, " ", b,
             "\" makes \"", a + b, "\", which is not in the vocabulary");
    // A pair whose halves are not tokens can never occur in a word; Python keeps it but never uses it.
    if (ia == encoder_.end() || ib == encoder_.end()) continue;
    const uint64_t key = (uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second);
    merges_[key] = Merge{int32_t(rank), iab->second};  // a repeated pair: the later rank wins, as in Python
  }
}

// ---- encoding ------------------------------------------------------------------------------------
namespace {
std::u32string clean_codepoints(const std::string& text, ClipFlavor flavor) {
  // basic_clean (less ftfy): html.unescape(html.unescape(text)).strip()
  std::u32string u = text::py_strip(text::html_unescape(text::html_unescape(text::utf8_decode(text))));
  // whitespace_clean, then .lower()
  if (flavor == ClipFlavor::kOpenAI)
    u = text::py_strip(text::regex_fold_spaces(u));  // regex.sub(r"\s+", " ", t).strip()
  else
    u = text::py_split_join(u);  // " ".join(t.split()).strip()
  return text::py_lower(u);
}
}  // namespace

std::string clip_clean_text(const std::string& text, ClipFlavor flavor) {
  return text::utf8_encode(clean_codepoints(text, flavor));
}

std::vector<std::string> ClipTokenizer::pre_tokenize(const std::string& text) const {
  const std::u32string t = clean_codepoints(text, flavor_);
  std::vector<std::pair<size_t, size_t>> spans;
  find_words(t, sot_text_, eot_text_, spans);
  std::vector<std::string> words;
  for (auto [b, e] : spans) words.push_back(text::utf8_encode(std::u32string_view(t).substr(b, e - b)));
  return words;
}

// SimpleTokenizer.bpe for one word, appending its ids to `out`.
void ClipTokenizer::bpe_word(const std::string& word, std::vector<int32_t>& out) const {
  // Python's cache starts out holding the special tokens, which map to themselves.
  if (word == sot_text_) { out.push_back(sot_id_); return; }
  if (word == eot_text_) { out.push_back(eot_id_); return; }
  if (cache_->find(word, out)) return;

  // One symbol per UTF-8 byte; the last carries "</w>".
  std::vector<int32_t> sym(word.size());
  for (size_t k = 0; k < word.size(); ++k) {
    const auto b = static_cast<unsigned char>(word[k]);
    sym[k] = (k + 1 == word.size()) ? byte_end_id_[b] : byte_id_[b];
  }
  std::vector<int32_t> next;
  next.reserve(sym.size());
  while (sym.size() > 1) {
    // The adjacent pair with the lowest merge rank ...
    int32_t best_rank = INT32_MAX, first = -1, second = -1, merged = -1;
    for (size_t k = 0; k + 1 < sym.size(); ++k) {
      auto it = merges_.find((uint64_t(uint32_t(sym[k])) << 32) | uint32_t(sym[k + 1]));
      if (it != merges_.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        first = sym[k];
        second = sym[k + 1];
        merged = it->second.merged;
      }
    }
    if (best_rank == INT32_MAX) break;
    // ... merged everywhere, left to right, without overlaps.
    next.clear();
    for (size_t k = 0; k < sym.size();) {
      if (k + 1 < sym.size() && sym[k] == first && sym[k + 1] == second) {
        next.push_back(merged);
        k += 2;
      } else {
        next.push_back(sym[k++]);
      }
    }
    sym.swap(next);
  }
  cache_->insert(word, sym.data(), sym.size());
  out.insert(out.end(), sym.begin(), sym.end());
}

std::vector<int32_t> ClipTokenizer::encode(const std::string& text) const {
  const std::u32string t = clean_codepoints(text, flavor_);
  std::vector<std::pair<size_t, size_t>> spans;
  find_words(t, sot_text_, eot_text_, spans);
  std::vector<int32_t> ids;
  ids.reserve(spans.size() * 2);
  std::string word;
  for (auto [b, e] : spans) {
    word.clear();
    for (size_t k = b; k < e; ++k) text::utf8_append(word, t[k]);
    bpe_word(word, ids);
  }
  return ids;
}

std::vector<int32_t> ClipTokenizer::tokenize(const std::string& text, int context_length, bool truncate) const {
  VL_CHECK(context_length >= 2, "ClipTokenizer::tokenize: context_length must be at least 2 (SOT and EOT), got ",
           context_length);
  const std::vector<int32_t> ids = encode(text);
  const size_t ctx = size_t(context_length);
  const size_t n = ids.size() + 2;
  VL_CHECK(n <= ctx || truncate, "ClipTokenizer::tokenize: text \"", preview(text), "\" is ", n,
           " tokens long with SOT and EOT, more than context_length ", context_length,
           "; shorten it or pass truncate=true (keeps the first ", context_length - 1, " and ends with EOT)");
  std::vector<int32_t> out(ctx, 0);
  const size_t m = std::min(ids.size(), ctx - 2);
  out[0] = sot_id_;
  std::copy(ids.begin(), ids.begin() + m, out.begin() + 1);
  out[m + 1] = eot_id_;
  return out;
}

const std::string& ClipTokenizer::id_to_token(int32_t id) const {
  VL_CHECK(id >= 0 && size_t(id) < decoder_.size() && !decoder_[id].empty(), "ClipTokenizer: id ", id,
           " is not in the vocabulary (", vocab_size(), " tokens)");
  return decoder_[size_t(id)];
}

std::string ClipTokenizer::decode(const std::vector<int32_t>& ids) const {
  const ByteSymbols& bs = byte_symbols();
  std::string bytes;
  for (int32_t id : ids) {
    for (char32_t c : text::utf8_decode(id_to_token(id))) {
      VL_CHECK(c < 512 && bs.byte_of[c] >= 0, "ClipTokenizer::decode: token ", id, " \"", decoder_[id],
               "\" has a character that is not a byte symbol");
      bytes += static_cast<char>(bs.byte_of[c]);
    }
  }
  // .decode("utf-8", errors="replace").replace("</w>", " ")
  const std::string s = text::utf8_encode(text::utf8_decode(bytes));
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 4, kEndOfWord) == 0) { out += ' '; i += 4; }
    else out += s[i++];
  }
  return out;
}

size_t ClipTokenizer::cache_size() const { return cache_->size(); }

}  // namespace vislang
