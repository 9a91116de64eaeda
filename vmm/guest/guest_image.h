// Builds the system area of a built-in guest (GDT, identity page tables, code, control blocks, status slots) in the
// host mapping of the start of guest memory, and splits guest memory into per-vCPU workload regions.
// Layout constants are in vmm/guest/guest_abi.h; docs/workloads.md has the table.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "vmm/guest/guest_abi.h"

// The guest program's bytes (vmm/guest/workloads.S); copied to kCodeGpa, never executed in place.
extern "C" const uint8_t ckpt_guest_code_start[];
extern "C" const uint8_t ckpt_guest_code_end[];
extern "C" const uint8_t ckpt_guest_entry[];

namespace ckpt::vmm::guest {

// GDT descriptors (flat, base 0, limit 0xFFFFF with G=1). Code: access 0x9B (present, ring 0, execute/read,
// accessed), flags L=1 D=0 G=1. Data: access 0x93 (present, ring 0, read/write, accessed), flags D/B=1 G=1.
// The accessed bits are preset so the CPU never writes the GDT. The KVM backend's sregs must describe the same.
inline constexpr uint64_t kGdtNull = 0;
inline constexpr uint64_t kGdtCode64 = 0x00AF9B000000FFFFull;
inline constexpr uint64_t kGdtData = 0x00CF93000000FFFFull;
inline constexpr uint16_t kGdtLimit = 3 * 8 - 1;

// Page-table entry bits. Accessed (and Dirty on the 2 MiB leaves) are preset so the page walker never writes the
// page tables: the system area stays clean for dirty tracking after the VMM builds it.
inline constexpr uint64_t kPtePresent = 1ull << 0;
inline constexpr uint64_t kPteWritable = 1ull << 1;
inline constexpr uint64_t kPteAccessed = 1ull << 5;
inline constexpr uint64_t kPteDirty = 1ull << 6;
inline constexpr uint64_t kPteLargePage = 1ull << 7;
inline constexpr uint64_t kPteTable = kPtePresent | kPteWritable | kPteAccessed;                     // 0x23
inline constexpr uint64_t kPteLeaf2M = kPteTable | kPteDirty | kPteLargePage;                         // 0xE3
inline constexpr uint64_t kLargePageSize = 2ull << 20;
inline constexpr uint64_t kPml4Gpa = kPageTableGpa;                // one page: entry 0 -> PDPT
inline constexpr uint64_t kPdptGpa = kPageTableGpa + kPageSize;    // entry i -> PD i (GiB i)
inline constexpr uint64_t kPdGpa = kPageTableGpa + 2 * kPageSize;  // PD i at kPdGpa + i * kPageSize

// Zeroes [0, kWorkloadGpa) of `low_memory` (the host mapping of guest memory from GPA 0; at least kWorkloadGpa
// bytes) and writes the GDT at kGdtGpa, page tables at kPageTableGpa identity-mapping memory_bytes rounded up to
// 2 MiB, the guest code at kCodeGpa, vcpus[i] at kControlGpa + 64 * i, and zeroed status slots. Checks memory size
// (more than kWorkloadGpa, at most kMaxMemoryBytes), 1..kMaxVcpus vCPUs, vcpus[i].vcpu_index == i, each control
// (validate_control), and that regions are page-aligned, inside [kWorkloadGpa, memory_bytes) and disjoint.
// On error nothing has been written.
Status build_guest_image(std::span<uint8_t> low_memory, uint64_t memory_bytes,
                         std::span<const WorkloadControl> vcpus);

// The pages of each vCPU's workload region: [kWorkloadGpa, memory_bytes) split evenly, the remainder unused. 0 when
// vcpus is 0 or memory_bytes is not above kWorkloadGpa. A hot-set workload's hot_pages must not exceed it.
uint64_t region_pages_each(uint64_t memory_bytes, unsigned vcpus);

// Divides [kWorkloadGpa, memory_bytes) into `vcpus` equal page-aligned regions (the remainder pages stay unused),
// one control block per vCPU with the given parameters. Empty if vcpus is 0 or there is less than a page each.
std::vector<WorkloadControl> split_regions(uint64_t memory_bytes, unsigned vcpus, WorkloadKind kind, uint64_t seed,
                                           uint64_t writes_per_iteration, uint64_t hot_pages,
                                           uint64_t delay_loops, uint64_t max_iterations);

// The guest program's bytes and its entry point: the initial RIP is kCodeGpa + guest_entry_offset().
std::span<const uint8_t> guest_code();
uint64_t guest_entry_offset();
uint64_t guest_entry_rip();

// Per-vCPU addresses from the layout: the entry registers are RDI = control_gpa(i), RSI = status_gpa(i),
// RSP = stack_top_gpa(i).
inline constexpr uint64_t control_gpa(uint32_t vcpu) { return kControlGpa + 64ull * vcpu; }
inline constexpr uint64_t status_gpa(uint32_t vcpu) { return kStatusGpa + 64ull * vcpu; }
inline constexpr uint64_t stack_top_gpa(uint32_t vcpu) { return kStackTopGpa - uint64_t{vcpu} * kStackBytes; }

}  // namespace ckpt::vmm::guest
