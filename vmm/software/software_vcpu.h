// One software vCPU: a host thread running a built-in workload (guest::WorkloadCpu, the C++ twin of the KVM
// guest's program) against guest memory, one page write per step, with the guest's status-slot updates.
//
// The machine drives every vCPU through a shared VcpuControl, the same protocol as the KVM backend's: it sets
// `run` and wakes them, or clears `run` and waits until all are parked. A running vCPU reads `run` (an atomic, no
// lock) between two steps and every kDelayChunk `pause`s of the post-iteration delay, so a pause takes at most
// one page write (with its first-write fault) plus a short chunk of delay. Parking and waking use the mutex and
// condition variables, never spinning: on an oversubscribed host a spinning waiter needs the scheduler tick
// (design.md: p99 ~4 ms spinning vs ~0.1 ms on a futex).
// State machine per vCPU: created -> prepared -> parked <-> running (-> halted, which waits like a parked vCPU
// but is not counted as parked until a pause) -> stopped.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <thread>

#include "common/status.h"
#include "vmm/guest/workload.h"

namespace ckpt::vmm::software {

struct VcpuControl {
  std::mutex mutex;
  std::condition_variable wake;        // vCPUs wait here for `run` or `stop`
  std::condition_variable all_parked;  // the machine waits here for `parked`
  // Requested state. Written only with `mutex` held (so condition waits cannot miss it); read without the lock
  // between workload steps.
  std::atomic<bool> run{false};
  bool stop = false;    // leave the thread for good
  unsigned parked = 0;  // vCPU threads currently parked
};

class SoftwareVcpu {
 public:
  // Pauses between two checks of `run` during the delay: ~10 us at worst.
  static constexpr uint64_t kDelayChunk = 256;

  // `memory` is all of guest memory, from GPA 0; it must outlive the vCPU.
  SoftwareVcpu(unsigned index, std::span<uint8_t> memory, VcpuControl& control);
  ~SoftwareVcpu();  // the machine stops the thread first
  SoftwareVcpu(const SoftwareVcpu&) = delete;
  SoftwareVcpu& operator=(const SoftwareVcpu&) = delete;

  unsigned index() const { return index_; }
  // Before the thread starts: reads the control block from guest memory (as the guest does at entry through RDI),
  // checks that a workload's region lies in guest memory, and continues from `state` when given (a restore).
  Status prepare(const guest::WorkloadCpuState* state);
  void start_thread();
  void join();
  // Whether the thread is parked; the caller holds the VcpuControl mutex.
  bool parked_locked() const { return parked_; }
  // The workload registers. Only while the vCPU is parked (or before its thread starts).
  guest::WorkloadCpuState state() const { return cpu_ ? cpu_->state() : guest::WorkloadCpuState{}; }

 private:
  Status restore(guest::WorkloadCpu& cpu, const guest::WorkloadCpuState& state);
  void thread_main();
  // Steps until a pause is requested or the workload halts.
  void run_workload();
  // Runs up to kDelayChunk of the remaining delay.
  void delay_chunk();
  // At the end of an iteration's delay, where the guest rereads max_iterations from its control block.
  void reread_max_iterations();
  bool halted() const { return halted_by_control_ || cpu_->halted(); }
  uint64_t load_control_field(size_t offset) const;

  unsigned index_;
  std::span<uint8_t> memory_;
  VcpuControl& control_;
  std::thread thread_;
  bool parked_ = false;  // guarded by control_.mutex

  // Owned by the vCPU thread while it runs; by the machine while it is parked.
  std::optional<guest::WorkloadCpu> cpu_;  // its control has delay_loops 0: the delay runs here, interruptibly
  uint8_t* region_ = nullptr;
  uint64_t* status_slot_ = nullptr;
  uint64_t delay_left_ = 0;  // `pause`s left after the last completed iteration; like RCX, not saved
  bool max_check_due_ = false;
  bool halted_by_control_ = false;  // max_iterations lowered below the completed count: halted like the guest
};

}  // namespace ckpt::vmm::software
