// The port I/O a Linux guest sees (vmm/kvm/platform_io.h), driven with hand-made KVM_EXIT_IO exits: no /dev/kvm
// needed. The interrupt line's ioctl goes to a descriptor that is not a VM, so it fails and is reported.
#include <gtest/gtest.h>

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
  PlatformIo io{-1, [this](const std::string& how) { resets.push_back(how); }};
};

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
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state[0].name, "serial/com1");
  Platform q;
  EXPECT_TRUE(q.io.load_state(state).is_ok());
  q.io.handle_io(e.in(0x3f9));
  EXPECT_EQ(e.data()[0], 0x02);
  EXPECT_FALSE(q.io.load_state({}).is_ok());  // a Linux guest's state without its UART is refused
}

}  // namespace
}  // namespace ckpt::vmm::kvm
