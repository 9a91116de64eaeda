// A Linux guest's disks on KVM: one virtio-blk device (vmm/devices/virtio) per configured image, at the virtio-mmio
// window and GSI the guest's ACPI tables give it (vmm/x86/acpi.h). This class routes MMIO exits to the devices,
// turns their interrupts into edges on their GSIs, quiesces them for a checkpoint and carries their state blobs
// ("virtio/blk<i>", docs/vmm.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include <linux/kvm.h>

#include "common/status.h"
#include "vmm/devices/virtio/virtio_blk.h"
#include "vmm/guest_memory.h"
#include "vmm/machine.h"
#include "vmm/x86/acpi.h"

namespace ckpt::vmm::kvm {

class VirtioDisks {
 public:
  // Opens every image of `disks` and makes its device; `vm_fd` raises the interrupts.
  static Result<std::unique_ptr<VirtioDisks>> create(const std::vector<DiskConfig>& disks, GuestMemory& memory,
                                                     int vm_fd);
  ~VirtioDisks();  // each device waits for its requests in flight; the vCPUs must be stopped

  // What the guest's ACPI tables describe, in order.
  std::vector<x86::VirtioMmioDevice> mmio_devices() const;
  size_t count() const { return disks_.size(); }

  // vCPU threads: true if the exit was inside a disk's window (and is answered).
  bool handle_mmio(kvm_run& run);

  // Loop thread, with the vCPUs parked: see VirtioBlk::pause. Fails naming the disk.
  Status pause(std::chrono::milliseconds timeout);
  void resume();
  std::vector<uint64_t> harvest_written_blocks(size_t index);
  // The first KVM_IRQ_LINE that failed, if any.
  Status irq_error() const;

  void save_state(std::vector<StateBlob>& out) const;
  // Needs exactly one blob per disk: a state saved with another number of disks is refused.
  Status load_state(const std::vector<StateBlob>& state);

 private:
  struct Disk {
    x86::VirtioMmioDevice mmio;
    std::unique_ptr<devices::virtio::VirtioBlk> device;
  };
  explicit VirtioDisks(int vm_fd) : vm_fd_(vm_fd) {}
  void pulse(uint32_t gsi);

  int vm_fd_;
  mutable std::mutex irq_mutex_;
  Status irq_error_;
  // Last: destroyed first, while the devices' completions may still pulse (and record an error above).
  std::vector<Disk> disks_;
};

}  // namespace ckpt::vmm::kvm
