// One epoch: capture on the loop thread (the guest paused only for harvest, copy, rearm and state), then write on
// the StoreWorker while the guest runs; the next capture may overlap that write. Pages never get lost between the
// two: a failed write returns its pages to `owed_`, and the next capture adds them to what it harvests. They stay
// owed until an epoch holding them commits. A disk's written blocks go the same way as pages: the pause (which
// quiesces the disks, Machine::pause) harvests them, copies them from the working image into the staging area,
// and they share the epoch file, its commit and the owed set.
//
// With two epochs in flight, N+1 may have been captured before N's write failed: it lacks N's pages, so writing it
// on top of N-1 would commit a wrong epoch. Each capture therefore records the write generation (bumped by every
// failure, together with owing the pages); the worker skips an epoch from an older generation and owes its pages
// too. Before a capture the loop drains an in-flight epoch of an older generation, so its pages are owed by then
// and at most one epoch is skipped per failure. A capture that fails after its harvest (a disk block it could not
// read, the state it could not save) is such a failure too: the epoch still being written holds older contents of
// pages now owed, and its commit would pay those debts (pay_owed) and lose the newer contents.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <thread>

#include "common/log.h"
#include "daemon/session.h"

namespace ckpt::daemon {
namespace {

constexpr auto kPauseTimeout = std::chrono::milliseconds(1000);
constexpr uint64_t kPage = StagingArea::kPage;

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Durations of the steps of a pause, for the debug log.
class Laps {
 public:
  void lap(const char* name) {
    auto now = std::chrono::steady_clock::now();
    char part[48];
    std::snprintf(part, sizeof part, "%s%s %.3f", text_.empty() ? "" : ", ", name, ms_between(last_, now));
    text_ += part;
    last_ = now;
  }
  double total_ms() const { return ms_between(start_, std::chrono::steady_clock::now()); }
  std::chrono::steady_clock::time_point start() const { return start_; }
  std::string text() const { return text_ + " ms"; }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
  std::string text_;
};

}  // namespace

struct Session::EpochJob {
  std::string tag;
  bool full = false;                 // a base holding every page (dirty tracking failed: nothing else is safe)
  DirtySet dirty;                    // the pages, and each disk's blocks
  std::vector<bool> untouched;       // full bases: gfns that never held data (read as zero; not read at all)
  std::vector<std::vector<bool>> disk_untouched;  // full bases: disk blocks in holes of the working image
  std::vector<snap::DiskSpec> disks;  // full bases: the disks' layout (from the loop thread's disks_)
  // Staged: dirty.pages[i] is in slot first_slot + i, then each disk's blocks in order.
  uint64_t first_slot = 0;
  uint64_t generation = 0;           // write_generation_ when the pages were harvested
  const uint8_t* direct = nullptr;   // oversized: pages come from guest memory (the guest stays paused)
  std::vector<vmm::StateBlob> state;
  uint64_t timestamp_ns = 0;
  std::optional<uint64_t> digest;    // record-digests only
  double pause_ms = 0;
  std::promise<Result<EpochCommitted>> done;
  std::shared_future<Result<EpochCommitted>> outcome;  // of `done`
};

std::shared_future<Result<EpochCommitted>> Session::take_epoch(const std::string& tag, bool leave_paused) {
  auto job = std::make_shared<EpochJob>();
  job->tag = tag;
  job->outcome = job->done.get_future().share();
  std::shared_future<Result<EpochCommitted>> outcome = job->outcome;
  Clock::time_point wait_start = Clock::now();
  wait_for_pipeline_room();  // a slow disk stretches epochs instead of queueing them
  double lag_ms = ms_between(wait_start, Clock::now());
  {
    std::lock_guard lock(mu_);
    stats_.writer_lag_ms = lag_ms;
    if (lag_ms >= 1) ++stats_.epochs_stretched;
    job->full = !failure_.is_ok() || !parent_;
  }
  Status captured = capture(job, leave_paused);
  if (!captured.is_ok()) {
    record_error(captured);
    job->done.set_value(captured);
  }
  return outcome;
}

// Before a pause: at most one epoch may still be writing while the next is captured, and only when the next can
// safely build on it (it is a delta of the current write generation) and leaves room in the staging area.
void Session::wait_for_pipeline_room() {
  while (!in_flight_.empty() &&
         in_flight_.front().outcome.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    in_flight_.pop_front();
  }
  if (in_flight_.empty()) return;
  bool same_generation, has_parent;
  {
    std::lock_guard lock(mu_);
    same_generation = in_flight_.back().generation == write_generation_;
    has_parent = parent_.has_value();
  }
  // A base in flight: the next epoch is a delta on it only once it commits. An epoch that takes over half the
  // staging area: the next one would likely not fit beside it, and waiting here is better than inside the pause.
  if (in_flight_.size() > 1 || !same_generation || !has_parent ||
      in_flight_.back().pages > staging_.capacity_pages() / 2) {
    drain_pipeline();
  }
}

void Session::drain_pipeline() {
  for (const StagedEpoch& e : in_flight_) e.outcome.wait();
  in_flight_.clear();
}

// Slots for `pages` staged pages that no epoch still being written uses: after the one in flight, or before it, or
// (guest paused) once it is written.
uint64_t Session::place_in_staging(uint64_t pages) {
  if (in_flight_.empty()) return 0;
  const StagedEpoch& last = in_flight_.back();
  if (last.first_slot + last.pages + pages <= staging_.capacity_pages()) return last.first_slot + last.pages;
  if (pages <= last.first_slot) return 0;
  drain_pipeline();
  return 0;
}

// Pause -> harvest (+ owed) -> stage -> rearm -> state -> resume, then hand the job to the worker. An epoch too big
// for the staging area (or a full base) is written from guest memory before the guest resumes.
Status Session::capture(std::shared_ptr<EpochJob> job, bool leave_paused) {
  staging_.wait_populated();  // while the guest runs: the pause must not fault the staging area in
  Laps laps;
  CKPT_RETURN_IF_ERROR(pause_machine());
  {
    // Every vCPU is parked now, so a guest that stopped itself has said so: its state is not an epoch to restore.
    std::lock_guard lock(mu_);
    if (note_guest_stop()) return guest_stopped_error();
  }
  laps.lap("pause");
  std::span<uint8_t> memory = machine_->host_memory();
  Result<std::vector<uint64_t>> dirty = machine_->harvest_dirty();
  if (!dirty.is_ok()) return tracking_failed(dirty.status().with_context("harvest dirty pages"));
  DirtySet harvested;
  harvested.pages = std::move(*dirty);
  for (size_t i = 0; i < disks_.size(); ++i) harvested.disk_blocks.push_back(machine_->harvest_disk_blocks(i));
  {
    std::lock_guard lock(mu_);  // the owed pages and the generation they belong to, as one
    job->dirty = merge(harvested, owed_);
    job->generation = write_generation_;
  }
  if (job->full) plan_full_epoch(*job);
  laps.lap("harvest");
  bool staged = job->dirty.size() <= staging_.capacity_pages() && !job->full;
  Status disk_read = Status::ok();
  if (staged) {
    job->first_slot = place_in_staging(job->dirty.size());
    staging_.copy_in(memory, job->dirty.pages, job->first_slot);
    disk_read = stage_disk_blocks(*job);
  }
  laps.lap("copy");
  Status rearmed = machine_->rearm();
  if (!rearmed.is_ok()) {
    add_owed(job->dirty);
    return tracking_failed(rearmed.with_context("rearm dirty tracking"));
  }
  if (!disk_read.is_ok()) {  // nothing is lost: the next epoch reads them again
    owe_after_failure(job->dirty, disk_read);
    if (!leave_paused) (void)start_or_resume();
    return disk_read.with_context("copy the epoch's disk blocks (they are owed to the next epoch)");
  }
  laps.lap("rearm");
  Result<std::vector<vmm::StateBlob>> state = machine_->save_state();
  if (!state.is_ok()) {
    owe_after_failure(job->dirty, state.status());
    (void)start_or_resume();
    return state.status().with_context("save the machine state");
  }
  job->state = std::move(*state);
  job->timestamp_ns = realtime_ns();
  if (digests_.enabled()) job->digest = DigestLog::digest(memory);
  laps.lap("state");
  if (!staged) return write_while_paused(job, leave_paused, laps.start());
  // The pause the guest sees ends when resume is asked for; on a busy host the woken vCPU threads may then run
  // before this one does again, which is guest time, not pause time.
  job->pause_ms = laps.total_ms();
  record_pause(job->pause_ms);
  if (!leave_paused) CKPT_RETURN_IF_ERROR(start_or_resume());
  laps.lap("resume");
  CKPT_LOG(kDebug) << "epoch capture: " << job->dirty.pages.size() << " pages, " << job->dirty.disk_block_count()
                   << " disk blocks, " << laps.text();
  in_flight_.push_back(StagedEpoch{job->outcome, job->first_slot, job->dirty.size(), job->generation});
  worker_->post([this, job](snap::Store& store) { job->done.set_value(write_epoch(store, *job)); });
  return Status::ok();
}

// A full base: every gfn and every disk block, but pages the guest never touched and holes of the working images
// are known zeros and are not read.
void Session::plan_full_epoch(EpochJob& job) {
  std::vector<uint64_t>& gfns = job.dirty.pages;
  gfns.resize(machine_->host_memory().size() / kPage);
  for (uint64_t g = 0; g < gfns.size(); ++g) gfns[g] = g;
  job.dirty.disk_blocks.assign(disks_.size(), {});
  job.disk_untouched.assign(disks_.size(), {});
  job.disks.clear();
  for (size_t i = 0; i < disks_.size(); ++i) {
    const OpenDisk& disk = disks_[i];
    job.disks.push_back(snap::DiskSpec{disk.name, disk.blocks, disk.read_only});
    std::vector<uint64_t>& blocks = job.dirty.disk_blocks[i];
    blocks.resize(disk.blocks);
    for (uint64_t b = 0; b < blocks.size(); ++b) blocks[b] = b;
    job.disk_untouched[i].assign(disk.blocks, true);
    for (auto [first, count] : disk_data_ranges(disk)) {
      std::fill_n(job.disk_untouched[i].begin() + first, std::min(count, disk.blocks - first), false);
    }
  }
  Result<std::vector<std::pair<uint64_t, uint64_t>>> data = resident_data_ranges();
  if (!data.is_ok()) return;  // every page is read (faulting in what a lazy restore has not): slower, same result
  job.untouched.assign(gfns.size(), true);
  for (auto [first, count] : *data) std::fill_n(job.untouched.begin() + first, count, false);
}

// The disks' blocks go into the slots after the pages, read from the working images while the disks are quiesced.
Status Session::stage_disk_blocks(const EpochJob& job) {
  uint64_t slot = job.first_slot + job.dirty.pages.size();
  for (size_t i = 0; i < job.dirty.disk_blocks.size(); ++i) {
    const std::vector<uint64_t>& blocks = job.dirty.disk_blocks[i];
    for (size_t j = 0; j < blocks.size();) {
      size_t run = 1;  // consecutive blocks land in consecutive slots: one read each run
      while (j + run < blocks.size() && blocks[j + run] == blocks[j] + run) ++run;
      CKPT_RETURN_IF_ERROR(read_disk_blocks(disks_[i], blocks[j], run, staging_.slot(slot)));
      slot += run;
      j += run;
    }
  }
  return Status::ok();
}

Status Session::write_while_paused(std::shared_ptr<EpochJob> job, bool leave_paused, Clock::time_point t0) {
  job->direct = machine_->host_memory().data();
  Result<EpochCommitted> written = worker_->run([&](snap::Store& store) { return write_epoch(store, *job); });
  job->pause_ms = ms_between(t0, Clock::now());
  record_pause(job->pause_ms);
  Status resumed = leave_paused ? Status::ok() : start_or_resume();
  {
    std::lock_guard lock(mu_);
    if (!job->full) ++stats_.oversized_epochs;
  }
  if (written.is_ok()) written->pause_ms = job->pause_ms;
  job->done.set_value(std::move(written));
  return resumed;
}

// The machine is paused (or was never started) after this; a failed pause is undone so the guest keeps running.
Status Session::pause_machine() {
  if (machine_paused_) return Status::ok();
  Status paused = machine_->pause(kPauseTimeout);
  if (!paused.is_ok()) {
    Status resumed = machine_->resume();
    (void)resumed;
    return paused.with_context("pause the VM");
  }
  machine_paused_ = true;
  return Status::ok();
}

// Dirty tracking can no longer be trusted: no more periodic epochs; explicit and final epochs become full bases.
Status Session::tracking_failed(Status s) {
  {
    std::lock_guard lock(mu_);
    failure_ = s;
  }
  (void)start_or_resume();
  return s;
}

Result<EpochCommitted> Session::write_epoch(snap::Store& store, EpochJob& job) {
  snap::EpochOptions options{job.tag, job.timestamp_ns, std::nullopt};
  bool stale;
  Status cause;
  {
    std::lock_guard lock(mu_);
    if (!job.full) options.parent = parent_;
    stale = job.generation != write_generation_;
    cause = last_write_failure_;
  }
  if (stale) {
    add_owed(job.dirty);
    // The cause stays in the message: last_error must still say what went wrong (a full disk), not only this.
    Status skipped = cause.with_context("epoch not written: it was captured before an earlier epoch's write "
                                        "failed, so it lacks that epoch's pages (its own pages are owed too)");
    record_error(skipped);
    std::lock_guard lock(mu_);
    ++stats_.epochs_failed;
    ++stats_.epochs_skipped;
    return skipped;
  }
  Clock::time_point t0 = Clock::now();
  Result<std::shared_ptr<const snap::EpochMeta>> meta = write_epoch_file(store, job, options);
  CKPT_LOG(kDebug) << "epoch write: " << job.dirty.pages.size() << " pages, " << job.dirty.disk_block_count()
                   << " disk blocks in " << ms_between(t0, Clock::now()) << " ms";
  if (!meta.is_ok()) {
    owe_after_failure(job.dirty, meta.status());
    record_error(meta.status().with_context("epoch write (its pages are owed to the next epoch)"));
    std::lock_guard lock(mu_);
    ++stats_.epochs_failed;
    return meta.status();
  }
  EpochCommitted committed{(*meta)->header.epoch, job.dirty.pages.size(), job.dirty.disk_block_count(), job.pause_ms,
                           (*meta)->stats.stored_bytes, (*meta)->file_length};
  pay_owed(job.dirty);
  {
    std::lock_guard lock(mu_);
    parent_ = committed.epoch;
    ++stats_.epochs_committed;
    stats_.last_committed_epoch = committed.epoch;
    if (!job.full) {  // a base's pages are all of memory, not what the guest dirtied
      stats_.dirty_pages.observe(static_cast<double>(job.dirty.pages.size()));
      stats_.dirty_pages_total += job.dirty.pages.size();
      stats_.disk_blocks_total += job.dirty.disk_block_count();
    }
    stats_.last_epoch_disk_blocks = job.dirty.disk_block_count();
    stats_.bytes_raw_total += (*meta)->stats.raw_bytes;
    stats_.bytes_stored_total += (*meta)->file_length;  // the whole file: blocks, metadata, header and footer
  }
  if (compactor_) compactor_->epoch_committed();
  return committed;
}

Result<std::shared_ptr<const snap::EpochMeta>> Session::write_epoch_file(snap::Store& store, EpochJob& job,
                                                                         const snap::EpochOptions& options) {
  snap::EpochOptions base_options = options;
  base_options.disks = job.disks;
  auto writer = job.full ? store.begin_base(job.dirty.pages.size(), base_options) : store.begin_delta(options);
  if (!writer.is_ok()) return writer.status();
  // Recorded before the commit so that a kill -9 right after it cannot leave a committed epoch without its digest.
  // A failed attempt's line is superseded by the next epoch of the same number (readers keep the last line).
  if (job.digest) CKPT_RETURN_IF_ERROR(digests_.record("epoch", (*writer)->epoch(), *job.digest));
  static const uint8_t kZeroPage[kPage] = {};
  const std::vector<uint64_t>& gfns = job.dirty.pages;
  for (size_t i = 0; i < gfns.size(); ++i) {
    const uint8_t* page = job.direct ? job.direct + gfns[i] * kPage : staging_.slot(job.first_slot + i);
    if (!job.untouched.empty() && job.untouched[gfns[i]]) page = kZeroPage;
    CKPT_RETURN_IF_ERROR((*writer)->add_page(gfns[i], page));
  }
  // Disk blocks: from their staging slots, or (written while paused) straight from the working images, a run of
  // consecutive blocks at a time.
  uint64_t slot = job.first_slot + gfns.size();
  std::vector<uint8_t> run_buffer;
  for (size_t d = 0; d < job.dirty.disk_blocks.size(); ++d) {
    const std::vector<uint64_t>& blocks = job.dirty.disk_blocks[d];
    const uint32_t disk_id = static_cast<uint32_t>(d + 1);
    for (size_t j = 0; j < blocks.size();) {
      if (!job.disk_untouched.empty() && job.disk_untouched[d][blocks[j]]) {
        CKPT_RETURN_IF_ERROR((*writer)->add_disk_block(disk_id, blocks[j], kZeroPage));
        ++j;
        continue;
      }
      if (!job.direct) {
        CKPT_RETURN_IF_ERROR((*writer)->add_disk_block(disk_id, blocks[j], staging_.slot(slot++)));
        ++j;
        continue;
      }
      size_t run = 1;
      while (run < 64 && j + run < blocks.size() && blocks[j + run] == blocks[j] + run &&
             (job.disk_untouched.empty() || !job.disk_untouched[d][blocks[j + run]])) {
        ++run;
      }
      run_buffer.resize(run * kPage);
      CKPT_RETURN_IF_ERROR(read_disk_blocks(disks_[d], blocks[j], run, run_buffer.data()));
      for (size_t k = 0; k < run; ++k) {
        CKPT_RETURN_IF_ERROR((*writer)->add_disk_block(disk_id, blocks[j + k], run_buffer.data() + k * kPage));
      }
      j += run;
    }
  }
  for (const vmm::StateBlob& blob : job.state) CKPT_RETURN_IF_ERROR((*writer)->add_state(blob.name, blob.data));
  return (*writer)->commit();
}

// The guest stays paused, so a retry captures exactly the same state, owed pages included.
Result<EpochCommitted> Session::take_final_epoch() {
  Status last;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    Result<EpochCommitted> final_epoch = take_epoch("final", /*leave_paused=*/true).get();
    if (final_epoch.is_ok()) {
      CKPT_LOG(kInfo) << "final epoch " << final_epoch->epoch << " committed (" << final_epoch->dirty_pages
                      << " pages, " << final_epoch->disk_blocks << " disk blocks)";
      return final_epoch;
    }
    last = final_epoch.status();
    CKPT_LOG(kWarn) << "final epoch, attempt " << attempt << " of 3: " << last.to_string();
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
  }
  return last.with_context("final epoch");
}

void Session::record_pause(double ms) {
  std::lock_guard lock(mu_);
  stats_.pause_ms.observe(ms);
  recent_pauses_ms_.push_back(ms);
  if (recent_pauses_ms_.size() > 10000) recent_pauses_ms_.pop_front();
  stats_.last_pause_ms = ms;
}

void Session::add_owed(const DirtySet& dirty) {
  std::lock_guard lock(mu_);
  owed_ = merge(owed_, dirty);
}

void Session::owe_after_failure(const DirtySet& dirty, const Status& cause) {
  std::lock_guard lock(mu_);
  owed_ = merge(owed_, dirty);
  ++write_generation_;
  last_write_failure_ = cause;
}

// After a commit: the epoch held every page owed when it was captured, and nothing was owed since (a failure in
// between would have made it stale, and a stale epoch before it was drained before its capture), so those debts
// are paid.
void Session::pay_owed(const DirtySet& committed) {
  std::lock_guard lock(mu_);
  if (owed_.empty()) return;
  owed_ = subtract(owed_, committed);
}

}  // namespace ckpt::daemon
