// The userfaultfd and PAGEMAP_SCAN kernel ABI the software backend's tracker uses. The installed linux-libc-dev may
// be older than the running kernel (Debian 12 ships 6.1 headers; PAGEMAP_SCAN and UFFD_FEATURE_WP_ASYNC arrived in
// 6.7, UFFD_FEATURE_WP_UNPOPULATED in 6.4), so what is missing is defined here with the kernel's values
// (include/uapi/linux/userfaultfd.h and fs.h of 6.7). These are kernel ABI: the values never change. Whether the
// running kernel has them is a run-time question, answered by probe_uffd_wp() (vmm/software/uffd_wp_tracker.h).
#pragma once

#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#include <cstdint>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1  // 5.11: only user-mode faults; needs no privilege
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)  // 5.19
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)  // 6.4: protect never-touched anonymous pages too
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)  // 6.7: the kernel resolves write faults itself and clears the wp bit
#endif

#ifndef PAGEMAP_SCAN
// 6.7 (fs/proc/task_mmu.c): scan (and optionally write-protect) a range of the caller's address space.
struct page_region {
  __u64 start;       // first byte of the run
  __u64 end;         // one past its last byte
  __u64 categories;  // PAGE_IS_* bits of the run, masked by return_mask
};

struct pm_scan_arg {
  __u64 size;  // sizeof(struct pm_scan_arg)
  __u64 flags;
  __u64 start;
  __u64 end;
  __u64 walk_end;  // written by the kernel: where the walk stopped
  __u64 vec;       // struct page_region[vec_len]
  __u64 vec_len;
  __u64 max_pages;  // 0: no limit
  __u64 category_inverted;
  __u64 category_mask;
  __u64 category_anyof_mask;
  __u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)

#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

#define PM_SCAN_WP_MATCHING (1 << 0)    // write-protect the pages reported
#define PM_SCAN_CHECK_WPASYNC (1 << 1)  // fail (EPERM) on memory not registered for async write-protect
#endif

static_assert(sizeof(pm_scan_arg) == 96 && sizeof(page_region) == 24, "PAGEMAP_SCAN structures are kernel ABI");
