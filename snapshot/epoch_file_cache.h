// The epoch files a restore, verify or compaction reads, opened on demand and at most `capacity` at a time, so that
// a chain of any length holds a small, fixed number of descriptors (plus one per thread reading at that moment).
//
// Readers plan from metadata loaded earlier (a Catalog); a running daemon's compaction may since have replaced an
// epoch's file with a base of the same content, or retention may have removed it. So every file is checked against
// the metadata it is read for when it is opened: its commit record must still hold the same length and metadata
// checksum. A replaced file fails with kBusy ("changed while being read"), never as a checksum error.
#pragma once

#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/status.h"
#include "snapshot/epoch_meta.h"
#include "snapshot/io/file_system.h"

namespace ckpt::snap {

class EpochFileCache {
 public:
  static constexpr size_t kDefaultCapacity = 16;

  EpochFileCache(FileSystem& fs, size_t capacity = kDefaultCapacity) : fs_(fs), capacity_(capacity ? capacity : 1) {}

  // The file at `path` holding `meta`'s epoch, opened and checked if it is not open already. Thread-safe; the file
  // stays usable for as long as the caller holds it, even once the cache has closed its own reference.
  Result<std::shared_ptr<const ReadableFile>> get(const std::string& path, const EpochMeta& meta);

  // Files opened so far (a file closed to make room and reopened counts twice), for tests and statistics.
  size_t opens() const;

 private:
  struct Slot {
    std::shared_ptr<const ReadableFile> file;
    std::list<std::string>::iterator lru;
  };

  FileSystem& fs_;
  size_t capacity_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Slot> open_;
  std::list<std::string> lru_;  // most recently used first
  size_t opens_ = 0;
};

// Whether `file` still is the version of its epoch that `meta` describes (same commit record length and metadata
// checksum); kBusy naming the file when it is not.
Status check_same_version(const ReadableFile& file, const EpochMeta& meta);

}  // namespace ckpt::snap
