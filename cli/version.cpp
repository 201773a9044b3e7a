// cli/version.cpp — `vislang version`: what this binary is and what it found on this machine.
#include <omp.h>

#include <iostream>

#include "cli/commands.h"
#include "core/cpu_features.h"
#include "kernels/backend.h"

int run_version(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << "usage: vislang version\n  Prints the version, build type, CUDA backend status, detected CPU "
                   "features and OpenMP threads.\n";
      return 0;
    }
    std::cerr << "vislang version: unknown option '" << a << "'\n";
    return 2;
  }
  using namespace vislang;
  std::cout << "vislang " << VISLANG_VERSION << "\n";
  std::cout << "build type:     " << VISLANG_BUILD_TYPE << "\n";
  std::cout << "CUDA backend:   " << (cuda_built() ? "on" : "off (built without CUDA)");
  if (cuda_built()) {
    int n = cuda_device_count();
    std::cout << ", " << n << " GPU(s)";
    for (int i = 0; i < n; ++i) std::cout << (i ? ", " : ": ") << cuda_device_name(i);
  }
  std::cout << "\n";
  std::cout << "CPU:            " << cpu_info().summary() << "\n";
  std::cout << "OpenMP threads: " << omp_get_max_threads() << "\n";
  std::cout << "fp32 peak:      " << cpu_peak_gflops_f32(omp_get_max_threads()) << " GFLOP/s (estimated)\n";
  return 0;
}
