// One KVM vCPU and the thread that runs it. The machine drives every vCPU through a shared VcpuControl: it sets
// `run` and wakes them, or clears `run` and kicks each one out of KVM_RUN (immediate_exit plus a signal), then waits
// until all of them are parked. State machine per vCPU: created -> running <-> parked -> stopped.
#pragma once

#include <pthread.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/status.h"
#include "common/unique_fd.h"
#include "vmm/kvm/dirty_tracker.h"
#include "vmm/kvm/kvm_api.h"

namespace ckpt::vmm::kvm {

struct VcpuControl {
  std::mutex mutex;
  std::condition_variable cv;
  bool run = false;     // requested state: run the guest (true) or park (false)
  bool stop = false;    // leave the thread for good
  unsigned parked = 0;  // vCPU threads currently parked
  Status error;         // the first vCPU failure
};

class KvmVcpu {
 public:
  KvmVcpu(unsigned index, UniqueFd fd, kvm_run* run, size_t run_size, DirtyTracker& tracker, VcpuControl& control);
  ~KvmVcpu();  // the machine stops the thread first
  KvmVcpu(const KvmVcpu&) = delete;
  KvmVcpu& operator=(const KvmVcpu&) = delete;

  unsigned index() const { return index_; }
  int fd() const { return fd_.get(); }
  void start_thread();
  void join();
  // Forces the vCPU out of KVM_RUN (or makes its next KVM_RUN return at once). Any thread.
  void kick();

 private:
  void thread_main();
  // Handles one KVM_RUN return; false when the vCPU must stop running (error recorded).
  bool handle_exit(int rc, int err);
  std::string cpu_context() const;
  void fail(Status s);

  unsigned index_;
  UniqueFd fd_;
  kvm_run* run_;
  size_t run_size_;
  DirtyTracker& tracker_;
  VcpuControl& control_;
  std::thread thread_;
  pthread_t handle_{};
};

// Installs the no-op handler of the kick signal (once per process), without SA_RESTART so KVM_RUN returns EINTR.
void install_kick_signal();

}  // namespace ckpt::vmm::kvm
