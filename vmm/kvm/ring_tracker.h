// The KVM dirty ring: one ring of (slot, offset) entries per vCPU, shared with the kernel. The harvester reads an
// entry's flags with acquire ordering, records the gfn, and marks the entry RESET with release ordering;
// KVM_RESET_DIRTY_RINGS then re-protects the pages and recycles the entries, and must report exactly as many
// entries as were harvested. A full ring exits to userspace (KVM_EXIT_DIRTY_RING_FULL) on the vCPU's thread, which
// harvests its own ring into a pending set so the vCPU can continue and no page is lost. The same gfn may appear
// twice (around a ring-full exit); the bitmap absorbs duplicates.
#pragma once

#include <mutex>
#include <vector>

#include "vmm/kvm/dirty_tracker.h"
#include "vmm/kvm/kvm_api.h"

namespace ckpt::vmm::kvm {

class RingTracker final : public DirtyTracker {
 public:
  // `acq_rel`: the VM enabled KVM_CAP_DIRTY_LOG_RING_ACQ_REL (else the plain ring; x86 orders both the same way).
  RingTracker(const GuestMemory& memory, uint32_t entries, bool acq_rel, unsigned vcpus);
  ~RingTracker() override;
  TrackingMode mode() const override { return TrackingMode::kDirtyRing; }
  Status on_vm_ready(int vm_fd) override;
  Status on_vcpu_created(unsigned index, int vcpu_fd) override;
  Status on_ring_full(unsigned index) override;
  Status harvest(DirtyBitmap& out) override;
  Status rearm() override;

  bool acq_rel() const { return acq_rel_; }
  uint64_t ring_full_exits() const override {
    std::lock_guard lock(mutex_);
    return ring_full_exits_;
  }

 private:
  struct Ring {
    kvm_dirty_gfn* entries = nullptr;
    uint32_t fetch = 0;  // next entry to read; free-running, masked by entries_ - 1
  };
  uint64_t harvest_ring(Ring& ring, DirtyBitmap& out);
  Status reset_rings(uint64_t expected);

  const GuestMemory& memory_;
  uint32_t entries_;
  bool acq_rel_;
  int vm_fd_ = -1;
  std::vector<Ring> rings_;
  mutable std::mutex mutex_;  // serializes ring-full handling on vCPU threads with harvests
  DirtyBitmap pending_;     // pages taken off full rings since the last harvest
  uint64_t unreset_ = 0;    // entries marked RESET and not yet handed to KVM_RESET_DIRTY_RINGS
  uint64_t ring_full_exits_ = 0;
};

}  // namespace ckpt::vmm::kvm
