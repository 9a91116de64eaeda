// What the daemon counts, as one copyable snapshot: the status command and the Prometheus endpoint both render it.
// The epoch pipeline updates the live counters under its own lock and hands out snapshots.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace ckpt::daemon {

// Cumulative histogram in Prometheus' sense: bucket i counts observations <= kBounds[i]; the last bucket is +Inf.
template <size_t N>
struct Histogram {
  std::array<double, N> bounds{};
  std::array<uint64_t, N + 1> buckets{};  // not cumulative here; rendering accumulates
  uint64_t count = 0;
  double sum = 0;

  void observe(double value) {
    size_t i = 0;
    while (i < N && value > bounds[i]) ++i;
    ++buckets[i];
    ++count;
    sum += value;
  }
};

// Pause durations in milliseconds.
using PauseHistogram = Histogram<12>;
inline PauseHistogram make_pause_histogram() {
  PauseHistogram h;
  h.bounds = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000};
  return h;
}
// Dirty pages per epoch.
using DirtyHistogram = Histogram<10>;
inline DirtyHistogram make_dirty_histogram() {
  DirtyHistogram h;
  h.bounds = {0, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576};
  return h;
}

// What the compactor (daemon/compactor.h) did and what it keeps bounded.
struct CompactionStats {
  uint64_t rebases = 0;               // bases written by the policy
  uint64_t rebase_bytes_written = 0;  // their file sizes
  double last_rebase_seconds = 0;
  uint64_t epochs_removed = 0;        // by background retention
  uint64_t errors = 0;                // failed background rebases and retention runs (also in errors_total)
  uint64_t chain_length = 0;          // epochs in the running VM's chain, base included
  double read_amplification = 0;      // of that chain
  uint64_t store_epochs = 0;          // the store now (filled by Session::stats from the store itself)
  uint64_t store_bytes = 0;
};

// A lazy restore's progress (daemon/lazy_restore.h, which counts it): how much of the running VM's memory is in.
struct LazyRestoreStats {
  uint64_t epoch = 0;
  uint64_t pages = 0;            // guest pages
  uint64_t data_pages = 0;       // pages the epoch holds data for (the rest are zero)
  uint64_t installed_pages = 0;  // of those, resident now
  uint64_t blocks = 0, blocks_installed = 0;
  uint64_t prefetch_blocks = 0;  // blocks of the store's working-set record, installed first
  uint64_t faults = 0;       // first accesses to missing pages served, zero pages included
  uint64_t fault_reads = 0;  // of those, the ones that waited for a block to be read
  uint64_t bytes_read = 0;   // stored bytes read from the chain
  bool filled = false;       // every block in; the chain's files let go
  double seconds = 0;        // since the restore; until it was filled, once it is
};

struct DaemonStats {
  // The VM.
  std::string backend;   // "kvm" or "software"
  std::string tracking;  // tracking mode name
  uint64_t memory_bytes = 0;
  unsigned vcpus = 0;
  std::string guest;     // "builtin" or "linux"
  uint64_t disks = 0;    // a Linux guest's virtio-blk disks
  std::string state;     // "running", "epochs-paused", "guest-stopped", "stopping", "failed"
  std::string guest_stop;         // why the guest stopped on its own ("triple-fault", "reset"); empty while it runs
  std::string guest_stop_detail;  // where (vCPU, registers, port)
  double uptime_seconds = 0;

  // Epochs. Committed counts include the base; failed ones wrote nothing that counts (their pages are owed).
  uint64_t epochs_committed = 0;
  uint64_t epochs_failed = 0;
  uint64_t epochs_skipped = 0;  // of the failed: captured before an earlier write failed, so not written
  std::optional<uint64_t> last_committed_epoch;
  std::optional<uint64_t> resumed_from_epoch;  // set when the VM was rebuilt from a committed epoch
  std::optional<LazyRestoreStats> lazy_restore;  // set while the VM runs on a lazy restore's memory
  PauseHistogram pause_ms = make_pause_histogram();
  double last_pause_ms = 0;
  // Exact percentiles over the most recent pauses (up to 10,000), for status and summaries; 0 when none yet.
  double pause_p50_ms = 0;
  double pause_p99_ms = 0;
  double pause_max_ms = 0;
  DirtyHistogram dirty_pages = make_dirty_histogram();
  uint64_t dirty_pages_total = 0;
  uint64_t bytes_raw_total = 0;     // page bytes handed to the store (4 KiB per page)
  uint64_t bytes_stored_total = 0;  // bytes of the epoch files written for them: blocks, metadata, header, footer
  // Disk blocks (4 KiB) the guest wrote, as deltas captured them (bases aside), and in the last committed epoch.
  uint64_t disk_blocks_total = 0;
  uint64_t last_epoch_disk_blocks = 0;

  // Back pressure.
  uint64_t owed_pages = 0;          // pages of failed writes waiting for the next epoch
  uint64_t owed_disk_blocks = 0;    // disk blocks of failed writes waiting for the next epoch
  uint64_t writer_backlog_epochs = 0;  // epochs captured but not yet committed
  double writer_lag_ms = 0;         // how late the last epoch started because the writer was still busy
  uint64_t epochs_stretched = 0;    // epochs that started late for that reason
  uint64_t oversized_epochs = 0;    // dirty sets larger than the staging area, written while paused
  uint64_t staging_capacity_bytes = 0;

  // The store's size and chain, kept bounded by the compactor (daemon/compactor.h).
  CompactionStats compaction;

  // Errors.
  uint64_t errors_total = 0;
  std::string last_error;
};

}  // namespace ckpt::daemon
