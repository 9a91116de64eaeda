// A 16550A UART (the PC's COM1..COM4), as Linux's 8250 driver sees it: eight registers from a base port, a 16-byte
// receive FIFO, and one interrupt line. The model knows nothing of KVM: the machine forwards the port-I/O exits of
// its eight ports to read()/write() and turns set_irq() into KVM_IRQ_LINE.
//
// What it models and what it leaves out (why: nothing in a VM can observe the difference):
//  * Output is not timed. A byte written to THR goes to `transmit` at once, so THR and the transmitter are empty
//    again before the write returns (LSR.THRE and LSR.TEMT always read 1) and the TX FIFO never holds anything.
//  * Input comes from the host through receive(): into the RX FIFO (16 bytes with the FIFO enabled, else the one
//    holding register), the rest into a bounded host-side queue that moves into the FIFO as the guest reads RBR.
//    Host input is never overrun; only loopback can overrun the FIFO (LSR.OE), as on the chip.
//  * No character timer: the character timeout interrupt (IIR 0x0c) is reported whenever the FIFO holds fewer bytes
//    than its trigger level, so a byte never waits for more input to be delivered.
//  * Outside loopback the modem inputs read as a connected line: CTS, DSR and DCD set, RI clear. In loopback they
//    mirror MCR (RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD), which the 8250 probe checks.
//  * The interrupt line is not gated by MCR.OUT2 (PC boards do gate it; Linux sets OUT2 whenever it uses the IRQ).
//  * No parity, framing or break errors; the divisor and LCR are kept for the guest to read back, nothing more.
//
// Thread-safe: any number of vCPU threads (and the host's input) may call in at once; one mutex serialises them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "common/status.h"

namespace ckpt::vmm::devices {

class Serial16550 {
 public:
  static constexpr size_t kFifoBytes = 16;
  // Host input waiting beyond the RX FIFO. receive() accepts no more than this; the caller offers the rest again
  // later (the console's writer retries), so a paste of any size arrives in order without unbounded memory.
  static constexpr size_t kInputQueueBytes = 4096;
  static constexpr uint16_t kStateVersion = 1;

  // set_irq(level): drives the interrupt line. Called with the device's lock held, only when the level changes
  // (load_state excepted: it always drives the level it derived). transmit(byte): a byte the guest sent; called
  // with the lock held too, so bytes reach it in the order the guest wrote them. Neither may call back into the
  // device.
  Serial16550(std::function<void(bool level)> set_irq, std::function<void(uint8_t byte)> transmit);

  Serial16550(const Serial16550&) = delete;
  Serial16550& operator=(const Serial16550&) = delete;

  // A guest access at `offset` (0..7) from the base port. Offsets past 7 read 0xff and ignore writes.
  uint8_t read(uint8_t offset);
  void write(uint8_t offset, uint8_t value);

  // Host -> guest: bytes typed at the console. Returns how many were accepted (in order, from the front); the rest
  // did not fit in the FIFO plus the input queue.
  size_t receive(std::span<const uint8_t> bytes);

  // Every guest-visible register, the RX FIFO, the pending interrupts and the queued input, as a versioned blob
  // (layout: docs/vmm.md, "State", serial/com1). load_state replaces the device's state with a blob's, refusing a
  // wrong magic, version or size and values the device could never hold; it then drives the interrupt line to the
  // level the loaded state implies.
  std::vector<uint8_t> save_state() const;
  Status load_state(std::span<const uint8_t> blob);

  // The current interrupt line level (what set_irq was last told), for tests and status.
  bool irq_level() const;

 private:
  uint8_t read_locked(uint8_t offset);
  void write_locked(uint8_t offset, uint8_t value);
  void write_fcr(uint8_t value);
  void write_mcr(uint8_t value);
  void transmit_byte(uint8_t byte);
  void push_rx(uint8_t byte);  // loopback: a byte arriving on the (internal) receive line
  void refill_fifo();           // moves queued host input into the FIFO while it has room
  size_t fifo_capacity() const;
  bool fifo_enabled() const;
  bool loopback() const;
  uint8_t modem_inputs() const;  // MSR bits 4..7 as the line (or loopback) drives them
  uint8_t line_status() const;
  uint8_t interrupt_id() const;  // IIR bits 0..3: the highest-priority pending source, or 0x01
  void update_irq();

  std::function<void(bool)> set_irq_;
  std::function<void(uint8_t)> transmit_;

  mutable std::mutex mu_;
  uint8_t ier_ = 0;          // bits 0..3 only: a 16550A reads the others as 0
  uint8_t fcr_ = 0;          // the FIFO enable (bit 0), DMA mode (bit 3) and trigger level (bits 6..7) last written
  uint8_t lcr_ = 0;
  uint8_t mcr_ = 0;          // bits 0..4 only
  bool overrun_ = false;     // LSR.OE, until LSR is read
  uint8_t msr_delta_ = 0;    // MSR bits 0..3 (DCTS, DDSR, TERI, DDCD), until MSR is read
  uint8_t scr_ = 0;
  uint8_t dll_ = 0x0c;       // 9600 baud at the PC's 1.8432 MHz clock
  uint8_t dlm_ = 0;
  bool thr_pending_ = false;  // the THR-empty interrupt is latched (reported while IER.ETBEI is set)
  std::deque<uint8_t> rx_fifo_;   // at most fifo_capacity()
  std::deque<uint8_t> rx_queue_;  // host input waiting for FIFO room, at most kInputQueueBytes
  bool irq_level_ = false;
};

}  // namespace ckpt::vmm::devices
