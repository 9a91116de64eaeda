#include "vmm/software/tracker.h"

#include "common/log.h"
#include "vmm/software/uffd_wp_tracker.h"

namespace ckpt::vmm::software {

Status ConservativeTracker::harvest_and_rearm(DirtyBitmap& out) {
  for (uint64_t gfn = 0; gfn < pages_; ++gfn) out.set(gfn);
  return Status::ok();
}

Result<std::unique_ptr<SoftwareTracker>> make_software_tracker(GuestMemory& memory, ConservativePolicy policy,
                                                               size_t scan_vector_regions, bool missing_too) {
  if (policy == ConservativePolicy::kAlways) {
    CKPT_LOG(kWarn) << "software machine: conservative dirty tracking requested: every page is reported dirty at "
                       "every harvest";
    return std::unique_ptr<SoftwareTracker>(new ConservativeTracker(memory.pages()));
  }
  auto uffd = UffdWpTracker::create(memory, scan_vector_regions, missing_too);
  if (uffd.is_ok()) return std::unique_ptr<SoftwareTracker>(std::move(uffd).value());
  if (policy == ConservativePolicy::kNever) return uffd.status();
  CKPT_LOG(kWarn) << "software machine: uffd-wp dirty tracking unavailable (" << uffd.status().to_string()
                  << "); falling back to conservative tracking: every page is reported dirty at every harvest";
  return std::unique_ptr<SoftwareTracker>(new ConservativeTracker(memory.pages()));
}

}  // namespace ckpt::vmm::software
