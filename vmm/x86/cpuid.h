// The CPUID a Linux guest sees: KVM_GET_SUPPORTED_CPUID fixed up per vCPU (APIC ids and a topology of `count`
// single-threaded cores in one package, the hypervisor bit, TSC-deadline, no invariant TSC), conversion from/to
// the kvm_cpuid2 buffer KvmSystem::supported_cpuid() returns, and the check a restore on another host makes.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "vmm/kvm/kvm_api.h"  // <linux/kvm.h> with kvm_cpuid2's C layout

namespace ckpt::vmm::x86 {

using CpuidEntries = std::vector<kvm_cpuid_entry2>;

// A kvm_cpuid2 buffer (header + nent entries) to its entries; fails when the buffer is shorter than it claims.
Result<CpuidEntries> cpuid_from_kvm_buffer(std::span<const uint8_t> buffer);
// Entries to a kvm_cpuid2 buffer ready for KVM_SET_CPUID2 (8-byte aligned: std::vector's storage is).
std::vector<uint8_t> cpuid_to_kvm_buffer(std::span<const kvm_cpuid_entry2> entries);

struct CpuidOptions {
  unsigned index = 0;  // this vCPU; its APIC id
  unsigned count = 1;  // vCPUs in the guest, 1..255 (8-bit APIC ids)
  bool tsc_deadline = false;  // KVM_CAP_TSC_DEADLINE_TIMER: advertise the LAPIC TSC-deadline mode
};

// The CPUID for one vCPU, from the host's supported list (KVM's paravirt leaves 0x40000000.. unchanged).
Result<CpuidEntries> vcpu_cpuid(std::span<const kvm_cpuid_entry2> supported, const CpuidOptions& options);

// For restoring a saved guest on this host: refuses, naming leaf, register and bits, when `saved` advertises a
// feature bit that `host_supported` (this host's KVM_GET_SUPPORTED_CPUID) lacks, apart from the bits vcpu_cpuid
// sets itself and those KVM changes at run time.
Status check_cpuid_compatible(std::span<const kvm_cpuid_entry2> saved, std::span<const kvm_cpuid_entry2> host_supported);

}  // namespace ckpt::vmm::x86
