#include "vmm/devices/serial_16550.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace ckpt::vmm::devices {

namespace {

// Register offsets from the base port. With LCR.DLAB set, 0 and 1 are the divisor latch instead.
constexpr uint8_t kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;

constexpr uint8_t kIerRx = 0x01, kIerThr = 0x02, kIerLineStatus = 0x04, kIerModem = 0x08, kIerMask = 0x0f;
constexpr uint8_t kIirNone = 0x01, kIirLineStatus = 0x06, kIirRxData = 0x04, kIirRxTimeout = 0x0c, kIirThr = 0x02,
                  kIirModem = 0x00, kIirFifoBits = 0xc0;
constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02, kFcrDma = 0x08, kFcrTrigger = 0xc0;
constexpr uint8_t kFcrKept = kFcrEnable | kFcrDma | kFcrTrigger;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08, kMcrLoop = 0x10, kMcrMask = 0x1f;
constexpr uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kMsrDcts = 0x01, kMsrDdsr = 0x02, kMsrTeri = 0x04, kMsrDdcd = 0x08, kMsrCts = 0x10, kMsrDsr = 0x20,
                  kMsrRi = 0x40, kMsrDcd = 0x80;

// The receive FIFO trigger levels selected by FCR bits 6..7.
constexpr size_t kTriggerLevels[] = {1, 4, 8, 14};

// The state blob, version 1 (docs/vmm.md, "State").
constexpr char kMagic[4] = {'U', '5', '5', '0'};
constexpr size_t kHeaderBytes = 35;  // everything before the queued input
constexpr size_t kOffIer = 6, kOffFcr = 7, kOffLcr = 8, kOffMcr = 9, kOffLsr = 10, kOffMsrDelta = 11, kOffScr = 12,
                 kOffDll = 13, kOffDlm = 14, kOffFlags = 15, kOffFifoCount = 16, kOffFifo = 17, kOffQueueLen = 33;
constexpr uint8_t kFlagThrPending = 0x01;

}  // namespace

Serial16550::Serial16550(std::function<void(bool level)> set_irq, std::function<void(uint8_t byte)> transmit)
    : set_irq_(std::move(set_irq)), transmit_(std::move(transmit)) {}

uint8_t Serial16550::read(uint8_t offset) {
  std::lock_guard lock(mu_);
  uint8_t value = read_locked(offset);
  update_irq();
  return value;
}

void Serial16550::write(uint8_t offset, uint8_t value) {
  std::lock_guard lock(mu_);
  write_locked(offset, value);
  update_irq();
}

bool Serial16550::irq_level() const {
  std::lock_guard lock(mu_);
  return irq_level_;
}

bool Serial16550::fifo_enabled() const { return fcr_ & kFcrEnable; }
bool Serial16550::loopback() const { return mcr_ & kMcrLoop; }
size_t Serial16550::fifo_capacity() const { return fifo_enabled() ? kFifoBytes : 1; }

uint8_t Serial16550::modem_inputs() const {
  if (!loopback()) return kMsrCts | kMsrDsr | kMsrDcd;
  uint8_t in = 0;
  if (mcr_ & kMcrRts) in |= kMsrCts;
  if (mcr_ & kMcrDtr) in |= kMsrDsr;
  if (mcr_ & kMcrOut1) in |= kMsrRi;
  if (mcr_ & kMcrOut2) in |= kMsrDcd;
  return in;
}

uint8_t Serial16550::line_status() const {
  uint8_t lsr = kLsrThre | kLsrTemt;  // output is never held back
  if (!rx_fifo_.empty()) lsr |= kLsrDr;
  if (overrun_) lsr |= kLsrOe;
  return lsr;
}

// The 16550's priority order: receiver line status, received data (trigger level reached, else the character
// timeout indication), THR empty, modem status.
uint8_t Serial16550::interrupt_id() const {
  if ((ier_ & kIerLineStatus) && overrun_) return kIirLineStatus;
  if ((ier_ & kIerRx) && !rx_fifo_.empty()) {
    if (!fifo_enabled() || rx_fifo_.size() >= kTriggerLevels[fcr_ >> 6]) return kIirRxData;
    return kIirRxTimeout;
  }
  if ((ier_ & kIerThr) && thr_pending_) return kIirThr;
  if ((ier_ & kIerModem) && msr_delta_) return kIirModem;
  return kIirNone;
}

void Serial16550::update_irq() {
  bool level = interrupt_id() != kIirNone;
  if (level == irq_level_) return;
  irq_level_ = level;
  if (set_irq_) set_irq_(level);
}

uint8_t Serial16550::read_locked(uint8_t offset) {
  switch (offset) {
    case kRbrThr: {
      if (lcr_ & kLcrDlab) return dll_;
      if (rx_fifo_.empty()) return 0;  // the chip returns the last byte again; nothing depends on it
      uint8_t byte = rx_fifo_.front();
      rx_fifo_.pop_front();
      refill_fifo();
      return byte;
    }
    case kIer:
      return (lcr_ & kLcrDlab) ? dlm_ : ier_;
    case kIirFcr: {
      uint8_t id = interrupt_id();
      // Reading IIR acknowledges the THR-empty interrupt, but only when it is the source being reported.
      if (id == kIirThr) thr_pending_ = false;
      return id | (fifo_enabled() ? kIirFifoBits : 0);
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr: {
      uint8_t lsr = line_status();
      overrun_ = false;  // reading LSR clears the error bits
      return lsr;
    }
    case kMsr: {
      uint8_t msr = modem_inputs() | msr_delta_;
      msr_delta_ = 0;
      return msr;
    }
    case kScr:
      return scr_;
    default:
      return 0xff;  // no register: what an undriven ISA bus reads
  }
}

void Serial16550::write_locked(uint8_t offset, uint8_t value) {
  switch (offset) {
    case kRbrThr:
      if (lcr_ & kLcrDlab) dll_ = value;
      else transmit_byte(value);
      return;
    case kIer:
      if (lcr_ & kLcrDlab) {
        dlm_ = value;
        return;
      }
      // Enabling the THR-empty interrupt while THR is empty (it always is here) raises it at once; Linux's
      // startup test relies on this and on the raise repeating after IER is cleared and set again.
      if ((value & kIerThr) && !(ier_ & kIerThr)) thr_pending_ = true;
      ier_ = value & kIerMask;
      return;
    case kIirFcr:
      write_fcr(value);  // FCR is written whatever DLAB says
      return;
    case kLcr:
      lcr_ = value;
      return;
    case kMcr:
      write_mcr(value);
      return;
    case kScr:
      scr_ = value;
      return;
    default:
      return;  // LSR and MSR writes (factory test on the chip) and offsets past 7 are ignored
  }
}

void Serial16550::write_fcr(uint8_t value) {
  bool was_enabled = fifo_enabled();
  if (!(value & kFcrEnable)) {
    // The chip ignores the other bits unless bit 0 is set in the same write.
    fcr_ = 0;
  } else {
    fcr_ = value & kFcrKept;
  }
  // Changing the FIFO mode empties both FIFOs; bit 1 empties the receive FIFO (the TX FIFO is always empty here).
  if (was_enabled != fifo_enabled() || ((value & kFcrEnable) && (value & kFcrClearRx))) rx_fifo_.clear();
  refill_fifo();
}

void Serial16550::write_mcr(uint8_t value) {
  uint8_t before = modem_inputs();
  mcr_ = value & kMcrMask;
  uint8_t after = modem_inputs();
  uint8_t changed = before ^ after;
  if (changed & kMsrCts) msr_delta_ |= kMsrDcts;
  if (changed & kMsrDsr) msr_delta_ |= kMsrDdsr;
  if ((before & kMsrRi) && !(after & kMsrRi)) msr_delta_ |= kMsrTeri;  // the trailing edge only
  if (changed & kMsrDcd) msr_delta_ |= kMsrDdcd;
  refill_fifo();  // leaving loopback reconnects the receive line to the waiting host input
}

void Serial16550::transmit_byte(uint8_t byte) {
  thr_pending_ = false;  // writing THR acknowledges the THR-empty interrupt...
  if (loopback()) push_rx(byte);
  else if (transmit_) transmit_(byte);
  thr_pending_ = true;  // ...and the byte is gone at once, so THR is empty again
}

void Serial16550::push_rx(uint8_t byte) {
  if (rx_fifo_.size() < fifo_capacity()) {
    rx_fifo_.push_back(byte);
    return;
  }
  overrun_ = true;
  // With the FIFO, the byte in the shift register is lost; without it, the new byte overwrites RBR.
  if (!fifo_enabled()) rx_fifo_.back() = byte;
}

void Serial16550::refill_fifo() {
  if (loopback()) return;  // the receive line is disconnected from the outside in loopback
  while (!rx_queue_.empty() && rx_fifo_.size() < fifo_capacity()) {
    rx_fifo_.push_back(rx_queue_.front());
    rx_queue_.pop_front();
  }
}

size_t Serial16550::receive(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mu_);
  // Room in the FIFO (while the receive line is connected, the queue is empty whenever the FIFO has room) and
  // in the queue behind it.
  size_t fifo_room = loopback() ? 0 : fifo_capacity() - rx_fifo_.size();
  size_t room = fifo_room + (kInputQueueBytes - rx_queue_.size());
  size_t accepted = std::min(room, bytes.size());
  rx_queue_.insert(rx_queue_.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(accepted));
  refill_fifo();
  update_irq();
  return accepted;
}

std::vector<uint8_t> Serial16550::save_state() const {
  std::lock_guard lock(mu_);
  std::vector<uint8_t> blob(kHeaderBytes + rx_queue_.size(), 0);
  std::memcpy(blob.data(), kMagic, sizeof kMagic);
  blob[4] = kStateVersion & 0xff;
  blob[5] = kStateVersion >> 8;
  blob[kOffIer] = ier_;
  blob[kOffFcr] = fcr_;
  blob[kOffLcr] = lcr_;
  blob[kOffMcr] = mcr_;
  blob[kOffLsr] = overrun_ ? kLsrOe : 0;
  blob[kOffMsrDelta] = msr_delta_;
  blob[kOffScr] = scr_;
  blob[kOffDll] = dll_;
  blob[kOffDlm] = dlm_;
  blob[kOffFlags] = thr_pending_ ? kFlagThrPending : 0;
  blob[kOffFifoCount] = static_cast<uint8_t>(rx_fifo_.size());
  std::copy(rx_fifo_.begin(), rx_fifo_.end(), blob.begin() + kOffFifo);
  blob[kOffQueueLen] = static_cast<uint8_t>(rx_queue_.size() & 0xff);
  blob[kOffQueueLen + 1] = static_cast<uint8_t>(rx_queue_.size() >> 8);
  std::copy(rx_queue_.begin(), rx_queue_.end(), blob.begin() + kHeaderBytes);
  return blob;
}

Status Serial16550::load_state(std::span<const uint8_t> blob) {
  auto refuse = [](const std::string& why) { return corruption("serial 16550 state: " + why); };
  if (blob.size() < 6 || std::memcmp(blob.data(), kMagic, sizeof kMagic) != 0) {
    return refuse("not a 16550 state blob (" + std::to_string(blob.size()) + " bytes, no U550 magic)");
  }
  uint16_t version = static_cast<uint16_t>(blob[4] | (blob[5] << 8));
  if (version != kStateVersion) {
    return Status(StatusCode::kUnsupported, "serial 16550 state: version " + std::to_string(version) +
                                                " (this ckptd reads version " + std::to_string(kStateVersion) + ")");
  }
  if (blob.size() < kHeaderBytes) {
    return refuse(std::to_string(blob.size()) + " bytes, shorter than the " + std::to_string(kHeaderBytes) +
                  "-byte version 1 header");
  }
  size_t queued = blob[kOffQueueLen] | (blob[kOffQueueLen + 1] << 8);
  if (queued > kInputQueueBytes) {
    return refuse(std::to_string(queued) + " queued input bytes, over the bound of " +
                  std::to_string(kInputQueueBytes));
  }
  if (blob.size() != kHeaderBytes + queued) {
    return refuse(std::to_string(blob.size()) + " bytes where a header and " + std::to_string(queued) +
                  " queued input bytes make " + std::to_string(kHeaderBytes + queued));
  }
  uint8_t ier = blob[kOffIer], fcr = blob[kOffFcr], mcr = blob[kOffMcr], lsr = blob[kOffLsr],
          delta = blob[kOffMsrDelta], flags = blob[kOffFlags], count = blob[kOffFifoCount];
  if (ier & ~kIerMask) return refuse("IER " + std::to_string(ier) + " sets bits a 16550A does not have");
  if ((fcr & ~kFcrKept) || (!(fcr & kFcrEnable) && fcr != 0)) {
    return refuse("FCR " + std::to_string(fcr) + " is not a FIFO setting the device keeps");
  }
  if (mcr & ~kMcrMask) return refuse("MCR " + std::to_string(mcr) + " sets bits a 16550A does not have");
  if (lsr & ~kLsrOe) return refuse("latched LSR bits " + std::to_string(lsr) + " other than OE");
  if (delta & 0xf0) return refuse("MSR deltas " + std::to_string(delta) + " beyond bits 0..3");
  if (flags & ~kFlagThrPending) return refuse("unknown flags " + std::to_string(flags));
  size_t capacity = (fcr & kFcrEnable) ? kFifoBytes : 1;
  if (count > capacity) {
    return refuse(std::to_string(count) + " bytes in an RX FIFO of " + std::to_string(capacity));
  }
  for (size_t i = count; i < kFifoBytes; ++i) {
    if (blob[kOffFifo + i] != 0) return refuse("RX FIFO slot " + std::to_string(i) + " past the count is not zero");
  }
  if (queued > 0 && count < capacity && !(mcr & kMcrLoop)) {
    return refuse("input is queued while the RX FIFO has room (" + std::to_string(count) + " of " +
                  std::to_string(capacity) + ")");
  }

  std::lock_guard lock(mu_);
  ier_ = ier;
  fcr_ = fcr;
  lcr_ = blob[kOffLcr];
  mcr_ = mcr;
  overrun_ = lsr & kLsrOe;
  msr_delta_ = delta;
  scr_ = blob[kOffScr];
  dll_ = blob[kOffDll];
  dlm_ = blob[kOffDlm];
  thr_pending_ = flags & kFlagThrPending;
  rx_fifo_.assign(blob.begin() + kOffFifo, blob.begin() + kOffFifo + count);
  rx_queue_.assign(blob.begin() + kHeaderBytes, blob.end());
  // Driven even when unchanged: the line outside (a fresh VM's irqchip) may not be where this object thought.
  irq_level_ = interrupt_id() != kIirNone;
  if (set_irq_) set_irq_(irq_level_);
  return Status::ok();
}

}  // namespace ckpt::vmm::devices
