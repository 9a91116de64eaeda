// A bench's window on a running guest's memory: the status slots (completed iterations) and the control blocks
// (docs/workloads.md). A Machine the bench owns gives its memory directly; the Session's machine is private to the
// daemon, so for it the guest memfd's mapping is found in /proc/self/maps instead of adding an accessor to daemon/.
//
// Reads never disturb dirty tracking (uffd-wp only sees writes). set_control() writes through the same tracked
// mapping as the guest, so it dirties the control page exactly like a guest write would (one page, counted by the
// next harvest) — on the software backend the guest's writes are host writes to this very mapping.
#pragma once

#include <cstdint>
#include <span>

#include "common/status.h"

namespace ckpt::bench {

class GuestView {
 public:
  explicit GuestView(std::span<uint8_t> memory) : memory_(memory) {}
  // The one mapping of the guest memfd ("/memfd:ckptd-guest") that is `bytes` long. Fails if there is none or
  // more than one (the benches run one machine at a time).
  static Result<GuestView> find_in_process(uint64_t bytes);

  std::span<uint8_t> memory() const { return memory_; }
  // vCPU `vcpu`'s status slot: iterations completed (acquire: the iteration's page writes happened before).
  uint64_t iterations(unsigned vcpu = 0) const;
  // Stores one u64 field of vCPU `vcpu`'s control block (offsetof(WorkloadControl, field)); the guest rereads it.
  void set_control(unsigned vcpu, size_t offset, uint64_t value);
  // Polls the status slot every ~100 us until it reaches `at_least` or `timeout_s` passes; returns the last value.
  uint64_t wait_for_iterations(uint64_t at_least, double timeout_s, unsigned vcpu = 0) const;

 private:
  std::span<uint8_t> memory_;
};

// Makes every page of guest memory resident (MADV_POPULATE_WRITE) before the guest starts, as in a VM that has
// been running a while. First writes to memfd holes cost ~4x a write to a resident page here (page allocation plus
// the hypervisor's first touch), which would make 100k-page epochs take ~20 s of guest time each. The writes this
// makes are tracked like any other; Machine::start forgets them (its tracker reset), so call it before start.
Status populate_guest(std::span<uint8_t> memory);

}  // namespace ckpt::bench
