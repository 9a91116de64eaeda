#include "vmm/x86/boot_tables.h"

#include "vmm/x86/boot_params.h"
#include "vmm/x86/layout.h"

namespace ckpt::vmm::x86 {
namespace {

// Access bytes: present, DPL 0, code/data (S=1), then the type.
constexpr uint8_t kAccessCodeExecRead = 0x9b;  // execute/read, accessed
constexpr uint8_t kAccessDataReadWrite = 0x93;  // read/write, accessed
// Flag nibbles: G (4 KiB granularity) with L (64-bit code) or D/B (32-bit stack/data).
constexpr uint8_t kFlagsCode64 = 0xa;
constexpr uint8_t kFlagsData = 0xc;

constexpr uint64_t kPresent = 1ull << 0, kWritable = 1ull << 1, kLargePage = 1ull << 7;
constexpr uint64_t kLargePageBytes = 2 * kMiB;

}  // namespace

uint64_t segment_descriptor(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags) {
  uint64_t d = limit & 0xffffull;
  d |= uint64_t{base & 0xffffffu} << 16;
  d |= uint64_t{access} << 40;
  d |= uint64_t{(limit >> 16) & 0xfu} << 48;
  d |= uint64_t{flags & 0xfu} << 52;
  d |= uint64_t{base >> 24} << 56;
  return d;
}

BootTables write_boot_tables(std::span<uint8_t> memory) {
  BootTables t{};
  // Entries 0 (null) and 1 (0x08, unused by the protocol) stay zero.
  t.code_descriptor = segment_descriptor(0, 0xfffff, kAccessCodeExecRead, kFlagsCode64);
  t.data_descriptor = segment_descriptor(0, 0xfffff, kAccessDataReadWrite, kFlagsData);
  bp::store(memory, kGdtGpa + kBootCodeSelector, t.code_descriptor);
  bp::store(memory, kGdtGpa + kBootDataSelector, t.data_descriptor);
  t.gdt_base = kGdtGpa;
  t.gdt_limit = kBootDataSelector + 8 - 1;
  t.idt_base = kIdtGpa;
  t.idt_limit = 0;

  bp::store(memory, kPml4Gpa, kPdptGpa | kPresent | kWritable);
  for (uint64_t gib = 0; gib < kPageDirectories; ++gib) {
    uint64_t directory = kPageDirectoryGpa + gib * kPageBytes;
    bp::store(memory, kPdptGpa + 8 * gib, directory | kPresent | kWritable);
    for (uint64_t i = 0; i < kPageBytes / 8; ++i) {
      uint64_t gpa = gib * kGiB + i * kLargePageBytes;
      bp::store(memory, directory + 8 * i, gpa | kPresent | kWritable | kLargePage);
    }
  }
  t.cr3 = kPml4Gpa;
  return t;
}

}  // namespace ckpt::vmm::x86
