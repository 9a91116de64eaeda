// Serves a lazily restored guest's memory while it runs: the guest starts on memory that is all missing
// (vmm::MissingPages); a fault thread answers each first access by reading the block that holds the page from the
// newest epoch of the chain that has it (snap::LazySource) and installing all of that block's pages the restore takes
// at once; a page that is zero at the epoch costs no read. A filler thread meanwhile installs every other block,
// front to back through the chain's files (blocks named for prefetch first), so that the store is needed only for
// a while: once every block is in, the chain's files are closed and only zero pages remain to be served. Before it
// fills, the filler builds the source's page index and its fill order: the guest does not wait for either.
//
// A block that fails its checksum (or cannot be read) is never installed: whoever waits on one of its pages waits
// on, the error (naming the file and offset) is kept and reported once through on_error, whose job is to stop the
// guest; the other blocks are still served. abandon() then answers every fault with zeros, so that a guest being
// torn down can be (its memory no longer matters).
//
// Thread safety: the public methods may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "daemon/metrics/daemon_stats.h"
#include "snapshot/lazy_source.h"
#include "vmm/uffd/missing_pages.h"

namespace ckpt::daemon {

class LazyRestore {
 public:
  struct Options {
    // Gfns whose blocks the filler installs first, in this order (a working set recorded by an earlier restore);
    // gfns beyond the guest and zero pages are skipped.
    std::vector<uint64_t> prefetch_gfns;
    // Called once, from a serving thread, with the first block that failed. Must not block on guest memory.
    std::function<void(const Status&)> on_error;
    // Blocks to remember for the working-set record (working_set()).
    size_t record_limit = 4096;
    // Called once, from the filler thread, when every block is in (never after a failure or abandon()), with
    // working_set(): the record to keep for the next restore. May block (it writes a file); must not touch guest
    // memory.
    std::function<void(std::vector<uint64_t> working_set)> on_filled;
    // Off: only faults bring pages in (tests; counting the faults a guest takes). The filler thread still builds
    // the page index and the fill order.
    bool fill_in_background = true;
  };

  using Progress = LazyRestoreStats;

  // Starts the fault thread and the filler. `pages` must cover memory of source->pages() pages, all missing.
  static Result<std::unique_ptr<LazyRestore>> start(std::unique_ptr<snap::LazySource> source,
                                                    std::shared_ptr<vmm::MissingPages> pages, Options options);
  ~LazyRestore();
  LazyRestore(const LazyRestore&) = delete;
  LazyRestore& operator=(const LazyRestore&) = delete;

  Progress progress() const;
  // The first block that failed, else ok.
  Status error() const;
  // Blocks until every block is installed, an error, or `timeout_ms` (tests, the eager setting).
  bool wait_filled(int timeout_ms) const;
  // Stops reading the store: the filler ends, and from now on every fault gets zero pages (a guest being torn down).
  // No on_error call runs or follows once it returns.
  void abandon();
  // Replaces Options::on_error; called at once if a block has failed already.
  void set_on_error(std::function<void(const Status&)> on_error);
  // The working set to record for the next restore, as gfns (the first of each block), at most record_limit: the
  // blocks the guest faulted on, in the order it did, then those of prefetch_gfns it did not fault on (installed
  // before the guest could ask, so whether it needed them is unknown: they stay until newer faults push them out).
  std::vector<uint64_t> working_set() const;
  // The filler's order: the blocks of `prefetch_gfns` in its order, each once (zero pages and gfns beyond the guest
  // skipped), then every other block in file order.
  struct FillOrder {
    std::vector<snap::LazySource::BlockIndex> blocks;
    uint64_t prefetched = 0;  // the first blocks, from prefetch_gfns
  };
  static FillOrder fill_order(const snap::LazySource& source, std::span<const uint64_t> prefetch_gfns);

 private:
  enum BlockState : uint8_t { kMissing = 0, kReading = 1, kInstalled = 2, kFailed = 3 };

  LazyRestore(std::unique_ptr<snap::LazySource> source, std::shared_ptr<vmm::MissingPages> pages, Options options);
  void serve_faults();
  void fill();
  // Installs block `block` unless another thread has it; waits for that thread otherwise. False if it failed.
  // `first_gfn` (a page of the block an access waits on, or kNoGfn) is installed before the rest of the block.
  static constexpr uint64_t kNoGfn = ~uint64_t{0};
  bool install_block(snap::LazySource::BlockIndex block, snap::LazySource::Reader& reader, uint64_t first_gfn = kNoGfn);
  void fail(const Status& error);
  Status serve_one(uint64_t gfn, snap::LazySource::Reader& reader);

  std::unique_ptr<snap::LazySource> source_;
  std::shared_ptr<vmm::MissingPages> pages_;
  Options options_;
  FillOrder order_;     // made by the filler before it fills; others read it under mu_ once ordered_
  bool ordered_ = false;  // guarded by mu_
  std::unique_ptr<std::atomic<uint8_t>[]> state_;  // per block
  UniqueFd stop_event_;                            // eventfd: wakes the fault thread's poll
  std::atomic<bool> stopping_{false}, abandoned_{false};
  std::atomic<bool> released_{false};  // missing mode ended (MissingPages::release): faults no longer answerable
  uint64_t start_ns_ = 0;

  std::mutex callback_mu_;  // held while on_error runs, and by abandon(): none runs after it

  mutable std::mutex mu_;  // guards the fields below; done_ signals block completions
  mutable std::condition_variable done_;
  Progress progress_;
  Status error_;
  std::vector<uint64_t> touched_;
  std::vector<uint64_t> unanswered_;  // faults on failed blocks, left waiting until abandon()

  std::thread fault_thread_, filler_thread_;
};

}  // namespace ckpt::daemon
