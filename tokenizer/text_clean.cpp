// tokenizer/text_clean.cpp — Python-compatible text cleaning for the CLIP tokenizer: UTF-8 with
// U+FFFD replacement, html.unescape, str.isspace / regex \s, str.strip / split / lower, and the
// pre-tokenizer's character classes. Each function names the Python it mirrors; the tables come from
// tools/reference/make_tokenizer_fixtures.py and the corpus in tests/test_tokenizer.cpp checks the
// whole chain against the Python reference.
#include "tokenizer/text_clean.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace vislang::text {
namespace {

struct CpRun {
  char32_t first;
  uint8_t value;
};
struct LowerEntry {
  char32_t cp;
  char32_t lower[3];  // 0 = unused
};
struct AsciiFold {
  char32_t cp;
  char ascii;
};
struct HtmlEntity {
  const char* name;  // e.g. "amp;" or "amp" (legacy form without ';')
  char32_t value[2];  // 0 = unused
};
struct CharrefFix {
  char32_t num, replacement;
};

#include "tokenizer/html_entities.inc"
#include "tokenizer/unicode_tables.inc"

constexpr char32_t kReplacement = 0xFFFD;

template <size_t N>
uint8_t run_lookup(const CpRun (&runs)[N], char32_t c) {
  // The last run whose first codepoint is <= c.
  auto it = std::upper_bound(std::begin(runs), std::end(runs), c,
                             [](char32_t v, const CpRun& r) { return v < r.first; });
  return (it == std::begin(runs)) ? 0 : (it - 1)->value;
}

template <size_t N>
bool sorted_contains(const char32_t (&table)[N], char32_t c) {
  return std::binary_search(std::begin(table), std::end(table), c);
}

// Pre-tokenizer classes of the Basic Multilingual Plane, expanded once from the runs (64 KiB).
const std::array<uint8_t, 0x10000>& bmp_classes() {
  static const std::array<uint8_t, 0x10000> table = [] {
    std::array<uint8_t, 0x10000> t{};
    for (char32_t c = 0; c < 0x10000; ++c) t[c] = run_lookup(kTokenClassRuns, c);
    return t;
  }();
  return table;
}

// CPython's sigma context classes (see kSigmaContextRuns).
constexpr uint8_t kCased = 1, kCaseIgnorable = 2;

// CPython unicodeobject.c handle_capital_sigma: U+03A3 lowers to final ς when
//   \p{cased} \p{case-ignorable}* Σ !( \p{case-ignorable}* \p{cased} ).
char32_t lower_sigma(std::u32string_view s, size_t i) {
  size_t j = i;
  uint8_t cls = 0;
  bool found = false;
  while (j > 0) {
    cls = run_lookup(kSigmaContextRuns, s[--j]);
    if (cls != kCaseIgnorable) { found = true; break; }
  }
  bool final_sigma = found && cls == kCased;
  if (final_sigma) {
    for (j = i + 1; j < s.size(); ++j) {
      cls = run_lookup(kSigmaContextRuns, s[j]);
      if (cls != kCaseIgnorable) break;
    }
    final_sigma = (j == s.size()) || cls != kCased;
  }
  return final_sigma ? 0x3C2 : 0x3C3;
}

// ---- html.unescape helpers ------------------------------------------------------------------------
const HtmlEntity* find_entity(std::u32string_view name) {
  char buf[40];
  if (name.size() >= sizeof(buf)) return nullptr;
  for (size_t k = 0; k < name.size(); ++k) {
    if (name[k] >= 0x80) return nullptr;  // every entity name is ASCII
    buf[k] = static_cast<char>(name[k]);
  }
  buf[name.size()] = '\0';
  auto it = std::lower_bound(std::begin(kHtmlEntities), std::end(kHtmlEntities), buf,
                             [](const HtmlEntity& e, const char* key) { return std::strcmp(e.name, key) < 0; });
  return (it != std::end(kHtmlEntities) && std::strcmp(it->name, buf) == 0) ? &*it : nullptr;
}

void append_entity(std::u32string& out, const HtmlEntity& e) {
  out += e.value[0];
  if (e.value[1]) out += e.value[1];
}

// html._replace_charref for a numeric reference whose value is `num` (saturated above 10FFFF).
void append_numeric(std::u32string& out, uint64_t num) {
  for (const CharrefFix& f : kInvalidCharrefs)
    if (f.num == num) { out += f.replacement; return; }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) { out += kReplacement; return; }
  if (sorted_contains(kInvalidCodepoints, static_cast<char32_t>(num))) return;
  out += static_cast<char32_t>(num);
}

bool is_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_hex(char32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int hex_value(char32_t c) { return is_digit(c) ? int(c - '0') : (c >= 'a' ? int(c - 'a') + 10 : int(c - 'A') + 10); }

}  // namespace

// ---- UTF-8 ---------------------------------------------------------------------------------------
std::u32string utf8_decode(std::string_view bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t b0 = static_cast<uint8_t>(bytes[i]);
    if (b0 < 0x80) { out += char32_t(b0); ++i; continue; }
    int need;
    char32_t cp;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte
    if (b0 >= 0xC2 && b0 <= 0xDF) { need = 1; cp = b0 & 0x1F; }
    else if (b0 >= 0xE0 && b0 <= 0xEF) {
      need = 2; cp = b0 & 0x0F;
      if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
      if (b0 == 0xED) hi = 0x9F;  // no surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      need = 3; cp = b0 & 0x07;
      if (b0 == 0xF0) lo = 0x90;  // no overlong forms
      if (b0 == 0xF4) hi = 0x8F;  // nothing above 10FFFF
    } else {  // 80..C1, F5..FF can never start a character
      out += kReplacement; ++i; continue;
    }
    size_t j = i + 1;
    int got = 0;
    for (; got < need && j < n; ++got, ++j) {
      const uint8_t b = static_cast<uint8_t>(bytes[j]);
      if (b < (got == 0 ? lo : 0x80) || b > (got == 0 ? hi : 0xBF)) break;
      cp = (cp << 6) | (b & 0x3F);
    }
    // Complete: the character. Incomplete: one U+FFFD for the valid prefix; the offending byte
    // (not consumed) starts the next round.
    out += (got == need) ? cp : kReplacement;
    i = j;
  }
  return out;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp >= 0x110000 || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacement;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string utf8_encode(std::u32string_view cps) {
  std::string out;
  out.reserve(cps.size());
  for (char32_t c : cps) utf8_append(out, c);
  return out;
}

// ---- html.unescape -------------------------------------------------------------------------------
// The pattern, applied with re.sub left to right:
//   &( #[0-9]+;?  |  #[xX][0-9a-fA-F]+;?  |  [^\t\n\f <&#;]{1,32};? )
std::u32string html_unescape(std::u32string_view s) {
  if (s.find(U'&') == std::u32string_view::npos) return std::u32string(s);
  std::u32string out;
  out.reserve(s.size());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (s[i] != U'&') { out += s[i++]; continue; }
    const size_t j = i + 1;  // after '&'
    if (j < n && s[j] == U'#') {
      size_t k = j + 1;
      bool hex = false;
      if (k < n && (s[k] == U'x' || s[k] == U'X')) {
        hex = true;
        ++k;
      }
      const size_t first = k;
      uint64_t num = 0;
      while (k < n && (hex ? is_hex(s[k]) : is_digit(s[k]))) {
        num = num * (hex ? 16 : 10) + (hex ? hex_value(s[k]) : int(s[k] - '0'));
        if (num > 0x110000) num = 0x110000;  // saturate: every value above 10FFFF gives U+FFFD
        ++k;
      }
      if (k == first) { out += s[i++]; continue; }  // "&#", "&#x", "&#;": no match, '&' stays
      if (k < n && s[k] == U';') ++k;
      append_numeric(out, num);
      i = k;
      continue;
    }
    // Named: up to 32 characters outside "\t\n\f <&#;", then an optional ';'.
    size_t k = j;
    while (k < n && k - j < 32) {
      const char32_t c = s[k];
      if (c == U'\t' || c == U'\n' || c == U'\f' || c == U' ' || c == U'<' || c == U'&' || c == U'#' || c == U';')
        break;
      ++k;
    }
    if (k == j) { out += s[i++]; continue; }
    if (k < n && s[k] == U';') ++k;
    const std::u32string_view name = s.substr(j, k - j);
    if (const HtmlEntity* e = find_entity(name)) {
      append_entity(out, *e);
    } else {
      // The longest known prefix of at least 2 characters (only legacy names without ';' can match).
      bool done = false;
      for (size_t x = name.size() - 1; x >= 2 && !done; --x) {
        if (const HtmlEntity* p = find_entity(name.substr(0, x))) {
          append_entity(out, *p);
          out += name.substr(x);
          done = true;
        }
      }
      if (!done) {
        out += U'&';
        out += name;
      }
    }
    i = k;
  }
  return out;
}

// ---- whitespace ----------------------------------------------------------------------------------
bool py_isspace(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  return sorted_contains(kPySpace, c);
}

bool regex_isspace(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || c == 0x20;
  return sorted_contains(kRegexSpace, c);
}

std::u32string py_strip(std::u32string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && py_isspace(s[b])) ++b;
  while (e > b && py_isspace(s[e - 1])) --e;
  return std::u32string(s.substr(b, e - b));
}

std::u32string py_split_join(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    while (i < n && py_isspace(s[i])) ++i;
    if (i == n) break;
    if (!out.empty()) out += U' ';
    while (i < n && !py_isspace(s[i])) out += s[i++];
  }
  return out;
}

std::u32string regex_fold_spaces(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (regex_isspace(s[i])) {
      out += U' ';
      while (i < s.size() && regex_isspace(s[i])) ++i;
    } else {
      out += s[i++];
    }
  }
  return out;
}

// ---- str.lower -----------------------------------------------------------------------------------
std::u32string py_lower(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c < 0x80) {
      out += (c >= 'A' && c <= 'Z') ? c + 32 : c;
      continue;
    }
    if (c == 0x3A3) {
      out += lower_sigma(s, i);
      continue;
    }
    auto it = std::lower_bound(std::begin(kLowerMap), std::end(kLowerMap), c,
                               [](const LowerEntry& e, char32_t v) { return e.cp < v; });
    if (it == std::end(kLowerMap) || it->cp != c) {
      out += c;
      continue;
    }
    for (char32_t l : it->lower)
      if (l) out += l;
  }
  return out;
}

// ---- pre-tokenizer classes -----------------------------------------------------------------------
TokenClass token_class(char32_t c) {
  if (c < 0x10000) return static_cast<TokenClass>(bmp_classes()[c]);
  return static_cast<TokenClass>(run_lookup(kTokenClassRuns, c));
}

bool ascii_ci_equal(char32_t c, char pat) {
  if (c == static_cast<unsigned char>(pat)) return true;
  if (pat < 'a' || pat > 'z') return false;
  if (c == static_cast<char32_t>(pat - 32)) return true;
  for (const AsciiFold& f : kAsciiFoldExtras)
    if (f.cp == c && f.ascii == pat) return true;
  return false;
}

}  // namespace vislang::text
