// Where dirty pages wait between the pause that copies them and the write that stores them: one fixed, pre-faulted
// mapping (copying into fresh memory runs ~20x slower than into touched memory; docs/../shared design notes), so
// the daemon's memory use does not grow with the dirty rate. An epoch whose dirty set does not fit is written
// straight from guest memory while the guest stays paused (Session, "oversized").
#pragma once

#include <cstdint>
#include <span>

#include "common/status.h"

namespace ckpt::daemon {

class StagingArea {
 public:
  static Result<StagingArea> create(uint64_t bytes);
  StagingArea(StagingArea&& other) noexcept;
  StagingArea& operator=(StagingArea&& other) noexcept;
  ~StagingArea();

  uint64_t capacity_pages() const { return pages_; }
  uint64_t capacity_bytes() const { return pages_ * kPage; }
  // Copies the pages `gfns` of `memory` to slots first..first+n-1. The caller checks they fit.
  void copy_in(std::span<const uint8_t> memory, std::span<const uint64_t> gfns, uint64_t first = 0);
  const uint8_t* slot(uint64_t i) const { return data_ + i * kPage; }
  uint8_t* slot(uint64_t i) { return data_ + i * kPage; }  // for reads straight into slots (disk blocks)

  static constexpr uint64_t kPage = 4096;

 private:
  StagingArea(uint8_t* data, uint64_t pages) : data_(data), pages_(pages) {}
  uint8_t* data_ = nullptr;
  uint64_t pages_ = 0;
};

}  // namespace ckpt::daemon
