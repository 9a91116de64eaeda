// The software backend's saved state: one blob per vCPU, "software/vcpu<i>/workload", holding the workload
// registers (guest::WorkloadCpuState::encode(): iterations, PRNG state, sweep position, writes done in the current
// iteration), in ascending vCPU order. There is no VM-wide state: no devices, no clock. Guest memory, including
// the control blocks and status slots, travels separately, as with KVM.
// Restore order: memory and these blobs in either order before start; at start each vCPU reads its control block
// from memory and only then applies its registers, checking them against that control block.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "vmm/guest/workload.h"
#include "vmm/machine.h"

namespace ckpt::vmm::software {

std::string vcpu_state_name(unsigned index);

void append_vcpu_state(unsigned index, const guest::WorkloadCpuState& state, std::vector<StateBlob>& out);

// Exactly one well-formed blob for each of `vcpus` vCPUs and nothing else; the error names the offending blob
// (another backend's state, an unknown name, a duplicate, a missing vCPU, a corrupt encoding).
Result<std::vector<guest::WorkloadCpuState>> parse_vcpu_states(const std::vector<StateBlob>& state, unsigned vcpus);

}  // namespace ckpt::vmm::software
