// Writes one epoch file. Pages (of guest memory, or 4 KiB blocks of a disk) are copied in as they are added,
// gathered into blocks of up to 64 data pages of one address space,
// compressed on the store's worker pool and written in block order through the store's FileSystem (io_uring or
// pwrite). commit() makes the file durable and publishes it atomically (docs/format.md, "Commit").
// One thread drives a writer; the store allows one new epoch's writer at a time, plus one maintenance rewrite.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/byte_buffer.h"
#include "common/status.h"
#include "common/thread_pool.h"
#include "snapshot/block_codec.h"
#include "snapshot/disk_space.h"
#include "snapshot/epoch_meta.h"
#include "snapshot/io/file_system.h"
#include "snapshot/page_bitmap.h"

namespace ckpt::snap {

class Store;

struct EpochOptions {
  std::string tag;                        // optional label, at most 256 bytes
  std::optional<uint64_t> timestamp_ns;   // default: now (CLOCK_REALTIME); tests fix it for byte-identical files
  std::optional<uint64_t> parent;         // deltas only; default: the newest epoch
  // The VM's disks, ids 1, 2, ... in this order. A base takes them from here. A delta inherits its parent's when
  // this is empty, and is refused when it names others (a chain keeps its disks). An epoch with disks is written as
  // format 1.1; one without as 1.0, byte for byte as before disks existed.
  std::vector<DiskSpec> disks;
};

// Compression workers and reusable buffers, shared by the store's successive writers.
struct WriterResources {
  WriterResources(unsigned workers, int level);
  ThreadPool pool;
  // One per worker, then one for the thread that commits (the store has one writer at a time).
  std::vector<std::unique_ptr<BlockCompressor>> compressors;
  std::shared_ptr<BufferPool> raw_buffers;     // 64 pages each
  std::shared_ptr<BufferPool> stored_buffers;  // max_stored_block_size() each
  size_t max_blocks_in_flight;
};

class EpochWriter {
 public:
  ~EpochWriter();  // an uncommitted writer aborts: its temp file is removed
  EpochWriter(const EpochWriter&) = delete;
  EpochWriter& operator=(const EpochWriter&) = delete;

  uint64_t epoch() const { return meta_.header.epoch; }
  const std::vector<DiskSpace>& disks() const { return meta_.disks; }
  // Records the 4 KiB page at `page` as the content of guest frame `gfn`. All-zero pages are recorded as zero runs.
  // Adding a gfn twice is allowed: the later content wins.
  Status add_page(uint64_t gfn, const void* page);
  // Records `count` pages from `first_gfn` on as zero (no bytes; a zero run), as if each were added as a zero page.
  Status add_zero_pages(uint64_t first_gfn, uint64_t count);
  // The same for disk `disk` (an id of disks()): block `block` gets the 4 KiB at `data`; blocks `first` .. `first +
  // count - 1` read as zero. A base must cover every block of every disk as well as every page of memory.
  Status add_disk_block(uint32_t disk, uint64_t block, const void* data);
  Status add_disk_zero_blocks(uint32_t disk, uint64_t first, uint64_t count);
  // Records an opaque named state blob (vCPU, VM or device state).
  Status add_state(std::string name, std::span<const uint8_t> data);
  // Writes the index and commit record, makes the file durable and publishes it. Returns the committed metadata.
  Result<std::shared_ptr<const EpochMeta>> commit();
  // Abandons the epoch and removes its temp file. Idempotent.
  void abort();

 private:
  friend class Store;
  struct PendingBlock;
  EpochWriter(Store& store, WriterResources& resources, EpochMeta meta, std::unique_ptr<WritableFile> file,
              std::string temp_path, std::string final_path, bool replacing);
  Status start();
  // add_page and add_disk_block, add_zero_pages and add_disk_zero_blocks, for address space `space` (0 = memory).
  Status add(uint32_t space, uint64_t page, const void* data);
  Status add_zero(uint32_t space, uint64_t first, uint64_t count);
  // Whether the writer can take pages first .. first + count - 1 of `space`; invalid_argument naming them if not.
  Status check_writable(uint32_t space, uint64_t first, uint64_t count, bool zero) const;
  Status check_complete() const;
  // `last`: from commit(). The last block is compressed on the calling thread when nothing else is still being
  // compressed: a small epoch (one block, the daemon's usual case) then needs no hand-off to the pool and back.
  Status seal_block(bool last = false);
  void compress(PendingBlock& block, unsigned worker);
  bool all_compressed();
  Status write_finished_blocks(bool wait_for_all);
  Status write_metadata_and_footer();
  Status publish();
  Status fail(Status s);

  Store& store_;
  WriterResources& resources_;
  EpochMeta meta_;
  std::unique_ptr<WritableFile> file_;
  std::string temp_path_;
  std::string final_path_;
  uint64_t next_offset_;
  Status error_;  // sticky: once a step fails the epoch can only be aborted
  bool finished_ = false;
  bool renamed_ = false;  // the file carries its final name
  // A maintenance rewrite of a committed epoch (rebase): once renamed, the file is a valid version of that epoch
  // whatever happens next, so a failure after the rename must not remove it (that would remove the epoch itself).
  const bool replacing_;

  // The block being filled. It holds pages of one space: a page of another seals it first.
  ByteBuffer raw_;
  std::vector<PageRun> runs_;
  uint32_t data_pages_ = 0;
  uint32_t space_ = format::kMemorySpace;

  // Sealed blocks in write order; the head is written once its compression finishes.
  std::deque<std::shared_ptr<PendingBlock>> in_flight_;
  std::mutex done_mutex_;
  std::condition_variable done_cv_;

  // Bases must cover every page of every space; this tracks which ones they have, per space (empty for deltas).
  std::vector<PageBitmap> covered_;
};

}  // namespace ckpt::snap
