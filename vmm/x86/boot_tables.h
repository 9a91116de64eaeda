// The CPU tables the 64-bit boot protocol needs before the kernel has its own: a GDT with __BOOT_CS and __BOOT_DS,
// an empty IDT and identity-mapping page tables (layout.h says where).
#pragma once

#include <cstdint>
#include <span>

namespace ckpt::vmm::x86 {

constexpr uint16_t kBootCodeSelector = 0x10;  // __BOOT_CS
constexpr uint16_t kBootDataSelector = 0x18;  // __BOOT_DS

struct BootTables {
  uint64_t gdt_base;
  uint16_t gdt_limit;
  uint64_t idt_base;
  uint16_t idt_limit;
  uint64_t cr3;  // the PML4
  uint64_t code_descriptor;  // the GDT entries at kBootCodeSelector and kBootDataSelector
  uint64_t data_descriptor;
};

// An 8-byte code/data segment descriptor. `access` is the type/S/DPL/P byte (bits 40..47), `flags` the AVL/L/D/G
// nibble (bits 52..55); limit is 20 bits.
uint64_t segment_descriptor(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags);

// Writes the GDT, the IDT and page tables identity-mapping [0, kIdentityMapBytes) with 2 MiB pages. `memory` must
// reach at least kStackBottomGpa (the loader checks guest size first).
BootTables write_boot_tables(std::span<uint8_t> memory);

}  // namespace ckpt::vmm::x86
