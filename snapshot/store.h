// A store directory opened for writing: one base epoch and a chain of delta epochs (docs/format.md). One writer per
// store (the LOCK file); readers use Catalog, restore and verify directly and may run meanwhile.
// Not thread-safe: one thread drives a Store and its EpochWriter, which must not outlive it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/thread_pool.h"
#include "snapshot/catalog.h"
#include "snapshot/epoch_writer.h"
#include "snapshot/io/file_system.h"

namespace ckpt::snap {

struct StoreOptions {
  WriteEngine engine = WriteEngine::kAuto;
  unsigned queue_depth = 16;     // io_uring writes in flight per file
  int compression_level = 1;     // zstd level for data blocks
  unsigned workers = 0;          // compression threads; 0 = one per CPU
  // Tests inject a fault-injecting file system here; null = the real one with `engine` and `queue_depth`.
  std::shared_ptr<FileSystem> fs;
  // The identity written into a new store's files; default random. Fixed only where identical bytes are wanted.
  std::optional<uint64_t> store_id;
};

struct RetentionPolicy {
  std::optional<uint64_t> keep_last;           // keep the newest N epochs
  std::optional<uint64_t> keep_newer_than_ns;  // keep epochs whose timestamp is at least this
};

class Store {
 public:
  // Creates `dir` if needed, takes the writer lock, deletes temp files left by an interrupted writer and epochs made
  // obsolete by an interrupted compaction, and loads the catalog.
  static Result<std::unique_ptr<Store>> open(const std::string& dir, StoreOptions options = {});
  ~Store();

  const std::string& dir() const { return dir_; }
  const Catalog& catalog() const { return catalog_; }
  FileSystem& fs() { return *fs_; }
  std::optional<uint64_t> newest() const { return catalog_.newest(); }

  // Starts the first epoch of an empty store (epoch 0), or a new full snapshot after the newest epoch. The caller
  // must add every page of the guest; commit() refuses an incomplete base.
  Result<std::unique_ptr<EpochWriter>> begin_base(uint64_t guest_pages, EpochOptions options = {});
  // Starts a delta after the newest epoch; its parent is options.parent or the newest epoch.
  Result<std::unique_ptr<EpochWriter>> begin_delta(EpochOptions options = {});

  // Folds epochs <= k into a new base at epoch k, atomically; epochs > k stay restorable, older ones are removed.
  Status compact(uint64_t k);
  // Compacts to the oldest epoch the policy keeps. Returns the number of epochs removed.
  Result<uint64_t> apply_retention(const RetentionPolicy& policy);

 private:
  friend class EpochWriter;
  Store() = default;
  Status clean_up();
  Result<std::unique_ptr<EpochWriter>> begin(EpochKind kind, uint64_t epoch, uint64_t parent, uint64_t floor,
                                             uint64_t guest_pages, const EpochOptions& options);
  void writer_finished() { writer_active_ = false; }
  Status remove_epochs_below(uint64_t floor);

  std::string dir_;
  StoreOptions options_;
  std::shared_ptr<FileSystem> fs_;
  std::unique_ptr<FileLock> lock_;
  Catalog catalog_;
  std::unique_ptr<WriterResources> resources_;
  bool writer_active_ = false;
};

}  // namespace ckpt::snap
