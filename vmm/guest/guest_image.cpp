#include "vmm/guest/guest_image.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "vmm/guest/workload.h"

namespace ckpt::vmm::guest {

// The layout in guest_abi.h must hold together: PDs for kMaxMemoryBytes below the code, stacks between the code and
// the workload regions, one control and one status page each holding kMaxVcpus slots.
static_assert(kPdGpa + (kMaxMemoryBytes >> 30) * kPageSize <= kCodeGpa);
static_assert(kCodeGpa + kCodeMaxBytes <= kStackTopGpa - kMaxVcpus * kStackBytes);
static_assert(kStackTopGpa <= kWorkloadGpa);
static_assert(kMaxVcpus * sizeof(WorkloadControl) <= kStatusGpa - kControlGpa);
static_assert(kMaxVcpus * sizeof(WorkloadStatus) <= kPageTableGpa - kStatusGpa);
static_assert(kGdtGpa + 3 * 8 <= kControlGpa);

namespace {

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

void put_u64(std::span<uint8_t> mem, uint64_t gpa, uint64_t value) {
  std::memcpy(mem.data() + gpa, &value, sizeof(value));  // x86 guest: little-endian like the host
}

Status check_memory(std::span<uint8_t> low_memory, uint64_t memory_bytes) {
  if (low_memory.size() < kWorkloadGpa) {
    return invalid_argument("guest image: host buffer of " + std::to_string(low_memory.size()) +
                            " bytes cannot hold the system area (" + hex(kWorkloadGpa) + " bytes)");
  }
  if (memory_bytes <= kWorkloadGpa || memory_bytes > kMaxMemoryBytes || memory_bytes % kPageSize != 0) {
    return invalid_argument("guest image: memory size " + hex(memory_bytes) + " must be a page multiple in (" +
                            hex(kWorkloadGpa) + ", " + hex(kMaxMemoryBytes) + "]");
  }
  return Status::ok();
}

Status check_region(const WorkloadControl& c, uint64_t memory_bytes) {
  const std::string who = "guest image: vcpu " + std::to_string(c.vcpu_index);
  if (c.region_gpa % kPageSize != 0) return invalid_argument(who + ": region " + hex(c.region_gpa) + " unaligned");
  // Divide rather than multiply so that a huge region_pages cannot overflow.
  if (c.region_gpa < kWorkloadGpa || c.region_gpa > memory_bytes ||
      c.region_pages > (memory_bytes - c.region_gpa) / kPageSize) {
    return invalid_argument(who + ": region " + hex(c.region_gpa) + " + " + std::to_string(c.region_pages) +
                            " pages outside [" + hex(kWorkloadGpa) + ", " + hex(memory_bytes) + ")");
  }
  return Status::ok();
}

// Regions are disjoint when, sorted by start, each ends at or before the next begins. Idle vCPUs write nothing, but
// their regions are still checked: a region is the vCPU's claim on guest memory.
Status check_disjoint(std::span<const WorkloadControl> vcpus) {
  std::vector<const WorkloadControl*> sorted;
  for (const auto& c : vcpus) sorted.push_back(&c);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->region_gpa < b->region_gpa; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    const WorkloadControl& prev = *sorted[i - 1];
    if (prev.region_gpa + prev.region_pages * kPageSize > sorted[i]->region_gpa) {
      return invalid_argument("guest image: regions of vcpus " + std::to_string(prev.vcpu_index) + " and " +
                              std::to_string(sorted[i]->vcpu_index) + " overlap");
    }
  }
  return Status::ok();
}

Status check_vcpus(std::span<const WorkloadControl> vcpus, uint64_t memory_bytes) {
  if (vcpus.empty() || vcpus.size() > kMaxVcpus) {
    return invalid_argument("guest image: " + std::to_string(vcpus.size()) + " vcpus, must be 1.." +
                            std::to_string(kMaxVcpus));
  }
  for (size_t i = 0; i < vcpus.size(); ++i) {
    if (vcpus[i].vcpu_index != i) {
      return invalid_argument("guest image: control " + std::to_string(i) + " has vcpu_index " +
                              std::to_string(vcpus[i].vcpu_index));
    }
    CKPT_RETURN_IF_ERROR(validate_control(vcpus[i]).with_context("guest image"));
    CKPT_RETURN_IF_ERROR(check_region(vcpus[i], memory_bytes));
  }
  return check_disjoint(vcpus);
}

void write_gdt(std::span<uint8_t> mem) {
  put_u64(mem, kGdtGpa + 0, kGdtNull);
  put_u64(mem, kGdtGpa + kCodeSelector, kGdtCode64);
  put_u64(mem, kGdtGpa + kDataSelector, kGdtData);
}

// PML4[0] -> PDPT; PDPT[g] -> PD g for each GiB touched; PD g maps GiB g with 2 MiB pages, up to the rounded size.
void write_page_tables(std::span<uint8_t> mem, uint64_t memory_bytes) {
  const uint64_t large_pages = (memory_bytes + kLargePageSize - 1) / kLargePageSize;
  const uint64_t pds = (large_pages + 511) / 512;
  put_u64(mem, kPml4Gpa, kPdptGpa | kPteTable);
  for (uint64_t g = 0; g < pds; ++g) put_u64(mem, kPdptGpa + 8 * g, (kPdGpa + g * kPageSize) | kPteTable);
  for (uint64_t p = 0; p < large_pages; ++p) put_u64(mem, kPdGpa + 8 * p, p * kLargePageSize | kPteLeaf2M);
}

// The three symbols are distinct objects to C++, so compare addresses rather than subtract pointers.
uintptr_t address(const uint8_t* p) { return reinterpret_cast<uintptr_t>(p); }

}  // namespace

Status build_guest_image(std::span<uint8_t> low_memory, uint64_t memory_bytes,
                         std::span<const WorkloadControl> vcpus) {
  CKPT_RETURN_IF_ERROR(check_memory(low_memory, memory_bytes));
  CKPT_RETURN_IF_ERROR(check_vcpus(vcpus, memory_bytes));
  const std::span<const uint8_t> code = guest_code();
  if (code.size() > kCodeMaxBytes) return invalid_argument("guest image: guest code larger than kCodeMaxBytes");

  std::memset(low_memory.data(), 0, kWorkloadGpa);  // also the status slots (0 iterations) and stacks
  write_gdt(low_memory);
  write_page_tables(low_memory, memory_bytes);
  std::memcpy(low_memory.data() + kCodeGpa, code.data(), code.size());
  for (uint32_t i = 0; i < vcpus.size(); ++i) {
    std::memcpy(low_memory.data() + control_gpa(i), &vcpus[i], sizeof(WorkloadControl));
  }
  return Status::ok();
}

uint64_t region_pages_each(uint64_t memory_bytes, unsigned vcpus) {
  if (vcpus == 0 || memory_bytes <= kWorkloadGpa) return 0;
  return (memory_bytes - kWorkloadGpa) / kPageSize / vcpus;
}

std::vector<WorkloadControl> split_regions(uint64_t memory_bytes, unsigned vcpus, WorkloadKind kind, uint64_t seed,
                                           uint64_t writes_per_iteration, uint64_t hot_pages,
                                           uint64_t delay_loops, uint64_t max_iterations) {
  const uint64_t pages_each = region_pages_each(memory_bytes, vcpus);
  if (pages_each == 0) return {};
  std::vector<WorkloadControl> out(vcpus);
  for (unsigned i = 0; i < vcpus; ++i) {
    out[i] = WorkloadControl{.kind = static_cast<uint32_t>(kind),
                             .vcpu_index = i,
                             .seed = seed,
                             .region_gpa = kWorkloadGpa + i * pages_each * kPageSize,
                             .region_pages = pages_each,
                             .writes_per_iteration = writes_per_iteration,
                             .hot_pages = hot_pages,
                             .delay_loops = delay_loops,
                             .max_iterations = max_iterations};
  }
  return out;
}

std::span<const uint8_t> guest_code() {
  return {ckpt_guest_code_start, address(ckpt_guest_code_end) - address(ckpt_guest_code_start)};
}

uint64_t guest_entry_offset() { return address(ckpt_guest_entry) - address(ckpt_guest_code_start); }

uint64_t guest_entry_rip() { return kCodeGpa + guest_entry_offset(); }

}  // namespace ckpt::vmm::guest
