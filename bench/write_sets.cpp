#include "bench/write_sets.h"

#include <cmath>

#include "vmm/guest/workload.h"

namespace ckpt::bench {

uint64_t writes_for_distinct(uint64_t region_pages, uint64_t distinct) {
  auto r = static_cast<double>(region_pages), d = static_cast<double>(distinct);
  if (d >= r) return region_pages * 8;  // saturated: every page, (nearly) surely
  return static_cast<uint64_t>(std::llround(-r * std::log1p(-d / r)));
}

RandomWriterModel::RandomWriterModel(const vmm::guest::WorkloadControl& control)
    : control_(control), prng_(vmm::guest::initial_prng(control)), last_written_(control.region_pages, 0) {}

uint64_t RandomWriterModel::next_iteration_pages() {
  ++iteration_;
  uint64_t distinct = 0;
  for (uint64_t w = 0; w < control_.writes_per_iteration; ++w) {
    prng_ = vmm::guest::xorshift64(prng_);
    uint32_t& last = last_written_[prng_ % control_.region_pages];
    distinct += last != iteration_;
    last = iteration_;
  }
  return distinct;
}

}  // namespace ckpt::bench
