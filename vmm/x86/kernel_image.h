// Parses a Linux kernel file into what the loader places in guest memory: a bzImage (the protected-mode part after
// the real-mode setup, entered at its 64-bit entry point) or an uncompressed ELF vmlinux (its PT_LOAD segments by
// physical address). Pure: no guest memory involved, so every check is testable on synthetic files.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace ckpt::vmm::x86 {

enum class KernelFormat { kBzImage, kElfVmlinux };

// A run of file bytes copied to a guest-physical address, followed by zeroes up to mem_bytes (an ELF's .bss).
struct KernelSegment {
  uint64_t gpa = 0;
  uint64_t file_offset = 0;
  uint64_t file_bytes = 0;
  uint64_t mem_bytes = 0;
};

struct KernelImage {
  KernelFormat format = KernelFormat::kBzImage;
  std::vector<KernelSegment> segments;
  uint64_t entry = 0;  // 64-bit entry point (guest-physical)
  // [start, end): the memory the kernel uses before it reads the e820 map (bzImage: init_size from the runtime
  // start; ELF: its segments). Nothing else may be placed there.
  uint64_t start = 0;
  uint64_t end = 0;
  // bzImage: the file's setup header, bytes [0x1f1, 0x202 + file[0x201]), to copy into boot_params. Empty for ELF.
  std::vector<uint8_t> setup_header;
  uint16_t protocol_version = 0;
  uint32_t kernel_alignment = 0;
  uint64_t initrd_addr_max = 0;  // highest byte the initrd may occupy
  uint32_t cmdline_size = 0;     // longest command line, without its NUL
};

// `path` only names the file in errors.
Result<KernelImage> parse_kernel(const std::string& path, std::span<const uint8_t> file);

}  // namespace ckpt::vmm::x86
