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
// Thread safety: one controlling thread calls harvest_and_rearm/reset; any thread may write the memory.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/unique_fd.h"
#include "vmm/software/tracker.h"
#include "vmm/software/uffd_uapi.h"

namespace ckpt::vmm::software {

// Whether this host can run UffdWpTracker. The error names what is missing and how to get it: userfaultfd not
// built in (ENOSYS) or not permitted (EPERM: vm.unprivileged_userfaultfd or CAP_SYS_PTRACE), no
// UFFD_FEATURE_WP_ASYNC or no PAGEMAP_SCAN (kernel older than 6.7).
Status probe_uffd_wp();

class UffdWpTracker final : public SoftwareTracker {
 public:
  static constexpr size_t kDefaultVectorRegions = 4096;  // 96 KiB of page_region: one call covers most harvests

  // Opens the userfaultfd and /proc/self/pagemap, registers every slot of `memory` and write-protects it all.
  // `memory` must outlive the tracker. With `missing_too` (a lazy restore: `memory` is all holes) the slots are
  // registered in missing mode as well, on the same fd (a mapping has one userfaultfd): every first access to a
  // page then waits until a MissingPages over uffd() installs it (vmm/uffd/missing_pages.h).
  static Result<std::unique_ptr<UffdWpTracker>> create(GuestMemory& memory,
                                                       size_t vector_regions = kDefaultVectorRegions,
                                                       bool missing_too = false);

  std::string_view name() const override { return "uffd-wp"; }
  Status harvest_and_rearm(DirtyBitmap& out) override;
  Status reset() override;

  // PAGEMAP_SCAN calls made by the last harvest (more than one only when the vector filled up).
  uint64_t last_scan_calls() const { return last_scan_calls_; }
  // The userfaultfd, registered in missing mode too if created so.
  int uffd() const { return uffd_.get(); }

 private:
  UffdWpTracker(GuestMemory& memory, size_t vector_regions);
  Status register_slots();
  // Scans all of guest memory (one mapping, whatever its slots) into pending_, resuming while the output vector
  // comes back full. One walk rather than one per slot: each PAGEMAP_SCAN call that re-protects pages ends with a
  // TLB flush of its range, and on this VM each flush cost ~1.5 ms (a 4 GiB guest's harvest of 1000 pages took
  // ~4.5 ms longer in four calls than in one).
  Status scan_memory();

  GuestMemory& memory_;
  UniqueFd uffd_;                    // must stay open: closing it unregisters the memory
  UniqueFd pagemap_;                 // /proc/self/pagemap
  std::vector<page_region> vector_;  // the ioctl's output, reused by every call
  DirtyBitmap pending_;              // harvested (so re-protected) but not yet handed out
  uint64_t last_scan_calls_ = 0;
  bool missing_too_ = false;
};

}  // namespace ckpt::vmm::software
