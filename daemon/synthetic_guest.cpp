#include "daemon/synthetic_guest.h"

#include <sys/mman.h>

#include <chrono>
#include <cstring>
#include <new>
#include <random>

namespace ckpt::daemon {

SyntheticGuest::SyntheticGuest(uint64_t pages, uint64_t seed, uint64_t writes_per_ms)
    : pages_(pages), seed_(seed), writes_per_ms_(writes_per_ms), dirty_((pages + 63) / 64, 0) {
  void* p = ::mmap(nullptr, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  memory_ = static_cast<uint8_t*>(p);
  // Boot-time content: a third text-like, the rest zero, like a freshly booted guest.
  for (uint64_t g = 0; g < pages / 3; ++g) write_page(g, 0);
  std::fill(dirty_.begin(), dirty_.end(), 0);
}

SyntheticGuest::~SyntheticGuest() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  ::munmap(memory_, pages_ * 4096);
}

void SyntheticGuest::start() { thread_ = std::thread([this] { run(); }); }

void SyntheticGuest::pause() {
  std::unique_lock lock(mutex_);
  pause_requested_ = true;
  cv_.wait(lock, [this] { return parked_ || !thread_.joinable(); });
}

void SyntheticGuest::resume() {
  {
    std::lock_guard lock(mutex_);
    pause_requested_ = false;
  }
  cv_.notify_all();
}

std::vector<uint64_t> SyntheticGuest::harvest_dirty() {
  std::vector<uint64_t> gfns;
  for (uint64_t w = 0; w < dirty_.size(); ++w) {
    for (uint64_t bits = dirty_[w]; bits != 0; bits &= bits - 1) {
      gfns.push_back(w * 64 + static_cast<uint64_t>(__builtin_ctzll(bits)));
    }
    dirty_[w] = 0;
  }
  return gfns;
}

// Half the pages get structured, compressible content; half get random bytes.
void SyntheticGuest::write_page(uint64_t gfn, uint64_t iteration) {
  uint8_t* p = memory_ + gfn * 4096;
  std::mt19937_64 rng(seed_ ^ (gfn * 0x9E3779B97F4A7C15ull) ^ iteration);
  if ((gfn + iteration) % 2 == 0) {
    for (size_t i = 0; i < 4096; i += 16) {
      uint64_t record[2] = {iteration, 0x0000'7f00'0000'0000ull | (gfn << 12) | i};
      std::memcpy(p + i, record, sizeof record);
    }
  } else {
    for (size_t i = 0; i < 4096; i += 8) {
      uint64_t v = rng();
      std::memcpy(p + i, &v, 8);
    }
  }
  dirty_[gfn / 64] |= uint64_t{1} << (gfn % 64);
}

void SyntheticGuest::run() {
  std::mt19937_64 rng(seed_);
  uint64_t hot = std::max<uint64_t>(1, pages_ / 16);
  uint64_t iteration = 1;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (pause_requested_ || stopping_) {
        parked_ = true;
        cv_.notify_all();
        cv_.wait(lock, [this] { return !pause_requested_ || stopping_; });
        parked_ = false;
        if (stopping_) return;
      }
    }
    // One millisecond's worth of writes, then sleep: the pause check above runs between bursts.
    for (uint64_t i = 0; i < writes_per_ms_; ++i, ++iteration) {
      uint64_t gfn = rng() % 5 < 4 ? rng() % hot : rng() % pages_;
      write_page(gfn, iteration);
    }
    writes_.fetch_add(writes_per_ms_, std::memory_order_relaxed);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace ckpt::daemon
