#include "vmm/devices/virtio/block_set.h"

#include <algorithm>

namespace ckpt::vmm::devices::virtio {

void BlockSet::add_range(uint64_t first, uint64_t count) {
  count = std::min(count, UINT64_MAX - first + (first == 0 ? 0 : 1));  // [first, 2^64) at most
  while (count > 0) {
    uint64_t chunk = first / kChunkBlocks, bit = first % kChunkBlocks;
    uint64_t here = std::min(count, kChunkBlocks - bit);
    auto& words = chunks_[chunk];
    if (here == kChunkBlocks) {
      words.fill(~uint64_t{0});
    } else {
      for (uint64_t b = bit; b < bit + here; ++b) words[b / 64] |= uint64_t{1} << (b % 64);
    }
    count -= here;
    first += here;  // wraps to 0 only with count == 0 left
  }
}

std::vector<uint64_t> BlockSet::take() {
  std::vector<uint64_t> blocks;
  for (const auto& [chunk, words] : chunks_) {
    for (uint64_t i = 0; i < words.size(); ++i) {
      for (uint64_t w = words[i]; w != 0; w &= w - 1) {
        blocks.push_back(chunk * kChunkBlocks + i * 64 + static_cast<uint64_t>(__builtin_ctzll(w)));
      }
    }
  }
  chunks_.clear();
  return blocks;
}

}  // namespace ckpt::vmm::devices::virtio
