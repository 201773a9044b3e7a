// core/cpu_features.cpp — cpuid/xgetbv feature detection, nominal clock, peak-flops estimates.
#include "core/cpu_features.h"

#include <omp.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#define VL_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define VL_X86 0
#endif

namespace vislang {

namespace {

#if VL_X86
struct Regs { uint32_t a = 0, b = 0, c = 0, d = 0; };

Regs cpuid(uint32_t leaf, uint32_t sub = 0) {
  Regs r;
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
  return r;
}

// XCR0: which register states the OS saves on a context switch. Only valid when OSXSAVE is set.
uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

bool bit(uint32_t v, int b) { return (v >> b) & 1u; }
#endif

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n"), e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz" -> 2.9 (0 when the brand has no clock).
double clock_from_brand(const std::string& brand) {
  size_t at = brand.find('@');
  if (at == std::string::npos) return 0;
  double v = std::atof(brand.c_str() + at + 1);
  if (brand.find("GHz", at) != std::string::npos) return v;
  if (brand.find("MHz", at) != std::string::npos) return v / 1000.0;
  return 0;
}

double clock_from_sysfs() {  // intel_pstate / amd-pstate publish the base clock in kHz
  for (const char* path : {"/sys/devices/system/cpu/cpu0/cpufreq/base_frequency",
                           "/sys/devices/system/cpu/cpu0/cpufreq/amd_pstate_nominal_freq"}) {
    std::ifstream f(path);
    double khz = 0;
    if (f >> khz && khz > 0) return khz / 1e6;
  }
  return 0;
}

double clock_from_proc_cpuinfo() {  // first "cpu MHz : 2596.144" line
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("cpu MHz", 0) != 0) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    double mhz = std::atof(line.c_str() + colon + 1);
    if (mhz > 0) return mhz / 1000.0;
  }
  return 0;
}

CpuInfo detect() {
  CpuInfo ci;
  ci.vendor = "unknown";
  ci.logical_cpus = static_cast<int>(std::thread::hardware_concurrency());
  ci.omp_threads = omp_get_max_threads();
#if VL_X86
  Regs r0 = cpuid(0);
  uint32_t max_leaf = r0.a;
  char vendor[13];
  std::memcpy(vendor + 0, &r0.b, 4);
  std::memcpy(vendor + 4, &r0.d, 4);
  std::memcpy(vendor + 8, &r0.c, 4);
  vendor[12] = 0;
  ci.vendor = vendor;

  Regs r1 = cpuid(1);
  int base_family = (r1.a >> 8) & 0xF, base_model = (r1.a >> 4) & 0xF;
  ci.stepping = r1.a & 0xF;
  ci.family = base_family == 0xF ? base_family + int((r1.a >> 20) & 0xFF) : base_family;
  ci.model = (base_family == 0x6 || base_family == 0xF) ? base_model + int(((r1.a >> 16) & 0xF) << 4)
                                                        : base_model;

  uint32_t max_ext = cpuid(0x80000000u).a;
  if (max_ext >= 0x80000004u) {
    char brand[49];
    for (uint32_t i = 0; i < 3; ++i) {
      Regs r = cpuid(0x80000002u + i);
      std::memcpy(brand + 16 * i + 0, &r.a, 4);
      std::memcpy(brand + 16 * i + 4, &r.b, 4);
      std::memcpy(brand + 16 * i + 8, &r.c, 4);
      std::memcpy(brand + 16 * i + 12, &r.d, 4);
    }
    brand[48] = 0;
    ci.brand = trim(brand);
  }

  // OS support: XCR0 bit 1 = SSE, 2 = AVX (ymm), 5..7 = opmask + zmm, 17/18 = AMX tile config/data.
  bool osxsave = bit(r1.c, 27);
  uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  bool os_ymm = (xcr0 & 0x6) == 0x6;
  bool os_zmm = os_ymm && (xcr0 & 0xE0) == 0xE0;
  bool os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);

  ci.sse42 = bit(r1.c, 20);
  ci.avx = bit(r1.c, 28) && os_ymm;
  ci.fma = bit(r1.c, 12) && os_ymm;
  ci.f16c = bit(r1.c, 29) && os_ymm;
  if (max_leaf >= 7) {
    Regs r7 = cpuid(7, 0);
    ci.avx2 = bit(r7.b, 5) && os_ymm;
    ci.avx512f = bit(r7.b, 16) && os_zmm;
    ci.avx512dq = bit(r7.b, 17) && os_zmm;
    ci.avx512bw = bit(r7.b, 30) && os_zmm;
    ci.avx512vl = bit(r7.b, 31) && os_zmm;
    ci.avx512_vnni = bit(r7.c, 11) && os_zmm;
    ci.amx_bf16 = bit(r7.d, 22) && os_amx;
    ci.amx_tile = bit(r7.d, 24) && os_amx;
    ci.amx_int8 = bit(r7.d, 25) && os_amx;
    if (r7.a >= 1) ci.avx512_bf16 = bit(cpuid(7, 1).a, 5) && os_zmm;
  }
#endif

  if ((ci.clock_ghz = clock_from_brand(ci.brand)) > 0) {
    ci.clock_source = "brand string";
  } else if ((ci.clock_ghz = clock_from_sysfs()) > 0) {
    ci.clock_source = "cpufreq sysfs";
  } else if ((ci.clock_ghz = clock_from_proc_cpuinfo()) > 0) {
    ci.clock_source = "/proc/cpuinfo";
  } else {
    ci.clock_ghz = 2.0;
    ci.clock_source = "fallback (unknown clock, assumed 2.0 GHz)";
  }
  return ci;
}

// ---- the register-only loops of cpu_measure_peak_gflops_*: 12 independent accumulators hide the
// latency (4-5 cycles) on two pipes. run_for repeats `block` (65,536 iterations of the 12 updates,
// `flops_per_block` flops) until `seconds` have passed and returns the flops done; `sink` reads the
// accumulators afterwards so the compiler keeps the loop.
template <typename Block, typename Sink>
double run_for(double seconds, double flops_per_block, Block block, Sink sink) {
  auto t0 = std::chrono::steady_clock::now();
  double flops = 0;
  do {
    block();
    flops += flops_per_block;
  } while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds);
  return sink() == -1.0f ? 0 : flops;
}

#if VL_X86
__attribute__((target("avx512f"))) double fma_loop_avx512(double seconds) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * float(i));
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(0.0001f);
  return run_for(
      seconds, 65536.0 * 12 * 32,
      [&]() __attribute__((target("avx512f"))) {
        for (int it = 0; it < 65536; ++it)
          for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
      },
      [&]() __attribute__((target("avx512f"))) {
        float tmp[16], sum = 0;
        for (int i = 0; i < 12; ++i) _mm512_storeu_ps(tmp, acc[i]), sum += tmp[0];
        return sum;
      });
}
// vdpbf16ps: per f32 lane, acc += a0·b0 + a1·b1 over a pair of bf16 values: 16 lanes × 4 flops.
__attribute__((target("avx512f,avx512bf16"))) double dpbf16_loop_avx512(double seconds) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * float(i));
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-4f), _mm512_set1_ps(-1e-4f));
  return run_for(
      seconds, 65536.0 * 12 * 64,
      [&]() __attribute__((target("avx512f,avx512bf16"))) {
        for (int it = 0; it < 65536; ++it)
          for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
      },
      [&]() __attribute__((target("avx512f"))) {
        float tmp[16], sum = 0;
        for (int i = 0; i < 12; ++i) _mm512_storeu_ps(tmp, acc[i]), sum += tmp[0];
        return sum;
      });
}
__attribute__((target("avx2,fma"))) double fma_loop_avx2(double seconds) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * float(i));
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(0.0001f);
  return run_for(
      seconds, 65536.0 * 12 * 16,
      [&]() __attribute__((target("avx2,fma"))) {
        for (int it = 0; it < 65536; ++it)
          for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
      },
      [&]() __attribute__((target("avx2,fma"))) {
        float tmp[8], sum = 0;
        for (int i = 0; i < 12; ++i) _mm256_storeu_ps(tmp, acc[i]), sum += tmp[0];
        return sum;
      });
}
#endif
double fma_loop_plain(double seconds) {
  float acc[12][4];
  for (int i = 0; i < 12; ++i)
    for (int l = 0; l < 4; ++l) acc[i][l] = 0.001f * float(i);
  return run_for(
      seconds, 65536.0 * 12 * 4 * 2,
      [&] {
        for (int it = 0; it < 65536; ++it)
          for (int i = 0; i < 12; ++i)
            for (int l = 0; l < 4; ++l) acc[i][l] = acc[i][l] * 0.9999f + 0.0001f;
      },
      [&] { return acc[3][1]; });
}

// GFLOP/s of `loop` run on `threads` threads at once for about `seconds`.
double measure_loops(int threads, double seconds, double (*loop)(double)) {
  if (threads <= 0) threads = cpu_info().omp_threads;
  double total = 0;
  auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : total)
  total += loop(seconds);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return total / s / 1e9;
}

}  // namespace

const CpuInfo& cpu_info() {
  static const CpuInfo info = detect();
  return info;
}

int CpuInfo::flops_per_cycle_f32() const {
  if (avx512f) {
    if (vendor == "AuthenticAMD") return family >= 0x1A ? 64 : 32;
    return 64;  // assumes two 512-bit FMA units, see the header
  }
  if (avx2 && fma) return 32;
  return 8;
}

double cpu_peak_gflops_f32(int threads) {
  const CpuInfo& ci = cpu_info();
  if (threads <= 0) threads = ci.omp_threads;
  return threads * ci.clock_ghz * ci.flops_per_cycle_f32();
}

double cpu_measure_peak_gflops_f32(int threads, double seconds) {
  const CpuInfo& ci = cpu_info();
#if VL_X86
  if (ci.avx512f) return measure_loops(threads, seconds, fma_loop_avx512);
  if (ci.avx2 && ci.fma) return measure_loops(threads, seconds, fma_loop_avx2);
#endif
  (void)ci;
  return measure_loops(threads, seconds, fma_loop_plain);
}

double cpu_measure_peak_gflops_bf16(int threads, double seconds) {
#if VL_X86
  const CpuInfo& ci = cpu_info();
  if (ci.avx512f && ci.avx512_bf16) return measure_loops(threads, seconds, dpbf16_loop_avx512);
#endif
  (void)threads, (void)seconds;
  return 0;
}

std::string CpuInfo::summary() const {
  std::ostringstream os;
  char fm[64];
  std::snprintf(fm, sizeof fm, "family 0x%X model 0x%X stepping %d", family, model, stepping);
  os << (brand.empty() ? std::string("unknown cpu") : brand) << " (" << vendor << " " << fm << "), ";
  char clk[160];
  std::snprintf(clk, sizeof clk, "%.3f GHz nominal (%s), %d logical cpus, %d OpenMP threads, simd:", clock_ghz,
                clock_source.c_str(), logical_cpus, omp_threads);
  os << clk;
  const std::pair<const char*, bool> flags[] = {
      {"sse4.2", sse42},      {"avx", avx},           {"avx2", avx2},           {"fma", fma},
      {"f16c", f16c},         {"avx512f", avx512f},   {"avx512bw", avx512bw},   {"avx512dq", avx512dq},
      {"avx512vl", avx512vl}, {"avx512_bf16", avx512_bf16}, {"avx512_vnni", avx512_vnni},
      {"amx_tile", amx_tile}, {"amx_bf16", amx_bf16}, {"amx_int8", amx_int8}};
  int n = 0;
  for (const auto& f : flags)
    if (f.second) os << " " << f.first, ++n;
  if (!n) os << " baseline only";
  char pk[128];
  std::snprintf(pk, sizeof pk, ", fp32 peak %d flop/cycle/core", flops_per_cycle_f32());
  os << pk;
  return os.str();
}

}  // namespace vislang
