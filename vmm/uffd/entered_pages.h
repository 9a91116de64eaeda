// The pages a lazy restore has put into guest memory, or is putting in: one bit per page, set before the page is
// installed (MissingPages::install) and never cleared. Under missing mode a page becomes present only through an
// install, so a clear bit is a hole the guest has never reached, and has never written. The software backend's
// tracker needs exactly that: PAGEMAP_SCAN reports a hole without a write-protect marker as written, and
// protecting every hole up front costs ~1.6 ms per GiB before the guest could start (UffdWpTracker).
//
// Thread safety: mark() from any thread; a reader sees every bit marked before it read.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace ckpt::vmm {

class EnteredPages {
 public:
  explicit EnteredPages(uint64_t pages) : pages_(pages), words_(new std::atomic<uint64_t>[word_count()]()) {}

  uint64_t pages() const { return pages_; }
  uint64_t word_count() const { return (pages_ + 63) / 64; }

  // Marks [gfn, gfn + count), which must lie inside the pages.
  void mark(uint64_t gfn, uint64_t count) {
    while (count > 0) {
      const uint64_t bit = gfn % 64, n = count < 64 - bit ? count : 64 - bit;
      const uint64_t mask = (n == 64 ? ~uint64_t{0} : ((uint64_t{1} << n) - 1)) << bit;
      words_[gfn / 64].fetch_or(mask);
      gfn += n;
      count -= n;
    }
  }
  // The bits of gfns [64 * index, 64 * index + 64).
  uint64_t word(uint64_t index) const { return words_[index].load(); }
  bool test(uint64_t gfn) const { return (word(gfn / 64) >> (gfn % 64)) & 1; }

 private:
  uint64_t pages_;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
};

}  // namespace ckpt::vmm
