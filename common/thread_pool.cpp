#include "common/thread_pool.h"

#include <atomic>

#include "common/thread_name.h"

namespace ckpt {

ThreadPool::ThreadPool(unsigned threads, std::string name) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  workers_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) workers_.emplace_back([this, i, name] {
      name_this_thread(name + std::to_string(i));
      run(i);
    });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::submit(Task task) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void ThreadPool::run(unsigned worker) {
  for (;;) {
    Task task;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task(worker);
  }
}

void ThreadPool::parallel_for(size_t count, const std::function<void(size_t, unsigned)>& fn) {
  if (count == 0) return;
  std::atomic<size_t> next{0};
  std::mutex done_mutex;
  std::condition_variable done_cv;
  size_t finished_workers = 0;
  unsigned helpers = static_cast<unsigned>(std::min<size_t>(size(), count));
  for (unsigned h = 0; h < helpers; ++h) {
    submit([&](unsigned worker) {
      for (size_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) fn(i, worker);
      std::lock_guard lock(done_mutex);
      if (++finished_workers == helpers) done_cv.notify_one();
    });
  }
  std::unique_lock lock(done_mutex);
  done_cv.wait(lock, [&] { return finished_workers == helpers; });
}

}  // namespace ckpt
