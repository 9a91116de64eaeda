#include "vmm/kvm/virtio_disks.h"

#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/log.h"
#include "vmm/devices/virtio/uring_block_backend.h"

namespace ckpt::vmm::kvm {
namespace {

std::string blob_name(size_t index) { return "virtio/blk" + std::to_string(index); }

// Values of an MMIO exit are little-endian in the low bytes of data[8] (x86 is little-endian, so a memcpy).
uint64_t exit_value(const kvm_run& run) {
  uint64_t value = 0;
  std::memcpy(&value, run.mmio.data, std::min<size_t>(run.mmio.len, sizeof value));
  return value;
}

}  // namespace

Result<std::unique_ptr<VirtioDisks>> VirtioDisks::create(const std::vector<DiskConfig>& disks, GuestMemory& memory,
                                                         int vm_fd) {
  if (disks.size() > x86::kMaxVirtioMmioDevices) {
    return invalid_argument(std::to_string(disks.size()) + " disks: a guest has at most " +
                            std::to_string(x86::kMaxVirtioMmioDevices));
  }
  std::unique_ptr<VirtioDisks> self(new VirtioDisks(vm_fd));
  for (size_t i = 0; i < disks.size(); ++i) {
    auto backend = devices::virtio::open_uring_disk(disks[i].path, disks[i].read_only, static_cast<unsigned>(i));
    if (!backend.is_ok()) return backend.status().with_context("disk " + std::to_string(i));
    x86::VirtioMmioDevice mmio = x86::virtio_mmio_device(static_cast<unsigned>(i));
    VirtioDisks* disks_of = self.get();
    devices::virtio::GuestRam ram({memory.host(), memory.bytes()},
                                  [&memory](uint64_t gpa, uint64_t bytes) { memory.mark_dirty(gpa, bytes); });
    auto device = std::make_unique<devices::virtio::VirtioBlk>(
        std::move(ram), std::move(*backend), [disks_of, gsi = mmio.gsi] { disks_of->pulse(gsi); }, disks[i].serial);
    self->disks_.push_back(Disk{mmio, std::move(device)});
  }
  return self;
}

VirtioDisks::~VirtioDisks() = default;

std::vector<x86::VirtioMmioDevice> VirtioDisks::mmio_devices() const {
  std::vector<x86::VirtioMmioDevice> out;
  for (const Disk& d : disks_) out.push_back(d.mmio);
  return out;
}

bool VirtioDisks::handle_mmio(kvm_run& run) {
  for (Disk& d : disks_) {
    if (run.mmio.phys_addr < d.mmio.base || run.mmio.phys_addr - d.mmio.base >= d.mmio.bytes) continue;
    uint64_t offset = run.mmio.phys_addr - d.mmio.base;
    if (run.mmio.is_write) {
      d.device->mmio_write(offset, run.mmio.len, exit_value(run));
    } else {
      uint64_t value = d.device->mmio_read(offset, run.mmio.len);
      std::memcpy(run.mmio.data, &value, std::min<size_t>(run.mmio.len, sizeof value));
    }
    return true;
  }
  return false;
}

// The ACPI tables describe the interrupts as edge-triggered: each raise is a rising edge on the IOAPIC pin.
void VirtioDisks::pulse(uint32_t gsi) {
  for (uint32_t level : {1u, 0u}) {
    kvm_irq_level irq{};
    irq.irq = gsi;
    irq.level = level;
    if (::ioctl(vm_fd_, KVM_IRQ_LINE, &irq) == 0) continue;
    int err = errno;
    std::lock_guard lock(irq_mutex_);
    if (irq_error_.is_ok()) {
      irq_error_ = Status::from_errno(err, "ioctl KVM_IRQ_LINE (virtio-blk, GSI " + std::to_string(gsi) + ")");
      CKPT_LOG(kError) << irq_error_.to_string();
    }
    return;
  }
}

Status VirtioDisks::irq_error() const {
  std::lock_guard lock(irq_mutex_);
  return irq_error_;
}

Status VirtioDisks::pause(std::chrono::milliseconds timeout) {
  for (size_t i = 0; i < disks_.size(); ++i) {
    Status s = disks_[i].device->pause(timeout);
    if (!s.is_ok()) return s.with_context("pause disk " + std::to_string(i));
  }
  return Status::ok();
}

void VirtioDisks::resume() {
  for (Disk& d : disks_) d.device->resume();
}

std::vector<uint64_t> VirtioDisks::harvest_written_blocks(size_t index) {
  return index < disks_.size() ? disks_[index].device->take_written_blocks() : std::vector<uint64_t>{};
}

void VirtioDisks::save_state(std::vector<StateBlob>& out) const {
  for (size_t i = 0; i < disks_.size(); ++i) out.push_back(StateBlob{blob_name(i), disks_[i].device->save_state()});
}

Status VirtioDisks::load_state(const std::vector<StateBlob>& state) {
  size_t saved = 0;
  for (const StateBlob& blob : state) saved += blob.name.starts_with("virtio/blk");
  if (saved != disks_.size()) {
    return invalid_argument("the saved state has " + std::to_string(saved) + " disks, this machine " +
                            std::to_string(disks_.size()));
  }
  for (size_t i = 0; i < disks_.size(); ++i) {
    const StateBlob* blob = find_state_blob(state, blob_name(i));
    if (!blob) return invalid_argument("machine state lacks " + blob_name(i));
    CKPT_RETURN_IF_ERROR(disks_[i].device->load_state(blob->data).with_context(blob_name(i)));
  }
  return Status::ok();
}

}  // namespace ckpt::vmm::kvm
