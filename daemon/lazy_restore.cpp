#include "daemon/lazy_restore.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <chrono>

#include "common/log.h"

namespace ckpt::daemon {

namespace {

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace

LazyRestore::LazyRestore(std::unique_ptr<snap::LazySource> source, std::shared_ptr<vmm::MissingPages> pages,
                         Options options)
    : source_(std::move(source)),
      pages_(std::move(pages)),
      options_(std::move(options)),
      state_(new std::atomic<uint8_t>[source_->blocks()]()) {
  progress_.epoch = source_->epoch();
  progress_.pages = source_->pages();
  progress_.data_pages = source_->data_pages();
  progress_.blocks = source_->blocks();
}

Result<std::unique_ptr<LazyRestore>> LazyRestore::start(std::unique_ptr<snap::LazySource> source,
                                                        std::shared_ptr<vmm::MissingPages> pages, Options options) {
  std::unique_ptr<LazyRestore> lazy(new LazyRestore(std::move(source), std::move(pages), std::move(options)));
  lazy->stop_event_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!lazy->stop_event_.valid()) return Status::from_errno(errno, "eventfd for the lazy restore");
  lazy->start_ns_ = now_ns();
  if (lazy->source_->blocks() == 0) {  // all zero: nothing to read, ever
    lazy->source_->close_files();
    lazy->progress_.filled = true;
  }
  lazy->fault_thread_ = std::thread([l = lazy.get()] { l->serve_faults(); });
  lazy->filler_thread_ = std::thread([l = lazy.get()] { l->fill(); });
  return lazy;
}

LazyRestore::~LazyRestore() {
  abandon();
  stopping_ = true;
  uint64_t one = 1;
  (void)!::write(stop_event_.get(), &one, sizeof one);
  done_.notify_all();
  if (filler_thread_.joinable()) filler_thread_.join();
  if (fault_thread_.joinable()) fault_thread_.join();
}

LazyRestore::Progress LazyRestore::progress() const {
  std::lock_guard lock(mu_);
  Progress p = progress_;
  if (!p.filled) p.seconds = static_cast<double>(now_ns() - start_ns_) / 1e9;
  return p;
}

Status LazyRestore::error() const {
  std::lock_guard lock(mu_);
  return error_;
}

bool LazyRestore::wait_filled(int timeout_ms) const {
  std::unique_lock lock(mu_);
  return done_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                        [&] { return progress_.filled || !error_.is_ok(); }) &&
         progress_.filled;
}

std::vector<uint64_t> LazyRestore::working_set() const {
  std::vector<uint64_t> gfns;
  {
    std::lock_guard lock(mu_);
    gfns = touched_;
  }
  std::vector<bool> listed(source_->blocks(), false);
  for (uint64_t gfn : gfns) listed[source_->block_of(gfn)] = true;  // touched_ holds only blocks' first gfns
  std::lock_guard lock(mu_);  // order_ is the filler's until ordered_
  for (uint64_t i = 0; ordered_ && i < order_.prefetched && gfns.size() < options_.record_limit; ++i) {
    const snap::LazySource::BlockIndex block = order_.blocks[i];
    if (!listed[block]) gfns.push_back(source_->first_gfn_of(block));
  }
  return gfns;
}

void LazyRestore::abandon() {
  std::vector<uint64_t> waiting;
  {
    std::lock_guard lock(mu_);
    if (abandoned_.exchange(true)) return;
    waiting.swap(unanswered_);
  }
  { std::lock_guard wait_for_callbacks(callback_mu_); }
  done_.notify_all();
  // Faults left waiting on a failed block: zeros now, so that the accesses end (the guest is going away).
  for (uint64_t gfn : waiting) {
    (void)pages_->install_zero(gfn, 1);
    (void)pages_->wake(gfn, 1);
  }
}

void LazyRestore::fail(const Status& error) {
  {
    std::lock_guard lock(mu_);
    if (!error_.is_ok() || abandoned_) return;  // once torn down, what fails no longer matters
    error_ = error;
  }
  done_.notify_all();
  CKPT_LOG(kError) << error.to_string() << "; the guest must not run on";
  std::lock_guard lock(callback_mu_);
  if (options_.on_error && !abandoned_) options_.on_error(error);
}

void LazyRestore::set_on_error(std::function<void(const Status&)> on_error) {
  std::lock_guard lock(callback_mu_);
  options_.on_error = std::move(on_error);
  Status failed = error();
  if (!failed.is_ok() && options_.on_error && !abandoned_) options_.on_error(failed);
}

bool LazyRestore::install_block(snap::LazySource::BlockIndex block, snap::LazySource::Reader& reader,
                                uint64_t first_gfn) {
  uint8_t expected = kMissing;
  if (!state_[block].compare_exchange_strong(expected, kReading)) {
    if (expected == kReading) {  // another thread reads it: its install wakes the waiting access too
      std::unique_lock lock(mu_);
      done_.wait(lock, [&] { return state_[block].load() != kReading; });
      expected = state_[block].load();
    }
    return expected == kInstalled;
  }
  uint64_t installed = 0;
  auto install = [&](uint64_t gfn, uint32_t count, const uint8_t* data) -> Status {
    if (count == 0) return Status::ok();
    CKPT_ASSIGN_OR_RETURN(uint32_t n, pages_->install(gfn, count, data));
    installed += n;
    return Status::ok();
  };
  // The page an access waits on goes in first, on its own: its copy wakes the access (UFFDIO_COPY wakes whoever waits
  // on the pages it fills), which then runs while the rest of the block goes in instead of after it (up to 63 more
  // pages of new memory, each a first touch: hundreds of microseconds here). So the runs are gathered first (their
  // pages stay in the reader's buffer until its next read).
  struct Run {
    uint64_t gfn;
    uint32_t count;
    const uint8_t* data;
  };
  std::array<Run, snap::format::kMaxDataPagesPerBlock> runs;
  size_t run_count = 0;
  Status read = source_->read(block, reader, [&](uint64_t gfn, uint32_t count, const uint8_t* data) -> Status {
    runs[run_count++] = Run{gfn, count, data};  // runs are disjoint and hold pages: never more than 64
    return Status::ok();
  });
  for (size_t i = 0; read.is_ok() && i < run_count; ++i) {
    const Run run = runs[i];  // a copy: its count changes below
    if (first_gfn >= run.gfn && first_gfn - run.gfn < run.count) {
      const uint32_t at = static_cast<uint32_t>(first_gfn - run.gfn);
      const uint8_t* page = run.data + size_t{at} * snap::format::kPageSize;
      read = install(first_gfn, 1, page);
      runs[i].count = at;  // the rest of the run: its pages before the first, then a run of those after it
      if (read.is_ok()) read = install(first_gfn + 1, run.count - at - 1, page + snap::format::kPageSize);
      break;
    }
  }
  for (size_t i = 0; read.is_ok() && i < run_count; ++i) read = install(runs[i].gfn, runs[i].count, runs[i].data);
  if (!read.is_ok()) {
    {
      std::lock_guard lock(mu_);  // a waiter checks the state under the lock: no wake-up lost
      state_[block] = kFailed;
    }
    done_.notify_all();
    fail(read);
    return false;
  }
  bool now_filled = false;
  {
    std::lock_guard lock(mu_);
    state_[block] = kInstalled;
    progress_.installed_pages += installed;
    progress_.bytes_read += source_->stored_bytes_of(block);
    now_filled = ++progress_.blocks_installed == progress_.blocks;
    if (now_filled) {
      // Every read is over (each ran under a kReading state, and none is left): the files can go.
      source_->close_files();
      progress_.filled = true;
      progress_.seconds = static_cast<double>(now_ns() - start_ns_) / 1e9;
    }
  }
  done_.notify_all();
  if (now_filled) {
    const Progress p = progress();
    CKPT_LOG(kInfo) << "lazy restore of epoch " << source_->epoch() << ": every page resident after " << p.seconds
                    << " s (" << p.faults << " faults served, " << p.fault_reads << " of them reading a block; "
                    << p.prefetch_blocks << " blocks prefetched from the working-set record)";
  }
  return true;
}

Status LazyRestore::serve_one(uint64_t gfn, snap::LazySource::Reader& reader) {
  const snap::LazySource::BlockIndex block = abandoned_ ? snap::LazySource::kZeroBlock : source_->block_of(gfn);
  {
    std::lock_guard lock(mu_);
    ++progress_.faults;
    if (block != snap::LazySource::kZeroBlock && state_[block].load() == kMissing) {
      ++progress_.fault_reads;
      if (touched_.size() < options_.record_limit) touched_.push_back(source_->first_gfn_of(block));
    }
  }
  if (block == snap::LazySource::kZeroBlock) {
    CKPT_RETURN_IF_ERROR(pages_->install_zero(gfn, 1).status());
  } else if (!install_block(block, reader, gfn)) {
    // Never installed: the access waits on, until abandon() (the guest is stopped meanwhile through on_error).
    std::lock_guard lock(mu_);
    if (!abandoned_) {
      unanswered_.push_back(gfn);
      return Status::ok();
    }
  }
  return pages_->wake(gfn, 1);
}

void LazyRestore::serve_faults() {
  snap::LazySource::Reader reader;
  pollfd fds[2] = {{pages_->fd(), POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
  while (!stopping_) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fail(Status::from_errno(errno, "poll the lazy restore's userfaultfd"));
      return;
    }
    if (fds[1].revents) return;
    for (;;) {
      auto fault = pages_->next_fault();
      if (!fault.is_ok()) {
        fail(fault.status());
        return;
      }
      if (!fault->has_value()) break;
      Status served = serve_one(**fault, reader);
      // After release() a fault read before it cannot be answered, and needs not be: its access retries.
      if (!served.is_ok() && !released_) fail(served.with_context("serve a fault at gfn " + std::to_string(**fault)));
    }
  }
}

LazyRestore::FillOrder LazyRestore::fill_order(const snap::LazySource& source,
                                               std::span<const uint64_t> prefetch_gfns) {
  FillOrder order;
  std::vector<bool> listed(source.blocks(), false);
  for (uint64_t gfn : prefetch_gfns) {
    if (gfn >= source.pages()) continue;
    const snap::LazySource::BlockIndex block = source.block_of(gfn);
    if (block == snap::LazySource::kZeroBlock || listed[block]) continue;
    listed[block] = true;
    order.blocks.push_back(block);
  }
  order.prefetched = order.blocks.size();
  for (snap::LazySource::BlockIndex b = 0; b < source.blocks(); ++b) {
    if (!listed[b]) order.blocks.push_back(b);
  }
  return order;
}

void LazyRestore::fill() {
  // First what the guest did not wait for: the page index (faults search meanwhile) and the order to fill in.
  source_->build_index();
  FillOrder order = fill_order(*source_, options_.prefetch_gfns);
  {
    std::lock_guard lock(mu_);
    order_ = std::move(order);
    ordered_ = true;
    progress_.prefetch_blocks = order_.prefetched;
  }
  if (!options_.fill_in_background) return;
  snap::LazySource::Reader reader;
  for (snap::LazySource::BlockIndex block : order_.blocks) {
    if (stopping_ || abandoned_) return;
    if (state_[block].load() == kInstalled) continue;
    // One a fault is reading is waited for: once the loop ends, every block is in.
    if (!install_block(block, reader)) return;  // reported; the guest is being stopped
  }
  if (stopping_ || abandoned_ || !progress().filled) return;
  // Every page to restore is in: a hole the guest touches from now on is a zero page the kernel gives it, not a round
  // trip to the fault thread (where the registration is ours to end: KVM's machine).
  if (pages_->can_release()) {
    released_ = true;
    Status released = pages_->release();
    if (!released.is_ok()) {
      released_ = false;
      CKPT_LOG(kWarn) << "lazy restore: " << released.to_string() << " (holes still fault)";
    }
  }
  if (options_.on_filled) options_.on_filled(working_set());
}

}  // namespace ckpt::daemon
