// The legacy PC platform a Linux guest sees through port I/O, besides what KVM emulates in the kernel (PIC, IOAPIC,
// LAPIC, PIT and its speaker port 0x61): COM1 (a 16550A on 0x3f8-0x3ff, IRQ 4), the two reset paths Linux uses
// (the i8042 "pulse reset line" command on port 0x64, the PCI reset control register 0xcf9, which is also the ACPI
// reset register), a CMOS/RTC that reads zero, and the ACPI PM1a registers the FADT describes (vmm/x86/acpi_hw.h:
// PM1_STS and PM1_EN at 0x600, PM1_CNT at 0x604), through which the guest powers off. Every other port reads all
// ones and ignores writes, as an empty bus does; so does MMIO outside RAM.
// Thread-safe: vCPU threads call handle_io/handle_mmio concurrently; the UART and the PM1 registers have locks.
#pragma once

#include "vmm/kvm/kvm_api.h"

#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "common/status.h"
#include "vmm/devices/serial_16550.h"
#include "vmm/machine.h"

namespace ckpt::vmm::kvm {

class PlatformIo {
 public:
  static constexpr uint16_t kCom1Base = 0x3f8;
  static constexpr uint32_t kCom1Irq = 4;

  using GuestRequest = std::function<void(const std::string& how)>;

  // `vm_fd` takes the UART's interrupt (KVM_IRQ_LINE). `on_reset` and `on_power_off` are called on the vCPU thread
  // that asked, once per request, with no lock of this class held.
  PlatformIo(int vm_fd, GuestRequest on_reset, GuestRequest on_power_off);

  void handle_io(kvm_run& run);
  void handle_mmio(kvm_run& run);

  void set_console_sink(ConsoleSink* sink);
  size_t console_input(std::span<const uint8_t> bytes) { return com1_.receive(bytes); }

  // The devices' state as named blobs ("serial/com1", "acpi/pm1"), and back; load before the guest runs. A state
  // without "acpi/pm1" (saved before the guest had ACPI) leaves the PM1 registers as at power-on.
  void save_state(std::vector<StateBlob>& out) const;
  Status load_state(const std::vector<StateBlob>& state);
  // The first KVM_IRQ_LINE failure, if any (the UART cannot report it itself).
  Status irq_error() const;

 private:
  uint8_t read_port(uint16_t port);
  void write_port(uint16_t port, uint8_t value);
  // An access of `size` bytes that touches the PM1 block; `data` is the exit's little-endian data.
  void pm1_access(bool write, uint16_t port, uint8_t size, uint8_t* data);
  void set_com1_irq(bool level);
  void transmit(uint8_t byte);

  int vm_fd_;
  GuestRequest on_reset_;
  GuestRequest on_power_off_;
  devices::Serial16550 com1_;
  // PM1_STS always reads zero (no fixed event ever happens), so only these two are state.
  mutable std::mutex pm1_mutex_;
  uint16_t pm1_enable_ = 0;   // PM1_EN as written
  uint16_t pm1_control_ = 0;  // PM1_CNT's read/write bits (BM_RLD, SLP_TYP); SCI_EN reads as set besides
  std::mutex sink_mutex_;  // held while the sink is called, so set_console_sink(nullptr) waits for a call in flight
  ConsoleSink* sink_ = nullptr;
  mutable std::mutex irq_mutex_;
  Status irq_error_;
};

}  // namespace ckpt::vmm::kvm
