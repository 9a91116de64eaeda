// The contract between the VMM and the built-in guests (vmm/guest/workloads.S) and the software backend's C++
// workloads (vmm/guest/workload.h): guest physical layout, the control block, the status slots, the registers.
// docs/workloads.md is the prose form. Values here are ABI: never renumber.
#pragma once

#include <cstdint>

namespace ckpt::vmm::guest {

inline constexpr uint64_t kPageSize = 4096;

// ---- guest physical layout (identity-mapped, long mode) ----
inline constexpr uint64_t kGdtGpa = 0x1000;        // 3 descriptors: null, code64 (0x08), data (0x10)
inline constexpr uint64_t kControlGpa = 0x2000;    // one WorkloadControl per vCPU, 64 bytes apart
inline constexpr uint64_t kStatusGpa = 0x3000;     // one status slot per vCPU, 64 bytes apart
inline constexpr uint64_t kPageTableGpa = 0x4000;  // PML4, then PDPT, then one PD per GiB (2 MiB pages)
inline constexpr uint64_t kCodeGpa = 0x80000;      // guest code, up to 64 KiB
inline constexpr uint64_t kCodeMaxBytes = 0x10000;
inline constexpr uint64_t kStackTopGpa = 0xF0000;  // vCPU i's stack top is kStackTopGpa - i * kStackBytes
inline constexpr uint64_t kStackBytes = 0x1000;
inline constexpr uint64_t kWorkloadGpa = 0x100000;  // regions start at 1 MiB, one per vCPU, page-aligned
inline constexpr uint32_t kMaxVcpus = 32;           // control/status pages hold 64 slots; stacks fit below code
inline constexpr uint64_t kMaxMemoryBytes = 64ull << 30;  // 64 GiB: PDs for that fit below kCodeGpa

inline constexpr uint16_t kCodeSelector = 0x08;
inline constexpr uint16_t kDataSelector = 0x10;

enum class WorkloadKind : uint32_t {
  kRandomWriter = 1,  // pages chosen uniformly at random in the region
  kHotSet = 2,        // 15 of 16 writes in the first hot_pages pages of the region
  kSweep = 3,         // pages in order, wrapping at the region's end
  kIdle = 4,          // no writes; the vCPU halts
};

// At kControlGpa + 64 * vcpu_index. Written by the VMM before the vCPU first runs; read-only for the guest.
struct WorkloadControl {
  uint32_t kind;                  // WorkloadKind
  uint32_t vcpu_index;
  uint64_t seed;
  uint64_t region_gpa;            // first byte of this vCPU's region
  uint64_t region_pages;          // > 0
  uint64_t writes_per_iteration;  // > 0
  uint64_t hot_pages;             // hot-set only: 1 .. region_pages
  uint64_t delay_loops;           // `pause` instructions after each iteration (the write rate knob)
  uint64_t max_iterations;        // 0 = run forever; else halt after completing this many iterations
};
static_assert(sizeof(WorkloadControl) == 64);

// At kStatusGpa + 64 * vcpu_index: the number of completed iterations, written by the guest after each iteration.
struct WorkloadStatus {
  uint64_t iterations;
  uint64_t reserved[7];
};
static_assert(sizeof(WorkloadStatus) == 64);

// Registers at entry (RIP = kCodeGpa + offset of guest_entry): RDI = control block GPA, RSI = status slot GPA,
// RSP = stack top. The loop keeps its whole state in registers, so saving and restoring the vCPU's registers
// resumes it exactly: R12 = completed iterations, R13 = PRNG state, R14 = sweep position.

// The PRNG: xorshift64 (13, 7, 17), started at (seed ^ ((vcpu_index + 1) * 0x9E3779B97F4A7C15)) | 1.
inline constexpr uint64_t kSeedMix = 0x9E3779B97F4A7C15ull;

}  // namespace ckpt::vmm::guest
