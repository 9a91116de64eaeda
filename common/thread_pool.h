// A fixed set of worker threads running queued tasks. Each task learns which worker runs it, so callers can keep
// per-worker state (a zstd context, a scratch buffer) without locks.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ckpt {

class ThreadPool {
 public:
  using Task = std::function<void(unsigned worker)>;

  // `threads` == 0 means one per online CPU.
  // `name`: the workers' thread name prefix (a number is appended).
  explicit ThreadPool(unsigned threads, std::string name = "ckpt-pool");
  ~ThreadPool();  // finishes queued tasks, then joins
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  unsigned size() const { return static_cast<unsigned>(workers_.size()); }
  void submit(Task task);
  // Runs fn(i, worker) for i in [0, count) spread over the pool and waits for all of them.
  void parallel_for(size_t count, const std::function<void(size_t index, unsigned worker)>& fn);

 private:
  void run(unsigned worker);

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace ckpt
