// kernels/cpu/prepack.cpp — the registry of prepacked linear weights (see prepack.h).
#include "kernels/cpu/prepack.h"

#include <atomic>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <tuple>

#include "kernels/cpu/cpu_common.h"

namespace vislang::cpu {
namespace {

// W (rows = out, cols = in) exactly as registered: the storage object, offset, shape, strides, dtype.
using Key = std::tuple<const Storage*, int64_t, int64_t, int64_t, int64_t, int64_t, int>;

struct Entry {
  std::weak_ptr<Storage> storage;
  std::shared_ptr<const PackedB> packed;       // f32 panels (sgemm); null until the first product that uses them
  std::shared_ptr<const PackedB> packed_bf16;  // bf16 panels (bgemm); likewise
};
using Slot = std::shared_ptr<const PackedB> Entry::*;

struct Registry {
  std::shared_mutex mu;
  std::map<Key, Entry> entries;
  std::atomic<int64_t> hits{0};
  std::atomic<uint32_t> lookups{0};
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: kernels may run during static destruction
  return *r;
}

bool same_owner(const std::weak_ptr<Storage>& w, const std::shared_ptr<Storage>& s) {
  return !w.owner_before(s) && !s.owner_before(w);
}

bool usable(const Tensor& t) {
  return t.defined() && t.device().is_cpu() &&
         (t.dtype() == DType::F32 || t.dtype() == DType::F16 || t.dtype() == DType::BF16);
}

// B (K, N) as f32 for packing: its own memory (f32), or a contiguous conversion (f16 / bf16) —
// the same values the unpacked MATMUL path converts to, so the panels are bit-identical. For bgemm
// (bf16 panels) bf16 and f32 are read in place (f32 rounds to bf16 while packing).
std::shared_ptr<const PackedB> pack_now(const Tensor& b, bool bf16) {
  const int64_t K = b.size(-2), N = b.size(-1), rs = b.stride(-2), cs = b.stride(-1);
  if (bf16) return bgemm_pack_b(K, N, GemmOperand{b.data_ptr(), b.dtype() == DType::BF16, rs, cs});
  if (b.dtype() == DType::F32) return sgemm_pack_b(K, N, b.data<const float>(), rs, cs);
  std::vector<float> f(static_cast<size_t>(K * N));
  const char* base = cpu_kernels::byte_ptr(b);
  const int64_t es = cpu_kernels::esize(b);
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && K > 1 && K * N >= cpu_kernels::kParallelMin)
  for (int64_t k = 0; k < K; ++k) cpu_kernels::load_f32(f.data() + k * N, base + k * rs * es, b.dtype(), N, cs);
  return sgemm_pack_b(K, N, f.data(), N, 1);
}

// Packs b, then hands the pages of a weight that lives in a memory-mapped checkpoint back to the OS
// (Storage::release_pages): from now on the CPU path reads only the panels, so without this the
// model would be resident twice. Pages touched again are re-read from the file.
std::shared_ptr<const PackedB> pack(const Tensor& b, bool bf16) {
  std::shared_ptr<const PackedB> packed = pack_now(b, bf16);
  int64_t span = 1;
  for (int64_t d = 0; d < b.dim(); ++d) {
    if (b.stride(d) < 0) return packed;  // unusual view: leave its pages alone
    span += (b.size(d) - 1) * b.stride(d);
  }
  b.storage()->release_pages(b.data_ptr(), static_cast<size_t>(span) * b.element_size());
  return packed;
}

// Drops the entries whose weight storage has died (and with them their panels). Caller holds mu alone.
void sweep(Registry& r) {
  for (auto it = r.entries.begin(); it != r.entries.end();)
    it = it->second.storage.expired() ? r.entries.erase(it) : std::next(it);
}

}  // namespace

void register_prepacked_weight(const Tensor& w) {
  if (!usable(w) || w.dim() != 2 || w.numel() == 0) return;
  const Key key{w.storage().get(), w.offset(), w.size(0), w.size(1), w.stride(0), w.stride(1), int(w.dtype())};
  Registry& r = registry();
  std::unique_lock lock(r.mu);
  sweep(r);
  Entry& e = r.entries[key];
  if (!same_owner(e.storage, w.storage())) e = Entry{w.storage(), nullptr, nullptr};  // new (or a reused key)
}

namespace {

// find_prepacked (slot packed) and find_prepacked_bf16 (slot packed_bf16).
std::shared_ptr<const PackedB> find(const Tensor& b, Slot slot) {
  const bool bf16 = slot == &Entry::packed_bf16;
  if (!usable(b) || (b.dim() != 2 && b.dim() != 3) || (bf16 && b.dtype() == DType::F16)) return nullptr;
  if (b.dim() == 3 && b.size(0) != 1 && b.stride(0) != 0) return nullptr;  // different matrices
  const int64_t K = b.size(-2), N = b.size(-1);
  if (K == 0 || N == 0) return nullptr;
  // b = Wᵀ: W (N, K) with strides (b's column stride, b's row stride).
  const Key key{b.storage().get(), b.offset(), N, K, b.stride(-1), b.stride(-2), int(b.dtype())};
  Registry& r = registry();
  if ((r.lookups.fetch_add(1, std::memory_order_relaxed) & 1023u) == 1023u) {
    // Now and then free the panels of weights that died (a model that was dropped) even when no
    // registration or lookup of theirs comes to sweep them.
    std::unique_lock lock(r.mu);
    sweep(r);
  }
  bool dead = false;
  {
    std::shared_lock lock(r.mu);
    if (r.entries.empty()) return nullptr;
    auto it = r.entries.find(key);
    if (it == r.entries.end()) return nullptr;
    // b holds its storage alive, so a registered weight with that key is either this very storage
    // (same owner) or one that died (expired) whose Storage address was reused by b's.
    dead = !same_owner(it->second.storage, b.storage()) || it->second.storage.expired();
    if (!dead && it->second.*slot) {
      r.hits.fetch_add(1, std::memory_order_relaxed);
      return it->second.*slot;
    }
  }
  if (dead) {  // drop it (and any other dead entry) now rather than at the next registration
    std::unique_lock lock(r.mu);
    sweep(r);
    return nullptr;
  }
  std::shared_ptr<const PackedB> packed = pack(b, bf16);  // outside the lock: others keep running
  std::unique_lock lock(r.mu);
  auto it = r.entries.find(key);
  if (it == r.entries.end() || !same_owner(it->second.storage, b.storage())) return packed;  // re-registered meanwhile
  if (!(it->second.*slot)) it->second.*slot = packed;  // two first uses at once: keep the first
  r.hits.fetch_add(1, std::memory_order_relaxed);
  return it->second.*slot;
}

}  // namespace

std::shared_ptr<const PackedB> find_prepacked(const Tensor& b) { return find(b, &Entry::packed); }
std::shared_ptr<const PackedB> find_prepacked_bf16(const Tensor& b) { return find(b, &Entry::packed_bf16); }

PrepackStats prepack_stats() {
  Registry& r = registry();
  std::shared_lock lock(r.mu);
  PrepackStats s;
  for (const auto& [key, e] : r.entries) {
    ++s.entries;
    if (e.packed || e.packed_bf16) ++s.packed;
    for (const auto& p : {e.packed, e.packed_bf16})
      if (p) s.bytes += static_cast<int64_t>(p->bytes());
  }
  s.hits = r.hits.load(std::memory_order_relaxed);
  return s;
}

}  // namespace vislang::cpu
