#include "vmm/devices/virtio/memory_block_backend.h"

#include <cerrno>
#include <cstring>

namespace ckpt::vmm::devices::virtio {

MemoryBlockBackend::MemoryBlockBackend(uint64_t size_bytes, bool read_only, std::string name)
    : name_(std::move(name)), read_only_(read_only), image_(size_bytes, 0) {}

void MemoryBlockBackend::attach(std::function<void()> service) {
  std::lock_guard lock(service_mutex_);
  service_ = std::move(service);
}

void MemoryBlockBackend::kick() {
  std::lock_guard lock(service_mutex_);
  if (service_) service_();
}

int64_t MemoryBlockBackend::transfer(uint64_t offset, const std::vector<iovec>& buffers, bool to_disk) {
  std::lock_guard lock(mu_);
  if (fail_errno_ != 0) return -fail_errno_;
  uint64_t total = 0;
  for (const iovec& v : buffers) total += v.iov_len;
  if (offset > image_.size() || total > image_.size() - offset) {
    ++out_of_range_;
    return -EIO;
  }
  if (to_disk && read_only_) return -EBADF;  // what a write to a file opened read-only gets
  for (const iovec& v : buffers) {
    if (to_disk) {
      std::memcpy(image_.data() + offset, v.iov_base, v.iov_len);
    } else {
      std::memcpy(v.iov_base, image_.data() + offset, v.iov_len);
    }
    offset += v.iov_len;
  }
  return static_cast<int64_t>(total);
}

void MemoryBlockBackend::read(uint64_t offset, std::vector<iovec> buffers, Completion done) {
  done(transfer(offset, buffers, false));
}

void MemoryBlockBackend::write(uint64_t offset, std::vector<iovec> buffers, Completion done) {
  done(transfer(offset, buffers, true));
}

void MemoryBlockBackend::flush(Completion done) {
  int64_t result = 0;
  {
    std::lock_guard lock(mu_);
    if (fail_errno_ != 0) {
      result = -fail_errno_;
    } else {
      ++flushes_;
    }
  }
  done(result);
}

void MemoryBlockBackend::fail_with(int err) {
  std::lock_guard lock(mu_);
  fail_errno_ = err;
}

uint64_t MemoryBlockBackend::flushes() const {
  std::lock_guard lock(mu_);
  return flushes_;
}

uint64_t MemoryBlockBackend::out_of_range() const {
  std::lock_guard lock(mu_);
  return out_of_range_;
}

}  // namespace ckpt::vmm::devices::virtio
