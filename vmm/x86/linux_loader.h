// Loads a Linux kernel for the 64-bit boot protocol (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol"):
// kernel, initrd, command line, boot_params with its e820 map, GDT, IDT, identity page tables, the MP table and
// the ACPI tables, laid out as vmm/x86/layout.h describes. Pure memory writes; the KVM side turns LinuxEntry into
// vCPU registers.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"
#include "vmm/x86/acpi.h"

namespace ckpt::vmm::x86 {

struct LinuxImage {
  std::string kernel_path;  // a bzImage (e.g. /boot/vmlinuz-*) or an uncompressed ELF vmlinux
  std::string initrd_path;  // empty = none
  std::string cmdline;
};

// Where the boot CPU starts.
struct LinuxEntry {
  uint64_t rip;  // the kernel's 64-bit entry point
  uint64_t rsi;  // guest-physical address of boot_params ("zero page")
  uint64_t rsp;  // a small boot stack below the zero page
  uint64_t cr3;  // PML4 of the identity map the protocol requires
  uint64_t gdt_base;
  uint16_t gdt_limit;  // GDT with __BOOT_CS = 0x10 (flat 64-bit code) and __BOOT_DS = 0x18 (flat data)
  uint64_t idt_base;
  uint16_t idt_limit;  // an empty IDT
  // The raw 8-byte GDT descriptors for 0x10 and 0x18, so the KVM side can build kvm_segment values from them.
  uint64_t code_descriptor, data_descriptor;
};

// Reads and validates the kernel (and initrd), then writes kernel, initrd, command line, boot_params with its e820
// map, GDT, IDT and identity page tables into `memory` (guest physical address 0 .. memory.size(), zero-filled by
// the caller; size a multiple of 2 MiB, at most 3 GiB), the MP table for `vcpus` (1..32) CPUs (what a kernel
// booted with acpi=off reads), and the ACPI tables for those CPUs and the virtio-mmio devices the guest has (none
// by default; check_virtio_mmio_devices says which lists are refused). boot_params.acpi_rsdp_addr points at the
// RSDP.
Result<LinuxEntry> load_linux(const LinuxImage& image, std::span<uint8_t> memory, unsigned vcpus,
                              std::span<const VirtioMmioDevice> virtio_mmio = {});

// load_linux's checks of the guest's size and the files (kernel, initrd, command line), without guest memory: a
// daemon runs them before it sets anything up, so a wrong file is named before /dev/kvm is even opened.
Status check_linux_image(const LinuxImage& image, uint64_t memory_bytes, unsigned vcpus);

}  // namespace ckpt::vmm::x86
