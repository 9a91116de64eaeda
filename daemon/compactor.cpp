#include "daemon/compactor.h"

#include <algorithm>

#include "common/log.h"
#include "common/thread_name.h"

namespace ckpt::daemon {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kRetryAfterFailure = std::chrono::seconds(10);

// Below this much delta data a restore reads so little that rewriting a base would gain nothing: an idle guest's
// deltas (metadata and vCPU state, ~1 KiB each) would otherwise outweigh its nearly empty base within a few epochs.
constexpr uint64_t kMinRebaseDeltaBytes = 16ull << 20;

bool rebase_due(const snap::ChainShape& shape, const CompactionSettings& s) {
  if (shape.links <= 1) return false;
  if (s.max_chain && shape.links - 1 >= s.max_chain) return true;
  return s.max_read_amplification > 0 && shape.delta_bytes >= kMinRebaseDeltaBytes &&
         shape.read_amplification() >= s.max_read_amplification;
}

// Retention by count runs once this many epochs have come since its last run, whatever the interval: at 1 ms
// epochs an interval of 10 s would let 10,000 epochs pile up past keep-last.
uint64_t retention_batch(const CompactionSettings& s) { return std::max<uint64_t>(64, s.keep_last / 8); }

}  // namespace

Compactor::Compactor(snap::Store& store, CompactionSettings settings, std::function<std::optional<uint64_t>()> head,
                     std::function<void(const Status&)> on_error)
    : store_(store), head_(std::move(head)), on_error_(std::move(on_error)), settings_(settings),
      thread_([this] { loop(); }) {}

Compactor::~Compactor() { stop(); }

void Compactor::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  stopped_ = true;
  interrupt_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Compactor::epoch_committed() {
  {
    std::lock_guard lock(mu_);
    dirty_ = true;
  }
  cv_.notify_all();
}

void Compactor::set_settings(const CompactionSettings& settings) {
  {
    std::lock_guard lock(mu_);
    settings_ = settings;
    dirty_ = true;
  }
  cv_.notify_all();
}

std::unique_lock<std::mutex> Compactor::hold_history() {
  interrupt_ = true;
  std::unique_lock lock(history_mu_);
  interrupt_ = stopped_.load();  // no pass runs while the lock is held: nothing else needs interrupting
  return lock;
}

Status Compactor::run(std::function<Status(snap::Store&)> fn) {
  auto task = std::make_shared<std::packaged_task<Status()>>([this, fn = std::move(fn)] {
    auto history = hold_history();
    return fn(store_);
  });
  std::future<Status> result = task->get_future();
  {
    std::lock_guard lock(mu_);
    if (stopping_) return Status(StatusCode::kBusy, "ckptd is shutting down");
    commands_.push_back([task] { (*task)(); });
  }
  cv_.notify_all();
  return result.get();
}

CompactionStats Compactor::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void Compactor::loop() {
  name_this_thread("ckpt-compact");
  record_chain(chain_shape(head_()));  // status shows the chain from the start, not zeros until the first pass
  std::unique_lock lock(mu_);
  for (;;) {
    // Retention also runs on a timer, so an idle store (epochs paused) still sheds what ages out.
    cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_ || dirty_ || !commands_.empty(); });
    if (!commands_.empty()) {
      auto command = std::move(commands_.front());
      commands_.pop_front();
      lock.unlock();
      command();
      lock.lock();
      continue;
    }
    if (stopping_) break;
    dirty_ = false;
    lock.unlock();
    maintain();
    lock.lock();
  }
  // Commands queued before stop() still get an answer.
  for (auto& command : commands_) command();
  commands_.clear();
}

void Compactor::report(const Status& s) {
  {
    std::lock_guard lock(mu_);
    ++stats_.errors;
  }
  on_error_(s);
}

void Compactor::maintain() {
  CompactionSettings s;
  {
    std::lock_guard lock(mu_);
    s = settings_;
  }
  auto history = hold_history();
  std::optional<uint64_t> head = head_();
  std::optional<snap::ChainShape> shape = chain_shape(head);
  if (head && shape && rebase_due(*shape, s) && Clock::now() >= retry_rebase_after_) {
    Clock::time_point t0 = Clock::now();
    Status rebased = store_.rebase(*head, &interrupt_);
    double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (rebased.is_ok()) {
      shape = chain_shape(head);
      std::lock_guard lock(mu_);
      ++stats_.rebases;
      stats_.rebase_bytes_written += shape ? shape->base_bytes : 0;
      stats_.last_rebase_seconds = seconds;
    } else if (rebased.code() != StatusCode::kAborted) {
      retry_rebase_after_ = Clock::now() + kRetryAfterFailure;
      report(rebased.with_context("rebase epoch " + std::to_string(*head) + " (a chain of " +
                                  std::to_string(shape->links) + " epochs)"));
    }
  }
  record_chain(shape);  // now, not only after retention: a long retention run would leave status showing the old chain
  size_t epochs = store_.epoch_count();
  bool retention_due =
      (s.keep_last || s.keep_seconds) && (Clock::now() - last_retention_ >= s.retention_interval ||
                                          (s.keep_last && epochs >= epochs_after_retention_ + retention_batch(s)));
  if (retention_due) {
    last_retention_ = Clock::now();
    snap::RetentionPolicy policy;
    if (s.keep_last) policy.keep_last = s.keep_last;
    if (s.keep_seconds) policy.keep_newer_than_ns = snap::timestamp_seconds_ago(s.keep_seconds);
    if (head) policy.also_keep.insert(*head);
    // Removing only what no kept epoch needs leaves at most about max-chain epochs that stay only because a kept
    // chain needs them, when the chain policy rebases every max-chain deltas. A store that arrived with longer
    // chains (written with the policy off, or by an older version) gets its oldest kept epoch rewritten as a base,
    // so that everything older goes. Counting those extra epochs (not all epochs) keeps a long keep-seconds window
    // from rewriting a base at every run.
    policy.rewrite_above = (s.max_chain ? s.max_chain : s.keep_last) + retention_batch(s);
    policy.cancel = &interrupt_;
    Result<uint64_t> removed = store_.apply_retention(policy);
    if (!removed.is_ok() && removed.status().code() != StatusCode::kAborted) {
      report(removed.status().with_context("apply retention"));
    } else if (removed.is_ok() && *removed) {
      shape = chain_shape(head);  // a rewrite may have shortened the running chain too
      std::lock_guard lock(mu_);
      stats_.epochs_removed += *removed;
    }
    epochs_after_retention_ = store_.epoch_count();
  }
  record_chain(shape);
}

std::optional<snap::ChainShape> Compactor::chain_shape(std::optional<uint64_t> head) const {
  if (!head) return std::nullopt;
  Result<snap::ChainShape> shape = store_.chain_shape(*head);
  if (!shape.is_ok()) return std::nullopt;
  return *shape;
}

void Compactor::record_chain(const std::optional<snap::ChainShape>& shape) {
  if (!shape) return;
  std::lock_guard lock(mu_);
  stats_.chain_length = shape->links;
  stats_.read_amplification = shape->read_amplification();
}

}  // namespace ckpt::daemon
