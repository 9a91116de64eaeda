#include "vmm/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

namespace ckpt::vmm {

Result<std::unique_ptr<GuestMemory>> GuestMemory::create(uint64_t bytes) {
  if (bytes == 0 || bytes % (2ull << 20) != 0) {
    return invalid_argument("guest memory of " + std::to_string(bytes) + " bytes is not a positive multiple of 2 MiB");
  }
  std::unique_ptr<GuestMemory> m(new GuestMemory());
  m->bytes_ = bytes;
  m->fd_.reset(::memfd_create("ckptd-guest", MFD_CLOEXEC));
  if (!m->fd_.valid()) return Status::from_errno(errno, "memfd_create for guest memory");
  if (::ftruncate(m->fd_.get(), static_cast<off_t>(bytes)) != 0) {
    return Status::from_errno(errno, "ftruncate guest memfd to " + std::to_string(bytes) + " bytes");
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd_.get(), 0);
  if (p == MAP_FAILED) return Status::from_errno(errno, "mmap guest memory");
  m->host_ = static_cast<uint8_t*>(p);
  for (uint64_t gpa = 0; gpa < bytes; gpa += kMaxSlotBytes) {
    uint64_t size = std::min(kMaxSlotBytes, bytes - gpa);
    m->slots_.push_back(MemorySlot{static_cast<uint32_t>(m->slots_.size()), gpa, size, m->host_ + gpa});
  }
  m->vmm_dirty_ = DirtyBitmap(bytes / 4096);
  return m;
}

GuestMemory::~GuestMemory() {
  if (host_) ::munmap(host_, bytes_);
}

Status GuestMemory::write(uint64_t gpa, std::span<const uint8_t> data) {
  if (gpa > bytes_ || data.size() > bytes_ - gpa) {
    return invalid_argument("write of " + std::to_string(data.size()) + " bytes at gpa " + std::to_string(gpa) +
                            " is outside guest memory");
  }
  std::memcpy(host_ + gpa, data.data(), data.size());
  std::lock_guard lock(vmm_dirty_mutex_);
  for (uint64_t gfn = gpa / 4096; gfn * 4096 < gpa + data.size(); ++gfn) vmm_dirty_.set(gfn);
  return Status::ok();
}

void GuestMemory::take_vmm_dirty(DirtyBitmap& out) {
  std::lock_guard lock(vmm_dirty_mutex_);
  out.merge(vmm_dirty_);
  vmm_dirty_.clear();
}

}  // namespace ckpt::vmm
