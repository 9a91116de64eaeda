#include "bench/pause_paths.h"

#include <fcntl.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iterator>

namespace ckpt::bench {
namespace {

constexpr uint64_t kPage = 4096;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point& last) {
  Clock::time_point now = Clock::now();
  double ms = std::chrono::duration<double, std::milli>(now - last).count();
  last = now;
  return ms;
}

// As Session::capture's timestamp.
uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Result<vmm::guest::WorkloadCpuState> vcpu0_state(const std::vector<vmm::StateBlob>& state) {
  for (const vmm::StateBlob& blob : state) {
    if (blob.name == "software/vcpu0/workload") return vmm::guest::WorkloadCpuState::decode(blob.data);
  }
  return not_found("no software/vcpu0/workload blob in the saved state");
}

}  // namespace

Result<CaptureTimes> CaptureReplica::capture() {
  CaptureTimes t;
  Clock::time_point start = Clock::now(), last = start;
  CKPT_RETURN_IF_ERROR(machine_.pause(std::chrono::milliseconds(1000)));
  t.pause_ms = ms_since(last);
  std::span<uint8_t> memory = machine_.host_memory();
  CKPT_ASSIGN_OR_RETURN(std::vector<uint64_t> dirty, machine_.harvest_dirty());
  std::vector<uint64_t> owed;
  {
    std::lock_guard lock(mu_);
    owed = owed_;
  }
  std::vector<uint64_t> gfns;
  gfns.reserve(dirty.size() + owed.size());
  std::set_union(dirty.begin(), dirty.end(), owed.begin(), owed.end(), std::back_inserter(gfns));
  t.harvest_ms = ms_since(last);
  if (gfns.size() > staging_.capacity_pages()) {
    (void)machine_.resume();
    return invalid_argument(std::to_string(gfns.size()) + " dirty pages do not fit the staging area (" +
                            std::to_string(staging_.capacity_pages()) + " pages): the daemon would write this epoch " +
                            "while paused; give a larger staging area");
  }
  staging_.copy_in(memory, gfns);
  t.copy_ms = ms_since(last);
  CKPT_RETURN_IF_ERROR(machine_.rearm());
  t.rearm_ms = ms_since(last);
  CKPT_ASSIGN_OR_RETURN(std::vector<vmm::StateBlob> state, machine_.save_state());
  volatile uint64_t timestamp = realtime_ns();
  (void)timestamp;
  t.state_ms = ms_since(last);
  t.total_ms = std::chrono::duration<double, std::milli>(last - start).count();
  CKPT_RETURN_IF_ERROR(machine_.resume());
  t.pages = gfns.size();
  CKPT_ASSIGN_OR_RETURN(t.vcpu0, vcpu0_state(state));
  return t;
}

Result<std::unique_ptr<PauseFloor>> PauseFloor::create(std::span<uint8_t> memory, daemon::StagingArea& staging) {
  UniqueFd pagemap(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!pagemap.valid()) return Status::from_errno(errno, "open /proc/self/pagemap");
  // The staging area's own memory: StagingArea hands out its slots read-only, but it is one writable mapping.
  auto* buffer = const_cast<uint8_t*>(staging.slot(0));
  return std::unique_ptr<PauseFloor>(new PauseFloor(memory, std::move(pagemap), buffer, staging.capacity_pages()));
}

PauseFloor::PauseFloor(std::span<uint8_t> memory, UniqueFd pagemap, uint8_t* buffer, uint64_t pages)
    : memory_(memory), pagemap_(std::move(pagemap)), buffer_(buffer), buffer_pages_(pages), vector_(4096) {
  runs_.reserve(1u << 20);  // never grown inside a timed floor
}

// The scan is UffdWpTracker::scan_slot's loop over all of memory at once (the same kernel walk; resumes only when
// the output vector came back full, see design.md on walk_end). The runs are gathered first and copied after, so
// each phase is timed on its own; copying run by run is the least a copy can do.
Result<FloorTimes> PauseFloor::measure() {
  FloorTimes t;
  runs_.clear();
  Clock::time_point start = Clock::now(), last = start;
  auto begin = reinterpret_cast<uint64_t>(memory_.data()), end = begin + memory_.size();
  for (uint64_t at = begin; at < end;) {
    pm_scan_arg arg{};
    arg.size = sizeof(arg);
    arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
    arg.start = at;
    arg.end = end;
    arg.vec = reinterpret_cast<uint64_t>(vector_.data());
    arg.vec_len = vector_.size();
    arg.category_mask = PAGE_IS_WRITTEN;
    arg.return_mask = PAGE_IS_WRITTEN;
    int n = ::ioctl(pagemap_.get(), PAGEMAP_SCAN, &arg);
    if (n < 0) return Status::from_errno(errno, "ioctl PAGEMAP_SCAN (floor)");
    ++t.scan_calls;
    runs_.insert(runs_.end(), vector_.begin(), vector_.begin() + n);
    if (static_cast<size_t>(n) < vector_.size()) break;
    at = vector_[n - 1].end;
  }
  t.scan_ms = ms_since(last);
  uint8_t* out = buffer_;
  for (const page_region& run : runs_) {
    uint64_t bytes = run.end - run.start;
    if ((out - buffer_) + bytes > buffer_pages_ * kPage) return invalid_argument("floor: dirty pages overflow the buffer");
    std::memcpy(out, reinterpret_cast<const void*>(run.start), bytes);
    out += bytes;
  }
  t.copy_ms = ms_since(last);
  t.total_ms = t.scan_ms + t.copy_ms;
  t.pages = static_cast<uint64_t>(out - buffer_) / kPage;
  return t;
}

}  // namespace ckpt::bench
