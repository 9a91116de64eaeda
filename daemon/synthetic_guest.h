// A stand-in guest until vmm/ provides real machines: one thread writing pages of an in-process memory region, with
// exact dirty tracking (it marks each page it writes, as a VMM marks its own writes). It has the shape the epoch
// loop needs from a Machine: start, pause with a bounded wait, harvest (destructive) while paused, resume.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace ckpt::daemon {

class SyntheticGuest {
 public:
  // `writes_per_ms`: the guest's write rate; 80% of writes go to a hot set of 1/16 of memory.
  SyntheticGuest(uint64_t pages, uint64_t seed, uint64_t writes_per_ms);
  ~SyntheticGuest();
  SyntheticGuest(const SyntheticGuest&) = delete;
  SyntheticGuest& operator=(const SyntheticGuest&) = delete;

  void start();
  // Returns once the writer is parked between two writes.
  void pause();
  void resume();
  // Paused only: the gfns written since the last harvest, ascending; clears them.
  std::vector<uint64_t> harvest_dirty();
  uint64_t pages() const { return pages_; }
  const uint8_t* page(uint64_t gfn) const { return memory_ + gfn * 4096; }
  uint64_t writes() const { return writes_.load(std::memory_order_relaxed); }

 private:
  void run();
  void write_page(uint64_t gfn, uint64_t iteration);

  uint64_t pages_;
  uint64_t seed_;
  uint64_t writes_per_ms_;
  uint8_t* memory_;
  std::vector<uint64_t> dirty_;  // bitmap; the writer sets bits, harvest (paused) reads and clears
  std::atomic<uint64_t> writes_{0};

  std::mutex mutex_;
  std::condition_variable cv_;
  bool pause_requested_ = false;
  bool parked_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ckpt::daemon
