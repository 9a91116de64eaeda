// Session: creation, the loop thread and the commands. The epoch itself (capture and write) is in epoch_pipeline.cpp.
#include "daemon/session.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "common/thread_name.h"
#include "daemon/vm_builder.h"
#include "snapshot/io/file_system.h"

namespace ckpt::daemon {

Session::Session(DaemonConfig config, std::unique_ptr<StoreWorker> worker, StagingArea staging, DigestLog digests)
    : config_(std::move(config)), worker_(std::move(worker)), staging_(std::move(staging)),
      digests_(std::move(digests)) {
  stats_.staging_capacity_bytes = staging_.capacity_bytes();
}

Session::~Session() {
  detach_console();  // the machine goes before the console (member order), but stops using it first
  if (lazy_) lazy_->abandon();  // no vCPU may wait on a failed block while the machine stops
}

CompactionSettings compaction_settings(const DaemonConfig& config) {
  CompactionSettings s;
  s.max_chain = config.compact_max_chain;
  s.max_read_amplification = config.compact_max_read_amplification;
  s.keep_last = config.retention_keep_last;
  s.keep_seconds = config.retention_keep_seconds;
  s.retention_interval = std::chrono::seconds(config.retention_interval_s);
  return s;
}

Result<std::unique_ptr<Session>> Session::create(const DaemonConfig& config, std::shared_ptr<snap::FileSystem> fs) {
  snap::StoreOptions store_options;
  store_options.fs = std::move(fs);
  store_options.engine = config.write_engine;
  store_options.compression_level = config.compression_level;
  store_options.maintenance_workers = 1;  // background compaction leaves the other CPUs to the guest
  CKPT_ASSIGN_OR_RETURN(auto store, snap::Store::open(config.store_dir, store_options));
  std::optional<uint64_t> newest = store->newest();
  if (newest && !config.resume) {
    return invalid_argument(config.store_dir + " already holds epochs up to " + std::to_string(*newest) +
                            ": set resume (--resume) to continue that VM, or give an empty store directory");
  }
  BuiltVm vm;
  if (newest) {
    auto rebuilt = rebuild_machine(config, store->fs(), store->catalog_snapshot(), *newest,
                                   config.lazy_restore ? MemoryRestore::kLazy : MemoryRestore::kEager);
    if (!rebuilt.is_ok() && (rebuilt.status().code() == StatusCode::kCorruption ||
                             rebuilt.status().code() == StatusCode::kNotFound)) {
      // Refusing is safe, but under systemd it repeats every few seconds: say how to get out.
      return rebuilt.status().with_context(
          "resume from the newest epoch (" + std::to_string(*newest) + ") of " + config.store_dir +
          "; 'ckpt repair --store " + config.store_dir + "' moves the epochs that cannot be restored aside, after which "
          "ckptd resumes from the newest intact one (docs/operations.md, \"A damaged store\")");
    }
    CKPT_ASSIGN_OR_RETURN(vm, std::move(rebuilt));
  } else {
    CKPT_ASSIGN_OR_RETURN(vm, create_fresh_machine(config));
  }
  CKPT_ASSIGN_OR_RETURN(StagingArea staging, StagingArea::create(config.staging_bytes));
  CKPT_ASSIGN_OR_RETURN(DigestLog digests, DigestLog::open(config.record_digests));
  auto worker = std::make_unique<StoreWorker>(std::move(store));
  std::unique_ptr<Session> session(new Session(config, std::move(worker), std::move(staging), std::move(digests)));
  Session* self = session.get();
  session->compactor_ = std::make_unique<Compactor>(
      session->worker_->store_for_maintenance(), compaction_settings(config),
      [self] {
        std::lock_guard lock(self->mu_);
        return self->parent_;
      },
      [self](const Status& s) { self->record_error(s); });
  if (vm.machine->has_console()) {
    ConsoleOptions console_options;
    console_options.log_dir = config.store_dir;
    session->console_ = std::make_unique<Console>(std::move(console_options));
  }
  CKPT_RETURN_IF_ERROR(session->adopt_machine(std::move(vm), newest));
  if (newest) {
    {
      std::lock_guard lock(session->mu_);  // the compactor's thread reads them already
      session->parent_ = newest;
      session->stats_.resumed_from_epoch = newest;
      session->stats_.last_committed_epoch = newest;
    }
    CKPT_LOG(kInfo) << "resumed the VM from epoch " << *newest << " of " << config.store_dir;
    for (const char* key : {"kernel", "initrd", "cmdline"}) {
      auto given = config.explicit_settings.find(key);
      if (given == config.explicit_settings.end()) continue;
      CKPT_LOG(kInfo) << key << " (" << given->second << ") is not used on resume: the guest's kernel is in the "
                      << "memory of the store";
    }
    return session;
  }
  // The base: every page and the state, before the guest first runs.
  Result<EpochCommitted> base = session->take_epoch("base", /*leave_paused=*/true).get();
  if (!base.is_ok()) return base.status().with_context("write the base epoch");
  session->forget_pauses();  // the guest has not run yet: writing the base is not a pause it sees
  CKPT_LOG(kInfo) << "wrote the base (epoch " << base->epoch << ") to " << config.store_dir;
  return session;
}

// Makes `machine` the session's VM (the previous one, if any, is destroyed). Not started.
Status Session::adopt_machine(BuiltVm vm, std::optional<uint64_t> loaded_epoch) {
  std::unique_ptr<vmm::Machine>& machine = vm.machine;
  // Not of a lazily restored VM: reading all of it here would fault every page in before the guest runs, and no
  // test would see a guest run while its memory comes in. The epochs taken after it show what it was: each one's
  // digest hashes the live memory, so a page restored wrong and never written since differs from the store's.
  if (loaded_epoch && digests_.enabled() && !vm.lazy) {
    CKPT_RETURN_IF_ERROR(digests_.record("loaded", *loaded_epoch, DigestLog::digest(machine->host_memory())));
  }
  detach_console();  // the machine being replaced is destroyed below
  if (lazy_) lazy_->abandon();  // its vCPUs stop on zeros rather than wait on a failed block
  machine_ = std::move(machine);
  std::unique_ptr<LazyRestore> old_lazy;  // goes only now that its machine has, and outside mu_
  {
    std::lock_guard lock(mu_);  // stats() reads lazy_
    old_lazy = std::move(lazy_);
    lazy_ = std::move(vm.lazy);
  }
  old_lazy.reset();
  if (lazy_) {  // not under mu_: the callback takes it
    LazyRestore* current = lazy_.get();
    lazy_->set_on_error([this, current](const Status& error) {
      std::lock_guard lock(mu_);
      commands_.push_back([this, current, error] { stop_after_failed_restore(current, error); });
      cv_.notify_all();
    });
  }
  // The rebuilt working images go in place only now that their VM replaced the old one. Should a rename fail, the
  // VM runs on from the rebuilt file (its descriptors stay good) and the next resume rebuilds the images again.
  Status published = vm.publish_disks();
  if (!published.is_ok()) record_error(published.with_context("put the rebuilt working images in place"));
  disks_ = std::move(vm.disks);
  machine_paused_ = true;
  if (console_ && loaded_epoch) {
    // The guest jumps back in time here: readers of the console (and of console.log) see where, in a line of its
    // own that the guest could never have written (it starts with "[ckptd: ").
    std::string mark = "\r\n[ckptd: the guest continues from epoch " + std::to_string(*loaded_epoch) + "]\r\n";
    console_->console_output({reinterpret_cast<const uint8_t*>(mark.data()), mark.size()});
  }
  attach_console();
  std::lock_guard lock(mu_);
  stats_.backend = machine_->backend_name();
  stats_.guest = vmm::guest_kind_name(machine_->config().guest);
  guest_stop_ = {};
  stats_.guest_stop.clear();
  stats_.guest_stop_detail.clear();
  stats_.tracking = vmm::tracking_mode_name(machine_->tracking_mode());
  stats_.memory_bytes = machine_->config().memory_bytes;
  stats_.vcpus = machine_->config().vcpus;
  stats_.disks = disks_.size();
  owed_.clear();
  in_flight_.clear();  // every epoch of the machine it replaces was written before (restore waits for its save)
  failure_ = Status::ok();
  return Status::ok();
}

// The console outlives machines: each adopted machine feeds it and takes its input; a machine is detached before it
// is destroyed (set_input_target waits out a write_input still calling into it).
void Session::attach_console() {
  if (!console_ || !machine_->has_console()) return;
  machine_->set_console_sink(console_.get());
  vmm::Machine* machine = machine_.get();
  console_->set_input_target([machine](std::span<const uint8_t> bytes) { return machine->console_input(bytes); });
}

void Session::detach_console() {
  if (!console_) return;
  console_->set_input_target({});
  if (machine_) machine_->set_console_sink(nullptr);
}

Status Session::run() {
  name_this_thread("ckpt-epochs");
  CKPT_RETURN_IF_ERROR(start_machine());
  {
    std::lock_guard lock(mu_);
    started_ = Clock::now();  // rates count from here: the base was written before the guest ran
  }
  {
    std::lock_guard lock(mu_);
    loop_running_ = true;
  }
  loop();
  compactor_->stop();  // cancels a rebase under way: the final epoch should not wait for it
  {
    std::lock_guard lock(mu_);
    if (note_guest_stop()) {
      loop_running_ = false;
      CKPT_LOG(kInfo) << "no final epoch: " << guest_stopped_error().message();
      return Status::ok();
    }
  }
  Result<EpochCommitted> final_epoch = take_final_epoch();
  {
    std::lock_guard lock(mu_);
    loop_running_ = false;
  }
  if (!final_epoch.is_ok()) return final_epoch.status();
  if (config_.verify_final) return verify_against_fresh_vm(final_epoch->epoch);
  return Status::ok();
}

Result<std::vector<std::pair<uint64_t, uint64_t>>> Session::resident_data_ranges() const {
  if (lazy_ && !lazy_->progress().filled) {
    return Status(StatusCode::kAborted, "a lazy restore is still filling the guest's memory");
  }
  return machine_->data_ranges();
}

// The guest is paused at `epoch`: a VM rebuilt from the store must hold the same memory, byte for byte, and accept
// the epoch's vCPU and VM state.
Status Session::verify_against_fresh_vm(uint64_t epoch) {
  Clock::time_point t0 = Clock::now();
  auto history = compactor_->hold_history();
  std::unique_ptr<snap::FileSystem> fs = snap::make_posix_file_system();
  // From the files, not the catalog the store holds in memory: what is checked is what a restore elsewhere would read.
  CKPT_ASSIGN_OR_RETURN(snap::Catalog catalog, snap::Catalog::load(*fs, worker_->store_dir()));
  // Its rebuilt images are never published: they go with the fresh VM.
  CKPT_ASSIGN_OR_RETURN(BuiltVm rebuilt, rebuild_machine(config_, *fs, catalog, epoch));
  std::unique_ptr<vmm::Machine>& fresh = rebuilt.machine;
  std::span<const uint8_t> want = machine_->host_memory(), got = fresh->host_memory();
  if (want.size() != got.size()) return corruption("epoch " + std::to_string(epoch) + " rebuilt a VM of another size");
  // Pages outside both machines' data ranges were never touched by either: zero in both, and not worth a page
  // fault each to read. Every other page is compared.
  std::vector<bool> compare(want.size() / StagingArea::kPage, false);
  for (vmm::Machine* m : {machine_.get(), fresh.get()}) {
    auto ranges = m == machine_.get() ? resident_data_ranges() : m->data_ranges();
    if (!ranges.is_ok()) {
      compare.assign(compare.size(), true);
      continue;
    }
    for (auto [first, count] : *ranges) std::fill_n(compare.begin() + first, count, true);
  }
  // Memory the backend itself wrote into the fresh VM while its state was loaded is not the epoch's to match: KVM
  // rewrites a Linux guest's kvmclock wall clock with the host's time when its MSR is set. Those bytes are compared
  // as the guest has them (zeroed on both sides below); the rest of their pages is compared as usual.
  std::vector<std::pair<uint64_t, uint64_t>> written_by_load = fresh->memory_written_by_load();
  std::vector<uint8_t> want_page(StagingArea::kPage), got_page(StagingArea::kPage);
  auto masked = [&](uint64_t gfn, const uint8_t* page, std::vector<uint8_t>& out) {
    std::memcpy(out.data(), page, out.size());
    for (auto [gpa, bytes] : written_by_load) {
      uint64_t lo = std::max(gpa, gfn * StagingArea::kPage), hi = std::min(gpa + bytes, (gfn + 1) * StagingArea::kPage);
      if (lo < hi) std::memset(out.data() + (lo - gfn * StagingArea::kPage), 0, hi - lo);
    }
    return out.data();
  };
  for (uint64_t gfn = 0; gfn < compare.size(); ++gfn) {
    uint64_t offset = gfn * StagingArea::kPage;
    if (compare[gfn] && std::memcmp(want.data() + offset, got.data() + offset, StagingArea::kPage) != 0 &&
        std::memcmp(masked(gfn, want.data() + offset, want_page), masked(gfn, got.data() + offset, got_page),
                    StagingArea::kPage) != 0) {
      return corruption("verify-final: epoch " + std::to_string(epoch) + " restored into a fresh VM differs from " +
                        "the guest at gfn " + std::to_string(gfn));
    }
  }
  // Each disk: the working image the guest wrote against the one rebuilt from the chain.
  if (rebuilt.disks.size() != disks_.size()) {
    return corruption("verify-final: epoch " + std::to_string(epoch) + " rebuilt a VM with " +
                      std::to_string(rebuilt.disks.size()) + " disks, the guest has " + std::to_string(disks_.size()));
  }
  std::vector<uint8_t> a(64 * kDiskBlockBytes), b(a.size());
  for (size_t d = 0; d < disks_.size(); ++d) {
    if (rebuilt.disks[d].blocks != disks_[d].blocks) {
      return corruption("verify-final: disk " + std::to_string(d) + " of epoch " + std::to_string(epoch) +
                        " rebuilt with another size");
    }
    for (uint64_t block = 0; block < disks_[d].blocks; block += 64) {
      uint64_t n = std::min<uint64_t>(64, disks_[d].blocks - block);
      CKPT_RETURN_IF_ERROR(read_disk_blocks(disks_[d], block, n, a.data()));
      CKPT_RETURN_IF_ERROR(read_disk_blocks(rebuilt.disks[d], block, n, b.data()));
      if (std::memcmp(a.data(), b.data(), n * kDiskBlockBytes) != 0) {
        return corruption("verify-final: disk " + std::to_string(d) + " of epoch " + std::to_string(epoch) +
                          " rebuilt from the store differs from the guest's within blocks " + std::to_string(block) +
                          ".." + std::to_string(block + n - 1));
      }
    }
  }
  CKPT_LOG(kInfo) << "verify-final: epoch " << epoch << " rebuilt into a fresh " << fresh->backend_name()
                  << " VM in " << std::chrono::duration<double>(Clock::now() - t0).count() << " s: all "
                  << (want.size() >> 20) << " MiB of memory bit-exact"
                  << (written_by_load.empty() ? "" : " (but the kvmclock wall clock KVM rewrote)")
                  << (disks_.empty() ? "" : ", and every disk") << ", vCPU and VM state loaded";
  return Status::ok();
}

Status Session::start_machine() {
  CKPT_RETURN_IF_ERROR(machine_->start());
  machine_paused_ = false;
  return Status::ok();
}

void Session::loop() {
  std::unique_lock lock(mu_);
  Clock::time_point next = Clock::now() + std::chrono::milliseconds(config_.epoch_ms);
  for (;;) {
    auto woken = [&] { return shutdown_ || !commands_.empty() || reschedule_; };
    // Without periodic epochs the loop still looks every second whether the guest stopped, for status.
    if (epochs_paused_ || !failure_.is_ok() || note_guest_stop()) {
      cv_.wait_for(lock, std::chrono::seconds(1), woken);
    } else {
      cv_.wait_until(lock, next, woken);
    }
    if (!commands_.empty()) {  // commands queued before a shutdown still run
      auto command = std::move(commands_.front());
      commands_.pop_front();
      lock.unlock();
      command();
      lock.lock();
      continue;
    }
    if (shutdown_) return;
    if (reschedule_) {  // a new interval applies from now
      reschedule_ = false;
      next = Clock::now() + std::chrono::milliseconds(config_.epoch_ms);
      continue;
    }
    if (epochs_paused_ || !failure_.is_ok() || note_guest_stop() || Clock::now() < next) continue;
    Clock::time_point started = Clock::now();
    lock.unlock();
    take_epoch("", /*leave_paused=*/false);  // its outcome is counted in stats_; nobody waits for it
    lock.lock();
    next = started + std::chrono::milliseconds(config_.epoch_ms);
  }
}

template <typename R>
R Session::on_loop(std::function<R()> command) {
  auto task = std::make_shared<std::packaged_task<R()>>(std::move(command));
  std::future<R> result = task->get_future();
  {
    std::lock_guard lock(mu_);
    if (shutdown_) return Status(StatusCode::kBusy, "ckptd is shutting down");
    commands_.push_back([task] { (*task)(); });
  }
  cv_.notify_all();
  return result.get();
}

Result<EpochCommitted> Session::snapshot(std::string tag) {
  using Pending = std::shared_future<Result<EpochCommitted>>;
  Result<Pending> pending = on_loop<Result<Pending>>([&]() -> Result<Pending> {
    {
      std::lock_guard lock(mu_);
      if (note_guest_stop()) return guest_stopped_error();
    }
    return take_epoch(tag, false);
  });
  if (!pending.is_ok()) return pending.status();
  return pending->get();
}

// Runs on the loop thread, so once it returns no capture is under way and none starts until resume_epochs (up to
// two epochs already captured may still be committing).
Status Session::pause_epochs() {
  return on_loop<Status>([this] {
    std::lock_guard lock(mu_);
    epochs_paused_ = true;
    return Status::ok();
  });
}

Status Session::resume_epochs() {
  {
    std::lock_guard lock(mu_);
    if (shutdown_) return Status(StatusCode::kBusy, "ckptd is shutting down");
    epochs_paused_ = false;
    reschedule_ = true;
  }
  cv_.notify_all();
  return Status::ok();
}

void Session::request_shutdown() {
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
  if (console_) console_->stop_waiting();  // long-polling console readers return now, not after their wait
}

void Session::reload(const DaemonConfig& config) {
  {
    std::lock_guard lock(mu_);
    config_.epoch_ms = config.epoch_ms;
    config_.retention_keep_last = config.retention_keep_last;
    config_.retention_keep_seconds = config.retention_keep_seconds;
    config_.retention_interval_s = config.retention_interval_s;
    config_.compact_max_chain = config.compact_max_chain;
    config_.compact_max_read_amplification = config.compact_max_read_amplification;
    config_.lazy_restore = config.lazy_restore;
    config_.log_level = config.log_level;
    reschedule_ = true;
  }
  compactor_->set_settings(compaction_settings(config));
  set_log_level(config.log_level);
  cv_.notify_all();
}

Result<RestoreOutcome> Session::restore(uint64_t epoch) {
  return on_loop<Result<RestoreOutcome>>([&] { return restore_on_loop(epoch); });
}

// Saves the running VM first (so a restore never discards work), builds the new VM from `epoch` next to the old
// one, and only then replaces it: any failure leaves the old VM running as it was.
Result<RestoreOutcome> Session::restore_on_loop(uint64_t epoch) {
  Clock::time_point t0 = Clock::now();
  auto history = compactor_->hold_history();  // the chain stays as planned until the VM is rebuilt from it
  RestoreOutcome outcome;
  outcome.restored_epoch = epoch;
  {  // an epoch that cannot be restored is refused before the running VM is saved or touched
    auto chain = worker_->catalog().chain(epoch);
    if (!chain.is_ok()) return chain.status().with_context("restore epoch " + std::to_string(epoch));
  }
  bool guest_stopped;
  {
    std::lock_guard lock(mu_);
    guest_stopped = note_guest_stop();
  }
  std::string tag = "before-restore-to-" + std::to_string(epoch);
  // A guest that stopped itself has nothing worth saving (and no epoch may be taken of it).
  Result<EpochCommitted> saved = guest_stopped ? Result<EpochCommitted>(EpochCommitted{})
                                               : take_epoch(tag, /*leave_paused=*/true).get();
  if (!saved.is_ok()) {
    Status resumed = start_or_resume();
    (void)resumed;
    return saved.status().with_context("save the running VM before restoring epoch " + std::to_string(epoch) +
                                       " (nothing changed)");
  }
  if (!guest_stopped) outcome.saved_epoch = saved->epoch;
  std::unique_ptr<snap::FileSystem> fs = snap::make_posix_file_system();
  MemoryRestore memory;
  {
    std::lock_guard lock(mu_);  // reloadable
    memory = config_.lazy_restore ? MemoryRestore::kLazy : MemoryRestore::kEager;
  }
  // The catalog the store holds (the save above is in it): its files' metadata as written and checked when loaded.
  auto rebuilt = rebuild_machine(config_, *fs, worker_->catalog(), epoch, memory);
  if (!rebuilt.is_ok()) {
    Status resumed = start_or_resume();
    (void)resumed;
    return rebuilt.status();
  }
  CKPT_RETURN_IF_ERROR(adopt_machine(std::move(*rebuilt), epoch));
  {
    std::lock_guard lock(mu_);
    parent_ = epoch;
    reschedule_ = true;
  }
  CKPT_RETURN_IF_ERROR(start_machine());
  outcome.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  CKPT_LOG(kInfo) << "restored the VM to epoch " << epoch << " ("
                  << (guest_stopped ? std::string("the previous guest had stopped")
                                    : "the previous state is epoch " + std::to_string(saved->epoch))
                  << ") in " << outcome.seconds << " s";
  return outcome;
}

void Session::stop_after_failed_restore(const LazyRestore* which, const Status& error) {
  if (which != lazy_.get() || !machine_) return;
  std::string detail = error.message();
  if (!machine_paused_) {
    // A vCPU waiting on a page of the failed block may not stop (it waits on, in the kernel): it never runs on.
    Status paused = machine_->pause(std::chrono::milliseconds(2000));
    if (paused.is_ok()) {
      machine_paused_ = true;
    } else {
      detail += " (" + paused.message() + ")";
    }
  }
  std::lock_guard lock(mu_);
  guest_stop_ = {vmm::GuestStopReason::kRestoreFailed, detail};
  stats_.guest_stop = vmm::guest_stop_reason_name(guest_stop_.reason);
  stats_.guest_stop_detail = detail;
  ++stats_.errors_total;  // LazyRestore has logged it
  stats_.last_error = error.to_string();
}

bool Session::note_guest_stop() {
  if (guest_stop_.reason != vmm::GuestStopReason::kNone) return true;
  vmm::GuestStop stop = machine_->guest_stop();
  if (stop.reason == vmm::GuestStopReason::kNone) return false;
  guest_stop_ = stop;
  stats_.guest_stop = vmm::guest_stop_reason_name(stop.reason);
  stats_.guest_stop_detail = stop.detail;
  return true;
}

Status Session::guest_stopped_error() const {
  return Status(StatusCode::kAborted,
                std::string(guest_stop_.reason == vmm::GuestStopReason::kRestoreFailed ? "the guest was stopped ("
                                                                                       : "the guest stopped itself (") +
                    std::string(vmm::guest_stop_reason_name(guest_stop_.reason)) + ": " +
                    guest_stop_.detail + "): no epochs are taken of a stopped guest; the store holds it up to epoch " +
                    (parent_ ? std::to_string(*parent_) : std::string("none")) +
                    ", and 'ckpt restore EPOCH' brings back a running guest");
}

// After a failed command left the (started) machine paused.
Status Session::start_or_resume() {
  if (!machine_paused_) return Status::ok();
  CKPT_RETURN_IF_ERROR(machine_->resume());
  machine_paused_ = false;
  return Status::ok();
}

std::vector<std::pair<uint64_t, snap::CatalogEntry>> Session::list_epochs(std::optional<uint64_t> after, size_t limit,
                                                                          bool* more) const {
  return worker_->store_for_maintenance().entries_after(after, limit, more);
}

// Both run on the compactor's thread, so epochs keep being written meanwhile.
Status Session::compact(uint64_t epoch) {
  return compactor_->run([&](snap::Store& store) -> Status {
    {
      std::lock_guard lock(mu_);
      if (parent_ && *parent_ < epoch) {
        return invalid_argument("epoch " + std::to_string(epoch) + " is newer than " + std::to_string(*parent_) +
                                ", which the running VM builds on; compacting to it would remove that epoch");
      }
    }
    return store.compact(epoch);
  });
}

Result<uint64_t> Session::apply_retention(const snap::RetentionPolicy& policy) {
  uint64_t removed = 0;
  Status s = compactor_->run([&](snap::Store& store) -> Status {
    snap::RetentionPolicy with_head = policy;
    {
      std::lock_guard lock(mu_);
      if (parent_) with_head.also_keep.insert(*parent_);  // the running VM's line stays whatever the rules say
    }
    CKPT_ASSIGN_OR_RETURN(removed, store.apply_retention(with_head));
    return Status::ok();
  });
  if (!s.is_ok()) return s;
  return removed;
}

DaemonStats Session::stats() const {
  std::lock_guard lock(mu_);
  DaemonStats s = stats_;
  s.uptime_seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  s.owed_pages = owed_.pages.size();
  s.owed_disk_blocks = owed_.disk_block_count();
  s.writer_backlog_epochs = worker_->backlog();
  s.compaction = compactor_->stats();
  s.compaction.store_epochs = worker_->store_for_maintenance().epoch_count();  // now, not at the last pass
  s.compaction.store_bytes = worker_->store_for_maintenance().total_bytes();
  if (lazy_) s.lazy_restore = lazy_->progress();
  if (!recent_pauses_ms_.empty()) {
    std::vector<double> sorted(recent_pauses_ms_.begin(), recent_pauses_ms_.end());
    std::sort(sorted.begin(), sorted.end());
    s.pause_p50_ms = sorted[sorted.size() / 2];
    s.pause_p99_ms = sorted[std::min(sorted.size() - 1, sorted.size() * 99 / 100)];
    s.pause_max_ms = sorted.back();
  }
  if (!failure_.is_ok()) s.state = "failed";
  else if (shutdown_) s.state = "stopping";
  else if (guest_stop_.reason != vmm::GuestStopReason::kNone) s.state = "guest-stopped";
  else if (epochs_paused_) s.state = "epochs-paused";
  else s.state = "running";
  return s;
}

SessionInfo Session::info() const {
  std::lock_guard lock(mu_);
  return {worker_->store_dir(), parent_, epochs_paused_, config_.epoch_ms};
}

void Session::forget_pauses() {
  std::lock_guard lock(mu_);
  stats_.pause_ms = make_pause_histogram();
  stats_.last_pause_ms = 0;
  recent_pauses_ms_.clear();
}

void Session::record_error(const Status& s) {
  CKPT_LOG(kError) << s.to_string();
  std::lock_guard lock(mu_);
  ++stats_.errors_total;
  stats_.last_error = s.to_string();
}

}  // namespace ckpt::daemon
