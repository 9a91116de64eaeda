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
  bool guest_stopped = false;  // the guest shut itself down (triple fault, reset): every vCPU stays parked
  unsigned parked = 0;  // vCPU threads currently parked
  Status error;         // the first vCPU failure
};

// What a vCPU cannot handle alone: port and MMIO accesses, and a guest that shut down. Implemented by the machine;
// called on the vCPU's own thread, without the control lock, possibly on several vCPU threads at once.
class VcpuExitHandler {
 public:
  virtual ~VcpuExitHandler() = default;
  // false: nothing is there to answer (the built-in guest does no I/O), which fails the vCPU.
  virtual bool on_io(kvm_run& run) = 0;
  virtual bool on_mmio(kvm_run& run) = 0;
  // KVM_EXIT_SHUTDOWN (a triple fault); `where` gives the vCPU's registers. true: the machine recorded a guest stop
  // (the vCPU parks like the others); false: an error.
  virtual bool on_shutdown(unsigned vcpu, const std::string& where) = 0;
};

class KvmVcpu {
 public:
  KvmVcpu(unsigned index, UniqueFd fd, kvm_run* run, size_t run_size, DirtyTracker& tracker, VcpuControl& control,
          VcpuExitHandler& exits);
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
  // After a port or MMIO exit, before parking: lets KVM finish the access without running the guest further.
  bool complete_pending_io();
  std::string cpu_context() const;
  void fail(Status s);

  unsigned index_;
  UniqueFd fd_;
  kvm_run* run_;
  size_t run_size_;
  DirtyTracker& tracker_;
  VcpuControl& control_;
  VcpuExitHandler& exits_;
  std::thread thread_;
  pthread_t handle_{};
};

// Installs the no-op handler of the kick signal (once per process), without SA_RESTART so KVM_RUN returns EINTR.
void install_kick_signal();

}  // namespace ckpt::vmm::kvm
