// What one epoch holds, or what is owed to the next one: guest pages and, per disk, the 4 KiB blocks written. Every
// list is ascending with each entry once, so sets merge and subtract in one pass.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <vector>

namespace ckpt::daemon {

struct DirtySet {
  std::vector<uint64_t> pages;                      // gfns
  std::vector<std::vector<uint64_t>> disk_blocks;   // [disk index] blocks

  uint64_t disk_block_count() const {
    uint64_t n = 0;
    for (const auto& blocks : disk_blocks) n += blocks.size();
    return n;
  }
  uint64_t size() const { return pages.size() + disk_block_count(); }
  bool empty() const { return size() == 0; }
  void clear() {
    pages.clear();
    disk_blocks.clear();
  }
};

inline std::vector<uint64_t> merge_sorted(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  std::vector<uint64_t> out;
  out.reserve(a.size() + b.size());
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

// a ∪ b
inline DirtySet merge(const DirtySet& a, const DirtySet& b) {
  DirtySet out;
  out.pages = merge_sorted(a.pages, b.pages);
  out.disk_blocks.resize(std::max(a.disk_blocks.size(), b.disk_blocks.size()));
  for (size_t i = 0; i < out.disk_blocks.size(); ++i) {
    static const std::vector<uint64_t> kNone;
    out.disk_blocks[i] = merge_sorted(i < a.disk_blocks.size() ? a.disk_blocks[i] : kNone,
                                      i < b.disk_blocks.size() ? b.disk_blocks[i] : kNone);
  }
  return out;
}

// a \ b
inline DirtySet subtract(const DirtySet& a, const DirtySet& b) {
  auto minus = [](const std::vector<uint64_t>& x, const std::vector<uint64_t>* y) {
    if (!y) return x;
    std::vector<uint64_t> out;
    std::set_difference(x.begin(), x.end(), y->begin(), y->end(), std::back_inserter(out));
    return out;
  };
  DirtySet out;
  out.pages = minus(a.pages, &b.pages);
  out.disk_blocks.resize(a.disk_blocks.size());
  for (size_t i = 0; i < a.disk_blocks.size(); ++i) {
    out.disk_blocks[i] = minus(a.disk_blocks[i], i < b.disk_blocks.size() ? &b.disk_blocks[i] : nullptr);
  }
  return out;
}

}  // namespace ckpt::daemon
