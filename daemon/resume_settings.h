// On resume (and any rebuild from the store) the VM is the store's: its memory size is in the epoch header, its
// vCPU count in the names of the epoch's state blobs, and its workload in the control blocks the guest reads from
// its own memory. A setting the user gave (DaemonConfig::explicit_settings) that says otherwise is refused, naming
// the setting, both values and where the user's came from; a setting left at its default takes the store's value.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "daemon/config.h"
#include "snapshot/epoch_meta.h"
#include "vmm/guest/guest_abi.h"

namespace ckpt::daemon {

// The vCPUs that state blobs name ("kvm/vcpu3/regs", "software/vcpu0/workload"): the highest index + 1; 0 if none.
unsigned vcpus_in_state(const std::vector<snap::StateBlob>& states);

// What the epoch's VM runs: linux when its state has the "guest/kind" blob, else the built-in guest. A guest setting
// the user gave that says otherwise is refused. kernel, initrd and cmdline only make a new guest: on resume the
// kernel is already in the guest's memory, so they are not used (Session::create says so in the log).
Result<vmm::GuestKind> stored_guest_kind(const DaemonConfig& config, const std::vector<snap::StateBlob>& states,
                                         const std::string& store);

// memory-mib and vcpus against the store's VM. `store` names the store and epoch for the message.
Status check_size_settings(const DaemonConfig& config, uint64_t memory_bytes, unsigned vcpus,
                           const std::string& store);

// workload, workload-seed, workload-writes, workload-hot-pages and workload-delay-loops against vCPU 0's control
// block as the store holds it (every vCPU gets the same parameters; only the region differs).
Status check_workload_settings(const DaemonConfig& config, const vmm::guest::WorkloadControl& stored,
                               const std::string& store);

}  // namespace ckpt::daemon
