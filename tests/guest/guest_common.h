// What the Linux test guest's programs (memcheck.cpp, diskcheck.cpp) share: option numbers, a hash, random ids,
// clocks. Header-only: each program is one static binary with no library of its own.
#pragma once

#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>

namespace ckpt::guest {

// SplitMix64's finalizer: a cheap, well-mixed 64-bit hash.
inline uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A whole number as an option's value (decimal, or 0x hex); nothing for text that is not one, or negative.
inline std::optional<uint64_t> parse_whole_number(const char* text) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long value = std::strtoull(text, &end, 0);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-') return std::nullopt;
  return value;
}

// 64 random bits. GRND_INSECURE never blocks, even before the guest's entropy pool is ready (early boot, no RNG
// device); on kernels before 5.6 the clock is the fallback: the id only has to differ between starts.
inline uint64_t random_u64() {
  uint64_t value = 0;
#ifdef GRND_INSECURE
  if (getrandom(&value, sizeof value, GRND_INSECURE) == sizeof value) return value;
#endif
  if (getrandom(&value, sizeof value, GRND_NONBLOCK) == sizeof value) return value;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return mix64(static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec)) ^
         static_cast<uint64_t>(getpid());
}

inline double monotonic_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// The guest kernel's uptime as /proc/uptime prints it: it keeps growing across a restore and starts again at 0
// after a reboot. "?" where there is no /proc.
inline void read_uptime(char* out, size_t size) {
  std::snprintf(out, size, "?");
  FILE* f = std::fopen("/proc/uptime", "r");
  if (!f) return;
  char buf[64];
  if (std::fscanf(f, "%63s", buf) == 1) std::snprintf(out, size, "%s", buf);
  std::fclose(f);
}

}  // namespace ckpt::guest
