#include "vmm/software/uffd_wp_tracker.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/log.h"
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

pm_scan_arg scan_arg(uint64_t start, uint64_t end, page_region* vec, size_t vec_len,
                     uint64_t categories = PAGE_IS_WRITTEN) {
  pm_scan_arg arg{};
  arg.size = sizeof(arg);
  arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
  arg.start = start;
  arg.end = end;
  arg.vec = reinterpret_cast<uint64_t>(vec);
  arg.vec_len = vec_len;
  arg.category_mask = categories;
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
                                                             bool missing_too, HoleMarking holes) {
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
  if (missing_too) {
    CKPT_ASSIGN_OR_RETURN(t->missing_, MissingPages::over(t->uffd_.get(), memory, /*write_protect=*/true));
    t->holes_protected_ = false;
    if (holes == HoleMarking::kBackground) {
      t->mark_pause_ns_ = kMarkPauseNs;
      t->marker_ = std::thread([tracker = t.get()] {
        Status marked = tracker->protect_holes();
        if (!marked.is_ok()) {
          CKPT_LOG(kWarn) << "uffd-wp tracker: " << marked.to_string()
                          << "; holes stay unmarked (harvests keep masking them)";
        }
      });
    }
  }
  return t;
}

UffdWpTracker::~UffdWpTracker() {
  stop_marking_ = true;
  if (marker_.joinable()) marker_.join();
}

// Registration alone protects nothing: UFFDIO_WRITEPROTECT sets the bit on present pages and leaves a marker on
// never-touched ones, so from here on only writes clear it (reads, even first reads, do not). Lazily restored memory
// is left to protect_holes().
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
    if (missing_too_) continue;
    uffdio_writeprotect wp{};
    wp.range = reg.range;
    wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
    if (::ioctl(uffd_.get(), UFFDIO_WRITEPROTECT, &wp) != 0) {
      return Status::from_errno(errno, "ioctl UFFDIO_WRITEPROTECT" + where);
    }
  }
  return Status::ok();
}

Status UffdWpTracker::protect_holes() {
  for (uint64_t first = 0; first < memory_.pages() && !holes_protected_; first += kMarkChunkPages) {
    if (stop_marking_) return Status::ok();
    {
      std::lock_guard lock(mark_mu_);
      CKPT_RETURN_IF_ERROR(protect_chunk(first, std::min(kMarkChunkPages, memory_.pages() - first)));
    }
    if (mark_pause_ns_ > 0) {
      timespec pause{0, static_cast<long>(mark_pause_ns_)};
      ::nanosleep(&pause, nullptr);
    }
  }
  holes_protected_ = true;
  return Status::ok();
}

Status UffdWpTracker::protect_chunk(uint64_t first, uint64_t count) {
  const EnteredPages& entered = missing_->entered();
  const uint64_t words = (count + 63) / 64;  // first is a multiple of 64
  uint64_t before[kMarkChunkPages / 64];
  for (uint64_t w = 0; w < words; ++w) before[w] = entered.word(first / 64 + w);
  auto is_hole = [&](uint64_t i) { return ((before[i / 64] >> (i % 64)) & 1) == 0; };
  const uint64_t base = reinterpret_cast<uint64_t>(memory_.host());
  for (uint64_t i = 0; i < count;) {
    if (!is_hole(i)) {
      ++i;
      continue;
    }
    uint64_t end = i + 1;
    while (end < count && is_hole(end)) ++end;
    uffdio_writeprotect wp{};
    wp.range.start = base + (first + i) * kPage;
    wp.range.len = (end - i) * kPage;
    wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
    if (::ioctl(uffd_.get(), UFFDIO_WRITEPROTECT, &wp) != 0) {
      return Status::from_errno(errno, "ioctl UFFDIO_WRITEPROTECT over the holes of gfns " +
                                           std::to_string(first + i) + ".." + std::to_string(first + end - 1));
    }
    i = end;
  }
  // A page that entered meanwhile may have been written before the marking reached it, and protected again by it.
  for (uint64_t w = 0; w < words; ++w) {
    for (uint64_t late = entered.word(first / 64 + w) & ~before[w]; late != 0; late &= late - 1) {
      const uint64_t gfn = first + w * 64 + static_cast<uint64_t>(__builtin_ctzll(late));
      if (gfn < first + count) owed_.push_back(gfn);
    }
  }
  return Status::ok();
}

Status UffdWpTracker::scan_memory(uint64_t categories) {
  const uint64_t base = reinterpret_cast<uint64_t>(memory_.host());
  const uint64_t end = base + memory_.bytes();
  uint64_t start = base;
  while (start < end) {
    pm_scan_arg arg = scan_arg(start, end, vector_.data(), vector_.size(), categories);
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
  if (!missing_) {
    CKPT_RETURN_IF_ERROR(scan_memory(PAGE_IS_WRITTEN));
  } else {
    std::lock_guard lock(mark_mu_);
    // Until every hole is marked: only pages that had entered when the scan began, since a page entering during the
    // scan is installed protected while the guest is paused, so it cannot have been written.
    const bool mask = !holes_protected_;
    const EnteredPages& entered = missing_->entered();
    if (mask) {
      entered_at_scan_.resize(entered.word_count());
      for (uint64_t w = 0; w < entered_at_scan_.size(); ++w) entered_at_scan_[w] = entered.word(w);
    }
    CKPT_RETURN_IF_ERROR(scan_memory(PAGE_IS_WRITTEN));
    if (mask) pending_.mask_words(entered_at_scan_.data(), entered_at_scan_.size());
    for (uint64_t gfn : owed_) pending_.set(gfn);  // the marking's debts, also those of its last chunks
    owed_.clear();
  }
  out.merge(pending_);
  pending_.clear();
  return Status::ok();
}

// While holes are unmarked only present pages are looked at: scanning a hole would leave a marker on it, the slow
// part protect_holes() keeps off the critical path. A written page that is not present (swapped out) is missed,
// which only means the next harvest reports it.
Status UffdWpTracker::reset() {
  CKPT_RETURN_IF_ERROR(scan_memory(holes_protected_ ? PAGE_IS_WRITTEN : PAGE_IS_WRITTEN | PAGE_IS_PRESENT));
  pending_.clear();
  if (missing_) {
    std::lock_guard lock(mark_mu_);
    owed_.clear();
  }
  return Status::ok();
}

}  // namespace ckpt::vmm::software
