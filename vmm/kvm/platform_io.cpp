#include "vmm/kvm/platform_io.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace ckpt::vmm::kvm {
namespace {

constexpr uint16_t kI8042Command = 0x64;
constexpr uint8_t kI8042PulseReset = 0xfe;  // pulse output line 0: the CPU's reset
constexpr uint16_t kResetControl = 0xcf9;
constexpr uint8_t kResetCpu = 0x04;  // RST_CPU; Linux writes 0x02 (SYS_RST) first, then 0x06 or 0x0e
constexpr uint16_t kCmosIndex = 0x70, kCmosData = 0x71;

}  // namespace

PlatformIo::PlatformIo(int vm_fd, std::function<void(const std::string& how)> on_reset)
    : vm_fd_(vm_fd),
      on_reset_(std::move(on_reset)),
      com1_([this](bool level) { set_com1_irq(level); }, [this](uint8_t byte) { transmit(byte); }) {}

void PlatformIo::handle_io(kvm_run& run) {
  auto* data = reinterpret_cast<uint8_t*>(&run) + run.io.data_offset;
  for (uint32_t i = 0; i < run.io.count; ++i, data += run.io.size) {
    // The devices here are byte-wide. A wider access is not split into bytes: a 32-bit write of all ones to the PCI
    // configuration address (0xcf8), which Linux makes while probing for PCI, must not reach the reset register
    // at 0xcf9 as a byte with its reset bit set. Wider reads see an empty bus.
    if (run.io.size != 1) {
      if (run.io.direction == KVM_EXIT_IO_IN) std::memset(data, 0xff, run.io.size);
      continue;
    }
    if (run.io.direction == KVM_EXIT_IO_OUT) {
      write_port(run.io.port, data[0]);
    } else {
      data[0] = read_port(run.io.port);
    }
  }
}

void PlatformIo::handle_mmio(kvm_run& run) {
  if (!run.mmio.is_write) std::memset(run.mmio.data, 0xff, sizeof run.mmio.data);
}

uint8_t PlatformIo::read_port(uint16_t port) {
  if (port >= kCom1Base && port < kCom1Base + 8) return com1_.read(static_cast<uint8_t>(port - kCom1Base));
  if (port == kCmosData) return 0;  // an RTC that never updates: no "update in progress" for Linux to wait on
  return 0xff;
}

void PlatformIo::write_port(uint16_t port, uint8_t value) {
  if (port >= kCom1Base && port < kCom1Base + 8) {
    com1_.write(static_cast<uint8_t>(port - kCom1Base), value);
  } else if (port == kI8042Command && value == kI8042PulseReset) {
    on_reset_("i8042 reset (port 0x64)");
  } else if (port == kResetControl && (value & kResetCpu)) {
    on_reset_("reset control register (port 0xcf9)");
  }
  (void)kCmosIndex;  // the index is ignored: every CMOS register reads zero
}

void PlatformIo::set_com1_irq(bool level) {
  kvm_irq_level irq{};
  irq.irq = kCom1Irq;
  irq.level = level ? 1 : 0;
  if (::ioctl(vm_fd_, KVM_IRQ_LINE, &irq) == 0) return;
  int err = errno;
  std::lock_guard lock(irq_mutex_);
  if (irq_error_.is_ok()) {
    irq_error_ = Status::from_errno(err, "ioctl KVM_IRQ_LINE (COM1, IRQ 4)");
    CKPT_LOG(kError) << irq_error_.to_string();
  }
}

Status PlatformIo::irq_error() const {
  std::lock_guard lock(irq_mutex_);
  return irq_error_;
}

void PlatformIo::transmit(uint8_t byte) {
  std::lock_guard lock(sink_mutex_);
  if (sink_ != nullptr) sink_->console_output({&byte, 1});
}

void PlatformIo::set_console_sink(ConsoleSink* sink) {
  std::lock_guard lock(sink_mutex_);
  sink_ = sink;
}

void PlatformIo::save_state(std::vector<StateBlob>& out) const {
  out.push_back(StateBlob{"serial/com1", com1_.save_state()});
}

Status PlatformIo::load_state(const std::vector<StateBlob>& state) {
  for (const StateBlob& blob : state) {
    if (blob.name == "serial/com1") return com1_.load_state(blob.data).with_context("serial/com1");
  }
  return invalid_argument("machine state lacks serial/com1");
}

}  // namespace ckpt::vmm::kvm
