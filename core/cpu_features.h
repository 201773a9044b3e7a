// core/cpu_features.h — what the host CPU can do, detected once at run time with cpuid.
//
// Where it sits: the optimized CPU kernels (kernels/cpu/) ask `cpu_info()` which instruction set
// to dispatch to (AVX-512, AVX2+FMA or plain C++), so one binary never executes an instruction the
// machine lacks. `vislang bench ops` divides measured GFLOP/s by `cpu_peak_gflops_f32()` to print
// "% of peak". An ISA extension counts as present only when the CPU reports it AND the OS saves its
// registers on a context switch (XCR0 via xgetbv); on non-x86 hosts every flag is false.
#pragma once
#include <string>

namespace vislang {

struct CpuInfo {
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", ... ("unknown" off x86)
  std::string brand;   // the cpuid brand string, e.g. "AMD EPYC 9R14 96-Core Processor"
  int family = 0;      // display family (base + extended), e.g. 0x19 = Zen3/Zen4
  int model = 0;       // display model (base + extended << 4)
  int stepping = 0;

  // Instruction sets usable by this process (CPU support AND OS-enabled register state).
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512_bf16 = false, avx512_vnni = false;
  // AMX: the CPU has it and XCR0 enables tile state. On Linux a process must still request
  // permission (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)) before touching tiles.
  bool amx_tile = false, amx_bf16 = false, amx_int8 = false;

  double clock_ghz = 0;      // nominal clock used for the peak figure
  std::string clock_source;  // "brand string", "cpufreq sysfs", "/proc/cpuinfo", "fallback ..."
  int logical_cpus = 0;      // std::thread::hardware_concurrency()
  int omp_threads = 1;       // omp_get_max_threads() when cpu_info() first ran

  // Peak fp32 flops per cycle per core for the widest usable SIMD (see cpu_peak_gflops_f32).
  int flops_per_cycle_f32() const;
  // One line: brand, vendor/family/model, clock and its source, cpu and thread counts, SIMD flags,
  // flops/cycle — e.g. "AMD EPYC (AuthenticAMD family 0x19 model 0x11 stepping 1), 2.596 GHz ...".
  std::string summary() const;
};

// Detected on first call (thread-safe), then cached.
const CpuInfo& cpu_info();

// threads × nominal clock (GHz) × flops/cycle/core. flops/cycle = FMA pipes × fp32 lanes × 2:
//   AMD family 0x19 (Zen4) with AVX-512: 32 — 512-bit FMAs run as two 256-bit halves on 2 pipes.
//   AMD family >= 0x1A (Zen5) with AVX-512: 64 — full 512-bit datapath (server/desktop parts;
//     some mobile Zen5 parts are double-pumped like Zen4 and reach only 32).
//   Intel with AVX-512: 64 — ASSUMES two 512-bit FMA units (Xeon Gold/Platinum, Sapphire Rapids);
//     parts with one unit (many Xeon Silver/Bronze, Ice Lake client) reach only 32.
//   AVX2 + FMA: 32 (two 256-bit FMA pipes; Zen1 has 2×128-bit and reaches 16).
//   otherwise: 8 (SSE, separate 4-wide add and multiply pipes).
// Uses the NOMINAL clock: a core that boosts above it can measure above 100 % of this "peak".
// threads <= 0 means cpu_info().omp_threads.
double cpu_peak_gflops_f32(int threads = 0);

// Runs a register-only FMA loop on `threads` threads for about `seconds` and returns the fp32
// GFLOP/s it reached: the practical peak at the clock the cores actually run (turbo included).
double cpu_measure_peak_gflops_f32(int threads = 0, double seconds = 0.05);
// The same with a register-only loop of AVX512_BF16's vdpbf16ps (two bf16 products summed into each
// f32 lane: 4 flops per lane): the ceiling of any bf16 GEMM built on it. 0 without AVX512_BF16.
double cpu_measure_peak_gflops_bf16(int threads = 0, double seconds = 0.05);

}  // namespace vislang
