// Making the daemon's VM: fresh (the built-in guest, for a new store) or rebuilt from a committed epoch (--resume at
// start, or a live restore): memory from the chain, then the vCPU and VM state blobs of that epoch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "daemon/config.h"
#include "daemon/disk_images.h"
#include "daemon/lazy_restore.h"
#include "snapshot/catalog.h"
#include "snapshot/io/file_system.h"
#include "vmm/machine.h"

namespace ckpt::daemon {

// A machine with the working images of its disks, open for the epoch pipeline to read. A machine rebuilt from the
// store runs on images not yet in place (`pending`): publish_disks() puts them there once the VM has replaced the
// one before it; dropped unpublished, they go with the machine (their files are removed, its descriptors stay).
struct BuiltVm {
  // A lazily restored machine's server of missing pages. Declared before the machine so that it outlives it: the
  // machine's vCPUs may wait on it until they stop (LazyRestore::abandon() first if one waits on a failed block).
  std::unique_ptr<LazyRestore> lazy;
  std::unique_ptr<vmm::Machine> machine;
  std::vector<OpenDisk> disks;
  std::vector<PendingImage> pending;  // disks[i]'s image, for a rebuilt machine

  // Where a rebuild's time went, in ms (rebuild_machine only): what a restore waits for before the guest may run.
  struct Phases {
    double chain = 0;    // the epoch's chain found in the catalog the caller gives
    double disks = 0;    // disks rebuilt into working images
    double memory = 0;   // lazy: the restore plan, the chain's files opened; eager: every page in
    double machine = 0;  // the machine made (memory mapped, registered); lazy: working-set record read, threads started
    double state = 0;    // vCPU and device state loaded
    double total() const { return chain + disks + memory + machine + state; }
    std::string to_string() const;
  } phases;

  Status publish_disks();
};

// A new VM for an empty store: each disk the user named is copied into a working image in the store first
// (disk_images.h).
Result<BuiltVm> create_fresh_machine(const DaemonConfig& config);

// How a rebuilt machine gets its memory: every page before it starts (eager), or on demand while it runs (lazy:
// LazyRestore; where lazy is impossible, the log says why and the restore is eager).
enum class MemoryRestore { kEager, kLazy };

// The machine is loaded but not started. Its size, workload and disks are the store's: the epoch is the truth about
// the guest it holds. A setting the user gave that differs (memory-mib, vcpus, the workload-* settings, the number
// of disks) is refused with invalid_argument naming it and both values (resume_settings.h); one left at its default
// takes the store's value. Each disk's working image is rebuilt from the chain beside the current one (pending, so
// that a failure anywhere before publish_disks leaves the current images as they were). `catalog` is the store's
// (of catalog.dir()): the caller's, so that a daemon restores from the one it holds instead of reading every
// epoch's metadata again (2-19 ms at 4 GiB).
Result<BuiltVm> rebuild_machine(const DaemonConfig& config, snap::FileSystem& fs, const snap::Catalog& catalog,
                                uint64_t epoch, MemoryRestore memory = MemoryRestore::kEager);

}  // namespace ckpt::daemon
