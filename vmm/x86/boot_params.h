// Byte offsets in struct boot_params (the "zero page", Documentation/arch/x86/zero-page.rst) and in the setup
// header it embeds at 0x1f1 (Documentation/arch/x86/boot.rst). A bzImage file carries the same header at the same
// file offsets, so one set of constants serves both. Offsets rather than a packed struct: the header is copied as
// raw bytes from the kernel file and only a few fields are read or written.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>

namespace ckpt::vmm::x86::bp {

static_assert(std::endian::native == std::endian::little, "boot_params is little-endian, as is the host");

constexpr uint64_t kAcpiRsdpAddr = 0x070;     // u64: the RSDP's address (zero-page.rst; kernels since 5.0 read it,
                                              // older ones see padding and scan the BIOS area for it instead)
constexpr uint64_t kExtRamdiskImage = 0x0c0;  // u32: bits 63..32 of ramdisk_image
constexpr uint64_t kExtRamdiskSize = 0x0c4;
constexpr uint64_t kExtCmdLinePtr = 0x0c8;
constexpr uint64_t kE820Entries = 0x1e8;  // u8
constexpr uint64_t kSentinel = 0x1ef;     // u8: nonzero makes the kernel wipe fields it thinks a loader left stale

// The setup header.
constexpr uint64_t kSetupHeader = 0x1f1;
constexpr uint64_t kSetupSects = 0x1f1;  // u8: 0 means 4
constexpr uint64_t kRootFlags = 0x1f2;   // u16
constexpr uint64_t kSyssize = 0x1f4;     // u32: protected-mode code in 16-byte paragraphs
constexpr uint64_t kVidMode = 0x1fa;     // u16
constexpr uint64_t kBootFlag = 0x1fe;    // u16: 0xaa55
constexpr uint64_t kJump = 0x200;        // u16: jmp; its byte at 0x201 is the header length past 0x202
constexpr uint64_t kHeaderMagic = 0x202;  // u32: "HdrS"
constexpr uint64_t kVersion = 0x206;      // u16: (major << 8) | minor
constexpr uint64_t kTypeOfLoader = 0x210;  // u8
constexpr uint64_t kLoadflags = 0x211;     // u8
constexpr uint64_t kCode32Start = 0x214;   // u32
constexpr uint64_t kRamdiskImage = 0x218;  // u32
constexpr uint64_t kRamdiskSize = 0x21c;   // u32
constexpr uint64_t kHeapEndPtr = 0x224;    // u16
constexpr uint64_t kCmdLinePtr = 0x228;    // u32
constexpr uint64_t kInitrdAddrMax = 0x22c;  // u32: highest byte the initrd may occupy
constexpr uint64_t kKernelAlignment = 0x230;  // u32
constexpr uint64_t kRelocatableKernel = 0x234;  // u8
constexpr uint64_t kMinAlignment = 0x235;       // u8: log2
constexpr uint64_t kXloadflags = 0x236;         // u16
constexpr uint64_t kCmdlineSize = 0x238;        // u32: longest command line, without its NUL
constexpr uint64_t kPrefAddress = 0x258;        // u64
constexpr uint64_t kInitSize = 0x260;           // u32
constexpr uint64_t kKernelInfoOffset = 0x268;   // u32 (2.15+): the last field we know of

constexpr uint64_t kE820Table = 0x2d0;  // 128 entries of {u64 addr, u64 size, u32 type}
constexpr uint64_t kE820EntryBytes = 20;
constexpr uint64_t kE820MaxEntries = 128;
constexpr uint32_t kE820Ram = 1;
constexpr uint32_t kE820Reserved = 2;

constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
constexpr uint16_t kBootFlagMagic = 0xaa55;
constexpr uint8_t kLoadedHigh = 0x01;  // loadflags: protected-mode code loaded at 1 MiB or above
constexpr uint8_t kCanUseHeap = 0x80;  // loadflags: heap_end_ptr is valid (only the real-mode setup reads it)
constexpr uint16_t kXlfKernel64 = 0x01;  // xloadflags: a 64-bit entry point at load address + 0x200
constexpr uint8_t kUndefinedLoader = 0xff;  // type_of_loader: no assigned boot loader id

// Little-endian field access; the caller has checked that [offset, offset + sizeof(T)) is inside `bytes`.
template <typename T>
T load(std::span<const uint8_t> bytes, uint64_t offset) {
  T v;
  std::memcpy(&v, bytes.data() + offset, sizeof v);
  return v;
}

template <typename T>
void store(std::span<uint8_t> bytes, uint64_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

}  // namespace ckpt::vmm::x86::bp
