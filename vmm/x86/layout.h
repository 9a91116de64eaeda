// Where the x86 Linux boot puts things in guest-physical memory. One place for every address so that the loader,
// the MP table writer and the tests agree, and so that nothing overlaps (static_asserts below).
//
//   0x00000000  real-mode IVT and BIOS data area, zero except 0x40e (EBDA segment) and 0x413 (base memory, KiB):
//               Linux finds the EBDA, and the MP table in it, through them
//   0x00001000  GDT: null, unused, __BOOT_CS (0x10, flat 64-bit code), __BOOT_DS (0x18, flat data)
//   0x00001800  IDT, empty (limit 0): a fault before the kernel loads its own IDT triple-faults into a shutdown
//               exit the VMM sees, instead of jumping through garbage
//   0x00002000  PML4
//   0x00003000  PDPT (4 entries)
//   0x00004000  4 page directories of 2 MiB pages, 0x4000..0x7fff: identity map of [0, 4 GiB)
//   0x00008000  boot stack, 32 KiB; rsp starts at 0x10000, just below the zero page
//   0x00010000  zero page (struct boot_params, 4 KiB)
//   0x00011000  kernel command line, NUL-terminated, up to 0x20000
//   0x0009fc00  EBDA (1 KiB): MP floating pointer, then the MP configuration table
//   0x000a0000  VGA hole + BIOS area, reserved in e820 with the EBDA up to 1 MiB (no ROM is there: it reads zero,
//               but for the ACPI tables)
//   0x000e0000  ACPI tables (vmm/x86/acpi.h), where the spec says a BIOS puts them and Linux scans for the RSDP:
//               RSDP (16-byte aligned), FACS (64-byte aligned), XSDT, FADT, MADT, then the DSDT up to 1 MiB
//   0x00100000  RAM. The kernel sits at its own address: a bzImage at pref_address aligned to kernel_alignment
//               (16 MiB for Debian's), an ELF vmlinux at its p_paddr; it needs init_size bytes from there
//   top of RAM  the initrd, page-aligned, as high as initrd_addr_max and the end of RAM allow
//
// Guest memory is at most 3 GiB: [0xc0000000, 4 GiB) stays free for device MMIO, the in-kernel IOAPIC (0xfec00000)
// and LAPIC (0xfee00000) and KVM's TSS pages (0xfffbd000):
//
//   0xd0000000  virtio-mmio windows, 4 KiB each, up to 8; window i interrupts on GSI 16 + i (IOAPIC pins 16..23,
//               which no ISA device uses and KVM's default routing sends to the IOAPIC alone). The DSDT describes
//               each window the VMM gives the guest (vmm/x86/acpi.h).
#pragma once

#include <cstdint>

namespace ckpt::vmm::x86 {

constexpr uint64_t kPageBytes = 4096;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

constexpr uint64_t kBdaEbdaSegmentGpa = 0x40e;   // u16: EBDA address >> 4
constexpr uint64_t kBdaBaseMemoryKibGpa = 0x413;  // u16: conventional memory below the EBDA, in KiB

constexpr uint64_t kGdtGpa = 0x1000;
constexpr uint64_t kIdtGpa = 0x1800;
constexpr uint64_t kPml4Gpa = 0x2000;
constexpr uint64_t kPdptGpa = 0x3000;
constexpr uint64_t kPageDirectoryGpa = 0x4000;
constexpr uint64_t kIdentityMapBytes = 4 * kGiB;
constexpr uint64_t kPageDirectories = kIdentityMapBytes / kGiB;  // one 4 KiB directory per GiB
constexpr uint64_t kStackBottomGpa = kPageDirectoryGpa + kPageDirectories * kPageBytes;
constexpr uint64_t kStackTopGpa = 0x10000;
constexpr uint64_t kZeroPageGpa = 0x10000;
constexpr uint64_t kZeroPageBytes = 4096;
constexpr uint64_t kCmdlineGpa = kZeroPageGpa + kZeroPageBytes;
constexpr uint64_t kCmdlineEndGpa = 0x20000;  // exclusive; the string and its NUL must fit below
constexpr uint64_t kEbdaGpa = 0x9fc00;
constexpr uint64_t kEbdaEndGpa = 0xa0000;
constexpr uint64_t kHighMemoryGpa = 0x100000;  // 1 MiB: RAM again above the legacy hole

// ACPI tables, each in a slot up to the next one's address (acpi.cpp checks that every table fits its slot).
constexpr uint64_t kAcpiRsdpGpa = 0xe0000;
constexpr uint64_t kAcpiFacsGpa = 0xe0040;
constexpr uint64_t kAcpiXsdtGpa = 0xe0080;
constexpr uint64_t kAcpiFadtGpa = 0xe0100;
constexpr uint64_t kAcpiMadtGpa = 0xe0300;
constexpr uint64_t kAcpiDsdtGpa = 0xe0800;
constexpr uint64_t kAcpiEndGpa = 0x100000;  // exclusive

constexpr uint64_t kMaxGuestMemory = 3 * kGiB;
constexpr uint64_t kMemoryGranule = 2 * kMiB;  // guest memory comes in 2 MiB steps (the identity map's page size)

constexpr uint64_t kVirtioMmioGpa = 0xd0000000;
constexpr uint64_t kVirtioMmioWindowBytes = 0x1000;
constexpr unsigned kMaxVirtioMmioDevices = 8;
constexpr uint64_t kVirtioMmioEndGpa = kVirtioMmioGpa + kMaxVirtioMmioDevices * kVirtioMmioWindowBytes;
constexpr uint32_t kVirtioMmioFirstGsi = 16;
constexpr uint32_t kIoapicPins = 24;  // KVM's in-kernel IOAPIC: GSIs 0..23
constexpr uint64_t kIoapicGpa = 0xfec00000;  // the lowest of the fixed MMIO above the virtio-mmio windows

// Where virtio-mmio device `i` (0 .. kMaxVirtioMmioDevices - 1) lives and interrupts: the one numbering the VMM's
// devices and the DSDT share.
constexpr uint64_t virtio_mmio_window(unsigned i) { return kVirtioMmioGpa + i * kVirtioMmioWindowBytes; }
constexpr uint32_t virtio_mmio_gsi(unsigned i) { return kVirtioMmioFirstGsi + i; }

static_assert(kStackBottomGpa == 0x8000, "page directories end where the stack begins");
static_assert(kStackBottomGpa < kStackTopGpa && kStackTopGpa <= kZeroPageGpa);
static_assert(kCmdlineGpa < kCmdlineEndGpa && kCmdlineEndGpa <= kEbdaGpa);
static_assert(kEbdaEndGpa <= kAcpiRsdpGpa && kAcpiEndGpa == kHighMemoryGpa, "the ACPI tables are in the BIOS area");
static_assert(kAcpiRsdpGpa % 16 == 0, "Linux scans for the RSDP on 16-byte boundaries");
static_assert(kAcpiFacsGpa % 64 == 0, "the FACS must be 64-byte aligned");
static_assert(kAcpiXsdtGpa % 8 == 0 && kAcpiFadtGpa % 8 == 0 && kAcpiMadtGpa % 8 == 0 && kAcpiDsdtGpa % 8 == 0);
static_assert(kAcpiRsdpGpa < kAcpiFacsGpa && kAcpiFacsGpa < kAcpiXsdtGpa && kAcpiXsdtGpa < kAcpiFadtGpa &&
              kAcpiFadtGpa < kAcpiMadtGpa && kAcpiMadtGpa < kAcpiDsdtGpa && kAcpiDsdtGpa < kAcpiEndGpa);
static_assert(kMaxGuestMemory <= kVirtioMmioGpa, "the virtio-mmio windows are above RAM");
static_assert(kVirtioMmioEndGpa <= kIoapicGpa, "and below the IOAPIC");
static_assert(kVirtioMmioFirstGsi >= 16 && kVirtioMmioFirstGsi + kMaxVirtioMmioDevices <= kIoapicPins,
              "virtio-mmio GSIs are IOAPIC pins above the 16 ISA IRQs");

}  // namespace ckpt::vmm::x86
