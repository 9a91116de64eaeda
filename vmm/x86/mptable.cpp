#include "vmm/x86/mptable.h"

#include <cstring>
#include <string>

#include "vmm/x86/boot_params.h"
#include "vmm/x86/layout.h"

namespace ckpt::vmm::x86 {
namespace {

// Sizes and entry types from the MP specification 1.4, chapter 4.
constexpr uint64_t kFloatingBytes = 16;
constexpr uint64_t kHeaderBytes = 44;
constexpr uint64_t kProcessorBytes = 20;
constexpr uint64_t kSmallEntryBytes = 8;  // bus, IOAPIC, I/O and local interrupt entries
constexpr uint8_t kSpecRev14 = 4;
enum : uint8_t { kProcessor = 0, kBus = 1, kIoapic = 2, kIoInterrupt = 3, kLocalInterrupt = 4 };
enum : uint8_t { kIntInt = 0, kIntNmi = 1, kIntExtInt = 3 };
constexpr uint8_t kCpuEnabled = 1, kCpuBsp = 2;
constexpr uint8_t kIoapicEnabled = 1;
// What KVM's in-kernel devices report: LAPIC version register 0x14 (integrated APIC), IOAPIC version 0x11.
constexpr uint8_t kLapicVersion = 0x14;
constexpr uint8_t kIoapicVersion = 0x11;
constexpr uint8_t kIsaBusId = 0;
constexpr uint8_t kAllLapics = 0xff;
// Processor entries carry a CPU signature and feature flags; Linux only prints them. Family 6 with FPU and APIC
// says "a P6-class CPU with a local APIC" without pretending to be a particular model.
constexpr uint32_t kCpuSignature = 0x600;
constexpr uint32_t kCpuFeatures = (1u << 0) | (1u << 9);

constexpr uint64_t table_bytes(unsigned vcpus) {
  return kHeaderBytes + vcpus * kProcessorBytes + kSmallEntryBytes * (1 + 1 + kIsaIrqs + 2);
}
static_assert(kFloatingBytes + table_bytes(kMaxMpVcpus) <= kEbdaEndGpa - kEbdaGpa, "the MP table fits the EBDA");

// The byte that makes [p, p + n) sum to zero modulo 256 once stored in it (the slot must still be zero).
uint8_t checksum(const uint8_t* p, uint64_t n) {
  uint8_t sum = 0;
  for (uint64_t i = 0; i < n; ++i) sum = static_cast<uint8_t>(sum + p[i]);
  return static_cast<uint8_t>(-sum);
}

// Appends entries to the configuration table.
class Writer {
 public:
  Writer(std::span<uint8_t> memory, uint64_t gpa) : memory_(memory), at_(gpa) {}
  uint64_t at() const { return at_; }
  template <typename T>
  void put(T value) {
    bp::store(memory_, at_, value);
    at_ += sizeof value;
  }
  void put_bytes(const char* text, uint64_t n) {
    std::memcpy(memory_.data() + at_, text, n);
    at_ += n;
  }

 private:
  std::span<uint8_t> memory_;
  uint64_t at_;
};

void interrupt_entry(Writer& w, uint8_t entry_type, uint8_t int_type, uint8_t bus_irq, uint8_t dest_id,
                     uint8_t dest_pin) {
  w.put(entry_type);
  w.put(int_type);
  w.put(uint16_t{0});  // polarity and trigger "conform to the bus": ISA is active-high, edge
  w.put(kIsaBusId);
  w.put(bus_irq);
  w.put(dest_id);
  w.put(dest_pin);
}

}  // namespace

Status write_mptable(std::span<uint8_t> memory, unsigned vcpus) {
  if (vcpus == 0 || vcpus > kMaxMpVcpus) {
    return invalid_argument("MP table: vCPU count " + std::to_string(vcpus) + " out of range 1.." +
                            std::to_string(kMaxMpVcpus));
  }
  if (memory.size() < kHighMemoryGpa) {
    return invalid_argument("MP table: guest memory of " + std::to_string(memory.size()) +
                            " bytes does not reach the EBDA");
  }
  const uint64_t floating = kEbdaGpa;
  const uint64_t table = floating + kFloatingBytes;
  const uint8_t ioapic_id = static_cast<uint8_t>(vcpus);

  Writer w(memory, table);
  w.put_bytes("PCMP", 4);
  w.put(static_cast<uint16_t>(table_bytes(vcpus)));
  w.put(kSpecRev14);
  w.put(uint8_t{0});  // checksum, filled below
  w.put_bytes("CKPTD   ", 8);  // OEM id, space-padded
  w.put_bytes("KVM x86     ", 12);  // product id
  w.put(uint32_t{0});  // no OEM table
  w.put(uint16_t{0});
  w.put(static_cast<uint16_t>(vcpus + 1 + 1 + kIsaIrqs + 2));  // entry count
  w.put(kLapicAddress);
  w.put(uint16_t{0});  // no extended table
  w.put(uint8_t{0});
  w.put(uint8_t{0});

  for (unsigned i = 0; i < vcpus; ++i) {
    w.put(kProcessor);
    w.put(static_cast<uint8_t>(i));  // APIC id: KVM gives vCPU i APIC id i
    w.put(kLapicVersion);
    w.put(static_cast<uint8_t>(kCpuEnabled | (i == 0 ? kCpuBsp : 0)));
    w.put(kCpuSignature);
    w.put(kCpuFeatures);
    w.put(uint64_t{0});
  }
  w.put(kBus);
  w.put(kIsaBusId);
  w.put_bytes("ISA   ", 6);
  w.put(kIoapic);
  w.put(ioapic_id);
  w.put(kIoapicVersion);
  w.put(kIoapicEnabled);
  w.put(kIoapicAddress);
  for (uint8_t irq = 0; irq < kIsaIrqs; ++irq) interrupt_entry(w, kIoInterrupt, kIntInt, irq, ioapic_id, irq);
  interrupt_entry(w, kLocalInterrupt, kIntExtInt, 0, kAllLapics, 0);
  interrupt_entry(w, kLocalInterrupt, kIntNmi, 0, kAllLapics, 1);
  const uint64_t length = w.at() - table;
  memory[table + 7] = 0;
  memory[table + 7] = checksum(memory.data() + table, length);

  Writer f(memory, floating);
  f.put_bytes("_MP_", 4);
  f.put(static_cast<uint32_t>(table));
  f.put(uint8_t{1});  // length in 16-byte paragraphs
  f.put(kSpecRev14);
  f.put(uint8_t{0});  // checksum
  f.put(uint8_t{0});  // feature byte 1: 0 = the configuration table is present (no default configuration)
  f.put(uint32_t{0});  // feature bytes 2..5: no IMCR (virtual wire mode)
  memory[floating + 10] = 0;
  memory[floating + 10] = checksum(memory.data() + floating, kFloatingBytes);

  bp::store(memory, kBdaEbdaSegmentGpa, static_cast<uint16_t>(kEbdaGpa >> 4));
  bp::store(memory, kBdaBaseMemoryKibGpa, static_cast<uint16_t>(kEbdaGpa >> 10));
  return Status::ok();
}

}  // namespace ckpt::vmm::x86
