// core/allocator.cpp — the CPU caching allocator (64-byte aligned) and Storage.
#include "core/allocator.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "core/error.h"
#include "kernels/backend.h"

namespace vislang {

size_t allocator_bucket_size(size_t n) {
  if (n == 0) n = 1;
  const size_t kSmall = 64, kLarge = size_t(1) << 20;
  if (n < kLarge) return (n + kSmall - 1) / kSmall * kSmall;
  return (n + kLarge - 1) / kLarge * kLarge;
}

void* CachingAllocator::allocate(size_t nbytes) {
  size_t b = allocator_bucket_size(nbytes);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.n_allocs++;
    auto it = free_.find(b);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.cached_bytes -= b;
      stats_.n_cache_hits++;
    }
  }
  if (!p) p = raw_alloc(b);
  if (!p) {  // give the cache back to the device and try once more
    empty_cache();
    p = raw_alloc(b);
  }
  if (!p) VL_FAIL(name_, " allocator: allocating ", b, " bytes failed: ", raw_error());
  std::lock_guard<std::mutex> lk(mu_);
  stats_.allocated_bytes += b;
  if (stats_.allocated_bytes > stats_.peak_bytes) stats_.peak_bytes = stats_.allocated_bytes;
  return p;
}

void CachingAllocator::deallocate(void* p, size_t nbytes) {
  if (!p) return;
  size_t b = allocator_bucket_size(nbytes);
  {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.allocated_bytes -= b;
    if (b <= max_cached_) {
      free_[b].push_back(p);
      stats_.cached_bytes += b;
      return;
    }
  }
  raw_free(p);
}

void CachingAllocator::empty_cache() {
  std::map<size_t, std::vector<void*>> blocks;
  {
    std::lock_guard<std::mutex> lk(mu_);
    blocks.swap(free_);
    stats_.cached_bytes = 0;
  }
  for (auto& kv : blocks)
    for (void* p : kv.second) raw_free(p);
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

namespace {

// Host memory: 64-byte aligned blocks; blocks above 256 MiB go back to the OS on free so a one-off
// giant buffer (e.g. a weights conversion) does not stay resident.
class CpuCachingAllocator final : public CachingAllocator {
 public:
  CpuCachingAllocator() : CachingAllocator("cpu", size_t(256) << 20) {}

 protected:
  void* raw_alloc(size_t b) override { return std::aligned_alloc(64, b); }
  void raw_free(void* p) override { std::free(p); }
};

}  // namespace

Allocator& allocator_for(Device d) {
  if (d.is_cpu()) {
    static CpuCachingAllocator* cpu = new CpuCachingAllocator();  // leaked: outlives static tensors
    return *cpu;
  }
  return cuda_allocator(d.index);
}

Storage::Storage(Device d, size_t nbytes) : device_(d), nbytes_(nbytes), owned_(true) {
  data_ = allocator_for(d).allocate(nbytes);
}
Storage::Storage(Device d, void* data, size_t nbytes, std::shared_ptr<void> keep_alive)
    : device_(d), data_(data), nbytes_(nbytes), owned_(false), keep_alive_(std::move(keep_alive)) {}
Storage::~Storage() {
  if (owned_ && data_) allocator_for(device_).deallocate(data_, nbytes_);
}

void Storage::release_pages(const void* p, size_t n) const {
  if (!file_backed_ || !device_.is_cpu() || n == 0) return;
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  uintptr_t lo = reinterpret_cast<uintptr_t>(p), hi = lo + n;
  uintptr_t base = reinterpret_cast<uintptr_t>(data_), end = base + nbytes_;
  lo = std::max(lo, base);
  hi = std::min(hi, end);
  lo = (lo + page - 1) / page * page;  // whole pages only: neighbours' bytes stay untouched
  hi = hi / page * page;
  if (hi > lo) (void)madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    try {
      size_t pos = 0;
      int i = std::stoi(s.substr(5), &pos);
      if (pos == s.size() - 5 && i >= 0) return cuda(i);
    } catch (...) {
    }
  }
  VL_FAIL("device: expected 'cpu', 'cuda' or 'cuda:N', got '", s, "'");
}

}  // namespace vislang
