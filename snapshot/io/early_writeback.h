// Starts the kernel's writeback of a file while its writer goes on, so that the commit's fdatasync finds little
// left to write: the disk works while the CPUs compress (a 512 MiB base's commit went from ~0.2 s to ~0.1 s, and
// its durable write throughput up by ~10%, bench/RESULTS.md). Durability still comes from fdatasync alone.
#pragma once

#include <fcntl.h>

#include <cstdint>

namespace ckpt::snap {

class EarlyWriteback {
 public:
  // Files smaller than this (the daemon's usual delta epochs) are left to the one fdatasync.
  static constexpr uint64_t kChunk = uint64_t{16} << 20;

  // `bytes` more of `fd` reached the page cache. Every kChunk, SYNC_FILE_RANGE_WRITE queues the file's dirty pages
  // for writeback and waits for nothing; its failure is left for fdatasync to report.
  void wrote(int fd, uint64_t bytes) {
    unsynced_ += bytes;
    if (unsynced_ < kChunk) return;
    unsynced_ = 0;
    (void)::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
  }

 private:
  uint64_t unsynced_ = 0;
};

}  // namespace ckpt::snap
