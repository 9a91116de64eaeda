#include "daemon/store_worker.h"

#include "common/thread_name.h"

namespace ckpt::daemon {

StoreWorker::StoreWorker(std::unique_ptr<snap::Store> store)
    : store_(std::move(store)), dir_(store_->dir()), thread_([this] { loop(); }) {}

StoreWorker::~StoreWorker() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void StoreWorker::post(std::function<void(snap::Store&)> job) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_all();
}

void StoreWorker::wait_idle() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return jobs_.empty() && running_ == 0; });
}

size_t StoreWorker::backlog() const {
  std::lock_guard lock(mu_);
  return jobs_.size() + running_;
}

void StoreWorker::loop() {
  name_this_thread("ckpt-writer");
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and everything queued has run
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    ++running_;
    lock.unlock();
    job(*store_);
    lock.lock();
    --running_;
    cv_.notify_all();
  }
}

}  // namespace ckpt::daemon
