#include "vmm/x86/linux_loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common/unique_fd.h"
#include "vmm/x86/boot_params.h"
#include "vmm/x86/boot_tables.h"
#include "vmm/x86/kernel_image.h"
#include "vmm/x86/layout.h"
#include "vmm/x86/mptable.h"
#include "vmm/x86/text.h"

namespace ckpt::vmm::x86 {
namespace {

// The header a vmlinux lacks ends where 2.15's does (kernel_info_offset is its last field): 0x202 + 0x6a.
constexpr uint8_t kSynthesizedHeaderLength = static_cast<uint8_t>(bp::kKernelInfoOffset + 4 - 0x202);
constexpr uint16_t kVidModeNormal = 0xffff;  // boot.rst, "vga=normal"

struct OpenFile {
  UniqueFd fd;
  uint64_t bytes = 0;
};

Result<OpenFile> open_file(const std::string& what, const std::string& path) {
  OpenFile f;
  f.fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!f.fd.valid()) return Status::from_errno(errno, "open " + what + " " + path);
  struct stat st {};
  if (::fstat(f.fd.get(), &st) != 0) return Status::from_errno(errno, "stat " + what + " " + path);
  if (!S_ISREG(st.st_mode)) return invalid_argument(what + " " + path + " is not a regular file");
  if (st.st_size == 0) return invalid_argument(what + " " + path + " is empty");
  f.bytes = static_cast<uint64_t>(st.st_size);
  return f;
}

// Reads exactly `out.size()` bytes from the start of the file.
Status read_exactly(const OpenFile& f, const std::string& what, const std::string& path, std::span<uint8_t> out) {
  uint64_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(f.fd.get(), out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::from_errno(errno, "read " + what + " " + path);
    if (n == 0) {
      return Status(StatusCode::kIoError, what + " " + path + " shrank while being read: got " +
                                              std::to_string(done) + " of " + std::to_string(out.size()) + " bytes");
    }
    done += static_cast<uint64_t>(n);
  }
  return Status::ok();
}

Status check_guest(uint64_t memory_bytes, unsigned vcpus) {
  if (memory_bytes == 0 || memory_bytes % kMemoryGranule != 0) {
    return invalid_argument("guest memory of " + std::to_string(memory_bytes) +
                            " bytes is not a positive multiple of 2 MiB");
  }
  if (memory_bytes > kMaxGuestMemory) {
    return unsupported("guest memory of " + mib(memory_bytes) + " is more than the 3 GiB a Linux guest may have: " +
                       "[3 GiB, 4 GiB) must stay free for the IOAPIC and LAPIC MMIO (RAM above 4 GiB is not mapped yet)");
  }
  if (vcpus == 0 || vcpus > kMaxMpVcpus) {
    return invalid_argument("vCPU count " + std::to_string(vcpus) + " out of range 1.." + std::to_string(kMaxMpVcpus) +
                            " for a Linux guest");
  }
  return Status::ok();
}

// The initrd goes as high as possible (page-aligned) below both initrd_addr_max and the end of RAM, and above
// the memory the kernel needs while it starts.
Result<uint64_t> place_initrd(const KernelImage& k, const std::string& path, uint64_t bytes, uint64_t memory_bytes) {
  const uint64_t top = std::min(memory_bytes, k.initrd_addr_max + 1);
  const uint64_t floor = (k.end + kPageBytes - 1) & ~(kPageBytes - 1);
  if (bytes > top || ((top - bytes) & ~(kPageBytes - 1)) < floor) {
    return invalid_argument("initrd " + path + " (" + mib(bytes) + ") does not fit between the kernel's end at " +
                            hex(floor) + " and " + hex(top) + " (guest has " + mib(memory_bytes) +
                            ", initrd_addr_max " + hex(k.initrd_addr_max) + ")");
  }
  return (top - bytes) & ~(kPageBytes - 1);
}

// One e820 entry appended to the zero page's table.
void add_e820(std::span<uint8_t> zp, uint8_t& count, uint64_t addr, uint64_t size, uint32_t type) {
  const uint64_t at = bp::kE820Table + uint64_t{count} * bp::kE820EntryBytes;
  bp::store(zp, at, addr);
  bp::store(zp, at + 8, size);
  bp::store(zp, at + 16, type);
  ++count;
}

void write_boot_params(std::span<uint8_t> memory, const KernelImage& k, uint64_t initrd_gpa, uint64_t initrd_bytes) {
  std::span<uint8_t> zp = memory.subspan(kZeroPageGpa, kZeroPageBytes);
  std::fill(zp.begin(), zp.end(), 0);
  if (k.format == KernelFormat::kBzImage) {
    std::copy(k.setup_header.begin(), k.setup_header.end(), zp.begin() + bp::kSetupHeader);
  } else {
    // A vmlinux has no setup header: write what a bzImage's would say and the kernel proper reads.
    bp::store(zp, bp::kBootFlag, bp::kBootFlagMagic);
    zp[bp::kJump] = 0xeb;  // jmp short, whose offset byte gives the header's length
    zp[bp::kJump + 1] = kSynthesizedHeaderLength;
    bp::store(zp, bp::kHeaderMagic, bp::kHdrSMagic);
    bp::store(zp, bp::kVersion, k.protocol_version);
    bp::store(zp, bp::kVidMode, kVidModeNormal);
    bp::store(zp, bp::kInitrdAddrMax, static_cast<uint32_t>(k.initrd_addr_max));
    bp::store(zp, bp::kKernelAlignment, k.kernel_alignment);
    bp::store(zp, bp::kXloadflags, bp::kXlfKernel64);
    bp::store(zp, bp::kCmdlineSize, k.cmdline_size);
    bp::store(zp, bp::kPrefAddress, k.start);
    bp::store(zp, bp::kInitSize, static_cast<uint32_t>(k.end - k.start));
  }
  zp[bp::kTypeOfLoader] = bp::kUndefinedLoader;
  // No real-mode setup runs, so no heap for it: CAN_USE_HEAP off.
  zp[bp::kLoadflags] = static_cast<uint8_t>((zp[bp::kLoadflags] | bp::kLoadedHigh) & ~bp::kCanUseHeap);
  bp::store(zp, bp::kCode32Start, static_cast<uint32_t>(k.start));  // a relocated kernel's load address
  bp::store(zp, bp::kCmdLinePtr, static_cast<uint32_t>(kCmdlineGpa));
  bp::store(zp, bp::kRamdiskImage, static_cast<uint32_t>(initrd_gpa));
  bp::store(zp, bp::kRamdiskSize, static_cast<uint32_t>(initrd_bytes));
  // Everything is below 4 GiB: the ext_* high halves stay zero.

  uint8_t count = 0;
  add_e820(zp, count, 0, kEbdaGpa, bp::kE820Ram);
  // EBDA + MP table, VGA, BIOS area + ACPI tables
  add_e820(zp, count, kEbdaGpa, kHighMemoryGpa - kEbdaGpa, bp::kE820Reserved);
  add_e820(zp, count, kHighMemoryGpa, memory.size() - kHighMemoryGpa, bp::kE820Ram);
  zp[bp::kE820Entries] = count;
}

// The files read and every check passed: what load_linux writes into guest memory.
struct CheckedLinux {
  std::vector<uint8_t> kernel_file;
  KernelImage k;
  OpenFile initrd;  // fd invalid: none
  uint64_t initrd_gpa = 0, initrd_bytes = 0;
};

Result<CheckedLinux> check_files(const LinuxImage& image, uint64_t memory_bytes) {
  CheckedLinux c;
  const std::string& path = image.kernel_path;
  CKPT_ASSIGN_OR_RETURN(OpenFile kernel_file, open_file("kernel", path));
  c.kernel_file.resize(kernel_file.bytes);
  CKPT_RETURN_IF_ERROR(read_exactly(kernel_file, "kernel", path, c.kernel_file));
  CKPT_ASSIGN_OR_RETURN(c.k, parse_kernel(path, c.kernel_file));
  if (c.k.end > memory_bytes) {
    return invalid_argument("kernel " + path + " needs " + mib(c.k.end - c.k.start) + " from " + hex(c.k.start) +
                            ", guest has " + mib(memory_bytes));
  }
  const uint64_t cmdline_room = kCmdlineEndGpa - kCmdlineGpa - 1;
  if (image.cmdline.size() > c.k.cmdline_size || image.cmdline.size() > cmdline_room) {
    return invalid_argument("command line is " + std::to_string(image.cmdline.size()) + " bytes; kernel " + path +
                            " accepts at most " + std::to_string(std::min<uint64_t>(c.k.cmdline_size, cmdline_room)));
  }
  if (image.cmdline.find('\0') != std::string::npos) {
    return invalid_argument("command line for " + path + " contains a NUL byte");
  }
  if (!image.initrd_path.empty()) {
    CKPT_ASSIGN_OR_RETURN(c.initrd, open_file("initrd", image.initrd_path));
    CKPT_ASSIGN_OR_RETURN(c.initrd_gpa, place_initrd(c.k, image.initrd_path, c.initrd.bytes, memory_bytes));
    c.initrd_bytes = c.initrd.bytes;
  }
  return c;
}

}  // namespace

Status check_linux_image(const LinuxImage& image, uint64_t memory_bytes, unsigned vcpus) {
  CKPT_RETURN_IF_ERROR(check_guest(memory_bytes, vcpus));
  return check_files(image, memory_bytes).status();
}

Result<LinuxEntry> load_linux(const LinuxImage& image, std::span<uint8_t> memory, unsigned vcpus,
                              std::span<const VirtioMmioDevice> virtio_mmio) {
  CKPT_RETURN_IF_ERROR(check_guest(memory.size(), vcpus));
  CKPT_RETURN_IF_ERROR(check_virtio_mmio_devices(virtio_mmio));
  CKPT_ASSIGN_OR_RETURN(CheckedLinux checked, check_files(image, memory.size()));
  const KernelImage& k = checked.k;
  const std::vector<uint8_t>& file = checked.kernel_file;
  uint64_t initrd_gpa = checked.initrd_gpa, initrd_bytes = checked.initrd_bytes;
  if (initrd_bytes) {
    CKPT_RETURN_IF_ERROR(read_exactly(checked.initrd, "initrd", image.initrd_path,
                                      memory.subspan(initrd_gpa, initrd_bytes)));
  }

  for (const KernelSegment& s : k.segments) {
    std::copy_n(file.begin() + static_cast<ptrdiff_t>(s.file_offset), s.file_bytes, memory.begin() + s.gpa);
    std::fill_n(memory.begin() + s.gpa + s.file_bytes, s.mem_bytes - s.file_bytes, 0);  // .bss
  }
  std::span<uint8_t> cmdline = memory.subspan(kCmdlineGpa, kCmdlineEndGpa - kCmdlineGpa);
  std::fill(cmdline.begin(), cmdline.end(), 0);
  std::copy(image.cmdline.begin(), image.cmdline.end(), cmdline.begin());
  write_boot_params(memory, k, initrd_gpa, initrd_bytes);
  const BootTables tables = write_boot_tables(memory);
  CKPT_RETURN_IF_ERROR(write_mptable(memory, vcpus));
  CKPT_ASSIGN_OR_RETURN(uint64_t rsdp, write_acpi_tables(memory, vcpus, virtio_mmio));
  bp::store(memory, kZeroPageGpa + bp::kAcpiRsdpAddr, rsdp);

  LinuxEntry entry{};
  entry.rip = k.entry;
  entry.rsi = kZeroPageGpa;
  entry.rsp = kStackTopGpa;
  entry.cr3 = tables.cr3;
  entry.gdt_base = tables.gdt_base;
  entry.gdt_limit = tables.gdt_limit;
  entry.idt_base = tables.idt_base;
  entry.idt_limit = tables.idt_limit;
  entry.code_descriptor = tables.code_descriptor;
  entry.data_descriptor = tables.data_descriptor;
  return entry;
}

}  // namespace ckpt::vmm::x86
