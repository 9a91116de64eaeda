#include "vmm/x86/kernel_image.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "vmm/x86/boot_params.h"
#include "vmm/x86/layout.h"
#include "vmm/x86/text.h"

namespace ckpt::vmm::x86 {
namespace {

constexpr uint16_t kMinProtocol = 0x020c;  // 2.12: the first with xloadflags, which says whether 64-bit entry exists
constexpr uint64_t kSectorBytes = 512;
constexpr uint64_t kEntry64Offset = 0x200;  // boot.rst, "64-bit Boot Protocol": load address + 0x200
constexpr uint64_t kDefaultLoadAddress = kHighMemoryGpa;
// What a vmlinux does not say about itself, set as x86-64 kernels do: COMMAND_LINE_SIZE is 2048 (so 2047
// characters), and 64-bit bzImages report initrd_addr_max 0x7fffffff.
constexpr uint32_t kElfCmdlineSize = 2047;
constexpr uint64_t kElfInitrdAddrMax = 0x7fffffff;
constexpr uint32_t kElfDefaultAlignment = 2 * kMiB;  // CONFIG_PHYSICAL_ALIGN's default
constexpr uint16_t kElfProtocol = 0x020f;

std::string version_text(uint16_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%02u", v >> 8, v & 0xff);
  return buf;
}

bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

Status neither(const std::string& path, const std::string& why) {
  return invalid_argument(path + " is neither a bzImage nor an x86-64 ELF vmlinux (" + why + ")");
}

Result<KernelImage> parse_bzimage(const std::string& path, std::span<const uint8_t> file) {
  KernelImage k;
  k.format = KernelFormat::kBzImage;
  const uint64_t header_end = 0x202 + uint64_t{file[bp::kJump + 1]};
  if (header_end < bp::kInitSize + 4 || file.size() < header_end) {
    return corruption(path + ": bzImage setup header ends at " + hex(header_end) + ", file has " +
                      std::to_string(file.size()) + " bytes; it must reach init_size at " + hex(bp::kInitSize));
  }
  k.protocol_version = bp::load<uint16_t>(file, bp::kVersion);
  if (k.protocol_version < kMinProtocol) {
    return unsupported(path + ": boot protocol " + version_text(k.protocol_version) +
                       " is older than 2.12, the first that says whether a 64-bit entry point exists");
  }
  const uint16_t xloadflags = bp::load<uint16_t>(file, bp::kXloadflags);
  if ((xloadflags & bp::kXlfKernel64) == 0) {
    return unsupported(path + " is not a 64-bit bootable kernel (xloadflags " + hex(xloadflags) +
                       " lacks XLF_KERNEL_64)");
  }
  if ((file[bp::kLoadflags] & bp::kLoadedHigh) == 0) {
    return unsupported(path + ": a zImage (LOADED_HIGH clear); only bzImages load above 1 MiB");
  }
  uint64_t setup_sects = file[bp::kSetupSects];
  if (setup_sects == 0) setup_sects = 4;  // boot.rst: 0 means 4, for backwards compatibility
  const uint64_t setup_bytes = (setup_sects + 1) * kSectorBytes;
  const uint64_t kernel_bytes = uint64_t{bp::load<uint32_t>(file, bp::kSyssize)} * 16;
  if (file.size() < setup_bytes + kernel_bytes) {
    return corruption(path + " is truncated: its header says " + std::to_string(setup_bytes + kernel_bytes) +
                      " bytes (setup " + std::to_string(setup_bytes) + " + kernel " + std::to_string(kernel_bytes) +
                      "), the file has " + std::to_string(file.size()));
  }
  if (kernel_bytes == 0) return corruption(path + ": bzImage header says the kernel is empty (syssize 0)");

  k.kernel_alignment = bp::load<uint32_t>(file, bp::kKernelAlignment);
  const bool relocatable = file[bp::kRelocatableKernel] != 0;
  const uint64_t pref = bp::load<uint64_t>(file, bp::kPrefAddress);
  uint64_t load = pref != 0 ? pref : kDefaultLoadAddress;
  if (relocatable) {
    if (!is_power_of_two(k.kernel_alignment)) {
      return corruption(path + ": kernel_alignment " + hex(k.kernel_alignment) + " is not a power of two");
    }
    // Runtime start = align_up(load address, kernel_alignment); loading there makes the two the same.
    load = (load + k.kernel_alignment - 1) & ~uint64_t{k.kernel_alignment - 1};
  }
  if (load < kHighMemoryGpa || load > kMaxGuestMemory) {
    return unsupported(path + ": kernel wants to run at " + hex(load) + ", outside [1 MiB, 3 GiB)");
  }
  const uint64_t init_size = bp::load<uint32_t>(file, bp::kInitSize);
  k.segments.push_back(KernelSegment{load, setup_bytes, kernel_bytes, kernel_bytes});
  k.entry = load + kEntry64Offset;
  k.start = load;
  k.end = load + std::max(init_size, kernel_bytes);
  k.setup_header.assign(file.begin() + bp::kSetupHeader, file.begin() + header_end);
  k.initrd_addr_max = bp::load<uint32_t>(file, bp::kInitrdAddrMax);
  k.cmdline_size = bp::load<uint32_t>(file, bp::kCmdlineSize);
  return k;
}

Result<KernelImage> parse_elf(const std::string& path, std::span<const uint8_t> file) {
  if (file.size() < sizeof(Elf64_Ehdr)) return neither(path, "ELF header cut short");
  Elf64_Ehdr eh;
  std::memcpy(&eh, file.data(), sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64) {
    return neither(path, "ELF class " + std::to_string(eh.e_ident[EI_CLASS]) + ", data " +
                             std::to_string(eh.e_ident[EI_DATA]) + ", machine " + std::to_string(eh.e_machine) +
                             "; want 64-bit little-endian x86-64");
  }
  if (eh.e_type != ET_EXEC) return neither(path, "ELF type " + std::to_string(eh.e_type) + ", not an executable");
  if (eh.e_phentsize < sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phoff > file.size() ||
      (file.size() - eh.e_phoff) / eh.e_phentsize < eh.e_phnum) {
    return corruption(path + ": ELF program headers (offset " + std::to_string(eh.e_phoff) + ", " +
                      std::to_string(eh.e_phnum) + " of " + std::to_string(eh.e_phentsize) +
                      " bytes) do not fit the file of " + std::to_string(file.size()) + " bytes");
  }
  KernelImage k;
  k.format = KernelFormat::kElfVmlinux;
  k.start = std::numeric_limits<uint64_t>::max();
  k.kernel_alignment = kElfDefaultAlignment;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, file.data() + eh.e_phoff + uint64_t{i} * eh.e_phentsize, sizeof ph);
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    const std::string where = path + ": PT_LOAD segment " + std::to_string(i);
    if (ph.p_offset > file.size() || file.size() - ph.p_offset < ph.p_filesz) {
      return corruption(where + " (offset " + std::to_string(ph.p_offset) + ", " + std::to_string(ph.p_filesz) +
                        " bytes) runs past the end of the file (" + std::to_string(file.size()) + " bytes)");
    }
    if (ph.p_filesz > ph.p_memsz) return corruption(where + " has more file bytes than memory bytes");
    if (ph.p_paddr > kMaxGuestMemory || ph.p_memsz > kMaxGuestMemory - ph.p_paddr) {
      return unsupported(where + " at physical " + hex(ph.p_paddr) + " (" + std::to_string(ph.p_memsz) +
                         " bytes) lies beyond 3 GiB");
    }
    if (k.segments.empty() && is_power_of_two(ph.p_align) && ph.p_align >= kPageBytes) {
      k.kernel_alignment = static_cast<uint32_t>(std::min<uint64_t>(ph.p_align, kGiB));
    }
    k.segments.push_back(KernelSegment{ph.p_paddr, ph.p_offset, ph.p_filesz, ph.p_memsz});
    k.start = std::min(k.start, ph.p_paddr);
    k.end = std::max(k.end, ph.p_paddr + ph.p_memsz);
  }
  if (k.segments.empty()) return corruption(path + ": ELF file has no PT_LOAD segment");
  if (k.start < kHighMemoryGpa) {
    return unsupported(path + ": PT_LOAD at physical " + hex(k.start) +
                       " is below 1 MiB, where the boot tables, zero page and MP table live");
  }
  k.entry = eh.e_entry;
  if (k.entry < k.start || k.entry >= k.end) {
    return corruption(path + ": ELF entry point " + hex(k.entry) + " lies outside its segments [" + hex(k.start) +
                      ", " + hex(k.end) + ")");
  }
  k.protocol_version = kElfProtocol;
  k.initrd_addr_max = kElfInitrdAddrMax;
  k.cmdline_size = kElfCmdlineSize;
  return k;
}

}  // namespace

Result<KernelImage> parse_kernel(const std::string& path, std::span<const uint8_t> file) {
  if (file.empty()) return invalid_argument(path + " is empty");
  if (file.size() >= bp::kHeaderMagic + 4 && bp::load<uint32_t>(file, bp::kHeaderMagic) == bp::kHdrSMagic) {
    return parse_bzimage(path, file);
  }
  if (file.size() >= SELFMAG && std::memcmp(file.data(), ELFMAG, SELFMAG) == 0) return parse_elf(path, file);
  return neither(path, "no \"HdrS\" at 0x202, no ELF magic");
}

}  // namespace ckpt::vmm::x86
