// The dirty-bitmap modes. dirty-log: KVM_GET_DIRTY_LOG returns a slot's bitmap and re-protects those pages in one
// call. clear-log (KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2): KVM_GET_DIRTY_LOG only reads; KVM_CLEAR_DIRTY_LOG then
// re-protects exactly the pages that were read, which keeps harvest cheap and makes rearm an explicit step.
#include <vector>

#include "vmm/kvm/bitmap_tracker.h"
#include "vmm/kvm/kvm_api.h"

namespace ckpt::vmm::kvm {

BitmapTracker::BitmapTracker(const GuestMemory& memory, bool manual_protect)
    : memory_(memory), manual_protect_(manual_protect) {
  for (const MemorySlot& slot : memory.slots()) bitmaps_.emplace_back((slot.pages() + 63) / 64, 0);
}

Status BitmapTracker::on_vm_ready(int vm_fd) {
  vm_fd_ = vm_fd;
  return Status::ok();
}

Status BitmapTracker::harvest(DirtyBitmap& out) {
  for (const MemorySlot& slot : memory_.slots()) {
    std::vector<uint64_t>& bits = bitmaps_[slot.id];
    std::fill(bits.begin(), bits.end(), 0);
    kvm_dirty_log log{};
    log.slot = slot.id;
    log.dirty_bitmap = bits.data();
    Status s = KVM_CALL(vm_fd_, KVM_GET_DIRTY_LOG, &log).status();
    if (!s.is_ok()) return s.with_context("slot " + std::to_string(slot.id));
    out.merge_words(slot.first_gfn(), bits.data(), bits.size());
  }
  harvested_ = true;
  return Status::ok();
}

Status BitmapTracker::rearm() {
  if (!manual_protect_ || !harvested_) return Status::ok();  // dirty-log re-protected during the harvest
  for (const MemorySlot& slot : memory_.slots()) {
    kvm_clear_dirty_log clear{};
    clear.slot = slot.id;
    clear.first_page = 0;
    clear.num_pages = static_cast<uint32_t>(slot.pages());
    clear.dirty_bitmap = bitmaps_[slot.id].data();
    Status s = KVM_CALL(vm_fd_, KVM_CLEAR_DIRTY_LOG, &clear).status();
    if (!s.is_ok()) return s.with_context("slot " + std::to_string(slot.id));
  }
  harvested_ = false;
  return Status::ok();
}

}  // namespace ckpt::vmm::kvm
