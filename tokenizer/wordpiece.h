// tokenizer/wordpiece.h — BERT's WordPiece tokenizer: text → token ids for BERT-style text encoders
// (the BLIP-2 Q-Former's text side, models/blip2/).
//
// Data flow: caption/question text → WordPieceTokenizer::batch → (B, T) ids, attention_mask,
// token_type_ids → BERT embeddings → Q-Former.
//
// Mirrors Hugging Face transformers' slow BertTokenizer (BertTokenizerLegacy in transformers 5,
// models/bert/tokenization_bert_legacy.py) id for id. BertTokenizerFast (the Rust `tokenizers`
// library) differs from the slow one, and so from this, on unusual text only: it does not apply
// NFC (decomposed accents, conjoining Hangul jamo, CJK compatibility ideographs), keeps unassigned
// codepoints (as [UNK]) where the slow one drops them, lower-cases a word-final Σ to σ rather than
// ς, and has older Unicode tables (tools/reference/make_wordpiece_fixtures.py counts each cause).
// The steps, all as in Python:
//   0. special tokens: [CLS] [SEP] [PAD] [UNK] [MASK] (and added tokens from tokenizer_config.json)
//      written in the text are split off first, exactly as spelled, and never normalized.
//   1. clean:        drop U+0000, U+FFFD and control characters (category C*, except \t \n \r);
//                    \t \n \r, ' ' and category Zs → ' '.
//   2. CJK:          put spaces around each CJK ideograph (tokenize_chinese_chars).
//   3. NFC, then split on Python whitespace (str.split).
//   4. per word:     do_lower_case → str.lower() then, unless strip_accents is false, NFD and drop
//                    category Mn; strip_accents alone (cased) → only the accent stripping.
//   5. punctuation:  every ASCII symbol and every category P* character is a word of its own.
//   6. WordPiece:    greedy longest-match-first; pieces after the first are looked up with "##";
//                    a word over max_input_chars_per_word (100) codepoints, or one that cannot be
//                    covered by vocabulary pieces, becomes [UNK] as a whole.
// Unicode facts (categories, NFC/NFD) come from Python's unicodedata via tools/gen_unicode_tables.py
// (tokenizer/unicode.h); str.lower() and str.split() from tokenizer/text_clean.h.
//
// Input is UTF-8; invalid UTF-8 never fails: each invalid sequence becomes U+FFFD (as Python's
// bytes.decode(errors="replace")), which step 1 then drops.
//
// Thread safety: all const methods may be called concurrently.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace vislang {

// What tokenizer_config.json says; from_vocab takes it directly. Defaults are BertTokenizer's.
struct WordPieceOptions {
  bool do_lower_case = true;
  // Unset: follow do_lower_case (the original BERT). true/false: always/never strip accents.
  std::optional<bool> strip_accents;
  bool tokenize_chinese_chars = true;
  int max_input_chars_per_word = 100;
  // Longest sequence the model takes, special tokens included; batch() uses it when max_length <= 0.
  // A config without a limit (HF writes 1e30) reads as INT64_MAX.
  int64_t model_max_length = 512;
  // decode(): Python's clean_up_tokenization (" ." → "." etc.). BertTokenizer's default is true.
  bool clean_up_tokenization_spaces = true;
  std::string unk_token = "[UNK]", sep_token = "[SEP]", pad_token = "[PAD]", cls_token = "[CLS]",
              mask_token = "[MASK]";
  // Further special tokens, split off unnormalized like the ones above and skipped by
  // decode(skip_special), e.g. BLIP-2's "[DEC]" bos token; and non-special added tokens, split off
  // as spelled but kept by decode. Ones not in vocab.txt get the next free ids, special ones first,
  // each list in order (as HF's added tokens).
  std::vector<std::string> extra_special_tokens;
  std::vector<std::string> added_tokens;
  // BertTokenizer's never_split: words (after whitespace splitting) kept whole, not lower-cased,
  // and looked up as they are (vocab id or [UNK]) instead of split into pieces.
  std::vector<std::string> never_split;
  // truncation_side / padding_side "left" (HF's default is "right" for both).
  bool truncate_left = false;
  bool pad_left = false;
};

class WordPieceTokenizer {
 public:
  // A Hugging Face BERT tokenizer folder: vocab.txt (required) and tokenizer_config.json (optional;
  // also special_tokens_map.json and added_tokens.json when present). Errors name the file and the
  // line or field.
  static WordPieceTokenizer from_folder(const std::string& dir);
  // vocab.txt: UTF-8, one token per line, id = line number (0-based); lines end with "\n", "\r\n"
  // or "\r" (Python's universal newlines). As in Python, a duplicate line takes the token's id and
  // leaves the earlier id decoding to [UNK]. Must hold options.unk_token; the other special tokens
  // are optional, and their id accessors throw when absent.
  static WordPieceTokenizer from_vocab(const std::string& vocab_txt_path, const WordPieceOptions& options = {});

  // Steps 0–6: the WordPiece tokens of `text`, without [CLS]/[SEP] (Python: tokenizer.tokenize).
  std::vector<std::string> tokenize(const std::string& text) const;
  // Token ids; with add_special: [CLS] ids [SEP] (Python: tokenizer.encode(text)). No truncation.
  std::vector<int64_t> encode(const std::string& text, bool add_special = true) const;
  // A text pair: [CLS] a [SEP] b [SEP]; token_type_ids (if given) gets 0 for [CLS] a [SEP], 1 after.
  std::vector<int64_t> encode_pair(const std::string& a, const std::string& b, bool add_special = true,
                                   std::vector<int64_t>* token_type_ids = nullptr) const;

  // Model inputs for a batch, all (B, T) int64 on the CPU, as tokenizer(texts, padding=...,
  // truncation=..., max_length=..., return_tensors="pt"):
  //   max_length <= 0      → model_max_length.
  //   pad_to_max           → T = max_length (padding="max_length"); else T = the longest row
  //                          (padding="longest"). Padding is on the right with [PAD], mask 0.
  //   truncate             → rows longer than max_length are cut to max_length, special tokens kept
  //                          (pairs: "longest_first": the longer text loses tokens until both are
  //                          equally long, then both lose alike, the second one more when odd;
  //                          with truncate_left and a second text of no tokens, the slow Python
  //                          tokenizer drops the final [SEP] — a quirk not copied here);
  //                          !truncate and a row longer than max_length → vislang::Error.
  struct Batch {
    Tensor ids;             // (B, T) int64
    Tensor attention_mask;  // (B, T) int64: 1 for tokens, 0 for padding
    Tensor token_type_ids;  // (B, T) int64: 0 for the first text (and padding), 1 for the second
  };
  Batch batch(const std::vector<std::string>& texts, int64_t max_length = 0, bool pad_to_max = true,
              bool truncate = true) const;
  // Pairs: texts_a[i] with texts_b[i] (same count).
  Batch batch_pairs(const std::vector<std::string>& texts_a, const std::vector<std::string>& texts_b,
                    int64_t max_length = 0, bool pad_to_max = true, bool truncate = true) const;

  // Python's tokenizer.decode(ids, skip_special_tokens=skip_special): tokens joined by " ", " ##"
  // removed, stripped, then clean_up_tokenization if the config asks for it. Throws for an id
  // outside the vocabulary.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const;

  int64_t cls_id() const;
  int64_t sep_id() const;
  int64_t pad_id() const;
  int64_t unk_id() const;
  int64_t mask_id() const;
  // Id of `token` (vocabulary or added token), or -1.
  int64_t token_to_id(const std::string& token) const;
  // Token of `id`; throws for an id outside the vocabulary.
  const std::string& id_to_token(int64_t id) const;
  // vocab.txt lines plus added tokens (Python: len(tokenizer)).
  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }
  const WordPieceOptions& options() const { return opt_; }

 private:
  WordPieceTokenizer() = default;
  // Reads vocab.txt into vocab_ / id_to_token_.
  void load_vocab(const std::string& path);
  // Adds the special and added tokens of opt_; `where` names the source for errors.
  void add_tokens(const std::string& where);
  // Steps 1-5 on one piece of text without special tokens, then step 6 per word.
  void encode_piece(std::u32string_view text, std::vector<int64_t>& ids, std::vector<std::string>* toks) const;
  void wordpiece(std::u32string_view word, std::vector<int64_t>& ids, std::vector<std::string>* toks) const;
  void encode_into(const std::string& text, std::vector<int64_t>& ids, std::vector<std::string>* toks) const;
  int64_t special_id(const std::string& token, const char* what) const;
  Batch make_batch(const std::vector<std::string>& a, const std::vector<std::string>* b, int64_t max_length,
                   bool pad_to_max, bool truncate) const;

  WordPieceOptions opt_;
  std::unordered_map<std::string, int64_t> vocab_;  // vocab.txt: token → id (later duplicates win)
  std::unordered_map<std::string, int64_t> added_;  // special and added tokens → id
  std::vector<std::string> id_to_token_;            // id → token; "" where decode gives [UNK]
  std::vector<std::u32string> split_off_;           // added_'s tokens, longest first (step 0)
  std::vector<std::u32string> never_split_;         // special tokens + never_split: steps 4-5 leave them alone
  std::vector<std::u32string> keep_whole_;          // opt_.never_split: step 6 looks them up whole
  std::vector<bool> is_special_;                    // id → skipped by decode(skip_special)
  int64_t unk_id_ = -1;
  size_t max_piece_cps_ = 0;       // longest vocab.txt token, in codepoints
  size_t max_cont_piece_cps_ = 0;  // longest "##" token without the "##", in codepoints
};

}  // namespace vislang
