#include "vmm/x86/acpi.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "vmm/x86/acpi_hw.h"
#include "vmm/x86/aml.h"
#include "vmm/x86/boot_params.h"
#include "vmm/x86/mptable.h"
#include "vmm/x86/text.h"

namespace ckpt::vmm::x86 {
namespace {

using aml::Bytes;

// Every table's header (5.2.6): signature, length, revision, checksum, OEM id and table id, OEM revision, creator.
constexpr uint64_t kHeaderBytes = 36;
constexpr uint64_t kLengthOffset = 4, kChecksumOffset = 9;
constexpr char kOemId[7] = "CKPTD ";
constexpr char kOemTableId[9] = "CKPTDKVM";
constexpr char kCreatorId[5] = "CKPT";
constexpr uint32_t kOemRevision = 1, kCreatorRevision = 1;

// Revisions of ACPI 6.0 (its FADT is 276 bytes, the size Linux's ACPICA knows), plus what the DSDT says about its
// integers: revision 2 makes them 64-bit.
constexpr uint8_t kRsdpRevision = 2;  // ACPI 2.0+: an XSDT
constexpr uint8_t kXsdtRevision = 1;
constexpr uint8_t kFadtRevision = 6, kFadtMinorRevision = 0;
constexpr uint8_t kMadtRevision = 4;
constexpr uint8_t kDsdtRevision = 2;
constexpr uint8_t kFacsVersion = 2;

constexpr uint64_t kRsdpBytes = 36;
constexpr uint64_t kRsdpChecksumBytes = 20;  // the ACPI 1.0 part the first checksum covers
constexpr uint64_t kFacsBytes = 64;
constexpr uint64_t kFadtBytes = 276;

// FADT field offsets (5.2.9, table 5.9).
enum : uint64_t {
  kFadtFirmwareCtrl = 36, kFadtDsdt = 40, kFadtPreferredPmProfile = 45, kFadtSciInt = 46, kFadtSmiCmd = 48,
  kFadtPm1aEvtBlk = 56, kFadtPm1aCntBlk = 64, kFadtPm1EvtLen = 88, kFadtPm1CntLen = 89, kFadtPLvl2Lat = 96,
  kFadtPLvl3Lat = 98, kFadtIapcBootArch = 109, kFadtFlags = 112, kFadtResetReg = 116, kFadtResetValue = 128,
  kFadtMinorVersion = 131, kFadtXFirmwareCtrl = 132, kFadtXDsdt = 140, kFadtXPm1aEvtBlk = 148,
  kFadtXPm1aCntBlk = 172,
};
// FADT flags (table 5.10).
constexpr uint32_t kFlagWbinvd = 1u << 0;      // WBINVD works: ACPI 2.0+ requires it
constexpr uint32_t kFlagProcC1 = 1u << 2;      // C1 (hlt) on every CPU
constexpr uint32_t kFlagPwrButton = 1u << 4;   // no fixed-feature power button
constexpr uint32_t kFlagSlpButton = 1u << 5;   // no fixed-feature sleep button
constexpr uint32_t kFlagFixRtc = 1u << 6;      // no RTC_STS in PM1: the RTC cannot wake the guest
constexpr uint32_t kFlagResetRegSup = 1u << 10;
// IAPC_BOOT_ARCH (table 5.11): legacy ISA devices (COM1, PIT, PIC, CMOS) are there, no VGA. Not the 8042 flag:
// there is no keyboard controller (only its reset command on port 0x64), so Linux does not probe for one.
constexpr uint16_t kBootArchLegacyDevices = 1u << 0;
constexpr uint16_t kBootArchVgaNotPresent = 1u << 2;
// C2 and C3 latencies over 100 and 1000 microseconds mean "not supported".
constexpr uint16_t kNoC2Latency = 101, kNoC3Latency = 1001;

// Generic Address Structure (5.2.3.2).
constexpr uint8_t kSystemIo = 1;
enum : uint8_t { kAccessByte = 1, kAccessWord = 2 };

// MADT (5.2.12).
constexpr uint32_t kPcatCompat = 1u << 0;  // there are 8259 PICs too: Linux masks them when it uses the IOAPIC
enum : uint8_t { kMadtLapic = 0, kMadtIoapic = 1, kMadtIso = 2, kMadtLapicNmi = 4 };
constexpr uint32_t kLapicEnabled = 1u << 0;
constexpr uint8_t kIsaBus = 0;
constexpr uint8_t kAllProcessors = 0xff;
// MPS INTI flags: polarity in bits 1..0 (01 active high), trigger mode in bits 3..2 (11 level).
constexpr uint16_t kIntiActiveHigh = 0x1, kIntiLevel = 0xc, kIntiConforms = 0;
constexpr uint64_t kMadtBodyBytes = 8;  // local APIC address and flags
constexpr uint64_t madt_bytes(unsigned vcpus) { return kHeaderBytes + kMadtBodyBytes + 8 * vcpus + 12 + 10 + 6; }

static_assert(kAcpiRsdpGpa + kRsdpBytes <= kAcpiFacsGpa);
static_assert(kAcpiFacsGpa + kFacsBytes <= kAcpiXsdtGpa);
static_assert(kAcpiXsdtGpa + kHeaderBytes + 2 * 8 <= kAcpiFadtGpa);
static_assert(kAcpiFadtGpa + kFadtBytes <= kAcpiMadtGpa);
static_assert(kAcpiMadtGpa + madt_bytes(kMaxMpVcpus) <= kAcpiDsdtGpa, "the MADT for the most vCPUs fits its slot");
static_assert(kIoapicAddress == kIoapicGpa, "mptable.h and layout.h agree on the IOAPIC");
static_assert(acpi_hw::kSciIrq < kIsaIrqs);

template <typename T>
void put(Bytes& out, T value) {
  for (size_t i = 0; i < sizeof value; ++i) out.push_back(static_cast<uint8_t>(uint64_t{value} >> (8 * i)));
}
void store_text(Bytes& out, uint64_t offset, const char* text, size_t n) { std::memcpy(out.data() + offset, text, n); }

// The byte that makes [p, p + n) sum to zero modulo 256 once stored in it (the slot must still be zero).
uint8_t checksum(const uint8_t* p, uint64_t n) {
  uint8_t sum = 0;
  for (uint64_t i = 0; i < n; ++i) sum = static_cast<uint8_t>(sum + p[i]);
  return static_cast<uint8_t>(-sum);
}

// Length and checksum stay zero until finish().
Bytes header(const char (&signature)[5], uint8_t revision) {
  Bytes t(kHeaderBytes, 0);
  store_text(t, 0, signature, 4);
  t[8] = revision;
  store_text(t, 10, kOemId, 6);
  store_text(t, 16, kOemTableId, 8);
  bp::store(std::span<uint8_t>(t), 24, kOemRevision);
  store_text(t, 28, kCreatorId, 4);
  bp::store(std::span<uint8_t>(t), 32, kCreatorRevision);
  return t;
}

// Fills in the header's length and checksum once the table is complete.
void finish(Bytes& t) {
  bp::store(std::span<uint8_t>(t), kLengthOffset, static_cast<uint32_t>(t.size()));
  t[kChecksumOffset] = 0;
  t[kChecksumOffset] = checksum(t.data(), t.size());
}

void store_gas(Bytes& t, uint64_t offset, uint8_t bit_width, uint8_t access_size, uint64_t address) {
  std::span<uint8_t> s(t);
  s[offset] = kSystemIo;
  s[offset + 1] = bit_width;
  s[offset + 2] = 0;  // bit offset
  s[offset + 3] = access_size;
  bp::store(s, offset + 4, address);
}

// No hardware signature, waking vectors, global lock owner or flags: there is no S4BIOS and no sleeping state to
// wake from. No checksum either: the FACS has none.
Bytes build_facs() {
  Bytes t(kFacsBytes, 0);
  store_text(t, 0, "FACS", 4);
  bp::store(std::span<uint8_t>(t), 4, static_cast<uint32_t>(kFacsBytes));
  t[32] = kFacsVersion;
  return t;
}

Bytes build_fadt() {
  Bytes t = header("FACP", kFadtRevision);
  t.resize(kFadtBytes, 0);
  std::span<uint8_t> s(t);
  // The FACS only through X_FIRMWARE_CTRL: the spec wants one of the two fields zero. The DSDT through both, which
  // the spec allows (X_DSDT wins).
  bp::store(s, kFadtFirmwareCtrl, uint32_t{0});
  bp::store(s, kFadtDsdt, static_cast<uint32_t>(kAcpiDsdtGpa));
  bp::store(s, kFadtXFirmwareCtrl, kAcpiFacsGpa);
  bp::store(s, kFadtXDsdt, kAcpiDsdtGpa);
  s[kFadtPreferredPmProfile] = 0;  // unspecified
  bp::store(s, kFadtSciInt, uint16_t{acpi_hw::kSciIrq});
  // SMI_CMD 0: no SMI port, the platform is always in ACPI mode (SCI_EN reads 1), so ACPI_ENABLE/DISABLE are 0.
  bp::store(s, kFadtSmiCmd, uint32_t{0});
  bp::store(s, kFadtPm1aEvtBlk, uint32_t{acpi_hw::kPm1EventPort});
  bp::store(s, kFadtPm1aCntBlk, uint32_t{acpi_hw::kPm1ControlPort});
  s[kFadtPm1EvtLen] = acpi_hw::kPm1EventBytes;
  s[kFadtPm1CntLen] = acpi_hw::kPm1ControlBytes;
  // No PM timer (PM_TMR_BLK 0, length 0): the guest has kvm-clock and the TSC. No GPE blocks.
  bp::store(s, kFadtPLvl2Lat, kNoC2Latency);
  bp::store(s, kFadtPLvl3Lat, kNoC3Latency);
  bp::store(s, kFadtIapcBootArch, static_cast<uint16_t>(kBootArchLegacyDevices | kBootArchVgaNotPresent));
  bp::store(s, kFadtFlags,
            kFlagWbinvd | kFlagProcC1 | kFlagPwrButton | kFlagSlpButton | kFlagFixRtc | kFlagResetRegSup);
  store_gas(t, kFadtResetReg, 8, kAccessByte, acpi_hw::kResetPort);
  s[kFadtResetValue] = acpi_hw::kResetValue;
  s[kFadtMinorVersion] = kFadtMinorRevision;
  // The same blocks in the 64-bit form ACPI 2.0+ readers use; PM1 registers are 16 bits wide, read as words.
  store_gas(t, kFadtXPm1aEvtBlk, 8 * acpi_hw::kPm1EventBytes, kAccessWord, acpi_hw::kPm1EventPort);
  store_gas(t, kFadtXPm1aCntBlk, 8 * acpi_hw::kPm1ControlBytes, kAccessWord, acpi_hw::kPm1ControlPort);
  finish(t);
  return t;
}

void interrupt_override(Bytes& t, uint8_t irq, uint32_t gsi, uint16_t flags) {
  put(t, kMadtIso);
  put(t, uint8_t{10});
  put(t, kIsaBus);
  put(t, irq);
  put(t, gsi);
  put(t, flags);
}

// The MP table's picture in ACPI's words (mptable.h): vCPU i has APIC id i, the IOAPIC has id `vcpus` and GSIs
// from 0, NMI arrives on LINT1. ISA IRQs map to the GSI of the same number, as KVM's default routing wires them
// (GSI n is IOAPIC pin n): Linux assumes that for every IRQ without an override, so there is none for IRQ 0. (PCs
// and QEMU have IRQ 0 -> GSI 2, but QEMU reprograms KVM's routing to match; ckptd keeps KVM's, where the PIT
// raises GSI 0.) The SCI gets one to say level, active high: without it Linux assumes an SCI is active low.
Bytes build_madt(unsigned vcpus) {
  Bytes t = header("APIC", kMadtRevision);
  put(t, kLapicAddress);
  put(t, kPcatCompat);
  for (unsigned i = 0; i < vcpus; ++i) {
    put(t, kMadtLapic);
    put(t, uint8_t{8});
    put(t, static_cast<uint8_t>(i));  // ACPI processor UID
    put(t, static_cast<uint8_t>(i));  // APIC id
    put(t, kLapicEnabled);
  }
  put(t, kMadtIoapic);
  put(t, uint8_t{12});
  put(t, static_cast<uint8_t>(vcpus));
  put(t, uint8_t{0});
  put(t, kIoapicAddress);
  put(t, uint32_t{0});  // GSI base
  interrupt_override(t, acpi_hw::kSciIrq, acpi_hw::kSciIrq, kIntiActiveHigh | kIntiLevel);
  put(t, kMadtLapicNmi);
  put(t, uint8_t{6});
  put(t, kAllProcessors);
  put(t, kIntiConforms);
  put(t, uint8_t{1});  // LINT1
  finish(t);
  return t;
}

// Device (VIO<i>) for one virtio-mmio window. Linux's virtio_mmio driver matches _HID LNRO0005 and takes the first
// memory resource and the first interrupt of _CRS; _UID tells devices with the same _HID apart.
Result<Bytes> virtio_mmio_aml(size_t i, const VirtioMmioDevice& d) {
  CKPT_ASSIGN_OR_RETURN(Bytes hid_string, aml::string("LNRO0005"));
  CKPT_ASSIGN_OR_RETURN(Bytes body, aml::name("_HID", hid_string));
  CKPT_ASSIGN_OR_RETURN(Bytes uid, aml::name("_UID", aml::integer(i)));
  aml::append(body, uid);
  const Bytes window = aml::memory32_fixed(true, static_cast<uint32_t>(d.base), static_cast<uint32_t>(d.bytes));
  const Bytes interrupt =
      aml::extended_interrupt(aml::Trigger::kEdge, aml::Polarity::kActiveHigh, aml::Sharing::kExclusive, d.gsi);
  CKPT_ASSIGN_OR_RETURN(Bytes resources, aml::resource_template({window, interrupt}));
  CKPT_ASSIGN_OR_RETURN(Bytes crs, aml::name("_CRS", resources));
  aml::append(body, crs);
  return aml::device("VIO" + std::to_string(i), body);
}

// Scope (\_SB) with a device per virtio-mmio window, then \_S5, the one sleeping state: soft off.
Result<Bytes> dsdt_body(std::span<const VirtioMmioDevice> devices) {
  Bytes devices_aml;
  for (size_t i = 0; i < devices.size(); ++i) {
    CKPT_ASSIGN_OR_RETURN(Bytes dev, virtio_mmio_aml(i, devices[i]));
    aml::append(devices_aml, dev);
  }
  CKPT_ASSIGN_OR_RETURN(Bytes body, aml::scope("\\_SB", devices_aml));
  // \_S5: SLP_TYP for PM1a_CNT, for PM1b_CNT (there is none), and two reserved values.
  CKPT_ASSIGN_OR_RETURN(Bytes s5_package, aml::package({aml::integer(acpi_hw::kS5SleepType),
                                                         aml::integer(acpi_hw::kS5SleepType), aml::integer(0),
                                                         aml::integer(0)}));
  CKPT_ASSIGN_OR_RETURN(Bytes s5, aml::name("\\_S5", s5_package));
  aml::append(body, s5);
  return body;
}

Bytes build_xsdt(std::initializer_list<uint64_t> tables) {
  Bytes t = header("XSDT", kXsdtRevision);
  for (uint64_t gpa : tables) put(t, gpa);
  finish(t);
  return t;
}

// RSDP (5.2.5.3): signature, checksum of the first 20 bytes, OEM id, revision, RSDT address, length, XSDT address,
// extended checksum of all 36 bytes, 3 reserved. No RSDT: ACPI 2.0+ readers, Linux among them, take the XSDT.
Bytes build_rsdp() {
  Bytes r(kRsdpBytes, 0);
  std::span<uint8_t> s(r);
  store_text(r, 0, "RSD PTR ", 8);
  store_text(r, 9, kOemId, 6);
  s[15] = kRsdpRevision;
  bp::store(s, 16, uint32_t{0});
  bp::store(s, 20, static_cast<uint32_t>(kRsdpBytes));
  bp::store(s, 24, kAcpiXsdtGpa);
  s[8] = checksum(r.data(), kRsdpChecksumBytes);
  s[32] = checksum(r.data(), kRsdpBytes);
  return r;
}

Status place(std::span<uint8_t> memory, const char* what, const Bytes& table, uint64_t gpa, uint64_t end) {
  if (table.size() > end - gpa) {
    return invalid_argument(std::string("ACPI ") + what + " of " + std::to_string(table.size()) +
                            " bytes does not fit the " + std::to_string(end - gpa) + " bytes from " + hex(gpa));
  }
  std::copy(table.begin(), table.end(), memory.begin() + static_cast<ptrdiff_t>(gpa));
  return Status::ok();
}

}  // namespace

Status check_virtio_mmio_devices(std::span<const VirtioMmioDevice> devices) {
  if (devices.size() > kMaxVirtioMmioDevices) {
    return invalid_argument(std::to_string(devices.size()) + " virtio-mmio devices: at most " +
                            std::to_string(kMaxVirtioMmioDevices));
  }
  for (size_t i = 0; i < devices.size(); ++i) {
    const VirtioMmioDevice& d = devices[i];
    const std::string which = "virtio-mmio device " + std::to_string(i);
    if (d.bytes == 0 || d.base < kVirtioMmioGpa || d.base > kVirtioMmioEndGpa ||
        d.bytes > kVirtioMmioEndGpa - d.base) {
      return invalid_argument(which + ": window [" + hex(d.base) + ", +" + hex(d.bytes) +
                              ") is empty or not inside the virtio-mmio area [" + hex(kVirtioMmioGpa) + ", " +
                              hex(kVirtioMmioEndGpa) + ")");
    }
    if (d.gsi < kVirtioMmioFirstGsi || d.gsi >= kIoapicPins) {
      return invalid_argument(which + ": GSI " + std::to_string(d.gsi) + " is not an IOAPIC pin in " +
                              std::to_string(kVirtioMmioFirstGsi) + ".." + std::to_string(kIoapicPins - 1));
    }
    for (size_t j = 0; j < i; ++j) {
      const VirtioMmioDevice& e = devices[j];
      if (d.base < e.base + e.bytes && e.base < d.base + d.bytes) {
        return invalid_argument(which + ": window at " + hex(d.base) + " overlaps device " + std::to_string(j) +
                                "'s at " + hex(e.base));
      }
      if (d.gsi == e.gsi) {
        return invalid_argument(which + ": GSI " + std::to_string(d.gsi) + " is device " + std::to_string(j) +
                                "'s too (the interrupts are exclusive)");
      }
    }
  }
  return Status::ok();
}

Result<uint64_t> write_acpi_tables(std::span<uint8_t> memory, unsigned vcpus,
                                   std::span<const VirtioMmioDevice> devices) {
  if (vcpus == 0 || vcpus > kMaxMpVcpus) {
    return invalid_argument("ACPI tables: vCPU count " + std::to_string(vcpus) + " out of range 1.." +
                            std::to_string(kMaxMpVcpus));
  }
  if (memory.size() < kAcpiEndGpa) {
    return invalid_argument("ACPI tables: guest memory of " + std::to_string(memory.size()) +
                            " bytes does not reach " + hex(kAcpiEndGpa));
  }
  CKPT_RETURN_IF_ERROR(check_virtio_mmio_devices(devices));
  CKPT_ASSIGN_OR_RETURN(Bytes body, dsdt_body(devices));
  Bytes dsdt = header("DSDT", kDsdtRevision);
  aml::append(dsdt, body);
  finish(dsdt);

  std::fill(memory.begin() + kAcpiRsdpGpa, memory.begin() + kAcpiEndGpa, 0);
  CKPT_RETURN_IF_ERROR(place(memory, "RSDP", build_rsdp(), kAcpiRsdpGpa, kAcpiFacsGpa));
  CKPT_RETURN_IF_ERROR(place(memory, "FACS", build_facs(), kAcpiFacsGpa, kAcpiXsdtGpa));
  CKPT_RETURN_IF_ERROR(place(memory, "XSDT", build_xsdt({kAcpiFadtGpa, kAcpiMadtGpa}), kAcpiXsdtGpa, kAcpiFadtGpa));
  CKPT_RETURN_IF_ERROR(place(memory, "FADT", build_fadt(), kAcpiFadtGpa, kAcpiMadtGpa));
  CKPT_RETURN_IF_ERROR(place(memory, "MADT", build_madt(vcpus), kAcpiMadtGpa, kAcpiDsdtGpa));
  CKPT_RETURN_IF_ERROR(place(memory, "DSDT", dsdt, kAcpiDsdtGpa, kAcpiEndGpa));
  return kAcpiRsdpGpa;
}

}  // namespace ckpt::vmm::x86
