#include "vmm/software/uffd_wp_tracker.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "vmm/uffd/userfaultfd.h"

namespace ckpt::vmm::software {
namespace {

constexpr uint64_t kPage = 4096;
constexpr const char* kNeedsNewKernel =
    "it needs Linux 6.7 or later (Debian 12: the 6.12 kernel from bookworm-backports)";

Status require_wp_async(uint64_t offered) {
  if (offered & UFFD_FEATURE_WP_ASYNC) return Status::ok();
  return unsupported("userfaultfd: the kernel " + kernel_release() + " does not offer UFFD_FEATURE_WP_ASYNC; " +
                     kNeedsNewKernel);
}

Result<UniqueFd> open_pagemap() {
  UniqueFd fd(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::from_errno(errno, "open /proc/self/pagemap");
  return fd;
}

pm_scan_arg scan_arg(uint64_t start, uint64_t end, page_region* vec, size_t vec_len) {
  pm_scan_arg arg{};
  arg.size = sizeof(arg);
  arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
  arg.start = start;
  arg.end = end;
  arg.vec = reinterpret_cast<uint64_t>(vec);
  arg.vec_len = vec_len;
  arg.category_mask = PAGE_IS_WRITTEN;
  arg.return_mask = PAGE_IS_WRITTEN;
  return arg;
}

// An empty scan: kernels before 6.7 have no ioctls on pagemap (ENOTTY), some reject the request (EINVAL).
Status probe_pagemap_scan(int pagemap) {
  page_region one{};
  pm_scan_arg arg = scan_arg(0, 0, &one, 1);
  arg.flags = 0;
  if (::ioctl(pagemap, PAGEMAP_SCAN, &arg) >= 0) return Status::ok();
  const int err = errno;
  if (err == ENOTTY || err == EINVAL) {
    return Status(StatusCode::kUnsupported,
                  "ioctl PAGEMAP_SCAN on /proc/self/pagemap: not supported (" +
                      std::string(err == ENOTTY ? "ENOTTY" : "EINVAL") + ") by the kernel " + kernel_release() + "; " +
                      kNeedsNewKernel,
                  err);
  }
  return Status::from_errno(err, "ioctl PAGEMAP_SCAN on /proc/self/pagemap");
}

}  // namespace

Status probe_uffd_wp() {
  CKPT_ASSIGN_OR_RETURN(uint64_t offered, uffd_features_offered(FaultScope::kUserModeOnly));
  CKPT_RETURN_IF_ERROR(require_wp_async(offered));
  CKPT_ASSIGN_OR_RETURN(UniqueFd pagemap, open_pagemap());
  return probe_pagemap_scan(pagemap.get());
}

UffdWpTracker::UffdWpTracker(GuestMemory& memory, size_t vector_regions)
    : memory_(memory),
      vector_(vector_regions == 0 ? kDefaultVectorRegions : vector_regions),
      pending_(memory.pages()) {}

Result<std::unique_ptr<UffdWpTracker>> UffdWpTracker::create(GuestMemory& memory, size_t vector_regions,
                                                             bool missing_too) {
  CKPT_RETURN_IF_ERROR(probe_uffd_wp());
  std::unique_ptr<UffdWpTracker> t(new UffdWpTracker(memory, vector_regions));
  t->missing_too_ = missing_too;
  // Missing pages are served for the VMM's kernel-mode accesses too where the process may have that; the guest's
  // own (its vCPU threads) are user-mode accesses either way.
  FaultScope scope = FaultScope::kUserModeOnly;
  if (missing_too && uffd_features_offered(FaultScope::kAll).is_ok()) scope = FaultScope::kAll;
  // The features a fd offers are only known after its one UFFDIO_API, so ask a throwaway fd first.
  CKPT_ASSIGN_OR_RETURN(uint64_t offered, uffd_features_offered(scope));
  if (missing_too && !(offered & UFFD_FEATURE_MISSING_SHMEM)) {
    return unsupported("userfaultfd: the kernel " + kernel_release() +
                       " does not offer UFFD_FEATURE_MISSING_SHMEM (missing pages of memfd memory)");
  }
  CKPT_ASSIGN_OR_RETURN(t->uffd_, open_userfaultfd(scope));
  const uint64_t wanted = UFFD_FEATURE_WP_ASYNC | (missing_too ? UFFD_FEATURE_MISSING_SHMEM : 0) |
                          (offered & (UFFD_FEATURE_WP_UNPOPULATED | UFFD_FEATURE_WP_HUGETLBFS_SHMEM));
  CKPT_RETURN_IF_ERROR(uffd_api_handshake(t->uffd_.get(), wanted).status());
  CKPT_ASSIGN_OR_RETURN(t->pagemap_, open_pagemap());
  CKPT_RETURN_IF_ERROR(t->register_slots());
  return t;
}

// Registration alone protects nothing: UFFDIO_WRITEPROTECT sets the bit on present pages and leaves a marker on
// never-touched ones, so from here on only writes clear it (reads, even first reads, do not).
Status UffdWpTracker::register_slots() {
  for (const MemorySlot& slot : memory_.slots()) {
    const std::string where = " over slot " + std::to_string(slot.id) + " (" + std::to_string(slot.bytes) + " bytes)";
    uffdio_register reg{};
    reg.range.start = reinterpret_cast<uint64_t>(slot.host);
    reg.range.len = slot.bytes;
    reg.mode = UFFDIO_REGISTER_MODE_WP | (missing_too_ ? UFFDIO_REGISTER_MODE_MISSING : 0);
    if (::ioctl(uffd_.get(), UFFDIO_REGISTER, &reg) != 0) {
      return Status::from_errno(errno, std::string("ioctl UFFDIO_REGISTER (write-protect") +
                                           (missing_too_ ? " and missing" : "") + " mode)" + where);
    }
    if (missing_too_ && (reg.ioctls & (uint64_t{1} << _UFFDIO_COPY)) == 0) {
      return unsupported("ioctl UFFDIO_REGISTER" + where + ": the kernel offers no UFFDIO_COPY for memfd memory");
    }
    if ((reg.ioctls & (uint64_t{1} << _UFFDIO_WRITEPROTECT)) == 0) {
      return unsupported("ioctl UFFDIO_REGISTER" + where +
                         ": the kernel offers no UFFDIO_WRITEPROTECT for memfd "
                         "memory (needs CONFIG_PTE_MARKER_UFFD_WP)");
    }
    uffdio_writeprotect wp{};
    wp.range = reg.range;
    wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
    if (::ioctl(uffd_.get(), UFFDIO_WRITEPROTECT, &wp) != 0) {
      return Status::from_errno(errno, "ioctl UFFDIO_WRITEPROTECT" + where);
    }
  }
  return Status::ok();
}

Status UffdWpTracker::scan_memory() {
  const uint64_t base = reinterpret_cast<uint64_t>(memory_.host());
  const uint64_t end = base + memory_.bytes();
  uint64_t start = base;
  while (start < end) {
    pm_scan_arg arg = scan_arg(start, end, vector_.data(), vector_.size());
    const int n = ::ioctl(pagemap_.get(), PAGEMAP_SCAN, &arg);
    if (n < 0) {
      const int err = errno;
      // The failed call may have re-protected pages it never reported: owe the whole rest of memory, so the
      // next successful harvest reports it (a superset, never a loss).
      for (uint64_t a = start; a < end; a += kPage) pending_.set((a - base) / kPage);
      return Status::from_errno(err, "ioctl PAGEMAP_SCAN on /proc/self/pagemap at guest offset " +
                                         std::to_string(start - base) +
                                         (err == EPERM ? " (memory not registered for async write-protect)" : ""));
    }
    ++last_scan_calls_;
    for (int i = 0; i < n; ++i) {
      for (uint64_t a = vector_[i].start; a < vector_[i].end; a += kPage) pending_.set((a - base) / kPage);
    }
    // Only a full vector means the walk stopped early. walk_end is not trusted (design.md: after a call that filled
    // many regions it can lie below the range end although everything was walked); the last region's end is
    // exact: the kernel reports, and so re-protects, nothing beyond the runs it returned.
    if (static_cast<size_t>(n) < vector_.size()) break;
    start = vector_[n - 1].end;
  }
  return Status::ok();
}

Status UffdWpTracker::harvest_and_rearm(DirtyBitmap& out) {
  last_scan_calls_ = 0;
  CKPT_RETURN_IF_ERROR(scan_memory());
  out.merge(pending_);
  pending_.clear();
  return Status::ok();
}

Status UffdWpTracker::reset() {
  CKPT_RETURN_IF_ERROR(scan_memory());
  pending_.clear();
  return Status::ok();
}

}  // namespace ckpt::vmm::software
