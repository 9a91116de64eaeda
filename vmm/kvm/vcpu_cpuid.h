// Each vCPU's CPUID: what KVM supports with the fix-ups a guest needs (vmm/x86/cpuid.h: APIC ids, topology, the
// hypervisor bit), set at creation, saved with every epoch as "kvm/vcpu<i>/cpuid" (a kvm_cpuid2 header and its
// entries) and set again on restore once this host is known to support every feature the saved guest was shown.
#pragma once

#include "vmm/kvm/kvm_api.h"

#include <vector>

#include "common/status.h"
#include "vmm/kvm/kvm_api.h"
#include "vmm/machine.h"
#include "vmm/x86/cpuid.h"

namespace ckpt::vmm::kvm {

using x86::CpuidEntries;

Result<CpuidEntries> host_supported_cpuid(const KvmSystem& kvm);
// The CPUID of vCPU `index` of `count` on this host.
Result<CpuidEntries> guest_cpuid(const KvmSystem& kvm, const CpuidEntries& supported, unsigned index,
                                 unsigned count);
Status set_vcpu_cpuid(int vcpu_fd, const CpuidEntries& entries);

Status save_vcpu_cpuid(int vcpu_fd, unsigned index, std::vector<StateBlob>& out);
// Sets the saved CPUID of vCPU `index` after checking it against `host`; a state without one (epochs written before
// CPUID was saved) keeps the CPUID the vCPU was created with.
Status load_vcpu_cpuid(int vcpu_fd, unsigned index, const std::vector<StateBlob>& state, const CpuidEntries& host);

}  // namespace ckpt::vmm::kvm
