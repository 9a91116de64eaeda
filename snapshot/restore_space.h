// The restore engine behind restore.h, shared by memory restores (restore.cpp) and disk restores
// (restore_disk.cpp): one address space of one epoch, planned, read block by block in parallel, and handed to a
// sink. Internal to the snapshot library.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "snapshot/catalog.h"
#include "snapshot/io/file_system.h"
#include "snapshot/restore.h"

namespace ckpt::snap {

// Where restored pages go. put() is called from several threads for disjoint page ranges; prepare() and zero() from
// the calling thread, prepare() once before anything else, once the plan is made (so a restore refused for a missing
// link or disk leaves the destination alone), zero() before any put().
class PageSink {
 public:
  virtual ~PageSink() = default;
  virtual Status prepare(uint64_t /*pages*/) { return Status::ok(); }
  virtual Status put(uint64_t first, uint32_t count, const uint8_t* data) = 0;
  virtual Status zero(uint64_t first, uint64_t count) = 0;
};

// Writes pages to a file descriptor with pwrite, at page * 4 KiB; zero() does nothing: the file was made empty
// and sized, so it reads as zero already.
class FdSink : public PageSink {
 public:
  FdSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  Status put(uint64_t first, uint32_t count, const uint8_t* data) override;
  Status zero(uint64_t, uint64_t) override { return Status::ok(); }

 protected:
  Status write_all(const uint8_t* data, size_t length, uint64_t offset);
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

// Restores address space `space` (format::kMemorySpace or a disk id) of `epoch` into `sink`, whose size must be
// `sink_pages` (guest pages, or the disk's blocks); every page is bounds-checked against the epoch's size of the
// space when its metadata is decoded, so the two must agree.
Result<RestoreStats> restore_space(FileSystem& fs, const Catalog& catalog, uint64_t epoch, uint32_t space,
                                   PageSink& sink, uint64_t sink_pages, const RestoreOptions& options);

// Writes an image of `bytes` bytes at `path` the safe way: refuses a path inside the store at `store_dir` and an
// existing path that is not a regular file, then creates a temporary file beside `path`, sizes it, lets `fill` write
// it, fsyncs it and renames it over `path` (so a failed restore leaves an existing file untouched).
Result<RestoreStats> write_image_file(const std::string& store_dir, const std::string& path, uint64_t bytes,
                                      const std::function<Result<RestoreStats>(int fd, const std::string& temp)>& fill);

}  // namespace ckpt::snap
