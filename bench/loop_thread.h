// A long-lived thread that runs the tasks handed to it, one at a time, while the caller waits: the shape of the
// daemon's epoch loop (Session::on_loop posts a command to the loop thread and waits on a future). pause_bench runs
// both the replicated capture and the floor on one, because where a harvest runs matters on these VMs: once the
// process's threads have run on both CPUs, each PAGEMAP_SCAN write-protect flush becomes a cross-CPU TLB flush
// (a paravirtual hypercall here), and the Session's capture always runs on such a handed-off thread.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace ckpt::bench {

class LoopThread {
 public:
  LoopThread();
  ~LoopThread();
  // Runs `task` on the loop thread and returns when it has finished.
  void run(const std::function<void()>& task);

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void()>* task_ = nullptr;
  bool done_ = false, stop_ = false;
  std::thread thread_;
};

}  // namespace ckpt::bench
