// search/content_hash.h — the content hash the index stores per image: XXH64 (Yann Collet's xxHash,
// 64-bit variant, seed 0) of the file's bytes, written as 16 lowercase hex digits.
//
// Where it sits: file bytes → **hash** → "unchanged?" test of `vislang index add` (same path and same
// hash: not re-embedded). A non-cryptographic hash is enough: it detects edits, not adversaries, and
// runs at several GB/s, so hashing is never the bottleneck next to decoding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace vislang::search {

uint64_t xxh64(const void* data, size_t n, uint64_t seed = 0);
// 16 lowercase hex digits.
std::string hash_hex(uint64_t h);

}  // namespace vislang::search
