// The one thread that drives the store (snap::Store is single-threaded): epoch writes, compaction and retention run
// here in the order posted, while the epoch loop pauses and resumes the guest. At most one job runs at a time, in
// order: an epoch's parent is always committed (or has failed) before the epoch is written.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "snapshot/store.h"

namespace ckpt::daemon {

class StoreWorker {
 public:
  explicit StoreWorker(std::unique_ptr<snap::Store> store);
  ~StoreWorker();  // finishes the queued jobs, then joins

  // Queues `job`; it runs on the worker thread with the store.
  void post(std::function<void(snap::Store&)> job);
  // Runs `fn` on the worker thread and waits for its result.
  template <typename Fn>
  auto run(Fn fn) -> decltype(fn(std::declval<snap::Store&>())) {
    using R = decltype(fn(std::declval<snap::Store&>()));
    auto task = std::make_shared<std::packaged_task<R(snap::Store&)>>(std::move(fn));
    std::future<R> result = task->get_future();
    post([task](snap::Store& store) { (*task)(store); });
    return result.get();
  }
  // Blocks until nothing is queued or running.
  void wait_idle();
  // Jobs queued or running.
  size_t backlog() const;
  const std::string& store_dir() const { return dir_; }
  // The store's catalog as it is now, from any thread (snap::Store::catalog_snapshot): what a restore reads.
  snap::Catalog catalog() const { return store_->catalog_snapshot(); }
  // The store itself, for the one maintenance thread that runs beside this one (Compactor); see snap::Store.
  snap::Store& store_for_maintenance() const { return *store_; }

 private:
  void loop();

  std::unique_ptr<snap::Store> store_;
  std::string dir_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void(snap::Store&)>> jobs_;
  size_t running_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ckpt::daemon
