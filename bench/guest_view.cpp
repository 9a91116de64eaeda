#include "bench/guest_view.h"

#include <sys/mman.h>
#include <time.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>

#include "bench/bench_util.h"
#include "vmm/guest/guest_abi.h"
#include "vmm/guest/guest_image.h"

namespace ckpt::bench {

Result<GuestView> GuestView::find_in_process(uint64_t bytes) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  uint8_t* found = nullptr;
  int matches = 0;
  while (std::getline(maps, line)) {
    if (line.find("/memfd:ckptd-guest") == std::string::npos) continue;
    unsigned long long start = 0, end = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx", &start, &end) != 2 || end - start != bytes) continue;
    found = reinterpret_cast<uint8_t*>(start);
    ++matches;
  }
  if (matches != 1) {
    return not_found("expected one " + std::to_string(bytes) + "-byte mapping of /memfd:ckptd-guest in /proc/self/maps, " +
                     "found " + std::to_string(matches));
  }
  return GuestView(std::span<uint8_t>(found, bytes));
}

uint64_t GuestView::iterations(unsigned vcpu) const {
  auto* slot = reinterpret_cast<uint64_t*>(memory_.data() + vmm::guest::status_gpa(vcpu));
  return std::atomic_ref<uint64_t>(*slot).load(std::memory_order_acquire);
}

void GuestView::set_control(unsigned vcpu, size_t offset, uint64_t value) {
  auto* field = reinterpret_cast<uint64_t*>(memory_.data() + vmm::guest::control_gpa(vcpu) + offset);
  std::atomic_ref<uint64_t>(*field).store(value, std::memory_order_relaxed);
}

uint64_t GuestView::wait_for_iterations(uint64_t at_least, double timeout_s, unsigned vcpu) const {
  double deadline = now_seconds() + timeout_s;
  uint64_t seen = iterations(vcpu);
  while (seen < at_least && now_seconds() < deadline) {
    timespec nap{0, 100 * 1000};  // sleeping, not spinning: the 2 CPUs are shared with the guest's vCPU thread
    ::nanosleep(&nap, nullptr);
    seen = iterations(vcpu);
  }
  return seen;
}

Status populate_guest(std::span<uint8_t> memory) {
#ifndef MADV_POPULATE_WRITE
  constexpr int MADV_POPULATE_WRITE = 23;  // Linux 5.14; older headers lack it
#endif
  if (::madvise(memory.data(), memory.size(), MADV_POPULATE_WRITE) != 0) {
    return Status::from_errno(errno, "madvise MADV_POPULATE_WRITE over guest memory");
  }
  return Status::ok();
}

}  // namespace ckpt::bench
