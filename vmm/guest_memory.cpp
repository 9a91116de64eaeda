#include "vmm/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

void GuestMemory::mark_dirty(uint64_t gpa, uint64_t bytes) {
  if (bytes == 0 || gpa >= bytes_) return;
  uint64_t end = bytes > bytes_ - gpa ? bytes_ : gpa + bytes;
  std::lock_guard lock(vmm_dirty_mutex_);
  for (uint64_t gfn = gpa / 4096; gfn * 4096 < end; ++gfn) vmm_dirty_.set(gfn);
}

void GuestMemory::take_vmm_dirty(DirtyBitmap& out) {
  std::lock_guard lock(vmm_dirty_mutex_);
  out.merge(vmm_dirty_);
  vmm_dirty_.clear();
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> GuestMemory::data_ranges() const {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  off_t end = static_cast<off_t>(bytes_);
  for (off_t offset = 0; offset < end;) {
    off_t data = ::lseek(fd_.get(), offset, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // no data at or after offset
    if (data < 0) return Status::from_errno(errno, "lseek SEEK_DATA on guest memory at " + std::to_string(offset));
    off_t hole = ::lseek(fd_.get(), data, SEEK_HOLE);
    if (hole < 0) return Status::from_errno(errno, "lseek SEEK_HOLE on guest memory at " + std::to_string(data));
    hole = std::min(hole, end);
    uint64_t first = static_cast<uint64_t>(data) / 4096, last = (static_cast<uint64_t>(hole) + 4095) / 4096;
    ranges.emplace_back(first, last - first);
    offset = hole;
  }
  return ranges;
}

}  // namespace ckpt::vmm
