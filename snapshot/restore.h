// Materialises guest memory at a committed epoch: every page is read exactly once, from the newest epoch of the
// chain (at or below the target) that holds it; blocks are decompressed and checked in parallel.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "common/status.h"
#include "snapshot/catalog.h"
#include "snapshot/io/file_system.h"

namespace ckpt::snap {

struct RestoreOptions {
  unsigned threads = 0;  // 0 = one per CPU
  // restore_to_memory only: the buffer already reads as zero (fresh anonymous or memfd memory), so zero pages are
  // not written, which keeps untouched guest memory unallocated and skips a page fault per zero page.
  bool memory_is_zeroed = false;
  // Called now and then with pages restored so far and the total; from any thread, never concurrently.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct RestoreStats {
  uint64_t epochs_in_chain = 0;
  uint64_t data_pages = 0;   // pages copied from blocks
  uint64_t zero_pages = 0;   // pages set to zero
  uint64_t blocks_read = 0;
  uint64_t bytes_read = 0;   // stored bytes read from epoch files
};

// The guest size of `epoch` (epochs of one store normally agree; a hostile or mixed-up store need not).
Result<uint64_t> guest_pages_of(const Catalog& catalog, uint64_t epoch);

// Fills `memory` (exactly guest_pages_of(epoch) * 4 KiB, else an error) with the guest memory at `epoch`.
Result<RestoreStats> restore_to_memory(FileSystem& fs, const Catalog& catalog, uint64_t epoch,
                                       std::span<uint8_t> memory, const RestoreOptions& options = {});

// Writes the guest memory at `epoch` as a raw image file at `path`: into a temporary file beside it, fsync'ed, then
// renamed over `path`, so a restore that fails leaves an existing file untouched. Refuses a path inside the store's
// directory and an existing path that is not a regular file. Zero pages are left to the file system's zero fill.
Result<RestoreStats> restore_to_file(FileSystem& fs, const Catalog& catalog, uint64_t epoch, const std::string& path,
                                     const RestoreOptions& options = {});

}  // namespace ckpt::snap
