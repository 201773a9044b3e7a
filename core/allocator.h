// core/allocator.h — caching allocators, one per device, and the ref-counted Storage they fill.
//
// CPU buffers are 64-byte aligned (one cache line / one AVX-512 register). Freed blocks go back to a
// size-bucketed free list (sizes rounded up to 64 B below 1 MiB, to 1 MiB above) and are reused by the
// next allocation of the same bucket, so a model forward does not hit malloc for every activation.
// The CUDA allocator has the same policy over cudaMalloc; it lives in the CUDA backend.
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/device.h"

namespace vislang {

struct AllocatorStats {
  size_t allocated_bytes = 0;  // currently handed out
  size_t cached_bytes = 0;     // held in free lists
  size_t peak_bytes = 0;
  size_t n_allocs = 0, n_cache_hits = 0;
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* p, size_t nbytes) = 0;
  virtual void empty_cache() = 0;
  virtual AllocatorStats stats() const = 0;
};

// The bucketed free-list cache both devices use (CPU: aligned_alloc, CUDA: cudaMalloc). A device
// supplies raw_alloc/raw_free; this class rounds requests to their bucket, hands freed blocks to the
// next request of the same bucket, keeps the statistics, and when raw_alloc runs out of memory
// releases the cache and retries once. Blocks larger than `max_cached` bytes are freed at once.
class CachingAllocator : public Allocator {
 public:
  void* allocate(size_t nbytes) override;
  void deallocate(void* p, size_t nbytes) override;  // never throws (called from destructors)
  void empty_cache() override;
  AllocatorStats stats() const override;

 protected:
  CachingAllocator(std::string name, size_t max_cached) : name_(std::move(name)), max_cached_(max_cached) {}
  virtual void* raw_alloc(size_t bytes) = 0;  // nullptr when out of memory
  virtual void raw_free(void* p) = 0;
  virtual std::string raw_error() { return "out of memory"; }  // why the last raw_alloc failed

 private:
  std::string name_;
  size_t max_cached_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

// The process-wide allocator of a device (CUDA: throws if built without CUDA or no GPU).
Allocator& allocator_for(Device d);
// Round a request to its caching bucket (exposed for tests).
size_t allocator_bucket_size(size_t nbytes);

// Bytes of one tensor storage. Either owned (returned to the allocator on destruction) or borrowed
// (from_blob / mmap: a keep-alive handle owns the memory).
class Storage {
 public:
  Storage(Device d, size_t nbytes);                                                // owned
  Storage(Device d, void* data, size_t nbytes, std::shared_ptr<void> keep_alive);  // borrowed
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // A borrowed storage over a private, read-only-in-practice file mapping (a safetensors file) may
  // hand pages back to the OS: the kernel re-reads them from the file if they are touched again.
  // Used after a weight has been repacked (kernels/cpu/prepack.cpp) so the model is not resident twice.
  void set_file_backed(bool v) { file_backed_ = v; }
  bool file_backed() const { return file_backed_; }
  // Drops the whole pages inside [p, p + n) when file_backed(); otherwise does nothing.
  void release_pages(const void* p, size_t n) const;

 private:
  Device device_;
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  bool owned_ = false;
  bool file_backed_ = false;
  std::shared_ptr<void> keep_alive_;
};

}  // namespace vislang
