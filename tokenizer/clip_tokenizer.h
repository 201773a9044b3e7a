// tokenizer/clip_tokenizer.h — CLIP's byte-level BPE tokenizer: text → token ids for the text tower.
//
// Data flow: prompt text → ClipTokenizer::tokenize → (77,) ids → text tower → projection → similarity.
//
// Mirrors OpenAI's clip/simple_tokenizer.py and open_clip's tokenizer.py (SimpleTokenizer,
// open_clip.tokenize) id for id, and reads Hugging Face CLIPTokenizer files (vocab.json + merges.txt).
// The steps, all as in Python:
//   1. clean:        html.unescape(html.unescape(text)).strip(); whitespace folding; str.lower()
//   2. pre-tokenize: <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
//                    (regex module, re.IGNORECASE)
//   3. per word:     UTF-8 bytes → byte-to-unicode symbols, "</w>" on the last, merges by rank.
//
// Deliberate differences from the Python reference:
//   * No ftfy.fix_text. Both references run ftfy first; ftfy only changes unusual text (mojibake,
//     curly quotes → straight, full-width forms, ligatures, control characters, NFC). We match the
//     reference with ftfy disabled exactly; tests/test_tokenizer.cpp reports how often the corpus
//     differs from the reference with ftfy (see tools/reference/make_tokenizer_fixtures.py).
//   * Input is UTF-8 bytes; invalid UTF-8 never fails: each invalid sequence becomes U+FFFD as in
//     Python's bytes.decode("utf-8", errors="replace"), and the text is then tokenized as that str.
//   * tokenize() needs context_length >= 2 (room for SOT and EOT); Python accepts 1 and returns [EOT].
//
// Thread safety: all const methods may be called concurrently. The per-word cache is guarded by a
// shared mutex and bounded (kCacheMaxEntries words of at most kCacheMaxWordBytes bytes; when it is
// full it is emptied and refilled), so memory stays bounded on an endless stream of new words.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace vislang {

// Which reference's text rules to follow. The vocabulary and the BPE are the same.
enum class ClipFlavor {
  // OpenAI clip/simple_tokenizer.py (and HF CLIPTokenizer's vocabulary): special tokens
  // "<|startoftext|>"/"<|endoftext|>"; whitespace folded with regex.sub(r"\s+", " ", t).strip().
  kOpenAI,
  // open_clip tokenizer.py SimpleTokenizer: special tokens "<start_of_text>"/"<end_of_text>";
  // whitespace folded with " ".join(t.split()), whose notion of space also has U+001C..U+001F.
  kOpenClip,
};

// Step 1 alone, no vocabulary needed: html.unescape ×2, strip, whitespace folding by `flavor`'s
// rule, str.lower(). Returns the cleaned UTF-8 text that the pre-tokenizer sees.
std::string clip_clean_text(const std::string& text, ClipFlavor flavor);

class ClipTokenizer {
 public:
  static constexpr int kDefaultContextLength = 77;
  static constexpr size_t kCacheMaxEntries = 1 << 16;
  static constexpr size_t kCacheMaxWordBytes = 256;

  // bpe_simple_vocab_16e6.txt.gz as shipped with CLIP / open_clip: line 0 is a header, lines
  // 1 .. 48894 (Python's lines[1 : 49152-256-2+1]) are the merges "a b" in rank order. The vocabulary
  // is the 256 byte symbols, the same with "</w>", one token per merge, then SOT and EOT
  // (ids 49406, 49407; vocab_size 49408).
  static ClipTokenizer from_bpe_gz(const std::string& path, ClipFlavor flavor = ClipFlavor::kOpenAI);
  // Hugging Face CLIPTokenizer files: vocab.json {token: id} and merges.txt ("#version: ..." line,
  // then "a b" per line, at most 48894 are used as HF does). Ids are taken from vocab.json, which
  // must hold every byte symbol, every merge result, "<|startoftext|>" and "<|endoftext|>".
  // OpenAI flavor.
  static ClipTokenizer from_hf(const std::string& vocab_json_path, const std::string& merges_txt_path);

  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;
  ~ClipTokenizer();

  // Token ids of `text` (UTF-8), without SOT/EOT: SimpleTokenizer.encode.
  std::vector<int32_t> encode(const std::string& text) const;
  // SimpleTokenizer.decode: token strings joined, mapped back to bytes, decoded as UTF-8 with U+FFFD
  // for invalid sequences, "</w>" → " ". Throws vislang::Error for an id outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;
  // clip.tokenize for one text: [SOT] + encode(text) + [EOT], zero-padded to context_length. Longer
  // than context_length: vislang::Error naming the text's beginning and its length, or with
  // truncate=true the first context_length tokens with the last one replaced by EOT (OpenAI
  // semantics; open_clip.tokenize always truncates this way).
  std::vector<int32_t> tokenize(const std::string& text, int context_length = kDefaultContextLength,
                                bool truncate = false) const;

  // The vocabulary string of `id`, as HF's convert_ids_to_tokens gives it: the token's byte symbols
  // with "</w>" on a word's last piece ("photo</w>", "<|startoftext|>", "\u0120" for a space byte).
  // Throws vislang::Error for an id outside the vocabulary.
  const std::string& id_to_token(int32_t id) const;

  int32_t sot_id() const { return sot_id_; }
  int32_t eot_id() const { return eot_id_; }
  // Number of distinct tokens (Python: len(self.encoder)).
  int32_t vocab_size() const { return static_cast<int32_t>(encoder_.size()); }
  ClipFlavor flavor() const { return flavor_; }

  // Step 1 alone: clip_clean_text(text, flavor()).
  std::string clean(const std::string& text) const { return clip_clean_text(text, flavor_); }
  // Steps 1–2: the words (UTF-8) that BPE is applied to, e.g. "it's" → {"it", "'s"}.
  std::vector<std::string> pre_tokenize(const std::string& text) const;
  // Words currently in the per-word cache (for tests of the bound).
  size_t cache_size() const;

 private:
  ClipTokenizer();
  struct Merge {
    int32_t rank;    // position in the merge list: lower merges first
    int32_t merged;  // id of the concatenated token
  };
  struct WordCache;

  // Shared by both loaders: `tokens` in id order for from_bpe_gz (later duplicates win, as in
  // Python's dict(zip(vocab, range(len(vocab))))); the merges as token-string pairs in rank order.
  void build_merges(const std::vector<std::pair<std::string, std::string>>& merges, const std::string& where);
  void build_bytes(const std::string& where);
  void bpe_word(const std::string& word, std::vector<int32_t>& out) const;

  ClipFlavor flavor_ = ClipFlavor::kOpenAI;
  std::string sot_text_, eot_text_;  // the special tokens as spelled in the text ("<|startoftext|>")
  int32_t sot_id_ = -1, eot_id_ = -1;
  std::unordered_map<std::string, int32_t> encoder_;  // token (UTF-8 of its byte symbols) → id
  std::vector<std::string> decoder_;                   // id → token; "" for ids with no token
  std::unordered_map<uint64_t, Merge> merges_;         // (left id << 32 | right id) → merge
  int32_t byte_id_[256] = {};                          // byte → id of its symbol
  int32_t byte_end_id_[256] = {};                      // byte → id of its symbol + "</w>"
  std::unique_ptr<WordCache> cache_;
};

}  // namespace vislang
