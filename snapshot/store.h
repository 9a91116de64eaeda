// A store directory opened for writing: bases and chains of delta epochs (docs/format.md). One writer process per
// store (the LOCK file); readers use Catalog, restore and verify directly and may run meanwhile.
// Threads: one thread at a time drives the epoch writes (begin_base/begin_delta and the EpochWriter, which must not
// outlive the store), and one other thread at a time may run maintenance (rebase, compact, apply_retention) meanwhile:
// maintenance only rewrites or removes committed epochs below the newest, which the epoch writer never reads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
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
  // Compression threads of maintenance (rebase, compaction); 0 = one per CPU. A daemon compacting in the
  // background keeps this low, so the guest keeps its CPUs.
  unsigned maintenance_workers = 0;
  // Whether open() may create a missing store directory (a writer starting a new store). Tools that only repair or
  // shrink an existing store set this to false, so a mistyped path is an error instead of a new, empty store.
  bool create_if_missing = true;
  // Whether open() finishes what an interrupted writer left: removes temp files and the epochs an interrupted
  // compaction made obsolete. `ckpt repair` opens with false: it only takes the lock and changes nothing unasked.
  bool clean_up_on_open = true;
  // Tests inject a fault-injecting file system here; null = the real one with `engine` and `queue_depth`.
  std::shared_ptr<FileSystem> fs;
  // The identity written into a new store's files; default random. Fixed only where identical bytes are wanted.
  std::optional<uint64_t> store_id;
};

struct RetentionPolicy {
  std::optional<uint64_t> keep_last;           // keep the newest N epochs
  std::optional<uint64_t> keep_newer_than_ns;  // keep epochs whose timestamp is at least this
  std::set<uint64_t> also_keep;                // kept whatever the rules say (the epoch a running VM builds on)
  // An epoch goes once no rule keeps it and no kept epoch's chain needs it. When more than `rewrite_above` epochs
  // would stay only because a chain needs them, the oldest kept epoch is first rewritten as a base (a full image),
  // so that they go too. 0 (the default): always, so exactly the kept epochs stay. nullopt: never rewrite (the
  // daemon uses a bound: its chain policy keeps chains short, so a rewrite is rarely needed).
  std::optional<uint64_t> rewrite_above = 0;
  // When set, stops a rewrite early (kAborted; nothing changed).
  const std::atomic<bool>* cancel = nullptr;
};

// The keep_newer_than_ns that keeps epochs younger than `seconds`: now (CLOCK_REALTIME) minus that, never before
// 1970 (so any number of seconds is safe).
uint64_t timestamp_seconds_ago(uint64_t seconds);

class Store {
 public:
  // Creates `dir` if needed, takes the writer lock, deletes temp files left by an interrupted writer and epochs made
  // obsolete by an interrupted compaction, and loads the catalog.
  static Result<std::unique_ptr<Store>> open(const std::string& dir, StoreOptions options = {});
  ~Store();

  const std::string& dir() const { return dir_; }
  // A copy of the catalog as it is now (cheap per entry: the metadata is shared, not copied).
  Catalog catalog_snapshot() const;
  FileSystem& fs() { return *fs_; }
  std::optional<uint64_t> newest() const;
  size_t epoch_count() const;
  uint64_t total_bytes() const;  // of the committed epochs' files
  Result<ChainShape> chain_shape(uint64_t epoch) const;
  // Up to `limit` catalog entries with epochs above `after` (from the oldest when nullopt), oldest first; `*more`
  // says whether any come after them. For listing a store of any length in pages.
  std::vector<std::pair<uint64_t, CatalogEntry>> entries_after(std::optional<uint64_t> after, size_t limit,
                                                               bool* more) const;

  // Starts the first epoch of an empty store (epoch 0), or a new full snapshot after the newest epoch, with the
  // disks options.disks names (a new base, unlike a delta, may change them). The caller must add every page of the
  // guest and every block of every disk; commit() refuses an incomplete base.
  Result<std::unique_ptr<EpochWriter>> begin_base(uint64_t guest_pages, EpochOptions options = {});
  // Starts a delta after the newest epoch; its parent is options.parent or the newest epoch. It has the parent's
  // disks: options.disks empty inherits them, and any other disks than the parent's are refused.
  Result<std::unique_ptr<EpochWriter>> begin_delta(EpochOptions options = {});

  // Maintenance (one thread at a time, concurrent with epoch writes).
  // Rewrites epoch k, a delta, as a base holding the same memory, disks, state, tag and timestamp, and publishes it
  // under k's own name (an atomic replace): chains through k now end there. Nothing is removed. Streams the chain
  // block by block, so memory stays at a few blocks whatever the guest and disk sizes. A no-op when k is a base
  // already.
  // `cancel`, when given and set, stops the rebase early (kAborted; nothing changed).
  Status rebase(uint64_t k, const std::atomic<bool>* cancel = nullptr);
  // Folds epochs <= k into a new base at epoch k, atomically; epochs > k stay restorable, older ones are removed.
  // Refused when an epoch above k does not descend from k (it would lose its chain).
  Status compact(uint64_t k);
  // Removes the epochs the policy does not keep (see RetentionPolicy). Returns how many were removed.
  Result<uint64_t> apply_retention(const RetentionPolicy& policy);

 private:
  friend class EpochWriter;
  class MaintenanceSlot;
  Store() = default;
  Status clean_up();
  // `replacing`: a maintenance rewrite of committed epoch `epoch` (rebase) rather than a new epoch.
  Result<std::unique_ptr<EpochWriter>> begin(EpochKind kind, uint64_t epoch, uint64_t parent, uint64_t floor,
                                             uint64_t guest_pages, const EpochOptions& options, bool replacing);
  // Called by EpochWriter: a commit (or replacement) to publish in the catalog, and the end of a new epoch's writer.
  void committed(uint64_t epoch, CatalogEntry entry);
  void writer_finished();
  Status remove_epochs_below(uint64_t floor);
  // rebase and compact: writes k as a base with `floor`, streaming its chain (maintenance slot held).
  Status rewrite_as_base(uint64_t k, uint64_t floor, const std::atomic<bool>* cancel = nullptr);
  // Removes `doomed` (newest first) from the catalog and the directory.
  Status remove_epochs(std::vector<uint64_t> doomed);
  WriterResources& maintenance_resources();

  std::string dir_;
  StoreOptions options_;
  std::shared_ptr<FileSystem> fs_;
  std::unique_ptr<FileLock> lock_;
  mutable std::mutex mu_;  // guards catalog_ and the two flags
  Catalog catalog_;
  bool writer_active_ = false;
  bool maintenance_active_ = false;
  std::unique_ptr<WriterResources> resources_;
  std::unique_ptr<WriterResources> maintenance_resources_;  // made on first use; maintenance thread only
};

}  // namespace ckpt::snap
