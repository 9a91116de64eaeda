// A bitmap over guest frame numbers: the common currency of every dirty tracker. Duplicates merge for free.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace ckpt::vmm {

class DirtyBitmap {
 public:
  explicit DirtyBitmap(uint64_t pages = 0) : pages_(pages), words_((pages + 63) / 64, 0) {}
  uint64_t pages() const { return pages_; }
  void set(uint64_t gfn) { words_[gfn / 64] |= uint64_t{1} << (gfn % 64); }
  bool test(uint64_t gfn) const { return (words_[gfn / 64] >> (gfn % 64)) & 1; }
  // ORs `count` words of a slot's bitmap in, starting at `first_gfn` (a multiple of 64).
  void merge_words(uint64_t first_gfn, const uint64_t* words, uint64_t count) {
    for (uint64_t i = 0; i < count; ++i) words_[first_gfn / 64 + i] |= words[i];
  }
  // Keeps only the bits also set in `count` words of `mask`, which covers the pages from gfn 0.
  void mask_words(const uint64_t* mask, uint64_t count) {
    for (size_t i = 0; i < words_.size(); ++i) words_[i] &= i < count ? mask[i] : 0;
  }
  void merge(const DirtyBitmap& other) {
    for (size_t i = 0; i < words_.size(); ++i) words_[i] |= other.words_[i];
  }
  void clear() { std::fill(words_.begin(), words_.end(), 0); }
  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t w : words_) n += static_cast<uint64_t>(__builtin_popcountll(w));
    return n;
  }
  // Ascending gfns of the set bits.
  std::vector<uint64_t> to_gfns() const {
    std::vector<uint64_t> gfns;
    gfns.reserve(count());
    for (uint64_t i = 0; i < words_.size(); ++i) {
      for (uint64_t w = words_[i]; w != 0; w &= w - 1) gfns.push_back(i * 64 + static_cast<uint64_t>(__builtin_ctzll(w)));
    }
    return gfns;
  }

 private:
  uint64_t pages_;
  std::vector<uint64_t> words_;
};

}  // namespace ckpt::vmm
