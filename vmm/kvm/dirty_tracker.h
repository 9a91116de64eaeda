// One interface for KVM's three dirty-logging modes (after the kvm selftests' `struct log_mode`): hooks for VM
// creation (before any vCPU), slot flags, vCPU creation and ring-full exits, then harvest and rearm while paused.
#pragma once

#include <cstdint>
#include <memory>

#include "common/status.h"
#include "vmm/dirty_bitmap.h"
#include "vmm/guest_memory.h"
#include "vmm/machine.h"

namespace ckpt::vmm::kvm {

class DirtyTracker {
 public:
  virtual ~DirtyTracker() = default;
  virtual TrackingMode mode() const = 0;
  // Called once the memory slots exist and before any vCPU is created.
  virtual Status on_vm_ready(int vm_fd) = 0;
  virtual Status on_vcpu_created(unsigned index, int vcpu_fd) = 0;
  // On vCPU `index`'s own thread after KVM_EXIT_DIRTY_RING_FULL: move its ring into the pending set so the vCPU
  // can go on and no page is lost.
  virtual Status on_ring_full(unsigned index) = 0;
  // Paused: every page logged since the last harvest, into `out`.
  virtual Status harvest(DirtyBitmap& out) = 0;
  // Paused: re-protect what was harvested.
  virtual Status rearm() = 0;
  virtual uint64_t ring_full_exits() const { return 0; }
};

// Chooses and builds the tracker. With kAuto: ring (ACQ_REL or plain), else clear-log, else dirty-log. Must run
// before KVM_SET_USER_MEMORY_REGION: the ring and manual-protect capabilities are enabled on the VM first.
Result<std::unique_ptr<DirtyTracker>> make_dirty_tracker(TrackingMode mode, int vm_fd, const GuestMemory& memory,
                                                         uint32_t ring_entries, unsigned vcpus);

}  // namespace ckpt::vmm::kvm
