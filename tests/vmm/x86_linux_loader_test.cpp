// vmm/x86 boot pieces on the host: load_linux with synthetic bzImages and ELF vmlinux files (and Debian's real
// kernel when the nested-KVM harness cache or /boot has one), every refusal, the e820 map, the GDT, the identity
// page tables walked as the MMU would, and the MP table parsed back. Offsets are written out as the boot protocol
// documents give them rather than taken from the library's headers, so a wrong constant there fails here.
#include <elf.h>
#include <glob.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <iterator>
#include <functional>
#include <optional>

#include "x86_test_util.h"
#include "vmm/x86/linux_loader.h"
#include "vmm/x86/mptable.h"

namespace ckpt::vmm::x86 {
namespace {

using test_util::ScratchDir;
using test_util::TestMemory;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
constexpr uint64_t kZeroPage = 0x10000;  // LinuxEntry::rsi, checked below

template <typename T>
void put(std::vector<uint8_t>& b, uint64_t off, T v) {
  std::memcpy(b.data() + off, &v, sizeof v);
}
template <typename T>
T get(std::span<const uint8_t> b, uint64_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof v);
  return v;
}

// A bzImage as far as a 64-bit loader looks: 4 setup sectors + boot sector, the setup header of protocol 2.15, and a
// patterned "protected-mode kernel" of `payload` bytes. init_size 4 MiB, pref_address 16 MiB.
std::vector<uint8_t> fake_bzimage(uint64_t payload = 64 * 1024) {
  const uint64_t setup = 5 * 512;
  std::vector<uint8_t> b(setup + payload);
  b[0x1f1] = 4;                                // setup_sects
  put<uint16_t>(b, 0x1f2, 1);                  // root_flags
  put<uint32_t>(b, 0x1f4, static_cast<uint32_t>(payload / 16));  // syssize
  put<uint16_t>(b, 0x1fa, 0xffff);             // vid_mode
  put<uint16_t>(b, 0x1fe, 0xaa55);
  b[0x200] = 0xeb;
  b[0x201] = 0x6a;                             // header ends at 0x26c
  std::memcpy(b.data() + 0x202, "HdrS", 4);
  put<uint16_t>(b, 0x206, 0x020f);
  b[0x211] = 0x01;                             // LOADED_HIGH
  put<uint32_t>(b, 0x22c, 0x7fffffff);         // initrd_addr_max
  put<uint32_t>(b, 0x230, 0x200000);           // kernel_alignment
  b[0x234] = 1;                                // relocatable
  b[0x235] = 21;
  put<uint16_t>(b, 0x236, 0x3);                // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
  put<uint32_t>(b, 0x238, 2047);               // cmdline_size
  put<uint64_t>(b, 0x258, 0x1000000);          // pref_address
  put<uint32_t>(b, 0x260, 4 * kMiB);           // init_size
  for (uint64_t i = 0; i < payload; ++i) b[setup + i] = static_cast<uint8_t>(i * 7 + 3);
  return b;
}

constexpr uint64_t kElfEntry = 0x1000040;
// An ELF64 x86-64 executable with two PT_LOAD segments: 12 KiB of code + 8 KiB of .bss at 16 MiB, 4 KiB at 18 MiB.
std::vector<uint8_t> fake_vmlinux() {
  const uint64_t phoff = sizeof(Elf64_Ehdr), data = 0x1000;
  std::vector<uint8_t> b(data + 0x3000 + 0x1000);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = kElfEntry;
  eh.e_phoff = phoff;
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 3;
  std::memcpy(b.data(), &eh, sizeof eh);
  Elf64_Phdr text{PT_LOAD, PF_R | PF_X, data, 0xffffffff81000000, 0x1000000, 0x3000, 0x5000, 0x200000};
  Elf64_Phdr note{PT_NOTE, PF_R, data, 0, 0x40, 0x10, 0x10, 4};  // ignored: not PT_LOAD
  Elf64_Phdr more{PT_LOAD, PF_R | PF_W, data + 0x3000, 0xffffffff81200000, 0x1200000, 0x1000, 0x1000, 0x200000};
  std::memcpy(b.data() + phoff, &text, sizeof text);
  std::memcpy(b.data() + phoff + sizeof(Elf64_Phdr), &note, sizeof note);
  std::memcpy(b.data() + phoff + 2 * sizeof(Elf64_Phdr), &more, sizeof more);
  for (uint64_t i = data; i < b.size(); ++i) b[i] = static_cast<uint8_t>(i * 13 + 1);
  return b;
}

std::vector<uint8_t> pattern(uint64_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (uint64_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 31 + (i >> 12));
  return v;
}

std::string cstring_at(TestMemory& m, uint64_t gpa) {
  return std::string(reinterpret_cast<const char*>(m.span().data() + gpa));
}

// Expects a failure whose message holds every one of `parts`.
void expect_error(const Result<LinuxEntry>& r, std::initializer_list<std::string> parts) {
  ASSERT_FALSE(r.is_ok()) << "loaded although it should not have";
  for (const std::string& p : parts) {
    EXPECT_NE(r.status().message().find(p), std::string::npos)
        << "'" << p << "' missing from: " << r.status().to_string();
  }
}

// The MMU's 4-level walk with 2 MiB and 1 GiB pages; nullopt when not mapped.
std::optional<uint64_t> translate(TestMemory& m, uint64_t cr3, uint64_t va, uint64_t memory_bytes) {
  auto entry = [&](uint64_t table, uint64_t index) -> std::optional<uint64_t> {
    uint64_t at = (table & 0x000ffffffffff000ull) + 8 * index;
    if (at + 8 > memory_bytes) return std::nullopt;
    uint64_t e = m.at<uint64_t>(at);
    if ((e & 1) == 0) return std::nullopt;
    return e;
  };
  auto pml4e = entry(cr3, (va >> 39) & 511);
  if (!pml4e) return std::nullopt;
  auto pdpte = entry(*pml4e, (va >> 30) & 511);
  if (!pdpte) return std::nullopt;
  if (*pdpte & 0x80) return (*pdpte & 0x000fffffc0000000ull) | (va & (kGiB - 1));
  auto pde = entry(*pdpte, (va >> 21) & 511);
  if (!pde) return std::nullopt;
  if (*pde & 0x80) return (*pde & 0x000fffffffe00000ull) | (va & (2 * kMiB - 1));
  auto pte = entry(*pde, (va >> 12) & 511);
  if (!pte) return std::nullopt;
  return (*pte & 0x000ffffffffff000ull) | (va & 0xfff);
}

struct E820 {
  uint64_t addr, size;
  uint32_t type;
  bool operator==(const E820&) const = default;
};
std::vector<E820> e820_of(TestMemory& m) {
  std::vector<E820> out;
  uint8_t n = m.at<uint8_t>(kZeroPage + 0x1e8);
  for (uint8_t i = 0; i < n; ++i) {
    uint64_t at = kZeroPage + 0x2d0 + 20ull * i;
    out.push_back({m.at<uint64_t>(at), m.at<uint64_t>(at + 8), m.at<uint32_t>(at + 16)});
  }
  return out;
}

class LinuxLoader : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }
  ScratchDir dir_;
};

// ---------------------------------------------------------------------------------------------------------------
// bzImage

TEST_F(LinuxLoader, SyntheticBzImageEntryAndBootParams) {
  std::vector<uint8_t> kernel = fake_bzimage();
  std::vector<uint8_t> initrd = pattern(100 * 1024 + 5, 9);
  LinuxImage image{dir_.write("bzImage", kernel), dir_.write("initrd", initrd), "console=ttyS0 quiet"};
  TestMemory mem(64 * kMiB);
  ASSERT_TRUE(mem.ok());
  auto r = load_linux(image, mem.span(), 2);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const LinuxEntry& e = *r;
  EXPECT_EQ(e.rip, 0x1000000u + 0x200);  // pref_address, already 2 MiB-aligned, + the 64-bit entry offset
  EXPECT_EQ(e.rsi, kZeroPage);
  EXPECT_LE(e.rsp, e.rsi);               // below the zero page
  EXPECT_GE(e.rsp, e.rsi - 0x10000);     // and close to it
  EXPECT_EQ(e.rsp % 16, 0u);

  // The protected-mode kernel at the load address, byte for byte.
  EXPECT_TRUE(std::equal(kernel.begin() + 5 * 512, kernel.end(), mem.span().begin() + 0x1000000));

  // The setup header copied from 0x1f1 up to 0x202 + byte 0x201, with the loader's fields written over it.
  std::span<const uint8_t> zp = mem.span().subspan(kZeroPage, 4096);
  for (uint64_t off = 0x1f1; off < 0x26c; ++off) {
    bool written = (off >= 0x210 && off < 0x212) || (off >= 0x214 && off < 0x220) || (off >= 0x228 && off < 0x22c);
    if (!written) {
      EXPECT_EQ(zp[off], kernel[off]) << "setup header byte " << std::hex << off;
    }
  }
  EXPECT_EQ(zp[0x26c], 0u) << "nothing past the header end";
  EXPECT_EQ(get<uint32_t>(zp, 0x202), 0x53726448u);
  EXPECT_EQ(zp[0x210], 0xffu);                       // type_of_loader
  EXPECT_EQ(zp[0x211] & 0x01, 0x01);                 // LOADED_HIGH
  EXPECT_EQ(zp[0x211] & 0x80, 0);                    // CAN_USE_HEAP off
  EXPECT_EQ(get<uint32_t>(zp, 0x214), 0x1000000u);   // code32_start = load address
  const uint32_t cmd_line_ptr = get<uint32_t>(zp, 0x228);
  EXPECT_EQ(cstring_at(mem, cmd_line_ptr), "console=ttyS0 quiet");
  EXPECT_LT(cmd_line_ptr, 0xa0000u);
  EXPECT_EQ(get<uint32_t>(zp, 0x0c8), 0u);           // ext_cmd_line_ptr

  // The initrd: page-aligned, as high as RAM allows, above the kernel's init_size region, intact.
  const uint32_t ramdisk = get<uint32_t>(zp, 0x218);
  EXPECT_EQ(get<uint32_t>(zp, 0x21c), initrd.size());
  EXPECT_EQ(ramdisk % 4096, 0u);
  EXPECT_LE(ramdisk + initrd.size(), 64 * kMiB);
  EXPECT_GT(ramdisk + initrd.size() + 4096, 64 * kMiB);
  EXPECT_GE(ramdisk, 0x1000000u + 4 * kMiB);
  EXPECT_TRUE(std::equal(initrd.begin(), initrd.end(), mem.span().begin() + ramdisk));
}

TEST_F(LinuxLoader, E820MapHasLowRamReservedBiosAreaAndHighRam) {
  LinuxImage image{dir_.write("bzImage", fake_bzimage()), "", ""};
  TestMemory mem(128 * kMiB);
  ASSERT_TRUE(load_linux(image, mem.span(), 1).is_ok());
  std::vector<E820> want = {{0, 0x9fc00, 1}, {0x9fc00, 0x100000 - 0x9fc00, 2}, {0x100000, 127 * kMiB, 1}};
  EXPECT_EQ(e820_of(mem), want);
  EXPECT_EQ(mem.at<uint32_t>(kZeroPage + 0x218), 0u) << "no initrd, no ramdisk_image";
  EXPECT_EQ(mem.at<uint32_t>(kZeroPage + 0x21c), 0u);
  // An empty command line is still a valid pointer to an empty string.
  uint32_t cmd = mem.at<uint32_t>(kZeroPage + 0x228);
  EXPECT_NE(cmd, 0u);
  EXPECT_EQ(cstring_at(mem, cmd), "");
}

TEST_F(LinuxLoader, NonRelocatableAndUnalignedPreferences) {
  // Relocatable with an unaligned pref_address: loaded at the next kernel_alignment boundary.
  std::vector<uint8_t> k = fake_bzimage();
  put<uint64_t>(k, 0x258, 0x1100000);
  TestMemory mem(64 * kMiB);
  auto r = load_linux({dir_.write("a", k), "", ""}, mem.span(), 1);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rip, 0x1200000u + 0x200);
  // Not relocatable: exactly pref_address.
  k[0x234] = 0;
  TestMemory mem2(64 * kMiB);
  r = load_linux({dir_.write("b", k), "", ""}, mem2.span(), 1);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rip, 0x1100000u + 0x200);
  // setup_sects 0 means 4.
  k = fake_bzimage();
  k[0x1f1] = 0;
  TestMemory mem3(64 * kMiB);
  r = load_linux({dir_.write("c", k), "", ""}, mem3.span(), 1);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(std::equal(k.begin() + 5 * 512, k.end(), mem3.span().begin() + 0x1000000));
}

TEST_F(LinuxLoader, GdtHasFlatBootSegmentsAndIdtIsEmpty) {
  TestMemory mem(64 * kMiB);
  auto r = load_linux({dir_.write("bzImage", fake_bzimage()), "", ""}, mem.span(), 1);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_GE(r->gdt_limit, 0x1fu);
  EXPECT_EQ((r->gdt_limit + 1) % 8, 0);
  EXPECT_EQ(mem.at<uint64_t>(r->gdt_base + 0x10), r->code_descriptor);
  EXPECT_EQ(mem.at<uint64_t>(r->gdt_base + 0x18), r->data_descriptor);
  EXPECT_EQ(mem.at<uint64_t>(r->gdt_base), 0u) << "null descriptor";
  struct Decoded {
    uint64_t base, limit;
    unsigned type, s, dpl, p, l, db, g;
  };
  auto decode = [](uint64_t d) {
    return Decoded{((d >> 16) & 0xffffff) | ((d >> 56) << 24), (d & 0xffff) | (((d >> 48) & 0xf) << 16),
                   unsigned((d >> 40) & 0xf), unsigned((d >> 44) & 1), unsigned((d >> 45) & 3),
                   unsigned((d >> 47) & 1), unsigned((d >> 53) & 1), unsigned((d >> 54) & 1),
                   unsigned((d >> 55) & 1)};
  };
  Decoded c = decode(r->code_descriptor), d = decode(r->data_descriptor);
  EXPECT_EQ(c.base, 0u);
  EXPECT_EQ(c.limit, 0xfffffu);
  EXPECT_EQ(c.type & 0xa, 0xau) << "code, readable";
  EXPECT_EQ(c.s, 1u);
  EXPECT_EQ(c.dpl, 0u);
  EXPECT_EQ(c.p, 1u);
  EXPECT_EQ(c.l, 1u) << "64-bit code";
  EXPECT_EQ(c.db, 0u) << "L=1 needs D=0";
  EXPECT_EQ(c.g, 1u);
  EXPECT_EQ(d.base, 0u);
  EXPECT_EQ(d.limit, 0xfffffu);
  EXPECT_EQ(d.type & 0xa, 0x2u) << "data, writable";
  EXPECT_EQ(d.s, 1u);
  EXPECT_EQ(d.p, 1u);
  EXPECT_EQ(d.g, 1u);
  EXPECT_EQ(d.db, 1u);
  EXPECT_EQ(r->code_descriptor, 0x00af9b000000ffffull);
  EXPECT_EQ(r->data_descriptor, 0x00cf93000000ffffull);
  EXPECT_EQ(r->idt_limit, 0u);
  // None of the boot structures overlaps another.
  std::vector<std::pair<uint64_t, uint64_t>> regions = {{r->gdt_base, r->gdt_base + r->gdt_limit + 1},
                                                        {r->idt_base, r->idt_base + r->idt_limit + 1},
                                                        {r->cr3, r->cr3 + 4096},
                                                        {r->rsi, r->rsi + 4096},
                                                        {r->rsp - 4096, r->rsp}};
  uint32_t cmd = mem.at<uint32_t>(kZeroPage + 0x228);
  regions.push_back({cmd, cmd + 2048});
  for (size_t i = 0; i < regions.size(); ++i) {
    for (size_t j = i + 1; j < regions.size(); ++j) {
      EXPECT_TRUE(regions[i].second <= regions[j].first || regions[j].second <= regions[i].first)
          << "regions " << i << " and " << j << " overlap";
    }
  }
}

TEST_F(LinuxLoader, PageTablesIdentityMapTheFirstFourGiB) {
  TestMemory mem(64 * kMiB);
  auto r = load_linux({dir_.write("bzImage", fake_bzimage()), "", ""}, mem.span(), 1);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  // The page tables must themselves lie in RAM, below the kernel.
  EXPECT_LT(r->cr3 + 4096, 0x9fc00u);
  for (uint64_t va = 0; va < 4 * kGiB; va += 2 * kMiB) {
    for (uint64_t off : {uint64_t{0}, uint64_t{0x1234}, 2 * kMiB - 1}) {
      auto pa = translate(mem, r->cr3, va + off, 64 * kMiB);
      ASSERT_TRUE(pa.has_value()) << std::hex << "not mapped: " << va + off;
      ASSERT_EQ(*pa, va + off) << std::hex << "not identity: " << va + off;
    }
  }
  // Entries the walk passes must be writable (the kernel writes its early data through this map).
  uint64_t pml4e = mem.at<uint64_t>(r->cr3);
  EXPECT_EQ(pml4e & 3, 3u);
  EXPECT_EQ(mem.at<uint64_t>(pml4e & ~0xfffull) & 3, 3u);
  // Specific addresses the protocol needs: entry, zero page, command line, stack, LAPIC/IOAPIC MMIO.
  for (uint64_t va : {r->rip, r->rsi, r->rsp - 8, uint64_t{0xfee00000}, uint64_t{0xfec00000}}) {
    EXPECT_EQ(translate(mem, r->cr3, va, 64 * kMiB), std::optional<uint64_t>(va));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// ELF vmlinux

TEST_F(LinuxLoader, ElfVmlinuxSegmentsEntryAndSynthesizedHeader) {
  std::vector<uint8_t> kernel = fake_vmlinux();
  std::vector<uint8_t> initrd = pattern(3 * 4096, 1);
  TestMemory mem(32 * kMiB);
  // Memory is zero-filled by contract, but the .bss must be zero however it was found.
  std::fill_n(mem.span().begin() + 0x1003000, 0x2000, 0xcc);
  auto r = load_linux({dir_.write("vmlinux", kernel), dir_.write("initrd", initrd), "root=/dev/ram0"},
                      mem.span(), 4);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->rip, kElfEntry);
  EXPECT_TRUE(std::equal(kernel.begin() + 0x1000, kernel.begin() + 0x4000, mem.span().begin() + 0x1000000));
  EXPECT_TRUE(std::all_of(mem.span().begin() + 0x1003000, mem.span().begin() + 0x1005000,
                          [](uint8_t b) { return b == 0; }))
      << ".bss zeroed";
  EXPECT_TRUE(std::equal(kernel.begin() + 0x4000, kernel.end(), mem.span().begin() + 0x1200000));
  EXPECT_EQ(mem.at<uint8_t>(0x40), 0u) << "the PT_NOTE is not loaded";

  std::span<const uint8_t> zp = mem.span().subspan(kZeroPage, 4096);
  EXPECT_EQ(get<uint16_t>(zp, 0x1fe), 0xaa55);
  EXPECT_EQ(get<uint32_t>(zp, 0x202), 0x53726448u);
  EXPECT_GE(get<uint16_t>(zp, 0x206), 0x020c);
  EXPECT_EQ(zp[0x210], 0xffu);
  EXPECT_EQ(zp[0x211] & 0x01, 0x01);
  EXPECT_EQ(get<uint32_t>(zp, 0x230), 0x200000u) << "kernel_alignment from p_align";
  EXPECT_EQ(get<uint32_t>(zp, 0x238), 2047u);
  EXPECT_EQ(cstring_at(mem, get<uint32_t>(zp, 0x228)), "root=/dev/ram0");
  const uint32_t ramdisk = get<uint32_t>(zp, 0x218);
  EXPECT_EQ(get<uint32_t>(zp, 0x21c), initrd.size());
  EXPECT_EQ(ramdisk, 32 * kMiB - initrd.size());
  EXPECT_TRUE(std::equal(initrd.begin(), initrd.end(), mem.span().begin() + ramdisk));
  EXPECT_EQ(e820_of(mem).size(), 3u);
}

TEST_F(LinuxLoader, ElfErrors) {
  TestMemory mem(32 * kMiB);
  auto load = [&](const std::vector<uint8_t>& k) { return load_linux({dir_.write("elf", k), "", ""}, mem.span(), 1); };
  std::vector<uint8_t> k = fake_vmlinux();
  k[EI_CLASS] = ELFCLASS32;
  expect_error(load(k), {dir_.path() + "/elf", "neither a bzImage nor an x86-64 ELF vmlinux"});
  k = fake_vmlinux();
  put<uint16_t>(k, offsetof(Elf64_Ehdr, e_machine), EM_AARCH64);
  expect_error(load(k), {"neither a bzImage nor an x86-64 ELF vmlinux", "machine 183"});
  k = fake_vmlinux();
  k.resize(0x2000);  // segments cut off
  expect_error(load(k), {"PT_LOAD segment 0", "past the end of the file"});
  k = fake_vmlinux();
  put<uint64_t>(k, offsetof(Elf64_Ehdr, e_entry), 0x5000000);
  expect_error(load(k), {"entry point 0x5000000 lies outside"});
  k = fake_vmlinux();  // a segment below 1 MiB would overwrite the boot tables
  put<uint64_t>(k, sizeof(Elf64_Ehdr) + offsetof(Elf64_Phdr, p_paddr), 0x8000);
  expect_error(load(k), {"below 1 MiB"});
  TestMemory small(16 * kMiB);
  expect_error(load_linux({dir_.write("elf2", fake_vmlinux()), "", ""}, small.span(), 1),
               {"kernel " + dir_.path() + "/elf2 needs 3 MiB from 0x1000000, guest has 16 MiB"});
}

// ---------------------------------------------------------------------------------------------------------------
// Refusals

TEST_F(LinuxLoader, RefusesWhatIsNotABootable64BitKernel) {
  TestMemory mem(64 * kMiB);
  auto load = [&](const std::vector<uint8_t>& k) { return load_linux({dir_.write("k", k), "", ""}, mem.span(), 1); };
  const std::string path = dir_.path() + "/k";

  std::vector<uint8_t> k = fake_bzimage();
  std::memcpy(k.data() + 0x202, "HdrX", 4);
  expect_error(load(k), {path + " is neither a bzImage nor an x86-64 ELF vmlinux"});
  expect_error(load(std::vector<uint8_t>(100, 0x90)), {path + " is neither a bzImage"});

  k = fake_bzimage();
  put<uint16_t>(k, 0x206, 0x020b);
  expect_error(load(k), {path, "boot protocol 2.11", "2.12"});

  k = fake_bzimage();
  put<uint16_t>(k, 0x236, 0x2);
  expect_error(load(k), {path + " is not a 64-bit bootable kernel"});

  k = fake_bzimage();
  k.resize(k.size() - 100);
  expect_error(load(k), {path + " is truncated", std::to_string(k.size() + 100), std::to_string(k.size())});

  k = fake_bzimage();
  put<uint32_t>(k, 0x230, 0x300000);
  expect_error(load(k), {"kernel_alignment 0x300000"});
}

TEST_F(LinuxLoader, RefusesKernelInitrdOrCommandLineThatDoNotFit) {
  const std::string kernel = dir_.write("bzImage", fake_bzimage());
  {
    TestMemory mem(18 * kMiB);  // the kernel needs [16 MiB, 20 MiB)
    expect_error(load_linux({kernel, "", ""}, mem.span(), 1),
                 {"kernel " + kernel + " needs 4 MiB from 0x1000000, guest has 18 MiB"});
  }
  {
    std::vector<uint8_t> k = fake_bzimage();
    put<uint32_t>(k, 0x260, 0);  // init_size smaller than the payload: the payload still counts
    TestMemory mem(16 * kMiB);
    expect_error(load_linux({dir_.write("k0", k), "", ""}, mem.span(), 1), {"needs 1 MiB from 0x1000000"});
  }
  TestMemory mem(64 * kMiB);
  // The initrd has [20 MiB, 64 MiB): 44 MiB fits, 44 MiB + 1 byte does not.
  const std::string big = dir_.write("big", std::vector<uint8_t>(44 * kMiB + 1, 1));
  expect_error(load_linux({kernel, big, ""}, mem.span(), 1), {"initrd " + big, "does not fit", "0x1400000"});
  ASSERT_TRUE(load_linux({kernel, dir_.write("fits", std::vector<uint8_t>(44 * kMiB, 1)), ""}, mem.span(), 1).is_ok());
  // initrd_addr_max bounds it too.
  std::vector<uint8_t> k = fake_bzimage();
  put<uint32_t>(k, 0x22c, 32 * kMiB - 1);
  auto r = load_linux({dir_.write("k1", k), dir_.write("i1", pattern(8192, 3)), ""}, mem.span(), 1);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(mem.at<uint32_t>(kZeroPage + 0x218), 32 * kMiB - 8192);

  std::string longest(2047, 'x');
  EXPECT_TRUE(load_linux({kernel, "", longest}, mem.span(), 1).is_ok());
  expect_error(load_linux({kernel, "", longest + "y"}, mem.span(), 1),
               {"command line is 2048 bytes", kernel, "at most 2047"});
  expect_error(load_linux({kernel, "", std::string("a\0b", 3)}, mem.span(), 1), {"NUL"});
}

// The daemon's check before it sets anything up: the same refusals as load_linux, with no guest memory at all.
TEST_F(LinuxLoader, CheckWithoutMemoryRefusesWhatLoadRefuses) {
  const std::string kernel = dir_.write("bzImage", fake_bzimage());
  EXPECT_TRUE(check_linux_image({kernel, "", "console=ttyS0"}, 64 * kMiB, 2).is_ok());
  std::vector<uint8_t> k = fake_bzimage();
  k.resize(k.size() - 100);
  const std::string truncated = dir_.write("short", k);
  auto expect_refused = [](const Status& s, const std::string& part) {
    ASSERT_FALSE(s.is_ok()) << "accepted; want a refusal saying '" << part << "'";
    EXPECT_NE(s.message().find(part), std::string::npos) << "'" << part << "' missing from: " << s.to_string();
  };
  expect_refused(check_linux_image({truncated, "", ""}, 64 * kMiB, 1), truncated + " is truncated");
  expect_refused(check_linux_image({dir_.path() + "/none", "", ""}, 64 * kMiB, 1), "open kernel");
  expect_refused(check_linux_image({kernel, "", ""}, 18 * kMiB, 1), "guest has 18 MiB");
  const std::string big = dir_.write("big", std::vector<uint8_t>(44 * kMiB + 1, 1));
  expect_refused(check_linux_image({kernel, big, ""}, 64 * kMiB, 1), "does not fit");
  expect_refused(check_linux_image({kernel, "", std::string(2048, 'x')}, 64 * kMiB, 1), "at most 2047");
  expect_refused(check_linux_image({kernel, "", ""}, 64 * kMiB, 33), "vCPU count 33");
  expect_refused(check_linux_image({kernel, "", ""}, 64 * kMiB + 4096, 1), "not a positive multiple of 2 MiB");
  expect_refused(check_linux_image({kernel, "", ""}, 4096 * kMiB, 1), "more than the 3 GiB");
}

TEST_F(LinuxLoader, RefusesGuestMemoryItCannotDescribe) {
  const std::string kernel = dir_.write("bzImage", fake_bzimage());
  {
    TestMemory mem(3 * kGiB + 2 * kMiB);
    ASSERT_TRUE(mem.ok());
    expect_error(load_linux({kernel, "", ""}, mem.span(), 1), {"3074 MiB", "3 GiB"});
  }
  {
    TestMemory mem(3 * kGiB);  // the largest allowed; lazily mapped, so only the touched pages cost
    ASSERT_TRUE(mem.ok());
    auto r = load_linux({kernel, "", ""}, mem.span(), 1);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(e820_of(mem).back(), (E820{0x100000, 3 * kGiB - 0x100000, 1}));
  }
  TestMemory mem(64 * kMiB);
  expect_error(load_linux({kernel, "", ""}, mem.span().first(63 * kMiB), 1), {"multiple of 2 MiB"});
  expect_error(load_linux({kernel, "", ""}, mem.span(), 0), {"vCPU count 0"});
  expect_error(load_linux({kernel, "", ""}, mem.span(), 33), {"vCPU count 33"});
}

TEST_F(LinuxLoader, FileErrorsNameTheFileAndTheReason) {
  TestMemory mem(64 * kMiB);
  const std::string missing = dir_.path() + "/no-such-kernel";
  expect_error(load_linux({missing, "", ""}, mem.span(), 1), {missing, "No such file"});
  const std::string empty = dir_.write("empty", {});
  expect_error(load_linux({empty, "", ""}, mem.span(), 1), {empty, "empty"});
  expect_error(load_linux({dir_.path(), "", ""}, mem.span(), 1), {dir_.path(), "not a regular file"});
  const std::string kernel = dir_.write("bzImage", fake_bzimage());
  const std::string no_initrd = dir_.path() + "/no-such-initrd";
  expect_error(load_linux({kernel, no_initrd, ""}, mem.span(), 1), {"initrd " + no_initrd, "No such file"});
  expect_error(load_linux({kernel, empty, ""}, mem.span(), 1), {"initrd " + empty, "empty"});
}

// ---------------------------------------------------------------------------------------------------------------
// Debian's kernel

std::vector<std::string> real_kernels() {
  std::vector<std::string> out;
  for (const char* pattern : {"/root/.cache/ckptd-kvm-harness/kernels/*/boot/vmlinuz-*", "/boot/vmlinuz-*"}) {
    glob_t g{};
    if (::glob(pattern, 0, nullptr, &g) == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    }
    ::globfree(&g);
  }
  return out;
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

TEST_F(LinuxLoader, DebianBzImage) {
  std::vector<std::string> kernels = real_kernels();
  if (kernels.empty()) GTEST_SKIP() << "no Debian kernel in ~/.cache/ckptd-kvm-harness/kernels or /boot";
  for (const std::string& path : kernels) {
    SCOPED_TRACE(path);
    std::vector<uint8_t> file = read_all(path);
    ASSERT_GT(file.size(), 0x300u);
    const uint64_t pref = get<uint64_t>(file, 0x258), align = get<uint32_t>(file, 0x230);
    const uint64_t init_size = get<uint32_t>(file, 0x260);
    const uint64_t load = (pref + align - 1) / align * align;
    const uint64_t setup = (uint64_t{file[0x1f1] ? file[0x1f1] : 4u} + 1) * 512;
    const uint64_t syssize = uint64_t{get<uint32_t>(file, 0x1f4)} * 16;

    TestMemory mem(256 * kMiB);
    std::vector<uint8_t> initrd = pattern(1 * kMiB + 123, 5);
    auto r = load_linux({path, dir_.write("initrd", initrd), "console=ttyS0 reboot=t panic=-1 quiet"}, mem.span(),
                        2);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->rip, load + 0x200);
    EXPECT_TRUE(std::equal(file.begin() + setup, file.begin() + setup + syssize, mem.span().begin() + load));
    std::span<const uint8_t> zp = mem.span().subspan(kZeroPage, 4096);
    EXPECT_EQ(get<uint32_t>(zp, 0x202), 0x53726448u);
    EXPECT_EQ(get<uint16_t>(zp, 0x206), get<uint16_t>(file, 0x206));
    EXPECT_EQ(get<uint32_t>(zp, 0x260), init_size);
    EXPECT_EQ(zp[0x210], 0xffu);
    EXPECT_EQ(cstring_at(mem, get<uint32_t>(zp, 0x228)), "console=ttyS0 reboot=t panic=-1 quiet");
    const uint32_t ramdisk = get<uint32_t>(zp, 0x218);
    EXPECT_GE(ramdisk, load + init_size);
    EXPECT_EQ(ramdisk, (256 * kMiB - initrd.size()) & ~0xfffull);
    EXPECT_TRUE(std::equal(initrd.begin(), initrd.end(), mem.span().begin() + ramdisk));

    // Too small a guest for its init_size is refused with the numbers.
    TestMemory small(64 * kMiB);
    char from[32];
    std::snprintf(from, sizeof from, "from 0x%llx", static_cast<unsigned long long>(load));
    expect_error(load_linux({path, "", ""}, small.span(), 1), {"needs", from, "guest has 64 MiB"});
  }
}

// ---------------------------------------------------------------------------------------------------------------
// MP table, parsed back the way Linux's mpparse looks for it

struct ParsedMp {
  uint64_t floating = 0;
  uint32_t lapic = 0;
  std::vector<uint8_t> cpu_ids;
  std::vector<uint8_t> cpu_flags;
  std::vector<uint8_t> bus_ids;
  std::string bus_type;
  uint8_t ioapic_id = 0;
  uint32_t ioapic_address = 0;
  std::vector<std::array<uint8_t, 4>> io_ints;  // type, bus irq, dest ioapic, pin
  std::vector<std::array<uint8_t, 4>> local_ints;  // type, bus irq, dest lapic, lint
  uint64_t table_end = 0;
};

uint8_t sum(TestMemory& m, uint64_t at, uint64_t n) {
  uint8_t s = 0;
  for (uint64_t i = 0; i < n; ++i) s = static_cast<uint8_t>(s + m.at<uint8_t>(at + i));
  return s;
}

void parse_mp(TestMemory& m, ParsedMp* out) {
  // Linux scans the EBDA (segment at 0x40e) on 16-byte boundaries for "_MP_".
  const uint64_t ebda = uint64_t{m.at<uint16_t>(0x40e)} << 4;
  ASSERT_GE(ebda, 0x80000u);
  ASSERT_LT(ebda, 0xa0000u);
  for (uint64_t at = ebda; at < ebda + 1024; at += 16) {
    if (std::memcmp(m.span().data() + at, "_MP_", 4) == 0) {
      out->floating = at;
      break;
    }
  }
  ASSERT_NE(out->floating, 0u) << "no _MP_ in the EBDA";
  const uint64_t f = out->floating;
  EXPECT_EQ(m.at<uint8_t>(f + 8), 1) << "length in paragraphs";
  EXPECT_EQ(m.at<uint8_t>(f + 9), 4) << "spec 1.4";
  EXPECT_EQ(sum(m, f, 16), 0) << "floating pointer checksum";
  EXPECT_EQ(m.at<uint8_t>(f + 11), 0) << "not a default configuration";
  const uint64_t t = m.at<uint32_t>(f + 4);
  ASSERT_EQ(std::memcmp(m.span().data() + t, "PCMP", 4), 0);
  const uint16_t length = m.at<uint16_t>(t + 4);
  EXPECT_EQ(m.at<uint8_t>(t + 6), 4);
  EXPECT_EQ(sum(m, t, length), 0) << "configuration table checksum";
  out->lapic = m.at<uint32_t>(t + 36);
  const uint16_t count = m.at<uint16_t>(t + 34);
  uint64_t at = t + 44;
  for (uint16_t i = 0; i < count; ++i) {
    ASSERT_LT(at, t + length) << "entry " << i << " past the table length";
    uint8_t type = m.at<uint8_t>(at);
    switch (type) {
      case 0:
        out->cpu_ids.push_back(m.at<uint8_t>(at + 1));
        EXPECT_NE(m.at<uint8_t>(at + 2), 0) << "APIC version";
        out->cpu_flags.push_back(m.at<uint8_t>(at + 3));
        at += 20;
        break;
      case 1:
        out->bus_ids.push_back(m.at<uint8_t>(at + 1));
        out->bus_type.assign(reinterpret_cast<const char*>(m.span().data() + at + 2), 6);
        at += 8;
        break;
      case 2:
        out->ioapic_id = m.at<uint8_t>(at + 1);
        EXPECT_EQ(m.at<uint8_t>(at + 3) & 1, 1) << "IOAPIC enabled";
        out->ioapic_address = m.at<uint32_t>(at + 4);
        at += 8;
        break;
      case 3:
      case 4: {
        EXPECT_EQ(m.at<uint8_t>(at + 4), 0) << "source bus is the ISA bus";
        std::array<uint8_t, 4> e{m.at<uint8_t>(at + 1), m.at<uint8_t>(at + 5), m.at<uint8_t>(at + 6),
                                 m.at<uint8_t>(at + 7)};
        (type == 3 ? out->io_ints : out->local_ints).push_back(e);
        at += 8;
        break;
      }
      default: FAIL() << "unknown MP entry type " << int(type);
    }
  }
  EXPECT_EQ(at, t + length) << "entries fill the table exactly";
  out->table_end = at;
}

class MpTable : public ::testing::TestWithParam<unsigned> {};

TEST_P(MpTable, ParsesBackWithEveryCpuTheIsaBusAndTheIoapic) {
  const unsigned vcpus = GetParam();
  TestMemory mem(4 * kMiB);
  ASSERT_TRUE(write_mptable(mem.span(), vcpus).is_ok());
  ParsedMp mp;
  ASSERT_NO_FATAL_FAILURE(parse_mp(mem, &mp));
  EXPECT_EQ(mp.lapic, 0xfee00000u);
  ASSERT_EQ(mp.cpu_ids.size(), vcpus);
  for (unsigned i = 0; i < vcpus; ++i) {
    EXPECT_EQ(mp.cpu_ids[i], i);
    EXPECT_EQ(mp.cpu_flags[i] & 1, 1) << "enabled";
    EXPECT_EQ((mp.cpu_flags[i] >> 1) & 1, i == 0 ? 1 : 0) << "BSP flag on vCPU 0 only";
  }
  EXPECT_EQ(mp.bus_ids, std::vector<uint8_t>{0});
  EXPECT_EQ(mp.bus_type, "ISA   ");
  EXPECT_EQ(mp.ioapic_id, vcpus);
  EXPECT_EQ(mp.ioapic_address, 0xfec00000u);
  ASSERT_EQ(mp.io_ints.size(), 16u);
  for (uint8_t irq = 0; irq < 16; ++irq) {
    EXPECT_EQ(mp.io_ints[irq], (std::array<uint8_t, 4>{0, irq, static_cast<uint8_t>(vcpus), irq}));
  }
  ASSERT_EQ(mp.local_ints.size(), 2u);
  EXPECT_EQ(mp.local_ints[0][0], 3) << "ExtINT";
  EXPECT_EQ(mp.local_ints[0][3], 0) << "on LINT0";
  EXPECT_EQ(mp.local_ints[1][0], 1) << "NMI";
  EXPECT_EQ(mp.local_ints[1][3], 1) << "on LINT1";
  // All of it inside what the e820 map reserves, and Linux's other scan range (the last KiB below 640 KiB).
  EXPECT_GE(mp.floating, 0x9fc00u);
  EXPECT_LE(mp.table_end, 0xa0000u);
  EXPECT_EQ(mem.at<uint16_t>(0x413), 639) << "base memory ends at the EBDA";
}

INSTANTIATE_TEST_SUITE_P(Vcpus, MpTable, ::testing::Values(1u, 2u, 32u));

TEST(MpTableLimits, RefusesNoCpusOrMoreThan32) {
  TestMemory mem(4 * kMiB);
  EXPECT_FALSE(write_mptable(mem.span(), 0).is_ok());
  Status s = write_mptable(mem.span(), 33);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("33"), std::string::npos);
  EXPECT_FALSE(write_mptable(mem.span().first(512 * 1024), 1).is_ok());
}

TEST_F(LinuxLoader, LoadLinuxWritesTheMpTableForItsVcpus) {
  TestMemory mem(64 * kMiB);
  ASSERT_TRUE(load_linux({dir_.write("bzImage", fake_bzimage()), "", ""}, mem.span(), 3).is_ok());
  ParsedMp mp;
  ASSERT_NO_FATAL_FAILURE(parse_mp(mem, &mp));
  EXPECT_EQ(mp.cpu_ids.size(), 3u);
}

}  // namespace
}  // namespace ckpt::vmm::x86
