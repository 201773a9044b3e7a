// train/bpe_trainer.cpp — see train/bpe_trainer.h.
#include "train/bpe_trainer.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <map>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "image/png_write.h"  // write_file_atomic

namespace vislang::train {
namespace {

// GPT-2 / CLIP byte -> unicode table: printable Latin-1 bytes map to themselves, the others to
// U+0100 onwards, so every byte is a visible character. Returns the UTF-8 of each byte's symbol.
std::vector<std::string> byte_symbols() {
  std::vector<int> cps(256, -1);
  for (int b = 0; b < 256; ++b)
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) cps[b] = b;
  int next = 256;
  for (int b = 0; b < 256; ++b)
    if (cps[b] < 0) cps[b] = next++;
  std::vector<std::string> out(256);
  for (int b = 0; b < 256; ++b) {
    int c = cps[b];
    std::string s;
    if (c < 0x80) s += static_cast<char>(c);
    else {
      s += static_cast<char>(0xC0 | (c >> 6));
      s += static_cast<char>(0x80 | (c & 0x3F));
    }
    out[b] = s;
  }
  return out;
}

// CLIP's pre-tokenizer restricted to what a closed-world corpus needs: lower-case, then runs of
// letters (any byte >= 0x80 counts as a letter), single digits, and runs of other non-space bytes.
std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> words;
  size_t i = 0, n = text.size();
  auto is_letter = [](unsigned char c) { return std::isalpha(c) || c >= 0x80; };
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (std::isspace(c)) { ++i; continue; }
    size_t j = i + 1;
    if (is_letter(c)) while (j < n && is_letter(static_cast<unsigned char>(text[j]))) ++j;
    else if (!std::isdigit(c))
      while (j < n && !std::isspace(static_cast<unsigned char>(text[j])) && !is_letter(static_cast<unsigned char>(text[j])) &&
             !std::isdigit(static_cast<unsigned char>(text[j])))
        ++j;
    std::string w = text.substr(i, j - i);
    for (char& ch : w) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    words.push_back(w);
    i = j;
  }
  return words;
}

}  // namespace

BpeVocab learn_bpe(const std::vector<std::string>& texts, int max_merges, int min_count) {
  VL_CHECK(min_count >= 1 && max_merges >= 0, "learn_bpe: min_count must be >= 1 and max_merges >= 0");
  const std::vector<std::string> sym = byte_symbols();
  // Word frequencies; each word as its list of symbols, the last one carrying "</w>".
  std::map<std::string, int64_t> freq;
  for (const std::string& t : texts)
    for (const std::string& w : words_of(t)) ++freq[w];
  std::vector<std::vector<std::string>> words;
  std::vector<int64_t> counts;
  for (const auto& [w, c] : freq) {
    std::vector<std::string> s;
    for (unsigned char b : w) s.push_back(sym[b]);
    s.back() += "</w>";
    words.push_back(std::move(s));
    counts.push_back(c);
  }
  BpeVocab v;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(sym[b]);
  for (int b = 0; b < 256; ++b) v.tokens.push_back(sym[b] + "</w>");
  for (int m = 0; m < max_merges; ++m) {
    std::map<std::pair<std::string, std::string>, int64_t> pairs;  // ordered: ties -> smallest pair
    for (size_t i = 0; i < words.size(); ++i)
      for (size_t k = 0; k + 1 < words[i].size(); ++k) pairs[{words[i][k], words[i][k + 1]}] += counts[i];
    auto best = pairs.end();
    for (auto it = pairs.begin(); it != pairs.end(); ++it)
      if (best == pairs.end() || it->second > best->second) best = it;
    if (best == pairs.end() || best->second < min_count) break;
    const auto [a, b] = best->first;
    v.merges.emplace_back(a, b);
    v.tokens.push_back(a + b);
    for (auto& w : words) {
      std::vector<std::string> out;
      for (size_t k = 0; k < w.size(); ++k) {
        if (k + 1 < w.size() && w[k] == a && w[k + 1] == b) {
          out.push_back(a + b);
          ++k;
        } else {
          out.push_back(w[k]);
        }
      }
      w = std::move(out);
    }
  }
  v.tokens.push_back("<|startoftext|>");
  v.tokens.push_back("<|endoftext|>");
  return v;
}

std::string BpeVocab::vocab_json() const {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (size_t i = 0; i < tokens.size(); ++i) j[tokens[i]] = static_cast<int64_t>(i);
  return j.dump() + "\n";
}

std::string BpeVocab::merges_txt() const {
  std::string s = "#version: 0.2\n";
  for (const auto& [a, b] : merges) s += a + " " + b + "\n";
  return s;
}

void BpeVocab::write(const std::string& dir) const {
  std::string vj = vocab_json(), mt = merges_txt();
  write_file_atomic(dir + "/vocab.json", vj.data(), vj.size());
  write_file_atomic(dir + "/merges.txt", mt.data(), mt.size());
}

ClipTokenizer make_tokenizer(const BpeVocab& v) {
  char tmpl[] = "/tmp/vislang_bpe_XXXXXX";
  VL_CHECK(::mkdtemp(tmpl) != nullptr, "make_tokenizer: cannot create a temporary folder in /tmp");
  std::string dir = tmpl;
  v.write(dir);
  ClipTokenizer tok = ClipTokenizer::from_hf(dir + "/vocab.json", dir + "/merges.txt");
  std::remove((dir + "/vocab.json").c_str());
  std::remove((dir + "/merges.txt").c_str());
  ::rmdir(dir.c_str());
  return tok;
}

}  // namespace vislang::train
