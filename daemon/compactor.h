// Keeps the store bounded while the guest runs, on its own thread (ckpt-compact), beside the epoch writer:
//  - chain length: after each commit it looks at the running VM's chain (the epoch the next delta builds on, down to
//    its base) and rebases that epoch (Store::rebase: a new base streamed block by block, no pause, no guest-sized
//    buffer) once the chain has compact-max-chain deltas or its files reach compact-max-read-amplification times
//    its base's size;
//  - retention: at most once per retention-interval, removes the epochs no kept epoch needs (no rewrite);
//  - the compact and retention commands, which wait for their turn here instead of holding up epoch writes.
// docs/operations.md, "Bounded stores", describes the policy.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include "common/status.h"
#include "daemon/metrics/daemon_stats.h"
#include "snapshot/store.h"

namespace ckpt::daemon {

struct CompactionSettings {
  uint64_t max_chain = 1000;            // deltas in the running chain before it is rebased; 0 = never
  double max_read_amplification = 2.0;  // chain bytes / base bytes before it is rebased; 0 = never
  uint64_t keep_last = 0;               // retention; 0 = no limit
  uint64_t keep_seconds = 0;            // retention; 0 = no limit
  std::chrono::seconds retention_interval{10};
};

class Compactor {
 public:
  // `head` names the epoch the running VM builds on (nullopt before the base); it is asked while the history lock
  // is held. `on_error` reports a failed maintenance run (the daemon counts it; the next commit retries).
  Compactor(snap::Store& store, CompactionSettings settings, std::function<std::optional<uint64_t>()> head,
            std::function<void(const Status&)> on_error);
  ~Compactor();  // stop()

  // After every commit: have the policy look at the store again.
  void epoch_committed();
  void set_settings(const CompactionSettings& settings);
  // Cancels a rebase under way, finishes nothing new, joins. Commands queued after this fail (busy).
  void stop();

  // Runs `fn` on the compactor thread, with the history lock held, and returns its result.
  Status run(std::function<Status(snap::Store&)> fn);

  // Held by whoever rebuilds a VM from the store (restore, verify-final): while it is held, no epoch is rewritten
  // or removed, so the chain being read stays as it was planned. A rebase under way is interrupted (and redone at
  // a later pass), so a live restore waits for a block, not for a whole image to be rewritten.
  std::unique_lock<std::mutex> hold_history();

  CompactionStats stats() const;

 private:
  void loop();
  void maintain();  // one pass of the policy
  std::optional<snap::ChainShape> chain_shape(std::optional<uint64_t> head) const;
  void record_chain(const std::optional<snap::ChainShape>& shape);
  void report(const Status& s);

  snap::Store& store_;
  std::function<std::optional<uint64_t>()> head_;
  std::function<void(const Status&)> on_error_;
  std::mutex history_mu_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  CompactionSettings settings_;
  bool dirty_ = true;  // an epoch committed since the last pass (or none yet: a resumed store is looked at at once)
  bool stopping_ = false;
  std::deque<std::function<void()>> commands_;
  CompactionStats stats_;
  std::chrono::steady_clock::time_point last_retention_{};
  size_t epochs_after_retention_ = 0;  // the store's epoch count when retention last ran
  std::chrono::steady_clock::time_point retry_rebase_after_{};  // after a failed rebase (a full disk): back off
  std::atomic<bool> interrupt_{false};  // stops a rebase: set by stop() for good, by hold_history() for a moment
  std::atomic<bool> stopped_{false};
  std::thread thread_;
};

}  // namespace ckpt::daemon
