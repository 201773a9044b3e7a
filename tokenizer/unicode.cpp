// tokenizer/unicode.cpp — general category, combining class, NFD and NFC over the tables that
// tools/gen_unicode_tables.py writes from Python's unicodedata (see unicode.h).
//
// Normalization follows Unicode Standard Annex #15 as CPython's unicodedata.c implements it:
//   NFD: each codepoint → its full canonical decomposition (Hangul syllables arithmetically), then
//        every run of non-starters (combining class > 0) is stably sorted by combining class.
//   NFC: NFD, then left to right each character is combined with the last starter when it is not
//        blocked (nothing between them, or everything between has a lower non-zero class) and the
//        pair is a primary composite (or Hangul L+V, LV+T).
// tests/test_wordpiece.cpp checks both against Python on every codepoint that decomposes or
// combines and on random mark sequences (tests/fixtures/wordpiece/normalization.json.gz).
#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>

namespace vislang::unicode {
namespace {

struct CatRun {
  char32_t first;
  uint8_t value;
};
struct Decomposition {
  char32_t cp;
  uint16_t offset;  // into kDecompPool
  uint8_t length;
};
struct Composition {
  char32_t first, second, composite;
};

#include "tokenizer/unicode_data.inc"

static_assert(sizeof(kCategoryRuns) > 0 && static_cast<int>(Category::kCount) == 30,
              "Category must list the 30 general categories of tools/gen_unicode_tables.py");

constexpr const char* kCategoryNames[] = {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl",
                                          "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc",
                                          "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"};
static_assert(std::size(kCategoryNames) == static_cast<size_t>(Category::kCount), "one name per category");

// Hangul syllable arithmetic (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

template <size_t N>
uint8_t run_lookup(const CatRun (&runs)[N], char32_t c) {
  // The last run whose first codepoint is <= c (the first run starts at 0).
  auto it = std::upper_bound(std::begin(runs), std::end(runs), c,
                             [](char32_t v, const CatRun& r) { return v < r.first; });
  return (it - 1)->value;
}

// Categories of the Basic Multilingual Plane, expanded once from the runs (64 KiB).
const std::array<uint8_t, 0x10000>& bmp_categories() {
  static const std::array<uint8_t, 0x10000> table = [] {
    std::array<uint8_t, 0x10000> t{};
    for (char32_t c = 0; c < 0x10000; ++c) t[c] = run_lookup(kCategoryRuns, c);
    return t;
  }();
  return table;
}

void decompose_into(std::u32string& out, char32_t c) {
  if (c < 0xC0) {  // nothing below U+00C0 decomposes
    out += c;
    return;
  }
  if (c >= kSBase && c < kSBase + kSCount) {
    const char32_t s = c - kSBase;
    out += kLBase + s / kNCount;
    out += kVBase + (s % kNCount) / kTCount;
    if (s % kTCount) out += kTBase + s % kTCount;
    return;
  }
  auto it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), c,
                             [](const Decomposition& d, char32_t v) { return d.cp < v; });
  if (it == std::end(kDecompositions) || it->cp != c) {
    out += c;
    return;
  }
  out.append(kDecompPool + it->offset, it->length);
}

// The primary composite of (a, b), or 0.
char32_t compose(char32_t a, char32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  auto it = std::lower_bound(std::begin(kCompositions), std::end(kCompositions), std::make_pair(a, b),
                             [](const Composition& e, const std::pair<char32_t, char32_t>& v) {
                               return e.first != v.first ? e.first < v.first : e.second < v.second;
                             });
  return (it != std::end(kCompositions) && it->first == a && it->second == b) ? it->composite : 0;
}

}  // namespace

Category category(char32_t c) {
  if (c < 0x10000) return static_cast<Category>(bmp_categories()[c]);
  if (c >= 0x110000) return Category::Cn;
  return static_cast<Category>(run_lookup(kCategoryRuns, c));
}

const char* category_name(Category cat) {
  const auto i = static_cast<size_t>(cat);
  return i < std::size(kCategoryNames) ? kCategoryNames[i] : "??";
}

uint8_t combining_class(char32_t c) {
  if (c < 0x300 || c >= 0x110000) return 0;  // the first non-starter is U+0300
  return run_lookup(kCombiningRuns, c);
}

std::u32string nfd(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t c : s) decompose_into(out, c);
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < out.size();) {
    if (combining_class(out[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < out.size() && combining_class(out[j]) != 0) ++j;
    if (j - i > 1)
      std::stable_sort(out.begin() + i, out.begin() + j,
                       [](char32_t a, char32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  return out;
}

std::u32string nfc(std::u32string_view s) {
  // Below U+0300 every codepoint is its own NFC and none combines with a following one (the first
  // second half of a composition is U+0300): most text takes this path.
  if (std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x300; })) return std::u32string(s);
  std::u32string out = nfd(s);
  size_t w = 0;             // write position: out[0, w) is composed
  size_t starter = SIZE_MAX;  // position in out[0, w) of the last starter
  uint8_t last_ccc = 0;     // class of out[w - 1]
  for (size_t r = 0; r < out.size(); ++r) {
    const char32_t c = out[r];
    const uint8_t ccc = combining_class(c);
    if (starter != SIZE_MAX) {
      const bool adjacent = (w == starter + 1);
      const bool unblocked = adjacent || (last_ccc != 0 && last_ccc < ccc);
      if (unblocked) {
        if (char32_t comp = compose(out[starter], c)) {
          out[starter] = comp;
          continue;
        }
      }
    }
    if (ccc == 0) starter = w;
    last_ccc = ccc;
    out[w++] = c;
  }
  out.resize(w);
  return out;
}

const char* unidata_version() { return kUnidataVersion; }

}  // namespace vislang::unicode
