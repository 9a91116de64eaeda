// Materialises guest memory, or one guest disk, at a committed epoch: every page (disk block) is read exactly once,
// from the newest epoch of the chain (at or below the target) that holds it; blocks are decompressed and checked in
// parallel.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "snapshot/catalog.h"
#include "snapshot/disk_space.h"
#include "snapshot/io/file_system.h"

namespace ckpt::snap {

struct RestoreOptions {
  unsigned threads = 0;  // 0 = one per CPU
  // Called now and then with pages (disk blocks) restored so far and the total; from any thread, never concurrently.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

struct RestoreStats {
  uint64_t epochs_in_chain = 0;
  uint64_t data_pages = 0;   // pages (of a disk restore: blocks) copied from blocks
  uint64_t zero_pages = 0;   // pages (blocks) set to zero
  uint64_t blocks_read = 0;
  uint64_t bytes_read = 0;   // stored bytes read from epoch files
  double sync_seconds = 0;   // restore_to_file: the final fsync of the image (what durability costs at the end)
};

// The guest size of `epoch` (epochs of one store normally agree; a hostile or mixed-up store need not).
Result<uint64_t> guest_pages_of(const Catalog& catalog, uint64_t epoch);

// Fills `memory` (exactly guest_pages_of(epoch) * 4 KiB, else an error) with the guest memory at `epoch`.
Result<RestoreStats> restore_to_memory(FileSystem& fs, const Catalog& catalog, uint64_t epoch,
                                       std::span<uint8_t> memory, const RestoreOptions& options = {});

// The same into `fd`, a file of `bytes` bytes (the guest's size) that reads as zero wherever nothing was written,
// such as the fresh memfd behind a new VM's memory: data pages go in with pwrite, zero pages are skipped. Filling a
// fresh memfd so is ~10x faster here than storing through its mapping, which takes a page fault per page. `name`
// names the file in errors.
Result<RestoreStats> restore_to_zeroed_fd(FileSystem& fs, const Catalog& catalog, uint64_t epoch, int fd,
                                         uint64_t bytes, const std::string& name, const RestoreOptions& options = {});

// Writes the guest memory at `epoch` as a raw image file at `path`: into a temporary file beside it, fsync'ed, then
// renamed over `path`, so a restore that fails leaves an existing file untouched. Refuses a path inside the store's
// directory and an existing path that is not a regular file. Zero pages are left to the file system's zero fill.
Result<RestoreStats> restore_to_file(FileSystem& fs, const Catalog& catalog, uint64_t epoch, const std::string& path,
                                     const RestoreOptions& options = {});

// ---- guest disks (format 1.1): the same, one disk at a time. Memory restores above never touch disks. ----

// The disks of `epoch` (those of its whole chain, which all links share), with that epoch's statistics.
Result<std::vector<DiskSpace>> disks_of(const Catalog& catalog, uint64_t epoch);

// Makes the open file `fd` hold exactly disk `disk` (an id from disks_of) at `epoch`, whatever it held before: sizes
// it to the disk, writes every data block and makes every zero block read as zero (punches a hole, or writes zeros
// where the file system cannot), since the daemon rebuilds a working image that holds newer, different content.
// The chain and the disk are checked before the file is touched; a block that fails its checksum later leaves the
// file part old, part restored (restore_disk_to_file never does). Does not fsync: that is the caller's choice.
// `path_for_errors` names the file in messages.
Result<RestoreStats> restore_disk_to_fd(FileSystem& fs, const Catalog& catalog, uint64_t epoch, uint32_t disk, int fd,
                                        const std::string& path_for_errors, const RestoreOptions& options = {});

// Writes disk `disk` at `epoch` as a raw image file at `path`, the way restore_to_file writes memory: a temporary
// file beside it, fsync'ed, renamed over `path`; refuses a path inside the store and one that is not a regular file.
Result<RestoreStats> restore_disk_to_file(FileSystem& fs, const Catalog& catalog, uint64_t epoch, uint32_t disk,
                                          const std::string& path, const RestoreOptions& options = {});

}  // namespace ckpt::snap
