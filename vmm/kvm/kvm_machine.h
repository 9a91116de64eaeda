// The KVM backend of Machine: one VM, memfd-backed memory slots with dirty logging, an in-kernel irqchip and PIT,
// one thread per vCPU, and the dirty tracker chosen by the configuration.
#pragma once

#include <memory>

#include "common/status.h"
#include "vmm/machine.h"

namespace ckpt::vmm::kvm {

Result<std::unique_ptr<Machine>> create_kvm_machine(const MachineConfig& config);

}  // namespace ckpt::vmm::kvm
