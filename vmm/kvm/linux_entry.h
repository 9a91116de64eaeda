// Puts the boot vCPU at a Linux kernel's 64-bit entry point as the boot protocol requires (x86::load_linux placed
// the GDT, identity page tables and boot_params), and wires every vCPU's LAPIC for a PC: LINT0 takes the PIC's
// ExtINT, LINT1 the NMI, as the MP table tells the guest. The other vCPUs stay in KVM's reset state, waiting for the
// INIT/SIPI with which the kernel starts them.
#pragma once

#include "common/status.h"
#include "vmm/x86/linux_loader.h"

namespace ckpt::vmm::kvm {

Status enter_linux(int vcpu_fd, const x86::LinuxEntry& entry);
Status wire_local_interrupts(int vcpu_fd);

}  // namespace ckpt::vmm::kvm
