// Exact dirty tracking for guest memory mapped in this process, from the kernel's page tables:
//   userfaultfd with UFFD_FEATURE_WP_ASYNC: guest memory is registered in write-protect mode and protected; the
//     first write to a protected page faults, and the kernel itself (no handler thread, no event) clears the
//     page's uffd-wp bit and lets the write proceed (~11-15 us per first write on these machines);
//   PAGEMAP_SCAN on /proc/self/pagemap with PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC and category
//     PAGE_IS_WRITTEN: reports the pages whose bit is clear and sets it again in the same page-table walk, under
//     the page-table lock, so a write racing with the harvest is either reported now or faults and is reported
//     next time. Nothing is lost even with writers running (../shared/design.md measured it on 6.18).
// Needs Linux 6.7 or later. Memory is memfd-backed (shmem), where write-protecting a never-touched page leaves a
// pte marker, so pages that are only read are never reported; UFFD_FEATURE_WP_UNPOPULATED gives anonymous memory
// the same and is requested when offered.
//
// Lazily restored memory (missing_too) starts all holes, and leaving a marker on each costs ~1.6 ms per GiB: too
// long to wait for before the guest runs. Such memory is registered unprotected instead, which is exact because a
// page enters only through a MissingPages install, write-protected (UFFDIO_COPY_MODE_WP); a thread then leaves the
// markers in the background (protect_holes), a chunk at a time, on the holes only. Until it is done a harvest
// reports a page only if it had entered (EnteredPages) when the scan began: PAGEMAP_SCAN calls an unmarked hole
// written, but the guest cannot have written a page that never entered. A page that enters and is written while
// its chunk is being marked may be write-protected again by the marking: the marker sees it enter and owes it to
// the next harvest, which waits for a chunk in progress (a superset, never a loss).
//
// Thread safety: one controlling thread calls harvest_and_rearm/reset; any thread may write the memory; the hole
// marker is a thread of the tracker's, joined by its destructor.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "vmm/software/tracker.h"
#include "vmm/software/uffd_uapi.h"
#include "vmm/uffd/missing_pages.h"

namespace ckpt::vmm::software {

// Whether this host can run UffdWpTracker. The error names what is missing and how to get it: userfaultfd not
// built in (ENOSYS) or not permitted (EPERM: vm.unprivileged_userfaultfd or CAP_SYS_PTRACE), no
// UFFD_FEATURE_WP_ASYNC or no PAGEMAP_SCAN (kernel older than 6.7).
Status probe_uffd_wp();

class UffdWpTracker final : public SoftwareTracker {
 public:
  static constexpr size_t kDefaultVectorRegions = 4096;  // 96 KiB of page_region: one call covers most harvests

  // Who marks the holes of lazily restored memory: a thread of the tracker's, started by create(); or the caller,
  // through protect_holes() (tests, which choose when it runs).
  enum class HoleMarking { kBackground, kByCaller };

  // Opens the userfaultfd and /proc/self/pagemap, registers every slot of `memory` and write-protects it all.
  // `memory` must outlive the tracker. With `missing_too` (a lazy restore: `memory` is all holes) the slots are
  // registered in missing mode as well, on the same fd (a mapping has one userfaultfd): every first access to a
  // page then waits until missing_pages() installs it (vmm/uffd/missing_pages.h), and the holes are marked as
  // `holes` says.
  static Result<std::unique_ptr<UffdWpTracker>> create(GuestMemory& memory,
                                                       size_t vector_regions = kDefaultVectorRegions,
                                                       bool missing_too = false,
                                                       HoleMarking holes = HoleMarking::kBackground);
  ~UffdWpTracker() override;

  std::string_view name() const override { return "uffd-wp"; }
  Status harvest_and_rearm(DirtyBitmap& out) override;
  Status reset() override;

  // What installs lazily restored pages (write-protected) over uffd(); null unless created with missing_too.
  std::shared_ptr<MissingPages> missing_pages() const { return missing_; }
  // Leaves a write-protect marker on every hole, chunk by chunk; from then on a harvest needs no mask. What the
  // background thread runs (so only for HoleMarking::kByCaller may a caller call it); does nothing once every hole
  // is marked. Fails with the ioctl's error, naming the chunk (harvests then keep masking, still exact).
  Status protect_holes();
  // Whether every hole is marked (always, for memory not lazily restored).
  bool holes_protected() const { return holes_protected_; }

  // PAGEMAP_SCAN calls made by the last harvest (more than one only when the vector filled up).
  uint64_t last_scan_calls() const { return last_scan_calls_; }
  // The userfaultfd, registered in missing mode too if created so.
  int uffd() const { return uffd_.get(); }

 private:
  static constexpr uint64_t kMarkChunkPages = 2048;  // 8 MiB: ~13 us of marking, the longest a harvest waits
  // Between two chunks of background marking: it then takes a tenth of a CPU, not a whole one, in the first
  // milliseconds after a restore, when the CPUs belong to the guest and the threads serving its faults (a 4 GiB
  // guest's holes are marked within ~0.1 s, against 6 ms of marking before the guest could start).
  static constexpr uint64_t kMarkPauseNs = 100'000;

  UffdWpTracker(GuestMemory& memory, size_t vector_regions);
  Status register_slots();
  // Scans all of guest memory (one mapping, whatever its slots) into pending_, resuming while the output vector
  // comes back full, for the pages in every category of `categories`. One walk rather than one per slot: each
  // PAGEMAP_SCAN call that re-protects pages ends with a TLB flush of its range, and on this VM each flush cost
  // ~1.5 ms (a 4 GiB guest's harvest of 1000 pages took ~4.5 ms longer in four calls than in one).
  Status scan_memory(uint64_t categories);
  // Marks the holes of chunk [first, first + count) (under mark_mu_).
  Status protect_chunk(uint64_t first, uint64_t count);

  GuestMemory& memory_;
  UniqueFd uffd_;                    // must stay open: closing it unregisters the memory
  UniqueFd pagemap_;                 // /proc/self/pagemap
  std::vector<page_region> vector_;  // the ioctl's output, reused by every call
  DirtyBitmap pending_;              // harvested (so re-protected) but not yet handed out
  uint64_t last_scan_calls_ = 0;
  bool missing_too_ = false;

  // Lazily restored memory only.
  std::shared_ptr<MissingPages> missing_;
  std::mutex mark_mu_;  // held by the marker over a chunk, by a harvest over its scan: a chunk's debts come first
  std::vector<uint64_t> owed_;  // gfns the marker may have re-protected after a write (guarded by mark_mu_)
  std::vector<uint64_t> entered_at_scan_;  // EnteredPages' words when the harvest's scan began
  std::atomic<bool> holes_protected_{true};
  std::atomic<bool> stop_marking_{false};
  uint64_t mark_pause_ns_ = 0;
  std::thread marker_;
};

}  // namespace ckpt::vmm::software
