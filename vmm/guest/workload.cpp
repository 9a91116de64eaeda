#include "vmm/guest/workload.h"

#include <atomic>
#include <cstddef>
#include <cstring>
#include <string>

namespace ckpt::vmm::guest {

// workloads.S addresses the control block with these offsets (its CTL_* constants).
static_assert(offsetof(WorkloadControl, kind) == 0);
static_assert(offsetof(WorkloadControl, vcpu_index) == 4);
static_assert(offsetof(WorkloadControl, seed) == 8);
static_assert(offsetof(WorkloadControl, region_gpa) == 16);
static_assert(offsetof(WorkloadControl, region_pages) == 24);
static_assert(offsetof(WorkloadControl, writes_per_iteration) == 32);
static_assert(offsetof(WorkloadControl, hot_pages) == 40);
static_assert(offsetof(WorkloadControl, delay_loops) == 48);
static_assert(offsetof(WorkloadControl, max_iterations) == 56);

namespace {

void put_u16(uint8_t* p, uint16_t v) {
  for (int i = 0; i < 2; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t get_le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool kind_is(const WorkloadControl& c, WorkloadKind k) { return c.kind == static_cast<uint32_t>(k); }

// Stores the u64 iteration number at offset 0 of `page`. memcpy: the region is raw guest memory.
inline void write_page(uint8_t* region_base, uint64_t page, uint64_t value) {
  std::memcpy(region_base + page * kPageSize, &value, sizeof(value));
}

}  // namespace

std::array<uint8_t, WorkloadCpuState::kEncodedSize> WorkloadCpuState::encode() const {
  std::array<uint8_t, kEncodedSize> out{};
  put_u32(&out[0], kMagic);
  put_u16(&out[4], kVersion);
  put_u16(&out[6], static_cast<uint16_t>(kEncodedSize - 8));
  put_u64(&out[8], iterations);
  put_u64(&out[16], prng);
  put_u64(&out[24], sweep_position);
  put_u64(&out[32], writes_done_in_iteration);
  return out;
}

Result<WorkloadCpuState> WorkloadCpuState::decode(std::span<const uint8_t> blob) {
  if (blob.size() != kEncodedSize) {
    return corruption("workload cpu state: size " + std::to_string(blob.size()) + ", expected " +
                      std::to_string(kEncodedSize));
  }
  if (get_le(&blob[0], 4) != kMagic) return corruption("workload cpu state: bad magic");
  if (get_le(&blob[4], 2) != kVersion) {
    return unsupported("workload cpu state: version " + std::to_string(get_le(&blob[4], 2)));
  }
  if (get_le(&blob[6], 2) != kEncodedSize - 8) return corruption("workload cpu state: bad payload size");
  WorkloadCpuState s;
  s.iterations = get_le(&blob[8], 8);
  s.prng = get_le(&blob[16], 8);
  s.sweep_position = get_le(&blob[24], 8);
  s.writes_done_in_iteration = get_le(&blob[32], 8);
  if (s.prng == 0) return corruption("workload cpu state: prng state 0");
  return s;
}

Status validate_control(const WorkloadControl& c) {
  if (kind_is(c, WorkloadKind::kIdle)) return Status::ok();
  if (!kind_is(c, WorkloadKind::kRandomWriter) && !kind_is(c, WorkloadKind::kHotSet) &&
      !kind_is(c, WorkloadKind::kSweep)) {
    return invalid_argument("workload vcpu " + std::to_string(c.vcpu_index) + ": unknown kind " +
                            std::to_string(c.kind));
  }
  if (c.region_pages == 0) return invalid_argument("workload vcpu " + std::to_string(c.vcpu_index) + ": no pages");
  if (c.writes_per_iteration == 0) {
    return invalid_argument("workload vcpu " + std::to_string(c.vcpu_index) + ": writes_per_iteration is 0");
  }
  if (kind_is(c, WorkloadKind::kHotSet) && (c.hot_pages == 0 || c.hot_pages > c.region_pages)) {
    return invalid_argument("workload vcpu " + std::to_string(c.vcpu_index) + ": hot_pages " +
                            std::to_string(c.hot_pages) + " not in 1.." + std::to_string(c.region_pages));
  }
  return Status::ok();
}

uint64_t initial_prng(const WorkloadControl& c) {
  return (c.seed ^ ((static_cast<uint64_t>(c.vcpu_index) + 1) * kSeedMix)) | 1;
}

WorkloadCpu::WorkloadCpu(const WorkloadControl& control)
    : control_(control), state_(initial_state(control)), valid_(validate_control(control).is_ok()) {}

WorkloadCpuState WorkloadCpu::initial_state(const WorkloadControl& control) {
  return WorkloadCpuState{.iterations = 0, .prng = initial_prng(control)};
}

Status WorkloadCpu::restore(const WorkloadCpuState& s) {
  if (s.prng == 0) return invalid_argument("workload restore: prng state 0");
  if (valid_ && !kind_is(control_, WorkloadKind::kIdle)) {
    if (s.sweep_position >= control_.region_pages) {
      return invalid_argument("workload restore: sweep position " + std::to_string(s.sweep_position) +
                              " outside " + std::to_string(control_.region_pages) + " pages");
    }
    if (s.writes_done_in_iteration >= control_.writes_per_iteration) {
      return invalid_argument("workload restore: " + std::to_string(s.writes_done_in_iteration) +
                              " writes done of " + std::to_string(control_.writes_per_iteration));
    }
  }
  const uint64_t max = control_.max_iterations;
  if (max != 0 && (s.iterations > max || (s.iterations == max && s.writes_done_in_iteration != 0))) {
    return invalid_argument("workload restore: iteration " + std::to_string(s.iterations) + " past max " +
                            std::to_string(max));
  }
  state_ = s;
  return Status::ok();
}

bool WorkloadCpu::halted() const {
  if (!valid_ || kind_is(control_, WorkloadKind::kIdle)) return true;
  return control_.max_iterations != 0 && state_.iterations >= control_.max_iterations;
}

uint64_t WorkloadCpu::choose_page(WorkloadCpuState& s) const {
  if (kind_is(control_, WorkloadKind::kSweep)) {
    const uint64_t page = s.sweep_position;
    s.sweep_position = page + 1 == control_.region_pages ? 0 : page + 1;
    return page;
  }
  s.prng = xorshift64(s.prng);
  const uint64_t r = s.prng;
  if (!kind_is(control_, WorkloadKind::kHotSet)) return r % control_.region_pages;
  return (r & 15) != 0 ? (r >> 4) % control_.hot_pages : (r >> 4) % control_.region_pages;
}

uint64_t WorkloadCpu::next_page() const {
  WorkloadCpuState scratch = state_;
  return choose_page(scratch);
}

void WorkloadCpu::delay() const {
  for (uint64_t i = 0; i < control_.delay_loops; ++i) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    std::atomic_signal_fence(std::memory_order_seq_cst);  // keeps the loop from being optimized away
#endif
  }
}

WorkloadCpu::StepResult WorkloadCpu::step(uint8_t* region_base, uint64_t* status_slot) {
  if (halted()) return {};
  StepResult result;
  result.page = choose_page(state_);
  write_page(region_base, result.page, state_.iterations + 1);
  if (++state_.writes_done_in_iteration < control_.writes_per_iteration) return result;

  state_.writes_done_in_iteration = 0;
  ++state_.iterations;
  result.iteration_completed = true;
  // Release: whoever reads status n (after the vCPU is parked, or a progress monitor) sees every page of n.
  if (status_slot != nullptr) {
    std::atomic_ref<uint64_t>(*status_slot).store(state_.iterations, std::memory_order_release);
  }
  delay();
  return result;
}

uint64_t WorkloadCpu::run_iterations(uint8_t* region_base, uint64_t n, uint64_t* status_slot) {
  uint64_t completed = 0;
  while (completed < n && !halted()) {
    if (step(region_base, status_slot).iteration_completed) ++completed;
  }
  return completed;
}

// Deliberately written out again rather than built on WorkloadCpu: it is the tests' independent statement of
// docs/workloads.md.
void reference_image(const WorkloadControl& c, uint64_t iterations, std::span<uint8_t> region) {
  if (!validate_control(c).is_ok() || kind_is(c, WorkloadKind::kIdle)) return;
  if (region.size() / kPageSize < c.region_pages) return;  // the caller's bug; writing past the span is worse
  if (c.max_iterations != 0 && iterations > c.max_iterations) iterations = c.max_iterations;
  uint64_t x = (c.seed ^ ((static_cast<uint64_t>(c.vcpu_index) + 1) * 0x9E3779B97F4A7C15ull)) | 1;
  uint64_t sweep = 0;
  for (uint64_t i = 1; i <= iterations; ++i) {
    for (uint64_t j = 0; j < c.writes_per_iteration; ++j) {
      uint64_t page;
      if (kind_is(c, WorkloadKind::kSweep)) {
        page = sweep;
        sweep = (sweep + 1) % c.region_pages;
      } else {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (kind_is(c, WorkloadKind::kRandomWriter)) {
          page = x % c.region_pages;
        } else {
          page = (x >> 4) % ((x & 15) != 0 ? c.hot_pages : c.region_pages);
        }
      }
      for (int b = 0; b < 8; ++b) region[page * kPageSize + b] = static_cast<uint8_t>(i >> (8 * b));
    }
  }
}

}  // namespace ckpt::vmm::guest
