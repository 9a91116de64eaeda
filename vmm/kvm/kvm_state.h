// Saving and restoring KVM vCPU and VM state as named blobs ("kvm/vcpu0/regs", "kvm/vm/clock").
//
// Order on save, per vCPU: MP_STATE first (it can flush pending events into the other state), then REGS, SREGS,
// XSAVE (or FPU), XCRS, DEBUGREGS, LAPIC, MSRS, VCPU_EVENTS. Order on restore, per vCPU: MP_STATE, REGS, SREGS,
// XSAVE/FPU, XCRS, DEBUGREGS, LAPIC (after SREGS: the APIC base MSR lives there), MSRS (after LAPIC: the TSC deadline
// needs the APIC), VCPU_EVENTS last (after REGS: it can inject an event that depends on them).
// VM state: the in-kernel IRQCHIP (PIC master, PIC slave, IOAPIC), PIT2, then CLOCK; restored before the vCPUs.
// A blob is the kernel structure's bytes as-is (kernel ABI), except MSRS (kvm_msrs header + entries) and XSAVE
// (the size KVM_CAP_XSAVE2 reports).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "vmm/kvm/kvm_api.h"
#include "vmm/machine.h"

namespace ckpt::vmm::kvm {

Status save_vcpu_state(const KvmSystem& kvm, int vcpu_fd, unsigned index, std::vector<StateBlob>& out);
Status load_vcpu_state(int vcpu_fd, unsigned index, const std::vector<StateBlob>& state);
Status save_vm_state(int vm_fd, std::vector<StateBlob>& out);
Status load_vm_state(int vm_fd, const std::vector<StateBlob>& state);

// The guest memory KVM writes itself while `state` is loaded: setting the kvmclock wall-clock MSR
// (MSR_KVM_WALL_CLOCK_NEW, or the old MSR_KVM_WALL_CLOCK) makes KVM write the host's current time at the address it
// holds, at once. (gpa, bytes) ranges; none for a guest that never enabled kvmclock.
std::vector<std::pair<uint64_t, uint64_t>> memory_written_by_load(const std::vector<StateBlob>& state);

}  // namespace ckpt::vmm::kvm
