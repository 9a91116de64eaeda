// How the software backend learns which guest pages were written: one interface, two implementations.
//   UffdWpTracker (uffd_wp_tracker.h): exact, from the kernel's page tables (userfaultfd async write-protect
//     harvested and re-armed in one PAGEMAP_SCAN ioctl).
//   ConservativeTracker (below): reports every page at every harvest. Only when asked for explicitly
//     (SoftwareOptions); correct, but every epoch becomes a full copy of guest memory.
// Unlike KVM's log modes there is no separate rearm: a harvest re-protects what it reports, atomically per page.
//
// Thread safety: harvest_and_rearm and reset are called by the machine's controlling thread only; the vCPU threads
// write guest memory concurrently or not at all (the machine pauses them first), the kernel handles either.
#pragma once

#include <memory>
#include <string_view>

#include "common/status.h"
#include "vmm/dirty_bitmap.h"
#include "vmm/guest_memory.h"

namespace ckpt::vmm::software {

class SoftwareTracker {
 public:
  virtual ~SoftwareTracker() = default;
  // "uffd-wp" or "conservative".
  virtual std::string_view name() const = 0;
  // Sets the bit of every page written since the last harvest (or reset) in `out`, and write-protects those pages
  // again so later writes are seen. On failure the pages already collected are kept and reported by the next
  // successful harvest: a dirty bit is never lost.
  virtual Status harvest_and_rearm(DirtyBitmap& out) = 0;
  // Forgets the writes made so far (the machine calls it at start: KVM does not log the VMM's bulk loading through
  // the host mapping either).
  virtual Status reset() = 0;
};

// Every page, every time: for hosts without userfaultfd write-protect, chosen explicitly.
class ConservativeTracker final : public SoftwareTracker {
 public:
  explicit ConservativeTracker(uint64_t pages) : pages_(pages) {}
  std::string_view name() const override { return "conservative"; }
  Status harvest_and_rearm(DirtyBitmap& out) override;
  Status reset() override { return Status::ok(); }

 private:
  uint64_t pages_;
};

// When the conservative tracker may stand in for uffd-wp. It is never chosen silently: the default is kNever, and
// a fallback is logged as a warning naming what uffd-wp lacked.
enum class ConservativePolicy {
  kNever,     // uffd-wp or fail with the reason (the kernel version, the sysctl to set)
  kFallback,  // uffd-wp when the host offers it, else conservative
  kAlways,    // conservative even where uffd-wp works (tests; hosts where userfaultfd is unwanted)
};

// Builds the tracker over every slot of `memory` and protects all of it. `scan_vector_regions` sizes the
// PAGEMAP_SCAN output vector (0: the default); tests make it tiny to exercise the resume path.
// With `missing_too` the uffd-wp tracker registers missing mode as well (UffdWpTracker::create).
Result<std::unique_ptr<SoftwareTracker>> make_software_tracker(GuestMemory& memory, ConservativePolicy policy,
                                                               size_t scan_vector_regions = 0,
                                                               bool missing_too = false);

}  // namespace ckpt::vmm::software
