// kernels/cuda/runtime.cu — the device runtime of the CUDA build: device queries, host<->device
// copies, synchronization and the per-device caching allocator over cudaMalloc.
//
// Where it sits: core/allocator.cpp's allocator_for(Device::cuda(i)) returns cuda_allocator(i) below;
// Tensor::to(Device) calls the cuda_memcpy_* functions. kernels/cuda/no_cuda.cpp is the stub of the
// same functions in a build without CUDA.
//
// Allocator policy (as the CPU one): requests round up to allocator_bucket_size() (64 B below 1 MiB,
// 1 MiB above); a freed block goes to its bucket's free list and is handed to the next request of
// that bucket. Unlike the CPU allocator, blocks of every size stay cached (cudaMalloc/cudaFree are
// slow and cudaFree synchronizes the device); when cudaMalloc runs out of memory the cache is
// released and the allocation retried once. Reuse without events is safe because every vislang
// kernel, cuBLAS call and copy runs on the device's legacy default stream, in issue order.
#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cuda/cuda_common.cuh"

namespace vislang {

namespace cuda {

bool sync_after_launch() {
  static const bool on = [] {
    const char* s = std::getenv("VISLANG_CUDA_SYNC");
    return s && *s && std::string(s) != "0";
  }();
  return on;
}

namespace {

class CudaCachingAllocator final : public CachingAllocator {
 public:
  // Every size stays cached: cudaMalloc/cudaFree are slow and cudaFree synchronizes the device.
  explicit CudaCachingAllocator(int device)
      : CachingAllocator("cuda:" + std::to_string(device), SIZE_MAX), device_(device) {}

 protected:
  void* raw_alloc(size_t b) override {
    DeviceGuard g(device_);
    void* p = nullptr;
    last_ = cudaMalloc(&p, b);
    if (last_ != cudaSuccess) {
      cudaGetLastError();  // clear the (non-sticky) error; the base class empties the cache and retries
      return nullptr;
    }
    return p;
  }
  void raw_free(void* p) override {
    int prev = 0;
    bool have_prev = cudaGetDevice(&prev) == cudaSuccess;
    if (!have_prev || prev != device_) cudaSetDevice(device_);
    cudaFree(p);  // errors here (e.g. at process exit) are not actionable
    if (have_prev && prev != device_) cudaSetDevice(prev);
  }
  std::string raw_error() override { return std::string("cudaMalloc: ") + cudaGetErrorString(last_); }

 private:
  int device_;
  cudaError_t last_ = cudaSuccess;
};

// Bit i set: device i has handed out memory (cuda_synchronize waits for those). Constant-initialized,
// so safe to use from other translation units' static initializers.
std::atomic<uint64_t> g_used{0};

}  // namespace
}  // namespace cuda

bool cuda_built() { return true; }

int cuda_device_count() {
  static const int n = [] {
    int c = 0;
    cudaError_t e = cudaGetDeviceCount(&c);
    if (e != cudaSuccess) {  // no driver, no device, driver too old: report none, never throw
      cudaGetLastError();
      return 0;
    }
    return c;
  }();
  return n;
}

static void check_index(int index, const char* what) {
  int n = cuda_device_count();
  VL_CHECK(n > 0, what, ": no CUDA device available (no GPU or no driver on this machine)");
  VL_CHECK(index >= 0 && index < n, what, ": device index ", index, " out of range (", n, " CUDA device",
           n == 1 ? "" : "s", ")");
}

std::string cuda_device_name(int index) {
  check_index(index, "cuda_device_name");
  cudaDeviceProp p;
  VL_CUDA_CHECK(cudaGetDeviceProperties(&p, index));
  return p.name;
}

void cuda_memcpy_h2d(void* dst, const void* src, size_t n) {
  if (n == 0) return;
  VL_CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice));
}
void cuda_memcpy_d2h(void* dst, const void* src, size_t n) {
  if (n == 0) return;
  VL_CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost));
}
void cuda_memcpy_d2d(void* dst, const void* src, size_t n) {
  if (n == 0) return;
  // cudaMemcpyDefault: unified addressing finds both devices (also across GPUs).
  VL_CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDefault));
}

void cuda_synchronize() {
  if (cuda_device_count() == 0) return;
  std::vector<int> used;
  uint64_t mask = cuda::g_used.load(std::memory_order_relaxed);
  for (int i = 0; i < 64; ++i)
    if (mask & (uint64_t(1) << i)) used.push_back(i);
  if (used.empty()) {
    VL_CUDA_CHECK(cudaDeviceSynchronize());
    return;
  }
  for (int d : used) {
    cuda::DeviceGuard g(d);
    VL_CUDA_CHECK(cudaDeviceSynchronize());
  }
}

Allocator& cuda_allocator(int index) {
  check_index(index, "cuda_allocator");
  static std::vector<cuda::CudaCachingAllocator*>* all = [] {
    // Leaked on purpose, like the CPU allocator: static tensors may be destroyed after it.
    auto* v = new std::vector<cuda::CudaCachingAllocator*>();
    for (int i = 0, n = cuda_device_count(); i < n; ++i) v->push_back(new cuda::CudaCachingAllocator(i));
    return v;
  }();
  if (index < 64) {
    uint64_t bit = uint64_t(1) << index;
    if (!(cuda::g_used.load(std::memory_order_relaxed) & bit)) cuda::g_used.fetch_or(bit);
  }
  return *(*all)[static_cast<size_t>(index)];
}

}  // namespace vislang
