#include "vmm/software/software_vcpu.h"

#include <cstddef>
#include <cstring>
#include <string>

#include "common/thread_name.h"
#include "vmm/guest/guest_image.h"

namespace ckpt::vmm::software {

using guest::WorkloadControl;
using guest::WorkloadCpu;

SoftwareVcpu::SoftwareVcpu(unsigned index, std::span<uint8_t> memory, VcpuControl& control)
    : index_(index), memory_(memory), control_(control) {}

SoftwareVcpu::~SoftwareVcpu() { join(); }

Status SoftwareVcpu::prepare(const guest::WorkloadCpuState* state) {
  const std::string who = "software vCPU " + std::to_string(index_);
  WorkloadControl c;
  std::memcpy(&c, memory_.data() + guest::control_gpa(index_), sizeof(c));  // no vCPU runs yet: a plain read
  WorkloadCpu cpu(c);
  // A workload that will write must write inside guest memory. (A KVM guest writing outside would exit with an
  // MMIO fault; here it would corrupt the host, so it is refused up front.)
  if (!cpu.halted() &&
      (c.region_gpa > memory_.size() || c.region_pages > (memory_.size() - c.region_gpa) / guest::kPageSize)) {
    return invalid_argument(who + ": workload region at " + std::to_string(c.region_gpa) + " of " +
                            std::to_string(c.region_pages) + " pages lies outside guest memory (" +
                            std::to_string(memory_.size()) + " bytes)");
  }
  c.delay_loops = 0;  // this thread runs the delay itself, so that a pause can interrupt it
  cpu = WorkloadCpu(c);
  halted_by_control_ = false;
  if (state != nullptr) CKPT_RETURN_IF_ERROR(restore(cpu, *state).with_context(who));
  cpu_.emplace(cpu);
  region_ = memory_.data() + c.region_gpa;
  status_slot_ = reinterpret_cast<uint64_t*>(memory_.data() + guest::status_gpa(index_));
  delay_left_ = 0;  // a restore skips the rest of an interrupted delay, as the guest's does (RCX is not saved)
  max_check_due_ = false;
  return Status::ok();
}

// A vCPU saved after its VMM lowered max_iterations below the completed count is halted (a KVM guest would be
// sitting at its `hlt`); WorkloadCpu::restore refuses that state, so it is taken unbounded and kept halted.
Status SoftwareVcpu::restore(WorkloadCpu& cpu, const guest::WorkloadCpuState& state) {
  const WorkloadControl& c = cpu.control();
  if (c.max_iterations == 0 || state.iterations <= c.max_iterations || state.writes_done_in_iteration != 0) {
    return cpu.restore(state);
  }
  WorkloadControl unbounded = c;
  unbounded.max_iterations = 0;
  cpu = WorkloadCpu(unbounded);
  halted_by_control_ = true;
  return cpu.restore(state);
}

void SoftwareVcpu::start_thread() {
  thread_ = std::thread([this] { thread_main(); });
}

void SoftwareVcpu::join() {
  if (thread_.joinable()) thread_.join();
}

void SoftwareVcpu::thread_main() {
  name_this_thread("vcpu" + std::to_string(index_));
  std::unique_lock lock(control_.mutex);
  for (;;) {
    ++control_.parked;
    parked_ = true;
    control_.all_parked.notify_all();
    control_.wake.wait(lock, [&] { return control_.stop || control_.run.load(std::memory_order_relaxed); });
    --control_.parked;
    parked_ = false;
    if (control_.stop) return;
    lock.unlock();
    run_workload();
    lock.lock();
    // Halted (like `hlt`): sleep until a pause or stop takes the vCPU out; at once if that is why it returned.
    control_.wake.wait(lock, [&] { return control_.stop || !control_.run.load(std::memory_order_relaxed); });
  }
}

// One relaxed load of `run` per page write: pausing needs only that the flag is seen soon, and the parked count
// (under the mutex) is what publishes the vCPU's memory writes and state to the machine.
void SoftwareVcpu::run_workload() {
  while (control_.run.load(std::memory_order_relaxed)) {
    if (delay_left_ > 0) {
      delay_chunk();
      continue;
    }
    if (max_check_due_) reread_max_iterations();
    if (halted()) return;
    if (cpu_->step(region_, status_slot_).iteration_completed) {
      // The guest reads delay_loops right after its status store and max_iterations after the delay: a VMM may
      // change either while it runs (docs/workloads.md).
      delay_left_ = load_control_field(offsetof(WorkloadControl, delay_loops));
      max_check_due_ = true;
    }
  }
}

void SoftwareVcpu::delay_chunk() {
  const uint64_t n = delay_left_ < kDelayChunk ? delay_left_ : kDelayChunk;
  for (uint64_t i = 0; i < n; ++i) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::atomic_signal_fence(std::memory_order_seq_cst);
#endif
  }
  delay_left_ -= n;
}

void SoftwareVcpu::reread_max_iterations() {
  max_check_due_ = false;
  const uint64_t max = load_control_field(offsetof(WorkloadControl, max_iterations));
  if (max == cpu_->control().max_iterations) return;
  WorkloadControl c = cpu_->control();
  c.max_iterations = max;
  WorkloadCpu updated(c);
  // At an iteration boundary restore() refuses only a count already past the new limit; the guest halts then.
  if (updated.restore(cpu_->state()).is_ok()) {
    cpu_.emplace(updated);
  } else {
    halted_by_control_ = true;
  }
}

// The control block is guest memory that the VMM may write while the vCPU runs: read it atomically.
uint64_t SoftwareVcpu::load_control_field(size_t offset) const {
  auto* field = reinterpret_cast<uint64_t*>(memory_.data() + guest::control_gpa(index_) + offset);
  return std::atomic_ref<uint64_t>(*field).load(std::memory_order_relaxed);
}

}  // namespace ckpt::vmm::software
