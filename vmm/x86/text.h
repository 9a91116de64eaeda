// Number formatting for the error messages of vmm/x86: addresses in hex, sizes in MiB.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace ckpt::vmm::x86 {

inline std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Whole MiB, rounded up: "needs 81 MiB" must not understate.
inline std::string mib(uint64_t bytes) { return std::to_string((bytes + (1ull << 20) - 1) >> 20) + " MiB"; }

}  // namespace ckpt::vmm::x86
