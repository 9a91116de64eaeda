// The software backend of Machine: the same machine as vmm/kvm without /dev/kvm. Guest memory is the same memfd
// with the same 1 GiB slots (GuestMemory), loaded with the same system area (build_guest_image); each vCPU is a host
// thread running the built-in workload in C++ (SoftwareVcpu), so a seed and an iteration count give the same
// memory image on both backends; dirty pages come from userfaultfd async write-protect harvested with PAGEMAP_SCAN
// (UffdWpTracker), exact like KVM's dirty log.
//
// Differences a caller can see: backend_name() is "software"; tracking_mode() is kUffdWp (the only mode, also what
// kAuto picks; the KVM modes are refused); the state blobs are "software/vcpu<i>/workload"; rearm() does nothing,
// because harvest_dirty() re-protects each page in the same step that reports it.
//
// Thread safety: like the KVM machine, one controlling thread calls the methods; vCPU threads are internal.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "common/status.h"
#include "vmm/machine.h"
#include "vmm/software/tracker.h"

namespace ckpt::vmm::software {

struct SoftwareOptions {
  // Whether the all-pages-dirty tracker may stand in for uffd-wp (see ConservativePolicy); tracking_mode() then
  // reports kConservative and software_tracker_name() "conservative".
  ConservativePolicy conservative = ConservativePolicy::kNever;
  size_t scan_vector_regions = 0;  // PAGEMAP_SCAN output vector length; 0 = UffdWpTracker's default
};

// Fails (naming the missing kernel feature, see probe_uffd_wp()) where uffd-wp is unavailable and the options do
// not allow the conservative tracker, and for a KVM-only tracking mode.
Result<std::unique_ptr<Machine>> create_software_machine(const MachineConfig& config,
                                                         const SoftwareOptions& options = {});

// "uffd-wp" or "conservative" for a software machine; empty for any other Machine.
std::string_view software_tracker_name(const Machine& machine);

}  // namespace ckpt::vmm::software
