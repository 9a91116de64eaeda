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
//   0x000a0000  VGA hole + BIOS area, reserved in e820 with the EBDA up to 1 MiB (no ROM is there: it reads zero)
//   0x00100000  RAM. The kernel sits at its own address: a bzImage at pref_address aligned to kernel_alignment
//               (16 MiB for Debian's), an ELF vmlinux at its p_paddr; it needs init_size bytes from there
//   top of RAM  the initrd, page-aligned, as high as initrd_addr_max and the end of RAM allow
//
// Guest memory is at most 3 GiB: [0xc0000000, 4 GiB) stays free for the in-kernel IOAPIC (0xfec00000) and LAPIC
// (0xfee00000) MMIO and KVM's TSS pages (0xfffbd000).
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

constexpr uint64_t kMaxGuestMemory = 3 * kGiB;
constexpr uint64_t kMemoryGranule = 2 * kMiB;  // guest memory comes in 2 MiB steps (the identity map's page size)

static_assert(kStackBottomGpa == 0x8000, "page directories end where the stack begins");
static_assert(kStackBottomGpa < kStackTopGpa && kStackTopGpa <= kZeroPageGpa);
static_assert(kCmdlineGpa < kCmdlineEndGpa && kCmdlineEndGpa <= kEbdaGpa);

}  // namespace ckpt::vmm::x86
