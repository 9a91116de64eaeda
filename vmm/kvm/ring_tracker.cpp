#include "vmm/kvm/ring_tracker.h"

#include <sys/mman.h>
#include <unistd.h>

namespace ckpt::vmm::kvm {
namespace {
constexpr uint32_t kFlagDirty = 1u << 0;  // KVM_DIRTY_GFN_F_DIRTY
constexpr uint32_t kFlagReset = 1u << 1;  // KVM_DIRTY_GFN_F_RESET
}  // namespace

RingTracker::RingTracker(const GuestMemory& memory, uint32_t entries, bool acq_rel, unsigned vcpus)
    : memory_(memory), entries_(entries), acq_rel_(acq_rel), rings_(vcpus), pending_(memory.pages()) {}

RingTracker::~RingTracker() {
  for (Ring& ring : rings_) {
    if (ring.entries) ::munmap(ring.entries, size_t{entries_} * sizeof(kvm_dirty_gfn));
  }
}

Status RingTracker::on_vm_ready(int vm_fd) {
  vm_fd_ = vm_fd;
  return Status::ok();
}

Status RingTracker::on_vcpu_created(unsigned index, int vcpu_fd) {
  long page = ::sysconf(_SC_PAGESIZE);
  void* p = ::mmap(nullptr, size_t{entries_} * sizeof(kvm_dirty_gfn), PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd,
                   KVM_DIRTY_LOG_PAGE_OFFSET * page);
  if (p == MAP_FAILED) return Status::from_errno(errno, "mmap dirty ring of vCPU " + std::to_string(index));
  rings_[index].entries = static_cast<kvm_dirty_gfn*>(p);
  return Status::ok();
}

uint64_t RingTracker::harvest_ring(Ring& ring, DirtyBitmap& out) {
  uint64_t count = 0;
  for (;;) {
    kvm_dirty_gfn& e = ring.entries[ring.fetch & (entries_ - 1)];
    if ((__atomic_load_n(&e.flags, __ATOMIC_ACQUIRE) & kFlagDirty) == 0) break;
    uint32_t slot = e.slot & 0xffff;  // (address space << 16) | slot id; one address space here
    if (slot < memory_.slots().size() && e.offset < memory_.slots()[slot].pages()) {
      out.set(memory_.slots()[slot].first_gfn() + e.offset);
    }
    __atomic_store_n(&e.flags, kFlagReset, __ATOMIC_RELEASE);
    ++ring.fetch;
    ++count;
  }
  return count;
}

Status RingTracker::reset_rings(uint64_t expected) {
  CKPT_ASSIGN_OR_RETURN(int reset, KVM_CALL_VALUE(vm_fd_, KVM_RESET_DIRTY_RINGS, 0));
  if (static_cast<uint64_t>(reset) != expected) {
    return Status(StatusCode::kIoError, "ioctl KVM_RESET_DIRTY_RINGS reset " + std::to_string(reset) +
                                            " entries, " + std::to_string(expected) + " were harvested");
  }
  return Status::ok();
}

Status RingTracker::on_ring_full(unsigned index) {
  std::lock_guard lock(mutex_);
  ++ring_full_exits_;
  uint64_t n = harvest_ring(rings_[index], pending_);
  // Only this ring holds RESET entries now (harvests run while every vCPU is parked), so the count must match.
  Status s = reset_rings(n + unreset_);
  unreset_ = 0;
  return s.with_context("vCPU " + std::to_string(index) + " ring full");
}

Status RingTracker::harvest(DirtyBitmap& out) {
  std::lock_guard lock(mutex_);
  for (Ring& ring : rings_) unreset_ += harvest_ring(ring, out);
  out.merge(pending_);
  pending_.clear();
  return Status::ok();
}

Status RingTracker::rearm() {
  std::lock_guard lock(mutex_);
  uint64_t expected = unreset_;
  unreset_ = 0;
  return reset_rings(expected);
}

}  // namespace ckpt::vmm::kvm
