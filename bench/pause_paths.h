// The epoch pause two ways, on a vmm::Machine the bench owns (bench/pause_bench.cpp alternates them):
//
//  CaptureReplica: the daemon's capture of a staged epoch, call for call as Session::capture runs it
//    (daemon/epoch_pipeline.cpp): pause -> harvest_dirty, merged with the owed pages under the session lock ->
//    StagingArea::copy_in -> rearm -> save_state + timestamp -> [the pause ends here] -> resume request. The real
//    Machine and the real StagingArea (daemon/staging_area.h); left out is only what runs after the resume (the
//    debug log line, posting the write). pause_bench drives the Session itself too, to show this replica is
//    faithful.
//  PauseFloor: what no capture can avoid, measured on the same machine: the kernel's harvest-and-rearm (one
//    PAGEMAP_SCAN walk with PM_SCAN_WP_MATCHING over guest memory, as UffdWpTracker issues it) plus memcpy of
//    the reported pages into a pre-faulted buffer (the staging area's). The machine is paused first, untimed: parking vCPUs is not part
//    of the floor. A floor scan re-protects what it reports, so the machine's own next harvest does not see those
//    pages: that is what lets the two alternate on one guest.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "daemon/staging_area.h"
#include "vmm/guest/workload.h"
#include "vmm/machine.h"
#include "vmm/software/uffd_uapi.h"

namespace ckpt::bench {

struct CaptureTimes {
  double pause_ms = 0, harvest_ms = 0, copy_ms = 0, rearm_ms = 0, state_ms = 0;
  double total_ms = 0;  // what Session reports as the epoch's pause: from before pause() to the resume request
  uint64_t pages = 0;
  vmm::guest::WorkloadCpuState vcpu0;  // from the saved state: which iteration the epoch ended at
};

class CaptureReplica {
 public:
  CaptureReplica(vmm::Machine& machine, daemon::StagingArea& staging) : machine_(machine), staging_(staging) {}
  // The machine is running; it is running again (resume requested) on success.
  Result<CaptureTimes> capture();

 private:
  vmm::Machine& machine_;
  daemon::StagingArea& staging_;
  std::mutex mu_;                // stands for Session::mu_, which guards owed_
  std::vector<uint64_t> owed_;   // always empty here, as in a healthy daemon; merged all the same
};

struct FloorTimes {
  double scan_ms = 0, copy_ms = 0;
  double total_ms = 0;
  uint64_t pages = 0;
  uint64_t scan_calls = 0;
};

class PauseFloor {
 public:
  // `memory`: guest memory registered for uffd-wp by the machine's tracker. The pages are copied into the memory of
  // `staging` (pre-faulted), the buffer the replica copies into too: on this VM the first write to each page of a
  // fresh mapping costs ~8 us even after MAP_POPULATE, so two buffers would differ by how much each had been used.
  // `staging` must outlive the floor.
  static Result<std::unique_ptr<PauseFloor>> create(std::span<uint8_t> memory, daemon::StagingArea& staging);
  // The machine must be paused. Fails if the pages do not fit the buffer.
  Result<FloorTimes> measure();

 private:
  PauseFloor(std::span<uint8_t> memory, UniqueFd pagemap, uint8_t* buffer, uint64_t pages);
  std::span<uint8_t> memory_;
  UniqueFd pagemap_;
  uint8_t* buffer_;  // not owned: the staging area's memory
  uint64_t buffer_pages_;
  std::vector<page_region> vector_;
  std::vector<page_region> runs_;
};

}  // namespace ckpt::bench
