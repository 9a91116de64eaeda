// The port I/O a Linux guest sees (vmm/kvm/platform_io.h), driven with hand-made KVM_EXIT_IO exits: no /dev/kvm
// needed. The interrupt line's ioctl goes to a descriptor that is not a VM, so it fails and is reported.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "vmm/kvm/platform_io.h"

namespace ckpt::vmm::kvm {
namespace {

// A kvm_run with room for the I/O data behind it, as the kernel lays out the shared page.
struct IoExit {
  std::vector<uint8_t> page = std::vector<uint8_t>(4096, 0);
  kvm_run& run() { return *reinterpret_cast<kvm_run*>(page.data()); }
  uint8_t* data() { return page.data() + 2048; }

  kvm_run& out(uint16_t port, std::vector<uint8_t> bytes, uint8_t size = 1) {
    return make(KVM_EXIT_IO_OUT, port, size, bytes);
  }
  kvm_run& in(uint16_t port, uint8_t size = 1) { return make(KVM_EXIT_IO_IN, port, size, std::vector<uint8_t>(size)); }

 private:
  kvm_run& make(uint8_t direction, uint16_t port, uint8_t size, const std::vector<uint8_t>& bytes) {
    kvm_run& r = run();
    r.exit_reason = KVM_EXIT_IO;
    r.io.direction = direction;
    r.io.port = port;
    r.io.size = size;
    r.io.count = static_cast<uint32_t>(bytes.size() / size);
    r.io.data_offset = 2048;
    std::memcpy(data(), bytes.data(), bytes.size());
    return r;
  }
};

class Sink : public ConsoleSink {
 public:
  void console_output(std::span<const uint8_t> bytes) override { text.append(bytes.begin(), bytes.end()); }
  std::string text;
};

struct Platform {
  std::vector<std::string> resets;
  std::vector<std::string> power_offs;
  PlatformIo io{-1, [this](const std::string& how) { resets.push_back(how); },
                [this](const std::string& how) { power_offs.push_back(how); }};

  // Little-endian port accesses of 1, 2 or 4 bytes.
  uint32_t in(uint16_t port, uint8_t size) {
    IoExit e;
    io.handle_io(e.in(port, size));
    uint32_t v = 0;
    std::memcpy(&v, e.data(), size);
    return v;
  }
  void out(uint16_t port, uint8_t size, uint32_t value) {
    IoExit e;
    std::vector<uint8_t> bytes(size);
    std::memcpy(bytes.data(), &value, size);
    io.handle_io(e.out(port, bytes, size));
  }
};

// ACPI's PM1a registers as the FADT places them (offsets and bits from the ACPI spec, 4.8.3).
constexpr uint16_t kPm1Sts = 0x600, kPm1En = 0x602, kPm1Cnt = 0x604;
constexpr uint16_t kSciEn = 1u << 0, kSlpEn = 1u << 13;
constexpr uint16_t slp_typ(unsigned t) { return static_cast<uint16_t>(t << 10); }

TEST(PlatformIo, Com1BytesReachTheConsoleSink) {
  Platform p;
  Sink sink;
  p.io.set_console_sink(&sink);
  IoExit e;
  for (char c : std::string("hi\n")) p.io.handle_io(e.out(0x3f8, {static_cast<uint8_t>(c)}));
  EXPECT_EQ(sink.text, "hi\n");
  p.io.handle_io(e.in(0x3fd));  // LSR: THR empty and transmitter empty
  EXPECT_EQ(e.data()[0] & 0x60, 0x60);
  p.io.set_console_sink(nullptr);
  p.io.handle_io(e.out(0x3f8, {'x'}));
  EXPECT_EQ(sink.text, "hi\n");  // detached: nothing more arrives
}

TEST(PlatformIo, BothResetPathsAreReported) {
  Platform p;
  IoExit e;
  p.io.handle_io(e.out(0x64, {0xfe}));
  p.io.handle_io(e.out(0xcf9, {0x02}));  // SYS_RST alone: Linux writes it first, no reset yet
  p.io.handle_io(e.out(0xcf9, {0x06}));
  ASSERT_EQ(p.resets.size(), 2u);
  EXPECT_NE(p.resets[0].find("0x64"), std::string::npos);
  EXPECT_NE(p.resets[1].find("0xcf9"), std::string::npos);
}

// Linux probes PCI with a 32-bit write of all ones to 0xcf8: bytes 0xcf8..0xcfb, but it is one access to the
// configuration address, and must not reach the reset register at 0xcf9 (it did once: every boot stopped there).
TEST(PlatformIo, AWideAccessIsNotSplitIntoByteAccesses) {
  Platform p;
  IoExit e;
  p.io.handle_io(e.out(0xcf8, {0xff, 0xff, 0xff, 0xff}, 4));
  EXPECT_TRUE(p.resets.empty());
  p.io.handle_io(e.in(0xcf8, 4));
  EXPECT_EQ(std::vector<uint8_t>(e.data(), e.data() + 4), std::vector<uint8_t>(4, 0xff));  // an empty bus
}

// The same guard for 16-bit accesses, which now reach a device model (the PM1 registers) elsewhere.
TEST(PlatformIo, AWordAccessAt0xcf8DoesNotResetEither) {
  Platform p;
  p.out(0xcf8, 2, 0xffff);
  p.out(0xcfa, 2, 0xffff);
  EXPECT_TRUE(p.resets.empty());
  EXPECT_EQ(p.in(0xcf8, 2), 0xffffu);
}

TEST(PlatformIo, Pm1RegistersTakeWordByteAndDwordAccesses) {
  Platform p;
  EXPECT_EQ(p.in(kPm1Sts, 2), 0u) << "PM1_STS: no event is ever pending";
  EXPECT_EQ(p.in(kPm1En, 2), 0u) << "PM1_EN at power-on";
  p.out(kPm1En, 2, 0x0121);  // TMR_EN | GBL_EN | PWRBTN_EN
  EXPECT_EQ(p.in(kPm1En, 2), 0x0121u);
  EXPECT_EQ(p.in(kPm1En, 1), 0x21u);
  EXPECT_EQ(p.in(kPm1En + 1, 1), 0x01u);
  p.out(kPm1En + 1, 1, 0x03);  // the high byte alone
  EXPECT_EQ(p.in(kPm1En, 2), 0x0321u);
  p.out(kPm1Sts, 2, 0xffff);  // write-1-to-clear: nothing to clear, and nothing becomes set
  EXPECT_EQ(p.in(kPm1Sts, 2), 0u);
  EXPECT_EQ(p.in(kPm1En, 2), 0x0321u) << "a PM1_STS write leaves PM1_EN alone";
  EXPECT_EQ(p.in(kPm1Sts, 4), 0x03210000u) << "the whole event block: PM1_STS, then PM1_EN";
  p.out(kPm1Sts, 4, 0x00410000);  // and written as one
  EXPECT_EQ(p.in(kPm1En, 2), 0x0041u);
  EXPECT_EQ(p.in(0x5fe, 2), 0xffffu) << "below the block: an empty bus";
  EXPECT_EQ(p.in(0x606, 2), 0xffffu) << "above the block: an empty bus";
  EXPECT_EQ(p.in(kPm1Cnt, 4), 0xffff0000u | kSciEn) << "PM1_CNT, then two bytes of nothing";
  EXPECT_TRUE(p.resets.empty());
  EXPECT_TRUE(p.power_offs.empty());
}

TEST(PlatformIo, Pm1ControlReadsBackWithSciEnSet) {
  Platform p;
  EXPECT_EQ(p.in(kPm1Cnt, 2), kSciEn) << "always in ACPI mode: there is no SMI to leave it";
  EXPECT_EQ(p.in(kPm1Cnt, 1), kSciEn);
  p.out(kPm1Cnt, 2, 0);  // clearing SCI_EN does not take
  EXPECT_EQ(p.in(kPm1Cnt, 2), kSciEn);
  p.out(kPm1Cnt, 2, slp_typ(3) | 0x2);  // SLP_TYP and BM_RLD are read/write
  EXPECT_EQ(p.in(kPm1Cnt, 2), slp_typ(3) | 0x2u | kSciEn);
  p.out(kPm1Cnt, 2, slp_typ(3) | (1u << 2) | (1u << 14));  // GBL_RLS (write-only) and a reserved bit read 0
  EXPECT_EQ(p.in(kPm1Cnt, 2), slp_typ(3) | kSciEn);
  EXPECT_TRUE(p.power_offs.empty());
}

// What ACPICA's acpi_hw_legacy_sleep does for S5: read PM1_CNT, write SLP_TYP, then SLP_TYP | SLP_EN.
TEST(PlatformIo, SlpEnWithTheS5TypePowersOffExactlyOnce) {
  Platform p;
  const uint16_t cnt = static_cast<uint16_t>(p.in(kPm1Cnt, 2));
  p.out(kPm1Cnt, 2, cnt | slp_typ(5));
  EXPECT_TRUE(p.power_offs.empty()) << "SLP_TYP alone is not a request";
  p.out(kPm1Cnt, 2, cnt | slp_typ(5) | kSlpEn);
  ASSERT_EQ(p.power_offs.size(), 1u);
  EXPECT_NE(p.power_offs[0].find("S5"), std::string::npos) << p.power_offs[0];
  EXPECT_NE(p.power_offs[0].find("0x604"), std::string::npos) << p.power_offs[0];
  EXPECT_EQ(p.in(kPm1Cnt, 2), slp_typ(5) | kSciEn) << "SLP_EN is write-only";
  EXPECT_TRUE(p.resets.empty());

  // The high byte alone carries both SLP_TYP and SLP_EN: a byte write is a request too; the low byte is not.
  Platform q;
  q.out(kPm1Cnt, 1, 0xff);
  EXPECT_TRUE(q.power_offs.empty());
  q.out(kPm1Cnt + 1, 1, (slp_typ(5) | kSlpEn) >> 8);
  EXPECT_EQ(q.power_offs.size(), 1u);
}

TEST(PlatformIo, OtherSleepTypesDoNotPowerOff) {
  Platform p;
  for (unsigned t = 0; t < 8; ++t) {
    if (t == 5) continue;
    p.out(kPm1Cnt, 2, slp_typ(t) | kSlpEn | kSciEn);
    EXPECT_EQ(p.in(kPm1Cnt, 2), slp_typ(t) | kSciEn);
  }
  EXPECT_TRUE(p.power_offs.empty());
  EXPECT_TRUE(p.resets.empty());
  // Nor does S5's type written to PM1_EN or PM1_STS.
  p.out(kPm1En, 2, slp_typ(5) | kSlpEn);
  p.out(kPm1Sts, 2, slp_typ(5) | kSlpEn);
  EXPECT_TRUE(p.power_offs.empty());
}

TEST(PlatformIo, EmptyPortsReadAllOnesAndCmosReadsZero) {
  Platform p;
  IoExit e;
  p.io.handle_io(e.in(0x2f8));  // COM2: nothing there
  EXPECT_EQ(e.data()[0], 0xff);
  p.io.handle_io(e.in(0x71));
  EXPECT_EQ(e.data()[0], 0x00);
}

TEST(PlatformIo, TheUartStateRoundTripsAndAFailedInterruptLineIsReported) {
  Platform p;
  IoExit e;
  p.io.handle_io(e.out(0x3f9, {0x02}));  // IER: THR-empty interrupt on: the line rises, and its ioctl fails here
  EXPECT_FALSE(p.io.irq_error().is_ok());
  EXPECT_NE(p.io.irq_error().message().find("KVM_IRQ_LINE"), std::string::npos);
  std::vector<StateBlob> state;
  p.io.save_state(state);
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].name, "serial/com1");
  EXPECT_EQ(state[1].name, "acpi/pm1");
  Platform q;
  EXPECT_TRUE(q.io.load_state(state).is_ok());
  q.io.handle_io(e.in(0x3f9));
  EXPECT_EQ(e.data()[0], 0x02);
  EXPECT_FALSE(q.io.load_state({}).is_ok());  // a Linux guest's state without its UART is refused
}

TEST(PlatformIo, Pm1StateRoundTrips) {
  Platform p;
  p.out(kPm1En, 2, 0x0120);
  p.out(kPm1Cnt, 2, slp_typ(5) | 0x2);  // SLP_TYP set, SLP_EN not: no power-off, but state
  std::vector<StateBlob> state;
  p.io.save_state(state);
  const StateBlob* pm1 = find_state_blob(state, "acpi/pm1");
  ASSERT_NE(pm1, nullptr);
  // Version 1: "PM1a", version 1, PM1_EN, PM1_CNT (its read/write bits), little-endian.
  EXPECT_EQ(pm1->data, (std::vector<uint8_t>{'P', 'M', '1', 'a', 1, 0, 0x20, 0x01, 0x02, 0x14}));
  Platform q;
  ASSERT_TRUE(q.io.load_state(state).is_ok());
  EXPECT_EQ(q.in(kPm1En, 2), 0x0120u);
  EXPECT_EQ(q.in(kPm1Cnt, 2), slp_typ(5) | 0x2u | kSciEn);
  EXPECT_TRUE(q.power_offs.empty()) << "loading is not a request";
}

// Epochs saved before the platform had ACPI have no acpi/pm1: they load, with the registers as at power-on.
TEST(PlatformIo, AStateWithoutPm1LoadsWithPowerOnRegisters) {
  Platform old;
  std::vector<StateBlob> state;
  old.io.save_state(state);
  state.erase(std::remove_if(state.begin(), state.end(), [](const StateBlob& b) { return b.name == "acpi/pm1"; }),
              state.end());
  ASSERT_EQ(state.size(), 1u);
  Platform p;
  p.out(kPm1En, 2, 0xffff);
  p.out(kPm1Cnt, 2, slp_typ(2));
  ASSERT_TRUE(p.io.load_state(state).is_ok());
  EXPECT_EQ(p.in(kPm1En, 2), 0u);
  EXPECT_EQ(p.in(kPm1Cnt, 2), kSciEn);
}

TEST(PlatformIo, ABadPm1BlobIsRefusedByName) {
  Platform p;
  std::vector<StateBlob> good;
  p.io.save_state(good);
  auto with_pm1 = [&](std::vector<uint8_t> data) {
    std::vector<StateBlob> s = good;
    for (StateBlob& b : s) {
      if (b.name == "acpi/pm1") b.data = data;
    }
    return s;
  };
  const std::vector<uint8_t> base = find_state_blob(good, "acpi/pm1")->data;
  std::vector<uint8_t> magic = base, version = base, longer = base, bits = base;
  magic[0] = 'X';
  version[4] = 2;
  longer.push_back(0);
  bits[9] |= 0x20;  // SLP_EN (bit 13) is write-only: no saved state has it
  for (const auto& bad : {magic, version, longer, bits, std::vector<uint8_t>{}}) {
    Platform q;
    q.out(kPm1En, 2, 0x0001);
    Status s = q.io.load_state(with_pm1(bad));
    ASSERT_FALSE(s.is_ok());
    EXPECT_NE(s.message().find("acpi/pm1"), std::string::npos) << s.to_string();
    EXPECT_EQ(q.in(kPm1En, 2), 0x0001u) << "a refused state changes nothing";
  }
}

TEST(GuestStopReason, PowerOffHasItsName) {
  EXPECT_EQ(guest_stop_reason_name(GuestStopReason::kPowerOff), "poweroff");
  EXPECT_EQ(guest_stop_reason_name(GuestStopReason::kReset), "reset");
}

}  // namespace
}  // namespace ckpt::vmm::kvm
