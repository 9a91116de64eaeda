// The pages a random-writer guest dirties per iteration, from the documented algorithm (docs/workloads.md), so a
// bench can size an iteration for a target dirty set and check that an epoch holds exactly one iteration's pages.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/guest/guest_abi.h"

namespace ckpt::bench {

// Writes per iteration that dirty `distinct` different pages on average when drawn uniformly from `region_pages`
// (n = -R ln(1 - d/R): random writes collide, so a 100k-page set in 4 GiB needs ~105k writes).
uint64_t writes_for_distinct(uint64_t region_pages, uint64_t distinct);

// Replays a random-writer vCPU's draws. Not for other kinds.
class RandomWriterModel {
 public:
  explicit RandomWriterModel(const vmm::guest::WorkloadControl& control);
  // Distinct region pages written by the next iteration (1-based: the first call is iteration 1).
  uint64_t next_iteration_pages();

 private:
  vmm::guest::WorkloadControl control_;
  uint64_t prng_;
  uint32_t iteration_ = 0;
  std::vector<uint32_t> last_written_;  // per region page: the last iteration that wrote it (dedup without clearing)
};

}  // namespace ckpt::bench
