// tests/main.cpp — doctest entry point. The "cuda" suite needs a GPU: without one it prints why and
// exits 77, which CTest reports as "Skipped" (SKIP_RETURN_CODE in CMakeLists.txt), never as a failure.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstring>
#include <iostream>

#include "kernels/backend.h"

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--test-suite=cuda") == 0 && vislang::cuda_device_count() == 0) {
      std::cout << "SKIPPED: cuda suite: "
                << (vislang::cuda_built() ? "no CUDA GPU or driver on this machine"
                                          : "vislang was built without CUDA")
                << " (run scripts/gpu_check.sh on a GPU machine)\n";
      return 77;
    }
  }
  doctest::Context ctx;
  ctx.applyCommandLine(argc, argv);
  return ctx.run();
}
