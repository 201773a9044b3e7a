// train/bpe_trainer.h — learns a small CLIP-format BPE vocabulary (vocab.json + merges.txt) from a
// word list, so that a model trained on a closed world (the toy world) carries its own tokenizer and
// runs with no external files. The result loads with ClipTokenizer::from_hf like any Hugging Face
// CLIP tokenizer.
//
// The algorithm is the classic one (Sennrich et al. 2016), in CLIP's conventions:
//   * a word is split into characters, the last one marked with "</w>" (end of word);
//   * repeatedly, the most frequent adjacent pair over the corpus (ties: the lexicographically
//     smallest pair, so the result is deterministic) is merged into one symbol and recorded;
//   * it stops when no pair occurs `min_count` times or `max_merges` merges were made.
// The vocabulary is CLIP's layout: the 256 byte symbols, the same 256 with "</w>", one symbol per
// merge in merge order, then <|startoftext|> and <|endoftext|> (the largest id, so argmax pooling
// finds EOT). Words are pre-split exactly as ClipTokenizer::pre_tokenize does (lower-cased, letters
// / digits / punctuation runs), so the learned merges apply to what the tokenizer will see.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/clip_tokenizer.h"

namespace vislang::train {

struct BpeVocab {
  std::vector<std::string> tokens;                           // id -> token (byte-level unicode form)
  std::vector<std::pair<std::string, std::string>> merges;   // in rank order
  std::string vocab_json() const;   // {"token": id, ...}
  std::string merges_txt() const;   // "#version: 0.2" header, then "a b" per line
  void write(const std::string& dir) const;  // dir/vocab.json + dir/merges.txt (atomic writes)
};

// Learns merges from `texts` (each pre-tokenized into words). `min_count` >= 1.
BpeVocab learn_bpe(const std::vector<std::string>& texts, int max_merges = 4096, int min_count = 1);

// A tokenizer for `v` (written to a temporary folder and read back through ClipTokenizer::from_hf,
// the same path a saved model takes).
ClipTokenizer make_tokenizer(const BpeVocab& v);

}  // namespace vislang::train
