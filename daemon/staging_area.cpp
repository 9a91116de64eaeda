#include "daemon/staging_area.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <utility>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

namespace ckpt::daemon {

namespace {

// Touches [data, data + bytes) a chunk at a time, until done or `stop`.
void populate(uint8_t* data, uint64_t bytes, const std::atomic<bool>& stop) {
  constexpr uint64_t kChunk = 8ull << 20;
  for (uint64_t at = 0; at < bytes && !stop.load(std::memory_order_relaxed); at += kChunk) {
    const uint64_t len = std::min(kChunk, bytes - at);
    if (::madvise(data + at, len, MADV_POPULATE_WRITE) == 0) continue;
    // A kernel without it (or a failure: the memory is still ours to touch, and touching it is what matters).
    for (uint64_t page = 0; page < len; page += StagingArea::kPage) {
      reinterpret_cast<volatile uint8_t*>(data + at)[page] = 0;
    }
  }
}

}  // namespace

Result<StagingArea> StagingArea::create(uint64_t bytes) {
  uint64_t pages = bytes / kPage;
  if (pages == 0) return invalid_argument("staging area of " + std::to_string(bytes) + " bytes holds no page");
  void* p = ::mmap(nullptr, pages * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Status::from_errno(errno, "mmap staging area of " + std::to_string(bytes) + " bytes");
  StagingArea area(static_cast<uint8_t*>(p), pages);
  area.populating_ = std::make_unique<Populating>();
  Populating* populating = area.populating_.get();
  populating->thread = std::thread([data = area.data_, bytes = pages * kPage, populating] {
    populate(data, bytes, populating->stop);
  });
  return area;
}

StagingArea::StagingArea(StagingArea&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      pages_(std::exchange(other.pages_, 0)),
      populating_(std::move(other.populating_)) {}

StagingArea& StagingArea::operator=(StagingArea&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    pages_ = std::exchange(other.pages_, 0);
    populating_ = std::move(other.populating_);
  }
  return *this;
}

StagingArea::~StagingArea() { release(); }

void StagingArea::release() {
  if (populating_) {
    populating_->stop = true;
    populating_->thread.join();
    populating_.reset();
  }
  if (data_) ::munmap(data_, pages_ * kPage);
  data_ = nullptr;
  pages_ = 0;
}

void StagingArea::wait_populated() {
  if (!populating_) return;
  populating_->thread.join();
  populating_.reset();
}

void StagingArea::copy_in(std::span<const uint8_t> memory, std::span<const uint64_t> gfns, uint64_t first) {
  uint8_t* to = data_ + first * kPage;
  for (size_t i = 0; i < gfns.size(); ++i) std::memcpy(to + i * kPage, memory.data() + gfns[i] * kPage, kPage);
}

}  // namespace ckpt::daemon
