// kernels/cuda/no_cuda.cpp — the CUDA backend of a build without CUDA: every entry point reports
// "built without CUDA" as a clear error, so model code never needs #ifdef.
#include "kernels/backend.h"

namespace vislang {

static const char* kNoCuda = "vislang was built without CUDA (configure with -DVISLANG_CUDA=ON and an nvcc)";

static Kernel no_cuda_find(const OpCall&) { VL_FAIL(kNoCuda); }
const Backend& cuda_backend() {
  static const Backend b{"cuda", &no_cuda_find};
  return b;
}
bool cuda_built() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_device_name(int) { VL_FAIL(kNoCuda); }
void cuda_memcpy_h2d(void*, const void*, size_t) { VL_FAIL(kNoCuda); }
void cuda_memcpy_d2h(void*, const void*, size_t) { VL_FAIL(kNoCuda); }
void cuda_memcpy_d2d(void*, const void*, size_t) { VL_FAIL(kNoCuda); }
void cuda_synchronize() {}
Allocator& cuda_allocator(int) { VL_FAIL(kNoCuda); }

}  // namespace vislang
