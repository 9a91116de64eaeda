// The 16550A model against what Linux's 8250 driver does with it: its probe (autoconfig), startup's THRE test,
// console output, interrupt-driven input, and a save/load in the middle of input.
#include "vmm/devices/serial_16550.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ckpt::vmm::devices {
namespace {

// Register offsets and bits, spelled as the driver does.
constexpr uint8_t RX = 0, TX = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6,
                  SCR = 7;

struct Uart {
  std::vector<uint8_t> sent;
  std::vector<bool> irq_changes;
  Serial16550 dev{[this](bool level) { irq_changes.push_back(level); },
                  [this](uint8_t b) { sent.push_back(b); }};

  size_t type(const std::string& s) {
    return dev.receive({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  }
  // What the driver's receive loop does: read RBR while LSR.DR.
  std::string drain(size_t max = 100000) {
    std::string out;
    while ((dev.read(LSR) & 0x01) && out.size() < max) out += static_cast<char>(dev.read(RX));
    return out;
  }
  // Linux's set_termios for 16550A at 115200 8N1: divisor 1, FIFO on with an 8-byte trigger.
  void setup_like_linux() {
    dev.write(LCR, 0x83);
    dev.write(DLL, 1);
    dev.write(DLM, 0);
    dev.write(LCR, 0x03);
    dev.write(FCR, 0x81);
    dev.write(MCR, 0x0b);  // DTR | RTS | OUT2
  }
};

TEST(Serial16550, ScratchAndIerProbe) {
  Uart u;
  u.dev.write(SCR, 0x5a);
  EXPECT_EQ(u.dev.read(SCR), 0x5a);
  u.dev.write(SCR, 0xa5);
  EXPECT_EQ(u.dev.read(SCR), 0xa5);
  // autoconfig: IER must read back 0 and then 0x0f (the upper nibble reads 0: not an XScale UUE bit).
  u.dev.write(IER, 0);
  EXPECT_EQ(u.dev.read(IER) & 0x0f, 0);
  u.dev.write(IER, 0x0f);
  EXPECT_EQ(u.dev.read(IER) & 0x0f, 0x0f);
  u.dev.write(IER, 0xff);
  EXPECT_EQ(u.dev.read(IER), 0x0f);
  u.dev.write(IER, 0);
}

TEST(Serial16550, LoopbackProbeMirrorsMcrInMsr) {
  Uart u;
  u.dev.write(MCR, 0x10 | 0x0a);  // LOOP | OUT2 | RTS: the 8250 probe wants DCD | CTS back
  EXPECT_EQ(u.dev.read(MSR) & 0xf0, 0x90);
  u.dev.write(MCR, 0x10 | 0x05);  // LOOP | OUT1 | DTR: RI | DSR
  EXPECT_EQ(u.dev.read(MSR) & 0xf0, 0x60);
  u.dev.write(MCR, 0);  // out of loopback: a connected line (CTS, DSR, DCD)
  uint8_t msr = u.dev.read(MSR);
  EXPECT_EQ(msr & 0xf0, 0xb0);
  EXPECT_NE(msr & 0x04, 0) << "RI went 1 -> 0: trailing edge";
  EXPECT_EQ(u.dev.read(MSR) & 0x0f, 0) << "reading MSR clears the deltas";
  EXPECT_TRUE(u.sent.empty());
}

TEST(Serial16550, FifoDetectedThroughIir) {
  Uart u;
  EXPECT_EQ(u.dev.read(IIR), 0x01) << "no FIFO, no interrupt";
  u.dev.write(LCR, 0);
  u.dev.write(FCR, 0x01);
  EXPECT_EQ(u.dev.read(IIR) >> 6, 3) << "a 16550A: both FIFO bits";
  // The TI16750 check: bit 5 must stay clear with and without DLAB.
  u.dev.write(FCR, 0x21);
  EXPECT_EQ(u.dev.read(IIR) >> 5, 6);
  u.dev.write(LCR, 0x80);
  u.dev.write(FCR, 0x21);
  EXPECT_EQ(u.dev.read(IIR) >> 5, 6);
  u.dev.write(LCR, 0);
  u.dev.write(FCR, 0);
  EXPECT_EQ(u.dev.read(IIR) & 0xc0, 0);
  EXPECT_NE(u.dev.read(LSR), 0xff) << "startup refuses a port whose LSR reads 0xff";
}

// size_fifo(): loopback at divisor 1, 256 bytes out, count what comes back: the FIFO's depth.
TEST(Serial16550, FifoSizeTestCountsSixteen) {
  Uart u;
  u.dev.write(FCR, 0x07);
  u.dev.write(MCR, 0x10);
  u.dev.write(LCR, 0x80);
  u.dev.write(DLL, 1);
  u.dev.write(DLM, 0);
  u.dev.write(LCR, 0x03);
  for (int i = 0; i < 256; ++i) u.dev.write(TX, static_cast<uint8_t>(i));
  std::string back = u.drain(256);
  ASSERT_EQ(back.size(), 16u);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(static_cast<uint8_t>(back[i]), i);
  EXPECT_TRUE(u.sent.empty()) << "loopback bytes never reach the line";
}

TEST(Serial16550, DivisorLatchBehindDlab) {
  Uart u;
  u.dev.write(IER, 0x05);
  u.dev.write(LCR, 0x83);
  u.dev.write(DLL, 0x34);
  u.dev.write(DLM, 0x12);
  EXPECT_EQ(u.dev.read(DLL), 0x34);
  EXPECT_EQ(u.dev.read(DLM), 0x12);
  EXPECT_EQ(u.dev.read(LCR), 0x83);
  u.dev.write(LCR, 0x03);
  EXPECT_EQ(u.dev.read(IER), 0x05) << "IER was not overwritten by the DLM write";
  u.dev.write(TX, 'x');
  ASSERT_EQ(u.sent.size(), 1u) << "with DLAB clear offset 0 is THR again";
  u.dev.write(LCR, 0x83);
  EXPECT_EQ(u.dev.read(DLL), 0x34);
}

TEST(Serial16550, OutputReachesTransmitAndThrStaysEmpty) {
  Uart u;
  u.setup_like_linux();
  for (char c : std::string("Linux version 6.1\r\n")) {
    ASSERT_NE(u.dev.read(LSR) & 0x20, 0) << "the console polls THRE before each byte";
    u.dev.write(TX, static_cast<uint8_t>(c));
  }
  EXPECT_EQ(std::string(u.sent.begin(), u.sent.end()), "Linux version 6.1\r\n");
  EXPECT_EQ(u.dev.read(LSR) & 0x60, 0x60) << "THRE and TEMT";
}

TEST(Serial16550, ThreInterruptRaiseAndClearRules) {
  Uart u;
  u.setup_like_linux();
  EXPECT_FALSE(u.dev.irq_level());
  // Linux's startup THRE test: enable -> pending; read IIR clears it; disable + enable -> pending again.
  u.dev.write(IER, 0x02);
  EXPECT_TRUE(u.dev.irq_level());
  EXPECT_EQ(u.dev.read(IIR) & 0x0f, 0x02);
  EXPECT_FALSE(u.dev.irq_level()) << "reading IIR that reported THRE acknowledges it";
  EXPECT_EQ(u.dev.read(IIR) & 0x0f, 0x01);
  u.dev.write(IER, 0);
  u.dev.write(IER, 0x02);
  EXPECT_EQ(u.dev.read(IIR) & 0x0f, 0x02) << "re-enabling re-asserts THRE (else Linux sets UART_BUG_THRE)";
  // Enabling again while already enabled raises nothing.
  u.dev.write(IER, 0x02);
  EXPECT_EQ(u.dev.read(IIR) & 0x0f, 0x01);
  // A transmit raises it again.
  u.dev.write(TX, 'a');
  EXPECT_TRUE(u.dev.irq_level());
  // Writing THR clears it before the byte goes; the next transmit re-raises it, and the line does not flap for it.
  size_t changes = u.irq_changes.size();
  u.dev.write(TX, 'b');
  EXPECT_EQ(u.irq_changes.size(), changes) << "set_irq only on a change of level";
  EXPECT_EQ(u.dev.read(IIR) & 0x0f, 0x02);
  // With ETBEI clear, a transmit latches nothing visible; IIR shows no interrupt.
  u.dev.write(IER, 0);
  u.dev.write(TX, 'c');
  EXPECT_EQ(u.dev.read(IIR) & 0x0f, 0x01);
  EXPECT_FALSE(u.dev.irq_level());
  EXPECT_EQ(std::string(u.sent.begin(), u.sent.end()), "abc");
}

TEST(Serial16550, ReceiveWithFifoAndTriggerLevel) {
  Uart u;
  u.setup_like_linux();  // trigger level 8
  u.dev.write(IER, 0x01);
  EXPECT_FALSE(u.dev.irq_level());
  EXPECT_EQ(u.type("ab"), 2u);
  EXPECT_TRUE(u.dev.irq_level());
  EXPECT_EQ(u.dev.read(IIR), 0xcc) << "below the trigger level: the character timeout indication";
  EXPECT_EQ(u.type("cdefgh"), 6u);
  EXPECT_EQ(u.dev.read(IIR), 0xc4) << "8 bytes: received data available";
  EXPECT_EQ(u.drain(), "abcdefgh");
  EXPECT_FALSE(u.dev.irq_level());
  EXPECT_EQ(u.dev.read(IIR), 0xc1);
}

TEST(Serial16550, ReceiveWithoutFifoHoldsOneByteAndQueuesTheRest) {
  Uart u;
  u.dev.write(IER, 0x01);
  EXPECT_EQ(u.type("hello"), 5u);
  EXPECT_EQ(u.dev.read(IIR), 0x04);
  EXPECT_EQ(u.dev.read(LSR) & 0x03, 0x01) << "data ready, no overrun: host input waits, it is never overrun";
  EXPECT_EQ(u.dev.read(RX), 'h');
  EXPECT_EQ(u.dev.read(LSR) & 0x01, 0x01) << "the next byte moved in as RBR was read";
  EXPECT_EQ(u.drain(), "ello");
  EXPECT_EQ(u.dev.read(LSR) & 0x01, 0);
}

TEST(Serial16550, OverrunInLoopbackSetsOeAndLineStatusInterrupt) {
  Uart u;
  u.dev.write(MCR, 0x10);
  u.dev.write(IER, 0x05);  // RX data + line status
  u.dev.write(TX, '1');
  u.dev.write(TX, '2');  // no FIFO: overwrites RBR
  EXPECT_EQ(u.dev.read(IIR), 0x06) << "line status outranks received data";
  EXPECT_EQ(u.dev.read(LSR) & 0x03, 0x03);
  EXPECT_EQ(u.dev.read(LSR) & 0x02, 0) << "reading LSR cleared OE";
  EXPECT_EQ(u.dev.read(IIR), 0x04);
  EXPECT_EQ(u.dev.read(RX), '2');
  // With the FIFO: the 17th byte is the one lost.
  u.dev.write(FCR, 0x01);
  for (int i = 0; i < 17; ++i) u.dev.write(TX, static_cast<uint8_t>('a' + i));
  EXPECT_NE(u.dev.read(LSR) & 0x02, 0);
  EXPECT_EQ(u.drain(), "abcdefghijklmnop");
}

TEST(Serial16550, InterruptPriorityOrder) {
  Uart u;
  u.dev.write(FCR, 0x01);          // trigger level 1
  u.dev.write(MCR, 0x10);          // loopback, to make every source fire
  u.dev.write(IER, 0x0f);
  for (int i = 0; i < 17; ++i) u.dev.write(TX, 'x');  // overrun + data + THRE
  u.dev.write(MCR, 0x12);          // RTS -> CTS changes: modem status
  EXPECT_EQ(u.dev.read(IIR) & 0x0f, 0x06);
  (void)u.dev.read(LSR);
  EXPECT_EQ(u.dev.read(IIR) & 0x0f, 0x04);
  u.drain();
  EXPECT_EQ(u.dev.read(IIR) & 0x0f, 0x02);  // this read acknowledges it
  EXPECT_EQ(u.dev.read(IIR) & 0x0f, 0x00);  // modem status
  EXPECT_TRUE(u.dev.irq_level());
  EXPECT_NE(u.dev.read(MSR) & 0x01, 0) << "DCTS";
  EXPECT_EQ(u.dev.read(IIR) & 0x0f, 0x01);
  EXPECT_FALSE(u.dev.irq_level());
}

TEST(Serial16550, InputQueueIsBounded) {
  Uart u;
  u.setup_like_linux();
  std::string big(Serial16550::kInputQueueBytes + Serial16550::kFifoBytes + 100, 'z');
  EXPECT_EQ(u.type(big), Serial16550::kInputQueueBytes + Serial16550::kFifoBytes);
  EXPECT_EQ(u.type("more"), 0u) << "full: the caller offers it again later";
  for (int i = 0; i < 10; ++i) (void)u.dev.read(RX);
  EXPECT_EQ(u.type("0123456789AB"), 10u);
  std::string got = u.drain();
  EXPECT_EQ(got.size(), Serial16550::kInputQueueBytes + Serial16550::kFifoBytes);
  EXPECT_EQ(got.substr(got.size() - 10), "0123456789");
}

TEST(Serial16550, InputWaitsWhileInLoopback) {
  Uart u;
  u.dev.write(FCR, 0x01);
  u.dev.write(MCR, 0x10);
  EXPECT_EQ(u.type("abc"), 3u);
  EXPECT_EQ(u.dev.read(LSR) & 0x01, 0) << "the receive line is disconnected in loopback";
  u.dev.write(MCR, 0x00);
  EXPECT_EQ(u.drain(), "abc");
}

// A save in the middle of input, loaded into a fresh device, must behave exactly as the original from there on.
TEST(Serial16550, SaveLoadMidInputBehavesIdentically) {
  Uart a;
  a.setup_like_linux();
  a.dev.write(IER, 0x07);
  a.dev.write(SCR, 0x77);
  std::string input(200, '\0');
  for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>('A' + i % 26);
  ASSERT_EQ(a.type(input), input.size());
  for (int i = 0; i < 5; ++i) (void)a.dev.read(RX);
  (void)a.dev.read(IIR);
  std::vector<uint8_t> blob = a.dev.save_state();

  Uart b;
  ASSERT_TRUE(b.dev.load_state(blob).is_ok());
  EXPECT_EQ(b.irq_changes, std::vector<bool>{true}) << "load_state drives the derived level";
  EXPECT_EQ(b.dev.save_state(), blob);
  // The same accesses on both from here produce the same values, interrupts and output.
  for (int step = 0; step < 400; ++step) {
    uint8_t off = static_cast<uint8_t>(step % 8);
    if (step % 37 == 0) {
      a.dev.write(TX, static_cast<uint8_t>(step));
      b.dev.write(TX, static_cast<uint8_t>(step));
    }
    if (step == 100) {
      EXPECT_EQ(a.type("tail"), b.type("tail"));
    }
    ASSERT_EQ(a.dev.read(off), b.dev.read(off)) << "offset " << int(off) << " at step " << step;
    ASSERT_EQ(a.dev.irq_level(), b.dev.irq_level()) << "step " << step;
  }
  EXPECT_EQ(a.sent, b.sent);
  EXPECT_EQ(a.drain(), b.drain());
  EXPECT_EQ(a.dev.save_state(), b.dev.save_state());
}

TEST(Serial16550, RefusesBadBlobs) {
  Uart u;
  u.setup_like_linux();
  u.type("xy");
  std::vector<uint8_t> good = u.dev.save_state();
  Uart fresh;
  auto refused = [&](std::vector<uint8_t> blob, const std::string& words) {
    Status s = fresh.dev.load_state(blob);
    EXPECT_FALSE(s.is_ok()) << words;
    EXPECT_NE(s.message().find(words), std::string::npos) << s.to_string();
  };
  refused({}, "no U550 magic");
  std::vector<uint8_t> b = good;
  b[4] = 2;
  refused(b, "version 2");
  refused(std::vector<uint8_t>(good.begin(), good.begin() + 20), "shorter than");
  b = good;
  b.push_back(0);
  refused(b, "bytes where a header");
  b = good;
  b[6] = 0x10;  // IER bit 4
  refused(b, "IER");
  b = good;
  b[16] = 17;  // FIFO count
  refused(b, "RX FIFO of 16");
  b = good;
  b[7] = 0;  // FIFO disabled with 2 bytes in it
  refused(b, "RX FIFO of 1");
  b = good;
  b[33] = 1;  // one queued byte while the FIFO has room
  b.push_back('q');
  refused(b, "queued while the RX FIFO has room");
  b = good;
  b[33] = 0xff;
  b[34] = 0xff;
  refused(b, "over the bound");
  EXPECT_TRUE(fresh.irq_changes.empty()) << "a refused blob changes nothing";
  EXPECT_EQ(fresh.dev.read(SCR), 0);
  EXPECT_TRUE(fresh.dev.load_state(good).is_ok());
  EXPECT_EQ(fresh.drain(), "xy");
}

}  // namespace
}  // namespace ckpt::vmm::devices
