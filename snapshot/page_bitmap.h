// A set of pages of one address space (guest frames, or a disk's blocks), one bit each: the pages a base has
// covered so far, or the pages a restore plan has claimed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace ckpt::snap {

class PageBitmap {
 public:
  explicit PageBitmap(uint64_t size = 0) : size_(size), words_((size + 63) / 64, 0) {}

  uint64_t size() const { return size_; }
  uint64_t count() const { return count_; }  // pages set
  bool full() const { return count_ == size_; }
  bool test(uint64_t page) const { return (words_[page / 64] >> (page % 64)) & 1; }

  // Sets `page` (< size()); returns whether it was clear.
  bool set(uint64_t page) {
    uint64_t bit = uint64_t{1} << (page % 64);
    uint64_t& word = words_[page / 64];
    if (word & bit) return false;
    word |= bit;
    ++count_;
    return true;
  }

  // Sets pages first .. first + count - 1 (inside size()), a word at a time: a base of a large disk marks billions
  // of zero blocks this way.
  void set_range(uint64_t first, uint64_t count) {
    uint64_t end = first + count;
    while (first < end) {
      uint64_t bits = std::min<uint64_t>(64 - first % 64, end - first);
      uint64_t mask = (bits == 64 ? ~uint64_t{0} : ((uint64_t{1} << bits) - 1)) << (first % 64);
      uint64_t& word = words_[first / 64];
      count_ += static_cast<uint64_t>(__builtin_popcountll(mask & ~word));
      word |= mask;
      first += bits;
    }
  }

  // Sets pages first .. first + count - 1 (inside size()), a word at a time, and calls newly(first, count) for each
  // maximal run of them that was clear, in ascending order: a restore plan claims whole runs of pages this way, at a
  // cost of one step per word and per piece rather than per page.
  template <typename Newly>
  void claim(uint64_t first, uint64_t count, Newly&& newly) {
    const uint64_t end = first + count;
    uint64_t piece_first = 0, piece_count = 0;  // the piece still growing across word boundaries
    while (first < end) {
      const uint64_t shift = first % 64;
      const uint64_t bits = std::min<uint64_t>(64 - shift, end - first);
      const uint64_t mask = (bits == 64 ? ~uint64_t{0} : ((uint64_t{1} << bits) - 1)) << shift;
      uint64_t& word = words_[first / 64];
      uint64_t clear = mask & ~word;
      word |= mask;
      count_ += static_cast<uint64_t>(__builtin_popcountll(clear));
      const uint64_t base = first - shift;
      while (clear != 0) {
        const uint64_t lo = static_cast<uint64_t>(__builtin_ctzll(clear));
        const uint64_t ones = clear >> lo;
        const uint64_t len = ~ones == 0 ? 64 : static_cast<uint64_t>(__builtin_ctzll(~ones));
        if (piece_count != 0 && piece_first + piece_count == base + lo) {
          piece_count += len;
        } else {
          if (piece_count != 0) newly(piece_first, piece_count);
          piece_first = base + lo;
          piece_count = len;
        }
        clear = lo + len >= 64 ? 0 : clear & (~uint64_t{0} << (lo + len));
      }
      first += bits;
    }
    if (piece_count != 0) newly(piece_first, piece_count);
  }

  // The lowest page not set; size() when every page is.
  uint64_t first_clear() const {
    for (uint64_t w = 0; w < words_.size(); ++w) {
      if (~words_[w] == 0) continue;
      return std::min(size_, w * 64 + static_cast<uint64_t>(__builtin_ctzll(~words_[w])));
    }
    return size_;
  }

 private:
  uint64_t size_;
  uint64_t count_ = 0;
  std::vector<uint64_t> words_;
};

}  // namespace ckpt::snap
