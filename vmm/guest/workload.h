// The built-in workloads as C++: the software backend's vCPU engine and the independent reference that tests check
// the assembly guests (workloads.S) and harvested images against. docs/workloads.md specifies the algorithms.
//
// Thread safety: a WorkloadCpu is one vCPU; it is used by one thread at a time. It never allocates after
// construction.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"
#include "vmm/guest/guest_abi.h"

namespace ckpt::vmm::guest {

// The "registers" of a workload vCPU; the same values the assembly guest keeps in R12, R13, R14 and RBP at the top
// of its write loop. Nothing else is needed to resume a workload exactly.
struct WorkloadCpuState {
  uint64_t iterations = 0;                // completed iterations; the status slot's value
  uint64_t prng = 0;                      // xorshift64 state
  uint64_t sweep_position = 0;            // next page of a sweep
  uint64_t writes_done_in_iteration = 0;  // writes of iteration `iterations + 1` already done

  bool operator==(const WorkloadCpuState&) const = default;

  // Fixed-size little-endian blob: u32 magic "WCPU", u16 version, u16 payload size (32), then the four fields.
  static constexpr uint32_t kMagic = 0x55504357;  // bytes 'W' 'C' 'P' 'U'
  static constexpr uint16_t kVersion = 1;
  static constexpr size_t kEncodedSize = 8 + 4 * sizeof(uint64_t);

  std::array<uint8_t, kEncodedSize> encode() const;
  // Checks size, magic, version and payload size, and that prng != 0 (xorshift64 never reaches 0).
  static Result<WorkloadCpuState> decode(std::span<const uint8_t> blob);
};

// The control block checks the guest also makes at entry: a known, non-idle kind needs region_pages > 0,
// writes_per_iteration > 0, and for hot-set 1 <= hot_pages <= region_pages. Idle is valid (it writes nothing).
Status validate_control(const WorkloadControl& control);

// xorshift64 (13, 7, 17): returns the next state, which is also the random value.
inline uint64_t xorshift64(uint64_t x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

// (seed ^ ((vcpu_index + 1) * kSeedMix)) | 1
uint64_t initial_prng(const WorkloadControl& control);

class WorkloadCpu {
 public:
  struct StepResult {
    uint64_t page = 0;                 // region page index written
    bool iteration_completed = false;  // this write finished an iteration (the status slot was updated)
  };

  // The state at guest entry. A control that fails validate_control() yields a vCPU that is halted from the start,
  // like the guest, which halts before writing anything.
  explicit WorkloadCpu(const WorkloadControl& control);

  static WorkloadCpuState initial_state(const WorkloadControl& control);

  const WorkloadControl& control() const { return control_; }
  const WorkloadCpuState& state() const { return state_; }
  // Resumes from a saved state (e.g. a decoded checkpoint). Rejects states this control cannot reach.
  Status restore(const WorkloadCpuState& state);

  // True for idle or invalid workloads, and once max_iterations (if nonzero) iterations are complete.
  bool halted() const;
  // The region page the next step() writes, without changing state. Undefined when halted().
  uint64_t next_page() const;

  // One page write: stores the u64 iteration number (iterations + 1) at offset 0 of the chosen page of the region
  // starting at `region_base`. When the write completes an iteration, `iterations` advances, the new count is
  // stored to `status_slot` (if non-null, with release order, after the page write: the guest's order), and the
  // delay of delay_loops `pause`s runs. Does nothing when halted().
  StepResult step(uint8_t* region_base, uint64_t* status_slot = nullptr);

  // Steps until `n` more iterations are complete or the vCPU halts; returns the number completed.
  uint64_t run_iterations(uint8_t* region_base, uint64_t n, uint64_t* status_slot = nullptr);

 private:
  // Advances the page-choice state (PRNG or sweep position) in `s` and returns the chosen page.
  uint64_t choose_page(WorkloadCpuState& s) const;
  void delay() const;

  WorkloadControl control_;
  WorkloadCpuState state_;
  bool valid_;
};

// What the guest has written to its (initially zeroed) region after exactly `iterations` complete iterations,
// computed by a separate straightforward program (it does not use WorkloadCpu) so tests have an independent oracle.
// `region` must hold region_pages pages (else nothing is written); iterations beyond a nonzero max_iterations are
// not performed, as the guest halts there.
void reference_image(const WorkloadControl& control, uint64_t iterations, std::span<uint8_t> region);

}  // namespace ckpt::vmm::guest
