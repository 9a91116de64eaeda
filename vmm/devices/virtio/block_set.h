// A set of 4 KiB disk block numbers: the blocks a disk's writes touched since the daemon last took them. Sparse
// (chunks of 512 blocks, 2 MiB of disk each, kept only where something was written), so a large disk costs memory
// in proportion to what was written, not to its size.
//
// Not thread-safe: the device keeps it under its lock.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <vector>

namespace ckpt::vmm::devices::virtio {

class BlockSet {
 public:
  void add(uint64_t block) { add_range(block, 1); }
  // Blocks [first, first + count); a range running past 2^64 stops at its end.
  void add_range(uint64_t first, uint64_t count);
  bool empty() const { return chunks_.empty(); }
  // Every block, ascending, each once; the set is empty afterwards.
  std::vector<uint64_t> take();

 private:
  static constexpr uint64_t kChunkBlocks = 512;
  std::map<uint64_t, std::array<uint64_t, kChunkBlocks / 64>> chunks_;  // chunk number -> bitmap
};

}  // namespace ckpt::vmm::devices::virtio
