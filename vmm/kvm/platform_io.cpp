#include "vmm/kvm/platform_io.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/log.h"
#include "vmm/x86/acpi_hw.h"

namespace ckpt::vmm::kvm {
namespace {

namespace acpi = x86::acpi_hw;

constexpr uint16_t kI8042Command = 0x64;
constexpr uint8_t kI8042PulseReset = 0xfe;  // pulse output line 0: the CPU's reset
constexpr uint16_t kResetControl = 0xcf9;
constexpr uint8_t kResetCpu = 0x04;  // RST_CPU; Linux writes 0x02 (SYS_RST) first, then 0x06 or 0x0e
constexpr uint16_t kCmosIndex = 0x70, kCmosData = 0x71;
static_assert(acpi::kResetPort == kResetControl && (acpi::kResetValue & kResetCpu), "the FADT's reset register resets");

// The PM1a event and control blocks, 0x600..0x605: PM1_STS, PM1_EN, PM1_CNT, 16 bits each.
constexpr uint32_t kPm1Begin = acpi::kPm1EventPort;
constexpr uint32_t kPm1End = acpi::kPm1ControlPort + acpi::kPm1ControlBytes;
enum : unsigned { kPm1Status = 0, kPm1Enable = 1, kPm1Control = 2, kPm1Registers = 3 };
static_assert(kPm1End - kPm1Begin == 2 * kPm1Registers);
constexpr uint16_t kPm1ControlKept = acpi::kBmRld | acpi::kSlpTypMask;  // the read/write bits of PM1_CNT

// "acpi/pm1", version 1: magic "PM1a", u16 version, u16 PM1_EN, u16 PM1_CNT (the kept bits), little-endian.
constexpr const char* kPm1Blob = "acpi/pm1";
constexpr char kPm1Magic[4] = {'P', 'M', '1', 'a'};
constexpr uint16_t kPm1Version = 1;
constexpr size_t kPm1BlobBytes = 10;

bool touches_pm1(uint16_t port, uint32_t size) { return port < kPm1End && port + size > kPm1Begin; }

uint16_t le16(std::span<const uint8_t> b, size_t at) { return static_cast<uint16_t>(b[at] | (b[at + 1] << 8)); }
void put_le16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(static_cast<uint8_t>(v));
  b.push_back(static_cast<uint8_t>(v >> 8));
}

}  // namespace

PlatformIo::PlatformIo(int vm_fd, GuestRequest on_reset, GuestRequest on_power_off)
    : vm_fd_(vm_fd),
      on_reset_(std::move(on_reset)),
      on_power_off_(std::move(on_power_off)),
      com1_([this](bool level) { set_com1_irq(level); }, [this](uint8_t byte) { transmit(byte); }) {}

void PlatformIo::handle_io(kvm_run& run) {
  auto* data = reinterpret_cast<uint8_t*>(&run) + run.io.data_offset;
  for (uint32_t i = 0; i < run.io.count; ++i, data += run.io.size) {
    // The PM1 registers are 16 bits wide and ACPICA reads and writes them so; they take any width.
    if (touches_pm1(run.io.port, run.io.size)) {
      pm1_access(run.io.direction == KVM_EXIT_IO_OUT, run.io.port, run.io.size, data);
      continue;
    }
    // The other devices are byte-wide. A wider access is not split into bytes: a 32-bit write of all ones to the PCI
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

void PlatformIo::pm1_access(bool write, uint16_t port, uint8_t size, uint8_t* data) {
  // The block as six bytes of three little-endian registers; bytes of the access outside it are an empty bus.
  bool power_off = false;
  {
    std::lock_guard lock(pm1_mutex_);
    if (!write) {
      // PM1_STS: no fixed event (timer, buttons, RTC, wake) ever happens, so no status bit is ever set.
      const uint16_t regs[kPm1Registers] = {0, pm1_enable_, static_cast<uint16_t>(pm1_control_ | acpi::kSciEn)};
      for (uint32_t i = 0; i < size; ++i) {
        const uint32_t p = port + i;
        data[i] = (p >= kPm1Begin && p < kPm1End) ? static_cast<uint8_t>(regs[(p - kPm1Begin) / 2] >> (8 * (p % 2)))
                                                  : 0xff;
      }
      return;
    }
    uint16_t value[kPm1Registers] = {}, mask[kPm1Registers] = {};
    for (uint32_t i = 0; i < size; ++i) {
      const uint32_t p = port + i;
      if (p < kPm1Begin || p >= kPm1End) continue;
      const unsigned reg = (p - kPm1Begin) / 2, shift = 8 * (p % 2);
      value[reg] = static_cast<uint16_t>(value[reg] | (data[i] << shift));
      mask[reg] = static_cast<uint16_t>(mask[reg] | (0xff << shift));
    }
    // PM1_STS is write-1-to-clear, of bits that are never set: a write changes nothing.
    pm1_enable_ = static_cast<uint16_t>((pm1_enable_ & ~mask[kPm1Enable]) | (value[kPm1Enable] & mask[kPm1Enable]));
    if (mask[kPm1Control] != 0) {
      const uint16_t written = value[kPm1Control] & mask[kPm1Control];
      pm1_control_ = static_cast<uint16_t>(((pm1_control_ & ~mask[kPm1Control]) | written) & kPm1ControlKept);
      // SLP_EN is write-only: it acts in the write that sets it (ACPICA writes SLP_TYP first, then SLP_TYP | SLP_EN).
      if (written & acpi::kSlpEn) {
        const auto sleep_type = static_cast<uint16_t>((pm1_control_ & acpi::kSlpTypMask) >> acpi::kSlpTypShift);
        power_off = sleep_type == acpi::kS5SleepType;
        if (!power_off) {
          // The DSDT offers no other sleeping state; a guest that asks anyway just keeps running.
          CKPT_LOG(kWarn) << "the guest asked for ACPI sleep type " << sleep_type << ", which the platform does not "
                          << "have (only S5, type " << int{acpi::kS5SleepType} << "); ignored";
        }
      }
    }
  }
  if (power_off) {
    on_power_off_("ACPI soft off (S5: SLP_TYP " + std::to_string(acpi::kS5SleepType) +
                  " and SLP_EN written to PM1a_CNT, port 0x604)");
  }
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
  std::vector<uint8_t> pm1(kPm1Magic, kPm1Magic + sizeof kPm1Magic);
  put_le16(pm1, kPm1Version);
  {
    std::lock_guard lock(pm1_mutex_);
    put_le16(pm1, pm1_enable_);
    put_le16(pm1, pm1_control_);
  }
  out.push_back(StateBlob{kPm1Blob, std::move(pm1)});
}

Status PlatformIo::load_state(const std::vector<StateBlob>& state) {
  // Power-on values, for a state saved before the platform had ACPI: that guest never saw PM1 registers.
  uint16_t enable = 0, control = 0;
  if (const StateBlob* blob = find_state_blob(state, kPm1Blob)) {
    std::span<const uint8_t> b(blob->data);
    auto refuse = [](const std::string& why) { return corruption(std::string(kPm1Blob) + ": " + why); };
    if (b.size() < 6 || std::memcmp(b.data(), kPm1Magic, sizeof kPm1Magic) != 0) {
      return refuse("not a PM1 state blob (" + std::to_string(b.size()) + " bytes, no PM1a magic)");
    }
    if (const uint16_t version = le16(b, 4); version != kPm1Version) {
      return Status(StatusCode::kUnsupported, std::string(kPm1Blob) + ": version " + std::to_string(version) +
                                                  " (this ckptd reads version " + std::to_string(kPm1Version) + ")");
    }
    if (b.size() != kPm1BlobBytes) {
      return refuse(std::to_string(b.size()) + " bytes, version 1 has " + std::to_string(kPm1BlobBytes));
    }
    enable = le16(b, 6);
    control = le16(b, 8);
    if (control & ~kPm1ControlKept) {
      return refuse("PM1_CNT " + std::to_string(control) + " sets bits other than BM_RLD and SLP_TYP");
    }
  }
  const StateBlob* com1 = find_state_blob(state, "serial/com1");
  if (com1 == nullptr) return invalid_argument("machine state lacks serial/com1");
  CKPT_RETURN_IF_ERROR(com1_.load_state(com1->data).with_context("serial/com1"));
  std::lock_guard lock(pm1_mutex_);
  pm1_enable_ = enable;
  pm1_control_ = control;
  return Status::ok();
}

}  // namespace ckpt::vmm::kvm
