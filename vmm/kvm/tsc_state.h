// Keeps a restored guest's TSC and kvmclock in step. The epoch's kvmclock ("kvm/vm/clock") and each vCPU's TSC
// (IA32_TSC in "kvm/vcpu<i>/msrs") are read, and on restore written, at slightly different moments, while the host's
// TSC runs on: a restored guest then sees its TSC a fraction of a millisecond off its kvmclock, and Linux's
// clocksource watchdog marks the TSC unstable. So the pairing is saved as well: one KVM_GET_CLOCK gives kvmclock
// and the host TSC at the same instant, KVM_VCPU_TSC_OFFSET each vCPU's offset from the host TSC, so the guest TSC
// at that instant is exact. On restore, once kvmclock is set, another KVM_GET_CLOCK gives the new pairing and each
// vCPU's offset is written so that its TSC advanced exactly as far as kvmclock did since the saved instant
// (Documentation/virt/kvm/devices/vcpu.rst, KVM_VCPU_TSC_OFFSET, whose algorithm this follows without advancing
// kvmclock by the wall-clock time between epoch and restore: the guest continues from its epoch).
//
// Blob "kvm/vcpu<i>/tsc", version 1, little-endian: u32 version, u32 tsc_khz (the vCPU's TSC frequency),
// u64 kvmclock_ns, u64 guest_tsc (the vCPU's TSC when kvmclock read kvmclock_ns). Saved only where the host
// offers KVM_CLOCK_HOST_TSC (a stable host TSC) and the TSC offset attribute; without it, or with an epoch that
// lacks the blob, the IA32_TSC value from the MSRs stands.
#pragma once

#include <vector>

#include "common/status.h"
#include "vmm/machine.h"

namespace ckpt::vmm::kvm {

Status save_tsc_pairing(int vm_fd, const std::vector<int>& vcpu_fds, std::vector<StateBlob>& out);
// After load_vm_state (kvmclock) and the vCPUs' MSRs.
Status load_tsc_pairing(int vm_fd, const std::vector<int>& vcpu_fds, const std::vector<StateBlob>& state);

}  // namespace ckpt::vmm::kvm
