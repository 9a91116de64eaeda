// The ACPI tables (vmm/x86/acpi.h) and the AML encoder under them (vmm/x86/aml.h), on the host. The tables are
// found and parsed back the way Linux does (RSDP scan of the BIOS area, XSDT, FADT, MADT), with offsets and values
// written out as the ACPI spec gives them rather than taken from the library; the DSDT is compared with golden
// bytes; and ACPICA's own tools (iasl, from acpica-tools) disassemble every table, complaining about nothing, and
// assemble the result back into the same bytes.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "vmm/x86/acpi.h"
#include "vmm/x86/aml.h"
#include "vmm/x86/linux_loader.h"
#include "vmm/x86/mptable.h"
#include "x86_test_util.h"

namespace ckpt::vmm::x86 {
namespace {

using test_util::ScratchDir;
using test_util::TestMemory;
using Bytes = std::vector<uint8_t>;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kBiosArea = 0xe0000, kBiosAreaEnd = 0x100000;

// ---------------------------------------------------------------------------------------------------------------
// AML encoder

Bytes ok(const Result<Bytes>& r) {
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : Bytes{};
}
Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// PkgLength decoded as the spec (20.2.4) describes it, independently of the encoder: the lead byte's bits 7-6 count
// the bytes that follow; with none, bits 5-0 are the length; else bits 3-0 are its low nibble (bits 5-4 must be
// zero) and each following byte the next 8 bits.
struct DecodedPkgLength {
  uint64_t value;
  size_t bytes;
};
std::optional<DecodedPkgLength> decode_pkg_length(const Bytes& b) {
  if (b.empty()) return std::nullopt;
  const size_t follow = b[0] >> 6;
  if (b.size() != follow + 1) return std::nullopt;
  if (follow == 0) return DecodedPkgLength{b[0] & 0x3fu, 1};
  if (b[0] & 0x30) return std::nullopt;
  uint64_t v = b[0] & 0x0f;
  for (size_t i = 1; i <= follow; ++i) v |= uint64_t{b[i]} << (4 + 8 * (i - 1));
  return DecodedPkgLength{v, follow + 1};
}

TEST(AmlPkgLength, BoundariesOfEachForm) {
  // A body of 62 bytes makes a package of 63 with its one-byte PkgLength, the most one byte can say. At 63 the
  // total with one byte would be 64: two bytes are needed, and they count too (65).
  EXPECT_EQ(ok(aml::pkg_length(0)), (Bytes{0x01}));
  EXPECT_EQ(ok(aml::pkg_length(62)), (Bytes{0x3f}));
  EXPECT_EQ(ok(aml::pkg_length(63)), (Bytes{0x41, 0x04}));  // 65 = 0x041
  // Two bytes say at most 4095 (12 bits): a 4093-byte body; 4094 takes three bytes (4097).
  EXPECT_EQ(ok(aml::pkg_length(4093)), (Bytes{0x4f, 0xff}));
  EXPECT_EQ(ok(aml::pkg_length(4094)), (Bytes{0x81, 0x00, 0x01}));
  // Three bytes: 20 bits; four: 28 bits, the largest a package may be.
  EXPECT_EQ(ok(aml::pkg_length(0xffffc)), (Bytes{0x8f, 0xff, 0xff}));
  EXPECT_EQ(ok(aml::pkg_length(0xffffd)), (Bytes{0xc1, 0x00, 0x00, 0x01}));
  EXPECT_EQ(ok(aml::pkg_length(aml::kMaxPkgLength - 4)), (Bytes{0xcf, 0xff, 0xff, 0xff}));
  auto too_long = aml::pkg_length(aml::kMaxPkgLength - 3);
  ASSERT_FALSE(too_long.is_ok());
  EXPECT_NE(too_long.status().message().find("longer than a PkgLength"), std::string::npos);
}

TEST(AmlPkgLength, EveryLengthNearTheBoundariesDecodesToItselfInTheShortestForm) {
  std::vector<uint64_t> bodies;
  for (uint64_t edge : {uint64_t{0}, uint64_t{63}, uint64_t{4095}, uint64_t{0xfffff}, aml::kMaxPkgLength}) {
    for (uint64_t d = 0; d < 6; ++d) {
      if (edge >= d) bodies.push_back(edge - d);
      if (edge + d <= aml::kMaxPkgLength) bodies.push_back(edge + d);
    }
  }
  for (uint64_t body : bodies) {
    SCOPED_TRACE(body);
    auto r = aml::pkg_length(body);
    if (body + 4 > aml::kMaxPkgLength) {
      EXPECT_FALSE(r.is_ok());
      continue;
    }
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    auto d = decode_pkg_length(*r);
    ASSERT_TRUE(d.has_value()) << "not a well-formed PkgLength";
    EXPECT_EQ(d->value, body + d->bytes) << "the length counts the PkgLength's own bytes";
    // The longest package each form can say; one byte fewer would have had to say body + bytes - 1.
    const uint64_t max_for[5] = {0, 0x3f, 0xfff, 0xfffff, 0xfffffff};
    EXPECT_LE(body + d->bytes, max_for[d->bytes]);
    if (d->bytes > 1) {
      EXPECT_GT(body + d->bytes - 1, max_for[d->bytes - 1]) << "a shorter form would have done";
    }
  }
}

TEST(AmlNames, SegmentsArePaddedAndPrefixed) {
  EXPECT_EQ(ok(aml::name_string("_HID")), text("_HID"));
  EXPECT_EQ(ok(aml::name_string("_S5")), text("_S5_"));
  EXPECT_EQ(ok(aml::name_string("\\_SB")), text("\\_SB_"));
  EXPECT_EQ(ok(aml::name_string("\\")), (Bytes{'\\', 0x00}));  // the root: RootChar, NullName
  EXPECT_EQ(ok(aml::name_string("^^VIO0")), text("^^VIO0"));
  EXPECT_EQ(ok(aml::name_string("_SB.VIO0")), cat({{0x2e}, text("_SB_VIO0")}));  // DualNamePrefix
  EXPECT_EQ(ok(aml::name_string("\\A.B.C")), cat({text("\\"), {0x2f, 3}, text("A___B___C___")}));  // MultiName
  for (const char* bad : {"", "^", "1ABC", "ABCDE", "_sb", "_SB.", "_SB..X", ".X", "\\^A", "A-B"}) {
    SCOPED_TRACE(bad);
    auto r = aml::name_string(bad);
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find(std::string("\"") + bad + "\""), std::string::npos) << "names the name";
  }
}

TEST(AmlData, IntegersTakeTheSmallestEncoding) {
  EXPECT_EQ(aml::integer(0), (Bytes{0x00}));  // ZeroOp
  EXPECT_EQ(aml::integer(1), (Bytes{0x01}));  // OneOp
  EXPECT_EQ(aml::integer(2), (Bytes{0x0a, 0x02}));
  EXPECT_EQ(aml::integer(0xff), (Bytes{0x0a, 0xff}));
  EXPECT_EQ(aml::integer(0x100), (Bytes{0x0b, 0x00, 0x01}));
  EXPECT_EQ(aml::integer(0xffff), (Bytes{0x0b, 0xff, 0xff}));
  EXPECT_EQ(aml::integer(0x10000), (Bytes{0x0c, 0x00, 0x00, 0x01, 0x00}));
  EXPECT_EQ(aml::integer(0xffffffff), (Bytes{0x0c, 0xff, 0xff, 0xff, 0xff}));
  EXPECT_EQ(aml::integer(0x100000000), (Bytes{0x0e, 0, 0, 0, 0, 1, 0, 0, 0}));
}

TEST(AmlData, StringsPackagesAndBuffers) {
  EXPECT_EQ(ok(aml::string("LNRO0005")), cat({{0x0d}, text("LNRO0005"), {0x00}}));
  EXPECT_EQ(ok(aml::string("")), (Bytes{0x0d, 0x00}));
  EXPECT_FALSE(aml::string(std::string("a\0b", 3)).is_ok());
  EXPECT_FALSE(aml::string("\x80").is_ok());

  EXPECT_EQ(ok(aml::package({})), (Bytes{0x12, 0x02, 0x00}));
  EXPECT_EQ(ok(aml::package({aml::integer(5), aml::integer(0)})), (Bytes{0x12, 0x05, 0x02, 0x0a, 0x05, 0x00}));
  EXPECT_TRUE(aml::package(std::vector<Bytes>(255, aml::integer(0))).is_ok());
  EXPECT_FALSE(aml::package(std::vector<Bytes>(256, aml::integer(0))).is_ok()) << "NumElements is a byte";

  EXPECT_EQ(ok(aml::buffer({})), (Bytes{0x11, 0x02, 0x00}));
  Bytes big = ok(aml::buffer(Bytes(300, 0x5a)));
  // BufferOp, PkgLength 305 (0x131, two bytes), BufferSize WordPrefix 300, then the data.
  ASSERT_EQ(big.size(), 1 + 2 + 3 + 300u);
  EXPECT_EQ(Bytes(big.begin(), big.begin() + 6), (Bytes{0x11, 0x41, 0x13, 0x0b, 0x2c, 0x01}));
}

TEST(AmlData, ScopesDevicesAndNames) {
  EXPECT_EQ(ok(aml::scope("\\_SB", {})), cat({{0x10, 0x06}, text("\\_SB_")}));
  EXPECT_EQ(ok(aml::device("VIO0", {})), cat({{0x5b, 0x82, 0x05}, text("VIO0")}));  // ExtOpPrefix DeviceOp
  EXPECT_EQ(ok(aml::name("_UID", aml::integer(3))), cat({{0x08}, text("_UID"), {0x0a, 0x03}}));
  EXPECT_FALSE(aml::device("toolong", {}).is_ok());
  // A device body long enough to need a two-byte PkgLength.
  Bytes body(100, 0xa3);
  Bytes dev = ok(aml::device("D", body));
  EXPECT_EQ(Bytes(dev.begin(), dev.begin() + 4), (Bytes{0x5b, 0x82, 0x4a, 0x06}));  // 2 + 4 + 100 = 106 = 0x6a
}

TEST(AmlResources, DescriptorsAsTheSpecLaysThemOut) {
  // Memory32Fixed: large item 0x06 (tag 0x86), length 9, _RW, base, length.
  EXPECT_EQ(aml::memory32_fixed(true, 0xd0000000, 0x1000),
            (Bytes{0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00}));
  EXPECT_EQ(aml::memory32_fixed(false, 0x12345678, 0x9abcdef0)[3], 0x00);
  // Extended Interrupt: large item 0x09 (tag 0x89), length 6, flags (consumer 1, edge 2, active-low 4, shared 8),
  // one interrupt, its number.
  EXPECT_EQ(aml::extended_interrupt(aml::Trigger::kEdge, aml::Polarity::kActiveHigh, aml::Sharing::kExclusive, 16),
            (Bytes{0x89, 0x06, 0x00, 0x03, 0x01, 0x10, 0x00, 0x00, 0x00}));
  EXPECT_EQ(aml::extended_interrupt(aml::Trigger::kLevel, aml::Polarity::kActiveLow, aml::Sharing::kShared, 9)[3],
            0x0d);
  // ResourceTemplate: a Buffer of the descriptors and the End Tag (0x79, checksum 0).
  EXPECT_EQ(ok(aml::resource_template({})), (Bytes{0x11, 0x05, 0x0a, 0x02, 0x79, 0x00}));
}

// ---------------------------------------------------------------------------------------------------------------
// The tables, found and read as Linux does

uint8_t sum(const TestMemory& m, uint64_t at, uint64_t n) {
  uint8_t s = 0;
  for (uint64_t i = 0; i < n; ++i) s = static_cast<uint8_t>(s + m.at<uint8_t>(at + i));
  return s;
}

std::string sig(const TestMemory& m, uint64_t at, size_t n = 4) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(m.at<uint8_t>(at + i));
  return s;
}

// ACPICA's acpi_find_root_pointer: the first KiB of the EBDA, then the BIOS area, on 16-byte boundaries, for
// "RSD PTR " whose 20-byte checksum (and for revision 2+, the 36-byte extended one) holds.
std::vector<uint64_t> scan_for_rsdp(const TestMemory& m) {
  std::vector<uint64_t> found;
  auto scan = [&](uint64_t from, uint64_t to) {
    for (uint64_t at = from; at + 36 <= to; at += 16) {
      if (sig(m, at, 8) != "RSD PTR " || sum(m, at, 20) != 0) continue;
      if (m.at<uint8_t>(at + 15) >= 2 && sum(m, at, m.at<uint32_t>(at + 20)) != 0) continue;
      found.push_back(at);
    }
  };
  const uint64_t ebda = uint64_t{m.at<uint16_t>(0x40e)} << 4;
  if (ebda >= 0x400) scan(ebda, ebda + 1024);
  scan(kBiosArea, kBiosAreaEnd);
  return found;
}

struct Table {
  uint64_t gpa = 0;
  uint32_t length = 0;
  uint8_t revision = 0;
};

// A table's header, checked: signature, a length that stays in the BIOS area, a zero checksum, the OEM fields.
void read_table(const TestMemory& m, uint64_t gpa, const std::string& signature, Table* out) {
  ASSERT_GE(gpa, kBiosArea) << signature;
  ASSERT_LT(gpa, kBiosAreaEnd) << signature;
  EXPECT_EQ(sig(m, gpa), signature);
  out->gpa = gpa;
  out->length = m.at<uint32_t>(gpa + 4);
  out->revision = m.at<uint8_t>(gpa + 8);
  ASSERT_GE(out->length, 36u) << signature;
  ASSERT_LE(gpa + out->length, kBiosAreaEnd) << signature << " runs past 1 MiB";
  EXPECT_EQ(sum(m, gpa, out->length), 0) << signature << " checksum";
  EXPECT_EQ(sig(m, gpa + 10, 6), "CKPTD ") << signature;
}

struct Tables {
  uint64_t rsdp = 0;
  Table xsdt, fadt, facs, dsdt, madt;
  std::vector<uint64_t> xsdt_entries;
};

// From the RSDP down, as Linux walks it; every pointer checked on the way.
void read_tables(const TestMemory& m, Tables* t) {
  std::vector<uint64_t> rsdps = scan_for_rsdp(m);
  ASSERT_EQ(rsdps.size(), 1u) << "one RSDP where Linux scans";
  t->rsdp = rsdps[0];
  EXPECT_EQ(t->rsdp % 16, 0u);
  EXPECT_EQ(m.at<uint8_t>(t->rsdp + 15), 2) << "RSDP revision 2: ACPI 2.0+, with an XSDT";
  EXPECT_EQ(m.at<uint32_t>(t->rsdp + 20), 36u) << "RSDP length";
  EXPECT_EQ(m.at<uint32_t>(t->rsdp + 16), 0u) << "no RSDT";
  ASSERT_NO_FATAL_FAILURE(read_table(m, m.at<uint64_t>(t->rsdp + 24), "XSDT", &t->xsdt));
  EXPECT_EQ(t->xsdt.revision, 1);
  ASSERT_EQ((t->xsdt.length - 36) % 8, 0u);
  for (uint64_t at = t->xsdt.gpa + 36; at < t->xsdt.gpa + t->xsdt.length; at += 8) {
    t->xsdt_entries.push_back(m.at<uint64_t>(at));
  }
  ASSERT_EQ(t->xsdt_entries.size(), 2u) << "the XSDT lists the FADT and the MADT";
  for (uint64_t e : t->xsdt_entries) {
    if (sig(m, e) == "FACP") {
      ASSERT_NO_FATAL_FAILURE(read_table(m, e, "FACP", &t->fadt));
    } else {
      ASSERT_NO_FATAL_FAILURE(read_table(m, e, "APIC", &t->madt));
    }
  }
  ASSERT_NE(t->fadt.gpa, 0u) << "no FADT in the XSDT";
  ASSERT_NE(t->madt.gpa, 0u) << "no MADT in the XSDT";
  const uint64_t f = t->fadt.gpa;
  // X_DSDT (140) and X_FIRMWARE_CTRL (132); DSDT (40) may say the same, FIRMWARE_CTRL (36) must then be zero.
  ASSERT_NO_FATAL_FAILURE(read_table(m, m.at<uint64_t>(f + 140), "DSDT", &t->dsdt));
  EXPECT_EQ(m.at<uint32_t>(f + 40), t->dsdt.gpa);
  EXPECT_EQ(m.at<uint32_t>(f + 36), 0u);
  t->facs.gpa = m.at<uint64_t>(f + 132);
  ASSERT_GE(t->facs.gpa, kBiosArea);
  ASSERT_LT(t->facs.gpa + 64, kBiosAreaEnd);
  EXPECT_EQ(sig(m, t->facs.gpa), "FACS");
  t->facs.length = m.at<uint32_t>(t->facs.gpa + 4);
  EXPECT_EQ(t->facs.length, 64u);
  EXPECT_EQ(t->facs.gpa % 64, 0u) << "the FACS is 64-byte aligned";
  EXPECT_GE(m.at<uint8_t>(t->facs.gpa + 32), 1) << "FACS version";
}

struct GasField {
  uint8_t space, bit_width, bit_offset, access;
  uint64_t address;
  bool operator==(const GasField&) const = default;
};
GasField gas(const TestMemory& m, uint64_t at) {
  return {m.at<uint8_t>(at), m.at<uint8_t>(at + 1), m.at<uint8_t>(at + 2), m.at<uint8_t>(at + 3),
          m.at<uint64_t>(at + 4)};
}

class AcpiTables : public ::testing::Test {
 protected:
  void write(unsigned vcpus, std::vector<VirtioMmioDevice> devices) {
    ASSERT_TRUE(mem_.ok());
    auto r = write_acpi_tables(mem_.span(), vcpus, devices);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(*r, kAcpiRsdpGpa);
    ASSERT_NO_FATAL_FAILURE(read_tables(mem_, &t_));
    EXPECT_EQ(t_.rsdp, *r) << "the address returned for boot_params is the one a scan finds";
  }
  TestMemory mem_{2 * kMiB};
  Tables t_;
};

TEST_F(AcpiTables, EveryTableHasItsSignatureLengthAndChecksumAndNoneOverlap) {
  ASSERT_NO_FATAL_FAILURE(write(2, {virtio_mmio_device(0), virtio_mmio_device(1)}));
  EXPECT_EQ(t_.fadt.length, 276u) << "the ACPI 6.0 FADT";
  EXPECT_EQ(t_.fadt.revision, 6);
  EXPECT_EQ(t_.madt.revision, 4);
  EXPECT_EQ(t_.dsdt.revision, 2) << "64-bit AML integers";
  std::vector<std::pair<uint64_t, uint64_t>> spans = {{t_.rsdp, 36},
                                                      {t_.xsdt.gpa, t_.xsdt.length},
                                                      {t_.fadt.gpa, t_.fadt.length},
                                                      {t_.facs.gpa, t_.facs.length},
                                                      {t_.madt.gpa, t_.madt.length},
                                                      {t_.dsdt.gpa, t_.dsdt.length}};
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) {
    EXPECT_LE(spans[i - 1].first + spans[i - 1].second, spans[i].first) << "tables overlap at " << spans[i].first;
  }
}

TEST_F(AcpiTables, TheFadtDescribesAFullPcPlatform) {
  ASSERT_NO_FATAL_FAILURE(write(1, {}));
  const uint64_t f = t_.fadt.gpa;
  const uint32_t flags = mem_.at<uint32_t>(f + 112);
  EXPECT_EQ(flags & (1u << 20), 0u) << "not HW_REDUCED_ACPI: Linux keeps the PIC and the PIT";
  EXPECT_NE(flags & (1u << 0), 0u) << "WBINVD";
  EXPECT_NE(flags & (1u << 4), 0u) << "PWR_BUTTON: no fixed power button";
  EXPECT_NE(flags & (1u << 5), 0u) << "SLP_BUTTON: no fixed sleep button";
  EXPECT_NE(flags & (1u << 10), 0u) << "RESET_REG_SUP";
  EXPECT_EQ(mem_.at<uint16_t>(f + 46), 9) << "SCI_INT";
  EXPECT_EQ(mem_.at<uint32_t>(f + 48), 0u) << "SMI_CMD 0: always in ACPI mode";
  EXPECT_EQ(mem_.at<uint32_t>(f + 56), 0x600u) << "PM1a_EVT_BLK";
  EXPECT_EQ(mem_.at<uint32_t>(f + 60), 0u) << "no PM1b_EVT_BLK";
  EXPECT_EQ(mem_.at<uint32_t>(f + 64), 0x604u) << "PM1a_CNT_BLK";
  EXPECT_EQ(mem_.at<uint32_t>(f + 68), 0u) << "no PM1b_CNT_BLK";
  EXPECT_EQ(mem_.at<uint32_t>(f + 76), 0u) << "no PM timer";
  EXPECT_EQ(mem_.at<uint8_t>(f + 88), 4) << "PM1_EVT_LEN";
  EXPECT_EQ(mem_.at<uint8_t>(f + 89), 2) << "PM1_CNT_LEN";
  EXPECT_EQ(mem_.at<uint8_t>(f + 91), 0) << "PM_TMR_LEN";
  EXPECT_EQ(mem_.at<uint8_t>(f + 92), 0) << "no GPE0 block";
  const uint16_t boot_arch = mem_.at<uint16_t>(f + 109);
  EXPECT_EQ(boot_arch & (1u << 1), 0u) << "no 8042: Linux must not probe a keyboard controller";
  EXPECT_EQ(gas(mem_, f + 116), (GasField{1, 8, 0, 1, 0xcf9})) << "RESET_REG: byte at I/O port 0xcf9";
  EXPECT_EQ(mem_.at<uint8_t>(f + 128), 0x06) << "RESET_VALUE";
  EXPECT_EQ(gas(mem_, f + 148), (GasField{1, 32, 0, 2, 0x600})) << "X_PM1a_EVT_BLK";
  EXPECT_EQ(gas(mem_, f + 172), (GasField{1, 16, 0, 2, 0x604})) << "X_PM1a_CNT_BLK";
  EXPECT_EQ(gas(mem_, f + 208).address, 0u) << "no X_PM_TMR_BLK";
  EXPECT_EQ(gas(mem_, f + 244).address, 0u) << "no SLEEP_CONTROL_REG (hardware-reduced only)";
}

// The MADT against the MP table: every vCPU (APIC id = index), the IOAPIC with id = vcpus at 0xfec00000 from GSI
// 0, NMI on LINT1 of every CPU, and an override only for the SCI (level, active high).
class AcpiMadt : public ::testing::TestWithParam<unsigned> {};

TEST_P(AcpiMadt, EveryCpuTheIoapicAndTheSciAsTheMpTableSaysThem) {
  const unsigned vcpus = GetParam();
  TestMemory mem(2 * kMiB);
  ASSERT_TRUE(write_acpi_tables(mem.span(), vcpus, {}).is_ok());
  Tables t;
  ASSERT_NO_FATAL_FAILURE(read_tables(mem, &t));
  const uint64_t m = t.madt.gpa;
  EXPECT_EQ(mem.at<uint32_t>(m + 36), 0xfee00000u) << "local APIC address";
  EXPECT_EQ(mem.at<uint32_t>(m + 40) & 1, 1u) << "PCAT_COMPAT: there are 8259s";
  std::vector<std::array<uint32_t, 3>> lapics;  // uid, apic id, flags
  std::vector<std::array<uint32_t, 3>> ioapics;  // id, address, gsi base
  std::map<uint8_t, std::pair<uint32_t, uint16_t>> overrides;  // irq -> gsi, flags
  std::vector<std::array<uint32_t, 3>> nmis;  // uid, flags, lint
  uint64_t at = m + 44;
  while (at < m + t.madt.length) {
    const uint8_t type = mem.at<uint8_t>(at), length = mem.at<uint8_t>(at + 1);
    ASSERT_GE(length, 2) << "entry at " << at;
    switch (type) {
      case 0:
        ASSERT_EQ(length, 8);
        lapics.push_back({mem.at<uint8_t>(at + 2), mem.at<uint8_t>(at + 3), mem.at<uint32_t>(at + 4)});
        break;
      case 1:
        ASSERT_EQ(length, 12);
        ioapics.push_back({mem.at<uint8_t>(at + 2), mem.at<uint32_t>(at + 4), mem.at<uint32_t>(at + 8)});
        break;
      case 2:
        ASSERT_EQ(length, 10);
        EXPECT_EQ(mem.at<uint8_t>(at + 2), 0) << "ISA bus";
        overrides[mem.at<uint8_t>(at + 3)] = {mem.at<uint32_t>(at + 4), mem.at<uint16_t>(at + 8)};
        break;
      case 4:
        ASSERT_EQ(length, 6);
        nmis.push_back({mem.at<uint8_t>(at + 2), mem.at<uint16_t>(at + 3), mem.at<uint8_t>(at + 5)});
        break;
      default: FAIL() << "unexpected MADT entry type " << int{type};
    }
    at += length;
  }
  EXPECT_EQ(at, m + t.madt.length) << "entries fill the table exactly";
  ASSERT_EQ(lapics.size(), vcpus);
  for (unsigned i = 0; i < vcpus; ++i) {
    EXPECT_EQ(lapics[i], (std::array<uint32_t, 3>{i, i, 1})) << "vCPU " << i << ": UID, APIC id, enabled";
  }
  ASSERT_EQ(ioapics.size(), 1u);
  EXPECT_EQ(ioapics[0], (std::array<uint32_t, 3>{vcpus, 0xfec00000u, 0})) << "IOAPIC id = vcpus, as the MP table";
  // IRQ 0 keeps GSI 0: KVM's default routing sends the PIT's GSI 0 to IOAPIC pin 0 (the MP table says the same);
  // a PC-style IRQ 0 -> GSI 2 override would point Linux's timer at a pin nothing raises.
  EXPECT_EQ(overrides.count(0), 0u);
  ASSERT_EQ(overrides.size(), 1u);
  EXPECT_EQ(overrides[9], (std::pair<uint32_t, uint16_t>{9, 0x000d})) << "SCI: GSI 9, active high (01), level (11)";
  ASSERT_EQ(nmis.size(), 1u);
  EXPECT_EQ(nmis[0], (std::array<uint32_t, 3>{0xff, 0, 1})) << "NMI on LINT1 of every processor";
}

INSTANTIATE_TEST_SUITE_P(Vcpus, AcpiMadt, ::testing::Values(1u, 2u, 32u));

// The DSDT's AML, byte for byte, for no devices and for two: what iasl assembles from the ASL in the comments
// (checked by the iasl test below as well).
const Bytes kDsdtHeaderlessNoDevices = {
    // Scope (\_SB) {}
    0x10, 0x06, '\\', '_', 'S', 'B', '_',
    // Name (\_S5, Package (4) {5, 5, Zero, Zero})
    0x08, '\\', '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00};

Bytes dsdt_device(char n, uint8_t uid_op, uint8_t window_byte, uint8_t gsi) {
  return {// Device (VIOn)
          0x5b, 0x82, 0x3a, 'V', 'I', 'O', static_cast<uint8_t>(n),
          // Name (_HID, "LNRO0005")
          0x08, '_', 'H', 'I', 'D', 0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0x00,
          // Name (_UID, n): ZeroOp or OneOp
          0x08, '_', 'U', 'I', 'D', uid_op,
          // Name (_CRS, ResourceTemplate () { ... }): Buffer, PkgLength 26, BufferSize 23
          0x08, '_', 'C', 'R', 'S', 0x11, 0x1a, 0x0a, 0x17,
          // Memory32Fixed (ReadWrite, 0xD000n000, 0x1000)
          0x86, 0x09, 0x00, 0x01, 0x00, window_byte, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00,
          // Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { gsi }
          0x89, 0x06, 0x00, 0x03, 0x01, gsi, 0x00, 0x00, 0x00,
          // End Tag
          0x79, 0x00};
}

Bytes dsdt_body(const TestMemory& m, const Table& dsdt) {
  Bytes b;
  for (uint64_t i = 36; i < dsdt.length; ++i) b.push_back(m.at<uint8_t>(dsdt.gpa + i));
  return b;
}

TEST_F(AcpiTables, DsdtGoldenBytesWithoutDevices) {
  ASSERT_NO_FATAL_FAILURE(write(1, {}));
  EXPECT_EQ(dsdt_body(mem_, t_.dsdt), kDsdtHeaderlessNoDevices);
}

TEST_F(AcpiTables, DsdtGoldenBytesWithTwoDevices) {
  ASSERT_NO_FATAL_FAILURE(write(1, {virtio_mmio_device(0), virtio_mmio_device(1)}));
  Bytes devices = dsdt_device('0', 0x00, 0x00, 16);
  Bytes second = dsdt_device('1', 0x01, 0x10, 17);
  devices.insert(devices.end(), second.begin(), second.end());
  // Scope (\_SB) { two devices }: a body of 5 + 2 * 60 = 125 bytes needs a two-byte PkgLength: 127, 0x4f 0x07.
  Bytes want = {0x10, 0x4f, 0x07, '\\', '_', 'S', 'B', '_'};
  want.insert(want.end(), devices.begin(), devices.end());
  want.insert(want.end(), kDsdtHeaderlessNoDevices.begin() + 7, kDsdtHeaderlessNoDevices.end());
  EXPECT_EQ(dsdt_body(mem_, t_.dsdt), want);
}

TEST_F(AcpiTables, EightDevicesFillTheAreaAndTheirPins) {
  std::vector<VirtioMmioDevice> all;
  for (unsigned i = 0; i < kMaxVirtioMmioDevices; ++i) all.push_back(virtio_mmio_device(i));
  ASSERT_NO_FATAL_FAILURE(write(32, all));
  EXPECT_EQ(virtio_mmio_window(0), 0xd0000000u);
  EXPECT_EQ(virtio_mmio_window(7), 0xd0007000u);
  EXPECT_EQ(virtio_mmio_gsi(0), 16u);
  EXPECT_EQ(virtio_mmio_gsi(7), 23u) << "the IOAPIC's last pin";
  const std::string body(reinterpret_cast<const char*>(mem_.span().data() + t_.dsdt.gpa), t_.dsdt.length);
  for (unsigned i = 0; i < kMaxVirtioMmioDevices; ++i) {
    EXPECT_NE(body.find("VIO" + std::to_string(i)), std::string::npos) << i;
  }
}

TEST_F(AcpiTables, StaleBytesInTheBiosAreaAreCleared) {
  std::fill(mem_.span().begin() + kBiosArea, mem_.span().begin() + kBiosAreaEnd, 0xaa);
  // A stale RSDP where a scan would find it first, were it kept.
  std::memcpy(mem_.span().data() + 0xfff00, "RSD PTR ", 8);
  ASSERT_NO_FATAL_FAILURE(write(1, {}));
  uint64_t end = 0;
  for (const Table* t : {&t_.xsdt, &t_.fadt, &t_.facs, &t_.madt, &t_.dsdt}) end = std::max(end, t->gpa + t->length);
  for (uint64_t at = end; at < kBiosAreaEnd; ++at) ASSERT_EQ(mem_.at<uint8_t>(at), 0) << "at " << at;
}

TEST(AcpiRefusals, BadVcpuCountsMemoryAndDeviceLists) {
  TestMemory mem(2 * kMiB);
  auto expect_refused = [&](unsigned vcpus, std::vector<VirtioMmioDevice> devices, const std::string& part) {
    auto r = write_acpi_tables(mem.span(), vcpus, devices);
    ASSERT_FALSE(r.is_ok()) << part;
    EXPECT_NE(r.status().message().find(part), std::string::npos) << r.status().to_string();
  };
  expect_refused(0, {}, "vCPU count 0");
  expect_refused(33, {}, "vCPU count 33");
  EXPECT_FALSE(write_acpi_tables(mem.span().first(kBiosAreaEnd - 1), 1, {}).is_ok());
  std::vector<VirtioMmioDevice> nine;
  for (unsigned i = 0; i < 9; ++i) nine.push_back({virtio_mmio_window(0) + i * 0x200, 0x200, 16 + i % 8});
  expect_refused(1, nine, "9 virtio-mmio devices");
  expect_refused(1, {{0xc0000000, 0x1000, 16}}, "virtio-mmio device 0: window [0xc0000000");
  expect_refused(1, {{virtio_mmio_window(7), 0x2000, 16}}, "not inside the virtio-mmio area");
  expect_refused(1, {{virtio_mmio_window(0), 0, 16}}, "is empty");
  expect_refused(1, {{virtio_mmio_window(0), 0x1000, 15}}, "GSI 15");
  expect_refused(1, {{virtio_mmio_window(0), 0x1000, 24}}, "GSI 24");
  expect_refused(1, {virtio_mmio_device(0), {virtio_mmio_window(0) + 0x800, 0x1000, 17}},
                 "virtio-mmio device 1: window at 0xd0000800 overlaps device 0");
  expect_refused(1, {virtio_mmio_device(0), {virtio_mmio_window(1), 0x1000, 16}}, "GSI 16 is device 0's too");
  // The layout's own numbering always passes.
  std::vector<VirtioMmioDevice> all;
  for (unsigned i = 0; i < kMaxVirtioMmioDevices; ++i) all.push_back(virtio_mmio_device(i));
  EXPECT_TRUE(check_virtio_mmio_devices(all).is_ok());
}

// ---------------------------------------------------------------------------------------------------------------
// load_linux writes them, next to the MP table, and tells the kernel where the RSDP is

// Just enough bzImage for the loader (protocol 2.15, 64-bit entry, relocatable, 16 MiB preferred address).
std::vector<uint8_t> tiny_bzimage() {
  std::vector<uint8_t> b(5 * 512 + 4096, 0x90);
  auto put16 = [&](uint64_t at, uint16_t v) { std::memcpy(b.data() + at, &v, 2); };
  auto put32 = [&](uint64_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); };
  b[0x1f1] = 4;
  put32(0x1f4, 4096 / 16);
  put16(0x1fe, 0xaa55);
  b[0x200] = 0xeb;
  b[0x201] = 0x6a;
  std::memcpy(b.data() + 0x202, "HdrS", 4);
  put16(0x206, 0x020f);
  b[0x211] = 0x01;
  put32(0x22c, 0x7fffffff);
  put32(0x230, 0x200000);
  b[0x234] = 1;
  put16(0x236, 0x3);
  put32(0x238, 2047);
  uint64_t pref = 0x1000000;
  std::memcpy(b.data() + 0x258, &pref, 8);
  put32(0x260, 4 * kMiB);
  return b;
}

TEST(AcpiLoader, LoadLinuxWritesTheTablesKeepsTheMpTableAndPassesTheRsdp) {
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string kernel = dir.write("bzImage", tiny_bzimage());
  TestMemory mem(64 * kMiB);
  const std::vector<VirtioMmioDevice> devices = {virtio_mmio_device(0), virtio_mmio_device(1), virtio_mmio_device(2)};
  auto r = load_linux({kernel, "", ""}, mem.span(), 3, devices);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  Tables t;
  ASSERT_NO_FATAL_FAILURE(read_tables(mem, &t));
  EXPECT_EQ(mem.at<uint64_t>(0x10000 + 0x070), t.rsdp) << "boot_params.acpi_rsdp_addr (zero page offset 0x070)";
  const std::string dsdt(reinterpret_cast<const char*>(mem.span().data() + t.dsdt.gpa), t.dsdt.length);
  EXPECT_NE(dsdt.find("VIO2"), std::string::npos);
  EXPECT_EQ(dsdt.find("VIO3"), std::string::npos);
  // The MP table is still there for acpi=off: the EBDA points at "_MP_", and the BIOS area scan finds only the RSDP.
  const uint64_t ebda = uint64_t{mem.at<uint16_t>(0x40e)} << 4;
  EXPECT_EQ(sig(mem, ebda), "_MP_");
  // Both in the range the e820 map reserves.
  const uint8_t e820_entries = mem.at<uint8_t>(0x10000 + 0x1e8);
  bool reserved = false;
  for (uint8_t i = 0; i < e820_entries; ++i) {
    const uint64_t at = 0x10000 + 0x2d0 + 20ull * i;
    const uint64_t addr = mem.at<uint64_t>(at), size = mem.at<uint64_t>(at + 8);
    if (mem.at<uint32_t>(at + 16) == 2 && addr <= ebda && addr + size >= kBiosAreaEnd) reserved = true;
  }
  EXPECT_TRUE(reserved) << "the EBDA and the BIOS area are e820-reserved";

  // With no device list: the tables are still written, with an empty \_SB.
  TestMemory plain(64 * kMiB);
  ASSERT_TRUE(load_linux({kernel, "", ""}, plain.span(), 1).is_ok());
  Tables p;
  ASSERT_NO_FATAL_FAILURE(read_tables(plain, &p));
  EXPECT_EQ(dsdt_body(plain, p.dsdt), kDsdtHeaderlessNoDevices);

  // A bad list is refused before anything is loaded.
  TestMemory refused(64 * kMiB);
  const std::vector<VirtioMmioDevice> bad = {{virtio_mmio_window(0), 0x1000, 3}};
  auto e = load_linux({kernel, "", ""}, refused.span(), 1, bad);
  ASSERT_FALSE(e.is_ok());
  EXPECT_NE(e.status().message().find("GSI 3"), std::string::npos) << e.status().to_string();
  EXPECT_EQ(refused.at<uint64_t>(0x1000000), 0u) << "no kernel written";
}

// ---------------------------------------------------------------------------------------------------------------
// ACPICA's iasl: disassembles every table (running the same table checks as Linux's ACPICA, e.g. the FADT's) without
// a warning, and its disassembly assembles back into our bytes.
//
// No skip when iasl is missing: scripts/install-deps.sh installs it (acpica-tools), and `make test` runs that first,
// so a missing iasl is a setup that skipped it; skipping would quietly drop the one independent check of the tables.

std::string find_in_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::string rest = path ? path : "";
  while (!rest.empty()) {
    const size_t colon = rest.find(':');
    const std::string dir = rest.substr(0, colon);
    rest = colon == std::string::npos ? "" : rest.substr(colon + 1);
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

struct ToolRun {
  int exit_code = -1;
  std::string output;
};
// Runs `command` in `dir` through the shell (every argument here is a fixed word or a file name we chose), stdout and
// stderr together.
ToolRun run_in(const std::string& dir, const std::string& command) {
  ToolRun r;
  FILE* p = ::popen(("cd '" + dir + "' && " + command + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}
std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
// `what`, then within `window` characters each of `then`, in order.
bool has_sequence(const std::string& s, const std::string& what, std::initializer_list<std::string> then,
                  size_t window = 120) {
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) {
    size_t from = at + what.size();
    bool all = true;
    for (const std::string& t : then) {
      const size_t next = s.find(t, from);
      if (next == std::string::npos || next - from > window) {
        all = false;
        break;
      }
      from = next + t.size();
    }
    if (all) return true;
  }
  return false;
}

TEST(AcpiIasl, DisassemblesEveryTableWithoutComplaintAndReassemblesTheSameBytes) {
  const std::string iasl = find_in_path("iasl");
  ASSERT_FALSE(iasl.empty()) << "iasl is not installed (Debian package acpica-tools): run scripts/install-deps.sh. "
                                "This test checks the ACPI tables with ACPICA's disassembler and does not skip.";
  TestMemory mem(2 * kMiB);
  ASSERT_TRUE(write_acpi_tables(mem.span(), 2, std::vector<VirtioMmioDevice>{virtio_mmio_device(0),
                                                                           virtio_mmio_device(1)})
                  .is_ok());
  Tables t;
  ASSERT_NO_FATAL_FAILURE(read_tables(mem, &t));
  ScratchDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::map<std::string, const Table*> tables = {
      {"facp", &t.fadt}, {"apic", &t.madt}, {"xsdt", &t.xsdt}, {"facs", &t.facs}, {"dsdt", &t.dsdt}};
  for (const auto& [name, table] : tables) {
    SCOPED_TRACE(name);
    const uint8_t* p = mem.span().data() + table->gpa;
    const Bytes ours(p, p + table->length);
    dir.write(name + ".dat", ours);
    ToolRun d = run_in(dir.path(), "'" + iasl + "' -d " + name + ".dat");
    EXPECT_EQ(d.exit_code, 0) << d.output;
    for (const char* complaint : {"warning", "error", "incorrect", "invalid", "remark"}) {
      EXPECT_EQ(lower(d.output).find(complaint), std::string::npos) << "iasl -d says:\n" << d.output;
    }
    const std::string dsl = read_text(dir.path() + "/" + name + ".dsl");
    ASSERT_FALSE(dsl.empty()) << d.output;
    EXPECT_EQ(lower(dsl).find("incorrect"), std::string::npos) << dsl;

    // Back to binary: a DSDT with optimizations off (iasl would shorten "\_SB" to "_SB_" at the root otherwise);
    // data tables as they are. iasl writes its own compiler id and checksum into the header; the rest must match.
    ToolRun a = run_in(dir.path(), "'" + iasl + "' " + (name == "dsdt" ? "-oa " : "") + "-p re_" + name + " " + name +
                                   ".dsl");
    EXPECT_EQ(a.exit_code, 0) << a.output;
    EXPECT_NE(a.output.find("0 Errors, 0 Warnings, 0 Remarks"), std::string::npos) << a.output;
    std::string re = read_text(dir.path() + "/re_" + name + ".aml");
    Bytes again(re.begin(), re.end());
    ASSERT_EQ(again.size(), ours.size()) << a.output;
    for (size_t i = 0; i < ours.size(); ++i) {
      const bool iasl_owned = name != "facs" && (i == 9 || (i >= 28 && i < 36));  // checksum, compiler id/revision
      if (!iasl_owned) {
        EXPECT_EQ(again[i], ours[i]) << "byte " << i;
      }
    }
    if (name == "dsdt") {
      EXPECT_TRUE(has_sequence(dsl, "Device (VIO0)", {"Name (_HID, \"LNRO0005\")", "Name (_UID, Zero)"})) << dsl;
      EXPECT_TRUE(has_sequence(dsl, "Memory32Fixed (ReadWrite,", {"0xD0000000", "0x00001000"})) << dsl;
      EXPECT_TRUE(has_sequence(dsl, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive", {"0x00000010"}))
          << dsl;
      EXPECT_TRUE(has_sequence(dsl, "Device (VIO1)", {"\"LNRO0005\"", "One", "0xD0001000", "0x00000011"}, 400))
          << dsl;
      EXPECT_TRUE(has_sequence(dsl, "Name (\\_S5, Package (0x04)", {"0x05", "0x05", "Zero", "Zero"})) << dsl;
    }
  }
}

}  // namespace
}  // namespace ckpt::vmm::x86
