// KVM_GET_DIRTY_LOG, alone (dirty-log) or with KVM_CLEAR_DIRTY_LOG (clear-log).
#pragma once

#include <vector>

#include "vmm/kvm/dirty_tracker.h"

namespace ckpt::vmm::kvm {

class BitmapTracker final : public DirtyTracker {
 public:
  // `manual_protect`: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 is enabled on the VM (clear-log mode).
  BitmapTracker(const GuestMemory& memory, bool manual_protect);
  TrackingMode mode() const override { return manual_protect_ ? TrackingMode::kClearLog : TrackingMode::kDirtyLog; }
  Status on_vm_ready(int vm_fd) override;
  Status on_vcpu_created(unsigned, int) override { return Status::ok(); }
  Status on_ring_full(unsigned) override { return unsupported("ring-full exit without a dirty ring"); }
  Status harvest(DirtyBitmap& out) override;
  Status rearm() override;

 private:
  const GuestMemory& memory_;
  bool manual_protect_;
  int vm_fd_ = -1;
  std::vector<std::vector<uint64_t>> bitmaps_;  // per slot: what the last harvest read, for KVM_CLEAR_DIRTY_LOG
  bool harvested_ = false;
};

}  // namespace ckpt::vmm::kvm
