// Where dirty pages wait between the pause that copies them and the write that stores them: one fixed mapping, all
// of it touched before the first pause that copies into it (a copy into untouched memory takes a page fault per
// page: about 15 us each on the VMs this is developed on, bench/RESULTS.md), so that the daemon's memory use does not
// grow with the dirty rate and no pause pays for first touches. An epoch whose dirty set does not fit is written
// straight from guest memory while the guest stays paused (Session, "oversized").
//
// The touching runs on a thread of its own from create() on, so that a daemon resuming from its store starts the
// guest without waiting for it (256 MiB, the default: 60-730 ms here); the epoch loop calls wait_populated() before
// each pause.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>

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
  // Blocks until every page of the area has been touched; at once after the first call. Not concurrently with itself.
  void wait_populated();
  // Copies the pages `gfns` of `memory` to slots first..first+n-1. The caller checks they fit.
  void copy_in(std::span<const uint8_t> memory, std::span<const uint64_t> gfns, uint64_t first = 0);
  const uint8_t* slot(uint64_t i) const { return data_ + i * kPage; }
  uint8_t* slot(uint64_t i) { return data_ + i * kPage; }  // for reads straight into slots (disk blocks)

  static constexpr uint64_t kPage = 4096;

 private:
  struct Populating {  // on the heap: the thread keeps its address while the area moves
    std::atomic<bool> stop{false};
    std::thread thread;
  };
  StagingArea(uint8_t* data, uint64_t pages) : data_(data), pages_(pages) {}
  void release();

  uint8_t* data_ = nullptr;
  uint64_t pages_ = 0;
  std::unique_ptr<Populating> populating_;
};

}  // namespace ckpt::daemon
