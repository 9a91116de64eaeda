#include "vmm/kvm/dirty_tracker.h"

#include "common/log.h"
#include "vmm/kvm/bitmap_tracker.h"
#include "vmm/kvm/kvm_api.h"
#include "vmm/kvm/ring_tracker.h"

namespace ckpt::vmm::kvm {
namespace {

int vm_check(int vm_fd, long capability) {
  int rc = ::ioctl(vm_fd, KVM_CHECK_EXTENSION, capability);
  return rc < 0 ? 0 : rc;
}

Status enable_cap(int vm_fd, uint32_t capability, uint64_t arg0, const char* name) {
  kvm_enable_cap cap{};
  cap.cap = capability;
  cap.args[0] = arg0;
  Status s = KVM_CALL(vm_fd, KVM_ENABLE_CAP, &cap).status();
  return s.with_context(std::string("enable ") + name);
}

Result<std::unique_ptr<DirtyTracker>> make_ring(int vm_fd, const GuestMemory& memory, uint32_t entries,
                                                unsigned vcpus) {
  bool acq_rel = vm_check(vm_fd, KVM_CAP_DIRTY_LOG_RING_ACQ_REL) > 0;
  long cap = acq_rel ? KVM_CAP_DIRTY_LOG_RING_ACQ_REL : KVM_CAP_DIRTY_LOG_RING;
  uint64_t max_bytes = static_cast<uint64_t>(vm_check(vm_fd, cap));
  uint64_t bytes = uint64_t{entries} * sizeof(kvm_dirty_gfn);
  if (max_bytes == 0) return unsupported("this KVM has no dirty ring (KVM_CAP_DIRTY_LOG_RING)");
  if (entries == 0 || (entries & (entries - 1)) != 0 || bytes < 4096 || bytes > max_bytes) {
    return invalid_argument("dirty ring of " + std::to_string(entries) + " entries: must be a power of two from " +
                            "256 to " + std::to_string(max_bytes / sizeof(kvm_dirty_gfn)));
  }
  CKPT_RETURN_IF_ERROR(enable_cap(vm_fd, static_cast<uint32_t>(cap), bytes,
                                  acq_rel ? "KVM_CAP_DIRTY_LOG_RING_ACQ_REL" : "KVM_CAP_DIRTY_LOG_RING"));
  return std::unique_ptr<DirtyTracker>(new RingTracker(memory, entries, acq_rel, vcpus));
}

Result<std::unique_ptr<DirtyTracker>> make_clear_log(int vm_fd, const GuestMemory& memory) {
  if (vm_check(vm_fd, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2) == 0) {
    return unsupported("this KVM has no KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (clear-log)");
  }
  CKPT_RETURN_IF_ERROR(enable_cap(vm_fd, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE,
                                  "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2"));
  return std::unique_ptr<DirtyTracker>(new BitmapTracker(memory, /*manual_protect=*/true));
}

}  // namespace

Result<std::unique_ptr<DirtyTracker>> make_dirty_tracker(TrackingMode mode, int vm_fd, const GuestMemory& memory,
                                                         uint32_t ring_entries, unsigned vcpus) {
  switch (mode) {
    case TrackingMode::kDirtyRing: return make_ring(vm_fd, memory, ring_entries, vcpus);
    case TrackingMode::kClearLog: return make_clear_log(vm_fd, memory);
    case TrackingMode::kDirtyLog:
      return std::unique_ptr<DirtyTracker>(new BitmapTracker(memory, /*manual_protect=*/false));
    case TrackingMode::kAuto: {
      auto ring = make_ring(vm_fd, memory, ring_entries, vcpus);
      if (ring.is_ok() || ring.status().code() != StatusCode::kUnsupported) return ring;
      CKPT_LOG(kInfo) << "no dirty ring (" << ring.status().message() << "); trying clear-log";
      auto clear = make_clear_log(vm_fd, memory);
      if (clear.is_ok() || clear.status().code() != StatusCode::kUnsupported) return clear;
      return std::unique_ptr<DirtyTracker>(new BitmapTracker(memory, /*manual_protect=*/false));
    }
    case TrackingMode::kUffdWp:
    case TrackingMode::kConservative: break;
  }
  return invalid_argument("tracking mode " + std::string(tracking_mode_name(mode)) + " is not a KVM mode");
}

}  // namespace ckpt::vmm::kvm
