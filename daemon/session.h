// One VM and its store: the daemon's core. The epoch loop runs on the thread that calls run(); it alone touches the
// Machine. Every epoch: pause -> harvest (plus pages owed by failed writes) -> copy into the staging area -> rearm ->
// save state -> resume; then the StoreWorker compresses, writes and commits while the guest runs. Two epochs may be
// in flight: the loop captures epoch N+1 while the worker still writes N (both share the one staging area), and
// waits before pausing for N+2 until N is written. Staging memory stays bounded, and a slow disk stretches epochs
// (reported as lag) instead of queueing memory.
//
// Commands (snapshot, restore, ...) come from control-socket threads; they are queued to the loop thread and the
// caller waits for the outcome. None of them loses a dirty page: a failed write puts its pages back as owed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "daemon/compactor.h"
#include "daemon/config.h"
#include "daemon/console.h"
#include "daemon/digest_log.h"
#include "daemon/dirty_set.h"
#include "daemon/disk_images.h"
#include "daemon/lazy_restore.h"
#include "daemon/metrics/daemon_stats.h"
#include "daemon/staging_area.h"
#include "daemon/store_worker.h"
#include "daemon/vm_builder.h"
#include "vmm/machine.h"

namespace ckpt::daemon {

struct EpochCommitted {
  uint64_t epoch = 0;
  uint64_t dirty_pages = 0;
  uint64_t disk_blocks = 0;
  double pause_ms = 0;
  uint64_t stored_bytes = 0;  // its compressed blocks
  uint64_t file_bytes = 0;    // its whole file: blocks, metadata, header and footer
};

struct RestoreOutcome {
  uint64_t restored_epoch = 0;
  std::optional<uint64_t> saved_epoch;  // the running VM's state, committed just before it was replaced
  double seconds = 0;
};

// What status reports beyond the counters.
struct SessionInfo {
  std::string store_dir;
  std::optional<uint64_t> parent;  // the epoch the next delta builds on
  bool epochs_paused = false;
  uint64_t epoch_ms = 0;
};

// The compaction policy's settings in `config`.
CompactionSettings compaction_settings(const DaemonConfig& config);

class Session {
 public:
  // Opens the store and makes the VM: rebuilt from the newest committed epoch when config.resume is set and the
  // store has one; else, for an empty store, a fresh VM whose every page goes into a base (epoch 0). A store with
  // epochs and no resume is refused: ckptd never starts a second VM on top of another's history.
  // `fs` replaces the real file system under the store (tests inject faults there).
  static Result<std::unique_ptr<Session>> create(const DaemonConfig& config,
                                                 std::shared_ptr<snap::FileSystem> fs = nullptr);
  ~Session();

  // Starts the guest and runs the epoch loop until request_shutdown(); then takes a final epoch with the guest left
  // paused (retried while the guest stays paused if the write fails) and returns that epoch's outcome. With
  // verify-final, the final epoch is then rebuilt into a fresh VM whose memory must equal the paused guest's.
  Status run();

  // From any thread. Each waits until the loop thread has done it.
  Result<EpochCommitted> snapshot(std::string tag);
  Status pause_epochs();
  Status resume_epochs();
  Result<RestoreOutcome> restore(uint64_t epoch);
  Status compact(uint64_t epoch);
  // A page of the store's catalog (Store::entries_after), straight from memory: no file is read.
  std::vector<std::pair<uint64_t, snap::CatalogEntry>> list_epochs(std::optional<uint64_t> after, size_t limit,
                                                                   bool* more) const;
  Result<uint64_t> apply_retention(const snap::RetentionPolicy& policy);
  void request_shutdown();
  // Applies the SIGHUP-safe settings of `config` (epoch interval, retention, log level).
  void reload(const DaemonConfig& config);

  DaemonStats stats() const;
  SessionInfo info() const;

  // The guest's serial console (a Linux guest's), or nullptr when the machine has none (the built-in guests).
  // Created with the session and kept across live restores (its offsets and console.log continue); any thread.
  Console* console() const { return console_.get(); }

 private:
  struct EpochJob;
  using Clock = std::chrono::steady_clock;
  Session(DaemonConfig config, std::unique_ptr<StoreWorker> worker, StagingArea staging, DigestLog digests);

  // Loop thread.
  void loop();
  template <typename R>
  R on_loop(std::function<R()> command);
  std::shared_future<Result<EpochCommitted>> take_epoch(const std::string& tag, bool leave_paused);
  void wait_for_pipeline_room();
  void drain_pipeline();
  uint64_t place_in_staging(uint64_t pages);
  Status capture(std::shared_ptr<EpochJob> job, bool leave_paused);
  Status write_while_paused(std::shared_ptr<EpochJob> job, bool leave_paused, Clock::time_point t0);
  Status pause_machine();
  void plan_full_epoch(EpochJob& job);
  Status stage_disk_blocks(const EpochJob& job);
  Status tracking_failed(Status s);
  Result<EpochCommitted> take_final_epoch();
  Status verify_against_fresh_vm(uint64_t epoch);
  // machine_'s data ranges (vmm::Machine::data_ranges), or an error while a lazy restore still fills it: then a
  // hole may be a page not yet in rather than a zero page, and every page must be read.
  Result<std::vector<std::pair<uint64_t, uint64_t>>> resident_data_ranges() const;
  Result<RestoreOutcome> restore_on_loop(uint64_t epoch);
  Status adopt_machine(BuiltVm vm, std::optional<uint64_t> loaded_epoch);
  Status start_machine();
  void attach_console();
  void detach_console();
  Status start_or_resume();
  // Loop thread, mu_ held: reads whether the guest stopped on its own and records it for status; true if it did.
  bool note_guest_stop();
  // A lazy restore's block failed (`which` is the LazyRestore that said so): pause the guest and mark it stopped,
  // unless that machine has been replaced since. Loop thread.
  void stop_after_failed_restore(const LazyRestore* which, const Status& error);
  Status guest_stopped_error() const;  // mu_ held

  // Worker thread.
  Result<EpochCommitted> write_epoch(snap::Store& store, EpochJob& job);
  Result<std::shared_ptr<const snap::EpochMeta>> write_epoch_file(snap::Store& store, EpochJob& job,
                                                                  const snap::EpochOptions& options);

  // Counters.
  void record_error(const Status& s);
  void record_pause(double ms);
  void forget_pauses();
  void add_owed(const DirtySet& dirty);
  void owe_after_failure(const DirtySet& dirty, const Status& cause);
  void pay_owed(const DirtySet& committed);

  DaemonConfig config_;  // the reloadable fields are read under mu_
  std::unique_ptr<StoreWorker> worker_;
  std::unique_ptr<Compactor> compactor_;  // after worker_: stopped before the store goes
  StagingArea staging_;
  DigestLog digests_;
  std::unique_ptr<Console> console_;       // before machine_: outlives every machine that feeds it
  // A lazily restored machine's page server (loop thread only). Before machine_: it serves the machine's vCPUs
  // until they have stopped; abandon() before machine_ goes, in case one waits on a block that failed.
  std::unique_ptr<LazyRestore> lazy_;
  std::unique_ptr<vmm::Machine> machine_;  // loop thread only
  // The working images of machine_'s disks, in order (loop thread; the worker reads them only while the loop thread
  // waits for it, in write_while_paused).
  std::vector<OpenDisk> disks_;
  bool machine_paused_ = true;             // loop thread only
  // Epochs handed to the worker and maybe not yet written, oldest first (loop thread only): where their pages sit
  // in the staging area, and the write generation they were captured in.
  struct StagedEpoch {
    std::shared_future<Result<EpochCommitted>> outcome;
    uint64_t first_slot = 0;
    uint64_t pages = 0;
    uint64_t generation = 0;
  };
  std::deque<StagedEpoch> in_flight_;
  Clock::time_point started_ = Clock::now();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> commands_;
  bool shutdown_ = false;
  bool epochs_paused_ = false;
  bool loop_running_ = false;
  bool reschedule_ = false;  // the epoch interval changed or the VM was replaced: restart the timer
  std::optional<uint64_t> parent_;
  DirtySet owed_;  // pages and disk blocks a failed write left for the next epoch
  // Bumped by every failed epoch write. An epoch captured in an older generation than the current one may lack
  // the failed epoch's pages (it was captured before they became owed), so it is not written: its own pages become
  // owed instead (Session::write_epoch).
  uint64_t write_generation_ = 0;
  Status last_write_failure_;  // what bumped it last, named again by the epochs skipped for it
  Status failure_;              // dirty tracking can no longer be trusted: no more epochs
  vmm::GuestStop guest_stop_;   // the guest stopped itself (triple fault, reset): no more epochs until a restore
  DaemonStats stats_;
  std::deque<double> recent_pauses_ms_;  // the newest kRecentPauses pause times
};

}  // namespace ckpt::daemon
