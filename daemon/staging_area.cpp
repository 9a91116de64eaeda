#include "daemon/staging_area.h"

#include <sys/mman.h>

#include <cstring>
#include <utility>

namespace ckpt::daemon {

Result<StagingArea> StagingArea::create(uint64_t bytes) {
  uint64_t pages = bytes / kPage;
  if (pages == 0) return invalid_argument("staging area of " + std::to_string(bytes) + " bytes holds no page");
  void* p = ::mmap(nullptr, pages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) return Status::from_errno(errno, "mmap staging area of " + std::to_string(bytes) + " bytes");
  return StagingArea(static_cast<uint8_t*>(p), pages);
}

StagingArea::StagingArea(StagingArea&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), pages_(std::exchange(other.pages_, 0)) {}

StagingArea& StagingArea::operator=(StagingArea&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(data_, pages_ * kPage);
    data_ = std::exchange(other.data_, nullptr);
    pages_ = std::exchange(other.pages_, 0);
  }
  return *this;
}

StagingArea::~StagingArea() {
  if (data_) ::munmap(data_, pages_ * kPage);
}

void StagingArea::copy_in(std::span<const uint8_t> memory, std::span<const uint64_t> gfns, uint64_t first) {
  uint8_t* to = data_ + first * kPage;
  for (size_t i = 0; i < gfns.size(); ++i) std::memcpy(to + i * kPage, memory.data() + gfns[i] * kPage, kPage);
}

}  // namespace ckpt::daemon
