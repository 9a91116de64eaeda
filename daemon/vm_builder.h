// Making the daemon's VM: fresh (the built-in guest, for a new store) or rebuilt from a committed epoch (--resume at
// start, or a live restore): memory from the chain, then the vCPU and VM state blobs of that epoch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "daemon/config.h"
#include "snapshot/io/file_system.h"
#include "vmm/machine.h"

namespace ckpt::daemon {

Result<std::unique_ptr<vmm::Machine>> create_fresh_machine(const DaemonConfig& config);

// The machine is loaded but not started. Its size and workload are the store's: the epoch is the truth about the
// guest it holds. A setting the user gave that differs (memory-mib, vcpus, the workload-* settings) is refused with
// invalid_argument naming it and both values (resume_settings.h); one left at its default takes the store's value.
Result<std::unique_ptr<vmm::Machine>> rebuild_machine(const DaemonConfig& config, snap::FileSystem& fs,
                                                      const std::string& store_dir, uint64_t epoch);

}  // namespace ckpt::daemon
