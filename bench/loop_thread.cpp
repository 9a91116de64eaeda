#include "bench/loop_thread.h"

namespace ckpt::bench {

LoopThread::LoopThread() : thread_([this] { loop(); }) {}

LoopThread::~LoopThread() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void LoopThread::run(const std::function<void()>& task) {
  std::unique_lock lock(mu_);
  task_ = &task;
  done_ = false;
  cv_.notify_all();
  cv_.wait(lock, [&] { return done_; });
}

void LoopThread::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || task_ != nullptr; });
    if (stop_) return;
    const std::function<void()>* task = task_;
    lock.unlock();
    (*task)();
    lock.lock();
    task_ = nullptr;
    done_ = true;
    cv_.notify_all();
  }
}

}  // namespace ckpt::bench
